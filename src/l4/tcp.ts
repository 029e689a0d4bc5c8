import { connect, createServer, type NetConnectOpts, type Server, type Socket } from 'node:net';
import type { ProxyManager } from '../proxy/manager.js';
import type { RouteSpec } from '../proxy/contract.js';
import type { Logger } from '../log.js';
import type { Config, ListenConfig } from '../config/schema.js';
import type { RuleConfig } from '../config/rules.js';
import { listenPool, sitesOf, type FrontendConfig, type PoolConfig } from '../config/sites.js';
import { compileRules, matchRule, matchSni, type CompiledRule } from '../proxy/rules.js';
import { parseHostPort } from '../config/types.js';
import type { EffectiveState } from '../backends/backend-set.js';
import { createBalancer, hashString, type Balancer, type BalanceOptions } from '../balance/index.js';
import type { Counters } from '../stats/counters.js';
import { AcceptProxy, clientAddress, clientPort, acceptProxySettings, localAddress } from './accept-proxy.js';
import { encodeProxyHeader } from './proxy-protocol.js';
import { firstRecordLength, parseClientHello } from '../tls/client-hello.js';
import type { AccessLog } from '../proxy/access-log.js';
import { SourceFilter } from '../config/cidr.js';
import { ClientTable, type ClientEntry, type LimitPolicy } from '../proxy/client-limits.js';
import { SharedLoad } from '../proxy/shared-inflight.js';
import { SlotQueues, type QueuedRequest, type QueueRouting, type WaitQueue, type Waiter } from '../proxy/queue.js';

/**
 * `mode: tcp`: connections relayed byte for byte to a server of the pool (SMTP, IMAP, TLS
 * passthrough), as HAProxy's `mode tcp`.
 *
 * A connection's life (termination states as HAProxy's tcplog, first letter who, second when):
 *   accept ── accept_proxy? read the header (PR / cR) ── pick a server (none UP: SC; every one full
 *     (maxconn): wait in the backend queue up to timeouts.queue (sQ; queue full, maxqueue: sQ at
 *     once; client gone meanwhile: CQ), src/proxy/queue.ts as HTTP's)
 *     ── connect, up to `retries` more attempts (redispatch: on other servers) (SC refused, sC timeout,
 *        CC client gone meanwhile) ── relay both ways until both sides have closed (--),
 *        or a reset (CD client, SD server), or no byte either way for timeouts.tunnel (cD),
 *        or the stop's drain ran out (KD).
 * The client is not read while the server connection is being made: what it sends waits in the
 * kernel, and the relay applies backpressure both ways (a side that cannot take more pauses the
 * other), so a 1 GiB transfer holds a few socket buffers, never the data.
 *
 * Half-close is relayed (allowHalfOpen): a client that sends its request and shuts down its
 * write side still gets the whole answer.
 */

/** A server as the TCP data plane sees it: immutable, rebuilt on publish. */
export interface TcpRoute {
  readonly id: number;
  readonly name: string;
  readonly host: string;
  readonly port: number;
  readonly state: EffectiveState;
  readonly weight: number;
  readonly checked: boolean;
  readonly counters: Counters;
  /**
   * Server `maxconn`: most connections at once, connecting ones included (0 = unlimited); a full
   * server is skipped, and with every server full a connection waits in the backend queue.
   */
  readonly maxconn: number;
  /** 0: no PROXY header; 1, 2: its version. */
  readonly sendProxy: 0 | 1 | 2;
  /** With workers, a limited server (maxconn) or a leastconn pool's: in flight over every worker. */
  readonly load?: SharedLoad;
}

/**
 * The routing snapshot of a tcp section: the pool's balancer (src/balance/) over UP servers,
 * backups when no primary is UP, as the HTTP Routing. `source` hashes the client address (the
 * PROXY header's with accept_proxy); uri/header hashing has no meaning here and falls back to
 * round robin (key -1), as HAProxy does without a key.
 */
const NO_STICKY: ReadonlyMap<string, TcpRoute> = new Map();

class TcpRouting implements QueueRouting<TcpRoute> {
  static readonly EMPTY = new TcpRouting([], [], { algorithm: 'roundrobin', hashType: 'map-based' });
  /** No stickiness in mode tcp: no server waits for a connection by name (backend queue only). */
  readonly byCookie: ReadonlyMap<string, TcpRoute> = NO_STICKY;
  readonly primary: Balancer<TcpRoute>;
  readonly backup: Balancer<TcpRoute>;
  constructor(primary: TcpRoute[], backup: TcpRoute[], o: BalanceOptions, prev?: TcpRouting) {
    this.primary = createBalancer(o, primary, prev?.primary);
    this.backup = createBalancer(o, backup, prev?.backup);
  }
  get active(): Balancer<TcpRoute> { return this.primary.items.length > 0 ? this.primary : this.backup; }
  pick(key: number, tried: readonly TcpRoute[] | null): TcpRoute | undefined {
    const set = this.primary.items.length > 0 ? this.primary : this.backup;
    return set.pick(key, tried) ?? (tried !== null ? set.pick(key, null) : undefined);
  }
}

/**
 * One server group of a tcp section: which pool's servers (a `backends` pool named by a rule of a
 * mode tcp frontend, or the listen section's own, optionally only some of its servers: a
 * passthrough route) and how that pool connects, retries and queues.
 */
export class TcpGroup {
  readonly retries: number;
  readonly redispatch: boolean;
  readonly connectMs: number;
  readonly passiveConnect: number;
  /** timeouts.queue (default: timeouts.connect) and the backend queue's bound (maxqueue, 0: none). */
  readonly queueMs: number;
  readonly maxqueue: number;
  /** send_proxy per configured server name (runtime-added servers take the pool's default). */
  readonly sendProxy: ReadonlyMap<string, 0 | 1 | 2>;
  readonly poolSendProxy: 0 | 1 | 2;
  readonly balance: BalanceOptions;
  /** Hash the client address (balance: source). */
  readonly hashSource: boolean;
  /** A `backends` pool counts its own TOTAL row (a listen section's pool is its frontend's row). */
  readonly ownCounters: boolean;
  /** @param names servers of the pool in this group (null: every one). */
  constructor(readonly pool: string, cfg: PoolConfig, readonly names: ReadonlySet<string> | null) {
    this.balance = { algorithm: cfg.balance, hashType: cfg.hash_type };
    this.hashSource = cfg.balance === 'source';
    this.retries = cfg.retries;
    this.redispatch = cfg.redispatch;
    this.connectMs = cfg.timeouts.connect;
    this.passiveConnect = cfg.passive.connect_errors;
    this.queueMs = cfg.timeouts.queue ?? cfg.timeouts.connect;
    this.maxqueue = cfg.maxqueue;
    const v = (s: string | undefined): 0 | 1 | 2 => (s === 'v1' ? 1 : s === 'v2' ? 2 : 0);
    this.poolSendProxy = v(cfg.send_proxy);
    this.sendProxy = new Map(cfg.servers.map((b) => [b.name, b.send_proxy === undefined ? this.poolSendProxy : v(b.send_proxy)]));
    this.ownCounters = cfg.from !== 'listen';
  }
}

/** A mode tcp section: a `listen` section, or a `frontends` entry with mode tcp (its rules name pools). */
export type TcpSectionConfig = ListenConfig | FrontendConfig;

const NO_RAW: readonly string[] = [];

/**
 * Everything a connection needs from its section, compiled once per (re)load. Which group a
 * connection goes to is decided by the section's rules (src/proxy/rules.ts, the one rule engine):
 * a mode tcp frontend's own (`sni`, `src` conditions; `backend` names a group's pool; no match:
 * `default_backend`, or closed), or those a listen section's `passthrough.routes` compile to —
 * every route's exact names first, then every route's wildcards, in route order (exact names win
 * wherever they are listed, as for certificates), the default group last.
 */
export class TcpSettings {
  readonly name: string;
  readonly idleMs: number;
  readonly filter: SourceFilter;
  /** Per-client limits (limits.*): a connection over them is closed at once (counted: limited). */
  readonly limited: boolean;
  readonly limits: LimitPolicy;
  readonly groups: readonly TcpGroup[];
  /** Rules choosing the group (null: one group, 0). */
  readonly rules: CompiledRule<number>[] | null;
  /** Group of a connection no rule sends anywhere; -1: closed (a frontend without default_backend). */
  readonly defaultGroup: number;
  /** Read the ClientHello before choosing (TLS passthrough: a rule looks at sni). */
  readonly peek: boolean;
  readonly helloMs: number;
  /** `all`: the whole config, for the pools a mode tcp frontend names. */
  constructor(readonly cfg: TcpSectionConfig, all: Config) {
    this.name = cfg.name;
    this.idleMs = cfg.timeouts.tunnel;
    this.filter = new SourceFilter(cfg.allow, cfg.deny);
    const lim = cfg.limits;
    this.limits = { conn: lim.conn_per_source, rate: lim.rate_per_source, period: lim.rate_period, size: lim.table_size, expire: lim.expire };
    this.limited = lim.conn_per_source > 0 || lim.rate_per_source > 0;
    if ('backends' in cfg) {
      const pool = listenPool(cfg);
      const pt = cfg.passthrough;
      this.helloMs = pt?.timeout ?? 0;
      if (pt === undefined) {
        this.groups = [new TcpGroup(cfg.name, pool, null)];
        this.rules = null;
        this.defaultGroup = 0;
        this.peek = false;
        return;
      }
      const named = new Set(pt.routes.flatMap((r) => r.servers));
      this.groups = [...pt.routes.map((r) => new TcpGroup(cfg.name, pool, new Set(r.servers))),
        new TcpGroup(cfg.name, pool, new Set(pt.default ?? cfg.backends.map((b) => b.name).filter((n) => !named.has(n))))];
      const exact = pt.routes.map((r, i) => ({ when: { sni: r.sni.filter((n) => !n.startsWith('*.')) }, backend: String(i) }));
      const wild = pt.routes.map((r, i) => ({ when: { sni: r.sni.filter((n) => n.startsWith('*.')) }, backend: String(i) }));
      const rules = [...exact, ...wild].filter((r) => r.when.sni.length > 0) as RuleConfig[];
      this.defaultGroup = this.groups.length - 1;
      this.rules = compileRules<number>(rules, this.defaultGroup, new Map(pt.routes.map((_r, i) => [String(i), i])));
      this.peek = true;
      return;
    }
    // A mode tcp frontend: one group per pool it names, in the order first named.
    const byName = new Map(sitesOf(all).pools.map((p) => [p.name, p]));
    const index = new Map<string, number>();
    const groups: TcpGroup[] = [];
    for (const n of [...cfg.rules.map((r) => r.backend), cfg.default_backend]) {
      if (n === undefined || index.has(n)) continue;
      index.set(n, groups.length);
      groups.push(new TcpGroup(n, byName.get(n)!, null));
    }
    this.groups = groups;
    this.defaultGroup = cfg.default_backend === undefined ? -1 : index.get(cfg.default_backend)!;
    this.rules = cfg.rules.length > 0 ? compileRules<number>(cfg.rules, this.defaultGroup < 0 ? undefined : this.defaultGroup, index) : null;
    this.peek = cfg.rules.some((r) => r.when?.sni !== undefined || r.when?.not?.sni !== undefined);
    this.helloMs = cfg.timeouts.hello ?? 5000;
  }

  /** The group of a connection from `ip` with server name `sni` ('' without one), -1: none. */
  select(ip: string, sni: string): number {
    const rules = this.rules;
    if (rules === null) return this.defaultGroup;
    const r = matchRule(rules, { method: '', path: '', host: '', raw: NO_RAW, ip, tls: sni !== '', sni });
    return r === undefined ? this.defaultGroup : (r.pool ?? -1);
  }
}

/**
 * Socket buffer bound in user space, each way: a write past it pauses the other side. Node's
 * default (16 KiB) pauses and resumes on nearly every 64 KiB read, which cost bulk transfers
 * over half their rate here (bench/tcp.mjs); 256 KiB per direction bounds a connection's memory
 * at ~1 MiB worst case.
 */
const HWM = 256 * 1024;

/**
 * Server sockets read into a reused buffer (net `onread`), not a new 64 KiB Buffer per read: with
 * 1 MiB transfers the per-read ArrayBuffers made a quarter of pairlb's CPU time garbage
 * collection (bench:tcp get-1m, node --cpu-prof). A buffer serves one session (all its connect
 * attempts) and goes back to a bounded free list when the session ends with nothing of it left
 * unwritten. The server is not read again while the client still holds bytes of it (the client
 * write's callback resumes it): one buffer of backpressure, as HAProxy's one buffer per side.
 * Accepted client sockets cannot take `onread` (net.Server has no such option): they keep 'data'.
 */
const READ_BUF = 128 * 1024;
const MAX_FREE_BUFS = 256;
const freeBufs: Buffer[] = [];

const kSess = Symbol('pairlb.tcpSession');
type SessSocket = Socket & { [kSess]?: TcpSession };
const ZERO = Buffer.alloc(0);

/**
 * One client connection. Handlers are module functions reading the session off the socket. It is
 * a QueuedRequest: with every server full it waits in its group's backend queue.
 */
export class TcpSession implements QueuedRequest<TcpRoute> {
  server: Socket | null = null;
  route: TcpRoute | undefined;
  /** The route whose slot (counters.cur, for maxconn) this connection holds, from connect attempt to close. */
  slot: TcpRoute | undefined;
  tried: TcpRoute[] | null = null;
  // Queue state (src/proxy/queue.ts): tw is the ms waited (HAProxy Tw).
  queuedAt = 0;
  waitQ: WaitQueue<Waiter> | null = null;
  qTimer: NodeJS.Timeout | undefined;
  tw = 0;
  srvQueue = 0;
  backendQueue = 0;
  readonly stickyOk = false;
  /** Per-client limits entry (limits.*), released at close. */
  entry: ClientEntry | undefined;
  /** Server group (TLS passthrough route, a mode tcp frontend's pool; 0 with one group). */
  group = 0;
  /** The group's pool TOTAL row when it counts its own (a `backends` pool), from when the group is chosen. */
  pc: Counters | undefined;
  helloTimer: NodeJS.Timeout | undefined;
  /** Balancing key (balance: source), -1 without one. */
  key = -1;
  attempts = 0;
  readonly start = performance.now();
  tConnect = 0;
  /** Bytes from the client not yet sent (read while a PROXY header or a ClientHello was awaited). */
  held: Buffer = ZERO;
  /** The server socket's read buffer (onread), and whether it waits for the client to take its last chunk. */
  rbuf: Buffer | undefined;
  srvPaused = false;
  /** The client took a chunk of the server's (write callback): read the server again. */
  readonly clientFlushed = (): void => {
    if (!this.srvPaused) return;
    this.srvPaused = false;
    if (!this.closed) this.server?.resume();
  };
  bytesIn = 0;
  bytesOut = 0;
  termination = '--';
  clientEnded = false;
  serverEnded = false;
  clientClosed = false;
  serverClosed = false;
  closed = false;
  /** The client (the PROXY header's when accept_proxy), read once: a closed socket forgets it. */
  readonly clientAddr: string;
  readonly clientPort: number;
  constructor(readonly l: TcpListener, readonly client: Socket) {
    this.clientAddr = clientAddress(client);
    this.clientPort = clientPort(client) ?? 0;
  }
  get finished(): boolean { return this.closed; }
  /** A slot freed for this waiter: stop holding what it sends, connect. */
  send(route: TcpRoute): void {
    this.client.removeListener('data', onQueuedData);
    this.client.pause();
    this.l.dispatch(this, route);
  }
  /** The wait ran out (termination sQ set by the queue): closed. */
  respondError(): void { this.l.close(this); }
}

export class TcpListener {
  s: TcpSettings;
  /** One routing per server group (TLS passthrough routes + default; else one). */
  routings: TcpRouting[] = [TcpRouting.EMPTY];
  /** Per server group, its backend queue (server maxconn), counted on the listen's TOTAL row. */
  queues: SlotQueues<TcpSession, TcpRoute>[] = [];
  readonly counters: Counters;
  server: Server | undefined;
  readonly log: Logger;
  readonly access: AccessLog;
  acceptProxy: AcceptProxy | undefined;
  private bound: { host: string; port: number } | undefined;
  readonly sessions = new Set<TcpSession>();
  /** Client connections open now (PROXY header pending included), for the listen's maxconn. */
  open = 0;
  /** Per-client limits (kept across reloads; cleared on HA role changes, as HTTP's). */
  readonly clients: ClientTable;

  /**
   * `pm`: the data plane this section runs in (the in-process one, or a worker thread's): its
   * host gives routing snapshots, counters and passive verdicts (src/proxy/contract.ts), as HTTP's.
   */
  constructor(readonly pm: ProxyManager, cfg: TcpSectionConfig) {
    this.s = new TcpSettings(cfg, pm.cfg);
    this.counters = pm.host.counters.listen(cfg.name);
    this.log = pm.host.log;
    this.access = pm.access;
    this.acceptProxy = this.makeAcceptProxy(cfg);
    this.clients = new ClientTable(this.s.limits);
    this.sizeQueues();
  }

  /** One queue set per server group; a reload keeps the queues (and their waiters) it still has. */
  private sizeQueues(): void {
    const groups = this.s.groups;
    while (this.queues.length < groups.length) this.queues.push(new SlotQueues<TcpSession, TcpRoute>(this.counters, groups[this.queues.length].queueMs));
    for (let g = 0; g < groups.length; g++) { const q = this.queues[g]; q.timeoutMs = groups[g].queueMs; q.backend.max = groups[g].maxqueue; }
  }

  private makeAcceptProxy(cfg: TcpSectionConfig): AcceptProxy | undefined {
    const ap = cfg.accept_proxy;
    if (!ap) return undefined;
    const settings = acceptProxySettings(ap);
    if (this.acceptProxy) { this.acceptProxy.settings = settings; return this.acceptProxy; }
    return new AcceptProxy(settings, this.counters, this.log, cfg.name);
  }

  address(): { host: string; port: number } | undefined { return this.bound; }
  isServing(): boolean { return !!this.server?.listening; }

  async start(): Promise<void> {
    const hp = parseHostPort(this.s.cfg.bind)!;
    const server = createServer({ allowHalfOpen: true, pauseOnConnect: true, noDelay: true, highWaterMark: HWM });
    server.on('connection', (sock: Socket) => this.accept(sock));
    // Workers: every worker binds the address with SO_REUSEPORT; a port-0 bind takes the port the
    // first worker got (as HTTP's Listener).
    const reusePort = this.pm.host.reusePort;
    const port = (reusePort && hp.port === 0 ? this.pm.host.port(this.s.name, this.s.cfg.bind) : undefined) ?? hp.port;
    await new Promise<void>((ok, fail) => {
      server.once('error', fail);
      server.listen({ port, host: hp.host, reusePort }, () => { server.off('error', fail); ok(); });
    });
    const guard = this.pm.guard;
    server.on('error', (e: NodeJS.ErrnoException) => guard.acceptError(this.s.name, this.counters, e));
    const a = server.address();
    this.bound = typeof a === 'object' && a ? { host: a.address, port: a.port } : hp;
    this.server = server;
    this.rebuild();
  }

  update(cfg: TcpSectionConfig): void {
    this.s = new TcpSettings(cfg, this.pm.cfg);
    this.clients.policy = this.s.limits;
    this.acceptProxy = this.makeAcceptProxy(cfg);
    this.sizeQueues();
    this.rebuild();
  }

  /** Whether a group of this section routes to `pool` (the manager rebuilds on its publish). */
  usesPool(pool: string): boolean { return this.s.groups.some((g) => g.pool === pool); }

  /** A new routing snapshot per group (the host's latest RouteSpec list of each group's pool). */
  rebuild(): void {
    const groups = this.s.groups;
    const prev = this.routings;
    const routings: TcpRouting[] = [];
    for (let g = 0; g < groups.length; g++) {
      const gr = groups[g];
      const primary: TcpRoute[] = [];
      const backup: TcpRoute[] = [];
      for (const b of this.pm.host.routes(gr.pool)) {
        if (b.state !== 'UP' || (gr.names !== null && !gr.names.has(b.name))) continue;
        const r = this.route(b, gr);
        if (r.weight > 0) (b.backup ? backup : primary).push(r);
      }
      routings.push(new TcpRouting(primary, backup, gr.balance, prev.length === groups.length ? prev[g] : undefined));
      // With workers: limited servers whose slots other workers free; the group's waiters watch them.
      this.queues[g].shared = [...primary, ...backup].filter((r): r is TcpRoute & { load: SharedLoad } => r.load !== undefined && r.maxconn > 0);
    }
    this.routings = routings;
    // Waiters get the servers that came UP or were raised (and are closed sQ when none is left).
    for (let g = 0; g < groups.length; g++) this.queues[g].rebuilt(this.routings[g]);
  }

  private route(b: RouteSpec, gr: TcpGroup): TcpRoute {
    // Workers: a server's maxconn, and leastconn's counts, hold over every worker (as HTTP's, src/proxy/pool.ts).
    const sh = this.pm.host.shared;
    const load = sh !== undefined && b.slot !== undefined && b.slot >= 0 && (b.maxconn > 0 || gr.balance.algorithm === 'leastconn')
      ? new SharedLoad(sh, b.slot, b.maxconn) : undefined;
    return {
      load,
      id: b.id, name: b.name, host: b.host, port: b.port, state: b.state, weight: b.weight, checked: b.check,
      counters: this.pm.host.counters.backend(b.id),
      maxconn: b.maxconn,
      sendProxy: gr.sendProxy.get(b.name) ?? gr.poolSendProxy,
    };
  }

  // ---- hot path: per connection -------------------------------------------------------------

  private accept(sock: Socket): void {
    const lc = this.counters;
    const fmax = this.s.cfg.maxconn ?? 0;
    // With workers the section's maxconn holds over all of them (a slot of the shared table).
    const shared = this.pm.host.shared;
    const fslot = fmax !== 0 && shared !== undefined ? this.pm.host.frontendSlot(this.s.name) : -1;
    if (fmax !== 0 && (fslot >= 0 ? !shared!.acquire(fslot, fmax) : this.open >= fmax)) { lc.refusedConn++; sock.destroy(); return; }
    if (!this.pm.guard.admit(this.s.name, lc)) { if (fslot >= 0) shared!.release(fslot, false); sock.destroy(); return; }
    this.open++;
    sock.once('close', releaseGuard);
    const gs = sock as GuardSocket;
    gs[kGuard] = this;
    gs[kFslot] = fslot;
    const ap = this.acceptProxy;
    if (ap !== undefined) { ap.read(sock, this.afterHeader); sock.resume(); return; }
    this.begin(sock, ZERO);
  }

  /** accept_proxy: the header was read; `rest` is what followed it. */
  private readonly afterHeader = (sock: Socket, rest: Buffer): void => { this.begin(sock, rest); };

  private begin(sock: Socket, held: Buffer): void {
    const s = this.s;
    // After the PROXY header, if any: allow/deny and limits judge the header's client.
    if (s.filter.active && !s.filter.admits(clientAddress(sock))) { this.counters.deniedConn++; sock.destroy(); return; }
    let entry: ClientEntry | undefined;
    if (s.limited) {
      const now = Date.now();
      const e = this.clients.connect(clientAddress(sock), now);
      // A TCP connection is one "request" for the rate limit (HAProxy's conn_rate).
      if (e === null || !this.clients.request(e, now)) {
        if (e !== null) this.clients.disconnect(e, now);
        this.counters.limited++;
        sock.destroy();
        return;
      }
      entry = e;
    }
    const ss = new TcpSession(this, sock);
    ss.entry = entry;
    ss.held = held;
    (sock as SessSocket)[kSess] = ss;
    this.sessions.add(ss);
    this.counters.begin(Date.now());
    sock.on('error', onClientError);
    sock.on('close', onClientClose);
    sock.on('end', onClientEnd);
    if (s.peek) { this.peekHello(ss); return; }
    this.route0(ss, s.rules === null ? 0 : s.select(ss.clientAddr, ''));
  }

  /** The connection's group is chosen (-1: none, closed): connect to one of its servers. */
  private route0(ss: TcpSession, g: number): void {
    if (g < 0) { ss.termination = 'PR'; this.close(ss); return; }
    ss.group = g;
    const gr = this.s.groups[g];
    if (gr.hashSource) ss.key = hashString(ss.clientAddr);
    if (gr.ownCounters) { ss.pc = this.pm.host.counters.pool(gr.pool); ss.pc.begin(Date.now()); }
    this.connectNext(ss);
  }

  /**
   * TLS passthrough: read until the first TLS record is complete, take the ClientHello's SNI, and
   * connect to that name's group; the bytes read are sent on first (nothing is terminated).
   * Not TLS, or a record that is not a ClientHello: closed at once (PR); not complete within
   * `passthrough.timeout`: closed then (cR). Both counted (helloRefused).
   */
  private peekHello(ss: TcpSession): void {
    if (this.helloStep(ss)) return;
    ss.helloTimer = setTimeout(onHelloTimeout, this.s.helloMs, ss);
    ss.client.on('data', onHelloData);
    ss.client.resume();
  }

  /** True once decided (routed or refused). */
  helloStep(ss: TcpSession): boolean {
    const b = ss.held;
    const need = firstRecordLength(b);
    if (need !== undefined && (need === -1 || b.length < need)) return false;
    const h = need === undefined ? undefined : parseClientHello(b);
    const c = ss.client;
    c.removeListener('data', onHelloData);
    if (ss.helloTimer !== undefined) { clearTimeout(ss.helloTimer); ss.helloTimer = undefined; }
    if (h === undefined) { this.helloRefused(ss, 'PR'); return true; }
    c.pause();
    this.route0(ss, this.s.select(ss.clientAddr, matchSni(h.sni)));
    return true;
  }

  helloRefused(ss: TcpSession, termination: string): void {
    this.counters.helloRefused++;
    ss.termination = termination;
    this.close(ss);
  }

  /**
   * Pick a server (skipping those that failed for this connection when redispatching) and connect;
   * with every server full (maxconn), wait in the backend queue.
   */
  connectNext(ss: TcpSession): void {
    const routing = this.routings[ss.group];
    const r = ss.route !== undefined && !this.s.groups[ss.group].redispatch ? ss.route : routing.pick(ss.key, ss.tried);
    if (r === undefined) {
      if (routing.active.items.length > 0) {
        const qs = this.queues[ss.group];
        if (qs.wait(ss, qs.backend)) { holdWhileQueued(ss); return; }
        ss.termination = 'sQ'; // the queue is full (maxqueue)
      } else ss.termination = 'SC';
      this.close(ss);
      return;
    }
    this.dispatch(ss, r);
  }

  /** Connect `ss` to `r` (picked now, or given a slot by the queue), holding one of r's slots. */
  dispatch(ss: TcpSession, r: TcpRoute): void {
    // A server limited over every worker: another worker may have taken its last slot since the
    // pick (src/proxy/shared-inflight.ts). Then wait for one, as if the pick had found it full.
    if (r.load !== undefined && !r.load.acquire()) {
      const qs = this.queues[ss.group];
      if (qs.wait(ss, qs.backend)) { holdWhileQueued(ss); return; }
      ss.termination = 'sQ';
      this.close(ss);
      return;
    }
    if (ss.attempts > 0) {
      this.counters.retries++;
      r.counters.retries++;
      if (ss.route !== undefined && r !== ss.route) { this.counters.redispatches++; r.counters.redispatches++; }
    }
    ss.attempts++;
    ss.route = r;
    ss.slot = r;
    const rc = r.counters;
    if (++rc.cur > rc.max) rc.max = rc.cur;
    const rbuf = ss.rbuf ??= freeBufs.pop() ?? Buffer.allocUnsafeSlow(READ_BUF);
    const srv = connect({ host: r.host, port: r.port, allowHalfOpen: true, noDelay: true, writableHighWaterMark: HWM, onread: { buffer: rbuf, callback: onServerRead } } as NetConnectOpts);
    (srv as SessSocket)[kSess] = ss;
    ss.server = srv;
    srv.setTimeout(this.s.groups[ss.group].connectMs);
    srv.on('connect', onServerConnect);
    srv.on('timeout', onServerConnectTimeout);
    srv.on('error', onServerError);
    srv.on('close', onServerClose);
  }

  /** A connect attempt failed (`timeout`: it did not complete in time). Retry or give up. */
  connectFailed(ss: TcpSession, timeout: boolean): void {
    if (ss.closed) return; // the client went first: not the server's failure
    const r = ss.route!;
    const srv = ss.server!;
    ss.server = null;
    srv.destroy();
    this.releaseSlot(ss);
    this.counters.errConn++;
    r.counters.errConn++;
    const gr = this.s.groups[ss.group];
    if (gr.passiveConnect > 0 && ++r.counters.connectFailStreak >= gr.passiveConnect && r.checked) {
      r.counters.connectFailStreak = 0;
      this.pm.host.passiveDown(gr.pool, r.name, `passive: ${gr.passiveConnect} consecutive connection errors`);
    }
    if (ss.attempts > gr.retries) { ss.termination = timeout ? 'sC' : 'SC'; this.close(ss); return; }
    (ss.tried ??= []).push(r);
    this.connectNext(ss);
  }

  /** The connection gives its server slot back; the oldest waiter that may use it goes. */
  releaseSlot(ss: TcpSession): void {
    const r = ss.slot;
    if (r === undefined) return;
    ss.slot = undefined;
    r.counters.cur--;
    r.load?.release();
    for (const q of this.queues) if (q.queued > 0) q.slotFreed(r.id);
  }

  connected(ss: TcpSession): void {
    const srv = ss.server!;
    const c = ss.client;
    const r = ss.route!;
    ss.tConnect = performance.now();
    r.counters.connectFailStreak = 0;
    // A session of the server from now (its slot, `cur`, was taken when the attempt began).
    r.counters.total++;
    r.counters.lastSession = Date.now();
    srv.setTimeout(0);
    srv.removeListener('timeout', onServerConnectTimeout);
    if (ss.closed || c.destroyed) { ss.termination = 'CC'; this.close(ss); return; }
    if (r.sendProxy !== 0) {
      const la = localAddress(c);
      srv.write(encodeProxyHeader(r.sendProxy, { address: ss.clientAddr, port: ss.clientPort }, la));
    }
    if (ss.held.length > 0) { this.countIn(ss, ss.held.length); srv.write(ss.held); ss.held = ZERO; }
    c.on('data', onClientData);
    srv.on('end', onServerEnd);
    srv.on('drain', onServerDrain);
    c.setTimeout(this.s.idleMs);
    c.on('timeout', onIdle);
    if (ss.clientEnded) srv.end();
    else c.resume();
  }

  countIn(ss: TcpSession, n: number): void {
    ss.bytesIn += n;
    this.counters.bytesIn += n;
    ss.route!.counters.bytesIn += n;
    if (ss.pc !== undefined) ss.pc.bytesIn += n;
  }

  countOut(ss: TcpSession, n: number): void {
    ss.bytesOut += n;
    this.counters.bytesOut += n;
    ss.route!.counters.bytesOut += n;
    if (ss.pc !== undefined) ss.pc.bytesOut += n;
  }

  /** Ends the session: both sockets destroyed, counted and logged once. */
  close(ss: TcpSession): void {
    if (ss.closed) return;
    ss.closed = true;
    this.sessions.delete(ss);
    if (ss.helloTimer !== undefined) clearTimeout(ss.helloTimer);
    if (ss.waitQ !== null) { this.queues[ss.group].unqueue(ss); ss.termination = 'CQ'; }
    // The read buffer is free again unless a write to the client still refers to it.
    if (ss.rbuf !== undefined && !ss.srvPaused && freeBufs.length < MAX_FREE_BUFS) freeBufs.push(ss.rbuf);
    ss.rbuf = undefined;
    ss.client.destroy();
    if (ss.entry !== undefined) this.clients.disconnect(ss.entry, Date.now());
    const srv = ss.server;
    const lc = this.counters;
    lc.cur--;
    if (ss.pc !== undefined) ss.pc.cur--;
    if (srv !== null) srv.destroy();
    this.releaseSlot(ss);
    if (this.access.enabled) this.access.tcp(this.s.name, ss, performance.now());
  }

  destroyConnectionsTo(address: string): number {
    let n = 0;
    for (const ss of this.sessions) {
      const a = ss.client.localAddress;
      if (a === address || a === '::ffff:' + address) { ss.termination = 'KD'; this.close(ss); n++; }
    }
    return n;
  }

  /** Stop accepting; established connections run until they end or `drainMs` runs out (KD). */
  async stop(drainMs: number): Promise<void> {
    const server = this.server;
    if (!server) return;
    this.server = undefined;
    this.acceptProxy?.stop();
    const closed = new Promise<void>((ok) => server.close(() => ok()));
    const timer = setTimeout(() => { for (const ss of this.sessions) { ss.termination = 'KD'; this.close(ss); } }, drainMs);
    await closed;
    clearTimeout(timer);
  }
}

const kGuard = Symbol('pairlb.tcpGuard');
const kFslot = Symbol('pairlb.tcpFrontendSlot');
type GuardSocket = Socket & { [kGuard]?: TcpListener; [kFslot]?: number };
function releaseGuard(this: GuardSocket): void {
  const l = this[kGuard];
  if (l === undefined) return;
  l.open--;
  l.pm.guard.release();
  const f = this[kFslot] ?? -1;
  if (f >= 0) l.pm.host.shared!.release(f, false);
}

// ---- socket handlers (this = the socket) ------------------------------------------------------

function onClientData(this: SessSocket, chunk: Buffer): void {
  const ss = this[kSess]!;
  ss.l.countIn(ss, chunk.length);
  if (!ss.server!.write(chunk)) this.pause();
}

/** onread of a server socket: `n` bytes in the session's reused buffer. Returning false stops reading. */
function onServerRead(this: SessSocket, n: number, buf: Buffer): boolean {
  const ss = this[kSess]!;
  if (ss.closed || ss.server !== this) return false;
  ss.l.countOut(ss, n);
  const c = ss.client;
  c.write(n === buf.length ? buf : buf.subarray(0, n), ss.clientFlushed);
  // Not all taken by the kernel at once: the rest is still in `buf`, so read no more until the
  // write completes (clientFlushed).
  if (c.writableLength === 0) return true;
  ss.srvPaused = true;
  return false;
}

/** The server can take more: read the client again (and vice versa). */
function onServerDrain(this: SessSocket): void { const ss = this[kSess]!; if (!ss.clientEnded) ss.client.resume(); }

/**
 * A FIN is relayed as a FIN (half-close). A socket emits 'close' once it has both ended and
 * flushed its writes; the session ends when both sockets have closed that way, or at once when
 * one closes without its FIN (reset, error) or the client goes before a server was connected.
 */
function onClientEnd(this: SessSocket): void {
  const ss = this[kSess]!;
  ss.clientEnded = true;
  if (ss.server !== null && ss.tConnect > 0) ss.server.end();
}

function onServerEnd(this: SessSocket): void {
  const ss = this[kSess]!;
  ss.serverEnded = true;
  ss.client.end();
}

function onClientError(this: SessSocket): void {
  const ss = this[kSess]!;
  if (ss.termination === '--') ss.termination = ss.tConnect > 0 ? 'CD' : 'CC';
  ss.l.close(ss);
}

function onClientClose(this: SessSocket): void {
  const ss = this[kSess]!;
  ss.clientClosed = true;
  if (ss.closed) return;
  if (ss.tConnect === 0) { if (ss.termination === '--') ss.termination = 'CC'; ss.l.close(ss); return; }
  if (!ss.clientEnded) { if (ss.termination === '--') ss.termination = 'CD'; ss.l.close(ss); return; }
  if (ss.serverClosed) ss.l.close(ss);
}

function onServerConnect(this: SessSocket): void {
  const ss = this[kSess]!;
  if (ss.server !== this) return;
  ss.l.connected(ss);
}

function onServerConnectTimeout(this: SessSocket): void {
  const ss = this[kSess]!;
  if (ss.server !== this || ss.tConnect > 0) return;
  ss.l.connectFailed(ss, true);
}

function onServerError(this: SessSocket): void {
  const ss = this[kSess]!;
  if (ss.server !== this) return; // an abandoned attempt
  if (ss.tConnect === 0) { ss.l.connectFailed(ss, false); return; }
  if (ss.termination === '--') ss.termination = 'SD';
  ss.l.close(ss);
}

function onServerClose(this: SessSocket): void {
  const ss = this[kSess]!;
  if (ss.server !== this || ss.tConnect === 0) return; // connect failures: error / timeout
  ss.serverClosed = true;
  if (ss.closed) return;
  if (!ss.serverEnded) { if (ss.termination === '--') ss.termination = 'SD'; ss.l.close(ss); return; }
  if (ss.clientClosed) ss.l.close(ss);
}

function onHelloData(this: SessSocket, chunk: Buffer): void {
  const ss = this[kSess]!;
  ss.held = ss.held.length === 0 ? chunk : Buffer.concat([ss.held, chunk]);
  ss.l.helloStep(ss);
}

/**
 * Read the client while it waits in a queue, or its going away (CQ) would go unseen until the
 * queue timeout; what it sends is held (up to HWM, then it is paused) and sent first.
 */
function holdWhileQueued(ss: TcpSession): void {
  const c = ss.client;
  if (!c.listeners('data').includes(onQueuedData)) c.on('data', onQueuedData);
  c.resume();
}

function onQueuedData(this: SessSocket, chunk: Buffer): void {
  const ss = this[kSess]!;
  ss.held = ss.held.length === 0 ? chunk : Buffer.concat([ss.held, chunk]);
  if (ss.held.length >= HWM) this.pause();
}

function onHelloTimeout(ss: TcpSession): void {
  ss.helloTimer = undefined;
  if (!ss.closed) ss.l.helloRefused(ss, 'cR');
}

function onIdle(this: SessSocket): void {
  const ss = this[kSess]!;
  ss.termination = 'cD';
  ss.l.close(ss);
}
