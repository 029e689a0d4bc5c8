import { describe, expect, it } from 'vitest';
import { initial, label, nextInterval, step, type RiseFall } from '../../src/health/rise-fall.js';

/** Run a sequence of results ('+' ok, '-' failed) and return the label after each and the flips. */
function run(start: boolean, seq: string, rise: number, fall: number): { labels: string[]; flips: number[] } {
  let s: RiseFall = initial(start);
  const labels: string[] = [];
  const flips: number[] = [];
  [...seq].forEach((c, i) => {
    const r = step(s, c === '+', { rise, fall });
    s = r.state;
    if (r.changed) flips.push(i);
    labels.push(label(s, { rise, fall }));
  });
  return { labels, flips };
}

describe('rise/fall counters', () => {
  it.each([
    // start, results, rise, fall, labels after each result, indexes where UP<->DOWN flips
    { start: true, seq: '+++', rise: 2, fall: 3, labels: ['UP', 'UP', 'UP'], flips: [] },
    { start: true, seq: '---', rise: 2, fall: 3, labels: ['UP 1/3', 'UP 2/3', 'DOWN'], flips: [2] },
    { start: true, seq: '--+--', rise: 2, fall: 3, labels: ['UP 1/3', 'UP 2/3', 'UP', 'UP 1/3', 'UP 2/3'], flips: [] },
    { start: true, seq: '-', rise: 2, fall: 1, labels: ['DOWN'], flips: [0] },
    { start: false, seq: '++', rise: 2, fall: 3, labels: ['DOWN 1/2', 'UP'], flips: [1] },
    { start: false, seq: '+-++', rise: 2, fall: 3, labels: ['DOWN 1/2', 'DOWN', 'DOWN 1/2', 'UP'], flips: [3] },
    { start: false, seq: '---', rise: 2, fall: 3, labels: ['DOWN', 'DOWN', 'DOWN'], flips: [] },
    { start: false, seq: '+', rise: 1, fall: 3, labels: ['UP'], flips: [0] },
    // full cycle: down after 3, up after 2, down again after 3
    { start: true, seq: '---++---', rise: 2, fall: 3, labels: ['UP 1/3', 'UP 2/3', 'DOWN', 'DOWN 1/2', 'UP', 'UP 1/3', 'UP 2/3', 'DOWN'], flips: [2, 4, 7] },
  ])('$start $seq rise=$rise fall=$fall', ({ start, seq, rise, fall, labels, flips }) => {
    expect(run(start, seq, rise, fall)).toEqual({ labels, flips });
  });

  it('keeps the same object when nothing changes (no allocation in the steady state)', () => {
    const s = initial(true);
    expect(step(s, true, { rise: 2, fall: 3 }).state).toBe(s);
    const d = initial(false);
    expect(step(d, false, { rise: 2, fall: 3 }).state).toBe(d);
  });

  it.each([
    // state, interval config, expected delay
    { s: { up: true, good: 0, bad: 0 }, iv: { interval: 2000, fastinterval: 500, downinterval: 5000 }, ms: 2000 },
    { s: { up: true, good: 0, bad: 1 }, iv: { interval: 2000, fastinterval: 500, downinterval: 5000 }, ms: 500 },
    { s: { up: false, good: 0, bad: 0 }, iv: { interval: 2000, fastinterval: 500, downinterval: 5000 }, ms: 5000 },
    { s: { up: false, good: 1, bad: 0 }, iv: { interval: 2000, fastinterval: 500, downinterval: 5000 }, ms: 500 },
    { s: { up: true, good: 0, bad: 1 }, iv: { interval: 2000 }, ms: 2000 },
    { s: { up: false, good: 0, bad: 0 }, iv: { interval: 2000 }, ms: 2000 },
    { s: { up: false, good: 1, bad: 0 }, iv: { interval: 2000, downinterval: 5000 }, ms: 2000 },
  ])('interval for $s with $iv is $ms', ({ s, iv, ms }) => {
    expect(nextInterval(s, iv)).toBe(ms);
  });
});
