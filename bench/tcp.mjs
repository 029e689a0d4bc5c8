#!/usr/bin/env node
// `npm run bench:tcp`: pairlb `mode: tcp` against HAProxy `mode tcp` and nginx `stream`, same run,
// same backend and client, interleaved rounds. Two scenarios:
//   echo-64k  C persistent connections, each writes 64 KiB and waits for the 64 KiB echo, in a loop;
//   get-1m    C workers, each connects, asks for 1 MiB, reads it to the server's FIN, closes, in a loop.
// Per run: MiB/s through the proxy (both directions for echo), transfers/s, and the proxy's own CPU
// seconds (/proc utime+stime of its process tree), hence MiB per proxy CPU-second: the per-core
// figure, robust on a shared machine. Ratios are to HAProxy (× HAProxy), from medians over rounds.
// Proxies pinned to CPU1, backend + client (this script's children) to CPU0, as bench/run.mjs.
import { parseArgs } from 'node:util';
import { mkdtempSync, openSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { connect } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { requireBinaries, versions, cpuPlan, loadAvg, build } from './lib/env.mjs';
import { startPinned, stopAll, killAllSync, freePort, processTree, treeCpu } from './lib/procs.mjs';
import { median } from './lib/report.mjs';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const STREAM_MODULE = '/usr/lib/nginx/modules/ngx_stream_module.so';

const { values: o } = parseArgs({
  options: {
    rounds: { type: 'string', default: '3' }, duration: { type: 'string', default: '5' },
    connections: { type: 'string', default: '16' }, json: { type: 'string' }, quick: { type: 'boolean' },
    'no-build': { type: 'boolean' }, help: { type: 'boolean' },
    // A/B in the same run: another pairlb build as an extra target, label=root (a directory with
    // dist/cli/main.js whose node_modules resolve, e.g. `mkdir -p .ab/base && cp -r dist .ab/base/`).
    build: { type: 'string', multiple: true }, 'no-nginx': { type: 'boolean' },
  },
});
if (o.help) {
  console.log('Usage: npm run bench:tcp -- [--rounds N (3)] [--duration S (5)] [--connections C (16)] [--json FILE] [--quick] [--no-build] [--build label=root ...] [--no-nginx]');
  process.exit(0);
}
const BUILDS = new Map((o.build ?? []).map((b) => { const i = b.indexOf('='); return [`pairlb@${b.slice(0, i)}`, resolve(b.slice(i + 1))]; }));
const ROUNDS = o.quick ? 1 : Number(o.rounds);
const DURATION = (o.quick ? 2 : Number(o.duration)) * 1000;
const CONNS = Number(o.connections);

const bins = requireBinaries();
if (!existsSync(STREAM_MODULE)) {
  console.error(`nginx's stream module is missing (${STREAM_MODULE}). Install with:\n  apt-get install -y libnginx-mod-stream`);
  process.exit(2);
}
if (!o['no-build']) build(ROOT);
const plan = cpuPlan();
const dir = mkdtempSync(join(tmpdir(), 'pairlb-bench-tcp-'));
process.on('exit', killAllSync);
for (const s of ['SIGINT', 'SIGTERM']) process.on(s, () => { killAllSync(); process.exit(130); });

// ---- backend: a child process on the client CPU ---------------------------------------------------
const BACKEND = `
const net = require('node:net');
const CHUNK = Buffer.alloc(256 * 1024, 97);
net.createServer({ allowHalfOpen: true, noDelay: true }, (s) => {
  s.on('error', () => {});
  s.once('data', function first(d) {
    if (d[0] === 0x65 /* e: echo */) { s.pipe(s); if (d.length > 1) s.write(d.subarray(1)); return; }
    let left = Number(d.toString('latin1').trim().slice(2)); // "g <n>\\n"
    const pump = () => { while (left > 0) { const n = Math.min(left, CHUNK.length); left -= n; if (!s.write(n === CHUNK.length ? CHUNK : CHUNK.subarray(0, n))) { s.once('drain', pump); return; } } s.end(); };
    pump();
  });
}).listen(Number(process.argv[1]), '127.0.0.1', () => console.log('ready'));
`;

async function waitPort(port, ms = 15000) {
  const end = Date.now() + ms;
  for (;;) {
    const ok = await new Promise((r) => { const c = connect(port, '127.0.0.1', () => { c.destroy(); r(true); }); c.on('error', () => r(false)); });
    if (ok) return;
    if (Date.now() > end) throw new Error(`port ${port} not answering`);
    await sleep(50);
  }
}

const backendPort = await freePort();
startPinned('backend', plan.client, process.execPath, ['-e', BACKEND, String(backendPort)], { logFd: openSync(join(dir, 'backend.log'), 'w') });
await waitPort(backendPort);

// ---- targets ----------------------------------------------------------------------------------
async function startTarget(name) {
  const port = await freePort();
  const log = openSync(join(dir, `${name}.log`), 'w');
  if (name === 'pairlb' || BUILDS.has(name)) {
    const cfg = join(dir, `${name}.yaml`);
    writeFileSync(cfg, `global:\n  log:\n    level: warn\n    access: off\nlisten:\n  - name: t\n    bind: 127.0.0.1:${port}\n    mode: tcp\n    backends:\n      - name: a\n        address: 127.0.0.1:${backendPort}\n        check: false\n`);
    const root = BUILDS.get(name) ?? ROOT;
    const h = startPinned(name, plan.proxy, process.execPath, [join(root, 'dist/cli/main.js'), 'start', '-c', cfg, '--state-dir', join(dir, `state-${name.replace(/\W/g, '_')}`)], { logFd: log });
    await waitPort(port);
    return { h, port };
  }
  if (name === 'haproxy') {
    const cfg = join(dir, 'haproxy.cfg');
    writeFileSync(cfg, `global\n  nbthread 1\n  maxconn 4000\ndefaults\n  mode tcp\n  timeout connect 5s\n  timeout client 60s\n  timeout server 60s\nlisten t\n  bind 127.0.0.1:${port}\n  server a 127.0.0.1:${backendPort}\n`);
    const h = startPinned(name, plan.proxy, bins.haproxy, ['-db', '-f', cfg], { logFd: log });
    await waitPort(port);
    return { h, port };
  }
  const cfg = join(dir, 'nginx.conf');
  writeFileSync(cfg, `load_module ${STREAM_MODULE};\nworker_processes 1;\ndaemon off;\npid ${join(dir, 'nginx.pid')};\nerror_log ${join(dir, 'nginx-error.log')} warn;\nevents { worker_connections 4000; }\nstream {\n  server {\n    listen 127.0.0.1:${port};\n    proxy_pass 127.0.0.1:${backendPort};\n  }\n}\n`);
  const h = startPinned(name, plan.proxy, bins.nginx, ['-c', cfg, '-p', dir], { logFd: log });
  await waitPort(port);
  return { h, port };
}

// ---- load ----------------------------------------------------------------------------------------
const K64 = Buffer.alloc(64 * 1024, 98);

/** C connections ping-ponging 64 KiB for `ms`; returns bytes moved through the proxy (both ways) and round trips. */
async function echo(port, ms) {
  const end = Date.now() + ms;
  let bytes = 0, trips = 0;
  await Promise.all(Array.from({ length: CONNS }, () => new Promise((done, fail) => {
    const c = connect({ port, host: '127.0.0.1', noDelay: true });
    let got = 0;
    c.on('error', fail);
    c.on('connect', () => { c.write('e'); c.write(K64); });
    c.on('data', (d) => {
      got += d.length;
      if (got < K64.length) return;
      got -= K64.length;
      bytes += 2 * K64.length; trips++;
      if (Date.now() >= end) { c.destroy(); done(); return; }
      c.write(K64);
    });
  })));
  return { bytes, ops: trips };
}

/** C workers fetching 1 MiB per connection for `ms`. */
async function get1m(port, ms) {
  const end = Date.now() + ms;
  let bytes = 0, ops = 0;
  const one = () => new Promise((done, fail) => {
    const c = connect({ port, host: '127.0.0.1', noDelay: true });
    let got = 0;
    c.on('error', fail);
    c.on('connect', () => c.write('g 1048576\n'));
    c.on('data', (d) => { got += d.length; });
    c.on('end', () => { c.end(); if (got !== 1048576) fail(new Error(`short transfer ${got}`)); else { bytes += got; ops++; done(); } });
  });
  await Promise.all(Array.from({ length: CONNS }, async () => { while (Date.now() < end) await one(); }));
  return { bytes, ops };
}

const SCENARIOS = { 'echo-64k': echo, 'get-1m': get1m };
const TARGETS = ['pairlb', ...BUILDS.keys(), 'haproxy', ...(o['no-nginx'] ? [] : ['nginx'])];

// The client runs in this process: pin it to the client CPU as well.
try { (await import('node:child_process')).execFileSync('taskset', ['-pc', String(plan.client ?? 0), String(process.pid)], { stdio: 'ignore' }); } catch { /* single CPU */ }

console.log(`bench:tcp  ${JSON.stringify(versions(bins))}`);
console.log(`${plan.note}; ${ROUNDS} round(s) x ${DURATION / 1000} s, ${CONNS} connections; load ${loadAvg()}`);
const running = {};
for (const t of TARGETS) running[t] = await startTarget(t);
// Warm-up: JIT and buffers.
for (const t of TARGETS) { await echo(running[t].port, 1000); await get1m(running[t].port, 1000); }

const runs = {};
for (let r = 0; r < ROUNDS; r++) {
  for (const [sc, fn] of Object.entries(SCENARIOS)) {
    for (const t of (r % 2 ? [...TARGETS].reverse() : TARGETS)) {
      const pids = processTree(running[t].h.pid);
      const c0 = treeCpu(pids);
      const t0 = performance.now();
      const res = await fn(running[t].port, DURATION);
      const secs = (performance.now() - t0) / 1000;
      const cpu = treeCpu(pids) - c0;
      const mib = res.bytes / 1048576;
      ((runs[sc] ??= {})[t] ??= []).push({ mibps: mib / secs, opsps: res.ops / secs, cpu, mibPerCpuS: cpu > 0 ? mib / cpu : 0 });
    }
  }
}
await stopAll();
rmSync(dir, { recursive: true, force: true });

const out = {};
for (const [sc, byT] of Object.entries(runs)) {
  const h = byT.haproxy;
  const hm = median(h.map((x) => x.mibPerCpuS));
  const ht = median(h.map((x) => x.mibps));
  console.log(`\n${sc}   (median of ${ROUNDS}; per core = MiB moved per proxy CPU-second)`);
  console.log('target    MiB/s   ops/s   proxy CPU %   MiB/CPU-s   × HAProxy (per core)   × HAProxy (MiB/s)');
  for (const t of TARGETS) {
    const xs = byT[t];
    const m = { mibps: median(xs.map((x) => x.mibps)), opsps: median(xs.map((x) => x.opsps)), cpuPct: median(xs.map((x) => (100 * x.cpu) / (DURATION / 1000))), mibPerCpuS: median(xs.map((x) => x.mibPerCpuS)) };
    (out[sc] ??= {})[t] = { ...m, x_haproxy_per_core: m.mibPerCpuS / hm, x_haproxy_throughput: m.mibps / ht };
    console.log(`${t.padEnd(Math.max(8, ...TARGETS.map((x) => x.length)))} ${m.mibps.toFixed(0).padStart(6)} ${m.opsps.toFixed(0).padStart(7)} ${m.cpuPct.toFixed(0).padStart(12)} ${m.mibPerCpuS.toFixed(0).padStart(11)} ${(m.mibPerCpuS / hm).toFixed(2).padStart(22)} ${(m.mibps / ht).toFixed(2).padStart(19)}`);
  }
}
if (o.json) writeFileSync(o.json, JSON.stringify({ versions: versions(bins), plan: plan.note, rounds: ROUNDS, duration_s: DURATION / 1000, connections: CONNS, results: out }, null, 2) + '\n');
