// Aggregation and rendering: per scenario and target, the median of the rounds with the spread,
// and the ratio to HAProxy as the median of per-round ratios (rounds are interleaved, so each
// ratio compares two targets measured within seconds of each other; absolute req/s on a shared
// 2-core machine swing far more than ratios do).

export function median(xs) {
  const v = xs.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (v.length === 0) return NaN;
  const m = v.length >> 1;
  return v.length % 2 ? v[m] : (v[m - 1] + v[m]) / 2;
}
const min = (xs) => Math.min(...xs.filter(Number.isFinite));
const max = (xs) => Math.max(...xs.filter(Number.isFinite));

/** Per-round ratio a/b of `field` over rounds present in both, then the median. */
export function ratioMedian(runsA, runsB, field = 'rps') {
  const byRound = new Map(runsB.map((r) => [r.round, r[field]]));
  const ratios = runsA.filter((r) => byRound.get(r.round) > 0 && Number.isFinite(r[field])).map((r) => r[field] / byRound.get(r.round));
  return { median: median(ratios), min: ratios.length ? min(ratios) : NaN, max: ratios.length ? max(ratios) : NaN, n: ratios.length };
}

/**
 * Summary of one target in one scenario. RSS is the largest after-load value over the rounds (the
 * figure a limit is checked against); latency and CPU are medians over rounds.
 */
export function summarize(runs, baseline) {
  const rps = runs.map((r) => r.rps);
  const none = { median: NaN, min: NaN, max: NaN, n: 0 };
  const ratio = baseline ? ratioMedian(runs, baseline) : none;
  const effRatio = baseline ? ratioMedian(runs, baseline, 'req_per_cpu_s') : none;
  const errs = runs.reduce((a, r) => a + r.errors.connect + r.errors.read + r.errors.write + r.errors.timeout + r.errors.non2xx, 0);
  return {
    n: runs.length,
    rps: median(rps),
    rps_min: min(rps),
    rps_max: max(rps),
    p50_ms: median(runs.map((r) => r.p50_ms)),
    p99_ms: median(runs.map((r) => r.p99_ms)),
    cpu_pct: median(runs.map((r) => r.proxy_cpu_pct)),
    rss_mb: runs.some((r) => Number.isFinite(r.rss_mb)) ? max(runs.map((r) => r.rss_mb)) : NaN,
    ratio,
    eff: median(runs.map((r) => r.req_per_cpu_s)),
    effRatio,
    errors: errs,
    cpu0_pct: median(runs.map((r) => r.cpu0_pct)),
    cpu1_pct: median(runs.map((r) => r.cpu1_pct)),
    // Clamped at 0: tick-granular /proc accounting can attribute a few % more than the cores ran.
    foreign_pct: Math.max(0, median(runs.map((r) => r.foreign_pct))),
    foreign_max: Math.max(0, max(runs.map((r) => r.foreign_pct))),
  };
}

const fmtInt = (x) => (Number.isFinite(x) ? Math.round(x).toLocaleString('en-US') : '–');
const fmt = (x, d = 2) => (Number.isFinite(x) ? x.toFixed(d) : '–');

function table(head, rows) {
  const w = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (cells) => '| ' + cells.map((c, i) => (i === 0 ? c.padEnd(w[i]) : c.padStart(w[i]))).join(' | ') + ' |';
  return [line(head), '|' + w.map((x, i) => (i === 0 ? ':' : '') + '-'.repeat(x + 1) + (i === 0 ? '' : ':')).join('|') + '|', ...rows.map(line)].join('\n');
}

/** Markdown table for one scenario: one row per target. */
export function scenarioTable(sums, targets) {
  const rows = targets.filter((t) => sums[t]).map((t) => {
    const s = sums[t];
    return [
      t,
      `${fmtInt(s.rps)} [${fmtInt(s.rps_min)}–${fmtInt(s.rps_max)}]`,
      fmt(s.p50_ms), fmt(s.p99_ms),
      Number.isFinite(s.cpu_pct) ? `${fmt(s.cpu_pct, 0)}%` : '–',
      Number.isFinite(s.cpu1_pct) ? `${fmt(s.cpu1_pct, 0)}%` : '–',
      Number.isFinite(s.rss_mb) ? fmt(s.rss_mb, 0) : '–',
      Number.isFinite(s.ratio.median) ? `${fmt(s.ratio.median)} [${fmt(s.ratio.min)}–${fmt(s.ratio.max)}]` : '–',
      fmtInt(s.eff),
      Number.isFinite(s.effRatio.median) ? fmt(s.effRatio.median) : '–',
      s.errors ? String(s.errors) : '0',
    ];
  });
  return table(['target', 'req/s median [min–max]', 'p50 ms', 'p99 ms', 'proxy CPU', 'CPU1 busy', 'RSS MB', '× HAProxy [min–max]', 'req/CPU-s', '× HAProxy per CPU', 'errors'], rows);
}

/** The JSON of issue 2: { scenario: { target: { rps, p50_ms, p99_ms, rss_mb, ratio_vs_haproxy } } }. */
export function toJson(all) {
  const out = {};
  const r = (x, d) => (Number.isFinite(x) ? Number(x.toFixed(d)) : null);
  for (const [scen, sums] of Object.entries(all)) {
    out[scen] = {};
    for (const [t, s] of Object.entries(sums)) {
      out[scen][t] = { rps: r(s.rps, 0), p50_ms: r(s.p50_ms, 3), p99_ms: r(s.p99_ms, 3), rss_mb: r(s.rss_mb, 1), ratio_vs_haproxy: r(s.ratio.median, 3) };
    }
  }
  return out;
}

export { fmt, fmtInt };
