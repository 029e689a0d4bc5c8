/**
 * In-flight counts shared by every data-plane worker (global.workers >= 1), so that a server's
 * `maxconn`, a frontend's `maxconn` and leastconn's choice hold over the whole process, not per
 * worker (issues 12, 14). One SharedArrayBuffer, made by the control plane (src/proxy/workers.ts),
 * seen by every worker through the contract (WorkerInit.inflight):
 *
 *   Int32 [0, S)               total in flight per slot (over every worker)
 *   Int32 [S, 2S)              release generation per slot (the futex word waiters sleep on)
 *   Int32 [(2+w)S, (3+w)S)     worker w's own share of each slot
 *
 * A slot is one server (by backend id) or one frontend (by name), assigned by the control plane
 * (SlotAllocator) and sent with the routing snapshots. `acquire` takes one unit with a
 * compare-and-swap against the limit, so two workers can never both take the last one;
 * `release` gives it back and wakes the workers whose requests wait for that server
 * (Atomics.notify on the generation word; they sleep in Atomics.waitAsync, bounded by a timeout).
 * Each worker's own share is kept beside the total so that a worker that dies (its thread gone at
 * any point) is taken off exactly: the control plane subtracts its shares (`clearWorker`).
 */
export const SHARED_SLOTS = 16384;

/** Atomics.waitAsync (ES2024; Node >= 16): not in this project's TypeScript lib yet. */
const waitAsync = (Atomics as unknown as { waitAsync(a: Int32Array, i: number, v: number, ms: number): { async: boolean; value: Promise<unknown> | string } }).waitAsync;

export class SharedInflight {
  private readonly a: Int32Array;
  private readonly own: number;

  /** `worker`: this worker's index, or -1 for the control plane (which only reads and clears). */
  constructor(readonly buf: SharedArrayBuffer, readonly worker: number) {
    this.a = new Int32Array(buf);
    this.own = worker < 0 ? -1 : (2 + worker) * SHARED_SLOTS;
  }

  static create(workers: number): SharedArrayBuffer { return new SharedArrayBuffer(4 * (2 + workers) * SHARED_SLOTS); }

  /** In flight on `slot` now, over every worker. */
  inflight(slot: number): number { return Atomics.load(this.a, slot); }

  /** Take one unit of `slot` if fewer than `max` are taken (max 0: no limit). False: full. */
  acquire(slot: number, max: number): boolean {
    const a = this.a;
    if (max === 0) Atomics.add(a, slot, 1);
    else {
      let v = Atomics.load(a, slot);
      for (;;) {
        if (v >= max) return false;
        const seen = Atomics.compareExchange(a, slot, v, v + 1);
        if (seen === v) break;
        v = seen;
      }
    }
    a[this.own + slot]++;
    return true;
  }

  /** Give back one unit of `slot`; `wake`: tell workers waiting for it (a limited slot). */
  release(slot: number, wake: boolean): void {
    const a = this.a;
    a[this.own + slot]--;
    Atomics.sub(a, slot, 1);
    if (wake) {
      Atomics.add(a, SHARED_SLOTS + slot, 1);
      Atomics.notify(a, SHARED_SLOTS + slot);
    }
  }

  /**
   * Resolves once `slot` was released after this call, or after `ms` (whichever first): a waiter
   * that missed a wake-up is late by at most `ms`, never stuck.
   */
  released(slot: number, ms: number): Promise<unknown> {
    const i = SHARED_SLOTS + slot;
    const r = waitAsync(this.a, i, Atomics.load(this.a, i), ms);
    return r.async ? r.value as Promise<unknown> : Promise.resolve();
  }

  /** Control plane: worker `w` is gone; what it held is given back (and its waiters' peers woken). */
  clearWorker(w: number): void {
    const a = this.a;
    const base = (2 + w) * SHARED_SLOTS;
    for (let s = 0; s < SHARED_SLOTS; s++) {
      const n = a[base + s];
      if (n === 0) continue;
      a[base + s] = 0;
      Atomics.sub(a, s, n);
      Atomics.add(a, SHARED_SLOTS + s, 1);
      Atomics.notify(a, SHARED_SLOTS + s);
    }
  }
}

/**
 * Control plane: slots by key (`s:<backend id>`, `f:<frontend name>`). A server's slot is freed
 * once the server has left its pool and nothing is in flight on it any more, so a slot never
 * carries two servers' counts. Returns -1 when every slot is taken (that server is then limited
 * per worker, as before, and `exhausted` says so).
 */
export class SlotAllocator {
  private readonly slots = new Map<string, number>();
  private readonly free: number[] = [];
  private next = 0;
  /** Keys that left and still had requests in flight: freed by a later sweep. */
  private readonly leaving = new Set<string>();
  exhausted = false;

  constructor(private readonly table: SharedInflight) {}

  slotOf(key: string): number {
    let s = this.slots.get(key);
    if (s !== undefined) { this.leaving.delete(key); return s; }
    s = this.free.pop() ?? (this.next < SHARED_SLOTS ? this.next++ : -1);
    if (s < 0) { this.exhausted = true; return -1; }
    this.slots.set(key, s);
    return s;
  }

  /** `key` left (a server removed from its pool): its slot is freed once it is idle. */
  drop(key: string): void { if (this.slots.has(key)) this.leaving.add(key); this.sweep(); }

  private sweep(): void {
    for (const k of this.leaving) {
      const s = this.slots.get(k)!;
      if (this.table.inflight(s) !== 0) continue;
      this.leaving.delete(k);
      this.slots.delete(k);
      this.free.push(s);
    }
  }
}

/**
 * A server's view of its shared slot (Route.load): `cur` is what the balancers and the maxconn
 * checks read (src/balance/balancer.ts inflight), acquire/release what a request does when it is
 * sent to the server and when it leaves it.
 */
export class SharedLoad {
  constructor(private readonly t: SharedInflight, readonly slot: number, readonly max: number) {}
  get cur(): number { return this.t.inflight(this.slot); }
  acquire(): boolean { return this.t.acquire(this.slot, this.max); }
  release(): void { this.t.release(this.slot, this.max !== 0); }
  released(ms: number): Promise<unknown> { return this.t.released(this.slot, ms); }
}
