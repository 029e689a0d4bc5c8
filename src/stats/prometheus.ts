import { acmeOf } from '../acme/module.js';
import type { Registry } from 'prom-client';
import { lazy } from '../lazy.js';

const promClient = lazy<{ Registry: typeof Registry }>('prom-client');
import type { App, Role } from '../app.js';
import { COLUMNS, type Column, type Row, type RowKind } from './columns.js';
import { RT_BUCKETS } from './counters.js';
import { buildTables, findModule, panelStatus, type ListenTable, type RowOpts } from './model.js';
import type { LoginGuard } from './login-guard.js';
import { tlsStatuses } from '../tls/status.js';
import { FAILURE_REASONS } from '../tls/terminator.js';
import { h2Refusals } from '../h2/guard.js';

/**
 * Prometheus exposition with prom-client, driven by the same column table as the page.
 *
 * Every metric is a *custom collector* registered on the registry: its get() reads the hot-path
 * counters when Prometheus scrapes. The data plane never calls prom-client (no labels() lookups,
 * no inc() per request), so enabling metrics costs nothing per request.
 *
 * Other modules (HA, scaler) add their own metrics to the same registry: `metricsRegistry(app)`
 * gives it; use prom-client Gauges/Counters with a collect() callback that reads state at scrape
 * time.
 */

const registries = new WeakMap<App, Registry>();

/** The prom-client registry served at /metrics for this App. */
export function metricsRegistry(app: App): Registry {
  let r = registries.get(app);
  if (!r) registries.set(app, (r = new (promClient().Registry)()));
  return r;
}

interface Sample { metricName?: string; labels: Record<string, string | number>; value: number }

interface Collector {
  name: string;
  help: string;
  type: 'counter' | 'gauge' | 'histogram';
  aggregator: 'sum';
  get(): Promise<{ name: string; help: string; type: string; aggregator: 'sum'; values: Sample[] }>;
  reset(): void;
}

const PREFIX: Record<RowKind, string> = { backend: 'pairlb_backend_', total: 'pairlb_listen_' };
const ROLES: readonly Role[] = ['standalone', 'init', 'backup', 'master', 'fault'];
const LE = [...RT_BUCKETS.map(String), '+Inf'];

function labelsOf(r: Row): Record<string, string> {
  return r.kind === 'backend' ? { listen: r.listen, backend: r.name } : { listen: r.listen };
}

export class PromExporter {
  readonly registry: Registry;
  private tables: ListenTable[] | undefined;
  private tablesAt = -1;

  constructor(private readonly app: App, private readonly rowOpts: () => RowOpts = () => ({}), private readonly statsGuard?: LoginGuard) {
    this.registry = metricsRegistry(app);
    // Group columns by metric name: several columns can feed one metric (errors_total{type}).
    for (const kind of ['backend', 'total'] as const) {
      const groups = new Map<string, Column[]>();
      for (const c of COLUMNS) {
        if (!c.prom || (c.prom.kinds && !c.prom.kinds.includes(kind))) continue;
        const g = groups.get(c.prom.metric);
        if (g) g.push(c); else groups.set(c.prom.metric, [c]);
      }
      for (const [metric, cols] of groups) this.add(this.collector(kind, PREFIX[kind] + metric, cols));
    }
    this.add({
      name: 'pairlb_node_role', help: 'Role of this node: 1 for the current one', type: 'gauge', aggregator: 'sum', reset() {},
      get: async () => ({ name: 'pairlb_node_role', help: 'Role of this node: 1 for the current one', type: 'gauge', aggregator: 'sum',
        values: ROLES.map((role) => ({ labels: { node: this.app.node, role }, value: this.app.role === role ? 1 : 0 })) }),
    });
    this.addStatusMetrics();
  }

  /** A collector whose samples come from fn() at scrape time. */
  private fromFn(name: string, help: string, type: 'counter' | 'gauge', fn: () => Sample[]): void {
    const base = { name, help, type, aggregator: 'sum' as const };
    this.add({ ...base, reset() {}, get: async () => ({ ...base, values: fn() }) });
  }

  /**
   * HA and scaler metrics, read from their status() at scrape time (src/ha/node.ts HaStatus,
   * src/scale/scaler.ts ScaleStatus). No samples when the module is not configured.
   */
  private addStatusMetrics(): void {
    type O = Record<string, unknown>;
    const num = (v: unknown) => (typeof v === 'number' && Number.isFinite(v) ? v : undefined);
    const ha = (): O | undefined => panelStatus(this.app, 'ha');
    const peerOf = (h: O) => (h.peer && typeof h.peer === 'object' ? h.peer as O : {});
    const haOne = (f: (h: O, peer: O) => number | undefined) => (): Sample[] => {
      const h = ha();
      if (!h) return [];
      const v = f(h, peerOf(h));
      return v === undefined ? [] : [{ labels: { node: this.app.node }, value: v }];
    };
    this.fromFn('pairlb_ha_peer_alive', 'The HA peer is heard (1) or silent (0)', 'gauge', haOne((_h, p) => (typeof p.alive === 'boolean' ? (p.alive ? 1 : 0) : undefined)));
    this.fromFn('pairlb_ha_peer_last_heartbeat_seconds', 'Seconds since the last valid heartbeat from the peer', 'gauge', haOne((_h, p) => { const ms = num(p.lastSeenMs); return ms === undefined ? undefined : ms / 1000; }));
    this.fromFn('pairlb_ha_transitions_total', 'HA role transitions of this node (failovers and failbacks)', 'counter', haOne((h) => num(h.transitions)));
    this.fromFn('pairlb_ha_heartbeats_sent_total', 'Heartbeats sent', 'counter', haOne((h) => num(h.sent)));
    this.fromFn('pairlb_ha_heartbeats_received_total', 'Valid heartbeats received', 'counter', haOne((h) => num(h.received)));
    this.fromFn('pairlb_ha_late_heartbeats_total', 'Heartbeats later than warntime', 'counter', haOne((h) => num(h.lateHeartbeats)));
    this.fromFn('pairlb_ha_garps_total', 'Gratuitous ARPs sent for the VIP', 'counter', haOne((h) => num(h.garps)));
    const rep = (h: O): O => (h.replication && typeof h.replication === 'object' ? h.replication as O : {});
    this.fromFn('pairlb_ha_state_in_sync', 'Replicated state: same version as the peer (1), else 0 (behind, ahead, diverged, peer unknown)', 'gauge', haOne((h) => (typeof rep(h).sync === 'string' ? (rep(h).sync === 'same' ? 1 : 0) : undefined)));
    this.fromFn('pairlb_ha_state_resends_total', 'Replicated state documents resent because the peer had not acknowledged them', 'counter', haOne((h) => num(rep(h).resent)));
    this.fromFn('pairlb_ha_state_conflicts_total', 'Diverged replicated states reconciled (the master\'s state won); see the stats page for the differences', 'counter', haOne((h) => num((rep(h).conflicts as O | undefined)?.count)));
    this.fromFn('pairlb_ha_backlog_total', 'Genuine heartbeats older than one already accepted (link-flap backlog, reordering): not acted on', 'counter', haOne((h) => num(h.backlog)));
    this.fromFn('pairlb_ha_peer_deaths_total', 'Peer declared dead (no valid heartbeat for deadtime)', 'counter', haOne((h) => num(h.peerDeaths)));
    this.fromFn('pairlb_ha_dead_averted_total', 'Late/dead verdicts withdrawn: heartbeats were waiting unread after an event-loop stall', 'counter', haOne((h) => num(h.deadAverted)));
    this.fromFn('pairlb_ha_loop_stalls_total', 'Heartbeat ticks more than one keepalive late (own event loop stalled)', 'counter', haOne((h) => num(h.loopStalls)));
    this.fromFn('pairlb_ha_reannounces_total', 'GARP re-announcements of the VIP while master', 'counter', haOne((h) => num(h.reannounces)));
    this.fromFn('pairlb_ha_probe_answered_total', 'RFC 5227 probes answered (VIP in use elsewhere: not claimed)', 'counter', haOne((h) => num(h.probeAnswered)));
    this.fromFn('pairlb_ha_takeover_steps_cancelled_total', 'VIP adds or GARPs cancelled because the role changed before they ran', 'counter', haOne((h) => num(h.takeoverStepsCancelled)));
    this.fromFn('pairlb_ha_watchdog_fired_total', 'Times the VIP watchdog removed our VIP because our event loop stopped feeding it (hang)', 'counter', haOne((h) => num(h.watchdogFired)));
    this.fromFn('pairlb_ha_stall_step_downs_total', 'Times this node stepped down from master after its own event loop stalled for about the watchdog timeout', 'counter', haOne((h) => num(h.stallStepDowns)));
    this.fromFn('pairlb_ha_self_check_failed_total', 'Data-plane self-check rounds in which a listener of ours did not answer', 'counter', haOne((h) => num(h.selfCheckFailed)));
    this.fromFn('pairlb_ha_logs_suppressed_total', 'HA warning lines not written because the same warning repeated', 'counter', haOne((h) => num(h.logsSuppressed)));
    // Event-loop lag per thread (main, the HA loop, data-plane workers: App.threadLag), over the last 10 s window.
    this.fromFn('pairlb_event_loop_lag_seconds', 'Event-loop lag per thread over the last window (quantile 0.5, 0.99, 1 = max)', 'gauge', () => {
      const out: Sample[] = [];
      for (const [thread, f] of this.app.threadLag) {
        const l = f();
        if (l) for (const [q, v] of [['0.5', l.p50Ms], ['0.99', l.p99Ms], ['1', l.maxMs]] as const) out.push({ labels: { thread, quantile: q }, value: v / 1000 });
      }
      return out;
    });
    this.fromFn('pairlb_ha_rejected_total', 'Heartbeat packets rejected, by reason', 'counter', () => {
      const r = ha()?.rejected;
      if (!r || typeof r !== 'object') return [];
      return Object.entries(r as O).filter(([, v]) => num(v) !== undefined).map(([reason, v]) => ({ labels: { node: this.app.node, reason }, value: v as number }));
    });

    const g = () => this.app.proxy.guard;
    const one = (v: number | undefined): Sample[] => (v === undefined ? [] : [{ labels: {}, value: v }]);
    this.fromFn('pairlb_client_connections', 'Client connections open now over every listen section', 'gauge', () => one(g().open));
    this.fromFn('pairlb_maxconn', 'Client connection budget (global.maxconn, or derived from the open-file limit)', 'gauge', () => one(g().maxconn));
    this.fromFn('pairlb_open_file_limit', 'Soft open-file limit (RLIMIT_NOFILE) of the process', 'gauge', () => one(g().fdLimit));
    const guards = (): { server: string; g: LoginGuard }[] => {
      const out = this.statsGuard ? [{ server: 'stats', g: this.statsGuard }] : [];
      const admin = findModule<{ guard?: LoginGuard }>(this.app, 'admin')?.guard;
      if (admin) out.push({ server: 'admin', g: admin });
      return out;
    };
    const per = (f: (g: LoginGuard) => number) => (): Sample[] => guards().map(({ server, g }) => ({ labels: { server }, value: f(g) }));
    this.fromFn('pairlb_login_failures_total', 'Failed logins (wrong password or token) on the stats page and the admin API', 'counter', per((g) => g.counters.failures));
    this.fromFn('pairlb_login_refused_total', 'Logins refused without a check: source locked out after failures (locked), too many checks running (busy)', 'counter', () =>
      guards().flatMap(({ server, g }) => [{ labels: { server, reason: 'locked' }, value: g.counters.locked }, { labels: { server, reason: 'busy' }, value: g.counters.busy }]));
    this.fromFn('pairlb_login_lockouts_total', 'Lockouts started (a source reached login.max_failures, or failed again after a lockout)', 'counter', per((g) => g.counters.lockouts));
    this.fromFn('pairlb_login_scrypt_total', 'scrypt password verifications run', 'counter', per((g) => g.counters.scrypt));
    this.fromFn('pairlb_login_sources', 'Sources in the failed-login table (bounded by login.sources)', 'gauge', per((g) => g.limiter.size));
    this.fromFn('pairlb_fd_limit_hits_total', 'Seconds (1 s probes) the process found its descriptor table full: connections were closed unseen', 'counter', () => one(g().fdLimitHits));
    this.fromFn('pairlb_worker_requests_total', 'Requests served by each data-plane worker slot since start, replacements included (global.workers: 0 gives one row)', 'counter',
      () => this.app.proxy.workers().map((w) => ({ labels: { worker: String(w.index) }, value: w.requests })));
    this.fromFn('pairlb_worker_restarts_total', 'Data-plane workers replaced after they died', 'counter', () => one(this.app.proxy.workers().reduce((n, w) => n + w.restarts, 0)));

    // TLS binds (src/tls/status.ts): certificates with their names and expiry, handshakes by outcome.
    const tls = () => tlsStatuses(this.app);
    this.fromFn('pairlb_tls_cert_not_after_seconds', 'Expiry (notAfter, Unix seconds) of each certificate loaded on a TLS bind; in_use 0: another certificate serves all its names', 'gauge', () =>
      tls().flatMap((t) => t.certificates.map((c) => ({ labels: { listen: t.listen, names: c.names.join(','), source: c.source, key_type: c.keyType, in_use: c.inUse ? '1' : '0' }, value: Math.floor(c.notAfter / 1000) }))));
    this.fromFn('pairlb_tls_cert_files_failed', 'Certificate files left out of a TLS bind\'s directory at the last (re)load (unreadable, key mismatch, chain out of order)', 'gauge', () =>
      tls().map((t) => ({ labels: { listen: t.listen }, value: t.errors.length })));
    this.fromFn('pairlb_tls_handshakes_total', 'Finished TLS handshakes: full, or resumed (session ticket)', 'counter', () =>
      tls().flatMap((t) => [{ labels: { listen: t.listen, kind: 'full' }, value: t.counters.full }, { labels: { listen: t.listen, kind: 'resumed' }, value: t.counters.resumed }]));
    this.fromFn('pairlb_tls_sni_total', 'How the certificate was chosen: SNI exact name, SNI wildcard, SNI unknown (default certificate), no SNI (default certificate)', 'counter', () =>
      tls().flatMap((t) => [['exact', t.counters.sniExact], ['wildcard', t.counters.sniWildcard], ['unknown', t.counters.sniUnknown], ['none', t.counters.noSni]].map(([sni, v]) => ({ labels: { listen: t.listen, sni: String(sni) }, value: v as number }))));
    this.fromFn('pairlb_tls_handshake_failures_total', 'TLS handshakes that failed, by reason (timeout, plain_http, version, no_shared_cipher, bad_record, alpn, aborted, other)', 'counter', () =>
      tls().flatMap((t) => FAILURE_REASONS.map((reason) => ({ labels: { listen: t.listen, reason }, value: t.counters.failures[reason] }))));
    this.fromFn('pairlb_tls_reloads_total', 'Certificate reloads that swapped (ok) or were refused, the running certificates staying (failed)', 'counter', () =>
      tls().flatMap((t) => [{ labels: { listen: t.listen, result: 'ok' }, value: t.counters.reloads }, { labels: { listen: t.listen, result: 'failed' }, value: t.counters.reloadFailures }]));

    // HTTP/2 (src/h2/guard.ts): streams and connections refused per frontend, by reason; only frontends that refused any.
    this.fromFn('pairlb_h2_refused_total', 'HTTP/2 streams or connections refused, by reason (rapid_reset, header_list, header_flood, continuation, ping_flood, settings_flood, stream_idle, window_stall, idle, protocol)', 'counter', () => {
      const out: Sample[] = [];
      for (const [listen, c] of this.app.counters.listens) {
        const rs = h2Refusals(c);
        if (rs.some(([, v]) => v > 0)) for (const [reason, v] of rs) out.push({ labels: { listen, reason }, value: v });
      }
      return out;
    });

    // ACME (src/acme/module.ts): per certificate, the failures in a row (alert on > 0) and the renewal time.
    const acme = () => acmeOf(this.app)?.status().certs ?? [];
    this.fromFn('pairlb_acme_order_failures', 'Failed ACME orders in a row per certificate (0 after a success); the installed certificate keeps serving', 'gauge', () =>
      acme().map((c) => ({ labels: { cert: c.id }, value: c.failures })));
    this.fromFn('pairlb_acme_orders_total', 'ACME orders started per certificate since start', 'counter', () =>
      acme().map((c) => ({ labels: { cert: c.id }, value: c.orders })));
    this.fromFn('pairlb_acme_renew_at_seconds', 'When the ACME certificate is due for renewal (Unix seconds; absent: none installed)', 'gauge', () =>
      acme().filter((c) => c.renewAt).map((c) => ({ labels: { cert: c.id }, value: Math.floor(Date.parse(c.renewAt!) / 1000) })));
    this.fromFn('pairlb_tls_ticket_key_rotations_total', 'Rotations of the TLS session ticket keys made by this node', 'counter', () =>
      [{ labels: {}, value: this.app.tickets.status().rotations }]);

    const sc = (): O | undefined => panelStatus(this.app, 'scale');
    const list = (v: unknown): O[] => (Array.isArray(v) ? v.filter((x) => x && typeof x === 'object') as O[] : []);
    this.fromFn('pairlb_scale_active', 'The scaler runs on this node (1: master or standalone)', 'gauge', () => {
      const s = sc();
      return s && typeof s.active === 'boolean' ? [{ labels: { node: this.app.node }, value: s.active ? 1 : 0 }] : [];
    });
    this.fromFn('pairlb_scale_clones', 'Clones by source VDS and state', 'gauge', () => {
      const counts = new Map<string, number>();
      for (const c of list(sc()?.clones)) { const k = `${String(c.source)}\0${String(c.state)}`; counts.set(k, (counts.get(k) ?? 0) + 1); }
      return [...counts].map(([k, v]) => { const [source, state] = k.split('\0'); return { labels: { source, state }, value: v }; });
    });
    this.fromFn('pairlb_scale_load', 'Last SNMP load average (laLoad.1) per VDS or clone; absent when unknown', 'gauge', () =>
      list(sc()?.targets).flatMap((t) => { const l = t.last as O | undefined; const v = l && l.status === 'ok' ? num(l.load) : undefined; return v === undefined ? [] : [{ labels: { target: String(t.name), kind: String(t.kind) }, value: v }]; }));
    this.fromFn('pairlb_scale_sample_ok', 'Last SNMP sample was known (1) or unknown: timeout, auth, noSuch (0)', 'gauge', () =>
      list(sc()?.targets).flatMap((t) => { const l = t.last as O | undefined; return l ? [{ labels: { target: String(t.name), kind: String(t.kind) }, value: l.status === 'ok' ? 1 : 0 }] : []; }));
    this.fromFn('pairlb_scale_sample_age_seconds', 'Age of the last SNMP sample', 'gauge', () =>
      list(sc()?.targets).flatMap((t) => { const at = num((t.last as O | undefined)?.at); return at === undefined ? [] : [{ labels: { target: String(t.name), kind: String(t.kind) }, value: (Date.now() - at) / 1000 }]; }));
  }

  private add(c: Collector): void {
    // registerMetric only needs name/help/type/get: the custom-collector contract of prom-client.
    this.registry.registerMetric(c as unknown as Parameters<Registry['registerMetric']>[0]);
  }

  /** Build the rows once per scrape (every collector of a scrape reads the same snapshot). */
  private rows(kind: RowKind): Row[] {
    const now = Date.now();
    if (!this.tables || now - this.tablesAt > 50) { this.tables = buildTables(this.app, { ...this.rowOpts(), now }); this.tablesAt = now; }
    return kind === 'backend' ? this.tables.flatMap((t) => t.backends) : this.tables.map((t) => t.total);
  }

  private collector(kind: RowKind, name: string, cols: Column[]): Collector {
    const spec = cols[0].prom!;
    const help = cols.find((c) => c.prom!.help)?.prom!.help ?? cols[0].help;
    const base = { name, help, type: spec.type, aggregator: 'sum' as const };
    const get = async () => {
      const values: Sample[] = [];
      for (const r of this.rows(kind)) {
        const lbl = labelsOf(r);
        if (spec.type === 'histogram') { histogram(values, name, lbl, r); continue; }
        for (const c of cols) {
          const v = c.value(r);
          const p = c.prom!;
          if (p.enumLabel && p.enumValues) {
            const cur = typeof v === 'string' ? v.split(' ')[0] : '';
            for (const e of p.enumValues) values.push({ labels: { ...lbl, [p.enumLabel]: e }, value: cur === e ? 1 : 0 });
            continue;
          }
          if (typeof v !== 'number') continue;
          values.push({ labels: p.labels ? { ...lbl, ...p.labels } : lbl, value: p.scale ? v * p.scale : v });
        }
      }
      return { ...base, values };
    };
    return { ...base, get, reset() {} };
  }

  async text(): Promise<string> {
    this.tables = undefined;
    return this.registry.metrics();
  }

  get contentType(): string { return this.registry.contentType; }
}

function histogram(out: Sample[], name: string, lbl: Record<string, string>, r: Row): void {
  let acc = 0;
  const counts = r.c.rtCounts;
  for (let i = 0; i < counts.length; i++) {
    acc += counts[i];
    out.push({ metricName: name + '_bucket', labels: { ...lbl, le: LE[i] }, value: acc });
  }
  out.push({ metricName: name + '_sum', labels: lbl, value: r.c.rtSum });
  out.push({ metricName: name + '_count', labels: lbl, value: acc });
}
