import type { Backend, EffectiveState } from '../backends/backend-set.js';
import type { Counters } from './counters.js';
import { h2Refusals } from '../h2/guard.js';

/**
 * THE table of stats columns (as HAProxy's stats fields table): every renderer — HTML page, CSV,
 * JSON and Prometheus — iterates this one list, so a column added here shows up everywhere, with
 * the same meaning.
 *
 * A row is either a backend or the TOTAL of a listen section (the listen's own counters, which
 * also count requests that never reached a backend). Values are read from the hot-path counters
 * and the backend set at render/scrape time only: nothing here runs per request.
 */

export type RowKind = 'backend' | 'total';

export interface Row {
  kind: RowKind;
  listen: string;
  /** Backend name, or 'TOTAL'. */
  name: string;
  b?: Backend;
  c: Counters;
  now: number;
  /** Sessions per second over the last few seconds (sampled by a 1 s timer, never per request). */
  rate: number;
  /** Effective weight (slow start applied). */
  effWeight?: number;
  /** Text of a pending health transition, e.g. "DOWN 1/2" (health module), else undefined. */
  transition?: string;
  /** Failed checks so far, when the health module reports them. */
  checkFailures?: number;
  /** A removal (drain → remove) is pending. */
  removing?: boolean;
  /** For TOTAL rows: backends UP / usable / all. */
  upCount?: number;
  backendCount?: number;
  serving?: boolean;
}

export type Value = number | string | null;

export interface PromSpec {
  /** Metric name without the pairlb_backend_ / pairlb_listen_ prefix. */
  metric: string;
  type: 'counter' | 'gauge' | 'histogram';
  help: string;
  /** Extra constant labels (several columns can feed one metric: responses_total{code="2xx"}). */
  labels?: Record<string, string>;
  /** For an enum-valued column: one series per value, 1 for the current one. */
  enumLabel?: string;
  enumValues?: readonly string[];
  /** Multiply the value (ms → s). */
  scale?: number;
  /** Which row kinds export this metric (default both). */
  kinds?: readonly RowKind[];
}

export interface Column {
  /** Key in JSON and CSV. */
  key: string;
  /** Short header on the page. */
  title: string;
  /** Group header on the page. */
  group: string;
  /** Tooltip on the page; HELP text where no PromSpec help is given. */
  help: string;
  /**
   * Page visibility: 1 (default) always, 2 hidden on phones, 3 only on wide screens (>= 1500 px).
   * The at-a-glance columns stay on every screen; the rest is in CSV/JSON/metrics anyway.
   */
  tier?: 2 | 3;
  value(r: Row): Value;
  /** Display form on the page (escaped by the renderer); default String(value). */
  display?(v: Value, r: Row): string;
  prom?: PromSpec;
}

export const STATES: readonly EffectiveState[] = ['UP', 'DOWN', 'DRAIN', 'MAINT'];

// ---- formatting ----------------------------------------------------------------------------------

export function fmtBytes(v: Value): string {
  if (typeof v !== 'number') return '';
  if (v < 1024) return String(v);
  const u = ['K', 'M', 'G', 'T', 'P'];
  let x = v / 1024, i = 0;
  while (x >= 1024 && i < u.length - 1) { x /= 1024; i++; }
  return (x < 10 ? x.toFixed(1) : Math.round(x).toString()) + u[i];
}

export function fmtDuration(sec: Value): string {
  if (typeof sec !== 'number' || !Number.isFinite(sec)) return '';
  if (sec < 1) return sec === 0 ? '0s' : '<1s';
  const s = Math.floor(sec);
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`;
  if (s < 86400) return `${Math.floor(s / 3600)}h${String(Math.floor(s / 60) % 60).padStart(2, '0')}m`;
  return `${Math.floor(s / 86400)}d${String(Math.floor(s / 3600) % 24).padStart(2, '0')}h`;
}

function fmtCount(v: Value): string {
  if (typeof v !== 'number') return v ?? '';
  if (v < 100_000) return String(Math.round(v * 10) / 10);
  if (v < 10_000_000) return (v / 1000).toFixed(0) + 'k';
  return (v / 1e6).toFixed(1) + 'M';
}

const backendOnly = (f: (r: Row, b: Backend) => Value) => (r: Row): Value => (r.b ? f(r, r.b) : null);

/** Status text: UP / DOWN / DRAIN / MAINT, with a pending transition ("DOWN 1/2"), as HAProxy. */
export function statusText(r: Row): string {
  if (!r.b) return r.serving === false ? 'STOP' : 'OPEN';
  const s = r.removing ? 'REMOVING' : stateOf(r.b);
  return r.transition && !r.removing ? `${s} ${r.transition}`.trim() : s;
}

function stateOf(b: Backend): EffectiveState {
  if (b.admin === 'maint') return 'MAINT';
  if (b.health === 'down') return 'DOWN';
  if (b.admin === 'drain') return 'DRAIN';
  return 'UP';
}

// ---- the table ----------------------------------------------------------------------------------

export const COLUMNS: readonly Column[] = [
  { key: 'listen', title: 'Listen', group: '', help: 'listen section', value: (r) => r.listen },
  { key: 'name', title: 'Name', group: '', help: 'backend name (TOTAL: the listen section)', value: (r) => r.name },
  { key: 'address', title: 'Address', group: '', help: 'backend host:port', tier: 3, value: backendOnly((_r, b) => b.address) },
  {
    key: 'status', title: 'Status', group: 'Server', help: 'UP, DOWN, DRAIN (no new sessions), MAINT (out of service); "DOWN 1/2" = 1 of 2 checks needed to change',
    value: statusText,
    prom: { metric: 'state', type: 'gauge', help: 'Effective state: 1 for the current one of UP, DOWN, DRAIN, MAINT', enumLabel: 'state', enumValues: STATES, kinds: ['backend'] },
  },
  {
    key: 'up', title: 'Up', group: 'Server', help: '1 when the backend takes new sessions (UP), else 0; for TOTAL: backends UP',
    tier: 3, value: (r) => (r.b ? (stateOf(r.b) === 'UP' ? 1 : 0) : r.upCount ?? 0),
    display: (v, r) => (r.b ? '' : `${v}/${r.backendCount ?? 0}`),
    prom: { metric: 'up', type: 'gauge', help: 'Backend takes new sessions (1) or not (0); listen: number of backends UP' },
  },
  {
    key: 'last_check', title: 'Check', group: 'Server', help: 'last health check result (HAProxy codes: L7OK, L7STS, L4CON, L4TOUT…)',
    tier: 2, value: backendOnly((_r, b) => (b.lastCheck ? b.lastCheck.code + (b.lastCheck.status ? '/' + b.lastCheck.status : '') : b.check ? '' : 'no check')),
  },
  {
    key: 'check_ms', title: 'Chk ms', group: 'Server', help: 'duration of the last health check',
    tier: 3, value: backendOnly((_r, b) => b.lastCheck?.durationMs ?? null),
    display: (v) => (typeof v === 'number' ? String(Math.round(v)) : ''),
    prom: { metric: 'check_duration_seconds', type: 'gauge', help: 'Duration of the last health check', scale: 1 / 1000, kinds: ['backend'] },
  },
  {
    key: 'weight', title: 'Wght', group: 'Server', help: 'configured/admin weight (slow start share in parentheses)', tier: 2,
    value: backendOnly((_r, b) => b.weight),
    display: (v, r) => (r.b && r.effWeight !== undefined && r.effWeight < r.b.weight ? `${v} (${Math.round((100 * r.effWeight) / r.b.weight)}%)` : String(v ?? '')),
    prom: { metric: 'weight', type: 'gauge', help: 'Configured or admin-set weight', kinds: ['backend'] },
  },
  {
    key: 'effective_weight', title: 'Eff', group: 'Server', help: 'weight used now (slow start applied)',
    tier: 3, value: (r) => (r.b ? Math.round((r.effWeight ?? r.b.weight) * 100) / 100 : null),
    prom: { metric: 'effective_weight', type: 'gauge', help: 'Weight used by the balancer now (slow start applied)', kinds: ['backend'] },
  },
  { key: 'role', title: 'Act/Bck', group: 'Server', help: 'active or backup server', tier: 3, value: backendOnly((_r, b) => (b.backup ? 'backup' : 'active')), display: (v) => (v === 'backup' ? 'bck' : v ? 'act' : '') },
  {
    key: 'check_failures', title: 'Chk fail', group: 'Server', help: 'failed health checks',
    tier: 3, value: (r) => r.checkFailures ?? null,
    prom: { metric: 'check_failures_total', type: 'counter', help: 'Failed health checks', kinds: ['backend'] },
  },
  {
    key: 'downs', title: 'Downs', group: 'Server', help: 'transitions to DOWN',
    tier: 2, value: backendOnly((_r, b) => b.downs),
    prom: { metric: 'downs_total', type: 'counter', help: 'Transitions to DOWN', kinds: ['backend'] },
  },
  {
    key: 'downtime_s', title: 'Downtime', group: 'Server', help: 'total time spent DOWN',
    tier: 3, value: backendOnly((r, b) => Math.round((b.downtimeMs + (b.downSince ? r.now - b.downSince : 0)) / 100) / 10),
    display: (v) => (v ? fmtDuration(v) : ''),
    prom: { metric: 'downtime_seconds_total', type: 'counter', help: 'Total time spent DOWN', kinds: ['backend'] },
  },
  {
    key: 'since_change_s', title: 'Since', group: 'Server', help: 'time since the last state change (reason in the tooltip)',
    tier: 3, value: backendOnly((r, b) => Math.max(0, Math.round((r.now - b.lastChange) / 1000))),
    display: (v) => fmtDuration(v),
  },
  {
    key: 'cur', title: 'Cur', group: 'Sessions', help: 'sessions (requests) in flight',
    value: (r) => r.c.cur, prom: { metric: 'current_sessions', type: 'gauge', help: 'Requests in flight' },
  },
  {
    key: 'tunnels_cur', title: 'Tun', group: 'Sessions', help: 'Upgrade (WebSocket) tunnels open now (also counted in Cur)',
    tier: 3, value: (r) => r.c.tunnelsCur, prom: { metric: 'current_tunnels', type: 'gauge', help: 'Upgrade (WebSocket) tunnels open now' },
  },
  {
    key: 'tunnels', title: 'Tun tot', group: 'Sessions', help: 'Upgrade (WebSocket) tunnels opened since start',
    tier: 3, value: (r) => r.c.tunnels, display: fmtCount, prom: { metric: 'tunnels_total', type: 'counter', help: 'Upgrade (WebSocket) tunnels opened since start' },
  },
  {
    key: 'parked', title: 'Parked', group: 'Sessions', help: 'requests of open keep-alive connections that waited for a later event-loop turn so new connections were served first (global.turn_budget; TOTAL row only)',
    tier: 3, value: (r) => (r.kind === 'total' ? r.c.parked : null),
    prom: { metric: 'parked_requests_total', type: 'counter', help: 'Requests of open keep-alive connections served in a later event-loop turn (global.turn_budget)', kinds: ['total'] },
  },
  { key: 'max', title: 'Max', group: 'Sessions', help: 'most sessions in flight at once', tier: 3, value: (r) => r.c.max, prom: { metric: 'max_sessions', type: 'gauge', help: 'Most requests in flight at once since start' } },
  { key: 'total', title: 'Total', group: 'Sessions', help: 'sessions since start', tier: 2, value: (r) => r.c.total, display: fmtCount, prom: { metric: 'sessions_total', type: 'counter', help: 'Requests since start' } },
  { key: 'rate', title: 'Rate', group: 'Sessions', help: 'sessions per second (last 5 s)', value: (r) => Math.round(r.rate * 10) / 10, display: fmtCount },
  {
    key: 'last_session_s', title: 'Last', group: 'Sessions', help: 'time since the last session',
    tier: 2, value: (r) => (r.c.lastSession ? Math.max(0, Math.round((r.now - r.c.lastSession) / 100) / 10) : null),
    display: (v) => (v === null ? 'never' : fmtDuration(v)),
    prom: { metric: 'last_session_seconds', type: 'gauge', help: 'Seconds since the last request started (absent if none)' },
  },
  {
    key: 'qcur', title: 'Cur', group: 'Queue', help: 'requests waiting for a slot (server maxconn): server rows, its own queue (sticky requests); TOTAL, the backend queue',
    tier: 2, value: (r) => r.c.qcur, prom: { metric: 'queue_current', type: 'gauge', help: 'Requests waiting for a server slot (server maxconn); listen: the backend queue' },
  },
  { key: 'qmax', title: 'Max', group: 'Queue', help: 'most requests waiting at once', tier: 3, value: (r) => r.c.qmax, prom: { metric: 'queue_max', type: 'gauge', help: 'Most requests waiting at once since start' } },
  {
    key: 'qtime_ms', title: 'Avg ms', group: 'Queue', help: 'mean time waited by the requests that left this queue for a server (HAProxy Tw; TOTAL: the backend queue)',
    tier: 3, value: (r) => (r.c.queued ? Math.round((r.c.queueMs / r.c.queued) * 10) / 10 : null),
  },
  {
    key: 'queue_timeouts', title: 'Tout', group: 'Queue', help: 'requests that waited timeouts.queue and got 503', tier: 3,
    value: (r) => r.c.queueTimeouts, prom: { metric: 'queue_timeouts_total', type: 'counter', help: 'Requests answered 503 after waiting timeouts.queue for a slot' },
  },
  {
    key: 'queue_full', title: 'Full', group: 'Queue', help: 'refused at once with the queue full (maxqueue): HTTP 503, TCP closed (TOTAL: the backend queue); a full server queue counts here and balances again', tier: 3,
    value: (r) => r.c.queueFull, prom: { metric: 'queue_full_total', type: 'counter', help: 'Requests or connections that found the queue full (maxqueue)' },
  },
  {
    key: 'queue_seconds', title: 'Q s', group: 'Queue', help: 'total time waited in this queue by the requests that left it for a server', tier: 3,
    value: (r) => Math.round(r.c.queueMs) / 1000, display: (v) => String(v ?? ''),
    prom: { metric: 'queue_seconds_total', type: 'counter', help: 'Total time waited in this queue (server: its own; listen: the backend queue) by the requests that left it for a server' },
  },
  {
    key: 'queued', title: 'Tot', group: 'Queue', help: 'requests that entered a queue since start', tier: 3,
    value: (r) => r.c.queued, prom: { metric: 'queued_total', type: 'counter', help: 'Requests that entered a queue since start' },
  },
  { key: 'bytes_in', title: 'In', group: 'Bytes', help: 'bytes received from clients (heads included)', tier: 2, value: (r) => r.c.bytesIn, display: fmtBytes, prom: { metric: 'bytes_in_total', type: 'counter', help: 'Request bytes received from clients' } },
  { key: 'bytes_out', title: 'Out', group: 'Bytes', help: 'bytes sent to clients (heads included)', tier: 2, value: (r) => r.c.bytesOut, display: fmtBytes, prom: { metric: 'bytes_out_total', type: 'counter', help: 'Response bytes sent to clients' } },
  { key: 'err_req', title: 'Req', group: 'Errors', help: 'requests refused before routing (malformed, timeouts)', tier: 3, value: (r) => r.c.errReq, prom: { metric: 'errors_total', type: 'counter', help: 'Errors by type: request (refused before routing), connection (to a backend), response (failed or aborted)', labels: { type: 'request' } } },
  { key: 'err_conn', title: 'Conn', group: 'Errors', help: 'connection failures to a backend', tier: 2, value: (r) => r.c.errConn, prom: { metric: 'errors_total', type: 'counter', help: '', labels: { type: 'connection' } } },
  { key: 'err_resp', title: 'Resp', group: 'Errors', help: 'failed or aborted responses', tier: 2, value: (r) => r.c.errResp, prom: { metric: 'errors_total', type: 'counter', help: '', labels: { type: 'response' } } },
  {
    key: 'refused_conn', title: 'Refused', group: 'Errors', help: 'client connections refused at accept: global.maxconn or the listen maxconn reached, or the open-file limit (TOTAL row only)',
    tier: 2, value: (r) => (r.kind === 'total' ? r.c.refusedConn : null),
    prom: { metric: 'refused_connections_total', type: 'counter', help: 'Client connections refused at accept (global.maxconn reached, or an accept failure such as EMFILE)', kinds: ['total'] },
  },
  {
    key: 'limited', title: 'Limit', group: 'Errors', help: 'requests answered 429 by a per-client limit (limits.conn_per_source / rate_per_source; TOTAL row only)',
    tier: 3, value: (r) => (r.kind === 'total' ? r.c.limited : null),
    prom: { metric: 'limited_requests_total', type: 'counter', help: 'Requests answered 429 by a per-client limit (limits.*)', kinds: ['total'] },
  },
  {
    key: 'denied_conn', title: 'Denied', group: 'Errors', help: 'client connections closed at accept by allow/deny (TOTAL row only)',
    tier: 3, value: (r) => (r.kind === 'total' ? r.c.deniedConn : null),
    prom: { metric: 'denied_connections_total', type: 'counter', help: 'Client connections closed at accept by the allow/deny source lists', kinds: ['total'] },
  },
  {
    key: 'err_proxy', title: 'PROXY', group: 'Errors', help: 'connections refused at the PROXY protocol header (accept_proxy: untrusted source, malformed, oversized, timeout; TOTAL row only)',
    tier: 3, value: (r) => (r.kind === 'total' ? r.c.proxyRefused : null),
    prom: { metric: 'proxy_header_refused_total', type: 'counter', help: 'Connections refused at the PROXY protocol header (accept_proxy)', kinds: ['total'] },
  },
  {
    key: 'err_hello', title: 'Hello', group: 'Errors', help: 'TLS passthrough: connections closed without a readable ClientHello (garbage, truncated, timeout; TOTAL row only)',
    tier: 3, value: (r) => (r.kind === 'total' ? r.c.helloRefused : null),
    prom: { metric: 'tls_hello_refused_total', type: 'counter', help: 'TLS passthrough connections closed without a readable ClientHello', kinds: ['total'] },
  },
  {
    key: 'flows_evicted', title: 'Evict', group: 'Errors', help: 'UDP flows evicted (oldest first) because udp.max_flows was reached (TOTAL row only)',
    tier: 3, value: (r) => (r.kind === 'total' ? r.c.flowsEvicted : null),
    prom: { metric: 'udp_flows_evicted_total', type: 'counter', help: 'UDP flows evicted because udp.max_flows was reached', kinds: ['total'] },
  },
  {
    key: 'h2_refused', title: 'H2', group: 'Errors', help: 'HTTP/2 streams and connections refused by the h2 limits (rapid reset, floods, header lists, idle; TOTAL row only; by reason in /metrics pairlb_h2_refused_total)',
    tier: 3, value: (r) => (r.kind === 'total' ? h2Refusals(r.c).reduce((n, [, v]) => n + v, 0) : null),
  },
  { key: 'retries', title: 'Retr', group: 'Warnings', help: 'retries to another attempt', tier: 3, value: (r) => r.c.retries, prom: { metric: 'retries_total', type: 'counter', help: 'Retried attempts' } },
  { key: 'redispatches', title: 'Redis', group: 'Warnings', help: 'requests redispatched to another backend', tier: 3, value: (r) => r.c.redispatches, prom: { metric: 'redispatches_total', type: 'counter', help: 'Requests redispatched to another backend' } },
  ...(['1xx', '2xx', '3xx', '4xx', '5xx'] as const).map((code, i): Column => ({
    key: 'http_' + code, title: code, group: 'HTTP', help: `responses with status ${code}`, tier: code === '5xx' ? undefined : code === '2xx' || code === '4xx' ? 2 : 3,
    value: (r) => r.c.status[i + 1], display: fmtCount,
    prom: { metric: 'responses_total', type: 'counter', help: 'Responses by status class', labels: { code } },
  })),
  { key: 'http_other', title: 'other', group: 'HTTP', help: 'responses with another status', tier: 3, value: (r) => r.c.status[0], prom: { metric: 'responses_total', type: 'counter', help: '', labels: { code: 'other' } } },
  {
    key: 'rt_avg_ms', title: 'Avg ms', group: 'HTTP', help: 'mean total response time since start',
    tier: 3, value: (r) => {
      let n = 0;
      for (let i = 0; i < r.c.rtCounts.length; i++) n += r.c.rtCounts[i];
      return n ? Math.round((r.c.rtSum / n) * 10000) / 10 : null;
    },
    prom: { metric: 'response_time_seconds', type: 'histogram', help: 'Total response time (first byte in to last byte out)' },
  },
  { key: 'origin', title: 'Origin', group: '', help: 'config, runtime (admin API) or clone (scaler)', tier: 3, value: backendOnly((_r, b) => b.origin) },
  { key: 'reason', title: 'Reason', group: '', help: 'reason of the last state change', tier: 3, value: backendOnly((_r, b) => b.lastReason) },
];

/** Columns the page shows as cells (listen is the caption; address sits under the name; reason is the status tooltip). */
export const PAGE_COLUMNS = COLUMNS.filter((c) => c.key !== 'listen' && c.key !== 'reason' && c.key !== 'origin' && c.key !== 'effective_weight' && c.key !== 'up' && c.key !== 'address');

export function rowValues(r: Row): Record<string, Value> {
  const o: Record<string, Value> = {};
  for (const c of COLUMNS) o[c.key] = c.value(r);
  return o;
}
