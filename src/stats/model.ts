import type { App, Module } from '../app.js';
import type { Backend } from '../backends/backend-set.js';
import type { Counters } from './counters.js';
import { healthOf } from '../health/checker.js';
import { rowValues, type Row, type Value } from './columns.js';
import { tlsStatuses } from '../tls/status.js';
import { sitesOf } from '../config/sites.js';

/**
 * Builds the rows of the stats table from the App at render/scrape time, and samples session rates
 * with a 1 s timer (so nothing is added to the request path).
 *
 * Other modules are read by duck typing, so the page works before/without them:
 *   health checker (healthOf(app)): rise/fall progress ("DOWN 1/2") and failed-check counts
 *   HA module     (name 'ha'):      status?() → object (node, role, peer, heartbeat age, VIP, last failover…)
 *   scaler        (name 'scale'):   status?() → object (clones, samples per VDS, decisions…)
 */

export interface HealthProgress { text?: string; failures?: number }
type ProgressFn = (listen: string, name: string) => HealthProgress | undefined;

interface StatusLike { status?(): unknown }

export function findModule<T>(app: App, name: string): (Module & T) | undefined {
  return app.modules.find((m) => m.name === name) as (Module & T) | undefined;
}

/** Sliding 5 s rate per counters object. */
export class RateSampler {
  private readonly hist = new Map<Counters, number[]>();
  private timer: NodeJS.Timeout | undefined;
  constructor(private readonly app: App, private readonly windowS = 5) {}

  start(): void {
    this.sample();
    this.timer = setInterval(() => this.sample(), 1000);
    this.timer.unref();
  }
  stop(): void { if (this.timer) clearInterval(this.timer); }

  private sample(): void {
    const seen = new Set<Counters>();
    const each = (c: Counters) => {
      seen.add(c);
      let h = this.hist.get(c);
      if (!h) this.hist.set(c, (h = []));
      h.push(c.total);
      if (h.length > this.windowS + 1) h.shift();
    };
    for (const c of this.app.counters.listens.values()) each(c);
    for (const c of this.app.counters.pools.values()) each(c);
    for (const c of this.app.counters.backends.values()) each(c);
    for (const c of this.hist.keys()) if (!seen.has(c)) this.hist.delete(c);
  }

  rate(c: Counters): number {
    const h = this.hist.get(c);
    if (!h || h.length < 2) return 0;
    return Math.max(0, (h[h.length - 1] - h[0]) / (h.length - 1));
  }
}

/**
 * One table per pool (a listen section's, or a `backends` entry's): its servers and TOTAL row.
 * `frontends`: the frontends sending requests to a `backends` pool (empty for a listen section,
 * which is its own frontend).
 */
export interface ListenTable { listen: string; total: Row; backends: Row[]; frontends: readonly string[] }

/** A `frontends` entry's own row (a listen section's frontend is its table's TOTAL). */
export interface FrontendRow { name: string; bind: string; rules: number; default_backend: string | undefined; row: Row }

export interface RowOpts { rates?: RateSampler; removing?: ReadonlySet<string>; now?: number }

export function buildTables(app: App, opts: RowOpts = {}): ListenTable[] {
  const now = opts.now ?? Date.now();
  const checker = healthOf(app);
  const progress: ProgressFn | undefined = checker && ((l, n) => {
    const p = checker.progress(l, n);
    if (!p) return undefined;
    // label is "UP", "UP 1/3" (failing), "DOWN" or "DOWN 1/2" (recovering): keep the fraction.
    return { text: p.label.split(' ')[1], failures: p.failed };
  });
  const serving = app.proxy.isServing();
  const out: ListenTable[] = [];
  const pools = new Map(sitesOf(app.cfg).pools.map((p) => [p.name, p]));
  for (const listen of app.backends.listenNames()) {
    const bs = app.backends.backends(listen);
    const rows = bs.map((b): Row => backendRow(app, b, now, opts, progress));
    const pool = pools.get(listen);
    const own = pool !== undefined && pool.from !== 'listen';
    const lc = own ? app.counters.pool(listen) : app.counters.listen(listen);
    const total: Row = {
      kind: 'total', listen, name: 'TOTAL', c: lc, now, rate: opts.rates?.rate(lc) ?? 0,
      upCount: bs.filter((b) => b.admin === 'ready' && b.health === 'up').length,
      backendCount: bs.length, serving,
    };
    out.push({ listen, total, backends: rows, frontends: own ? pool.frontends : [] });
  }
  return out;
}

/** Rows of the `frontends` entries (requests accepted, refused before routing, answered by rules). */
export function buildFrontendRows(app: App, opts: RowOpts = {}): FrontendRow[] {
  const now = opts.now ?? Date.now();
  const serving = app.proxy.isServing();
  return sitesOf(app.cfg).frontends.filter((f) => f.from === 'frontend').map((f) => {
    const c = app.counters.listen(f.name);
    const a = app.proxy.address(f.name);
    return {
      name: f.name, bind: a ? `${a.host}:${a.port}` : f.bind, rules: f.rules.length, default_backend: f.default_backend,
      row: { kind: 'total', listen: f.name, name: 'FRONTEND', c, now, rate: opts.rates?.rate(c) ?? 0, serving },
    };
  });
}

function backendRow(app: App, b: Backend, now: number, opts: RowOpts, progress: ProgressFn | undefined): Row {
  const c = app.counters.backend(b.id);
  let p: HealthProgress | undefined;
  try { p = progress?.(b.listen, b.name); } catch { p = undefined; }
  return {
    kind: 'backend', listen: b.listen, name: b.name, b, c, now,
    rate: opts.rates?.rate(c) ?? 0,
    effWeight: app.backends.effectiveWeight(b, now),
    transition: b.admin === 'maint' ? undefined : p?.text,
    checkFailures: p?.failures,
    removing: opts.removing?.has(b.listen + '/' + b.name),
  };
}

export interface RoleChange { at: number; from: string; to: string; reason: string }
const lastRoleChange = new WeakMap<App, RoleChange>();

/** Remember the App's last role change (HA emits 'role'): the pair panel shows it as the last failover. */
export function watchRoles(app: App): () => void {
  const on = (to: string, reason: string) => {
    const prev = lastRoleChange.get(app);
    lastRoleChange.set(app, { at: Date.now(), from: prev?.to ?? 'start', to, reason });
  };
  app.on('role', on);
  return () => app.off('role', on);
}

/** JSON for a panel provided by another module, or undefined when that module is not configured. */
export function panelStatus(app: App, name: 'ha' | 'scale'): Record<string, unknown> | undefined {
  const m = findModule<StatusLike>(app, name);
  if (!m) return undefined;
  let s: Record<string, unknown>;
  try {
    const v = typeof m.status === 'function' ? m.status() : {};
    s = v && typeof v === 'object' ? { ...(v as Record<string, unknown>) } : { status: v };
  } catch (e) {
    s = { error: (e as Error).message };
  }
  if (name === 'ha') {
    // What the HA status may not carry itself: the VIP (from the config) and the last role change.
    const vip = (app.cfg.ha as { vip?: { address?: string; interface?: string } } | undefined)?.vip;
    if (s.vip === undefined && vip?.address) s.vip = vip.address + (vip.interface ? ` on ${vip.interface}` : '');
    const rc = lastRoleChange.get(app);
    if (s.lastFailover === undefined && rc) s.lastFailover = { at: new Date(rc.at).toISOString(), from: rc.from, to: rc.to, reason: rc.reason };
  }
  return s;
}

/** The JSON export: same columns as the page and CSV, plus the pair and scaling panels. */
export function statsJson(app: App, opts: RowOpts = {}): Record<string, unknown> {
  const tables = buildTables(app, opts);
  return {
    node: app.node,
    role: app.role,
    time: new Date(opts.now ?? Date.now()).toISOString(),
    listens: tables.map((t) => ({ name: t.listen, ...(t.frontends.length ? { frontends: t.frontends } : {}), total: rowValues(t.total), backends: t.backends.map(rowValues) })),
    frontends: buildFrontendRows(app, opts).map((f) => ({ name: f.name, bind: f.bind, rules: f.rules, default_backend: f.default_backend ?? null, total: rowValues(f.row) })),
    ha: panelStatus(app, 'ha') ?? null,
    scale: panelStatus(app, 'scale') ?? null,
    tls: tlsStatuses(app).map((t) => ({ listen: t.listen, certificates: t.certificates, errors: t.errors, counters: t.counters })),
    // Event-loop lag per thread (ms over the last window): main, the HA loop, workers (App.threadLag).
    threads: Object.fromEntries([...app.threadLag].map(([name, f]) => [name, f() ?? null])),
    /** Data-plane threads: requests each served since it started (global.workers: 0 gives one row, thread 0). */
    workers: app.proxy.workers(),
  };
}

export function csvEscape(v: Value): string {
  if (v === null || v === undefined) return '';
  const s = String(v);
  // Leading = + - @ would be formulas in a spreadsheet (CSV injection): prefix with a quote.
  const safe = /^[=+\-@\t\r]/.test(s) && typeof v === 'string' ? "'" + s : s;
  return /[",\n\r]/.test(safe) ? '"' + safe.replace(/"/g, '""') + '"' : safe;
}
