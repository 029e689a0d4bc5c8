#!/usr/bin/env node
// CPU profile of one pairlb engine under wrk load: the same backends, pinning and generated config
// as `npm run bench`, with `node --cpu-prof`, then a summary of where the time goes (self time by
// function, by module, and inclusive time of pairlb's own functions).
//
//   node bench/profile.mjs [--engine undici|native | --target pairlb-w1-log|pairlb-undici-w1-log|…] [--scenario small-keepalive|large-keepalive|small-close|sticky-small-keepalive|h2-tls|h2c]
//                          [--duration 10] [--out DIR] [--top 25] [--node-flags "..."]
//   node bench/profile.mjs --summarize FILE.cpuprofile     (summary of an existing profile)
import { parseArgs } from 'node:util';
import { mkdtempSync, mkdirSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve, dirname, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import { requireBinaries, ensureBinary, cpuPlan, nofile, build } from './lib/env.mjs';
import { startBackends, startTarget } from './lib/targets.mjs';
import { runWrk } from './lib/wrk.mjs';
import { runH2load } from './lib/h2load.mjs';
import { certs } from './lib/tls.mjs';
import { pairlbH2Extra } from './lib/configs.mjs';
import { stopAll, killAllSync } from './lib/procs.mjs';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const SCEN = {
  'small-keepalive': { path: '/', headers: [], sticky: false },
  'large-keepalive': { path: '/large', headers: [], sticky: false },
  'small-close': { path: '/', headers: ['Connection: close'], sticky: false },
  'sticky-small-keepalive': { path: '/', headers: [], sticky: true },
  // HTTP/2 to pairlb (h2load -c10 -m100, as `npm run bench:h2`), HTTP/1.1 to the backends.
  'h2-tls': { path: '/', h2: 'tls' },
  'h2c': { path: '/', h2: 'h2c' },
};

/** Where a profile node's code lives, for the by-module view. */
function moduleOf(url, fn) {
  if (!url) return fn.startsWith('(') ? fn : '(native/builtin)';
  if (url.startsWith('node:')) return url.replace(/^node:internal\//, 'node:').replace(/\/[^/]*$/, '/*').replace(/^node:([^/]*)$/, 'node:$1');
  const nm = url.lastIndexOf('node_modules/');
  if (nm >= 0) return url.slice(nm + 13).split('/').slice(0, url.slice(nm + 13).startsWith('@') ? 2 : 1).join('/');
  const i = url.indexOf('/dist/');
  return i >= 0 ? `pairlb ${url.slice(i + 1)}` : url;
}

export function summarize(file, top = 25) {
  const p = JSON.parse(readFileSync(file, 'utf8'));
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  const parent = new Map();
  for (const n of p.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  // Self time from samples × time deltas (hitCount alone ignores uneven sampling intervals).
  const self = new Map();
  let total = 0;
  for (let i = 0; i < p.samples.length; i++) {
    const dt = p.timeDeltas[i + 1] ?? p.timeDeltas[i] ?? 0;
    self.set(p.samples[i], (self.get(p.samples[i]) ?? 0) + dt);
    total += dt;
  }
  const idle = [...self].filter(([id]) => byId.get(id).callFrame.functionName === '(idle)').reduce((a, [, t]) => a + t, 0);
  const busy = total - idle;
  const key = (cf) => `${cf.functionName || '(anonymous)'} ${cf.url ? `${short(cf.url)}:${cf.lineNumber + 1}` : ''}`.trim();
  const fnSelf = new Map(), modSelf = new Map(), incl = new Map();
  for (const [id, t] of self) {
    const cf = byId.get(id).callFrame;
    if (cf.functionName === '(idle)') continue;
    fnSelf.set(key(cf), (fnSelf.get(key(cf)) ?? 0) + t);
    const m = moduleOf(cf.url, cf.functionName);
    modSelf.set(m, (modSelf.get(m) ?? 0) + t);
    // Inclusive time of pairlb's own functions (count each function once per stack).
    const seen = new Set();
    for (let n = id; n !== undefined; n = parent.get(n)) {
      const c = byId.get(n).callFrame;
      if (!c.url.includes('/dist/')) continue;
      const k = key(c);
      if (seen.has(k)) continue;
      seen.add(k);
      incl.set(k, (incl.get(k) ?? 0) + t);
    }
  }
  const pct = (t) => `${((100 * t) / busy).toFixed(1).padStart(5)}%`;
  const list = (m, n) => [...m].sort((a, b) => b[1] - a[1]).slice(0, n).map(([k, t]) => `  ${pct(t)}  ${k}`).join('\n');
  return [
    `profile ${file}: ${(total / 1e6).toFixed(1)} s sampled, ${((100 * idle) / total).toFixed(1)}% idle; percentages are of busy time`,
    '', 'self time by module:', list(modSelf, 15),
    '', `self time by function (top ${top}):`, list(fnSelf, top),
    '', 'inclusive time of pairlb functions (dist/):', list(incl, 20),
    '', 'busy time by owner (nearest node:http / undici / pairlb frame of each sample):',
    categories(file).map(([k, f]) => `  ${(100 * f).toFixed(1).padStart(5)}%  ${k}`).join('\n'),
  ].join('\n');
}

/** Socket/file write bindings: the syscall (and the kernel's loopback work under it) plus the copy. */
const WRITES = new Set(['writev', 'writeLatin1String', 'writeString', 'writeBuffer', 'writeUtf8String']);

/**
 * Where a profile's busy time goes, by owner: each sample is charged to the nearest frame (from
 * the leaf up) that belongs to node:http, undici, pairlb's access log, the native engine, the header
 * rewrite or the rest of pairlb; socket writes, GC and V8's own "(program)" stay apart. `files`:
 * one or more .cpuprofile (a process's worker threads), summed. Returns [[owner, share 0-1], …].
 */
export function categories(files) {
  const time = new Map();
  let busy = 0;
  for (const file of [files].flat()) {
    const p = JSON.parse(readFileSync(file, 'utf8'));
    const byId = new Map(p.nodes.map((n) => [n.id, n]));
    const parent = new Map();
    for (const n of p.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
    const memo = new Map();
    const owner = (id) => {
      let c = memo.get(id);
      if (c !== undefined) return c;
      const leaf = byId.get(id).callFrame;
      if (leaf.functionName === '(idle)') c = null;
      else if (WRITES.has(leaf.functionName)) c = 'socket/file writes (syscalls)';
      else if (leaf.functionName.startsWith('(')) c = leaf.functionName;
      else {
        for (let x = id; x !== undefined && !c; x = parent.get(x)) {
          const u = byId.get(x).callFrame.url;
          if (u.includes('_http_')) c = 'node:http (server parse, req/res objects, response writing)';
          else if (u.includes('/undici/')) c = 'undici';
          else if (u.includes('dist/proxy/access-log')) c = 'pairlb access log';
          else if (u.includes('dist/proxy/engines/native')) c = 'native engine (incl. llhttp parse of responses)';
          else if (u.includes('dist/proxy/headers') || u.includes('dist/proxy/request-head')) c = 'pairlb header rewrite';
          else if (u.includes('/dist/')) c = 'pairlb (routing, counters, listener)';
        }
        c ??= 'node other (streams, timers, net, events)';
      }
      memo.set(id, c);
      return c;
    };
    for (let i = 0; i < p.samples.length; i++) {
      const c = owner(p.samples[i]);
      if (c === null) continue;
      const dt = p.timeDeltas[i + 1] ?? 0;
      busy += dt;
      time.set(c, (time.get(c) ?? 0) + dt);
    }
  }
  return [...time].sort((a, b) => b[1] - a[1]).map(([k, t]) => [k, busy ? t / busy : 0]);
}

function short(url) {
  const nm = url.lastIndexOf('node_modules/');
  if (nm >= 0) return url.slice(nm + 13);
  const i = url.indexOf('/dist/');
  return i >= 0 ? url.slice(i + 1) : url.replace(/^file:\/\//, '');
}

async function main() {
  const { values } = parseArgs({
    args: process.argv.slice(2),
    options: {
      engine: { type: 'string', default: 'undici' }, scenario: { type: 'string', default: 'small-keepalive' },
      duration: { type: 'string', default: '10' }, out: { type: 'string' }, top: { type: 'string', default: '25' },
      summarize: { type: 'string' }, 'node-flags': { type: 'string' }, 'no-build': { type: 'boolean' }, target: { type: 'string' },
    },
  });
  const top = Number(values.top);
  if (values.summarize) { process.stdout.write(summarize(values.summarize, top) + '\n'); return 0; }
  const scen = SCEN[values.scenario];
  if (!scen) { process.stderr.write(`profile: unknown scenario (known: ${Object.keys(SCEN).join(', ')})\n`); return 2; }
  const bins = requireBinaries();
  const plan = cpuPlan();
  if (!values['no-build']) { const w = build(ROOT); if (w) process.stdout.write(`note: ${w}\n`); }
  const dir = mkdtempSync(join(tmpdir(), 'pairlb-prof-'));
  const out = resolve(values.out ?? join(ROOT, 'bench', 'results', 'profiles'));
  mkdirSync(out, { recursive: true });
  const before = new Set(readdirSync(out));
  process.on('exit', killAllSync);
  try {
    const backends = await startBackends(dir, bins, plan.client);
    // --target: any pairlb bench target (pairlb-w1-log: one worker thread, the default access log
    // on; node writes one profile per thread, the worker's is the data plane).
    const name = values.target ?? (values.engine === 'native' ? 'pairlb-native' : 'pairlb');
    const nodeFlags = values['node-flags'] ? values['node-flags'].split(/\s+/).filter(Boolean) : [];
    const fronts = scen.h2 ? [{ name: scen.h2, tls: scen.h2 === 'tls' ? certs(dir) : undefined, h2: true, extra: pairlbH2Extra(scen.h2) }] : undefined;
    const t = await startTarget(name, { dir, bins, cpu: plan.proxy, backends, maxconn: Math.floor((nofile() - 200) / 2), root: ROOT, nodeFlags, profileDir: out, fronts });
    if (scen.h2) {
      const h2load = ensureBinary('h2load', 'nghttp2-client');
      const url = `${scen.h2 === 'tls' ? 'https' : 'http'}://127.0.0.1:${t.port}${scen.path}`;
      // -n, not -D (bench/lib/h2load.mjs): the warm-up's rate sizes the measured run.
      const w = await runH2load({ bin: h2load, url, secs: 30, requests: 3000, cpu: plan.client }); // warm-up (JIT), also profiled
      const n = Math.max(3000, Math.round((w.succeeded / Math.max(w.secs, 0.1)) * Number(values.duration)));
      const r = await runH2load({ bin: h2load, url, secs: Number(values.duration) * 3 + 30, requests: n, cpu: plan.client });
      process.stdout.write(`${name} ${values.scenario} under --cpu-prof: ${Math.round(r.rps)} req/s (${r.protocol}, h2load -c10 -m100; profiling costs some throughput)\n`);
    } else {
      const url = `http://127.0.0.1:${scen.sticky ? t.stickyPort : t.port}${scen.path}`;
      await runWrk({ url, secs: 2, headers: scen.headers, cpu: plan.client }); // warm-up (JIT), also profiled
      const r = await runWrk({ url, secs: Number(values.duration), headers: scen.headers, cpu: plan.client });
      process.stdout.write(`${name} ${values.scenario} under --cpu-prof: ${Math.round(r.rps)} req/s, p99 ${r.p99_ms} ms (profiling costs some throughput)\n`);
    }
    await t.handle.stop(10000); // graceful stop: node writes the profile on exit
  } finally {
    await stopAll();
    rmSync(dir, { recursive: true, force: true });
  }
  await sleep(200);
  const made = readdirSync(out).filter((f) => f.endsWith('.cpuprofile') && !before.has(f));
  if (!made.length) { process.stderr.write(`profile: no .cpuprofile appeared in ${out} (did the process exit cleanly?)\n`); return 1; }
  for (const f of made) process.stdout.write(`\n${summarize(join(out, f), top)}\n\nopen ${relative(process.cwd(), join(out, f))} in Chrome DevTools (Performance) or speedscope for the flame graph\n`);
  return 0;
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  main().then((c) => { process.exitCode = c; }, async (e) => { process.stderr.write(`profile: ${e.stack ?? e}\n`); await stopAll(); process.exitCode = 1; });
}
