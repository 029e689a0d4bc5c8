import type { App } from '../app.js';
import type { Config } from '../config/schema.js';
import { Listener } from './listener.js';
import { Pool } from './pool.js';
import { sitesOf } from '../config/sites.js';
import { AcceptGuard } from './accept-guard.js';
import { TurnBudget } from './turn-budget.js';
import type { ServerResponse } from 'node:http';
import { certVerdict, tlsStatuses } from '../tls/status.js';
import { AccessLog } from './access-log.js';
import { routeSpecs, type DataPlaneControl, type DataPlaneHost, type WorkerInfo } from './contract.js';
import { TcpListener, type TcpSectionConfig } from '../l4/tcp.js';
import { UdpListener } from '../l4/udp.js';
import type { ListenConfig } from '../config/schema.js';

/** A mode tcp / udp listen section (src/l4/): the part of a Listener the manager drives. */
export interface L4Listener {
  readonly s: { readonly cfg: TcpSectionConfig };
  start(): Promise<void>;
  update(cfg: TcpSectionConfig): void;
  rebuild(): void;
  stop(drainMs: number): Promise<void>;
  isServing(): boolean;
  address(): { host: string; port: number } | undefined;
  destroyConnectionsTo(address: string): number;
  /** Per-client limits table (mode tcp). */
  readonly clients?: { clear(): void };
}

/** A mode tcp / udp section, in whichever data plane `pm` is (in-process or a worker thread). */
function makeL4(pm: ProxyManager, l: TcpSectionConfig): L4Listener {
  return l.mode === 'udp' ? new UdpListener(pm, l as ListenConfig) : new TcpListener(pm, l);
}

/**
 * The data plane: one Listener per HTTP frontend (a listen section is one), one Pool per HTTP
 * backend pool (a listen section's is named after it), shared by the frontends that use it, and
 * an L4Listener per mode tcp/udp listen section (its own pool). Rebuilds a pool's routing snapshot
 * when the backend set publishes it; applies reloads (pools first, then frontends; same bind:
 * settings swapped in place, connections kept; new bind: new server started before the old one
 * drains; a removed pool's upstreams close once idle).
 */
export class ProxyManager implements DataPlaneControl {
  readonly listeners = new Map<string, Listener>();
  readonly pools = new Map<string, Pool>();
  /** mode tcp / udp sections (HA's HTTP self-check does not probe them); in every worker as HTTP's. */
  readonly l4 = new Map<string, L4Listener>();
  /** Client connection budget over every listener (global.maxconn) and refused-accept visibility. */
  readonly guard: AcceptGuard;
  /** The access log, shared by every listener; global.log reloads reconfigure it in place. */
  readonly access: AccessLog;
  /** Bound on the request work of one loop turn (global.turn_budget), shared by every listener of this thread. */
  readonly turn: TurnBudget<Listener, ServerResponse>;

  private readonly startedAt = Date.now();

  /**
   * `host`: where this data plane runs (localDataPlane: the App's thread; src/proxy/worker.ts: a
   * worker thread).
   */
  constructor(readonly host: DataPlaneHost, public cfg: Config, guardOpts?: ConstructorParameters<typeof AcceptGuard>[2]) {
    this.guard = new AcceptGuard(host.log, cfg.global.maxconn, guardOpts);
    this.access = new AccessLog(host.log, cfg.global.log);
    this.turn = new TurnBudget(cfg.global.turn_budget, (l, res) => l.resumeParked(res));
  }

  /** A pool's (or mode tcp/udp section's) snapshot changed. */
  rebuild(pool: string): void {
    const p = this.pools.get(pool);
    if (p !== undefined) { p.rebuild(); return; }
    // A mode tcp/udp listen section's own pool, or a mode tcp pool named by mode tcp frontends.
    for (const l of this.l4.values()) if (l.s.cfg.name === pool || (l instanceof TcpListener && l.usesPool(pool))) l.rebuild();
  }

  /** Per-client limits start afresh (every HA role change, issue 14). */
  clearClients(): void { for (const l of this.listeners.values()) l.clients.clear(); for (const l of this.l4.values()) l.clients?.clear(); }

  async start(): Promise<void> {
    this.guard.start();
    const cfg = this.cfg;
    this.applyPools(cfg);
    for (const l of cfg.listen) if (l.mode !== 'http') { const li = makeL4(this, l); await li.start(); this.l4.set(l.name, li); }
    for (const f of sitesOf(cfg).frontends) {
      if (f.mode === 'tcp' && f.from === 'frontend') { const li = makeL4(this, f); await li.start(); this.l4.set(f.name, li); continue; }
      if (f.mode !== 'http') continue;
      const li = new Listener(this, f);
      await li.start();
      this.listeners.set(f.name, li);
    }
  }

  /** Create, update and drop HTTP pools (mode tcp/udp sections route in their L4Listener). Returns the dropped ones. */
  private applyPools(cfg: Config): Pool[] {
    const l4 = new Set(cfg.listen.filter((l) => l.mode !== 'http').map((l) => l.name));
    // mode tcp `backends` pools are routed by their frontends' TcpListeners (src/l4/tcp.ts).
    const want = sitesOf(cfg).pools.filter((p) => !l4.has(p.name) && p.mode !== 'tcp');
    const keep = new Set(want.map((p) => p.name));
    const gone: Pool[] = [];
    for (const [name, p] of this.pools) if (!keep.has(name)) { this.pools.delete(name); gone.push(p); }
    for (const pc of want) {
      const cur = this.pools.get(pc.name);
      if (cur) { cur.update(pc); continue; }
      const p = new Pool(this, pc);
      this.pools.set(pc.name, p);
      p.rebuild();
    }
    return gone;
  }

  async reload(cfg: Config): Promise<void> {
    this.cfg = cfg;
    this.guard.update(cfg.global.maxconn);
    this.turn.budgetMs = cfg.global.turn_budget;
    const gone = this.applyPools(cfg);
    const sites = sitesOf(cfg);
    const listens = new Map(cfg.listen.map((l) => [l.name, l]));
    const keep = new Set(sites.frontends.map((l) => l.name));
    const stops: Promise<void>[] = [];
    for (const [name, li] of this.listeners) {
      if (!keep.has(name)) { this.listeners.delete(name); stops.push(li.stop(li.s.cfg.timeouts.drain)); }
    }
    for (const [name, li] of this.l4) {
      if (!keep.has(name)) { this.l4.delete(name); stops.push(li.stop(li.s.cfg.timeouts.drain)); }
    }
    for (const f of sites.frontends) {
      // An L4 section: a mode tcp/udp listen section, or a mode tcp frontend.
      const ls = f.from === 'listen' ? listens.get(f.name)! : undefined;
      const mode = ls?.mode ?? f.mode;
      const l: TcpSectionConfig | undefined = mode === 'http' ? undefined : (ls ?? f);
      const http = this.listeners.get(f.name);
      const l4 = this.l4.get(f.name);
      const old = http ?? l4;
      if (old !== undefined && old.s.cfg.mode !== mode) {
        // Another mode on the same name: the old listener stops accepting (and drains) first,
        // since the new one may need the same address.
        this.listeners.delete(f.name);
        this.l4.delete(f.name);
        stops.push(old.stop(old.s.cfg.timeouts.drain));
        await new Promise((ok) => setImmediate(ok));
      } else if (l4 !== undefined && l !== undefined) {
        if (l4.s.cfg.bind === l.bind) { l4.update(l); continue; }
        const li = makeL4(this, l);
        await li.start();
        this.l4.set(l.name, li);
        stops.push(l4.stop(l4.s.cfg.timeouts.drain));
        continue;
      }
      if (l !== undefined && mode !== 'http') { const li = makeL4(this, l); await li.start(); this.l4.set(l.name, li); continue; }
      const cur = this.listeners.get(f.name);
      if (cur && cur.s.cfg.bind === f.bind && !cur.s.cfg.tls === !f.tls) { cur.update(f); continue; }
      const li = new Listener(this, f);
      await li.start();
      this.listeners.set(f.name, li);
      if (cur) stops.push(cur.stop(cur.s.cfg.timeouts.drain));
    }
    await Promise.all(stops);
    // In-flight requests of a removed pool hold its upstreams: close() waits for them.
    for (const p of gone) p.closeUpstreams();
  }

  async stop(drainMs?: number): Promise<void> {
    await Promise.all([...this.listeners.values(), ...this.l4.values()].map((l) => l.stop(drainMs ?? l.s.cfg.timeouts.drain)));
    this.listeners.clear();
    this.l4.clear();
    for (const p of this.pools.values()) p.closeUpstreams();
    this.guard.stop();
    this.access.close();
  }

  /**
   * Close idle keep-alive client connections on every listener. HA calls it after handing the VIP
   * over: a client's next request on such a connection would reach the new master and be reset.
   */
  closeIdleConnections(): void {
    for (const l of this.listeners.values()) l.closeIdleConnections();
  }

  /**
   * Destroy client connections whose local address is `address` (a VIP this node gave up): the
   * client's packets now go to the other node, so they can never finish; without this a stopping
   * process would wait for them until timeouts.drain. Returns how many were destroyed.
   */
  destroyConnectionsTo(address: string): Promise<number> { return Promise.resolve(this.destroyConnectionsToNow(address)); }

  destroyConnectionsToNow(address: string): number {
    let n = 0;
    for (const l of this.listeners.values()) n += l.destroyConnectionsTo(address);
    for (const l of this.l4.values()) n += l.destroyConnectionsTo(address);
    return n;
  }

  /** True when every listen section is bound and accepting. HA uses it for FAULT. */
  isServing(): boolean {
    if (this.listeners.size + this.l4.size === 0) return false;
    for (const l of this.listeners.values()) if (!l.isServing()) return false;
    for (const l of this.l4.values()) if (!l.isServing()) return false;
    return true;
  }

  /** Bound address of a listen section (port 0 in tests resolves here). */
  address(listen: string): { host: string; port: number } | undefined {
    return (this.listeners.get(listen) ?? this.l4.get(listen))?.address();
  }

  /** In-process counters are the control plane's own: always in sync. */
  sync(): Promise<void> { return Promise.resolve(); }

  workers(): WorkerInfo[] {
    let requests = 0;
    for (const c of this.host.counters.listens.values()) requests += c.total;
    return [{ index: 0, threadId: 0, state: this.isServing() ? 'ready' : 'starting', restarts: 0, requests, startedAt: this.startedAt }];
  }
}

/** The in-process data plane (`global.workers: 0`): reads the App's backend set and counters directly. */
export function localDataPlane(app: App): ProxyManager {
  const host: DataPlaneHost = {
    log: app.log,
    counters: app.counters,
    routes: (pool) => routeSpecs(app.backends, pool, Date.now()),
    passiveDown: (pool, backend, reason) => app.backends.setHealth(pool, backend, 'down', reason),
    reusePort: false,
    port: () => undefined,
    tickets: app.tickets,
    http01: app.http01,
    tlsServer: (server, listen) => app.emit('tls-server', server, listen),
    // One data plane: its own counts are exact already.
    frontendSlot: () => -1,
  };
  const pm = new ProxyManager(host, app.cfg);
  app.backends.on('publish', (pool: string) => pm.rebuild(pool));
  // Per-client limits are local and short-lived: every HA role change starts them afresh, so a
  // node never applies bans from an earlier time as master, and a backup holds none (issue 14).
  app.on('role', () => pm.clearClients());
  return pm;
}

/** Certificate expiry in `pairlb status`: WARNING within 14 days, CRITICAL within 3 (either data plane). */
export function watchCertificates(app: App): void {
  app.addStatusNotes(() => {
    const v = certVerdict(tlsStatuses(app));
    return v.code > 0 && v.text ? [{ source: 'tls', level: v.code as 1 | 2, text: v.text }] : [];
  });
}
