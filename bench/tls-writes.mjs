#!/usr/bin/env node
// What the shape of a response write costs over TLS in Node (issue 13; the lean HTTP/1 front's
// write path), against HAProxy answering the same request itself. Every server answers every
// request itself (no backend; bench/ref/tls-writes.mjs, HAProxy `http-request return`), one per
// process on CPU1, one wrk -c32 each on CPU0. The targets of a group are loaded AT THE SAME TIME, so
// whatever else the shared machine runs hits them alike: per-round ratios of proxy CPU per request
// to the group's first target are what to read (their spread is the noise), not the absolute µs.
//   flock /work/wt/bench.lock npm run bench:tls-writes -- [--rounds 5] [--duration 3] [--groups a,b]
import { parseArgs } from 'node:util';
import { spawn } from 'node:child_process';
import { mkdtempSync, openSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { certs, waitFor, tlsAlpn } from './lib/tls.mjs';
import { freePort, startPinned, stopAll, killAllSync, cpuSeconds, httpStatus } from './lib/procs.mjs';
import { cpuPlan, requireBinaries } from './lib/env.mjs';
import { median } from './lib/report.mjs';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const { values } = parseArgs({ options: { rounds: { type: 'string' }, duration: { type: 'string' }, groups: { type: 'string' }, help: { type: 'boolean', short: 'h' } } });
// A target: [name, tls?, shape, body bytes, ciphers?]; shape 'haproxy' is HAProxy's own answer.
const GROUPS = {
  shape: [['str', 1, 'str', 100], ['concat', 1, 'concat', 100], ['cork', 1, 'cork', 100], ['two', 1, 'two', 100]],
  handle: [['str', 1, 'str', 100], ['handle', 1, 'handle', 100]],
  plain: [['str', 0, 'str', 100], ['concat', 0, 'concat', 100], ['cork', 0, 'cork', 100]],
  size: [['cork-2k', 1, 'cork', 2000], ['concat-2k', 1, 'concat', 2000], ['cork-16k', 1, 'cork', 16000], ['concat-16k', 1, 'concat', 16000]],
  cipher: [['aes256', 1, 'str', 100, 'TLS_AES_256_GCM_SHA384'], ['aes128', 1, 'str', 100, 'TLS_AES_128_GCM_SHA256'], ['chacha', 1, 'str', 100, 'TLS_CHACHA20_POLY1305_SHA256']],
  cost: [['haproxy-tls', 1, 'haproxy', 100], ['haproxy-plain', 0, 'haproxy', 100], ['lean-tls', 1, 'str', 100], ['lean-plain', 0, 'str', 100], ['node:https', 1, 'http', 100], ['node:http', 0, 'http', 100]],
};
if (values.help) { process.stdout.write(`Usage: node bench/tls-writes.mjs [--rounds N] [--duration S] [--groups ${Object.keys(GROUPS).join(',')}]\n`); process.exit(0); }
const ROUNDS = Number(values.rounds ?? 5); const SECS = Number(values.duration ?? 3);
const names = (values.groups ?? Object.keys(GROUPS).join(',')).split(',');
const bins = requireBinaries();
const cpu = cpuPlan();
const dir = mkdtempSync(join(tmpdir(), 'pairlb-bench-tls-writes-'));
process.on('SIGINT', () => { killAllSync(); process.exit(130); });

const BODY = 'x'.repeat(100);
async function start([name, tls, shape, bytes, ciphers], c) {
  const port = await freePort();
  const logFd = openSync(join(dir, `${name}.${port}.out`), 'a');
  let h;
  if (shape === 'haproxy') {
    const cfg = join(dir, `haproxy.${port}.cfg`);
    writeFileSync(cfg, `global\n  nbthread 1\ndefaults\n  mode http\n  timeout client 30s\n  timeout http-keep-alive 30s\nfrontend f\n  bind 127.0.0.1:${port}${tls ? ` ssl crt ${c.bundle} alpn http/1.1` : ''}\n  http-request return status 200 content-type text/plain string "${BODY}"\n`);
    h = startPinned(name, cpu.proxy, bins.haproxy ?? 'haproxy', ['-db', '-f', cfg], { logFd });
  } else {
    h = startPinned(name, cpu.proxy, process.execPath, [join(ROOT, 'bench/ref/tls-writes.mjs'), String(port), shape, String(bytes), ...(tls ? [c.chain, c.key, ...(ciphers ? [ciphers] : [])] : [])], { logFd });
  }
  await waitFor(() => (tls ? tlsAlpn(port) : httpStatus(port).then((s) => { if (s !== 200) throw new Error(`status ${s}`); })), h, `${name} on ${port}`);
  return { name, url: `${tls ? 'https' : 'http'}://127.0.0.1:${port}/`, h, us: [] };
}

const wrk = (url) => new Promise((ok) => {
  const ch = spawn('taskset', ['-c', String(cpu.client ?? 0), 'wrk', '-t1', '-c32', `-d${SECS}s`, url], { stdio: ['ignore', 'pipe', 'ignore'] });
  let o = ''; ch.stdout.on('data', (d) => { o += d; });
  ch.on('close', () => ok(Number(/(\d+) requests in/.exec(o)?.[1] ?? 0)));
});

async function main() {
  process.stdout.write(`# TLS write shapes ${new Date().toISOString()}; ${cpu.note}; node ${process.version}; ${ROUNDS} rounds × ${SECS} s, the targets of a group loaded at once\n`);
  const c = certs(dir);
  for (const g of names) {
    const ts = [];
    for (const t of GROUPS[g]) ts.push(await start(t, c));
    for (const t of ts) await wrk(t.url); // warm-up (JIT, TLS code paths), not counted
    for (let r = 0; r < ROUNDS; r++) {
      const c0 = ts.map((t) => cpuSeconds(t.h.pid));
      const n = await Promise.all(ts.map((t) => wrk(t.url)));
      ts.forEach((t, i) => t.us.push(n[i] > 0 ? 1e6 * (cpuSeconds(t.h.pid) - c0[i]) / n[i] : NaN));
    }
    process.stdout.write(`\n## ${g}\n| target | µs CPU per request (median) | × ${ts[0].name}, median of rounds [min–max] |\n|:--|--:|--:|\n`);
    for (const t of ts) {
      const rs = t.us.map((u, i) => u / ts[0].us[i]);
      process.stdout.write(`| ${t.name} | ${median(t.us).toFixed(1)} | ${median(rs).toFixed(2)} [${Math.min(...rs).toFixed(2)}–${Math.max(...rs).toFixed(2)}] |\n`);
    }
    for (const t of ts) await t.h.stop();
  }
}
main().then(async () => { await stopAll(); rmSync(dir, { recursive: true, force: true }); },
  async (e) => { process.stderr.write(`tls-writes: ${e.stack ?? e}\n`); await stopAll(); process.exit(1); });
