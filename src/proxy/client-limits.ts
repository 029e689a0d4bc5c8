import { sourceKey } from '../stats/login-guard.js';

/**
 * Per-client limits in the spirit of HAProxy's stick tables (`track-sc0 src`, `sc_conn_cur`,
 * `sc_http_req_rate`): for each source (IPv4 address, IPv6 /64: sourceKey) the connections open
 * now and the request rate over a sliding window. Over a limit, the listener answers 429 and closes
 * (src/proxy/listener.ts); a refused request is counted on the listen's TOTAL row (`limited`).
 *
 * The rate is HAProxy's freq_ctr estimate: the count of the current period plus the previous
 * period's count weighted by how much of it still lies in the window, so the window slides without
 * a timestamp per request. Only admitted requests are counted: a client that keeps knocking still
 * gets `rate` requests per period through, not zero.
 *
 * Bounded: at most `size` sources; a new one beyond that evicts the least recently connected
 * (counted in `evictions`); a source with no connection open is dropped `expire` after its last
 * request. The table lives in memory only and is cleared on every HA role change, so a node never
 * carries bans from an earlier time as master, and the backup has none (issue 14).
 */
export interface LimitPolicy {
  /** Most connections open at once per source; 0 = unlimited. */
  conn: number;
  /** Most requests per `period` per source; 0 = unlimited. */
  rate: number;
  period: number;
  size: number;
  expire: number;
}

export class ClientEntry {
  conns = 0;
  /** Requests admitted in the current period and the previous one; start of the current one. */
  cur = 0;
  prev = 0;
  periodStart: number;
  lastSeen: number;
  constructor(readonly key: string, now: number) { this.periodStart = now; this.lastSeen = now; }
}

export class ClientTable {
  private readonly map = new Map<string, ClientEntry>();
  evictions = 0;
  private timer: NodeJS.Timeout | undefined;

  constructor(public policy: LimitPolicy) {}

  get size(): number { return this.map.size; }

  /**
   * A connection from `remote` opens. Returns its entry, or null when the source already has
   * `conn` connections open (the connection is then not counted: the caller refuses its requests).
   */
  connect(remote: string | undefined, now: number): ClientEntry | null {
    const key = sourceKey(remote);
    let e = this.map.get(key);
    if (e !== undefined) {
      if (this.policy.conn !== 0 && e.conns >= this.policy.conn) return null;
      // Most recently connected last: eviction takes the first.
      this.map.delete(key);
    } else {
      if (this.map.size >= this.policy.size) {
        const oldest = this.map.keys().next().value as string;
        this.map.delete(oldest);
        this.evictions++;
      }
      e = new ClientEntry(key, now);
    }
    this.map.set(key, e);
    e.conns++;
    e.lastSeen = now;
    this.arm();
    return e;
  }

  disconnect(e: ClientEntry, now: number): void {
    e.conns--;
    e.lastSeen = now;
  }

  /** A request of `e`'s source: true when it is within the rate (and then counted). */
  request(e: ClientEntry, now: number): boolean {
    e.lastSeen = now;
    const limit = this.policy.rate;
    if (limit === 0) return true;
    const p = this.policy.period;
    const elapsed = now - e.periodStart;
    if (elapsed >= p) {
      // One period on: the current becomes the previous; two or more: both are empty.
      e.prev = elapsed < 2 * p ? e.cur : 0;
      e.cur = 0;
      e.periodStart = now - (elapsed % p);
    }
    const rate = e.cur + (e.prev * (p - (now - e.periodStart))) / p;
    if (rate >= limit) return false;
    e.cur++;
    return true;
  }

  /**
   * Seconds a refused client should wait (Retry-After, RFC 9110 §10.2.3), at least 1. Over the
   * rate: until the sliding window lets one more request in (it is only ever counted on
   * admission, so nothing it sends meanwhile moves this). Over the connection count (or no
   * rate): 1 — a slot frees when one of its own connections closes, which cannot be foreseen.
   */
  retryAfter(e: ClientEntry | undefined, now: number): number {
    const limit = this.policy.rate;
    if (e === undefined || limit === 0) return 1;
    const p = this.policy.period;
    let t = now - e.periodStart;
    let cur = e.cur, prev = e.prev;
    if (t >= p) { prev = t < 2 * p ? cur : 0; cur = 0; t %= p; }
    // rate(t') = cur + prev·(p − t')/p, with t' ≥ t in this period.
    let waitMs: number;
    if (cur + (prev * (p - t)) / p < limit) waitMs = 0;
    else if (cur < limit && prev > 0) waitMs = p - (p * (limit - cur)) / prev - t;
    // Not within this period: at the next one, rate = cur·(2p − t')/p (cur becomes prev).
    else waitMs = (cur > 0 ? 2 * p - (p * limit) / cur : p) - t;
    return Math.max(1, Math.ceil((waitMs + 1) / 1000));
  }

  /** Drop idle sources past `expire`. */
  sweep(now: number): void {
    const exp = this.policy.expire;
    for (const [k, e] of this.map) if (e.conns <= 0 && now - e.lastSeen >= exp) this.map.delete(k);
    if (this.map.size === 0) this.disarm();
  }

  clear(): void {
    this.map.clear();
    this.disarm();
  }

  get(remote: string | undefined): ClientEntry | undefined { return this.map.get(sourceKey(remote)); }

  private arm(): void {
    if (this.timer !== undefined) return;
    const every = Math.max(100, Math.min(this.policy.expire, 10_000));
    this.timer = setInterval(() => this.sweep(Date.now()), every);
    this.timer.unref();
  }

  private disarm(): void {
    if (this.timer !== undefined) { clearInterval(this.timer); this.timer = undefined; }
  }
}
