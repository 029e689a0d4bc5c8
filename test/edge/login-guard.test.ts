import { describe, expect, test } from 'vitest';
import { Gate, LoginLimiter, sourceKey } from '../../src/stats/login-guard.js';

/** Pure parts of the failed-login limits (time is passed in). */

const P = { maxFailures: 3, lockoutMs: 1000, maxLockoutMs: 8000, forgetMs: 60_000, sources: 16 };

describe('LoginLimiter', () => {
  test('lockout after max_failures, doubling up to max_lockout, then forgotten', () => {
    const l = new LoginLimiter(P);
    const fail = (t: number) => { l.begin('a', t); return l.fail('a', t); };
    expect([fail(0), fail(1), fail(2)]).toEqual([0, 0, 1000]);
    expect(l.lockedFor('a', 500)).toBe(502);
    expect(l.lockedFor('a', 1002)).toBe(0);
    expect(fail(1002)).toBe(2000);
    expect(fail(3002)).toBe(4000);
    expect(fail(7002)).toBe(8000);
    expect(fail(15_002)).toBe(8000);
    // Locked, then quiet for `forget` after the lock ended: a new start.
    expect(l.lockedFor('a', 23_002 + 60_000)).toBe(0);
    expect(l.size).toBe(0);
    expect(fail(100_000)).toBe(0);
  });

  test('one check in flight per source: a parallel burst runs one check at a time, other sources are free', () => {
    const l = new LoginLimiter(P);
    let started = 0;
    for (let i = 0; i < 20; i++) if (l.lockedFor('a', 0) === 0) { l.begin('a', 0); started++; }
    expect(started).toBe(1);
    expect(l.lockedFor('a', 0)).toBe(1000);
    expect(l.lockedFor('b', 0)).toBe(0);
    expect(l.fail('a', 10)).toBe(0);
    expect(l.lockedFor('a', 10)).toBe(0);
  });

  test('a success does not forgive failures (a valid read-only login cannot reset the count)', () => {
    const l = new LoginLimiter(P);
    l.begin('a', 0); l.fail('a', 0);
    l.begin('a', 0); l.fail('a', 0);
    l.begin('a', 0); l.succeed('a');
    l.begin('a', 0);
    expect(l.fail('a', 0)).toBe(1000);
  });

  test('bounded table: the source with the oldest failure goes first', () => {
    const l = new LoginLimiter(P);
    for (let i = 0; i < 100; i++) { l.begin('s' + i, i); l.fail('s' + i, i); }
    expect(l.size).toBe(16);
    expect(l.evicted).toBe(84);
    // s0 was evicted; s99 is remembered.
    l.begin('s0', 100); expect(l.fail('s0', 100)).toBe(0);
    l.begin('s99', 100); l.fail('s99', 100);
    l.begin('s99', 101); expect(l.fail('s99', 101)).toBe(1000);
  });
});

describe('Gate', () => {
  test('at most `max` run, `queue` wait, the rest refused; leaving lets the next in', async () => {
    const g = new Gate(2, 3);
    const order: number[] = [];
    const entered = Array.from({ length: 7 }, (_, i) => g.enter()?.then(() => order.push(i)));
    expect(entered.map((e) => e !== undefined)).toEqual([true, true, true, true, true, false, false]);
    await Promise.resolve(); await Promise.resolve();
    expect(order).toEqual([0, 1]);
    g.leave(); await Promise.resolve(); await Promise.resolve();
    expect(order).toEqual([0, 1, 2]);
    g.leave(); g.leave(); await Promise.resolve(); await Promise.resolve();
    expect(order).toEqual([0, 1, 2, 3, 4]);
  });
});

describe('sourceKey', () => {
  test.each([
    ['127.0.0.1', '127.0.0.1'],
    ['::ffff:10.1.2.3', '10.1.2.3'],
    ['2001:db8:1:2:3:4:5:6', '2001:db8:1:2::/64'],
    ['2001:db8:1:2::7', '2001:db8:1:2::/64'],
    ['2001:db8::1', '2001:db8:0:0::/64'],
    ['::1', '0:0:0:0::/64'],
    [undefined, '?'],
  ])('%s → %s', (a, k) => expect(sourceKey(a)).toBe(k));
});
