import { describe, expect, it } from 'vitest';
import { TurnBudget } from '../../src/proxy/turn-budget.js';

/**
 * The turn budget's ordering (src/proxy/turn-budget.ts) on a fake clock and a fake check phase:
 * `tick(ms)` advances the clock, `checkPhase()` runs what was scheduled for this turn, as Node
 * does with immediates (those scheduled during a pass run in the next turn's check phase).
 */
function harness(budgetMs: number, costMs = 0) {
  let t = 1000;
  let immediates: (() => void)[] = [];
  const served: string[] = [];
  const tb = new TurnBudget<string, string>(budgetMs, (a, b) => { served.push(`${a}${b}`); t += costMs; }, () => t, (fn) => { immediates.push(fn); });
  return {
    tb, served,
    tick(ms: number) { t += ms; },
    /** A request arrives in the poll phase: served now (and its cost spent) or parked. */
    request(first: boolean, conn: string, n: string): boolean {
      const now = tb.admit(first, conn, n);
      if (now) { served.push(`${conn}${n}`); t += costMs; }
      return now;
    },
    checkPhase() { const run = immediates; immediates = []; for (const f of run) f(); },
    scheduled: () => immediates.length,
  };
}

describe('turn budget: ordering of requests within and across loop turns', () => {
  it('serves everything at once while a turn is short', () => {
    const h = harness(2, 0.1);
    for (let i = 0; i < 10; i++) expect(h.request(false, String.fromCharCode(97 + i), '1')).toBe(true);
    h.checkPhase();
    expect(h.served).toEqual(['a1', 'b1', 'c1', 'd1', 'e1', 'f1', 'g1', 'h1', 'i1', 'j1']);
    expect(h.tb.parkedTotal).toBe(0);
    expect(h.scheduled()).toBe(0);
  });

  it('parks keep-alive requests past the budget, never a first request, and serves the parked in arrival order in the next passes', () => {
    const h = harness(2, 0.5);
    // Turn 1, poll phase: four keep-alive requests fill the 2 ms budget, then two more are parked.
    expect(['a', 'b', 'c', 'd'].map((c) => h.request(false, c, '1'))).toEqual([true, true, true, true]);
    expect(h.request(false, 'e', '1')).toBe(false);
    expect(h.request(false, 'f', '1')).toBe(false);
    // A new connection's first request is served at once, ahead of the parked ones.
    expect(h.request(true, 'N', '1')).toBe(true);
    // While anything is parked, a keep-alive request goes behind it even in a fresh turn.
    expect(h.request(false, 'g', '1')).toBe(false);
    expect(h.served).toEqual(['a1', 'b1', 'c1', 'd1', 'N1']);
    // Check phase of turn 1: a pass of at most 2 ms (each costs 0.5 ms): e, f, g, and one more if any.
    h.checkPhase();
    expect(h.served.slice(5)).toEqual(['e1', 'f1', 'g1']);
    expect(h.tb.length).toBe(0);
    expect(h.tb.parkedTotal).toBe(3);
    expect(h.tb.parkedMax).toBe(3);
  });

  it('carries what a pass cannot serve to the next turns, FIFO, at least one per pass', () => {
    const h = harness(1, 0.4);
    h.request(false, 'a', '1'); h.request(false, 'b', '1'); h.request(false, 'c', '1');
    for (const c of 'defghij') expect(h.request(false, c, '1')).toBe(false);
    h.checkPhase(); // pass 1: d, e, f (1.2 ms ≥ 1 ms budget after the third)
    expect(h.served).toEqual(['a1', 'b1', 'c1', 'd1', 'e1', 'f1']);
    expect(h.scheduled()).toBe(1); // the rest in the next turn
    // Next turn's poll phase: a first request is served, a keep-alive one goes behind g..j.
    expect(h.request(true, 'N', '1')).toBe(true);
    expect(h.request(false, 'a', '2')).toBe(false);
    h.checkPhase();
    expect(h.served.slice(6)).toEqual(['N1', 'g1', 'h1', 'i1']);
    h.checkPhase();
    expect(h.served.slice(10)).toEqual(['j1', 'a2']);
    expect(h.scheduled()).toBe(0);
    // A pass whose first request alone exceeds the budget still serves it (progress).
    const s = harness(1, 5);
    s.request(false, 'x', '1');
    expect(s.request(false, 'y', '1')).toBe(false);
    expect(s.request(false, 'z', '1')).toBe(false);
    s.checkPhase();
    expect(s.served).toEqual(['x1', 'y1']);
    s.checkPhase();
    expect(s.served).toEqual(['x1', 'y1', 'z1']);
  });

  it('after an idle wait a turn starts at its first request, not at the last pass', () => {
    const h = harness(2, 0.5);
    h.request(false, 'a', '1');
    h.checkPhase();
    h.tick(500); // the loop slept in epoll_wait
    expect(h.request(false, 'b', '1')).toBe(true);
    expect(h.request(false, 'c', '1')).toBe(true);
  });

  it('budget 0 is off: nothing is parked, nothing scheduled', () => {
    const h = harness(0, 10);
    for (let i = 0; i < 5; i++) expect(h.request(false, 'k', String(i))).toBe(true);
    expect(h.scheduled()).toBe(0);
    expect(h.tb.parkedTotal).toBe(0);
  });
});
