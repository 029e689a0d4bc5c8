import type { Counters } from '../stats/counters.js';

/**
 * Requests waiting for a server slot (server `maxconn`), HAProxy's two queues
 * (configuration.txt, "maxconn" and "timeout queue"): one per server for requests that must go to
 * that server (sticky), one per backend for the others. Whoever frees a slot takes the oldest
 * waiter of the server's queue and the backend's queue. A waiter leaves by dispatch, by
 * `timeouts.queue` (503, termination sQ) or because its client went away (CQ).
 *
 * FIFO with a moving head: push and shift are O(1); removing a waiter that gave up is a linear
 * search, paid only on that slow path. qcur/qmax go to the owner's counters (a server's row for its
 * queue, the listen's TOTAL row for the backend queue).
 */
export interface Waiter {
  /** performance.now() when queued. */
  queuedAt: number;
  /** The queue it waits in, or null. */
  waitQ: WaitQueue<Waiter> | null;
}

export class WaitQueue<T extends Waiter> {
  private items: (T | undefined)[] = [];
  private head = 0;
  length = 0;

  constructor(readonly counters: Counters) {}

  push(x: T, now: number): void {
    x.queuedAt = now;
    x.waitQ = this as unknown as WaitQueue<Waiter>;
    this.items.push(x);
    this.length++;
    const c = this.counters;
    c.queued++;
    if (++c.qcur > c.qmax) c.qmax = c.qcur;
  }

  peek(): T | undefined { return this.length > 0 ? this.items[this.head] : undefined; }

  shift(): T | undefined {
    if (this.length === 0) return undefined;
    const x = this.items[this.head];
    this.items[this.head++] = undefined;
    this.taken(x!);
    if (this.head > 1024 && this.head * 2 > this.items.length) { this.items = this.items.slice(this.head); this.head = 0; }
    return x;
  }

  /** A waiter that gives up (timeout, client gone). */
  remove(x: T): boolean {
    const i = this.items.indexOf(x, this.head);
    if (i < 0) return false;
    this.items.splice(i, 1);
    this.taken(x);
    return true;
  }

  private taken(x: T): void {
    x.waitQ = null;
    this.length--;
    this.counters.qcur--;
    if (this.length === 0) { this.items.length = 0; this.head = 0; }
  }
}
