/**
 * Intervals between the peer's heartbeats as this node's loop handled them, in 1 ms bins (the last
 * bin counts everything from MAX_MS up). Cumulative since start, so that a reader (the bench, a
 * dashboard) takes two snapshots and diffs the bins for any window; percentiles are read from bins.
 */
const MAX_MS = 5000;

export interface IntervalSummary {
  count: number;
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
  /** Non-zero bins: interval in ms (floor; MAX_MS = that or more) → count. */
  bins: Record<string, number>;
}

export class IntervalHistogram {
  private readonly bins = new Uint32Array(MAX_MS + 1);
  private count = 0;
  private max = 0;
  private last: number | undefined;

  /** A heartbeat arrived at `now` (ms, monotonic). */
  beat(now: number): void {
    if (this.last !== undefined) {
      const d = now - this.last;
      this.bins[Math.min(MAX_MS, Math.max(0, Math.floor(d)))]++;
      this.count++;
      if (d > this.max) this.max = d;
    }
    this.last = now;
  }

  /** The next beat starts a new series (the peer restarted, or was dead). */
  gap(): void { this.last = undefined; }

  summary(): IntervalSummary {
    const bins: Record<string, number> = {};
    for (let i = 0; i <= MAX_MS; i++) if (this.bins[i]) bins[i] = this.bins[i];
    return { count: this.count, ...percentilesOf(bins), maxMs: +this.max.toFixed(1), bins };
  }
}

/** p50/p99 (ms, bin floor) of sparse bins; for window figures pass the difference of two snapshots. */
export function percentilesOf(bins: Record<string, number>): { p50Ms: number; p99Ms: number } {
  const keys = Object.keys(bins).map(Number).sort((a, b) => a - b);
  const n = keys.reduce((s, k) => s + bins[k], 0);
  const at = (q: number): number => {
    if (!n) return 0;
    const want = Math.ceil(q * n);
    let seen = 0;
    for (const k of keys) { seen += bins[k]; if (seen >= want) return k; }
    return keys[keys.length - 1];
  };
  return { p50Ms: at(0.5), p99Ms: at(0.99) };
}

/** Bins of `b` minus those of `a` (a taken before b). */
export function diffBins(a: Record<string, number> | undefined, b: Record<string, number>): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [k, v] of Object.entries(b)) { const d = v - (a?.[k] ?? 0); if (d > 0) out[k] = d; }
  return out;
}
