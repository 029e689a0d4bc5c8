import type { ProxyManager } from './manager.js';
import type { RouteSpec } from './contract.js';
import type { PoolConfig } from '../config/sites.js';
import { Counters } from '../stats/counters.js';
import { poolSchema } from '../config/schema.js';
import type { Engine, Upstream } from './engine.js';
import { undiciEngine } from './engines/undici.js';
import { nativeEngine } from './engines/native.js';
import { Routing, type Route } from './routing.js';
import { insertCookieValue } from './sticky.js';
import { SlotQueues } from './queue.js';
import { SharedLoad } from './shared-inflight.js';
import type { BalanceOptions } from '../balance/index.js';
import type { Exchange } from './listener.js';

const ENGINES: Record<string, Engine> = { undici: undiciEngine, native: nativeEngine };

/**
 * Everything a request needs from its backend pool, computed once per config (re)load: the hot
 * path reads fields. The frontend side is ListenSettings (listener.ts).
 */
export class PoolSettings {
  readonly name: string;
  readonly engine: Engine;
  readonly retries: number;
  readonly retryEmpty: boolean;
  readonly retryReset: boolean;
  readonly retryTimeout: boolean;
  readonly redispatch: boolean;
  readonly cookieMode: 0 | 1 | 2; // 0 none, 1 insert, 2 prefix
  readonly cookieName: string;
  readonly cookieIndirect: boolean;
  readonly cookieNocache: boolean;
  readonly passiveConnect: number;
  readonly passive5xx: number;
  readonly balance: BalanceOptions;
  /** What the hash algorithms hash: 0 nothing, 1 source address, 2 URI path, 3 header `hashHeader`. */
  readonly hashKind: 0 | 1 | 2 | 3;
  readonly hashHeader: string;
  /** Backend queue bound (the pool's maxqueue, 0: none) and each configured server's own (by name). */
  readonly maxqueue: number;
  readonly serverMaxqueue: ReadonlyMap<string, number>;
  /** timeouts.queue (default: timeouts.connect), ms. */
  readonly queueMs: number;
  /** send_proxy per configured server name, and the pool's default (runtime-added servers). */
  readonly sendProxy: ReadonlyMap<string, 0 | 1 | 2>;
  readonly poolSendProxy: 0 | 1 | 2;
  /** retry_after in whole seconds (rounded up) for a queue timeout's 503, or undefined. */
  readonly retryAfter: string | undefined;

  constructor(readonly cfg: PoolConfig) {
    this.name = cfg.name;
    this.engine = ENGINES[cfg.engine];
    this.retries = cfg.retries;
    this.retryEmpty = cfg.retry_on.includes('empty-response');
    this.retryReset = cfg.retry_on.includes('reset');
    this.retryTimeout = cfg.retry_on.includes('response-timeout');
    this.redispatch = cfg.redispatch;
    this.cookieMode = !cfg.cookie ? 0 : cfg.cookie.mode === 'insert' ? 1 : 2;
    this.cookieName = cfg.cookie?.name ?? '';
    this.cookieIndirect = cfg.cookie?.indirect ?? false;
    this.cookieNocache = cfg.cookie?.nocache ?? false;
    this.passiveConnect = cfg.passive.connect_errors;
    this.passive5xx = cfg.passive.http_5xx;
    this.balance = { algorithm: cfg.balance, hashType: cfg.hash_type };
    this.hashKind = cfg.balance === 'source' ? 1 : cfg.balance === 'uri' ? 2 : cfg.balance === 'header' ? 3 : 0;
    this.hashHeader = (cfg.hash_header ?? '').toLowerCase();
    this.queueMs = cfg.timeouts.queue ?? cfg.timeouts.connect;
    const v = (x: string | undefined): 0 | 1 | 2 => (x === 'v1' ? 1 : x === 'v2' ? 2 : 0);
    this.poolSendProxy = v(cfg.send_proxy);
    this.sendProxy = new Map(cfg.servers.map((b) => [b.name, b.send_proxy === undefined ? this.poolSendProxy : v(b.send_proxy)]));
    this.maxqueue = cfg.maxqueue;
    this.serverMaxqueue = new Map(cfg.servers.map((b) => [b.name, b.maxqueue]));
    this.retryAfter = cfg.retry_after === undefined ? undefined : String(Math.max(1, Math.ceil(cfg.retry_after / 1000)));
  }
}

/**
 * One backend pool in the data plane: its routing snapshot and one upstream (connection pool) per
 * server, shared by every frontend that sends requests here. Rebuilt when the backend set
 * publishes this pool.
 *
 * `counters` is the pool's TOTAL row. A listen section's pool shares its frontend's counters
 * (the same object: one count, as before the split), so `ownCounters` is false and the frontend
 * accounts for it; a `backends` pool is counted on its own.
 */
export class Pool {
  s: PoolSettings;
  routing: Routing = Routing.EMPTY;
  readonly upstreams = new Map<number, { up: Upstream; engine: Engine; address: string }>();
  readonly counters: Counters;
  readonly ownCounters: boolean;
  /** Server maxconn: the backend queue and the servers' queues (src/proxy/queue.ts), shared by the pool's frontends. */
  readonly queues: SlotQueues<Exchange>;

  constructor(readonly pm: ProxyManager, cfg: PoolConfig) {
    this.s = new PoolSettings(cfg);
    this.ownCounters = cfg.from !== 'listen';
    const cs = pm.host.counters;
    this.counters = this.ownCounters ? cs.pool(cfg.name) : cs.listen(cfg.name);
    this.queues = new SlotQueues<Exchange>(this.counters, this.s.queueMs);
    this.queues.backend.max = this.s.maxqueue;
    this.queues.retryAfter = this.s.retryAfter;
  }

  /** New settings (reload): upstreams are rebuilt when what they were made with changed. */
  update(cfg: PoolConfig): void {
    const old = this.s.cfg;
    this.s = new PoolSettings(cfg);
    this.queues.timeoutMs = this.s.queueMs;
    this.queues.backend.max = this.s.maxqueue;
    this.queues.retryAfter = this.s.retryAfter;
    if (old.engine !== cfg.engine || old.max_header_size !== cfg.max_header_size || JSON.stringify(old.timeouts) !== JSON.stringify(cfg.timeouts)) this.closeUpstreams();
    this.rebuild();
  }

  /** Rebuild the routing snapshot from the host's latest route specs (on 'publish'). */
  rebuild(): void {
    const primary: Route[] = [];
    const backup: Route[] = [];
    const byCookie = new Map<string, Route>();
    const live = new Set<number>();
    for (const b of this.pm.host.routes(this.s.name)) {
      live.add(b.id);
      const st = b.state;
      if (st !== 'UP' && st !== 'DRAIN') continue;
      const r = this.route(b, st, b.weight);
      if (st === 'UP' && r.weight > 0) (b.backup ? backup : primary).push(r);
      byCookie.set(b.cookie, r);
    }
    for (const [id, u] of this.upstreams) {
      if (!live.has(id)) { this.upstreams.delete(id); u.up.close().catch(() => {}); }
    }
    this.routing = new Routing(primary, backup, byCookie, this.s.balance, this.routing);
    // Servers whose slots are shared and limited: their releases in other workers wake our waiters.
    this.queues.shared = [...byCookie.values()].filter((r): r is Route & { load: SharedLoad } => r.load !== undefined && r.maxconn > 0);
    this.queues.rebuilt(this.routing);
  }

  private route(b: RouteSpec, state: Route['state'], weight: number): Route {
    let u = this.upstreams.get(b.id);
    const engine = this.s.engine;
    if (!u || u.engine !== engine || u.address !== b.address) {
      if (u) u.up.close().catch(() => {});
      u = { up: engine.createUpstream(b.host, b.port, this.s.cfg), engine, address: b.address };
      this.upstreams.set(b.id, u);
    }
    const c = this.s.cfg.cookie;
    const counters = this.pm.host.counters.backend(b.id);
    const queue = this.queues.serverQueue(b.id, counters, this.s.serverMaxqueue.get(b.name) ?? 0);
    // Workers: a server's maxconn, and leastconn's counts, hold over every worker (shared-inflight.ts).
    const sh = this.pm.host.shared;
    const load = sh !== undefined && b.slot !== undefined && b.slot >= 0 && (b.maxconn > 0 || this.s.balance.algorithm === 'leastconn')
      ? new SharedLoad(sh, b.slot, b.maxconn) : undefined;
    return {
      id: b.id, name: b.name, host: b.host, port: b.port, backup: b.backup, state, weight, checked: b.check,
      maxconn: b.maxconn, queue,
      cookieId: b.cookie,
      setCookie: c && c.mode === 'insert' ? insertCookieValue(c, b.cookie) : undefined,
      counters,
      upstream: u.up,
      sendProxy: this.s.sendProxy.get(b.name) ?? this.s.poolSendProxy,
      load,
    };
  }

  /**
   * Passive checks only take down backends that active checks can bring back: a backend with
   * `check: false` would otherwise stay DOWN for ever (HAProxy's `observe` also needs `check`).
   */
  passiveDown(route: Route, reason: string): void {
    if (!route.checked) return;
    this.pm.host.passiveDown(this.s.name, route.name, reason);
  }

  closeUpstreams(): void {
    for (const [id, u] of this.upstreams) { this.upstreams.delete(id); u.up.close().catch(() => {}); }
  }
}

/**
 * The pool of a request a frontend answers itself (redirect, deny, return, 404): no cookie, no
 * servers, counted nowhere. Exchange.p starts as this so the hot path never tests for undefined.
 */
export const NO_POOL: Pool = (() => {
  const cfg = { ...poolSchema.parse({ name: 'NOSRV' }), from: 'frontend', frontends: [] } as PoolConfig;
  return { s: new PoolSettings(cfg), routing: Routing.EMPTY, ownCounters: false, counters: new Counters(), queues: { queued: 0 }, passiveDown() {} } as unknown as Pool;
})();
