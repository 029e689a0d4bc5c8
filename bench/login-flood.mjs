#!/usr/bin/env node
// Issue 10 item 9: what a flood of wrong stats-page passwords costs the proxy.
//
//   node bench/login-flood.mjs [--main dist/cli/main.js] [--count 1000] [--parallel 20] [--sources 1|N]
//
// Starts the real daemon (default ln=15 scrypt hash, default stats.login limits) in front of one
// node:http backend, then, while `count` wrong passwords are sent `parallel` at a time from
// `sources` loopback addresses (127.0.2.x; 1 = all from one address), measures:
//   - proxy latency (sequential GETs through the listen section, one per 20 ms, median and p99),
//   - one legitimate first login (uncached: one scrypt) from another address, timed,
//   - the daemon's peak RSS (VmHWM) and the answers the flood got.
// `--main` lets the same run use another build (e.g. a tree before the limits) for a before/after.
import { spawn } from 'node:child_process';
import { createServer, request } from 'node:http';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';

const { values: o } = parseArgs({ options: {
  main: { type: 'string', default: resolve(import.meta.dirname, '../dist/cli/main.js') },
  count: { type: 'string', default: '1000' }, parallel: { type: 'string', default: '20' }, sources: { type: 'string', default: '1' },
} });
const COUNT = Number(o.count), PAR = Number(o.parallel), SOURCES = Number(o.sources);
const { hashPassword } = await import(resolve(import.meta.dirname, '../dist/stats/auth.js'));

const backend = createServer((_q, r) => r.end('ok')).listen(0, '127.0.0.1');
await new Promise((ok) => backend.once('listening', ok));
const free = () => new Promise((ok) => { const s = createServer().listen(0, '127.0.0.1', () => { const p = s.address().port; s.close(() => ok(p)); }); });
const SP = await free();
const dir = mkdtempSync(join(tmpdir(), 'pairlb-loginflood-'));
writeFileSync(join(dir, 'c.yaml'), `
global: { log: { level: info, access: "off" } }
listen:
  - name: web
    bind: 127.0.0.1:0
    check: { interval: 30s }
    backends: [ { name: b1, address: "127.0.0.1:${backend.address().port}" } ]
stats:
  bind: 127.0.0.1:${SP}
  auth: [ { user: ops, password: "${await hashPassword('correct horse')}" } ]
`);
const d = spawn(process.execPath, [o.main, 'start', '-c', join(dir, 'c.yaml'), '--state-dir', join(dir, 'st')], { stdio: ['ignore', 'pipe', 'inherit'] });
for (const sig of ['SIGINT', 'SIGTERM']) process.once(sig, () => { d.kill('SIGKILL'); process.exit(1); });
let out = '';
const listens = await new Promise((ok, fail) => {
  const t = setTimeout(() => { d.kill('SIGKILL'); fail(new Error('no start: ' + out)); }, 20_000);
  d.stdout.on('data', (c) => {
    out += c;
    const line = out.split('\n').find((l) => l.includes('"msg":"pairlb started"'));
    if (line) { clearTimeout(t); ok(JSON.parse(line).listens.web); }
  });
});
d.stdout.resume();
const PP = Number(listens.split(':').pop());

function get(port, path, { auth, from } = {}) {
  return new Promise((ok, fail) => {
    const t0 = performance.now();
    const q = request({ host: '127.0.0.1', port, path, localAddress: from, agent: false, headers: auth ? { authorization: auth } : {} }, (r) => { r.resume(); r.on('end', () => ok({ status: r.statusCode, ms: performance.now() - t0 })); });
    q.on('error', fail); q.end();
  });
}
const basic = (p) => 'Basic ' + Buffer.from('ops:' + p).toString('base64');
const hwm = () => Number(/VmHWM:\s+(\d+)/.exec(readFileSync(`/proc/${d.pid}/status`, 'utf8'))[1]) / 1024;
const pct = (a, p) => { const s = [...a].sort((x, y) => x - y); return s[Math.min(s.length - 1, Math.floor(p * s.length))]; };

// Paced (one request per 20 ms) so that runs of different lengths put the same load on the proxy.
async function latency(n, stop) {
  const ms = [];
  for (let i = 0; i < n && !(stop?.()); i++) { ms.push((await get(PP, '/')).ms); await new Promise((r) => setTimeout(r, 20)); }
  return ms;
}
const base = await latency(200);
const rss0 = hwm();
let done = false;
const answers = {};
const flood = (async () => {
  for (let i = 0; i < COUNT; i += PAR) {
    const rs = await Promise.all(Array.from({ length: Math.min(PAR, COUNT - i) }, (_, j) => get(SP, '/', { auth: basic(`guess-${i + j}`), from: `127.0.${2 + (((i + j) % SOURCES) >> 8)}.${1 + ((i + j) % SOURCES) % 250}` })));
    for (const r of rs) answers[r.status] = (answers[r.status] ?? 0) + 1;
  }
  done = true;
})();
const t0 = performance.now();
const during = latency(1e9, () => done);
await new Promise((r) => setTimeout(r, 200));
const legit = await get(SP, '/', { auth: basic('correct horse'), from: '127.0.1.1' });
await flood;
const lat = await during;
const secs = (performance.now() - t0) / 1000;
console.log(JSON.stringify({
  main: o.main, count: COUNT, parallel: PAR, sources: SOURCES, floodSeconds: +secs.toFixed(2), answers,
  proxyMs: { idleMedian: +pct(base, 0.5).toFixed(2), idleP99: +pct(base, 0.99).toFixed(2), floodMedian: +pct(lat, 0.5).toFixed(2), floodP99: +pct(lat, 0.99).toFixed(2), floodSamples: lat.length },
  legitLogin: { status: legit.status, ms: Math.round(legit.ms) },
  peakRssMiB: { beforeFlood: Math.round(rss0), after: Math.round(hwm()) },
}));
d.kill('SIGTERM');
await new Promise((ok) => d.once('exit', ok));
backend.close();
rmSync(dir, { recursive: true, force: true });
