import { describe, expect, it } from 'vitest';
import { ADDITIVE, COUNTER_VECTOR_LENGTH, Counters, LOCAL, PEAK, addCounterDelta, counterDelta, counterVector } from '../../src/stats/counters.js';

/** The worker → control plane counter contract (src/proxy/workers.ts). */
describe('counter deltas across data-plane workers', () => {
  it('every field of Counters crosses (added or as a peak) or is declared local: a new field cannot be forgotten', () => {
    const known = new Set<string>([...ADDITIVE, ...PEAK, ...LOCAL, 'status', 'rtCounts', 'rtSum']);
    expect(Object.keys(new Counters()).filter((k) => !known.has(k))).toEqual([]);
  });

  it('two workers reporting deltas in several rounds sum to exactly their totals', () => {
    const w = [new Counters(), new Counters()];
    const sent = w.map(() => new Float64Array(COUNTER_VECTOR_LENGTH));
    const main = new Counters();
    const now = new Float64Array(COUNTER_VECTOR_LENGTH), d = new Float64Array(COUNTER_VECTOR_LENGTH);
    const report = (i: number) => { if (counterDelta(counterVector(w[i], now), sent[i], d)) addCounterDelta(main, d); };
    for (let round = 0; round < 5; round++) {
      for (let i = 0; i < 2; i++) {
        const c = w[i];
        for (let k = 0; k <= round + i; k++) { c.begin(1000 + round); c.observe(200 + 100 * k, 0.002 * k); c.bytesIn += 10; c.queued++; }
        c.cur -= round; // some finished
        report(i);
      }
    }
    expect(counterDelta(counterVector(w[0], now), sent[0], d)).toBe(false); // nothing new
    for (const k of ADDITIVE) expect([k, main[k]]).toEqual([k, w[0][k] + w[1][k]]);
    expect(main.status).toEqual(w[0].status.map((v, i) => v + w[1].status[i]));
    expect([...main.rtCounts]).toEqual([...w[0].rtCounts].map((v, i) => v + w[1].rtCounts[i]));
    expect(main.rtSum).toBeCloseTo(w[0].rtSum + w[1].rtSum, 9);
    expect(main.max).toBeGreaterThanOrEqual(Math.max(w[0].max, w[1].max));
    expect(main.max).toBeLessThanOrEqual(w[0].max + w[1].max);
    expect(main.lastSession).toBe(1004);
  });
});
