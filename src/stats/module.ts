import { acmeOf } from '../acme/module.js';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { SourceFilter } from '../config/cidr.js';
import { createHmac, randomBytes } from 'node:crypto';
import { moduleFactories, type App, type Module } from '../app.js';
import type { Config } from '../config/schema.js';
import { parseHostPort } from '../config/types.js';
import { PairlbError } from '../errors.js';
import type { Logger } from '../log.js';
import { adminActions } from '../admin/api.js';
import { readBody } from '../admin/http.js';
import { Authenticator, CsrfTokens, type Identity } from './auth.js';
import { LoginGuard } from './login-guard.js';
import type { StatsConfig } from './config.js';
import { renderCsv } from './csv.js';
import { renderHaproxyCsv } from './haproxy-csv.js';
import { packageVersion } from '../version.js';
import { RateSampler, buildFrontendRows, buildTables, panelStatus, statsJson, watchRoles, type RowOpts } from './model.js';
import { renderPage } from './page.js';
import { tlsStatuses } from '../tls/status.js';
import { PromExporter } from './prometheus.js';

/**
 * The stats server (control plane, its own address, default 127.0.0.1:8404):
 *   GET  /            HTML page (auto-refresh)         GET /stats.csv, /stats.json   same table
 *   GET  /;csv        the same in HAProxy's CSV format (field names and rows as HAProxy 2.6)
 *   GET  /metrics     Prometheus (prom-client)         POST /action                 admin actions
 * Basic auth (scrypt hashes) guards everything when users are configured, behind the failed-login
 * limits of login-guard.ts. Admin actions need `admin: true`, a user with role admin, a POST with a
 * valid anti-CSRF token bound to the user, and an Origin (or Referer) that is this server's own
 * address or listed in `stats.origins` — never judged by the request's own Host header.
 *
 * Nothing here touches the request path of the proxy: the page and /metrics read the counters when
 * they render, and session rates come from a 1 s sampling timer.
 */

const SECURITY_HEADERS = {
  'x-content-type-options': 'nosniff',
  'x-frame-options': 'DENY',
  'referrer-policy': 'same-origin',
  'cache-control': 'no-store',
};

export class StatsModule implements Module {
  readonly name = 'stats';
  private server: Server | undefined;
  private auth: Authenticator;
  /** Failed-login limits and counters; kept across reloads (a reload does not unlock a source). */
  readonly guard: LoginGuard;
  /** Origins allowed to POST actions besides this socket's own address (see allowedOrigin). */
  private origins = new Set<string>();
  private loopback = false;
  private readonly csrf = new CsrfTokens();
  private readonly rates: RateSampler;
  private readonly prom: PromExporter;
  private readonly log: Logger;
  private bind = '';
  private unwatch: (() => void) | undefined;
  /** Signs the one-line result shown after an action, so a crafted link cannot put text on the page. */
  private readonly flashKey = randomBytes(32);

  constructor(private readonly app: App, private cfg: StatsConfig) {
    this.log = app.log.child({ mod: 'stats' });
    this.guard = new LoginGuard(this.log, cfg.login, 'stats');
    this.auth = this.makeAuth(cfg);
    this.rates = new RateSampler(app);
    this.prom = new PromExporter(app, () => this.rowOpts(), this.guard);
  }

  private makeAuth(cfg: StatsConfig): Authenticator {
    for (const u of Authenticator.plaintextUsers(cfg.auth)) {
      this.log.warn({ user: u }, `stats.auth user ${u} has a plaintext password in the config; store an scrypt hash instead (pairlb hash-password)`);
    }
    const a = new Authenticator(cfg.auth, cfg.login.cache, cfg.login.cache_size);
    if (!a.enabled) this.log.warn({ bind: cfg.bind }, 'stats page has no auth users: anyone who can reach it can read it');
    return a;
  }

  private rowOpts(): RowOpts { return { rates: this.rates, removing: adminActions(this.app).removing }; }

  /** Bound address (tests bind port 0). */
  address(): { host: string; port: number } | undefined {
    const a = this.server?.address();
    return a && typeof a === 'object' ? { host: a.address, port: a.port } : undefined;
  }

  async start(): Promise<void> {
    this.unwatch = watchRoles(this.app);
    this.rates.start();
    await this.listen();
  }

  private async listen(): Promise<void> {
    const hp = parseHostPort(this.cfg.bind)!;
    const srv = createServer((req, res) => { void this.handle(req, res); });
    srv.headersTimeout = 10_000;
    srv.requestTimeout = 30_000;
    // stats.allow / stats.deny, read at each accept (a reload swaps the filter, the socket stays).
    srv.on('connection', (sock: Socket) => {
      if (this.filter.admits(sock.remoteAddress)) return;
      this.deniedConn++;
      this.log.debug({ client: sock.remoteAddress }, 'stats: source not allowed, connection closed');
      sock.destroy();
    });
    await new Promise<void>((ok, fail) => { srv.once('error', fail); srv.listen(hp.port, hp.host, () => { srv.off('error', fail); ok(); }); });
    // Bound: an 'error' now is an accept failure (EMFILE); log it rather than crash the process.
    srv.on('error', (e) => this.log.error({ err: e }, 'stats server error'));
    this.server = srv;
    this.bind = this.cfg.bind;
    this.setOrigins();
    const at = this.address();
    this.log.info({ address: at, auth: this.auth.enabled, admin: this.cfg.admin }, `stats page listening on http://${at?.host}:${at?.port}/`);
  }

  /** Connections closed by stats.allow / stats.deny. */
  deniedConn = 0;
  private filter = SourceFilter.OPEN;

  private setOrigins(): void {
    this.filter = new SourceFilter(this.cfg.allow, this.cfg.deny);
    this.origins = new Set(this.cfg.origins);
    const host = parseHostPort(this.cfg.bind)!.host;
    this.loopback = host === 'localhost' || host === '::1' || host.startsWith('127.');
    const port = this.address()?.port;
    if (this.loopback && port !== undefined) this.origins.add(`http://localhost:${port}`);
  }

  private async close(): Promise<void> {
    const srv = this.server;
    this.server = undefined;
    if (srv) await new Promise<void>((ok) => { srv.close(() => ok()); srv.closeAllConnections(); });
  }

  async reload(cfg: Config): Promise<void> {
    if (!cfg.stats) { await this.close(); return; }
    const next = cfg.stats;
    if (JSON.stringify(next.auth) !== JSON.stringify(this.cfg.auth) || next.login.cache !== this.cfg.login.cache || next.login.cache_size !== this.cfg.login.cache_size) this.auth = this.makeAuth(next);
    this.guard.update(next.login);
    this.cfg = next;
    if (next.bind !== this.bind || !this.server) { await this.close(); await this.listen(); }
    else this.setOrigins();
  }

  async stop(): Promise<void> {
    this.unwatch?.();
    this.rates.stop();
    this.guard.close();
    await this.close();
  }

  // ---- requests ---------------------------------------------------------------------------------

  private send(res: ServerResponse, status: number, type: string, body: string, extra: Record<string, string> = {}): void {
    res.writeHead(status, { ...SECURITY_HEADERS, 'content-type': type, 'content-length': Buffer.byteLength(body), ...extra });
    res.end(body);
  }

  private unauthorized(res: ServerResponse): void {
    this.send(res, 401, 'text/plain; charset=utf-8', 'authentication required\n', { 'www-authenticate': `Basic realm="${this.cfg.realm}", charset="UTF-8"` });
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    try {
      const url = new URL(req.url ?? '/', 'http://stats');
      const path = url.pathname;
      const isMetrics = path === '/metrics';
      let id: Identity | undefined;
      if (this.auth.enabled && !(isMetrics && !this.cfg.metrics_auth)) {
        const r = await this.guard.authenticate(this.auth, req.headers.authorization, req.socket.remoteAddress);
        if (r.status === 401) return this.unauthorized(res);
        if (r.status !== 200) {
          return this.send(res, r.status, 'text/plain; charset=utf-8', r.status === 429 ? 'too many failed logins from your address: try again later\n' : 'busy checking other logins: retry in a moment\n', { 'retry-after': String(r.retryAfter) });
        }
        id = r.id;
      }
      const user = id?.user;
      const m = req.method ?? 'GET';
      if (m === 'POST' && path === '/action') return await this.action(req, res, id);
      if (m !== 'GET' && m !== 'HEAD') return this.send(res, 405, 'text/plain; charset=utf-8', 'method not allowed\n', { allow: 'GET, HEAD' + (this.cfg.admin ? ', POST' : '') });
      // Data-plane workers: their counters up to this request (bounded wait) for exact totals.
      await this.app.proxy.sync();
      const now = Date.now();
      const opts = { ...this.rowOpts(), now };
      switch (path) {
        case '/':
        case '/stats': {
          const nonce = randomBytes(12).toString('base64');
          const ok = this.flashOk(url, 'ok'), err = this.flashOk(url, 'err');
          const html = renderPage({
            node: this.app.node, role: this.app.role, now, tables: buildTables(this.app, opts), frontends: buildFrontendRows(this.app, opts),
            ha: panelStatus(this.app, 'ha'), scale: panelStatus(this.app, 'scale'),
            refreshMs: this.cfg.refresh, nonce, user, all: url.searchParams.get('all') === '1',
            csrf: this.cfg.admin && user && id?.role === 'admin' && !adminActions(this.app).readOnlyReason() ? this.csrf.issue(user, now) : undefined,
            readOnlyUser: id?.role === 'read-only',
            logins: this.auth.enabled ? { ...this.guard.counters, sources: this.guard.limiter.size } : undefined,
            note: this.cfg.admin ? adminActions(this.app).readOnlyReason() : undefined,
            flash: ok ? { ok: true, text: ok } : err ? { ok: false, text: err } : undefined,
            conn: (({ open, maxconn, fdLimit, fdLimitHits }) => ({ open, maxconn, fdLimit, fdLimitHits }))(this.app.proxy.guard),
            tls: tlsStatuses(this.app),
            proc: { pid: process.pid, version: packageVersion(), uptimeS: Math.round(process.uptime()) },
            haPaths: this.app.cfg.ha ? { dedicated: true, public: (this.app.cfg.ha as { node?: { public?: string } }).node?.public !== undefined } : undefined,
            hideDown: url.searchParams.get('hide') === 'down',
            acme: acmeOf(this.app)?.status(),
          });
          return this.send(res, 200, 'text/html; charset=utf-8', html, {
            'content-security-policy': `default-src 'none'; style-src 'nonce-${nonce}'; script-src 'nonce-${nonce}'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'`,
          });
        }
        case '/stats.csv':
          return this.send(res, 200, 'text/csv; charset=utf-8', renderCsv(buildTables(this.app, opts)));
        case '/;csv': case '/;csv;norefresh': case '/stats;csv': case '/stats;csv;norefresh':
          // HAProxy's `<stats uri>;csv`, with HAProxy's field names (src/stats/haproxy-csv.ts).
          return this.send(res, 200, 'text/csv; charset=utf-8', renderHaproxyCsv(buildTables(this.app, opts), { algo: (l) => (this.app.cfg.listen as { name: string; balance?: string }[] | undefined)?.find((x) => x.name === l)?.balance }));
        case '/stats.json':
          return this.send(res, 200, 'application/json; charset=utf-8', JSON.stringify(statsJson(this.app, opts)) + '\n');
        case '/metrics':
          if (!this.cfg.metrics) break;
          return this.send(res, 200, this.prom.contentType, await this.prom.text());
      }
      this.send(res, 404, 'text/plain; charset=utf-8', 'not found\n');
    } catch (e) {
      this.log.error({ err: e }, 'stats request failed');
      if (!res.headersSent) this.send(res, 500, 'text/plain; charset=utf-8', 'internal error\n');
      else res.destroy();
    }
  }

  private flashSig(kind: string, text: string): string {
    return createHmac('sha256', this.flashKey).update(kind + '\0' + text).digest('base64url').slice(0, 22);
  }

  private flashUrl(kind: 'ok' | 'err', text: string): string {
    const t = text.slice(0, 200);
    return `./?${kind}=${encodeURIComponent(t)}&sig=${this.flashSig(kind, t)}`;
  }

  private flashOk(url: URL, kind: 'ok' | 'err'): string | null {
    const t = url.searchParams.get(kind);
    return t !== null && url.searchParams.get('sig') === this.flashSig(kind, t) ? t : null;
  }

  /**
   * Is this POST from our own page? Sec-Fetch-Site must not say cross-site; the Origin (or, without
   * one, the Referer's origin) must be the address this socket was reached at (the bind address;
   * for a wildcard bind the local address of the connection), `localhost` on a loopback bind, or
   * one of `stats.origins`. The Host header is the client's to choose (DNS rebinding, or simply
   * `Host: evil.example` with `Origin: http://evil.example`): it is never compared. Without either
   * header (not a browser) the anti-CSRF token alone decides.
   */
  private sameOrigin(req: IncomingMessage): boolean {
    const site = req.headers['sec-fetch-site'];
    if (site !== undefined && site !== 'same-origin' && site !== 'none') return false;
    let o = req.headers.origin;
    if (o === undefined) {
      const ref = req.headers.referer;
      if (ref === undefined) return true;
      o = ref;
    }
    let origin: string;
    try { origin = new URL(o).origin; } catch { return false; }
    if (origin === 'null') return false;
    if (this.origins.has(origin)) return true;
    const local = req.socket.localAddress, port = req.socket.localPort;
    if (!local || !port) return false;
    const a = local.startsWith('::ffff:') ? local.slice(7) : local;
    return origin === new URL(`http://${a.includes(':') ? `[${a}]` : a}:${port}`).origin;
  }

  private async action(req: IncomingMessage, res: ServerResponse, id: Identity | undefined): Promise<void> {
    const user = id?.user;
    const refuse = (status: number, why: string) => {
      this.log.warn({ user, remote: req.socket.remoteAddress, why }, `stats: admin action refused: ${why}`);
      this.send(res, status, 'text/plain; charset=utf-8', `refused: ${why}\n`);
    };
    if (!this.cfg.admin || !user) return refuse(403, 'admin actions are disabled (stats.admin: false)');
    if (id?.role !== 'admin') return refuse(403, `user ${user} is read-only`);
    if (!(req.headers['content-type'] ?? '').startsWith('application/x-www-form-urlencoded')) return refuse(415, 'expected a form post');
    if (!this.sameOrigin(req)) return refuse(403, 'cross-site request');
    const form = new URLSearchParams(await readBody(req, 8192));
    if (!this.csrf.verify(user, form.get('csrf'))) return refuse(403, 'missing or invalid anti-CSRF token (reload the page)');
    const listen = form.get('listen') ?? '', backend = form.get('backend') ?? '', action = form.get('action') ?? '';
    const actions = adminActions(this.app);
    const who = { user, via: 'page' as const };
    let msg: string;
    try {
      if (action === 'weight') { const v = actions.setWeight(listen, backend, form.get('weight') ?? '', who); msg = `${listen}/${backend}: weight ${v.weight}`; }
      else { const v = actions.setState(listen, backend, action, who); msg = `${listen}/${backend}: ${action} (now ${v.state})`; }
    } catch (e) {
      if (!(e instanceof PairlbError)) throw e;
      return this.send(res, 303, 'text/plain; charset=utf-8', '', { location: this.flashUrl('err', e.message) });
    }
    this.send(res, 303, 'text/plain; charset=utf-8', '', { location: this.flashUrl('ok', msg) });
  }
}

moduleFactories.push((app) => (app.cfg.stats ? new StatsModule(app, app.cfg.stats) : undefined));
