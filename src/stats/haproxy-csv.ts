import { rowValues, type Row, type Value } from './columns.js';
import { csvEscape, type ListenTable } from './model.js';

/**
 * The stats in HAProxy's CSV format (`GET /;csv`, as HAProxy serves `<stats uri>;csv`), so that
 * tools written for HAProxy (Nagios/Icinga check_haproxy, Zabbix and Datadog templates, haproxystats,
 * scripts that `cut -d, -f18`) read pairlb without change.
 *
 * Fields: HAProxy 2.6's base list (management.txt §9.1, "CSV format"), in its order, with its names:
 * the header is checked against a real HAProxy 2.6's own `;csv` header by test/ops/haproxy-csv.test.ts.
 * Per listen section three kinds of rows, as HAProxy's proxies: FRONTEND (the listen's counters),
 * one per server, BACKEND (the same listen counters, seen from the pool). Values come from the one
 * column table (columns.ts rowValues); a field pairlb has no equivalent for is empty, as HAProxy
 * leaves a field empty that does not apply to a row. Every line ends with a comma, as HAProxy's.
 */
export const HAPROXY_FIELDS = [
  'pxname', 'svname', 'qcur', 'qmax', 'scur', 'smax', 'slim', 'stot', 'bin', 'bout', 'dreq', 'dresp', 'ereq', 'econ', 'eresp',
  'wretr', 'wredis', 'status', 'weight', 'act', 'bck', 'chkfail', 'chkdown', 'lastchg', 'downtime', 'qlimit', 'pid', 'iid', 'sid',
  'throttle', 'lbtot', 'tracked', 'type', 'rate', 'rate_lim', 'rate_max', 'check_status', 'check_code', 'check_duration',
  'hrsp_1xx', 'hrsp_2xx', 'hrsp_3xx', 'hrsp_4xx', 'hrsp_5xx', 'hrsp_other', 'hanafail', 'req_rate', 'req_rate_max', 'req_tot',
  'cli_abrt', 'srv_abrt', 'comp_in', 'comp_out', 'comp_byp', 'comp_rsp', 'lastsess', 'last_chk', 'last_agt', 'qtime', 'ctime',
  'rtime', 'ttime', 'agent_status', 'agent_code', 'agent_duration', 'check_desc', 'agent_desc', 'check_rise', 'check_fall',
  'check_health', 'agent_rise', 'agent_fall', 'agent_health', 'addr', 'cookie', 'mode', 'algo', 'conn_rate', 'conn_rate_max',
  'conn_tot', 'intercepted', 'dcon', 'dses', 'wrew', 'connect', 'reuse', 'cache_lookups', 'cache_hits', 'srv_icur', 'src_ilim',
  'qtime_max', 'ctime_max', 'rtime_max', 'ttime_max', 'eint', 'idle_conn_cur', 'safe_conn_cur', 'used_conn_cur', 'need_conn_est',
  'uweight', 'agg_server_status', 'agg_server_check_status', 'agg_check_status',
] as const;

type Field = (typeof HAPROXY_FIELDS)[number];
type Out = Partial<Record<Field, Value | undefined>>;

/** HAProxy's status words: UP, DOWN, DRAIN, MAINT; a transition keeps its "UP 1/3" form. */
function status(v: Record<string, Value>): string {
  return String(v.status ?? '');
}

const int = (v: Value | undefined): Value => (typeof v === 'number' ? Math.round(v) : v ?? null);

function common(v: Record<string, Value>): Out {
  return {
    qcur: v.qcur, qmax: v.qmax, scur: v.cur, smax: v.max, stot: v.total, bin: v.bytes_in, bout: v.bytes_out,
    eresp: v.err_resp, wretr: v.retries, wredis: v.redispatches, rate: int(v.rate),
    hrsp_1xx: v.http_1xx, hrsp_2xx: v.http_2xx, hrsp_3xx: v.http_3xx, hrsp_4xx: v.http_4xx, hrsp_5xx: v.http_5xx, hrsp_other: v.http_other,
    lastsess: v.last_session_s === null || v.last_session_s === undefined ? -1 : int(v.last_session_s),
    qtime: int(v.qtime_ms), ttime: int(v.rt_avg_ms), mode: 'http',
  };
}

function line(o: Out): string {
  return HAPROXY_FIELDS.map((f) => csvEscape(o[f] ?? null)).join(',') + ',';
}

export function renderHaproxyCsv(tables: readonly ListenTable[], opts: { pid?: number; algo?: (listen: string) => string | undefined } = {}): string {
  const pid = opts.pid ?? process.pid;
  const out = ['# ' + HAPROXY_FIELDS.join(',') + ','];
  tables.forEach((t, i) => {
    const iid = i + 1;
    const tv = rowValues(t.total);
    const base = { pxname: t.listen, pid, iid };
    out.push(line({ ...common(tv), ...base, svname: 'FRONTEND', sid: 0, type: 0, status: tv.status, ereq: tv.err_req, dreq: tv.denied_conn ?? 0, dresp: 0, req_rate: int(tv.rate), req_tot: tv.total, conn_tot: tv.total, qcur: null, qmax: null }));
    let act = 0, bck = 0, weight = 0;
    t.backends.forEach((r: Row, j) => {
      const v = rowValues(r);
      const b = r.b!;
      const up = v.up === 1;
      if (up) { if (b.backup) bck++; else act++; weight += Number(v.effective_weight ?? 0); }
      out.push(line({
        ...common(v), ...base, svname: r.name, sid: j + 1, type: 2, status: status(v),
        econ: v.err_conn, weight: v.effective_weight, uweight: v.weight, act: b.backup ? 0 : 1, bck: b.backup ? 1 : 0,
        chkfail: v.check_failures, chkdown: v.downs, lastchg: int(v.since_change_s), downtime: int(v.downtime_s),
        lbtot: v.total, check_status: b.check ? (b.lastCheck?.code ?? 'INI') : null, check_code: b.lastCheck?.status ?? null,
        check_duration: b.lastCheck ? Math.round(b.lastCheck.durationMs) : null, last_chk: b.lastCheck?.detail ?? b.lastCheck?.code ?? null,
        check_desc: b.lastCheck?.detail ?? null, addr: b.address, cookie: b.cookie,
      }));
    });
    out.push(line({
      ...common(tv), ...base, svname: 'BACKEND', sid: 0, type: 1, status: act + bck > 0 ? 'UP' : 'DOWN',
      econ: tv.err_conn, weight, uweight: weight, act, bck, chkdown: null, lbtot: tv.total, req_tot: tv.total, algo: opts.algo?.(t.listen) ?? null,
    }));
  });
  return out.join('\n') + '\n';
}
