/**
 * Hot-path counters: plain objects with integer fields, incremented by the data plane without
 * allocation or lookups by string. The stats page, CSV/JSON and Prometheus read them at render or
 * scrape time (one table of columns in src/stats/columns.ts).
 */

/** Upper bounds (seconds) of the response-time histogram buckets; +Inf is implicit. */
export const RT_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10] as const;

export class Counters {
  /** Current in-flight requests (sessions). */
  cur = 0;
  max = 0;
  total = 0;
  bytesIn = 0;
  bytesOut = 0;
  /** Requests refused before routing (malformed, timeouts). */
  errReq = 0;
  /** Connection failures to a backend (after which a retry may have succeeded). */
  errConn = 0;
  /** Failed or aborted responses. */
  errResp = 0;
  retries = 0;
  redispatches = 0;
  /** Upgrade (WebSocket) tunnels opened since start, and open now. */
  tunnels = 0;
  tunnelsCur = 0;
  /** Client connections refused at accept (listen rows: global.maxconn reached or accept failed). */
  refusedConn = 0;
  /** Requests waiting for a server slot now (maxconn: server rows, their server queue; TOTAL, the backend queue), most at once, entered since start. */
  qcur = 0;
  qmax = 0;
  queued = 0;
  /** Waiters that got 503 after timeouts.queue, and total ms waited by the ones dispatched (Tw). */
  queueTimeouts = 0;
  queueMs = 0;
  /** Requests refused by a per-client limit (429) and connections by allow/deny (TOTAL rows). */
  limited = 0;
  deniedConn = 0;
  /** Connections refused at the PROXY protocol header (accept_proxy: untrusted source, bad, timeout). */
  proxyRefused = 0;
  /** TLS passthrough: connections closed because no ClientHello could be read (garbage, truncated, timeout). */
  helloRefused = 0;
  /** UDP: flows evicted (oldest first) because max_flows was reached. */
  flowsEvicted = 0;
  /** Responses by status class, index 0 = other, 1..5 = 1xx..5xx. */
  readonly status = [0, 0, 0, 0, 0, 0];
  /** ms timestamp of the last request started. */
  lastSession = 0;
  /** Histogram of total response time; counts per RT_BUCKETS index, the last slot is +Inf. */
  readonly rtCounts = new Float64Array(RT_BUCKETS.length + 1);
  rtSum = 0;
  /** Passive check streaks (reset by any success). */
  connectFailStreak = 0;
  fiveXxStreak = 0;

  begin(now: number): void {
    this.total++;
    if (++this.cur > this.max) this.max = this.cur;
    this.lastSession = now;
  }

  observe(status: number, seconds: number): void {
    const c = (status / 100) | 0;
    this.status[c >= 1 && c <= 5 ? c : 0]++;
    let i = 0;
    while (i < RT_BUCKETS.length && seconds > RT_BUCKETS[i]) i++;
    this.rtCounts[i]++;
    this.rtSum += seconds;
  }
}

/** Registry of counters by frontend (listen) name, pool name and backend id; survives snapshot rebuilds. */
export class CounterStore {
  readonly listens = new Map<string, Counters>();
  readonly backends = new Map<number, Counters>();
  /** TOTAL rows of `backends` pools (a listen section's pool is counted under its listen name). */
  readonly pools = new Map<string, Counters>();

  pool(name: string): Counters {
    let c = this.pools.get(name);
    if (!c) this.pools.set(name, (c = new Counters()));
    return c;
  }

  listen(name: string): Counters {
    let c = this.listens.get(name);
    if (!c) this.listens.set(name, (c = new Counters()));
    return c;
  }

  backend(id: number): Counters {
    let c = this.backends.get(id);
    if (!c) this.backends.set(id, (c = new Counters()));
    return c;
  }
}
