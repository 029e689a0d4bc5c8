#!/usr/bin/env node
// `npm run bench`: pairlb (each engine) against HAProxy, nginx and direct-to-backend, on the same
// two nginx backends, with the same load generator and pinning, in interleaved rounds of one run.
// See bench/README.md for what it measures and how to read it; ../shared/bench.md for the anchors.
import { parseArgs } from 'node:util';
import { mkdtempSync, mkdirSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { execFileSync } from 'node:child_process';
import { setTimeout as sleep } from 'node:timers/promises';
import { requireBinaries, versions, cpuPlan, nofile, loadAvg, build } from './lib/env.mjs';
import { warmUntilSettled } from './lib/threads.mjs';
import { startBackends, startTarget, TARGET_NAMES, REF_TARGETS, MULTI } from './lib/targets.mjs';
import { runWrk } from './lib/wrk.mjs';
import { startNewConnProbe } from './lib/newconn.mjs';
import { stopAll, killAllSync, treeCpu, treeRssMb, cpuTimes, cpuBusyPct, cpuSeconds, processTree, httpGet } from './lib/procs.mjs';
import { summarize, scenarioTable, toJson, ratioMedian, fmt, fmtInt, median } from './lib/report.mjs';
import { categories } from './profile.mjs';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const PROFILES = join(ROOT, 'bench', 'results', 'profiles');

const USAGE = `Usage: npm run bench -- [options]

  --rounds N        interleaved rounds (default 5)
  --duration S      seconds per wrk run (default 6)
  --warmup S        seconds of warm-up per scenario and target before round 1 (default 1; at least
                    3 s per target in total)
  --quick           1 round x 2 s, warm-up 1 s (a smoke run of the harness, not a measurement)
  --connections N   wrk connections (default 64)
  --scenarios LIST  comma list (default all): small-keepalive,large-keepalive,small-close,
                    sticky-small-keepalive,sticky-large-keepalive,sticky-small-close,stats-small-keepalive,
                    saturated-newconn (wrk -c256 + a new connection every 20 ms, timed)
  --targets LIST    comma list (default: ${TARGET_NAMES.join(',')}; haproxy is always kept, it is the
                    reference); opt-in: ${REF_TARGETS.join(',')} (bench/ref/: minimal proxies, the
                    design ceilings pairlb's overhead is measured against)
  --json FILE       write { scenario: { target: { rps, p50_ms, p99_ms, rss_mb, ratio_vs_haproxy } } }
  --raw FILE        write every single run (per round) as JSON
  --node-flags STR  extra flags for the pairlb node processes (e.g. "--max-semi-space-size=64")
  --scrape-interval S  seconds between /metrics scrapes in the stats-on run (default 5; Prometheus
                    is typically 15-60)
  --no-build        do not run tsc before starting (default: build, so dist/ is never stale)
  --keep            keep the temp dir (configs, logs) instead of deleting it
  --profile         run the pairlb targets under node --cpu-prof (all rounds; costs them a few %)
                    and print, per target, where its busy CPU time went (bench/profile.mjs
                    categories: syscalls, node:http, engine, access log, pairlb, GC): what limits
                    each figure. Profiles land in bench/results/profiles/.
`;

const SCENARIOS = [
  { name: 'small-keepalive', path: '/', headers: [], sticky: false },
  { name: 'large-keepalive', path: '/large', headers: [], sticky: false },
  { name: 'small-close', path: '/', headers: ['Connection: close'], sticky: false },
  // Sticky cookie (insert, indirect, nocache). wrk keeps no cookies, so every request arrives without
  // one and is balanced, and every response carries Set-Cookie: the cookie path at its most expensive.
  // nginx OSS has no cookie insertion (that is nginx Plus `sticky cookie`): it sits these out.
  { name: 'sticky-small-keepalive', path: '/', headers: [], sticky: true },
  { name: 'sticky-large-keepalive', path: '/large', headers: [], sticky: true },
  { name: 'sticky-small-close', path: '/', headers: ['Connection: close'], sticky: true },
  // Stats page + /metrics enabled (scraped every --scrape-interval during the run) vs disabled, back to back.
  { name: 'stats-small-keepalive', path: '/', headers: [], sticky: false, stats: true },
  // Saturated by wrk -c256 while a probe opens a new connection every 20 ms (issue 12): accept and
  // first-read fairness. The probe's connect → first byte latency is reported per target.
  { name: 'saturated-newconn', path: '/', headers: [], sticky: false, conns: 256, probe: true },
];

function parseOptions(argv) {
  const { values } = parseArgs({
    args: argv,
    options: {
      rounds: { type: 'string' }, duration: { type: 'string' }, warmup: { type: 'string' }, quick: { type: 'boolean' },
      connections: { type: 'string' }, scenarios: { type: 'string' }, targets: { type: 'string' },
      json: { type: 'string' }, raw: { type: 'string' }, 'node-flags': { type: 'string' },
      'no-build': { type: 'boolean' }, keep: { type: 'boolean' }, help: { type: 'boolean', short: 'h' },
      'scrape-interval': { type: 'string' }, profile: { type: 'boolean' },
    },
  });
  if (values.help) { process.stdout.write(USAGE); process.exit(0); }
  const num = (v, d, name) => {
    if (v === undefined) return d;
    const n = Number(v);
    if (!Number.isFinite(n) || n <= 0) { process.stderr.write(`bench: --${name} expects a positive number\n`); process.exit(2); }
    return n;
  };
  const o = {
    rounds: num(values.rounds, values.quick ? 1 : 5, 'rounds'),
    duration: num(values.duration, values.quick ? 2 : 6, 'duration'),
    warmup: values.warmup === '0' ? 0 : num(values.warmup, 1, 'warmup'),
    connections: num(values.connections, 64, 'connections'),
    json: values.json, raw: values.raw, keep: !!values.keep, build: !values['no-build'],
    scrapeMs: 1000 * num(values['scrape-interval'], 5, 'scrape-interval'),
    nodeFlags: values['node-flags'] ? values['node-flags'].split(/\s+/).filter(Boolean) : [],
    profile: !!values.profile,
  };
  const list = (v, all, what) => {
    if (!v) return all;
    const xs = v.split(',').map((s) => s.trim()).filter(Boolean);
    for (const x of xs) if (!all.includes(x)) { process.stderr.write(`bench: unknown ${what} ${JSON.stringify(x)} (known: ${all.join(', ')})\n`); process.exit(2); }
    return xs;
  };
  o.scenarios = list(values.scenarios, SCENARIOS.map((s) => s.name), 'scenario').map((n) => SCENARIOS.find((s) => s.name === n));
  o.targets = values.targets ? list(values.targets, [...TARGET_NAMES, ...REF_TARGETS], 'target') : [...TARGET_NAMES];
  if (!o.targets.includes('haproxy')) o.targets.push('haproxy');
  return o;
}

/** Which targets run in a scenario, in their base order (rotated per round). */
function targetsOf(scen, available) {
  // Stats on/off compares two fresh twins that only run this scenario (same single listen, same
  // warm-up): comparing against the main pairlb process, warmed on every other scenario, measured
  // a process-history difference of ~10%, not the cost of stats.
  if (scen.stats) return ['pairlb-nostats', 'pairlb-stats'].filter((t) => available.has(t));
  const ts = [...TARGET_NAMES, ...REF_TARGETS].filter((t) => available.has(t));
  // Only targets with a sticky listener (pairlb engines, HAProxy) run the sticky scenarios.
  return scen.sticky ? ts.filter((t) => available.get(t).stickyPort) : ts;
}

const log = (s) => process.stdout.write(s + '\n');

async function main() {
  const o = parseOptions(process.argv.slice(2));
  let bins;
  try { bins = requireBinaries(); } catch (e) { process.stderr.write(`bench: ${e.message}\n`); return 1; }
  const plan = cpuPlan();
  // Keep this script (stats scraping, /proc reads) off the proxy core.
  if (plan.client !== undefined) { try { execFileSync('taskset', ['-p', '-c', String(plan.client), String(process.pid)], { stdio: 'ignore' }); } catch { /* not fatal */ } }
  if (o.build && o.targets.some((t) => t.startsWith('pairlb'))) {
    const w = build(ROOT);
    if (w) log(`note: ${w}`);
  }
  const v = versions(bins);
  const maxconn = Math.max(256, Math.min(10000, Math.floor((nofile() - 200) / 2)));
  const dir = mkdtempSync(join(tmpdir(), 'pairlb-bench-'));
  const started = new Date();
  log(`# pairlb bench ${started.toISOString()}`);
  log(`node ${v.node}, ${v.haproxy}, nginx ${v.nginx}, ${v.wrk}`);
  log(`${plan.note}; wrk -t1 -c${o.connections} -d${o.duration}s; ${o.rounds} interleaved round(s); load average at start: ${loadAvg()}`);
  log(`temp dir: ${dir}${o.keep ? ' (kept)' : ''}`);
  if (o.targets.some((t) => MULTI.has(t))) log(`two-thread targets (${o.targets.filter((t) => MULTI.has(t)).join(', ')}) run on CPUs 0-1, shared with wrk and the backends: compare them by req/CPU-s`);

  const cleanup = async () => { await stopAll(); if (!o.keep) rmSync(dir, { recursive: true, force: true }); };
  process.on('exit', killAllSync);
  for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => { log(`\nbench: ${sig}, stopping what this run started`); cleanup().finally(() => process.exit(130)); });

  const targets = new Map();
  let backends;
  try {
    backends = await startBackends(dir, bins, plan.client);
    const wanted = [...o.targets];
    if (o.scenarios.some((s) => s.stats) && o.targets.includes('pairlb')) wanted.push('pairlb-nostats', 'pairlb-stats');
    for (const name of wanted) {
      try {
        const profileDir = o.profile && name.startsWith('pairlb') ? PROFILES : undefined;
        if (profileDir) mkdirSync(profileDir, { recursive: true });
        const t = await startTarget(name, { dir, bins, cpu: plan.proxy, backends, maxconn, root: ROOT, nodeFlags: o.nodeFlags, stats: name === 'pairlb-stats', single: name === 'pairlb-nostats', profileDir });
        await sanityCheck(t, o);
        targets.set(name, t);
      } catch (e) {
        if (name === 'haproxy') throw e;
        log(`WARNING: target ${name} is left out of this run: ${e.message}`);
      }
    }
  } catch (e) {
    process.stderr.write(`bench: ${e.message}\n`);
    await cleanup();
    return 1;
  }
  const backendPids = () => backends.flatMap((b) => processTree(b.handle.pid));

  /** One wrk run against one target, with the CPU/RSS accounting around it. */
  async function measure(scen, name, round, secs) {
    const t = targets.get(name);
    const port = scen.sticky ? t.stickyPort : t.port;
    const pids = t.pids();
    const bp = backendPids();
    const c0 = treeCpu(pids), b0 = treeCpu(bp), s0 = cpuTimes(), w0 = process.hrtime.bigint();
    let wrkPid = 0, wrkCpu = 0;
    const poll = setInterval(() => { if (wrkPid) wrkCpu = Math.max(wrkCpu, cpuSeconds(wrkPid)); }, 100);
    let scrapes = 0, scrapeFail = 0;
    // First scrape 1 s into the run (so even a short run has one), then every --scrape-interval.
    const scrape = () => httpGet(t.statsPort, '/metrics').then((r) => { if (r.status === 200) scrapes++; else scrapeFail++; }, () => { scrapeFail++; });
    let scraper;
    const firstScrape = t.statsPort ? setTimeout(() => { scrape(); scraper = setInterval(scrape, o.scrapeMs); }, 1000) : undefined;
    let res;
    const probe = scen.probe ? startNewConnProbe(port) : undefined;
    let newconn;
    try {
      res = await runWrk({ url: `http://127.0.0.1:${port}${scen.path}`, secs, conns: scen.conns ?? o.connections, headers: scen.headers, cpu: plan.client, onStart: (p) => { wrkPid = p; } });
    } finally { clearInterval(poll); clearTimeout(firstScrape); clearInterval(scraper); newconn = await probe?.stop(); }
    const wall = Number(process.hrtime.bigint() - w0) / 1e9;
    const s1 = cpuTimes();
    const busy = cpuBusyPct(s0, s1);
    const cpuS = treeCpu(pids) - c0;
    const proxyCpu = pids.length ? (100 * cpuS) / wall : NaN;
    const backCpu = (100 * (treeCpu(bp) - b0)) / wall;
    const wrkPct = (100 * wrkCpu) / wall;
    const ours = (Number.isFinite(proxyCpu) ? proxyCpu : 0) + backCpu + wrkPct;
    const r = {
      scenario: scen.name, target: name, round, rps: res.rps, requests: res.requests, p50_ms: res.p50_ms, p99_ms: res.p99_ms,
      errors: res.errors, proxy_cpu_pct: proxyCpu, rss_mb: pids.length ? treeRssMb(pids) : NaN,
      // Requests per CPU-second of the proxy's own processes: far less sensitive to other tenants
      // stealing the proxy core than req/s is (a proxy that gets half the core does half the req/s
      // at the same req per CPU-second).
      req_per_cpu_s: pids.length && cpuS > 0 ? res.requests / cpuS : NaN,
      backends_cpu_pct: backCpu, wrk_cpu_pct: wrkPct, cpu0_pct: busy[0].busy, cpu1_pct: busy[1]?.busy ?? NaN,
      softirq_pct: busy.slice(0, 2).reduce((a, b) => a + b.irq, 0),
      // CPU time on the two cores not charged to wrk, the backends or the proxy: other tenants of
      // this machine. (Softirq work for loopback mostly runs in the sending process's context and
      // is charged to it, so it is not subtracted again: doing so drove this below 0 when quiet.)
      foreign_pct: busy.slice(0, 2).reduce((a, b) => a + b.busy, 0) - ours,
      scrapes: t.statsPort ? { ok: scrapes, failed: scrapeFail } : undefined,
      newconn,
    };
    return r;
  }

  const plans = o.scenarios.map((s) => ({ scen: s, targets: targetsOf(s, targets) })).filter((p) => p.targets.length);
  const runs = [];
  try {
    if (o.warmup > 0) {
      const t0 = Date.now();
      // Every target gets at least 3 s of warm-up in total (pairlb-stats runs in one scenario only,
      // pairlb in all of them: without this, the stats-on process starts colder than the other).
      const count = new Map();
      for (const p of plans) for (const t of p.targets) count.set(t, (count.get(t) ?? 0) + 1);
      for (const p of plans) for (const t of p.targets) await measure(p.scen, t, 0, Math.max(o.warmup, Math.ceil(3 / count.get(t))));
      // A pairlb data plane is warm once V8 stops compiling its hot code in the background: each
      // worker's isolate JITs on its own share of the load, so `workers: 2` takes about twice as
      // long as `workers: 1` (measured: V8's threads 14 → 1.6 µs/request after 4 s with one
      // worker, 22 → 10 → 2.5 µs only after 10 s with two). Measuring a half-warm target charged
      // that to "scaling". Extra 1 s runs until they take < 3 % of the process's CPU (warm: 1-2 %; at most 15).
      for (const p of plans) for (const t of p.targets) if (t.startsWith('pairlb')) {
        const { extra, share } = await warmUntilSettled(targets.get(t).pids(), () => measure(p.scen, t, 0, 1));
        if (extra > 0) log(`warm-up: ${t} ${p.scen.name} +${extra} s (V8 background ${(share * 100).toFixed(0)} % of its CPU)`);
      }
      log(`warm-up: ${plans.reduce((a, p) => a + p.targets.length, 0)} runs (${((Date.now() - t0) / 1000).toFixed(0)} s)`);
    }
    for (let round = 1; round <= o.rounds; round++) {
      for (const p of plans) {
        // Rotate the order each round so no target always runs first (or right after a heavy one).
        const k = (round - 1) % p.targets.length;
        const order = [...p.targets.slice(k), ...p.targets.slice(0, k)];
        for (const name of order) {
          const r = await measure(p.scen, name, round, o.duration);
          runs.push(r);
          const errs = Object.values(r.errors).reduce((a, b) => a + b, 0);
          log(`[${round}/${o.rounds}] ${p.scen.name.padEnd(22)} ${name.padEnd(17)} ${fmtInt(r.rps).padStart(7)} req/s  p99 ${fmt(r.p99_ms).padStart(6)} ms  `
            + `proxy ${Number.isFinite(r.proxy_cpu_pct) ? fmt(r.proxy_cpu_pct, 0).padStart(3) + '%' : '   –'}  rss ${Number.isFinite(r.rss_mb) ? fmt(r.rss_mb, 0).padStart(3) : '  –'} MB  `
            + `cpu0 ${fmt(r.cpu0_pct, 0).padStart(3)}% cpu1 ${fmt(r.cpu1_pct, 0).padStart(3)}% si ${fmt(r.softirq_pct, 0).padStart(3)}% other ${fmt(r.foreign_pct, 0).padStart(3)}%`
            + `  req/CPU-s ${fmtInt(r.req_per_cpu_s)}`
            + (r.newconn ? `  new-conn p50 ${fmt(r.newconn.p50_ms)} p99 ${fmt(r.newconn.p99_ms)} ms (n ${r.newconn.n}, timeouts ${r.newconn.timeouts})` : '')
            + (errs ? `  errors ${JSON.stringify(r.errors)}` : '') + (r.scrapes ? `  scrapes ${r.scrapes.ok}/${r.scrapes.ok + r.scrapes.failed}` : ''));
          await sleep(200);
        }
      }
    }
  } catch (e) {
    process.stderr.write(`bench: ${e.stack ?? e}\n`);
    await cleanup();
    return 1;
  }
  const loadEnd = loadAvg();
  await cleanup();
  // --profile: node wrote one .cpuprofile per thread at exit (CPU.<date>.<time>.<pid>.<thread>.<n>);
  // a target's data plane is its worker threads (thread > 0) when it has any, else its main thread.
  const limits = [];
  if (o.profile) {
    await sleep(300);
    mkdirSync(PROFILES, { recursive: true });
    const files = readdirSync(PROFILES).filter((f) => f.endsWith('.cpuprofile') && statSync(join(PROFILES, f)).mtimeMs >= started.getTime());
    for (const [name, t] of targets) {
      const mine = files.filter((f) => t.handle && f.split('.')[3] === String(t.handle.pid));
      const workers = mine.filter((f) => f.split('.')[4] !== '0');
      const pick = (workers.length ? workers : mine).map((f) => join(PROFILES, f));
      if (!pick.length) continue;
      const cats = categories(pick);
      limits.push(`- ${name} (${workers.length ? `${workers.length} worker thread(s)` : 'main thread'}): ${cats.slice(0, 7).map(([k, f]) => `${k} ${fmt(100 * f, 0)}%`).join(', ')}`);
    }
  }

  // ---- report ----
  const all = {};
  const byScen = (s, t) => runs.filter((r) => r.scenario === s && r.target === t);
  for (const p of plans) {
    const ref = p.scen.stats ? byScen('small-keepalive', 'haproxy') : byScen(p.scen.name, 'haproxy');
    all[p.scen.name] = {};
    for (const t of p.targets) all[p.scen.name][t] = summarize(byScen(p.scen.name, t), ref.length ? ref : undefined);
  }
  log(`\n# Results (${o.rounds} round(s) x ${o.duration}s, wrk -t1 -c${o.connections}; load average at end: ${loadEnd})`);
  log('req/s: median of rounds [min–max]; p50/p99: median of rounds; proxy CPU: the proxy\'s processes (user+sys)');
  log('as a share of one core; CPU1 busy: the whole proxy core incl. softirq (≈100% = the proxy is the bottleneck);');
  log('RSS: largest after-load value over rounds; × HAProxy: median of per-round ratios [min–max];');
  log('req/CPU-s: requests per CPU-second of the proxy process(es), the figure least disturbed by other');
  log('processes taking the proxy core (× HAProxy likewise as median of per-round ratios).');
  const checks = [];
  for (const p of plans) {
    const sums = all[p.scen.name];
    log(`\n## ${p.scen.name}${p.scen.sticky ? ' (cookie insert indirect nocache)' : ''}${p.scen.stats ? ` (pairlb undici; stats + /metrics scraped every ${o.scrapeMs / 1000} s vs disabled; × HAProxy against small-keepalive)` : ''}\n`);
    log(scenarioTable(sums, p.targets));
    const notes = [];
    if (sums.direct) {
      const proxies = Object.entries(sums).filter(([t]) => t !== 'direct');
      const [fastName, fast] = proxies.sort((a, b) => b[1].rps - a[1].rps)[0] ?? [];
      if (fast) {
        const head = sums.direct.rps / fast.rps;
        const verdict = head >= 1.3 ? 'OK, the load generator is not the bottleneck'
          : head >= 1.1 ? 'MARGINAL: the client core (wrk + backends on CPU0) is close to its cap; the fastest proxies are somewhat under-measured'
            : 'LIMITED: the client core (wrk + backends on CPU0) caps this scenario; ratios of the fastest proxies are compressed';
        notes.push(`load generator: direct ${fmt(head)}× the fastest proxy (${fastName}; CPU0 ${fmt(fast.cpu0_pct, 0)}%, CPU1 ${fmt(fast.cpu1_pct, 0)}%): ${verdict}.`);
        checks.push({ scenario: p.scen.name, direct_over_fastest: head, fastest: fastName });
      }
    }
    const other = median(Object.values(sums).map((s) => s.foreign_pct));
    const otherMax = Math.max(...Object.values(sums).map((s) => s.foreign_max));
    notes.push(`noise: CPU used by other processes of this machine during the runs: median ${fmt(other, 0)}%, worst run ${fmt(otherMax, 0)}% of one core (0% = quiet).`);
    if (sums.pairlb && sums['http-proxy']) {
      const r = ratioMedian(byScen(p.scen.name, 'pairlb'), byScen(p.scen.name, 'http-proxy'));
      const e = ratioMedian(byScen(p.scen.name, 'pairlb'), byScen(p.scen.name, 'http-proxy'), 'req_per_cpu_s');
      notes.push(`pairlb undici / http-proxy (baseline peer): ${fmt(r.median)}× [${fmt(r.min)}–${fmt(r.max)}]; per CPU-second ${fmt(e.median)}×.`);
    }
    if (p.scen.stats && sums['pairlb-nostats'] && sums['pairlb-stats']) {
      const r = ratioMedian(byScen(p.scen.name, 'pairlb-stats'), byScen(p.scen.name, 'pairlb-nostats'));
      const e = ratioMedian(byScen(p.scen.name, 'pairlb-stats'), byScen(p.scen.name, 'pairlb-nostats'), 'req_per_cpu_s');
      const sc = byScen(p.scen.name, 'pairlb-stats').reduce((a, x) => ({ ok: a.ok + (x.scrapes?.ok ?? 0), failed: a.failed + (x.scrapes?.failed ?? 0) }), { ok: 0, failed: 0 });
      notes.push(`stats+metrics enabled / disabled: ${fmt(r.median, 3)}× [${fmt(r.min, 3)}–${fmt(r.max, 3)}] (${fmt((r.median - 1) * 100, 1)}%); per CPU-second ${fmt(e.median, 3)}× (${fmt((e.median - 1) * 100, 1)}%); /metrics scrapes ok ${sc.ok}, failed ${sc.failed}.`);
    }
    // Workers (issue 12): requests per proxy CPU-second with two threads/processes ÷ with one.
    const eff = (two, one) => {
      if (!sums[two] || !sums[one]) return;
      const a = median(byScen(p.scen.name, two).map((r) => r.req_per_cpu_s)), b = median(byScen(p.scen.name, one).map((r) => r.req_per_cpu_s));
      const t = ratioMedian(byScen(p.scen.name, two), byScen(p.scen.name, one));
      notes.push(`scaling ${two} / ${one}: req/CPU-s ${fmtInt(a)} / ${fmtInt(b)} = efficiency ${fmt(a / b)}; throughput ${fmt(t.median)}× [${fmt(t.min)}–${fmt(t.max)}] (two-thread targets share both cores with wrk and the backends).`);
    };
    eff('pairlb-w2', 'pairlb-w1'); eff('pairlb-w2-log', 'pairlb-w1-log'); eff('haproxy-2', 'haproxy'); eff('nginx-2', 'nginx');
    for (const [t, base] of [['pairlb-w1-log', 'pairlb-w1'], ['pairlb-w2-log', 'pairlb-w2']]) {
      if (!sums[t] || !sums[base]) continue;
      const e = ratioMedian(byScen(p.scen.name, t), byScen(p.scen.name, base), 'req_per_cpu_s');
      notes.push(`default access log (json) on / off, ${base}: per CPU-second ${fmt(e.median)}× [${fmt(e.min)}–${fmt(e.max)}].`);
    }
    if (sums['pairlb-w2'] && sums['haproxy-2']) {
      const r = ratioMedian(byScen(p.scen.name, 'pairlb-w2'), byScen(p.scen.name, 'haproxy-2'));
      const e = ratioMedian(byScen(p.scen.name, 'pairlb-w2-log').length ? byScen(p.scen.name, 'pairlb-w2-log') : byScen(p.scen.name, 'pairlb-w2'), byScen(p.scen.name, 'haproxy-2'));
      notes.push(`every core busy: pairlb-w2 / haproxy-2 throughput ${fmt(r.median)}× [${fmt(r.min)}–${fmt(r.max)}]; with the access log on ${fmt(e.median)}×.`);
    }
    if (p.scen.probe) {
      const rows = p.targets.map((t) => {
        const xs = byScen(p.scen.name, t).map((r) => r.newconn).filter(Boolean);
        return `${t} p50 ${fmt(median(xs.map((x) => x.p50_ms)))} ms, p99 ${fmt(median(xs.map((x) => x.p99_ms)))} ms, max ${fmt(Math.max(...xs.map((x) => x.max_ms)))} ms, timeouts ${xs.reduce((a, x) => a + x.timeouts, 0)}`;
      });
      notes.push(`new connection every 20 ms under wrk -c256, connect → first response byte (median of rounds):\n  - ${rows.join('\n  - ')}`);
    }
    if (Object.values(sums).some((s) => s.errors)) notes.push('errors: some runs had socket errors or non-2xx answers (column "errors"); see --raw for details.');
    log('\n' + notes.map((n) => `- ${n}`).join('\n'));
  }

  // Targets of issue 2 (undici engine) and issue 4 (stats on/off).
  const goals = [];
  const sk = all['small-keepalive'];
  if (sk?.pairlb) {
    goals.push(goal('small keep-alive ≥ 0.35× HAProxy', sk.pairlb.ratio.median, 0.35, false, '×', `per CPU-second: ${fmt(sk.pairlb.effRatio.median)}×`));
    if (sk['http-proxy']) {
      const a = byScen('small-keepalive', 'pairlb'), b = byScen('small-keepalive', 'http-proxy');
      goals.push(goal('small keep-alive ≥ 2× http-proxy', ratioMedian(a, b).median, 2, false, '×', `per CPU-second: ${fmt(ratioMedian(a, b, 'req_per_cpu_s').median)}×`));
    }
  }
  if (all['small-close']?.pairlb) goals.push(goal('Connection: close ≥ 0.5× HAProxy', all['small-close'].pairlb.ratio.median, 0.5, false, '×', `per CPU-second: ${fmt(all['small-close'].pairlb.effRatio.median)}×`));
  const rssMax = Math.max(...Object.values(all).map((s) => s.pairlb?.rss_mb ?? NaN).filter(Number.isFinite));
  if (Number.isFinite(rssMax)) goals.push(goal('RSS ≤ 150 MB after load', rssMax, 150, true, ' MB'));
  const st = all['stats-small-keepalive'];
  if (st?.['pairlb-nostats'] && st['pairlb-stats']) {
    const r = ratioMedian(byScen('stats-small-keepalive', 'pairlb-stats'), byScen('stats-small-keepalive', 'pairlb-nostats'));
    const e = ratioMedian(byScen('stats-small-keepalive', 'pairlb-stats'), byScen('stats-small-keepalive', 'pairlb-nostats'), 'req_per_cpu_s');
    goals.push(goal('stats+metrics on vs off < 3% (issue 4)', Math.abs(1 - r.median) * 100, 3, true, '%', `per CPU-second: ${fmt((e.median - 1) * 100, 1)}%`));
  }
  if (goals.length) log(`\n## Targets (pairlb, undici engine)\n\n${goals.join('\n')}`);
  else log('\n(pairlb targets not measured in this run)');
  // Issue 12's figures: per core with the default access log, every core busy, scaling.
  const g12 = [];
  if (sk?.['pairlb-w1-log']) g12.push(goal('per core, default access log on (pairlb-w1-log / haproxy per CPU-second) ≥ 0.35×', sk['pairlb-w1-log'].effRatio.median, 0.35));
  if (sk?.['pairlb-w2-log'] && sk['haproxy-2']) {
    const r = ratioMedian(byScen('small-keepalive', 'pairlb-w2-log'), byScen('small-keepalive', 'haproxy-2'));
    const e = ratioMedian(byScen('small-keepalive', 'pairlb-w2-log'), byScen('small-keepalive', 'haproxy-2'), 'req_per_cpu_s');
    g12.push(goal('every core busy, access log on (pairlb-w2-log / haproxy-2 throughput) ≥ 0.5×', r.median, 0.5, false, '×', `per CPU-second: ${fmt(e.median)}×`));
  }
  for (const [two, one] of [['pairlb-w2-log', 'pairlb-w1-log'], ['pairlb-w2', 'pairlb-w1']]) {
    if (!sk?.[two] || !sk[one]) continue;
    const a = median(byScen('small-keepalive', two).map((r) => r.req_per_cpu_s)), b = median(byScen('small-keepalive', one).map((r) => r.req_per_cpu_s));
    g12.push(goal(`scaling efficiency ${two} / ${one} (req/CPU-s) ≥ 0.9`, a / b, 0.9));
  }
  if (g12.length) log(`\n## Targets of issue 12 (small keep-alive, default engine)\n\n${g12.join('\n')}`);
  if (limits.length) log(`\n## What limits each figure (--profile: busy CPU time of each pairlb target by owner)\n\n${limits.join('\n')}\n\nsocket writes are the syscalls and the kernel's loopback work under them (HAProxy pays them too); node:http is the client side (request parsing, IncomingMessage/ServerResponse, response head and body writes).`);

  if (o.json) { writeFileSync(o.json, JSON.stringify(toJson(all), null, 2) + '\n'); log(`\nJSON written to ${o.json}`); }
  if (o.raw) {
    writeFileSync(o.raw, JSON.stringify({ started: started.toISOString(), versions: v, plan: plan.note, options: { ...o, scenarios: o.scenarios.map((s) => s.name) }, checks, runs }, null, 2) + '\n');
    log(`raw runs written to ${o.raw}`);
  }
  return 0;
}

function goal(label, value, bound, atMost = false, unit = '×', extra = '') {
  if (!Number.isFinite(value)) return `- ${label}: not measured`;
  const ok = atMost ? value <= bound : value >= bound;
  const shown = unit === '×' ? `${fmt(value)}×` : `${fmt(value, 1)}${unit}`;
  const by = atMost ? `${fmt(value - bound, 1)}${unit} over` : `${fmt((1 - value / bound) * 100, 0)}% short`;
  return `- ${label}: ${shown} — ${ok ? 'MET' : `MISSED (${by})`}${extra ? ` (${extra})` : ''}`;
}

/** Check a target really proxies what we think before timing it (body sizes, sticky cookie). */
async function sanityCheck(t, o) {
  if (t.name === 'direct') return;
  const large = await httpGet(t.port, '/large');
  if (large.status !== 200) throw new Error(`GET /large answered ${large.status}`);
  const len = large.headers['transfer-encoding'] === 'chunked' ? -1 : large.body.length;
  if (len !== -1 && len !== 65536) throw new Error(`GET /large returned ${len} bytes, expected 65536`);
  if (t.stickyPort) {
    const r = await httpGet(t.stickyPort, '/');
    if (!/SERVERID=/.test(r.headers['set-cookie'] ?? '')) log(`WARNING: ${t.name}: the sticky listener set no SERVERID cookie (sticky scenarios measure it anyway)`);
  }
  if (t.statsPort) {
    const r = await httpGet(t.statsPort, '/metrics').catch((e) => ({ status: String(e.message) }));
    if (r.status !== 200) log(`WARNING: ${t.name}: GET /metrics on the stats address answered ${r.status}: the stats-on run has no metrics scraping`);
  }
  void o;
}

main().then((code) => { process.exitCode = code; }, async (e) => {
  process.stderr.write(`bench: ${e.stack ?? e}\n`);
  await stopAll();
  process.exitCode = 1;
});
