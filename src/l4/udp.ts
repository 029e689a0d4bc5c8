import { createSocket, type RemoteInfo, type Socket as DgramSocket } from 'node:dgram';
import { isIPv6 } from 'node:net';
import type { ProxyManager } from '../proxy/manager.js';
import type { ListenConfig } from '../config/schema.js';
import { parseHostPort } from '../config/types.js';
import { createBalancer, hashString, type Balancer, type BalanceOptions } from '../balance/index.js';
import { SourceFilter } from '../config/cidr.js';
import { RateLimitedLog } from '../log.js';
import type { Counters } from '../stats/counters.js';

/**
 * `mode: udp` (DNS): datagrams relayed per client flow. A flow is a client address:port; its first
 * datagram picks a server (the pool's balancing; `source` hashes the client address), and a
 * socket of its own carries its datagrams to that server, so the server's replies map back to the
 * client without parsing anything. Replies go out of the listening socket: they come from the
 * bound address (bind the VIP itself, not 0.0.0.0, so that replies come from the VIP).
 *
 * Bounded under a flood of spoofed sources: at most `udp.max_flows` flows (each holds one socket);
 * a new flow beyond that evicts the least recently active one (counted: flowsEvicted, logged once
 * per 10 s). A flow with no datagram either way for `udp.flow_idle` is closed by a sweep that
 * runs every flow_idle/4 (no timer per flow). `udp.replies` > 0 closes a flow after that many
 * replies (1 for DNS: one answer per query).
 *
 * Counters: a flow is a session (cur/total on the listen and its server); bytes both ways are
 * datagram payload bytes.
 */

interface UdpRoute {
  readonly id: number;
  readonly name: string;
  readonly host: string;
  readonly port: number;
  readonly weight: number;
  readonly counters: Counters;
  readonly maxconn: number;
}

class Flow {
  last: number;
  replies = 0;
  constructor(readonly key: string, readonly address: string, readonly port: number, readonly route: UdpRoute, readonly sock: DgramSocket, now: number) {
    this.last = now;
  }
}

const kFlow = Symbol('pairlb.udpFlow');
type FlowSocket = DgramSocket & { [kFlow]?: Flow; [kListener]?: UdpListener };
const kListener = Symbol('pairlb.udpListener');

export class UdpSettings {
  readonly name: string;
  readonly maxFlows: number;
  readonly idleMs: number;
  readonly replies: number;
  readonly balance: BalanceOptions;
  readonly hashSource: boolean;
  readonly filter: SourceFilter;
  constructor(readonly cfg: ListenConfig) {
    this.name = cfg.name;
    this.maxFlows = cfg.udp.max_flows;
    this.idleMs = cfg.udp.flow_idle;
    this.replies = cfg.udp.replies;
    this.balance = { algorithm: cfg.balance, hashType: cfg.hash_type };
    this.hashSource = cfg.balance === 'source';
    this.filter = new SourceFilter(cfg.allow, cfg.deny);
  }
}

export class UdpListener {
  s: UdpSettings;
  private primary: Balancer<UdpRoute> = createBalancer({ algorithm: 'roundrobin', hashType: 'map-based' }, []);
  private backup: Balancer<UdpRoute> = this.primary;
  readonly counters: Counters;
  private sock: DgramSocket | undefined;
  private bound: { host: string; port: number } | undefined;
  /** Flows by "address|port", least recently active first (a datagram moves its flow to the end). */
  readonly flows = new Map<string, Flow>();
  private sweeper: NodeJS.Timeout | undefined;
  private readonly evictLog: RateLimitedLog;

  /** `pm`: the data plane this section runs in (in-process or a worker thread's), as TcpListener. */
  constructor(readonly pm: ProxyManager, cfg: ListenConfig) {
    this.s = new UdpSettings(cfg);
    this.counters = pm.host.counters.listen(cfg.name);
    this.evictLog = new RateLimitedLog((n) => pm.host.log.warn({ mod: 'proxy', listen: this.s.name, evicted: n, max_flows: this.s.maxFlows },
      `listen ${this.s.name}: evicted ${n} UDP flow(s): udp.max_flows ${this.s.maxFlows} reached`), 10_000);
  }

  address(): { host: string; port: number } | undefined { return this.bound; }
  isServing(): boolean { return this.sock !== undefined && this.bound !== undefined; }

  async start(): Promise<void> {
    const hp = parseHostPort(this.s.cfg.bind)!;
    // Workers: each binds the address with SO_REUSEPORT. The kernel picks a socket of the group by
    // a hash of the datagram's 4-tuple, so a client flow (address:port) always reaches the same
    // worker, which holds its flow; replies still leave from the bound address.
    const reusePort = this.pm.host.reusePort;
    const port = (reusePort && hp.port === 0 ? this.pm.host.port(this.s.name, this.s.cfg.bind) : undefined) ?? hp.port;
    const sock = createSocket({ type: isIPv6(hp.host) ? 'udp6' : 'udp4', reusePort });
    (sock as FlowSocket)[kListener] = this;
    await new Promise<void>((ok, fail) => {
      sock.once('error', fail);
      sock.bind(port, hp.host, () => { sock.off('error', fail); ok(); });
    });
    sock.on('error', (e) => this.pm.host.log.warn({ mod: 'proxy', listen: this.s.name, err: e.message }, 'udp socket error'));
    sock.on('message', onClientMessage);
    const a = sock.address();
    this.bound = { host: a.address, port: a.port };
    this.sock = sock;
    this.armSweep();
    this.rebuild();
  }

  private armSweep(): void {
    if (this.sweeper) clearInterval(this.sweeper);
    this.sweeper = setInterval(() => this.sweep(Date.now()), Math.max(25, this.s.idleMs >> 2));
    this.sweeper.unref();
  }

  update(cfg: ListenConfig): void {
    const idle = this.s.idleMs;
    this.s = new UdpSettings(cfg);
    if (this.s.idleMs !== idle) this.armSweep();
    while (this.flows.size > this.s.maxFlows) this.evictOldest();
    this.rebuild();
  }

  /** A new routing snapshot (the host's latest RouteSpec list of this section). */
  rebuild(): void {
    const primary: UdpRoute[] = [];
    const backup: UdpRoute[] = [];
    const cs = this.pm.host.counters;
    for (const b of this.pm.host.routes(this.s.name)) {
      if (b.state !== 'UP') continue;
      const r: UdpRoute = { id: b.id, name: b.name, host: b.host, port: b.port, weight: b.weight, counters: cs.backend(b.id), maxconn: b.maxconn };
      if (r.weight > 0) (b.backup ? backup : primary).push(r);
    }
    this.primary = createBalancer(this.s.balance, primary, this.primary);
    this.backup = createBalancer(this.s.balance, backup, this.backup);
  }

  // ---- hot path: per datagram ---------------------------------------------------------------

  fromClient(msg: Buffer, rinfo: RemoteInfo): void {
    const key = rinfo.address + '|' + rinfo.port;
    const now = Date.now();
    let f = this.flows.get(key);
    if (f !== undefined) {
      // Most recently active last: eviction takes the first.
      this.flows.delete(key);
      this.flows.set(key, f);
    } else {
      const s = this.s;
      if (s.filter.active && !s.filter.admits(rinfo.address)) { this.counters.deniedConn++; return; }
      const set = this.primary.items.length > 0 ? this.primary : this.backup;
      const r = set.pick(s.hashSource ? hashString(rinfo.address) : -1, null);
      if (r === undefined) { this.counters.errConn++; return; }
      if (this.flows.size >= s.maxFlows) this.evictOldest();
      const up = createSocket({ type: isIPv6(r.host) ? 'udp6' : 'udp4' }) as FlowSocket;
      f = new Flow(key, rinfo.address, rinfo.port, r, up, now);
      up[kFlow] = f;
      up[kListener] = this;
      up.on('message', onServerMessage);
      up.on('error', onServerError);
      this.flows.set(key, f);
      this.counters.begin(now);
      r.counters.begin(now);
    }
    f.last = now;
    this.counters.bytesIn += msg.length;
    f.route.counters.bytesIn += msg.length;
    f.sock.send(msg, f.route.port, f.route.host);
  }

  fromServer(f: Flow, msg: Buffer, rinfo: RemoteInfo): void {
    const r = f.route;
    // Only the flow's server may answer through it (anything else on its port is dropped).
    if (rinfo.port !== r.port || (rinfo.address !== r.host && rinfo.address !== '::ffff:' + r.host)) return;
    if (this.flows.get(f.key) !== f) return;
    this.flows.delete(f.key);
    this.flows.set(f.key, f);
    f.last = Date.now();
    this.counters.bytesOut += msg.length;
    r.counters.bytesOut += msg.length;
    this.sock?.send(msg, f.port, f.address);
    if (this.s.replies > 0 && ++f.replies >= this.s.replies) this.close(f);
  }

  close(f: Flow): void {
    if (this.flows.get(f.key) !== f) return;
    this.flows.delete(f.key);
    this.counters.cur--;
    f.route.counters.cur--;
    try { f.sock.close(); } catch { /* already closed */ }
  }

  private evictOldest(): void {
    const first = this.flows.values().next().value as Flow | undefined;
    if (first === undefined) return;
    this.close(first);
    this.counters.flowsEvicted++;
    this.evictLog.hit();
  }

  sweep(now: number): void {
    const idle = this.s.idleMs;
    // Least recently active first: stop at the first flow still in use.
    for (const f of this.flows.values()) {
      if (now - f.last < idle) break;
      this.close(f);
    }
  }

  destroyConnectionsTo(_address: string): number { return 0; }

  async stop(_drainMs: number): Promise<void> {
    if (this.sweeper) clearInterval(this.sweeper);
    this.sweeper = undefined;
    for (const f of [...this.flows.values()]) this.close(f);
    this.evictLog.close();
    const sock = this.sock;
    this.sock = undefined;
    this.bound = undefined;
    if (sock) await new Promise<void>((ok) => sock.close(() => ok()));
  }
}

function onClientMessage(this: FlowSocket, msg: Buffer, rinfo: RemoteInfo): void { this[kListener]!.fromClient(msg, rinfo); }
function onServerMessage(this: FlowSocket, msg: Buffer, rinfo: RemoteInfo): void { this[kListener]!.fromServer(this[kFlow]!, msg, rinfo); }
/** ICMP port unreachable from the server (ECONNREFUSED) and the like: counted, the flow closed. */
function onServerError(this: FlowSocket): void {
  const f = this[kFlow]!;
  const l = this[kListener]!;
  l.counters.errConn++;
  f.route.counters.errConn++;
  l.close(f);
}
