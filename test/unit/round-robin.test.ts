import { describe, expect, it } from 'vitest';
import { SmoothRoundRobin } from '../../src/balance/round-robin.js';

const seq = (weights: Record<string, number>, n: number, exclude: string[] = []) => {
  const items = Object.entries(weights).map(([name, weight]) => ({ name, weight }));
  const rr = new SmoothRoundRobin(items);
  const ex = items.filter((i) => exclude.includes(i.name));
  return Array.from({ length: n }, () => rr.pick(ex.length ? ex : null)?.name ?? '-');
};

describe('smooth weighted round robin (nginx)', () => {
  it.each([
    [{ a: 5, b: 1, c: 1 }, 7, 'aabacaa'],
    [{ a: 1, b: 1 }, 4, 'abab'],
    [{ a: 1, b: 1, c: 1 }, 6, 'abcabc'],
    [{ a: 2, b: 1 }, 6, 'abaaba'],
    [{ a: 3, b: 2 }, 5, 'ababa'],
    [{ a: 0, b: 1 }, 3, 'bbb'],
    [{ a: 0 }, 2, '--'],
    [{}, 1, '-'],
  ])('%j → %s picks', (w, n, expected) => {
    expect(seq(w as Record<string, number>, n as number).join('')).toBe(expected);
  });

  it('skips excluded items (retries go elsewhere)', () => {
    expect(seq({ a: 1, b: 1, c: 1 }, 4, ['b']).join('')).toBe('acac');
    expect(seq({ a: 1 }, 2, ['a']).join('')).toBe('--');
  });

  it('fractional weights (slow start) keep proportions', () => {
    const s = seq({ a: 1, b: 0.25 }, 500);
    const b = s.filter((x) => x === 'b').length;
    expect(b).toBe(100);
  });
});
