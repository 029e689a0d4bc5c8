/**
 * A bound on the request work one event-loop turn does, so that a saturated data plane still
 * accepts and serves new connections promptly (issue 12; HAProxy bounds a turn with
 * tune.maxpollevents / tune.maxaccept, libuv offers no such bound).
 *
 * Why a new connection starved (measured 2026-12-01, Node 24.21 / libuv 1.52, strace of
 * epoll_pwait and accept4 under wrk -c256): since libuv 1.45 (libuv#3696) a listening socket
 * accepts ONE connection per loop turn — it relies on level-triggered epoll to be told again on
 * the next turn. So the accept rate is the turn rate. Saturated, each turn carried the reads and
 * responses of every busy connection (~25 ms at ~100 µs a request): ~40 turns/s, fewer than the
 * 50 new connections/s offered, and the accept queue grew without bound (connect → 'connection'
 * p50 383 ms while the time-weighted turn was 16–25 ms). A new connection then needs two more
 * turns (its first read, its response).
 *
 * The bound: once a turn has spent `budgetMs` since it began, a request that arrives on an
 * existing keep-alive connection (not its first request) is parked here instead of being
 * routed; parked requests are served in arrival order from the check phase (setImmediate), at
 * most `budgetMs` of them per turn, the rest in the next turns. A parked connection sends nothing
 * more (its client waits for the answer), so the next turn's epoll batch shrinks with it: turns
 * settle near `budgetMs` plus the responses in flight, accepts run at the turn rate again, and a
 * first request is routed in the turn its bytes are read. The total work is unchanged (the same
 * requests are served, in order per connection and FIFO over connections), so throughput is too.
 *
 * Pure apart from `now` and `schedule` (injected for the unit test).
 */
export interface Parked<A, B> { readonly a: A; readonly b: B }

export class TurnBudget<A, B> {
  /** Requests parked since start (stats: how often the bound acted). */
  parkedTotal = 0;
  /** Most requests parked at once. */
  parkedMax = 0;
  private readonly qa: A[] = [];
  private readonly qb: B[] = [];
  private head = 0;
  /** A pass is scheduled for this turn's check phase. */
  private scheduled = false;
  /** When the current turn began (its first request, or the end of the previous pass). */
  private turnStart = 0;
  /** When the last pass ended (0: none yet). */
  private lastPass = 0;
  private readonly passFn = (): void => this.pass();

  /**
   * `run(a, b)` serves a parked request. `budgetMs` 0 turns the bound off (every request is served
   * at once, as before).
   */
  constructor(
    public budgetMs: number,
    private readonly run: (a: A, b: B) => void,
    private readonly now: () => number = performance.now.bind(performance),
    private readonly schedule: (fn: () => void) => void = setImmediate,
  ) {}

  /** Requests parked now. */
  get length(): number { return this.qa.length - this.head; }

  /**
   * Per request. `first`: the connection's first request (never parked: that is whom the bound is
   * for). True: serve it now. False: it was parked and `run` will serve it in a later pass.
   */
  admit(first: boolean, a: A, b: B): boolean {
    const budget = this.budgetMs;
    if (budget === 0) return true;
    const t = this.now();
    if (!this.scheduled) {
      // The first request since the last pass: a new turn. It began with the previous pass's end
      // when that was recent (a busy loop goes straight from one turn to the next); after an idle
      // wait it began about now.
      this.scheduled = true;
      this.schedule(this.passFn);
      this.turnStart = this.lastPass !== 0 && t - this.lastPass < budget ? this.lastPass : t;
    }
    if (first) return true;
    // Parked ones go first (arrival order), and a long turn parks the rest.
    if (this.head === this.qa.length && t - this.turnStart < budget) return true;
    this.qa.push(a);
    this.qb.push(b);
    this.parkedTotal++;
    const n = this.qa.length - this.head;
    if (n > this.parkedMax) this.parkedMax = n;
    return false;
  }

  /** Check phase: serve parked requests for up to `budgetMs` (at least one), reschedule the rest. */
  private pass(): void {
    this.scheduled = false;
    const qa = this.qa;
    const qb = this.qb;
    if (this.head < qa.length) {
      const start = this.now();
      const budget = this.budgetMs;
      do {
        const i = this.head++;
        const a = qa[i];
        const b = qb[i];
        // Dropped references: a parked request's objects are freed as soon as it is served.
        qa[i] = undefined as A;
        qb[i] = undefined as B;
        this.run(a, b);
      } while (this.head < qa.length && this.now() - start < budget);
      if (this.head === qa.length) { qa.length = 0; qb.length = 0; this.head = 0; }
      else if (this.head > 1024 && this.head * 2 > qa.length) { qa.splice(0, this.head); qb.splice(0, this.head); this.head = 0; }
    }
    this.lastPass = this.now();
    if (this.head < qa.length) {
      // More parked: the next turn starts now and serves them after its own (bounded) poll phase.
      this.scheduled = true;
      this.turnStart = this.lastPass;
      this.schedule(this.passFn);
    }
  }
}
