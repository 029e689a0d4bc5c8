import { hostname } from 'node:os';
import { dirname } from 'node:path';
import { EventEmitter } from 'node:events';
import type { Config } from './config/schema.js';
import { BackendSet } from './backends/backend-set.js';
import { sitesOf } from './config/sites.js';
import { CounterStore } from './stats/counters.js';
import { StateStore } from './state/store.js';
import { availableParallelism } from 'node:os';
import { localDataPlane, watchCertificates } from './proxy/manager.js';
import { WorkerPool } from './proxy/workers.js';
import { resolveWorkers, type DataPlaneControl } from './proxy/contract.js';
import type { LivenessProbe } from './ha/sd-notify.js';
import { TicketKeys } from './tls/ticket-keys.js';
import { readKeyFile } from './ha/advert.js';
import { setLogLevel, type Logger } from './log.js';
import { restartKeys, type RestartKey } from './config/restart.js';
import type { StatusNote } from './admin/status.js';

/** What a reload did: `changes` applied besides listens/backends, `restart` keys that wait for a restart. */
export interface ReloadResult { applied: boolean; reason?: string; changes: string[]; restart: RestartKey[] }
import { Http01Tokens } from './acme/http01.js';
import { writePlaceholders } from './acme/placeholder.js';
import { LoopLag, type LagSnapshot } from './ha/loop-lag.js';

/**
 * The composition root: one App per process. The control plane modules (health, HA, scaler,
 * stats/admin) are `Module`s: they are constructed with the App, started in order, told about
 * reloads, and stopped in reverse order.
 *
 * Every module changes backends only through `app.backends` and persists/replicates its runtime
 * state only through `app.state`.
 */
export interface Module {
  readonly name: string;
  start(): Promise<void> | void;
  /** A new, already validated config. Throwing here aborts nothing: the error is logged. */
  reload?(cfg: Config): Promise<void> | void;
  stop(): Promise<void> | void;
}

export type ModuleFactory = (app: App) => Module | undefined;

/** Modules register a factory here (src/modules.ts imports them all); order = start order. */
export const moduleFactories: ModuleFactory[] = [];

/**
 * Role of this node: 'standalone' without HA; HA sets 'master' | 'backup' | 'fault' | 'init' and
 * emits 'role' (role, reason). Only the master (or a standalone node) runs the scaler.
 */
export type Role = 'standalone' | 'init' | 'backup' | 'master' | 'fault';

export class App extends EventEmitter {
  role: Role = 'standalone';
  cfg: Config;
  readonly node: string;
  readonly backends: BackendSet;
  readonly counters = new CounterStore();
  readonly state: StateStore;
  /** The data plane: in this thread (global.workers: 0) or in worker threads. */
  readonly proxy: DataPlaneControl;
  readonly modules: Module[] = [];
  /**
   * What must answer for systemd's WATCHDOG=1 (src/ha/sd-notify.ts) besides this event loop: the HA
   * loop registers itself here, data-plane workers can do the same.
   */
  readonly liveness: LivenessProbe[] = [];
  /** TLS session ticket keys: every TLS server calls `tickets.attach(server)` (src/tls/ticket-keys.ts). */
  readonly tickets: TicketKeys;
  /** ACME HTTP-01 challenge answers, read by every plain listener before routing (src/acme/http01.ts). */
  readonly http01 = new Http01Tokens();
  /**
   * Event-loop lag per thread (stats JSON, /metrics): 'main' is this thread; the HA module adds its
   * loop's, data-plane workers can add theirs.
   */
  readonly threadLag = new Map<string, () => LagSnapshot | undefined>();
  private readonly mainLag = new LoopLag();
  private started = false;

  constructor(cfg: Config, readonly log: Logger, opts: { stateDir?: string | null } = {}) {
    super();
    this.cfg = cfg;
    this.node = cfg.global.node ?? hostname();
    this.backends = new BackendSet();
    const dir = opts.stateDir === null ? undefined : (opts.stateDir ?? cfg.global.state_dir);
    this.state = new StateStore(dir, log.child({ mod: 'state' }), this.node);
    this.tickets = new TicketKeys(cfg.tls_tickets, {
      log: log.child({ mod: 'tls' }),
      store: this.state,
      // Shared by the pair only where the state is replicated (sealed with the HA key).
      haKey: () => (this.cfg.ha?.enabled && this.cfg.ha.replicate ? readKeyFile(this.cfg.ha.key_file) : undefined),
      active: () => this.isActive(),
    });
    this.on('role', () => this.tickets.onRole());
    const workers = resolveWorkers(cfg.global.workers, availableParallelism());
    if (workers > 0) {
      const pool = new WorkerPool(this, workers);
      this.proxy = pool;
      // systemd's WATCHDOG=1 only while every worker's event loop answers too.
      for (let i = 0; i < workers; i++) this.liveness.push({ name: `worker ${i}`, ping: () => pool.ping(i) });
    } else this.proxy = localDataPlane(this);
    watchCertificates(this);
    this.threadLag.set('main', () => this.mainLag.snapshot());
    this.backends.on('change', (ev) => {
      if (ev.from !== ev.to) log.info({ mod: 'backends', ...ev }, `backend ${ev.listen}/${ev.backend} ${ev.from} -> ${ev.to}: ${ev.reason}`);
    });
  }

  private readonly noteProviders = new Set<() => StatusNote[]>();

  /**
   * The hook for `pairlb status`: a part of the control plane that can be unhealthy while every
   * backend is UP (scaler alarms, certificates about to expire) registers a provider; its notes
   * are folded into the Nagios verdict (src/admin/status.ts). Returns the unregister function.
   */
  addStatusNotes(fn: () => StatusNote[]): () => void {
    this.noteProviders.add(fn);
    return () => { this.noteProviders.delete(fn); };
  }

  statusNotes(): StatusNote[] {
    const out: StatusNote[] = [];
    for (const fn of this.noteProviders) {
      try { out.push(...fn()); } catch (e) { out.push({ source: 'status', level: 1, text: `a health provider failed: ${(e as Error).message}` }); }
    }
    return out;
  }

  setRole(role: Role, reason: string): void {
    if (role === this.role) return;
    const from = this.role;
    this.role = role;
    this.log.info({ mod: 'ha', from, to: role, reason }, `role ${from} -> ${role}: ${reason}`);
    this.emit('role', role, reason);
  }

  /** The scaler and other master-only duties run when this is true. */
  isActive(): boolean { return this.role === 'master' || this.role === 'standalone'; }

  async start(): Promise<void> {
    this.backends.applyConfig(sitesOf(this.cfg).pools);
    this.state.load();
    this.state.register('backends', {
      export: () => this.backends.exportRuntime(),
      import: (v) => this.backends.importRuntime(v as ReturnType<BackendSet['exportRuntime']>),
    });
    this.backends.on('runtime', () => this.state.changed('backends'));
    this.tickets.start();
    writePlaceholders(this.cfg, this.state.file ? dirname(this.state.file) : undefined, this.log);
    await this.proxy.start();
    for (const f of moduleFactories) {
      const m = f(this);
      if (m) this.modules.push(m);
    }
    for (const m of this.modules) await m.start();
    this.started = true;
    this.log.info({ node: this.node, listens: Object.fromEntries(sitesOf(this.cfg).frontends.map((l) => { const a = this.proxy.address(l.name); return [l.name, a ? `${a.host}:${a.port}` : l.bind]; })) }, 'pairlb started');
  }

  /**
   * Apply a new validated config live. The caller validated it: an invalid file never gets here.
   * Reloads are serialized (SIGHUP and the admin API may overlap): each waits for the previous one,
   * and a reload queued behind a newer one is skipped, so the newest config always ends up applied.
   * A stopping App ignores reloads (a listener opened now would never be closed).
   */
  reload(cfg: Config): Promise<ReloadResult> {
    if (this.stopping) { this.log.warn('reload ignored: stopping'); return Promise.resolve({ applied: false, reason: 'stopping', changes: [], restart: [] }); }
    const gen = ++this.reloadGen;
    const run = this.reloading.then(async (): Promise<ReloadResult> => {
      if (gen !== this.reloadGen || this.stopping) return { applied: false, reason: gen !== this.reloadGen ? 'superseded by a newer reload' : 'stopping', changes: [], restart: [] };
      const restart = restartKeys(this.cfg, cfg, new Set(this.modules.map((m) => m.name)));
      const changes = this.applyLog(this.cfg.global.log, cfg.global.log);
      this.cfg = cfg;
      for (const c of this.backends.applyConfig(sitesOf(cfg).pools)) {
        this.log.info({ mod: 'backends', listen: c.listen, backend: c.backend, changes: c.changes }, `reload: ${c.listen}/${c.backend}: ${c.changes.join('; ')}`);
      }
      this.tickets.reload(cfg.tls_tickets);
      writePlaceholders(cfg, this.state.file ? dirname(this.state.file) : undefined, this.log);
      await this.proxy.reload(cfg);
      for (const m of this.modules) {
        try { await m.reload?.(cfg); } catch (e) { this.log.error({ err: e, mod: m.name }, 'module reload failed'); }
      }
      for (const r of restart) this.log.warn({ mod: 'config', key: r.key }, `reload: ${r.key} changed: needs a restart (${r.why})`);
      this.log.info({ changes, restart: restart.map((r) => r.key) }, restart.length ? `config reloaded; needs a restart for: ${restart.map((r) => r.key).join(', ')}` : 'config reloaded');
      return { applied: true, changes, restart };
    });
    this.reloading = run.then(() => {}, () => {});
    return run;
  }

  /** global.log on reload: the level of every logger, and the access log's format and destination. */
  private applyLog(old: Config['global']['log'], next: Config['global']['log']): string[] {
    const out: string[] = [];
    if (old.level !== next.level) {
      if (setLogLevel(this.log, next.level)) out.push(`log level ${old.level} -> ${next.level}`);
    }
    const a = this.proxy.access.configure(next);
    if (a !== undefined) out.push(a);
    return out;
  }

  private reloading: Promise<void> = Promise.resolve();
  private reloadGen = 0;
  /** Set by stop(): reloads are refused from then on. */
  stopping = false;

  /** Graceful stop: modules first (HA hands the VIP over), then the proxy drains in-flight requests. */
  async stop(drainMs?: number): Promise<void> {
    this.stopping = true;
    await this.reloading;
    for (const m of [...this.modules].reverse()) {
      try { await m.stop(); } catch (e) { this.log.error({ err: e, mod: m.name }, 'module stop failed'); }
    }
    await this.proxy.stop(drainMs);
    this.tickets.stop();
    this.backends.close();
    this.state.close();
    this.mainLag.close();
    if (this.started) this.log.info('pairlb stopped');
  }
}
