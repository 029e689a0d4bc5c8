import type { App } from '../app.js';
import type { Config } from '../config/schema.js';
import { Listener } from './listener.js';
import { AcceptGuard } from './accept-guard.js';
import { certVerdict, tlsStatuses } from '../tls/status.js';
import { AccessLog } from './access-log.js';

/**
 * The data plane: one Listener per listen section. Rebuilds a listener's routing snapshot when
 * the backend set publishes; applies reloads (same bind: settings swapped in place, connections
 * kept; new bind: new server started before the old one drains).
 */
export class ProxyManager {
  readonly listeners = new Map<string, Listener>();
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
    app.backends.on('publish', (listen: string) => this.listeners.get(listen)?.rebuild());
    // Per-client limits are local and short-lived: every HA role change starts them afresh, so a
    // node never applies bans from an earlier time as master, and a backup holds none (issue 14).
    app.on('role', () => { for (const l of this.listeners.values()) l.clients.clear(); });
  }

  async start(): Promise<void> {
    this.guard.start();
    for (const l of this.app.cfg.listen) {
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
    for (const l of cfg.listen) {
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
    await Promise.all([...this.listeners.values()].map((l) => l.stop(drainMs ?? l.s.cfg.timeouts.drain)));
    this.listeners.clear();
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
    return n;
  }

  /** True when every listen section is bound and accepting. HA uses it for FAULT. */
  isServing(): boolean {
    if (this.listeners.size === 0) return false;
    for (const l of this.listeners.values()) if (!l.isServing()) return false;
    return true;
  }

  /** Bound address of a listen section (port 0 in tests resolves here). */
  address(listen: string): { host: string; port: number } | undefined {
    return this.listeners.get(listen)?.address();
  }
}
