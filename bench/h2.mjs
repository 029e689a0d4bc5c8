#!/usr/bin/env node
// `npm run bench:h2`: HTTP/2 to the proxy, HTTP/1.1 keep-alive to the backends, through pairlb,
// HAProxy and nginx in one run. Every target serves the same ECDSA P-256 certificate on a TLS bind
// (ALPN h2,http/1.1: HAProxy `alpn h2,http/1.1`, nginx `listen … ssl http2`) and, as a second
// scenario, prior-knowledge h2c on a plain bind (HAProxy `proto h2`, nginx `listen … http2`). The
// backends are the bench's usual two nginx processes (bench/lib/targets.mjs).
//
// Load: `h2load -t1 -c10 -m100` (100 streams on each of 10 connections: 1000 requests in flight),
// pinned with the backends to CPU0; single-thread targets on CPU1; `workers: 2` / nbthread 2 /
// worker_processes 2 on both CPUs (compare those by requests per proxy CPU-second, bench.md).
// Ratios are medians of per-round ratios to HAProxy with the same thread count (rounds
// interleaved, order rotating).
//
// pairlb joins when its build speaks HTTP/2: a pairlb whose HTTP/2 GET fails at start is reported
// and left out, so the harness measures the peers alone on a build without h2.
import { parseArgs } from 'node:util';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { requireBinaries, ensureBinary, versions, cpuPlan, loadAvg, build, nofile } from './lib/env.mjs';
import { startBackends, startTarget, MULTI } from './lib/targets.mjs';
import { runH2load } from './lib/h2load.mjs';
import { certs } from './lib/tls.mjs';
import { pairlbH2Extra } from './lib/configs.mjs';
import { stopAll, killAllSync, treeCpu, treeRssMb, cpuTimes, cpuBusyPct, tcpConnsTo } from './lib/procs.mjs';
import { median, ratioMedian, fmt, fmtInt } from './lib/report.mjs';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const ALL = ['pairlb-w1', 'haproxy', 'nginx', 'pairlb-w2', 'haproxy-2', 'nginx-2'];
const USAGE = `Usage: npm run bench:h2 -- [options]
  --rounds N         interleaved rounds (default 3)
  --duration S       about this many seconds per h2load run (default 5): h2load -n <the target's
                     warm-up rate × S>, not -D (see bench/lib/h2load.mjs)
  --warmup S         (unused: the warm-up is a fixed 2 × conns × streams requests; it sets
                     each target's request count per run to its rate × --duration)
  --scenarios LIST   tls,h2c (default both)
  --targets LIST     default ${ALL.join(',')} (also: pairlb = workers 0, the default config);
                     haproxy (and haproxy-2 when a 2-thread target runs) are always kept
  --conns N          h2load -c (default 10)
  --streams N        h2load -m (default 100)
  --pairlb-extra Y   YAML lines added to pairlb's listen sections (e.g. to try h2 window settings)
  --compare DIR      A/B of two builds in one run: each pairlb target also runs as <target>@b from
                     DIR (another checkout with its own dist/, e.g. \`git worktree add\` of the
                     commit before a change); its ratio is printed against this build's
  --json FILE        write the summary as JSON
  --keep             keep the temp dir (configs, logs)
  --no-build         use dist/ as it is
`;

const { values } = parseArgs({ options: {
  rounds: { type: 'string' }, duration: { type: 'string' }, warmup: { type: 'string' }, scenarios: { type: 'string' },
  targets: { type: 'string' }, conns: { type: 'string' }, streams: { type: 'string' }, json: { type: 'string' },
  'pairlb-extra': { type: 'string' }, compare: { type: 'string' }, keep: { type: 'boolean' }, 'no-build': { type: 'boolean' }, quick: { type: 'boolean' }, help: { type: 'boolean', short: 'h' },
} });
if (values.help) { process.stdout.write(USAGE); process.exit(0); }
const ROUNDS = Number(values.rounds ?? (values.quick ? 1 : 3));
const SECS = Number(values.duration ?? (values.quick ? 2 : 5));
const WARM = Number(values.warmup ?? 2);
const CONNS = Number(values.conns ?? 10);
const STREAMS = Number(values.streams ?? 100);
const SCEN = (values.scenarios ?? 'tls,h2c').split(',');
let TARGETS = (values.targets ?? ALL.join(',')).split(',');
if (!TARGETS.includes('haproxy')) TARGETS.unshift('haproxy');
if (TARGETS.some((t) => MULTI.has(t)) && !TARGETS.includes('haproxy-2')) TARGETS.push('haproxy-2');
const ALT = values.compare ? resolve(values.compare) : undefined;
if (ALT) TARGETS = TARGETS.flatMap((t) => (t.startsWith('pairlb') ? [t, `${t}@b`] : [t]));

/** The peer a target's ratio is taken to: HAProxy with the same number of threads. */
const peerOf = (t) => (MULTI.has(t.replace(/@\w+$/, '')) ? 'haproxy-2' : 'haproxy');

/** pairlb's own keys for each front end (`h2: true` / `h2c: true`, docs/http2.md) plus --pairlb-extra. */
const EXTRA = values['pairlb-extra'] ? `${values['pairlb-extra'].replace(/\\n/g, '\n').replace(/^(?! {4})/gm, '    ')}\n` : '';
const PAIRLB_FRONT = { tls: pairlbH2Extra('tls', EXTRA), h2c: pairlbH2Extra('h2c', EXTRA) };

const bins = requireBinaries();
bins.h2load = ensureBinary('h2load', 'nghttp2-client');
const cpu = cpuPlan();
const dir = mkdtempSync(join(tmpdir(), 'pairlb-bench-h2-'));
process.on('SIGINT', () => { killAllSync(); process.exit(130); });

async function startAll(c, backends) {
  const maxconn = Math.floor((nofile() - 200) / 2);
  const out = {};
  const fronts = (names) => names.map((n) => ({ name: n, tls: n === 'tls' ? c : undefined, h2: true, extra: PAIRLB_FRONT[n] }));
  for (const name of TARGETS) {
    const opts = { dir, bins, cpu: cpu.proxy, backends, maxconn, root: ROOT, altRoot: ALT };
    if (!name.startsWith('pairlb')) { out[name] = await startTarget(name, { ...opts, fronts: fronts(SCEN) }); continue; }
    // pairlb: both fronts; a build without h2c gets the TLS front alone; without h2 at all, none.
    const tries = SCEN.includes('h2c') && SCEN.includes('tls') ? [SCEN, ['tls']] : [SCEN];
    for (const names of tries) {
      try { out[name] = await startTarget(name, { ...opts, fronts: fronts(names) }); break; } catch (e) {
        process.stdout.write(`${name} without ${names.join('+')}: ${String(e.message).split('\n').slice(0, 4).join(' | ')}\n`);
      }
    }
  }
  return out;
}

/** Requests per run, per target and scenario: the warm-up's rate × --duration (h2load -n, see runH2load). */
const budget = new Map();

async function oneRun(t, sc, secs, bports, warm = false) {
  const url = `${sc === 'tls' ? 'https' : 'http'}://127.0.0.1:${t.ports[sc]}/`;
  const cpu0 = treeCpu(t.pids());
  const c0 = cpuTimes();
  let upstream = NaN;
  const mid = setTimeout(() => { upstream = tcpConnsTo(t.pids(), bports); }, secs * 300);
  let r;
  // An A/B pair (--compare) runs the same request count: the base target's.
  const key = `${t.name.replace(/@\w+$/, '')} ${sc}`;
  const requests = warm ? Math.max(2000, CONNS * STREAMS * 2) : budget.get(key) ?? Math.max(2000, CONNS * STREAMS * 2);
  try { r = await runH2load({ bin: bins.h2load, url, secs: Math.max(secs, 30), requests, conns: CONNS, streams: STREAMS, cpu: cpu.client ?? 0 }); } catch (e) {
    // A run whose h2load summary is missing counts as failed (it is not a measurement), not as the bench's end.
    clearTimeout(mid);
    process.stdout.write(`${t.name} ${sc}: h2load failed: ${String(e.message).split('\n').slice(-3).join(' | ')}\n`);
    return { rps: NaN, succeeded: 0, errors: 1, protocol: '?', cpu_s: NaN, cores: NaN, req_per_cpu_s: NaN, rss_mb: treeRssMb(t.pids()), upstream, cpu_busy: [] };
  }
  clearTimeout(mid);
  if (warm && r.secs > 0 && !budget.has(key)) budget.set(key, Math.max(CONNS * STREAMS * 2, Math.round((r.succeeded / r.secs) * SECS)));
  const cpuS = treeCpu(t.pids()) - cpu0;
  const busy = cpuBusyPct(c0, cpuTimes());
  return {
    rps: r.succeeded / r.secs, succeeded: r.succeeded, errors: r.failed + r.errored + r.timeout + r.non2xx, protocol: r.protocol,
    cpu_s: cpuS, cores: cpuS / r.secs, req_per_cpu_s: cpuS > 0 ? r.succeeded / cpuS : NaN, rss_mb: treeRssMb(t.pids()),
    upstream, cpu_busy: busy.map((b) => Math.round(b.busy)),
  };
}

async function main() {
  process.stdout.write(`# HTTP/2 bench ${new Date().toISOString()}\n${cpu.note}; load ${loadAvg()}\n`);
  const v = versions(bins);
  process.stdout.write(`node ${process.version}; ${Object.entries(v).map(([k, x]) => `${k}: ${x}`).join('; ')}; ${(await import('node:child_process')).execFileSync(bins.h2load, ['--version'], { encoding: 'utf8' }).trim()}\n`);
  process.stdout.write(`h2load -t1 -c${CONNS} -m${STREAMS} -n<warm-up rate × ${SECS} s>; ${ROUNDS} rounds; scenarios ${SCEN.join(',')}\n`);
  if (!values['no-build']) { const b = build(ROOT); if (b) process.stdout.write(b + '\n'); }
  const c = certs(dir);
  const backends = await startBackends(dir, bins, cpu.client);
  const bports = backends.map((b) => b.port);
  const targets = await startAll(c, backends);
  const names = TARGETS.filter((n) => targets[n]);
  const has = (n, sc) => targets[n]?.ports?.[sc] !== undefined;
  // Warm-up (JIT, upstream pools) and the request count of each target's runs (its rate × --duration).
  for (const sc of SCEN) for (const n of names) if (has(n, sc)) await oneRun(targets[n], sc, WARM, bports, true);
  const runs = {};
  for (let round = 1; round <= ROUNDS; round++) {
    for (const sc of SCEN) {
      // Interleaved, rotating per round. With --compare the two builds of a target run back to
      // back, each first in every other round (an A/A run measured +9–16 % for whichever ran in
      // the better slot of a plain rotation).
      const order = ALT
        ? names.filter((n) => !n.endsWith('@b')).flatMap((n) => (names.includes(`${n}@b`) ? (round % 2 ? [n, `${n}@b`] : [`${n}@b`, n]) : [n]))
        : names.map((_, i) => names[(i + round) % names.length]);
      for (const n of order) {
        if (!has(n, sc)) continue;
        const r = { round, ...(await oneRun(targets[n], sc, SECS, bports)) };
        ((runs[sc] ??= {})[n] ??= []).push(r);
        process.stdout.write(`round ${round} ${sc.padEnd(4)} ${n.padEnd(10)} ${r.protocol.padEnd(3)} ${fmtInt(r.rps).padStart(7)} req/s ${fmtInt(r.req_per_cpu_s).padStart(7)} req/CPU-s  cores ${fmt(r.cores)}  upstream ${r.upstream}  cpu% ${r.cpu_busy.join('/')}  errors ${r.errors}\n`);
      }
    }
  }
  const out = {};
  process.stdout.write('\n');
  for (const sc of SCEN) {
    if (!runs[sc]) continue;
    process.stdout.write(`## ${sc === 'tls' ? 'h2 over TLS (ALPN h2)' : 'h2c (prior knowledge)'}: h2load -c${CONNS} -m${STREAMS}\n`);
    process.stdout.write('| target | req/s median [min–max] | × HAProxy | req/CPU-s | × HAProxy per CPU-s | proxy cores | upstream conns | RSS MB | errors |\n|:--|--:|--:|--:|--:|--:|--:|--:|--:|\n');
    for (const n of names) {
      const rs = runs[sc][n];
      if (!rs) continue;
      const peer = runs[sc][peerOf(n)] ?? [];
      const ratio = ratioMedian(rs, peer);
      const eff = ratioMedian(rs, peer, 'req_per_cpu_s');
      const rps = rs.map((x) => x.rps);
      const row = {
        rps: median(rps), rps_min: Math.min(...rps), rps_max: Math.max(...rps), peer: peerOf(n),
        ratio_vs_haproxy: ratio.median, req_per_cpu_s: median(rs.map((x) => x.req_per_cpu_s)), per_cpu_ratio_vs_haproxy: eff.median,
        per_cpu_ratio_min: eff.min, per_cpu_ratio_max: eff.max,
        cores: median(rs.map((x) => x.cores)), upstream: median(rs.map((x) => x.upstream)), rss_mb: Math.max(...rs.map((x) => x.rss_mb)),
        errors: rs.reduce((a, x) => a + x.errors, 0), protocol: rs[0].protocol,
      };
      (out[sc] ??= {})[n] = row;
      const vs = n === peerOf(n) ? '1.00' : `${fmt(ratio.median)} (${peerOf(n)})`;
      process.stdout.write(`| ${n} | ${fmtInt(row.rps)} [${fmtInt(row.rps_min)}–${fmtInt(row.rps_max)}] | ${vs} | ${fmtInt(row.req_per_cpu_s)} | ${n === peerOf(n) ? '1.00' : `${fmt(eff.median)} [${fmt(eff.min)}–${fmt(eff.max)}]`} | ${fmt(row.cores)} | ${fmtInt(row.upstream)} | ${fmt(row.rss_mb, 0)} | ${row.errors} |\n`);
    }
    const eff = (a, b) => {
      const x = out[sc][a]?.req_per_cpu_s, y = out[sc][b]?.req_per_cpu_s;
      return x && y ? `${a} ÷ ${b} ${fmt(x / y)}` : undefined;
    };
    const notes = [eff('pairlb-w2', 'pairlb-w1'), eff('haproxy-2', 'haproxy'), eff('nginx-2', 'nginx')].filter(Boolean);
    if (notes.length) process.stdout.write(`scaling (req/CPU-s with 2 threads ÷ 1): ${notes.join('; ')}\n`);
    for (const n of names.filter((x) => x.endsWith('@b') && runs[sc][x] && runs[sc][x.slice(0, -2)])) {
      const ab = ratioMedian(runs[sc][n.slice(0, -2)], runs[sc][n], 'req_per_cpu_s');
      process.stdout.write(`A/B ${n.slice(0, -2)} (this build) ÷ ${n} (${ALT}) per CPU-s: ${fmt(ab.median)} [${fmt(ab.min)}–${fmt(ab.max)}] over ${ab.n} rounds\n`);
    }
    process.stdout.write('\n');
  }
  if (values.json) writeFileSync(values.json, JSON.stringify({ date: new Date().toISOString(), rounds: ROUNDS, secs: SECS, conns: CONNS, streams: STREAMS, load: loadAvg(), results: out, runs }, null, 1) + '\n');
}

main().then(async () => { await stopAll(); if (!values.keep) rmSync(dir, { recursive: true, force: true }); else process.stdout.write(`kept ${dir}\n`); },
  async (e) => { process.stderr.write(`bench:h2: ${e.stack ?? e}\n`); await stopAll(); process.exit(1); });
