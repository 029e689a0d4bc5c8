import type { Counters } from '../stats/counters.js';
import type { Balancer, Candidate } from '../balance/index.js';
import { inflight } from '../balance/balancer.js';
import type { Route } from './routing.js';

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
 *
 * `maxqueue` bounds a queue (0: unbounded). A server's queue full (server `maxqueue`): the request
 * is balanced again instead, persistence broken, as HAProxy's server `maxqueue` ("redispatched to
 * other servers instead of indefinitely waiting"). The backend queue full (the pool's
 * `maxqueue`, which HAProxy does not have): refused at once (HTTP 503, TCP closed; termination
 * sQ), counted as queue_full.
 *
 * Both HTTP (src/proxy/listener.ts Exchange over a Routing) and mode tcp (src/l4/tcp.ts
 * TcpSession over its TcpRouting, backend queue only) wait here.
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

  /** @param max most waiters (maxqueue), 0: unbounded. */
  constructor(readonly counters: Counters, public max = 0) {}

  /** No room for one more (maxqueue reached). */
  get full(): boolean { return this.max !== 0 && this.length >= this.max; }

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

/** Longest a waiter sleeps on the shared release words before looking again (a missed wake-up's cost). */
const WATCH_MS = 50;

/** A server whose in-flight count every worker shares (src/proxy/shared-inflight.ts SharedLoad). */
export interface SharedSlot { readonly id: number; readonly load: { released(ms: number): Promise<unknown> } }

/** What the queues need of a server: HTTP's Route and mode tcp's TcpRoute both fit. */
export interface QueueRoute extends Candidate {
  readonly counters: Counters;
}

/** What the queues need of a routing snapshot (HTTP's Routing, mode tcp's TcpRouting). */
export interface QueueRouting<R extends QueueRoute> {
  /** Servers a waiter may wait for by name (sticky; mode tcp: none). */
  readonly byCookie: ReadonlyMap<string, R>;
  /** The set that serves now (primaries, or backups when no primary is UP). */
  readonly active: Balancer<R>;
  pick(key: number, tried: R[] | null): R | undefined;
}

/** What the queues need of a request (src/proxy/listener.ts Exchange, src/l4/tcp.ts TcpSession). */
export interface QueuedRequest<R extends QueueRoute = Route> extends Waiter {
  /** Balancing hash, for the pick once a slot frees (-1: none). */
  key: number;
  /** Servers this request already failed on (a retry waiting for a slot): never picked again. */
  tried: R[] | null;
  qTimer: NodeJS.Timeout | undefined;
  /** ms waited (HAProxy Tw), and the waiters ahead of it when queued (srv_queue / backend_queue). */
  tw: number;
  srvQueue: number;
  backendQueue: number;
  finished: boolean;
  termination: string;
  stickyOk: boolean;
  send(route: R): void;
  respondError(status: number, close?: boolean, retryAfter?: string): void;
}

/**
 * The queues of one server pool: its backend queue, one queue per server (kept across snapshot
 * rebuilds, by backend id), and the dispatch rules above. Owned by whatever owns the pool's routing
 * snapshot (the listener today; a shared pool with frontends/backends), which calls `rebuilt`
 * after every new snapshot and `slotFreed` whenever a request leaves a server.
 */
export class SlotQueues<T extends QueuedRequest<R>, R extends QueueRoute = Route> {
  readonly backend: WaitQueue<T>;
  readonly servers = new Map<number, WaitQueue<T>>();
  /** Waiters in every queue of the pool: the hot path tests `queued > 0` only. */
  queued = 0;
  private routing: QueueRouting<R> | undefined;

  /** Retry-After seconds on a queue timeout's 503 (the pool's `retry_after`), or undefined: none. */
  retryAfter: string | undefined;
  /**
   * With workers: the limited servers whose slots are shared by every worker (maxconn over the
   * process, src/proxy/shared-inflight.ts), set by the owner on every snapshot. A slot freed by
   * another worker is never heard of by `slotFreed`: while anything waits, the queues watch these
   * servers' release words instead (`watch`). Empty: nothing to watch (one data plane).
   */
  shared: readonly SharedSlot[] = [];
  /** The current watch (0: none); a wake-up of an older one is ignored. */
  private watching = 0;
  private watchGen = 0;

  /** @param timeoutMs timeouts.queue, read at each wait (a reload may change it). */
  constructor(counters: Counters, public timeoutMs: number) {
    this.backend = new WaitQueue<T>(counters);
  }

  /** The queue of server `id` (its counters hold qcur/qmax; `max`: its maxqueue), made on first use. */
  serverQueue(id: number, counters: Counters, max = 0): WaitQueue<T> {
    let q = this.servers.get(id);
    if (q === undefined) this.servers.set(id, (q = new WaitQueue<T>(counters, max)));
    else q.max = max;
    return q;
  }

  /**
   * Queue `ex` in `q`, or return false when `q` is full (maxqueue; counted queueFull on q's
   * counters): a full server queue means balance again, a full backend queue means refuse.
   */
  wait(ex: T, q: WaitQueue<T>): boolean {
    if (q.full) { q.counters.queueFull++; return false; }
    ex.srvQueue = q === this.backend ? 0 : q.length;
    ex.backendQueue = this.backend.length;
    q.push(ex, performance.now());
    this.queued++;
    ex.qTimer = setTimeout(queueTimedOut, this.timeoutMs, this, ex);
    if (this.shared.length > 0) this.watch();
    return true;
  }

  /**
   * Waiters wait here while a shared server's slots may be freed by another worker: sleep on each
   * such server's release word (Atomics.waitAsync, at most WATCH_MS, so a missed wake-up costs at
   * most that), then dispatch whatever now fits, and watch again while anything still waits.
   * Re-checked once right after arming, for a release between the waiter's full check and the arming.
   */
  private watch(): void {
    if (this.watching !== 0 || this.shared.length === 0) return;
    const gen = this.watching = ++this.watchGen;
    const wake = (): void => this.woken(gen);
    for (const r of this.shared) void r.load.released(WATCH_MS).then(wake);
    queueMicrotask(() => { if (this.watching === gen) this.dispatchFreed(); });
  }

  private woken(gen: number): void {
    if (this.watching !== gen) return;
    this.watching = 0;
    this.dispatchFreed();
    if (this.queued > 0) this.watch();
  }

  private dispatchFreed(): void {
    for (const r of this.shared) { if (this.queued === 0) return; this.slotFreed(r.id); }
  }

  /** A waiter leaves without a server (timeout, client gone). */
  unqueue(ex: T): void {
    if (ex.waitQ === null) return;
    ex.waitQ.remove(ex);
    this.queued--;
    clearTimeout(ex.qTimer);
    ex.tw = performance.now() - ex.queuedAt;
  }

  /** `ex` was just shifted from `q`: it goes to `route`. */
  private dispatch(q: WaitQueue<T>, ex: T, route: R, now: number): void {
    this.queued--;
    clearTimeout(ex.qTimer);
    const tw = now - ex.queuedAt;
    ex.tw = tw;
    q.counters.queueMs += tw;
    ex.send(route);
  }

  /**
   * A slot of server `id` was freed: the oldest of its own waiters and the backend queue's goes (a
   * backend waiter is balanced again, so it may go to another server with room).
   */
  slotFreed(id: number): void {
    const routing = this.routing;
    if (routing === undefined) return;
    const sq = this.servers.get(id);
    const bq = this.backend;
    const now = performance.now();
    for (;;) {
      const a = sq?.peek();
      const b = bq.peek();
      if (a === undefined && b === undefined) return;
      if (a !== undefined && (b === undefined || a.queuedAt <= b.queuedAt)) {
        // Sticky waiters go to their server only (the latest snapshot's route of it).
        const r = routeOf(routing, id);
        if (r === undefined || (r.maxconn !== 0 && inflight(r) >= r.maxconn)) return;
        sq!.shift();
        this.dispatch(sq!, a, r, now);
        continue;
      }
      const r = pickFor(routing, b!);
      if (r === undefined) return;
      bq.shift();
      this.dispatch(bq, b!, r, now);
    }
  }

  /**
   * A new snapshot: waiters of a server that can no longer be reached by its cookie (DOWN, MAINT,
   * removed) go to the backend queue in order (HAProxy redispatches them), then every waiter that
   * now has a slot (server back UP, maxconn raised) is served.
   */
  rebuilt(routing: QueueRouting<R>): void {
    this.routing = routing;
    for (const [id, q] of this.servers) {
      if (routeOf(routing, id) !== undefined) continue;
      for (let ex = q.shift(); ex !== undefined; ex = q.shift()) { ex.stickyOk = false; this.backend.push(ex, ex.queuedAt); }
      this.servers.delete(id);
    }
    if (this.queued === 0) return;
    for (const r of routing.byCookie.values()) if ((this.servers.get(r.id)?.length ?? 0) > 0) this.slotFreed(r.id);
    const now = performance.now();
    for (let b = this.backend.peek(); b !== undefined; b = this.backend.peek()) {
      const r = pickFor(routing, b);
      if (r === undefined) return;
      this.backend.shift();
      this.dispatch(this.backend, b, r, now);
    }
  }
}

/** A backend waiter's server: balanced again, never one it already failed on. */
function pickFor<R extends QueueRoute>(routing: QueueRouting<R>, w: QueuedRequest<R>): R | undefined {
  return w.tried === null ? routing.pick(w.key, null) : routing.active.pick(w.key, w.tried);
}

function routeOf<R extends QueueRoute>(routing: QueueRouting<R>, id: number): R | undefined {
  for (const r of routing.byCookie.values()) if (r.id === id) return r;
  return undefined;
}

/** timeouts.queue ran out: 503, termination sQ (HAProxy: server queue timeout). */
function queueTimedOut<T extends QueuedRequest<R>, R extends QueueRoute>(qs: SlotQueues<T, R>, ex: T): void {
  if (ex.waitQ === null || ex.finished) return;
  const c = ex.waitQ.counters;
  qs.unqueue(ex);
  c.queueTimeouts++;
  ex.termination = 'sQ';
  ex.respondError(503, false, qs.retryAfter);
}
