import { describe, expect, it } from 'vitest';
import { mulberry32 } from '../helpers/rng.js';
import { check, encode, ReplayGuard, MsgType, type Packet } from '../../src/ha/advert.js';
import { LogThrottle } from '../../src/ha/throttle.js';

/**
 * The replay rules (src/ha/replay.ts) as a simulation: a sender S and a receiver R restart at
 * random, S's packets are all captured, some are delivered, some lost, and after every step the
 * attacker replays everything captured to R. Invariant: R acts on a packet only if it was made
 * during R's current run and R never received it before (a genuine, merely delayed packet). A
 * captured packet that R has seen, or that was made before R's current run, is never acted on —
 * with or without the persisted peer incarnation (the echo alone suffices; persistence makes the
 * verdict `old_incarnation` instead of `unconfirmed` for older runs of S).
 */

const KEY = Buffer.from('simulation-key-0123456789abcdef!');

const rng = mulberry32; // seeded: exact, reproducible sequences

interface Captured { buf: Buffer; rRun: number; delivered: boolean; acted: boolean }

function simulate(seed: number, persist: boolean, steps = 1500): { acted: number; replaysRefused: Record<string, number>; restarts: number } {
  const r = rng(seed);
  let sInc = 1000n, sSeq = 0n, sEcho = 0n; // S's view of R's incarnation
  let rInc = 5000n, rRun = 0;
  let persisted = -1n;
  let guard = new ReplayGuard();
  const captured: Captured[] = [];
  const refused: Record<string, number> = {};
  let acted = 0, restarts = 0;
  const deliver = (c: Captured): string => {
    const v = check(c.buf, { key: KEY, cluster: 'c', self: 'R', peer: 'S', guard, incarnation: rInc });
    if (guard.incarnation > persisted && persist) persisted = guard.incarnation;
    return v.ok ? (v.backlog ? 'backlog' : 'acted') : v.reason;
  };
  for (let i = 0; i < steps; i++) {
    const x = r();
    if (x < 0.55) {
      const p: Packet = { type: MsgType.Advert, role: r() < 0.5 ? 'master' : 'fault', priority: 100, flags: 1, path: r() < 0.5 ? 0 : 1, cluster: 'c', node: 'S', incarnation: sInc, seq: ++sSeq, echo: sEcho, stateVersion: 0, payload: Buffer.alloc(0) };
      const c: Captured = { buf: encode(p, KEY), rRun, delivered: false, acted: false };
      captured.push(c);
      if (r() < 0.8) {
        c.delivered = true;
        const v = deliver(c);
        if (v === 'acted') { acted++; c.acted = true; }
      }
    } else if (x < 0.75) {
      sEcho = rInc; // one of R's packets reached S
    } else if (x < 0.82) {
      sInc += BigInt(1 + Math.floor(r() * 1000)); sSeq = 0n; // S restarts; keeps its persisted view of R
      restarts++;
    } else if (x < 0.9) {
      rInc += BigInt(1 + Math.floor(r() * 1000)); rRun++; // R restarts: the window is gone
      guard = new ReplayGuard(persist ? persisted : -1n);
      restarts++;
    }
    // After every restart, and every 25 steps, the attacker replays everything captured so far,
    // in a random order.
    if (x < 0.82 || x >= 0.9 ? i % 25 !== 0 : false) continue;
    const order = captured.map((c, j) => [r(), j] as const).sort((a, b) => a[0] - b[0]);
    for (const [, j] of order) {
      const c = captured[j];
      const mayAct = c.rRun === rRun && !c.delivered; // a genuine packet delayed, never seen by R
      const v = deliver(c);
      c.delivered = true;
      // backlog is never acted on (stale): harmless whatever the packet.
      if (v === 'acted') expect(mayAct, `seed ${seed} step ${i}: captured packet acted on`).toBe(true);
      else refused[v] = (refused[v] ?? 0) + 1;
    }
  }
  return { acted, replaysRefused: refused, restarts };
}

describe('replay protection across restarts of either node (simulation)', () => {
  for (const persist of [true, false]) {
    it(`no captured packet is ever acted on twice or across a restart of R (${persist ? 'peer incarnation persisted' : 'nothing persisted: echo alone'})`, () => {
      for (const seed of [1, 2, 3, 4, 5]) {
        const res = simulate(seed, persist, 400);
        // The simulation really exercised the rules: genuine packets were acted on, restarts happened,
        // and replays were refused by each of the three rules.
        expect(res.acted).toBeGreaterThan(20);
        expect(res.restarts).toBeGreaterThan(10);
        expect(res.replaysRefused.replayed).toBeGreaterThan(0);
        expect(res.replaysRefused.unconfirmed).toBeGreaterThan(0);
        if (persist) expect(res.replaysRefused.old_incarnation).toBeGreaterThan(0);
      }
    });
  }
});

describe('LogThrottle', () => {
  it('one line, then the repeats counted and reported with the next line after the interval', () => {
    const t = new LogThrottle(10_000);
    // Five a second for 25 s: probe answered every 200 ms.
    const lines: { at: number; repeats: number }[] = [];
    for (let at = 0; at < 25_000; at += 200) { const r = t.admit('probe', at); if (r !== undefined) lines.push({ at, repeats: r }); }
    expect(lines).toEqual([{ at: 0, repeats: 0 }, { at: 10_000, repeats: 49 }, { at: 20_000, repeats: 49 }]);
    expect(t.suppressed).toBe(125 - 3);
    // Keys are independent.
    expect(t.admit('dead', 20_100)).toBe(0);
  });
});
