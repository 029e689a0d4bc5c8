import type { App } from '../app.js';
import type { Config } from '../config/schema.js';
import { Listener } from './listener.js';
import { AcceptGuard } from './accept-guard.js';
import { certVerdict, tlsStatuses } from '../tls/status.js';
import { AccessLog } from './access-log.js';
import { TcpListener } from '../l4/tcp.js';
import { UdpListener } from '../l4/udp.js';
import type { ListenConfig } from '../config/schema.js';

/** A mode tcp / udp listen section (src/l4/): the part of a Listener the manager drives. */
export interface L4Listener {
  readonly s: { readonly cfg: ListenConfig };
  start(): Promise<void>;
  update(cfg: ListenConfig): void;
  rebuild(): void;
  stop(drainMs: number): Promise<void>;
  isServing(): boolean;
  address(): { host: string; port: number } | undefined;
  destroyConnectionsTo(address: string): number;
  /** Per-client limits table (mode tcp). */
  readonly clients?: { clear(): void };
}

function makeL4(app: App, l: ListenConfig): L4Listener {
  return l.mode === 'udp' ? new UdpListener(app, l) : new TcpListener(app, l);
}

/**
 * The data plane: one Listener per listen section. Rebuilds a listener's routing snapshot when
 * the backend set publishes; applies reloads (same bind: settings swapped in place, connections
 * kept; new bind: new server started before the old one drains).
 */
export class ProxyManager {
  readonly listeners = new Map<string, Listener>();
  /** mode tcp / udp sections (HA's HTTP self-check does not probe them). */
  readonly l4 = new Map<string, L4Listener>();
  /** Client connection budget over every listener (global.maxconn) and refused-accept visibility. */
  readonly guard: AcceptGuard;
  /** The access log, shared by every listener; global.log reloads reconfigure it in place. */
  readonly access: AccessLog;

  constructor(private readonly app: App) {
    this.guard = new AcceptGuard(app.log, app.cfg.global.maxconn);
    this.access = new AccessLog(app.log, app.cfg.global.log);
    // Certificate expiry in `pairlb status`: WARNING within 14 days, CRITICAL within 3.
    app.addStatusNotes(() => {
      const v = certVerdict(tlsStatuses(app));
      return v.code > 0 && v.text ? [{ source: 'tls', level: v.code as 1 | 2, text: v.text }] : [];
    });
    app.backends.on('publish', (listen: string) => (this.listeners.get(listen) ?? this.l4.get(listen))?.rebuild());
    // Per-client limits are local and short-lived: every HA role change starts them afresh, so a
    // node never applies bans from an earlier time as master, and a backup holds none (issue 14).
    app.on('role', () => { for (const l of this.listeners.values()) l.clients.clear(); for (const l of this.l4.values()) l.clients?.clear(); });
  }

  async start(): Promise<void> {
    this.guard.start();
    for (const l of this.app.cfg.listen) {
      if (l.mode !== 'http') { const li = makeL4(this.app, l); await li.start(); this.l4.set(l.name, li); continue; }
      const li = new Listener(this.app, l);
      await li.start();
      this.listeners.set(l.name, li);
    }
  }

  async reload(cfg: Config): Promise<void> {
    this.guard.update(cfg.global.maxconn);
    const keep = new Set(cfg.listen.map((l) => l.name));
    const stops: Promise<void>[] = [];
    for (const [name, li] of this.listeners) {
      if (!keep.has(name)) { this.listeners.delete(name); stops.push(li.stop(li.s.cfg.timeouts.drain)); }
    }
    for (const [name, li] of this.l4) {
      if (!keep.has(name)) { this.l4.delete(name); stops.push(li.stop(li.s.cfg.timeouts.drain)); }
    }
    for (const l of cfg.listen) {
      const http = this.listeners.get(l.name);
      const l4 = this.l4.get(l.name);
      const old = http ?? l4;
      if (old !== undefined && old.s.cfg.mode !== l.mode) {
        // Another mode on the same name: the old listener stops accepting (and drains) first,
        // since the new one may need the same address.
        this.listeners.delete(l.name);
        this.l4.delete(l.name);
        stops.push(old.stop(old.s.cfg.timeouts.drain));
        await new Promise((ok) => setImmediate(ok));
      } else if (l4 !== undefined) {
        if (l4.s.cfg.bind === l.bind) { l4.update(l); continue; }
        const li = makeL4(this.app, l);
        await li.start();
        this.l4.set(l.name, li);
        stops.push(l4.stop(l4.s.cfg.timeouts.drain));
        continue;
      }
      if (l.mode !== 'http') { const li = makeL4(this.app, l); await li.start(); this.l4.set(l.name, li); continue; }
      const cur = this.listeners.get(l.name);
      if (cur && cur.s.cfg.bind === l.bind && !cur.s.cfg.tls === !l.tls) { cur.update(l); continue; }
      const li = new Listener(this.app, l);
      await li.start();
      this.listeners.set(l.name, li);
      if (cur) stops.push(cur.stop(cur.s.cfg.timeouts.drain));
    }
    await Promise.all(stops);
  }

  async stop(drainMs?: number): Promise<void> {
    await Promise.all([...this.listeners.values(), ...this.l4.values()].map((l) => l.stop(drainMs ?? l.s.cfg.timeouts.drain)));
    this.listeners.clear();
    this.l4.clear();
    this.guard.stop();
    this.access.close();
  }

  /**
   * Close idle keep-alive client connections on every listener. HA calls it after handing the VIP
   * over: a client's next request on such a connection would reach the new master and be reset.
   */
  closeIdleConnections(): void {
    for (const l of this.listeners.values()) l.server?.closeIdleConnections();
  }

  /**
   * Destroy client connections whose local address is `address` (a VIP this node gave up): the
   * client's packets now go to the other node, so they can never finish; without this a stopping
   * process would wait for them until timeouts.drain. Returns how many were destroyed.
   */
  destroyConnectionsTo(address: string): number {
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
}
