#!/usr/bin/env node
// Per-thread CPU of one target under the bench's load (issue 12: what two workers pay that one does
// not). Same backends, pinning and generated config as `npm run bench`; for each run: CPU seconds
// per thread (/proc/PID/task/TID/stat, by thread name), context switches, and, for pairlb targets
// with the access log on, the requests each worker served (its access lines' "worker" field).
//
//   node bench/threads.mjs [--target pairlb-w2-log] [--duration 4] [--rounds 1] [--node-flags "..."]
//
// Run it under the bench lock: `flock /work/wt/bench.lock node bench/threads.mjs …`.
import { parseArgs } from 'node:util';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import { requireBinaries, cpuPlan, nofile } from './lib/env.mjs';
import { startBackends, startTarget } from './lib/targets.mjs';
import { runWrk } from './lib/wrk.mjs';
import { stopAll, killAllSync, processTree } from './lib/procs.mjs';
import { threadTimes as threads } from './lib/threads.mjs';
import { spawn, execFileSync } from 'node:child_process';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const { values: o } = parseArgs({
  options: {
    target: { type: 'string', default: 'pairlb-w2-log' },
    duration: { type: 'string', default: '4' },
    rounds: { type: 'string', default: '1' },
    conns: { type: 'string', default: '64' },
    'node-flags': { type: 'string', default: '' },
    root: { type: 'string', default: ROOT },
    keep: { type: 'boolean', default: false },
    top: { type: 'string', default: '30' },
    // perf stat of the target's threads during each run: syscalls by kind, context switches.
    perf: { type: 'boolean', default: false },
    // Pin the target to these CPUs instead of the bench's plan (e.g. a one-worker target on 0,1:
    // does sharing the client's core cost what a second worker seems to?).
    cpus: { type: 'string' },
    // perf record (cpu-clock) of the target during each run: where each thread's time goes, per
    // request (with --node-flags --perf-basic-prof JS frames get names). Files stay in --keep's dir.
    record: { type: 'boolean', default: false },
  },
});
const evKey = (e) => e.replace(/^syscalls:sys_enter_/, '').replace('raw_syscalls:sys_enter', 'syscalls');

const HZ = 1999;
/** µs of CPU per request by thread kind and by owner (kernel / JS / node+V8 native), from perf samples. */
function report(file, requests) {
  const out = execFileSync('perf', ['report', '-i', file, '--stdio', '--no-children', '-F', 'sample,comm,dso,sym', '--percent-limit', '0'], { maxBuffer: 1 << 28, stdio: ['ignore', 'pipe', 'ignore'] }).toString();
  const byComm = new Map(), byOwner = new Map(), bySym = new Map();
  for (const line of out.split('\n')) {
    const m = /^\s+(\d+)\s+(\S+)\s+(\S+)\s+\[(.)\]\s+(.*)$/.exec(line);
    if (!m) continue;
    const n = Number(m[1]); const comm = m[2].replace(/-\d+$/, ''); const dso = m[3]; const sym = m[5].trim();
    const kind = comm.startsWith('pairlb-data') ? 'data' : comm;
    const owner = m[4] === 'k' ? 'kernel' : dso.startsWith('perf-') || dso === '[JIT]' ? 'JS (JIT)' : dso.includes('libc') ? 'libc' : 'node/V8 native';
    byComm.set(kind, (byComm.get(kind) ?? 0) + n);
    const ko = `${kind} ${owner}`; byOwner.set(ko, (byOwner.get(ko) ?? 0) + n);
    if (kind === 'data') { const k = `${m[4] === 'k' ? '[k] ' : ''}${sym.slice(0, 70)}`; bySym.set(k, (bySym.get(k) ?? 0) + n); }
  }
  const us = (n) => ((n / HZ) * 1e6 / requests).toFixed(2).padStart(7);
  console.log('  µs of CPU per request (perf cpu-clock samples):');
  for (const [k, n] of [...byComm].sort((a, b) => b[1] - a[1])) console.log(`    ${us(n)}  ${k}`);
  for (const [k, n] of [...byOwner].sort((a, b) => b[1] - a[1]).slice(0, 10)) console.log(`    ${us(n)}  ${k}`);
  console.log('  data threads, top symbols:');
  for (const [k, n] of [...bySym].sort((a, b) => b[1] - a[1]).slice(0, Number(o.top))) console.log(`    ${us(n)}  ${k}`);
}

function workerLines(file) {
  const per = new Map();
  let text = '';
  try { text = readFileSync(file, 'utf8'); } catch { return per; }
  for (const m of text.matchAll(/"worker":(\d+)[^\n]*"status"/g)) per.set(m[1], (per.get(m[1]) ?? 0) + 1);
  return per;
}

const bins = requireBinaries();
const plan = cpuPlan();
const dir = mkdtempSync(join(tmpdir(), 'pairlb-threads-'));
process.on('exit', killAllSync);
try {
  const backends = await startBackends(dir, bins, plan.client);
  const t = await startTarget(o.target, { dir, bins, cpu: plan.proxy, pin: o.cpus, backends, maxconn: Math.max(256, Math.min(10000, Math.floor((nofile() - 200) / 2))), root: o.root, nodeFlags: o['node-flags'] ? o['node-flags'].split(' ') : [], single: true });
  await runWrk({ url: `http://127.0.0.1:${t.port}/`, secs: 1, conns: Number(o.conns), cpu: plan.client });
  const secs = Number(o.duration);
  for (let r = 1; r <= Number(o.rounds); r++) {
    const logFile = join(dir, `${o.target}.out`);
    const linesBefore = workerLines(logFile);
    const pids = t.pids();
    const a = threads(pids);
    const t0 = process.hrtime.bigint();
    const EV = ['context-switches', 'cpu-migrations', 'raw_syscalls:sys_enter', 'syscalls:sys_enter_epoll_pwait', 'syscalls:sys_enter_epoll_wait', 'syscalls:sys_enter_writev', 'syscalls:sys_enter_write', 'syscalls:sys_enter_read', 'syscalls:sys_enter_futex', 'syscalls:sys_enter_accept4'];
    let perfOut = '';
    const perf = o.perf ? spawn('taskset', ['-c', String(plan.client), 'perf', 'stat', '--per-thread', '-x', ',', '-e', EV.join(','), '-p', pids.join(',')], { stdio: ['ignore', 'ignore', 'pipe'] }) : undefined;
    perf?.stderr.on('data', (d) => { perfOut += d; });
    const recFile = join(dir, `perf-${r}.data`);
    const rec = o.record ? spawn('taskset', ['-c', String(plan.client), 'perf', 'record', '-q', '-e', 'cpu-clock', '-F', String(HZ), '-o', recFile, '-p', pids.join(',')], { stdio: 'ignore' }) : undefined;
    const w = await runWrk({ url: `http://127.0.0.1:${t.port}/`, secs, conns: Number(o.conns), cpu: plan.client });
    if (perf) { perf.kill('SIGINT'); await new Promise((ok) => perf.on('close', ok)); }
    if (rec) { rec.kill('SIGINT'); await new Promise((ok) => rec.on('close', ok)); }
    const wall = Number(process.hrtime.bigint() - t0) / 1e9;
    const b = threads(pids);
    await sleep(300);
    const lines = workerLines(logFile);
    const rows = [];
    let tot = 0;
    for (const [k, x] of b) {
      const y = a.get(k) ?? { cpu: 0, user: 0, sys: 0, vcs: 0, ics: 0 };
      const cpu = x.cpu - y.cpu;
      tot += cpu;
      rows.push({ tid: k.split('/')[1], name: x.name, cpu, user: x.user - y.user, sys: x.sys - y.sys, vcs: x.vcs - y.vcs, ics: x.ics - y.ics });
    }
    rows.sort((p, q) => q.cpu - p.cpu);
    console.log(`\n${o.target} round ${r}: ${Math.round(w.rps)} req/s, ${w.requests} requests, proxy CPU ${(tot / wall * 100).toFixed(0)}% of a core, ${Math.round(w.requests / tot)} req/CPU-s`);
    const kinds = new Map();
    for (const x of rows) { const k = x.name.replace(/-\d+$/, ''); kinds.set(k, (kinds.get(k) ?? 0) + x.cpu); }
    console.log(`  µs of CPU per request by thread kind: ${[...kinds].sort((p, q) => q[1] - p[1]).map(([k, c]) => `${k} ${(c * 1e6 / w.requests).toFixed(1)}`).join(', ')}`);
    console.log('  tid       name              cpu%   user%  sys%   vol-cs/s  invol-cs/s');
    for (const x of rows) {
      if (x.cpu === 0 && x.vcs === 0) continue;
      console.log(`  ${x.tid.padEnd(9)} ${x.name.padEnd(16)} ${(x.cpu / wall * 100).toFixed(1).padStart(5)} ${(x.user / wall * 100).toFixed(1).padStart(6)} ${(x.sys / wall * 100).toFixed(1).padStart(5)} ${Math.round(x.vcs / wall).toString().padStart(9)} ${Math.round(x.ics / wall).toString().padStart(10)}`);
    }
    if (perf) {
      // -x, --per-thread lines: comm-tid,count,unit,event,...
      const per = new Map();
      for (const line of perfOut.split('\n')) {
        const f = line.split(',');
        if (f.length < 4 || !/^\d+$/.test(f[1])) continue;
        const th = f[0].trim();
        if (!per.has(th)) per.set(th, {});
        per.get(th)[evKey(f[3])] = Number(f[1]);
      }
      console.log(`  per 1000 requests (perf stat, whole run): ${EV.map(evKey).join(' ')}`);
      for (const [th, v] of per) {
        const vals = Object.values(v);
        if (vals.every((x) => x < 50)) continue;
        console.log(`  ${th.padEnd(26)} ${EV.map((e) => ((v[evKey(e)] ?? 0) * 1000 / w.requests).toFixed(0).padStart(6)).join(' ')}`);
      }
    }
    if (rec) report(recFile, w.requests);
    if (lines.size > 0) {
      const d = [...lines].map(([k, v]) => [k, v - (linesBefore.get(k) ?? 0)]).sort();
      console.log(`  access lines per worker: ${d.map(([k, v]) => `worker ${k}: ${v}`).join(', ')}`);
    }
  }
  if (processTree(t.handle.pid).length === 0) throw new Error('target died');
} finally {
  await stopAll();
  if (!o.keep) rmSync(dir, { recursive: true, force: true }); else console.log(`kept ${dir}`);
}
