import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { Socket } from 'node:net';
import { SourceFilter } from '../config/cidr.js';
import { connect } from 'node:net';
import { chmodSync, lstatSync, mkdirSync, readFileSync, unlinkSync } from 'node:fs';
import { dirname } from 'node:path';
import { moduleFactories, type App, type Module } from '../app.js';
import type { Config } from '../config/schema.js';
import { parseHostPort } from '../config/types.js';
import { PairlbError } from '../errors.js';
import type { Logger } from '../log.js';
import { DEFAULT_ADMIN_SOCKET, type AdminConfig } from '../stats/config.js';
import { secretEquals, type UserRole } from '../stats/auth.js';
import { LoginGuard } from '../stats/login-guard.js';
import { loginSchema } from '../stats/config.js';
import { adminActions, handleApi } from './api.js';
import type { Actor } from './actions.js';

/**
 * Runtime admin API module (configured by the `admin:` section). Transport:
 *   - unix socket (default /run/pairlb/admin.sock, mode 0600): access is controlled by the file's
 *     permissions, no token;
 *   - or `bind` (a loopback address is expected) + bearer token from `token` / `token_file`:
 *     every request needs `Authorization: Bearer <token>` (constant-time comparison); a
 *     `read_only_token` may only read (every write answers 403). Wrong tokens count as failed
 *     logins per source (login-guard.ts, the stats page's default limits): after 5, 429.
 */

const USER_RE = /^[A-Za-z0-9._@-]{1,64}$/;

export function transportKey(a: AdminConfig): string {
  return (a.bind ? 'tcp:' + a.bind : 'unix:' + (a.socket ?? DEFAULT_ADMIN_SOCKET) + ':' + a.socket_mode) +
    (a.read_only_socket ? ' ro:' + a.read_only_socket + ':' + a.read_only_socket_mode : '');
}

function tokenFrom(inline: string | undefined, file: string | undefined): string | undefined {
  if (inline) return inline;
  if (!file) return undefined;
  const t = readFileSync(file, 'utf8').trim();
  if (t.length < 16) throw new PairlbError('PAIRLB_ADMIN_TOKEN', `${file}: token shorter than 16 characters`);
  return t;
}

export function readToken(a: AdminConfig): string | undefined { return tokenFrom(a.token, a.token_file); }

export function readReadOnlyToken(a: AdminConfig): string | undefined {
  const t = tokenFrom(a.read_only_token, a.read_only_token_file);
  if (t !== undefined && t === readToken(a)) throw new PairlbError('PAIRLB_ADMIN_TOKEN', 'admin.read_only_token must differ from admin.token');
  return t;
}

/** Remove a leftover socket file from a crashed run, but never steal a live one. */
async function clearStaleSocket(path: string): Promise<void> {
  let st;
  try { st = lstatSync(path); } catch { return; }
  if (!st.isSocket()) throw new PairlbError('PAIRLB_ADMIN_SOCKET', `${path} exists and is not a socket`);
  const live = await new Promise<boolean>((ok) => {
    const s = connect(path);
    s.once('connect', () => { s.destroy(); ok(true); });
    s.once('error', () => ok(false));
  });
  if (live) throw new PairlbError('PAIRLB_ADMIN_SOCKET', `${path} is in use by another running pairlb`);
  unlinkSync(path);
}

export class AdminModule implements Module {
  readonly name = 'admin';
  private server: Server | undefined;
  private key = '';
  private token: string | undefined;
  private roToken: string | undefined;
  /** Failed token checks per source; kept across reloads. */
  readonly guard: LoginGuard;
  private socketPath: string | undefined;
  /** The read-only unix socket (admin.read_only_socket): every write answers 403. */
  private roServer: Server | undefined;
  private roSocketPath: string | undefined;
  private readonly log: Logger;

  constructor(private readonly app: App, private cfg: AdminConfig) {
    this.log = app.log.child({ mod: 'admin' });
    this.guard = new LoginGuard(this.log, loginSchema.parse({}), 'admin API');
  }

  /** Bound TCP address (tests bind port 0) or socket path. */
  address(): { host: string; port: number } | string | undefined {
    const a = this.server?.address();
    if (!a) return undefined;
    return typeof a === 'string' ? a : { host: a.address, port: a.port };
  }

  async start(): Promise<void> { await this.listen(); }

  private actor(req: IncomingMessage): Actor {
    const h = req.headers['x-pairlb-user'];
    const u = typeof h === 'string' && USER_RE.test(h) ? h : req.socket.localPort === undefined ? 'socket' : 'token';
    return { user: u, via: /pairlb-cli/.test(req.headers['user-agent'] ?? '') ? 'cli' : 'api' };
  }

  private filter = SourceFilter.OPEN;

  private async listen(): Promise<void> {
    const cfg = this.cfg;
    this.key = transportKey(cfg);
    this.token = cfg.bind ? readToken(cfg) : undefined;
    this.roToken = cfg.bind ? readReadOnlyToken(cfg) : undefined;
    const srv = createServer((req, res) => {
      let role: UserRole = 'admin';
      if (this.token !== undefined) {
        const h = req.headers.authorization ?? '';
        const r = !h ? { status: 401 as const } : this.guard.token(req.socket.remoteAddress, (): UserRole | undefined => {
          if (!/^Bearer /i.test(h)) return undefined;
          const t = h.slice(7).trim();
          // Both compared every time: which token matched is not told by timing.
          const admin = secretEquals(t, this.token!), ro = this.roToken !== undefined && secretEquals(t, this.roToken);
          return admin ? 'admin' : ro ? 'read-only' : undefined;
        });
        if (r.status === 429) {
          res.writeHead(429, { 'content-type': 'application/json', 'retry-after': String(r.retryAfter) });
          res.end('{"error":{"code":"PAIRLB_LOCKED_OUT","message":"too many wrong tokens from this address: try again later"}}\n');
          return;
        }
        if (r.status === 401) {
          res.writeHead(401, { 'content-type': 'application/json', 'www-authenticate': 'Bearer realm="pairlb-admin"' });
          res.end('{"error":{"code":"PAIRLB_UNAUTHORIZED","message":"bearer token required"}}\n');
          return;
        }
        role = r.value;
      }
      void handleApi(this.app, req, res, { removeTimeoutMs: () => this.cfg.remove_timeout, actor: (r) => this.actor(r), role });
    });
    srv.headersTimeout = 10_000;
    srv.requestTimeout = 0; // DELETE waits for a drain (up to remove_timeout)
    srv.on('error', (e) => { if (this.server === srv) this.log.error({ err: e }, 'admin API server error'); });
    if (cfg.read_only_socket) {
      const ro = createServer((req, res) => { void handleApi(this.app, req, res, { removeTimeoutMs: () => this.cfg.remove_timeout, actor: (r) => this.actor(r), role: 'read-only' }); });
      ro.headersTimeout = 10_000;
      ro.on('error', (e) => { if (this.roServer === ro) this.log.error({ err: e }, 'admin API read-only socket error'); });
      await this.listenUnix(ro, cfg.read_only_socket, cfg.read_only_socket_mode);
      this.roServer = ro;
      this.roSocketPath = cfg.read_only_socket;
      this.log.info({ socket: cfg.read_only_socket, mode: cfg.read_only_socket_mode }, `admin API (read-only) listening on unix socket ${cfg.read_only_socket} (mode ${cfg.read_only_socket_mode})`);
    }
    if (cfg.bind) {
      const hp = parseHostPort(cfg.bind)!;
      // admin.allow / admin.deny (TCP bind only: a unix socket's access is its file mode); a
      // reload swaps the filter without reopening the socket.
      this.filter = new SourceFilter(cfg.allow, cfg.deny);
      srv.on('connection', (sock: Socket) => {
        if (this.filter.admits(sock.remoteAddress)) return;
        this.log.debug({ client: sock.remoteAddress }, 'admin API: source not allowed, connection closed');
        sock.destroy();
      });
      if (!['127.0.0.1', '::1', 'localhost'].includes(hp.host) && !hp.host.startsWith('127.')) this.log.warn({ bind: cfg.bind }, 'admin API bound to a non-loopback address: only the token protects it');
      await new Promise<void>((ok, fail) => { srv.once('error', fail); srv.listen(hp.port, hp.host, () => { srv.off('error', fail); ok(); }); });
      const at = srv.address() as { address: string; port: number };
      const a = { host: at.address, port: at.port };
      this.log.info({ bind: a }, `admin API listening on http://${a.host.includes(':') ? `[${a.host}]` : a.host}:${a.port} (token required)`);
    } else {
      const path = cfg.socket ?? DEFAULT_ADMIN_SOCKET;
      await this.listenUnix(srv, path, cfg.socket_mode);
      this.socketPath = path;
      this.log.info({ socket: path, mode: cfg.socket_mode }, `admin API listening on unix socket ${path} (mode ${cfg.socket_mode})`);
    }
    this.server = srv;
  }

  private async listenUnix(srv: Server, path: string, mode: string): Promise<void> {
    mkdirSync(dirname(path), { recursive: true, mode: 0o750 });
    await clearStaleSocket(path);
    await new Promise<void>((ok, fail) => { srv.once('error', fail); srv.listen(path, () => { srv.off('error', fail); ok(); }); });
    chmodSync(path, parseInt(mode, 8));
  }

  private async close(): Promise<void> {
    const srv = this.server, ro = this.roServer;
    this.server = undefined;
    this.roServer = undefined;
    await Promise.all([srv, ro].map((s) => s && new Promise<void>((ok) => { s.close(() => ok()); s.closeAllConnections(); })));
    for (const p of [this.socketPath, this.roSocketPath]) if (p) { try { unlinkSync(p); } catch { /* already gone */ } }
    this.socketPath = undefined;
    this.roSocketPath = undefined;
  }

  async reload(cfg: Config): Promise<void> {
    if (!cfg.admin) { await this.close(); return; }
    const next = cfg.admin;
    const restart = transportKey(next) !== this.key || (next.bind && (readToken(next) !== this.token || readReadOnlyToken(next) !== this.roToken));
    this.cfg = next;
    this.filter = new SourceFilter(next.allow, next.deny);
    if (restart || !this.server) { await this.close(); await this.listen(); }
  }

  async stop(): Promise<void> {
    adminActions(this.app).close();
    this.guard.close();
    await this.close();
  }
}

moduleFactories.push((app) => (app.cfg.admin ? new AdminModule(app, app.cfg.admin) : undefined));
