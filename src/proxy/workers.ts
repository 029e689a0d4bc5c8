import { Worker } from 'node:worker_threads';
import { existsSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { fileURLToPath } from 'node:url';
import type { App } from '../app.js';
import type { Config } from '../config/schema.js';
import { addCounterDelta, VEC_GAUGES, type Counters } from '../stats/counters.js';
import { AcceptGuard } from './accept-guard.js';
import { SharedInflight, SlotAllocator } from './shared-inflight.js';
import { sitesOf } from '../config/sites.js';
import { TlsCounters, type TlsStatus } from '../tls/terminator.js';
import type { LagSnapshot } from '../ha/loop-lag.js';
import { portKey, resolveWorkers, routeSpecs, type AccessControl, type Addresses, type DataPlaneControl, type ListenerView, type FromWorker, type RouteSpec, type ToWorker, type WorkerInfo, type WorkerInit } from './contract.js';

/**
 * The data plane in N worker threads (global.workers >= 1), driven from the control plane.
 * Each worker (src/proxy/worker.ts) binds every listen address with SO_REUSEPORT: the kernel
 * spreads new connections over them, and a worker that dies takes only its own connections along.
 *
 * - Snapshots: on every backend-set 'publish' the listen section's RouteSpec list goes to every
 *   worker (plain data; each worker keeps its own pools and its own smooth round robin, as nginx).
 * - Counters: every worker reports deltas every FLUSH_MS and on sync(); they are added to the App's
 *   CounterStore, which stats, CSV/JSON, /metrics, drain-then-remove and the scaler read as before.
 *   What a worker had in flight when it died is taken off (cur, tunnelsCur).
 * - Passive checks: a worker's verdict goes to the backend set, which republishes to every worker.
 * - Lifecycle: a worker that exits unasked is replaced at once (after 1 s if it lived less than
 *   1 s: a crash loop must not spin); reload goes to the first worker, then (ports of new port-0
 *   binds known) to the others; stop drains every worker.
 */

/** Counter reports per worker per second at most: cheap, and fresh enough for drains (50 ms polls). */
const FLUSH_MS = 100;
/** A control request a worker does not answer within this is given up (the worker is stuck or dying). */
const ASK_MS = 1000;
const CRASH_LOOP_MS = 1000;

/**
 * The compiled worker script. Tests import src/*.ts through vitest; a worker thread runs plain
 * Node, so it always runs the built file (dist/), which `npm test` builds first.
 */
function workerScript(): URL {
  const here = new URL('./worker.js', import.meta.url);
  if (existsSync(fileURLToPath(here))) return here;
  return new URL('../../dist/proxy/worker.js', import.meta.url);
}

interface Slot {
  index: number;
  worker: Worker | undefined;
  state: WorkerInfo['state'];
  restarts: number;
  requests: number;
  startedAt: number;
  /** What this worker reported in flight (VEC_GAUGES), per Counters: taken off when it dies. */
  inflight: Map<Counters, number[]>;
  /** Event-loop lag as this worker last reported it (answers to flush). */
  lag: LagSnapshot | undefined;
  /** Latest TLS status per listen section, as this worker reported it. */
  tls: Map<string, TlsStatus>;
  ready: Promise<Addresses>;
  waiters: Map<number, (v: unknown) => void>;
}

export class WorkerPool implements DataPlaneControl {
  readonly guard: AcceptGuard;
  private readonly conn: SharedArrayBuffer;
  private readonly acceptedBuf: SharedArrayBuffer;
  private readonly slots: Slot[] = [];
  private cfg: Config;
  private addrs: Addresses = {};
  private stopping = false;
  private nextId = 1;
  private readonly onPublish = (listen: string): void => this.publish(listen);
  /** In-flight counts every worker shares (server/frontend maxconn, leastconn) and their slots. */
  private readonly inflightBuf: SharedArrayBuffer;
  readonly inflight: SharedInflight;
  private readonly alloc: SlotAllocator;
  /** Server ids per pool as last published (a server gone from its pool frees its slot once idle). */
  private readonly published = new Map<string, Set<number>>();

  constructor(private readonly app: App, readonly n: number) {
    this.cfg = app.cfg;
    this.conn = new SharedArrayBuffer(4 * n);
    this.acceptedBuf = new SharedArrayBuffer(8 * n);
    this.guard = new AcceptGuard(app.log, app.cfg.global.maxconn, { table: new Int32Array(this.conn), accepted: new Float64Array(this.acceptedBuf), slot: -1, probe: true });
    this.inflightBuf = SharedInflight.create(n);
    this.inflight = new SharedInflight(this.inflightBuf, -1);
    this.alloc = new SlotAllocator(this.inflight);
    const log = app.cfg.global.log;
    this.accessKey = JSON.stringify([log.access, log.access_file ?? null, log.access_syslog ?? null]);
  }

  get listeners(): ReadonlyMap<string, ListenerView> {
    const m = new Map<string, ListenerView>();
    // HTTP sections only, as ProxyManager.listeners (HA's self-check probes them with HTTP).
    for (const l of this.cfg.listen) if (l.mode === 'http') m.set(l.name, { address: () => this.address(l.name), tls: l.tls ? { status: () => this.tlsStatus(l.name) } : undefined });
    return m;
  }

  /**
   * A TLS bind's status over the workers: the certificates as the first worker that reported
   * loaded them (every worker reads the same files), handshake counters summed.
   */
  private tlsStatus(listen: string): TlsStatus {
    let out: TlsStatus | undefined;
    for (const s of this.slots) {
      const t = s.tls.get(listen);
      if (!t) continue;
      if (!out) { out = structuredClone(t); continue; }
      const c = out.counters as unknown as Record<string, number | Record<string, number>>;
      for (const [k, v] of Object.entries(t.counters)) {
        if (typeof v === 'number') c[k] = (c[k] as number) + v;
        else for (const [r, n] of Object.entries(v as Record<string, number>)) (c[k] as Record<string, number>)[r] += n;
      }
    }
    return out ?? { listen, certificates: [], errors: [], counters: new TlsCounters(), loadedAt: 0 };
  }

  /** global.log reloads and SIGUSR1 reach every worker's access log. */
  readonly access: AccessControl = {
    configure: (log) => {
      const key = JSON.stringify([log.access, log.access_file ?? null, log.access_syslog ?? null]);
      const changed = key !== this.accessKey;
      this.accessKey = key;
      for (const s of this.slots) this.send(s, { t: 'log', log });
      return changed ? `access log ${log.access} (every data-plane worker)` : undefined;
    },
    reopen: () => { for (const s of this.slots) this.send(s, { t: 'reopen' }); },
  };
  private accessKey: string;
  private http01Version = -1;
  private dropHttp01: (() => void) | undefined;
  private readonly onTickets = (key: Uint8Array): void => { for (const s of this.slots) this.send(s, { t: 'tickets', key }); };
  private readonly onRole = (): void => { for (const s of this.slots) this.send(s, { t: 'clearClients' }); };

  async start(): Promise<void> {
    this.guard.start();
    this.app.backends.on('publish', this.onPublish);
    this.app.tickets.on('change', this.onTickets);
    this.app.on('role', this.onRole);
    // ACME HTTP-01 tokens change a few times per certificate order: each change is pushed at once,
    // since the ACME module asks the CA to validate right after adding a token (pebble validates
    // within milliseconds; a polled copy could still lack it).
    this.dropHttp01 = this.app.http01.onChange(() => {
      const v = this.app.http01.version;
      if (v === this.http01Version) return;
      this.http01Version = v;
      const entries = this.app.http01.entries();
      for (const s of this.slots) this.send(s, { t: 'http01', entries });
    });
    for (let i = 0; i < this.n; i++) this.slots.push({ index: i, worker: undefined, state: 'starting', restarts: 0, requests: 0, startedAt: 0, inflight: new Map(), tls: new Map(), lag: undefined, ready: Promise.resolve({}), waiters: new Map() });
    // The first worker binds port-0 addresses; the others then bind the same ports.
    this.spawn(this.slots[0]);
    this.addrs = await this.slots[0].ready;
    for (let i = 1; i < this.n; i++) this.spawn(this.slots[i]);
    await Promise.all(this.slots.slice(1).map((s) => s.ready));
    this.app.log.info({ mod: 'proxy', workers: this.n }, `data plane: ${this.n} worker thread(s)`);
    for (const s of this.slots) this.app.threadLag.set(`worker-${s.index}`, () => s.lag);
  }

  private ports(): Record<string, number> {
    const out: Record<string, number> = {};
    for (const [name, a] of Object.entries(this.addrs)) out[portKey(name, a.bind)] = a.port;
    return out;
  }

  private snapshots(): Record<string, RouteSpec[]> {
    const now = Date.now();
    const out: Record<string, RouteSpec[]> = {};
    // Every pool the backend set knows (listen sections' and `backends` pools).
    for (const name of this.app.backends.listenNames()) out[name] = this.specs(name, now);
    return out;
  }

  /** A pool's routing snapshot with each server's shared slot; servers that left free theirs once idle. */
  private specs(pool: string, now: number): RouteSpec[] {
    const routes = routeSpecs(this.app.backends, pool, now).map((r) => ({ ...r, slot: this.alloc.slotOf('s:' + r.id) }));
    const ids = new Set(routes.map((r) => r.id));
    const before = this.published.get(pool);
    this.published.set(pool, ids);
    if (before) for (const id of before) if (!ids.has(id)) this.alloc.drop('s:' + id);
    return routes;
  }

  /** Frontend name → slot (frontend maxconn over every worker). */
  private frontendSlots(cfg: Config): Record<string, number> {
    const out: Record<string, number> = {};
    for (const f of sitesOf(cfg).frontends) if (f.maxconn !== undefined) out[f.name] = this.alloc.slotOf('f:' + f.name);
    return out;
  }

  private spawn(s: Slot): void {
    const init: WorkerInit = { index: s.index, cfg: this.cfg, logLevel: this.app.log.level, ports: this.ports(), ticketKey: this.app.tickets.current(), http01: this.app.http01.entries(), accepted: this.acceptedBuf, snapshots: this.snapshots(), conn: this.conn, flushMs: FLUSH_MS, inflight: this.inflightBuf, frontendSlots: this.frontendSlots(this.cfg) };
    const w = new Worker(workerScript(), { workerData: init, name: `pairlb-data-${s.index}` });
    s.worker = w;
    s.state = 'starting';
    s.startedAt = Date.now();
    s.inflight = new Map();
    let settle: { ok: (a: Addresses) => void; fail: (e: Error) => void };
    s.ready = new Promise<Addresses>((ok, fail) => { settle = { ok, fail }; });
    s.ready.catch(() => {});
    w.on('message', (m: FromWorker) => this.onMessage(s, w, m, settle));
    w.on('error', (err) => this.app.log.error({ mod: 'proxy', worker: s.index, err }, `data-plane worker ${s.index} failed: ${err.message}`));
    w.on('exit', (code) => {
      if (s.worker !== w) return;
      s.worker = undefined;
      const wasReady = s.state === 'ready';
      s.state = 'dead';
      settle.fail(new Error(`data-plane worker ${s.index} exited (code ${code}) before serving`));
      for (const done of s.waiters.values()) done(undefined);
      s.waiters.clear();
      this.buried(s);
      if (this.stopping) return;
      this.app.log.error({ mod: 'proxy', worker: s.index, code, restarts: s.restarts }, `data-plane worker ${s.index} exited (code ${code}): replacing it; its own connections were lost`);
      if (!wasReady && s.restarts === 0 && this.slots.every((x) => x.state !== 'ready')) return; // start failed: start() reports it
      s.restarts++;
      const delay = Date.now() - s.startedAt < CRASH_LOOP_MS ? CRASH_LOOP_MS : 0;
      const t = setTimeout(() => { if (!this.stopping) this.spawn(s); }, delay);
      t.unref();
    });
  }

  /** A worker is gone: what it had in flight is over, its connections are closed. */
  private buried(s: Slot): void {
    for (const [c, g] of s.inflight) for (let i = 0; i < VEC_GAUGES.length; i++) c[VEC_GAUGES[i].key] -= g[i];
    s.inflight.clear();
    this.guard.clearSlot(s.index);
    this.inflight.clearWorker(s.index);
  }

  private onMessage(s: Slot, w: Worker, m: FromWorker, settle: { ok: (a: Addresses) => void; fail: (e: Error) => void }): void {
    if (s.worker !== w) return;
    switch (m.t) {
      case 'ready':
        s.state = 'ready';
        settle.ok(m.addresses);
        break;
      case 'startFailed': {
        const e = Object.assign(new Error(m.message), { code: m.code });
        settle.fail(e);
        break;
      }
      case 'counters': {
        const cs = this.app.counters;
        for (const [name, d] of m.listens) { this.add(s, cs.listen(name), d); s.requests += d[1]; }
        for (const [id, d] of m.backends) this.add(s, cs.backend(id), d);
        for (const [name, d] of m.pools) this.add(s, cs.pool(name), d);
        if (m.tls) for (const t of m.tls) s.tls.set(t.listen, t);
        break;
      }
      case 'passive':
        // The backend set ignores a backend that is gone or already down.
        if (this.app.backends.get(m.listen, m.backend)) this.app.backends.setHealth(m.listen, m.backend, 'down', m.reason);
        break;
      case 'flushed':
      case 'reloaded':
      case 'destroyed': {
        if (m.t === 'flushed') s.lag = m.lag;
        const done = s.waiters.get(m.id);
        s.waiters.delete(m.id);
        done?.(m);
        break;
      }
      case 'stopped':
        s.state = 'stopping';
        break;
    }
  }

  private add(s: Slot, c: Counters, d: Float64Array): void {
    addCounterDelta(c, d);
    let g = s.inflight.get(c);
    if (!g) s.inflight.set(c, (g = VEC_GAUGES.map(() => 0)));
    for (let i = 0; i < VEC_GAUGES.length; i++) g[i] += d[VEC_GAUGES[i].i];
  }

  private send(s: Slot, m: ToWorker): void { s.worker?.postMessage(m); }

  /** Ask one worker; resolves with its answer, or undefined if it does not answer within `ms`. */
  private ask<T>(s: Slot, make: (id: number) => ToWorker, ms = ASK_MS): Promise<T | undefined> {
    if (!s.worker) return Promise.resolve(undefined);
    const id = this.nextId++;
    return new Promise<T | undefined>((ok) => {
      const t = setTimeout(() => { s.waiters.delete(id); ok(undefined); }, ms);
      t.unref();
      s.waiters.set(id, (v) => { clearTimeout(t); ok(v as T | undefined); });
      this.send(s, make(id));
    });
  }

  private publish(listen: string): void {
    const routes = this.specs(listen, Date.now());
    for (const s of this.slots) this.send(s, { t: 'snapshot', listen, routes });
  }

  async reload(cfg: Config): Promise<void> {
    if (resolveWorkers(cfg.global.workers, availableParallelism()) !== this.n) this.app.log.warn({ mod: 'proxy', workers: this.n }, 'global.workers changed: takes effect at the next restart');
    this.cfg = cfg;
    const live = this.slots.filter((s) => s.worker);
    if (live.length === 0) return;
    const reloadOne = async (s: Slot, ms: number): Promise<void> => {
      const r = await this.ask<{ addresses: Addresses; error?: string }>(s, (id) => ({ t: 'config', id, cfg, ports: this.ports(), snapshots: this.snapshots(), frontendSlots: this.frontendSlots(cfg) }), ms);
      if (r?.error) throw new Error(`worker ${s.index}: ${r.error}`);
      if (r) this.addrs = { ...this.addrs, ...r.addresses };
    };
    // A reload drains removed listeners for up to their timeouts.drain before it answers.
    const ms = Math.max(0, ...cfg.listen.map((l) => l.timeouts.drain)) + 5000;
    await reloadOne(live[0], ms);
    await Promise.all(live.slice(1).map((s) => reloadOne(s, ms)));
    const names = new Set(cfg.listen.map((l) => l.name));
    for (const k of Object.keys(this.addrs)) if (!names.has(k)) delete this.addrs[k];
  }

  async stop(drainMs?: number): Promise<void> {
    this.stopping = true;
    this.app.backends.off('publish', this.onPublish);
    this.app.tickets.off('change', this.onTickets);
    this.app.off('role', this.onRole);
    this.dropHttp01?.();
    const limit = (drainMs ?? Math.max(0, ...this.cfg.listen.map((l) => l.timeouts.drain))) + 2000;
    await Promise.all(this.slots.map((s) => new Promise<void>((ok) => {
      const w = s.worker;
      if (!w) { ok(); return; }
      const t = setTimeout(() => { void w.terminate(); }, limit);
      w.once('exit', () => { clearTimeout(t); ok(); });
      this.send(s, { t: 'stop', drainMs });
    })));
    this.guard.stop();
  }

  closeIdleConnections(): void { for (const s of this.slots) this.send(s, { t: 'closeIdle' }); }

  async destroyConnectionsTo(address: string): Promise<number> {
    const rs = await Promise.all(this.slots.map((s) => this.ask<{ n: number }>(s, (id) => ({ t: 'destroyTo', id, address }))));
    return rs.reduce((n, r) => n + (r?.n ?? 0), 0);
  }

  /** Serving while at least one worker accepts on every bind (SO_REUSEPORT: the others take its share). */
  isServing(): boolean { return this.slots.some((s) => s.state === 'ready'); }

  address(listen: string): { host: string; port: number } | undefined {
    const a = this.addrs[listen];
    return a ? { host: a.host, port: a.port } : undefined;
  }

  async sync(): Promise<void> {
    await Promise.all(this.slots.map((s) => this.ask(s, (id) => ({ t: 'flush', id }), 250)));
  }

  /**
   * End worker `index` abruptly, as a crash would (its thread and sockets go at once); it is
   * replaced like any worker that died. For fault tests and for ops facing a wedged worker.
   */
  async kill(index: number): Promise<void> { await this.slots[index]?.worker?.terminate(); }

  /**
   * Liveness of worker `index` (systemd's WATCHDOG=1, App.liveness): resolves when its event loop
   * answered a flush, rejects when it has no thread or did not answer within `ms`.
   */
  async ping(index: number, ms = 10_000): Promise<void> {
    const s = this.slots[index];
    const r = s && s.state === 'ready' ? await this.ask(s, (id) => ({ t: 'flush', id }), ms) : undefined;
    if (r === undefined) throw new Error(`worker ${index} did not answer`);
  }

  workers(): WorkerInfo[] {
    return this.slots.map((s) => ({ index: s.index, threadId: s.worker?.threadId ?? 0, state: s.state, restarts: s.restarts, requests: s.requests, startedAt: s.startedAt }));
  }
}
