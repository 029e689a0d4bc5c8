#!/usr/bin/env node
// `npm run bench:https`: HTTPS through pairlb, HAProxy and nginx, the same ECDSA P-256 certificate
// (made here with openssl), the same two nginx backends, the same pinning (proxy on CPU1, load
// generator + backends on CPU0), interleaved rounds of one run. Scenarios:
//   keepalive  wrk -c64 over keep-alive TLS connections: requests/s
//   full       16 × `openssl s_time -new -www /`: a new connection per request, no session
//              offered, so every request is a full handshake
//   resumed    16 × `openssl s_time -reuse -www /`: a new connection per request offering the
//              session of the first one, so every request after it is a resumed handshake
//              (wrk with `Connection: close` resumes only part of its reconnects under TLS 1.3)
// The kind of handshake is checked, not assumed: pairlb's own counters (full vs resumed) are read
// around each pairlb run and printed. Ratios are the median of per-round ratios to HAProxy; req per
// proxy CPU-second is the per-core figure (bench.md).
import { parseArgs } from 'node:util';
import { spawn } from 'node:child_process';
import { mkdtempSync, openSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { requireBinaries, versions, cpuPlan, loadAvg, build, nofile } from './lib/env.mjs';
import { startBackends, startTarget } from './lib/targets.mjs';
import { certs, tlsAlpn, waitFor } from './lib/tls.mjs';
import { runWrk } from './lib/wrk.mjs';
import { stopAll, killAllSync, treeCpu, treeRssMb, freePort, startPinned, processTree } from './lib/procs.mjs';
import { median, ratioMedian, fmt, fmtInt } from './lib/report.mjs';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const USAGE = `Usage: npm run bench:https -- [--rounds N] [--duration S] [--scenarios keepalive,full,resumed] [--targets LIST] [--base DIR] [--engine undici|native] [--profile DIR] [--json FILE] [--keep] [--no-build]
  --targets  default pairlb,haproxy,nginx; also pairlb-plain, haproxy-plain, ref-undici-plain, ref-lean-plain (the same
             process over plain HTTP on a second front end: keep-alive only; TLS's own cost per request is
             the difference), ref-undici (bench/ref/undici-dispatch.mjs on node:https: the smallest Node
             proxy), ref-lean (bench/ref/ref-lean.mjs over tls.Server: the lean front's design) and
             pairlb-base (needs --base)
  --base     another checkout (its dist/ built) run as pairlb-base: an A/B of two builds in one run
  --profile  write pairlb's --cpu-prof profile to DIR (summarize: node bench/profile.mjs --summarize FILE)
  --warmup   seconds of keep-alive load per target before the rounds, not counted (default 1)\n`;

const { values } = parseArgs({ options: {
  rounds: { type: 'string' }, duration: { type: 'string' }, scenarios: { type: 'string' }, json: { type: 'string' },
  keep: { type: 'boolean' }, engine: { type: 'string' }, targets: { type: 'string' }, base: { type: 'string' }, profile: { type: 'string' }, warmup: { type: 'string' }, 'no-build': { type: 'boolean' }, help: { type: 'boolean', short: 'h' }, quick: { type: 'boolean' },
} });
if (values.help) { process.stdout.write(USAGE); process.exit(0); }
const ROUNDS = Number(values.rounds ?? (values.quick ? 1 : 3));
const SECS = Number(values.duration ?? (values.quick ? 2 : 5));
const SCEN = (values.scenarios ?? 'keepalive,full,resumed').split(',');
const WARMUP = Number(values.warmup ?? 1);
const TARGETS = (values.targets ?? 'pairlb,haproxy,nginx').split(',');
const KNOWN = ['pairlb', 'pairlb-base', 'pairlb-plain', 'haproxy', 'haproxy-plain', 'nginx', 'ref-undici', 'ref-undici-plain', 'ref-lean', 'ref-lean-plain'];
for (const t of TARGETS) if (!KNOWN.includes(t)) { process.stderr.write(`bench:https: unknown target ${t} (known: ${KNOWN.join(', ')})\n`); process.exit(2); }
if (!TARGETS.includes('haproxy')) { process.stderr.write('bench:https: the targets must include haproxy (ratios are to it)\n'); process.exit(2); }
if (TARGETS.includes('pairlb-base') && !values.base) { process.stderr.write('bench:https: pairlb-base needs --base DIR\n'); process.exit(2); }
/** A plain target is the same process as its TLS twin, reached on its plain front end. */
const PLAIN = { 'pairlb-plain': 'pairlb', 'haproxy-plain': 'haproxy', 'ref-undici-plain': 'ref-undici', 'ref-lean-plain': 'ref-lean' };
/** The reference proxies (bench/ref/) that also serve TLS with REF_TLS_*. */
const REFS = { 'ref-undici': 'undici-dispatch.mjs', 'ref-lean': 'ref-lean.mjs' };
/** The processes to start: the TLS targets, and the twin of each plain one. */
const PROCS = [...new Set(TARGETS.map((t) => PLAIN[t] ?? t))];

const bins = requireBinaries();
const cpu = cpuPlan();
const dir = mkdtempSync(join(tmpdir(), 'pairlb-bench-https-'));
process.on('SIGINT', () => { killAllSync(); process.exit(130); });

/**
 * Every target on one TLS front end named `tls` (ALPN http/1.1), same certificate, same backends,
 * and a plain one named `plain` (read only by the -plain targets). pairlb-base is pairlb from
 * --base (engine undici; --engine applies to pairlb only).
 */
async function startTargets(c, backends) {
  const out = {};
  const fronts = [{ name: 'tls', tls: c }, { name: 'plain' }];
  const maxconn = Math.floor((nofile() - 200) / 2);
  const pairlb = values.engine === 'native' ? 'pairlb-native' : 'pairlb';
  for (const name of PROCS) {
    if (REFS[name]) { out[name] = await startRef(name, c, backends); continue; }
    const root = name === 'pairlb-base' ? resolve(values.base) : ROOT;
    const profileDir = name === 'pairlb' && values.profile ? resolve(values.profile) : undefined;
    out[name] = await startTarget(name === 'pairlb' ? pairlb : name, { dir, bins, cpu: cpu.proxy, backends, maxconn, root, fronts, profileDir, stats: name.startsWith('pairlb') });
  }
  return out;
}

/**
 * ref-undici: bench/ref/undici-dispatch.mjs (the smallest node:http + undici proxy) on a plain port
 * and, with REF_TLS, the same handler on node:https: what TLS costs a Node proxy with nothing else
 * in it (the ref-undici / ref-undici-plain pair), against what it costs pairlb. ref-lean: the same
 * for bench/ref/ref-lean.mjs (no node:http; llhttp consumes the TLSWrap handle): what TLS costs
 * the lean HTTP/1 front's design.
 */
async function startRef(name, c, backends) {
  const plain = await freePort(); const port = await freePort();
  const handle = startPinned(name, cpu.proxy, process.execPath, [join(ROOT, 'bench/ref', REFS[name]), String(plain), ...backends.map((b) => String(b.port))],
    { logFd: openSync(join(dir, `${name}.out`), 'a'), env: { ...process.env, REF_TLS_PORT: String(port), REF_TLS_CERT: c.chain, REF_TLS_KEY: c.key } });
  await waitFor(() => tlsAlpn(port), handle, `TLS on ${port}`);
  return { name, port, ports: { tls: port, plain }, handle, pids: () => processTree(handle.pid) };
}

/**
 * Full handshakes: `openssl s_time -new -www /` (a new connection, no session offered, one HTTP/1.0
 * GET per connection), 16 processes at once so the proxy, not one client's round trips, is the
 * limit. (h2load and wrk both resume the sessions of their reconnects: measured, pairlb counted
 * 822 of 830 h2load reconnects as resumed.) Result: connections (= requests) per second.
 */
function runSTime(port, secs, mode = '-new', procs = 16) {
  const one = () => new Promise((ok) => {
    const ch = spawn('taskset', ['-c', String(cpu.client ?? 0), 'openssl', 's_time', '-connect', `127.0.0.1:${port}`, mode, '-time', String(secs), '-www', '/'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    ch.stdout.on('data', (d) => { out += d; });
    ch.stderr.on('data', (d) => { out += d; });
    const guard = setTimeout(() => ch.kill('SIGKILL'), (secs + 30) * 1000);
    ch.on('close', () => { clearTimeout(guard); const m = /(\d+) connections in (\d+) real seconds/.exec(out); ok(m ? { n: Number(m[1]), s: Number(m[2]) } : { n: 0, s: secs, err: out.slice(-300) }); });
  });
  return Promise.all(Array.from({ length: procs }, one)).then((rs) => ({
    rps: rs.reduce((a, r) => a + r.n / Math.max(1, r.s), 0),
    errors: rs.filter((r) => r.err).length,
  }));
}

async function handshakes(statsPort) {
  const t = await (await fetch(`http://127.0.0.1:${statsPort}/metrics`)).text();
  const g = (k) => Number(new RegExp(`^pairlb_tls_handshakes_total\\{listen="tls",kind="${k}"\\} (\\d+)$`, 'm').exec(t)?.[1] ?? NaN);
  return { full: g('full'), resumed: g('resumed') };
}

async function main() {
  process.stdout.write(`# HTTPS bench ${new Date().toISOString()}\n${cpu.note}; load ${loadAvg()}\n`);
  const v = versions(bins);
  process.stdout.write(`node ${process.version}; ${Object.entries(v).map(([k, x]) => `${k}: ${x}`).join('; ')}\n`);
  if (!values['no-build']) { const b = build(ROOT); if (b) process.stdout.write(b + '\n'); }
  const c = certs(dir);
  const backends = await startBackends(dir, bins, cpu.client);
  const targets = await startTargets(c, backends);
  // Warm-up, not counted: the first TLS connections of a process load and compile node:tls's JS
  // (measured: a fresh bench/ref proxy spent ~5 ms per handshake in its first run on a loaded
  // machine), which a short first round would book as keep-alive cost.
  if (WARMUP > 0 && SCEN.includes('keepalive')) {
    for (const name of TARGETS) {
      const t = targets[PLAIN[name] ?? name];
      const url = PLAIN[name] ? `http://127.0.0.1:${t.ports.plain}/` : `https://127.0.0.1:${t.port}/`;
      await runWrk({ url, secs: WARMUP, conns: 64, cpu: cpu.client ?? 0 });
    }
  }
  const runs = {};
  const kinds = {};
  for (let round = 1; round <= ROUNDS; round++) {
    for (const sc of SCEN) {
      // Interleaved, the order rotating per round so no target always runs right after another.
      const order = TARGETS.map((_, i) => TARGETS[(i + round) % TARGETS.length]);
      for (const name of order) {
        const plain = PLAIN[name] !== undefined;
        if (plain && sc !== 'keepalive') continue;
        const t = targets[PLAIN[name] ?? name];
        const url = plain ? `http://127.0.0.1:${t.ports.plain}/` : `https://127.0.0.1:${t.port}/`;
        const hs0 = name === 'pairlb' ? await handshakes(t.statsPort) : undefined;
        const cpu0 = treeCpu(t.pids());
        const t0 = performance.now();
        let r;
        if (sc === 'full' || sc === 'resumed') r = await runSTime(t.port, SECS, sc === 'full' ? '-new' : '-reuse');
        else {
          const w = await runWrk({ url, secs: SECS, conns: 64, cpu: cpu.client ?? 0 });
          r = { rps: w.rps, errors: w.errors.connect + w.errors.read + w.errors.write + w.errors.timeout + w.errors.non2xx };
        }
        const wall = (performance.now() - t0) / 1000;
        const cpuS = treeCpu(t.pids()) - cpu0;
        const rss = treeRssMb(t.pids());
        if (hs0) {
          const hs1 = await handshakes(t.statsPort);
          (kinds[sc] ??= []).push({ full: hs1.full - hs0.full, resumed: hs1.resumed - hs0.resumed });
        }
        const reqs = r.rps * SECS;
        const run = { round, rps: r.rps, errors: r.errors, cpu_s: cpuS, req_per_cpu_s: cpuS > 0 ? reqs / cpuS : NaN, rss_mb: rss, wall };
        ((runs[sc] ??= {})[name] ??= []).push(run);
        process.stdout.write(`round ${round} ${sc.padEnd(9)} ${name.padEnd(13)} ${fmtInt(r.rps).padStart(7)} req/s  ${fmtInt(run.req_per_cpu_s).padStart(7)} req/CPU-s  errors ${r.errors}\n`);
      }
    }
  }
  const out = {};
  process.stdout.write('\n');
  for (const sc of SCEN) {
    process.stdout.write(`## ${sc}\n| target | req/s median [min–max] | × HAProxy | req/CPU-s | × HAProxy per CPU-s | RSS MB | errors |\n|:--|--:|--:|--:|--:|--:|--:|\n`);
    for (const name of TARGETS) {
      const rs = runs[sc][name];
      if (!rs) continue;
      // A plain target is compared with HAProxy over plain HTTP when that ran too.
      const ref = PLAIN[name] !== undefined && runs[sc]['haproxy-plain'] ? runs[sc]['haproxy-plain'] : runs[sc].haproxy;
      const ratio = ratioMedian(rs, ref);
      const eff = ratioMedian(rs, ref, 'req_per_cpu_s');
      const rps = rs.map((x) => x.rps);
      (out[sc] ??= {})[name] = { rps: median(rps), ratio_vs_haproxy: ratio.median, req_per_cpu_s: median(rs.map((x) => x.req_per_cpu_s)), per_cpu_ratio_vs_haproxy: eff.median, rss_mb: Math.max(...rs.map((x) => x.rss_mb)) };
      process.stdout.write(`| ${name} | ${fmtInt(median(rps))} [${fmtInt(Math.min(...rps))}–${fmtInt(Math.max(...rps))}] | ${fmt(ratio.median)} | ${fmtInt(median(rs.map((x) => x.req_per_cpu_s)))} | ${fmt(eff.median)} | ${fmt(Math.max(...rs.map((x) => x.rss_mb)), 0)} | ${rs.reduce((a, x) => a + x.errors, 0)} |\n`);
    }
    // TLS's own CPU per request: (1 / req-per-CPU-s over TLS) - (1 / over plain HTTP), same process.
    for (const [plain, tls] of Object.entries(PLAIN)) {
      const a = runs[sc][plain], b = runs[sc][tls];
      if (!a || !b) continue;
      const us = median(b.map((x) => 1e6 / x.req_per_cpu_s)) - median(a.map((x) => 1e6 / x.req_per_cpu_s));
      process.stdout.write(`${tls}: TLS costs ${fmt(us, 1)} µs of CPU per request beyond plain HTTP (medians)\n`);
      (out[sc].tls_cost_us ??= {})[tls] = us;
    }
    if (kinds[sc]) process.stdout.write(`pairlb handshakes during its ${sc} runs: ${kinds[sc].map((k) => `${k.full} full / ${k.resumed} resumed`).join('; ')}\n`);
    process.stdout.write('\n');
  }
  if (values.json) writeFileSync(values.json, JSON.stringify({ date: new Date().toISOString(), rounds: ROUNDS, secs: SECS, results: out, handshakes: kinds }, null, 1) + '\n');
}

main().then(async () => { await stopAll(); if (!values.keep) rmSync(dir, { recursive: true, force: true }); else process.stdout.write(`kept ${dir}\n`); },
  async (e) => { process.stderr.write(`bench:https: ${e.stack ?? e}\n`); await stopAll(); process.exit(1); });
