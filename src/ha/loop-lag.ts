import { monitorEventLoopDelay } from 'node:perf_hooks';

type IntervalHistogram = ReturnType<typeof monitorEventLoopDelay>;

/** Event-loop delay of one thread over the last window (ms). */
export interface LagSnapshot { p50Ms: number; p99Ms: number; maxMs: number; windowMs: number }

/**
 * Event-loop lag of the calling thread (each thread or process measures its own: main, the HA
 * loop, data-plane workers). perf_hooks' histogram samples with a libuv timer every `resolution`
 * ms, outside of JS, so measuring costs nothing per request. Figures are over the last full window
 * (10 s by default) and the current one, whichever has the larger maximum, so a stall is visible
 * for at least one window after it happened.
 */
export class LoopLag {
  private readonly h: IntervalHistogram;
  private last: LagSnapshot = { p50Ms: 0, p99Ms: 0, maxMs: 0, windowMs: 0 };
  private since = performance.now();

  constructor(private readonly windowMs = 10_000, private readonly resolution = 10) {
    this.h = monitorEventLoopDelay({ resolution });
    this.h.enable();
  }

  snapshot(now = performance.now()): LagSnapshot {
    const cur = this.read(now - this.since);
    if (now - this.since >= this.windowMs) {
      this.last = cur;
      this.h.reset();
      this.since = now;
    }
    return cur.maxMs >= this.last.maxMs ? cur : this.last;
  }

  private read(windowMs: number): LagSnapshot {
    const h = this.h;
    if (h.count === 0) return { p50Ms: 0, p99Ms: 0, maxMs: 0, windowMs: Math.round(windowMs) };
    // The histogram records the whole gap between two runs of its timer (10.1 ms idle with a 10 ms
    // resolution, measured): the timer's own period is not lag.
    const ms = (ns: number): number => Math.max(0, +(ns / 1e6 - this.resolution).toFixed(2));
    return { p50Ms: ms(h.percentile(50)), p99Ms: ms(h.percentile(99)), maxMs: ms(h.max), windowMs: Math.round(windowMs) };
  }

  close(): void { this.h.disable(); }
}
