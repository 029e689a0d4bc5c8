import { describe, expect, it } from 'vitest';
import { SharedInflight, SlotAllocator } from '../../src/proxy/shared-inflight.js';

/** The shared in-flight table's rules (src/proxy/shared-inflight.ts), two workers' views of one buffer. */
describe('shared in-flight counts', () => {
  it('a limit holds over workers; a release wakes a waiter; a dead worker is taken off exactly', async () => {
    const buf = SharedInflight.create(2);
    const w0 = new SharedInflight(buf, 0);
    const w1 = new SharedInflight(buf, 1);
    const cp = new SharedInflight(buf, -1);
    expect([w0.acquire(7, 3), w1.acquire(7, 3), w1.acquire(7, 3), w0.acquire(7, 3), w1.acquire(7, 3)]).toEqual([true, true, true, false, false]);
    expect(cp.inflight(7)).toBe(3);
    // No limit: counted, never refused.
    for (let i = 0; i < 5; i++) expect(w0.acquire(8, 0)).toBe(true);
    expect(cp.inflight(8)).toBe(5);
    // A waiter sleeping on slot 7 wakes when worker 0 releases (well before its 10 s bound).
    let woke = false;
    const p = w1.released(7, 10_000).then(() => { woke = true; });
    expect(woke).toBe(false);
    w0.release(7, true);
    await p;
    expect(woke).toBe(true);
    expect(w1.acquire(7, 3)).toBe(true);
    // Worker 1 dies holding 3 of slot 7: the control plane gives them back; worker 0's stay.
    expect(cp.inflight(7)).toBe(3);
    cp.clearWorker(1);
    expect(cp.inflight(7)).toBe(0);
    expect(cp.inflight(8)).toBe(5);
    cp.clearWorker(0);
    expect(cp.inflight(8)).toBe(0);
    expect([w0.acquire(7, 1), w1.acquire(7, 1)]).toEqual([true, false]);
  });

  it('slots: one per key; a server that left frees its slot only once nothing is in flight on it', () => {
    const buf = SharedInflight.create(1);
    const w = new SharedInflight(buf, 0);
    const a = new SlotAllocator(new SharedInflight(buf, -1));
    const s1 = a.slotOf('s:1');
    const s2 = a.slotOf('s:2');
    expect(s1).not.toBe(s2);
    expect(a.slotOf('s:1')).toBe(s1);
    w.acquire(s1, 0);
    a.drop('s:1');
    // Still in flight: not reused.
    expect(a.slotOf('s:3')).not.toBe(s1);
    w.release(s1, false);
    a.drop('s:9'); // any later drop sweeps
    expect(a.slotOf('s:4')).toBe(s1);
  });
});
