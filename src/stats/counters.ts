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
  /** Requests (HTTP) and connections (TCP) refused at once because the queue was full (maxqueue). */
  queueFull = 0;
  /** Requests refused by a per-client limit (429) and connections by allow/deny (TOTAL rows). */
  limited = 0;
  deniedConn = 0;
  /** Requests of open keep-alive connections that waited for a later loop turn (global.turn_budget; TOTAL rows of frontends). */
  parked = 0;
  /** Connections refused at the PROXY protocol header (accept_proxy: untrusted source, bad, timeout). */
  proxyRefused = 0;
  /** TLS passthrough: connections closed because no ClientHello could be read (garbage, truncated, timeout). */
  helloRefused = 0;
  /** UDP: flows evicted (oldest first) because max_flows was reached. */
  flowsEvicted = 0;
  /** HTTP/2 refusals by reason (src/h2/guard.ts H2_COUNTER_FIELDS; TOTAL rows). */
  h2RapidReset = 0;
  h2HeaderList = 0;
  h2HeaderFlood = 0;
  h2Continuation = 0;
  h2PingFlood = 0;
  h2SettingsFlood = 0;
  h2StreamIdle = 0;
  h2WindowStall = 0;
  h2Idle = 0;
  h2Protocol = 0;
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

/**
 * Counters as a flat vector, for data-plane workers (src/proxy/workers.ts): a worker sends what
 * changed since its last report, the control plane adds it to its own Counters, so the stats page,
 * CSV/JSON and /metrics show totals over every worker. Layout: the ADDITIVE fields, then status[6],
 * rtCounts, rtSum (all added); then the PEAK fields, taken as the highest report (and at least
 * the summed current value). LOCAL fields stay in the worker that sees the traffic. A unit test
 * fails when a field of Counters is in none of these lists.
 */
export const ADDITIVE = ['cur', 'total', 'bytesIn', 'bytesOut', 'errReq', 'errConn', 'errResp', 'retries', 'redispatches', 'tunnels', 'tunnelsCur', 'refusedConn',
  'qcur', 'queued', 'queueTimeouts', 'queueMs', 'queueFull', 'limited', 'deniedConn', 'parked', 'proxyRefused', 'helloRefused', 'flowsEvicted',
  'h2RapidReset', 'h2HeaderList', 'h2HeaderFlood', 'h2Continuation', 'h2PingFlood', 'h2SettingsFlood', 'h2StreamIdle', 'h2WindowStall', 'h2Idle', 'h2Protocol'] as const;
export const PEAK = ['max', 'qmax', 'lastSession'] as const;
export const LOCAL = ['connectFailStreak', 'fiveXxStreak'] as const;
const O_STATUS = ADDITIVE.length;
const O_RT = O_STATUS + 6;
const O_RTSUM = O_RT + RT_BUCKETS.length + 1;
const O_PEAK = O_RTSUM + 1;
export const COUNTER_VECTOR_LENGTH = O_PEAK + PEAK.length;
/** Gauges in a vector: what a worker had in flight (taken off when it dies). */
export const VEC_GAUGES = (['cur', 'tunnelsCur', 'qcur'] as const).map((k) => ({ key: k, i: ADDITIVE.indexOf(k) }));

/** Write `c` into `out` (length COUNTER_VECTOR_LENGTH). */
export function counterVector(c: Counters, out: Float64Array): Float64Array {
  for (let i = 0; i < ADDITIVE.length; i++) out[i] = c[ADDITIVE[i]];
  for (let i = 0; i < 6; i++) out[O_STATUS + i] = c.status[i];
  out.set(c.rtCounts, O_RT);
  out[O_RTSUM] = c.rtSum;
  for (let i = 0; i < PEAK.length; i++) out[O_PEAK + i] = c[PEAK[i]];
  return out;
}

/**
 * `now - sent` into `delta` (peaks copied), `sent` := `now`. Returns false when nothing additive
 * changed (nothing to report).
 */
export function counterDelta(now: Float64Array, sent: Float64Array, delta: Float64Array): boolean {
  let changed = false;
  for (let i = 0; i < O_PEAK; i++) {
    const d = now[i] - sent[i];
    delta[i] = d;
    if (d !== 0) changed = true;
    sent[i] = now[i];
  }
  for (let i = O_PEAK; i < COUNTER_VECTOR_LENGTH; i++) { delta[i] = now[i]; sent[i] = now[i]; }
  return changed;
}

/** Add a worker's delta vector to the control plane's Counters. */
export function addCounterDelta(c: Counters, d: ArrayLike<number>): void {
  for (let i = 0; i < ADDITIVE.length; i++) c[ADDITIVE[i]] += d[i];
  for (let i = 0; i < 6; i++) c.status[i] += d[O_STATUS + i];
  for (let i = 0; i <= RT_BUCKETS.length; i++) c.rtCounts[i] += d[O_RT + i];
  c.rtSum += d[O_RTSUM];
  for (let i = 0; i < PEAK.length; i++) if (d[O_PEAK + i] > c[PEAK[i]]) c[PEAK[i]] = d[O_PEAK + i];
  // A worker's own peak is a lower bound of the total peak; so is the current sum.
  if (c.cur > c.max) c.max = c.cur;
  if (c.qcur > c.qmax) c.qmax = c.qcur;
}
