import { createServer, type IncomingMessage, type Server, type ServerOptions, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer, type Server as HttpsServer } from 'node:https';
import { createServer as createNetServer, type Server as NetServer, type Socket } from 'node:net';
import { answerHttp01 } from '../acme/http01.js';
import type { ProxyManager } from './manager.js';
import type { FrontendConfig } from '../config/sites.js';
import { parseHostPort } from '../config/types.js';
import type { Counters } from '../stats/counters.js';
import { ERROR_PAGES, STATUS_TEXT, rawErrorResponse } from './error-pages.js';
import type { Route } from './routing.js';
import type { WaitQueue } from './queue.js';
import { ClientTable, type ClientEntry, type LimitPolicy } from './client-limits.js';
import { SourceFilter } from '../config/cidr.js';
import { hashString } from '../balance/index.js';
import { inflight } from '../balance/balancer.js';
import { prefixSetCookie } from './sticky.js';
import { NO_POOL, type Pool } from './pool.js';
import { Action, compileRules, editHeaders, matchHost, matchRule, matchSni, redirectLocation, type CompiledRule } from './rules.js';
import { HOP, rewriteRequestHeaders } from './headers.js';
import type { AccessLog } from './access-log.js';
import { BodyWatch } from './body-timeout.js';
import { HeldBytes, openTunnel, startUpgrade, switchedTo } from './upgrade.js';
import { nonOriginTarget } from './request-head.js';
import { TlsTerminator } from '../tls/terminator.js';
import { isTls } from '../tls/flag.js';
import { AcceptProxy, clientAddress, clientPort, localAddress, acceptProxySettings } from '../l4/accept-proxy.js';
import { encodeProxyHeader } from '../l4/proxy-protocol.js';
import type { AttemptSink, Engine, Upstream, UpstreamConfig } from './engine.js';
import { H2Front, sniffPreface } from '../h2/server.js';
import { alpnList, setAlpn } from '../h2/alpn.js';
import { H1Front, kLean, type H1Settings } from './front/h1.js';

/** Response header name lengths worth lowercasing: hop-by-hop, set-cookie, cache-control. */
const RES_LENS = new Uint8Array(32);
for (const n of [...HOP, 'set-cookie', 'cache-control']) RES_LENS[n.length] = 1;

/** Timeouts waiting on the backend: 504, retried only when retry_on has response-timeout. */
const TIMEOUT_CODES = new Set(['UND_ERR_HEADERS_TIMEOUT', 'UND_ERR_BODY_TIMEOUT']);
const IDEMPOTENT = new Set(['GET', 'HEAD', 'OPTIONS', 'TRACE', 'PUT', 'DELETE']);
/**
 * Errors an engine raises before any connection because of the request itself (undici's
 * InvalidArgumentError for a header it will not send): the client's mistake, never the backend's.
 */
const LOCAL_CODES = new Set(['UND_ERR_INVALID_ARG', 'UND_ERR_NOT_SUPPORTED']);
const FD_CODES = new Set(['EMFILE', 'ENFILE']);

/**
 * Everything a request needs from its frontend (a listen section's client side), computed once
 * per config (re)load so the hot path reads fields instead of looking up config by string. The
 * backend side (engine, retries, cookie, balance, queues) is PoolSettings (pool.ts).
 */
export class ListenSettings {
  readonly name: string;
  /** `,"listen":"<name>"`: the access log's JSON field, encoded once. */
  readonly logListen: string;
  readonly xff: boolean;
  readonly xffLower: string;
  readonly xffName: string;
  readonly xproto: boolean;
  readonly forwarded: boolean;
  readonly maxRequestLine: number;
  /** max_headers × 2: the longest acceptable rawHeaders array. */
  readonly maxHeaderFields: number;
  /** timeouts.client_body in ms (0: off) and min_body_rate in bytes per ms (0: off). */
  readonly bodyIdleMs: number;
  readonly bodyRatePerMs: number;
  /** timeouts.tunnel: idle time after which an Upgrade tunnel is closed. */
  readonly tunnelMs: number;
  /** Request header name lengths worth lowercasing (1 = maybe special); indexed by length. */
  readonly interestingLengths: Uint8Array;
  /** The bound port (differs from the config with port 0), for X-Forwarded-Port. */
  readonly port: string;
  /** Frontend maxconn (0: only global.maxconn). */
  readonly maxconn: number;
  readonly filter: SourceFilter;
  /** Per-client limits: any on, and the rate one on. */
  readonly limited: boolean;
  readonly limitRate: boolean;
  readonly limits: LimitPolicy;
  /** connection_mode: close the backend side / the client side after each response. */
  readonly serverClose: boolean;
  readonly clientClose: boolean;

  constructor(readonly cfg: FrontendConfig, boundPort?: number) {
    this.name = cfg.name;
    this.logListen = ',"listen":' + JSON.stringify(cfg.name);
    this.xff = cfg.forwardfor.enabled;
    this.xffName = cfg.forwardfor.header;
    this.xffLower = cfg.forwardfor.header.toLowerCase();
    this.xproto = cfg.forwardfor.enabled && cfg.forwardfor.proto;
    this.forwarded = cfg.forwardfor.forwarded;
    this.maxRequestLine = cfg.max_request_line;
    this.maxHeaderFields = cfg.max_headers * 2;
    this.bodyIdleMs = cfg.timeouts.client_body;
    this.bodyRatePerMs = cfg.min_body_rate / 1000;
    this.tunnelMs = cfg.timeouts.tunnel;
    this.port = String(boundPort ?? parseHostPort(cfg.bind)!.port);
    this.maxconn = cfg.maxconn ?? 0;
    this.filter = new SourceFilter(cfg.allow, cfg.deny);
    const lim = cfg.limits;
    this.limits = { conn: lim.conn_per_source, rate: lim.rate_per_source, period: lim.rate_period, size: lim.table_size, expire: lim.expire };
    this.limited = lim.conn_per_source > 0 || lim.rate_per_source > 0;
    this.limitRate = lim.rate_per_source > 0;
    this.serverClose = cfg.connection_mode !== 'http-keep-alive';
    this.clientClose = cfg.connection_mode === 'httpclose';
    const names = [...HOP, 'host', 'content-length', 'cookie', 'forwarded', 'x-forwarded-proto', 'x-forwarded-host', 'x-forwarded-port', this.xffLower];
    this.interestingLengths = new Uint8Array(Math.max(...names.map((n) => n.length)) + 1);
    for (const n of names) this.interestingLengths[n.length] = 1;
  }
}

const latin1 = (b: Buffer | string): string => (typeof b === 'string' ? b : b.toString('latin1'));

/** The lean HTTP/1 front's settings of a bind: node:http's server options of start() and update(). */
function h1Settings(cfg: FrontendConfig): H1Settings {
  return { maxHeaderSize: cfg.max_header_size, maxHeadersCount: cfg.max_headers + 1, headersTimeout: cfg.timeouts.http_request, keepAliveTimeout: cfg.timeouts.client };
}

/** The first Host value of a raw header list (rules only: a frontend without rules never calls it). */
function hostOf(raw: readonly string[]): string | undefined {
  for (let i = 0; i < raw.length; i += 2) if (raw[i].length === 4 && raw[i].toLowerCase() === 'host') return raw[i + 1];
  return undefined;
}

function pathOnly(target: string): string {
  const q = target.indexOf('?');
  return q < 0 ? target : target.slice(0, q);
}

/** A matched rule's response header edits (HSTS only over TLS: RFC 6797 §7.2). */
function editResponse(rule: CompiledRule, out: string[], sock: Socket): void {
  if (rule.resDel !== null || rule.resAdd !== null) editHeaders(out, rule.resDel, rule.resAdd);
  if (rule.resAddTls !== null && isTls(sock)) editHeaders(out, null, rule.resAddTls);
}

/** The client's address: the PROXY header's with accept_proxy (src/l4/accept-proxy.ts), else the peer's. */
export const clientIp: (s: Socket) => string = clientAddress;

/**
 * One attempt of a request on one backend. undici calls these methods directly (it is the dispatch
 * handler); a late callback from an attempt that was abandoned is ignored.
 */
class Attempt implements AttemptSink {
  done = false;
  connected = false;
  constructor(readonly ex: Exchange, readonly route: Route) {}
  onConnect(abort: (err?: Error) => void): void {
    if (this.done) { abort(); return; }
    this.connected = true;
    this.ex.abortUpstream = abort;
    this.ex.tConnect = performance.now();
  }
  onHeaders(status: number, raw: (Buffer | string)[], resume: () => void, statusText: string): boolean {
    if (this.done) return false;
    // A 101 that is not a valid switch (no `Connection: upgrade`): never forwarded, never tunnelled.
    if (status === 101 && this.ex.upgrade !== null) { this.done = true; this.ex.badUpgrade(this, raw); return false; }
    return this.ex.upstreamHeaders(this, status, raw, resume, statusText);
  }
  onData(chunk: Buffer): boolean {
    if (this.done) return false;
    const ex = this.ex;
    ex.bytesOut += chunk.length;
    if (ex.res.write(chunk)) return true;
    ex.res.once('drain', ex.resumeUpstream ??= (): void => { const r = ex.resumeFn; if (r) r(); });
    return false;
  }
  onComplete(): void {
    if (this.done) return;
    this.done = true;
    this.ex.res.end();
  }
  onError(err: Error): void {
    if (this.done) return;
    this.done = true;
    this.ex.upstreamError(this, err);
  }
  // undici's dispatch handler also calls these; nothing to do.
  onBodySent(): void {}
  onRequestSent(): void {}
  onResponseStarted(): void {}
  onUpgrade(_status: number, raw: (Buffer | string)[], socket: Socket): void {
    if (this.done) { socket.destroy(); return; }
    this.done = true;
    this.ex.upstreamUpgrade(this, raw, socket);
  }
}

const kEx = Symbol('pairlb.exchange');
const kRead = Symbol('pairlb.bytesRead');
const kWritten = Symbol('pairlb.bytesWritten');
/** Date.now() when the connection became ready for its next request (accept, end of a response): a refused head's start. */
const kReady = Symbol('pairlb.ready');
const kConn = Symbol('pairlb.conn');
type TaggedRes = ServerResponse & { [kEx]?: Exchange };
/**
 * Set on a client connection once a request on it was refused (reject: `Connection: close`): what
 * llhttp reads after it (the refused request's body read as a request) must not get a second answer.
 */
const kRefused = Symbol('pairlb.refused');
/** node:http internals used to hold a connection's reading (the same as its own backpressure). */
type PausableSocket = Socket & { _paused?: boolean; parser?: { resume(): void } | null };
/** A parse error's status, to answer once the requests parsed before it are served (clientError). */
const kLastWord = Symbol('pairlb.lastWord');
/** The connection's per-client limits entry; kOver: opened beyond limits.conn_per_source (its requests get 429). */
const kClient = Symbol('pairlb.client');
const kOver = Symbol('pairlb.overLimit');
type ClientSocket = Socket & { [kConn]?: ConnQueue; [kRead]?: number; [kWritten]?: number; [kReady]?: number; [kRefused]?: boolean; [kLastWord]?: number; [kClient]?: ClientEntry; [kOver]?: boolean; [kLean]?: { pauseQueue(on: boolean): void } };

/**
 * Pipelined requests parsed ahead of the one being served, per client connection. Beyond this many
 * the connection stops being read (node:http parses a whole read chunk at once, so the queue can
 * briefly exceed it by one chunk's worth); reading resumes when the queue is back under it.
 */
const PIPELINE_MAX = 32;

/**
 * One client connection's requests are served one at a time, in order, as HAProxy does: node:http
 * emits 'request' for every pipelined request at once, which would turn 500 pipelined requests
 * into 500 concurrent backend requests. `items` holds [req, res] pairs (or [req, head] for an
 * Upgrade request) not yet started.
 */
class ConnQueue {
  busy = false;
  paused = false;
  /** Handed back to node:http after an Upgrade that did not switch: idle timer armed until the next request. */
  handedBack = false;
  readonly items: (IncomingMessage | ServerResponse | HeldBytes)[] = [];
  /** The request node:http parsed last on this connection (a parse error comes after it). */
  last: IncomingMessage | undefined;
}

/** Bytes read from and written to a client connection since the last call ([in, out]). */
function wireBytes(sock: ClientSocket): [number, number] {
  const read = sock.bytesRead;
  const written = sock.bytesWritten;
  const r: [number, number] = [read - (sock[kRead] ?? 0), written - (sock[kWritten] ?? 0)];
  sock[kRead] = read;
  sock[kWritten] = written;
  return r;
}

function ignoreError(): void {}


/** balance: uri hashes the path, query string excluded (HAProxy's default without `whole`). */
function uriHash(path: string): number {
  const q = path.indexOf('?');
  return hashString(path, 0, q < 0 ? path.length : q);
}

/** balance: header: hash of the first `name` header (lowercase name), -1 when absent. */
function headerHash(raw: string[], name: string): number {
  const n = name.length;
  for (let i = 0; i < raw.length; i += 2) {
    const k = raw[i];
    if (k.length === n && k.toLowerCase() === name) return hashString(raw[i + 1]);
  }
  return -1;
}
/** A request leaves `route` (done, retried elsewhere, refused by the engine): its slot is free again. */
function leave(route: Route): void {
  route.counters.cur--;
  const l = route.load;
  if (l !== undefined) l.release();
}
function onResClose(this: TaggedRes): void { this[kEx]!.clientClosed(); }
function onReqError(this: IncomingMessage & { [kEx]?: Exchange }): void { const ex = this[kEx]; if (ex) ex.clientBodyError = true; }

/**
 * send_proxy in mode http: the upstreams of one client connection, by server id. Their connections
 * start with a PROXY header carrying this client's address, so they are this connection's alone
 * (HAProxy makes a server connection that sent the header private to its session the same way):
 * reused for this client's next requests to that server, never by another client, and destroyed
 * when the client connection closes.
 */
const kPrivate = Symbol('pairlb.privateUpstreams');
interface PrivateUp { readonly up: Upstream; readonly engine: Engine; readonly host: string; readonly port: number; readonly v: 1 | 2 }
type PrivateSocket = Socket & { [kPrivate]?: Map<number, PrivateUp> };

function closePrivate(this: PrivateSocket): void {
  const m = this[kPrivate];
  if (m === undefined) return;
  this[kPrivate] = undefined;
  for (const p of m.values()) p.up.destroy();
}

function privateUpstream(sock: PrivateSocket, route: Route, engine: Engine, cfg: UpstreamConfig): Upstream {
  let m = sock[kPrivate];
  if (m === undefined) { m = sock[kPrivate] = new Map(); sock.once('close', closePrivate); }
  const v = route.sendProxy as 1 | 2;
  const cur = m.get(route.id);
  if (cur !== undefined && cur.engine === engine && cur.host === route.host && cur.port === route.port && cur.v === v) return cur.up;
  if (cur !== undefined) cur.up.destroy();
  const header = encodeProxyHeader(v, { address: clientIp(sock), port: clientPort(sock) ?? 0 }, localAddress(sock));
  const up = engine.createUpstream(route.host, route.port, cfg, header);
  m.set(route.id, { up, engine, host: route.host, port: route.port, v });
  return up;
}

/** One client request: routing, retries, response rewriting, accounting. */
class Exchange {
  readonly start = performance.now();
  tConnect = 0;
  tHeaders = 0;
  attempts = 0;
  tried: Route[] | null = null;
  route: Route | undefined;
  attempt: Attempt | undefined;
  status = 0;
  bytesOut = 0;
  termination = '--';
  abortUpstream: ((err?: Error) => void) | null = null;
  resumeFn: (() => void) | null = null;
  finished = false;
  clientBodyError = false;
  /** The client's sticky cookie named a usable server (no need to re-issue it). */
  stickyOk = false;
  /** The backend pool serving it (NO_POOL for an answer of the frontend's own: redirect, deny…). */
  p: Pool = NO_POOL;
  /** The rule that matched, or null (none, or a frontend without rules). */
  rule: CompiledRule | null = null;
  /** The request's balancing hash (-1: none), kept for a pick after waiting in a queue. */
  key = -1;
  /** Queue state (server maxconn): see src/proxy/queue.ts. tw: ms waited (HAProxy Tw). */
  queuedAt = 0;
  waitQ: WaitQueue<Exchange> | null = null;
  qTimer: NodeJS.Timeout | undefined = undefined;
  tw = 0;
  /** Waiters ahead of it when it was queued (HAProxy srv_queue / backend_queue). */
  srvQueue = 0;
  backendQueue = 0;
  /** Upgrade requests: the protocols asked for, and the client's bytes after the head (held until the 101). */
  upgrade: string | null = null;
  upgradeHeld: HeldBytes | null = null;
  /** The client drained (made on the first backpressure only: most responses never need it). */
  resumeUpstream: (() => void) | undefined = undefined;
  /** The client connection (kept: req.socket is nulled when the response finishes; HTTP/2: the session's). */
  readonly socket: Socket;

  constructor(
    readonly l: Listener,
    readonly req: IncomingMessage,
    readonly res: ServerResponse,
    socket: Socket,
    readonly method: string,
    readonly headers: string[],
    readonly hasBody: boolean,
    readonly path: string,
    /** A stream of an HTTP/2 connection (src/h2/): its refusals never close the connection. */
    readonly h2: boolean,
  ) { this.socket = socket; }

  send(route: Route): void {
    // A server limited over every worker: another worker may have taken its last slot since the
    // pick (src/proxy/shared-inflight.ts). Then wait for one, as if the pick had found it full.
    const sl = route.load;
    if (sl !== undefined && !sl.acquire()) { this.full(route); return; }
    this.route = route;
    this.attempts++;
    route.counters.begin(Date.now());
    const a = new Attempt(this, route);
    this.attempt = a;
    const engine = this.p.s.engine;
    engine.send(route.sendProxy === 0 ? route.upstream : privateUpstream(this.socket, route, engine, this.p.s.cfg), { method: this.method, path: this.path, headers: this.headers, body: this.hasBody ? this.req : null, upgrade: this.upgrade, close: this.l.s.serverClose, req: this.req, res: this.res }, a);
  }

  /** `route` was full at send (shared maxconn): its own queue when sticky to it, else the backend queue. */
  private full(route: Route): void {
    const qs = this.p.queues;
    // Not sent: nothing to give back when it ends (a retry left its previous server already).
    this.route = undefined;
    if (qs.wait(this, this.stickyOk ? route.queue : qs.backend)) return;
    this.termination = 'sQ';
    this.respondError(503, false, qs.retryAfter);
  }

  /** The backend answered 101 to an Upgrade request: tunnel if it switched to what was asked for. */
  upstreamUpgrade(a: Attempt, raw: (Buffer | string)[], up: Socket): void {
    // The engine already let go of this connection: nothing to abort any more but the socket.
    this.abortUpstream = null;
    if (this.finished) { up.destroy(); return; }
    a.route.counters.connectFailStreak = 0;
    if (!switchedTo(this.upgrade!, raw)) { up.destroy(); this.badUpgrade(a, raw); return; }
    this.tHeaders = performance.now();
    this.status = 101;
    openTunnel(this, up, raw);
  }

  /** A 101 that is not a switch to a protocol the client asked for (RFC 9110 §7.8): 502, PH. */
  badUpgrade(a: Attempt, raw: (Buffer | string)[]): void {
    this.abortUpstream?.();
    a.route.counters.errResp++;
    this.termination = 'PH';
    const got: string[] = [];
    for (let i = 0; i < raw.length; i += 2) if (String(raw[i]).toLowerCase() === 'upgrade') got.push(String(raw[i + 1]));
    this.l.log.warn({ mod: 'proxy', listen: this.l.s.name, pool: this.p.s.name, backend: a.route.name, asked: this.upgrade, got: got.join(', ') }, 'backend answered 101 without switching to the protocol asked for: 502');
    this.respondError(502);
  }

  upstreamHeaders(a: Attempt, status: number, raw: (Buffer | string)[], resume: () => void, statusText: string): boolean {
    if (status < 200) { this.informational(status, raw); return true; }
    const s = this.p.s;
    const route = a.route;
    this.tHeaders = performance.now();
    this.status = status;
    this.resumeFn = resume;
    const rc = route.counters;
    rc.connectFailStreak = 0;
    if (status >= 500) {
      if (s.passive5xx > 0 && ++rc.fiveXxStreak >= s.passive5xx) this.p.passiveDown(route, `passive: ${rc.fiveXxStreak} consecutive 5xx responses`);
    } else rc.fiveXxStreak = 0;

    const out: string[] = [];
    let connTokens: string[] | null = null;
    let hadCacheControl = -1;
    for (let i = 0; i < raw.length; i += 2) {
      const k = typeof raw[i] === 'string' ? raw[i] as string : (raw[i] as Buffer).toString('latin1');
      if (k.length >= RES_LENS.length || RES_LENS[k.length] === 0) {
        out.push(k, typeof raw[i + 1] === 'string' ? raw[i + 1] as string : (raw[i + 1] as Buffer).toString('latin1'));
        continue;
      }
      const lk = k.toLowerCase();
      if (HOP.has(lk)) {
        if (lk === 'connection') {
          const v = raw[i + 1].toString().toLowerCase();
          if (v !== 'keep-alive' && v !== 'close') connTokens = v.split(',').map((t) => t.trim());
        }
        continue;
      }
      let v = typeof raw[i + 1] === 'string' ? raw[i + 1] as string : (raw[i + 1] as Buffer).toString('latin1');
      if (s.cookieMode === 2 && lk === 'set-cookie') v = prefixSetCookie(v, s.cookieName, route.cookieId);
      if (lk === 'cache-control') hadCacheControl = out.length;
      out.push(k, v);
    }
    if (connTokens) for (let i = out.length - 2; i >= 0; i -= 2) if (connTokens.includes(out[i].toLowerCase())) out.splice(i, 2);
    // A 204 has no body and MUST NOT carry Content-Length (RFC 9110 §8.6): a client that believed
    // one would read the next response on this connection as this one's body.
    if (status === 204) for (let i = out.length - 2; i >= 0; i -= 2) if (out[i].length === 14 && out[i].toLowerCase() === 'content-length') out.splice(i, 2);
    if (s.cookieMode === 1 && !this.stickyOk) {
      out.push('set-cookie', route.setCookie!);
      if (s.cookieNocache) {
        if (hadCacheControl < 0) out.push('cache-control', 'private');
        else if (!/\b(private|no-store)\b/i.test(out[hadCacheControl + 1])) out[hadCacheControl + 1] = 'private';
      }
    }
    const rule = this.rule;
    if (rule !== null) editResponse(rule, out, this.socket);
    try {
      this.res.writeHead(status, statusText || undefined, out);
    } catch {
      // Invalid header from the backend (e.g. bad characters): never forward it ambiguously.
      this.termination = 'PH';
      a.done = true;
      this.abortUpstream?.();
      this.respondError(502);
      return false;
    }
    return true;
  }

  /**
   * A 1xx from the backend before its final response: 103 Early Hints is forwarded with its
   * headers, 102 Processing as is; 100 (we never forward Expect, so it is unsolicited) and the
   * others are dropped. HTTP/1.0 clients get none (RFC 9110 §15.2).
   */
  informational(status: number, raw: (Buffer | string)[]): void {
    const res = this.res;
    if (res.headersSent || (!this.h2 && this.req.httpVersionMinor === 0)) return;
    if (status === 102) { res.writeProcessing(); return; }
    if (status !== 103) return;
    const hints: Record<string, string | string[]> = {};
    for (let i = 0; i < raw.length; i += 2) {
      const k = latin1(raw[i]).toLowerCase();
      if (HOP.has(k)) continue;
      const v = latin1(raw[i + 1]);
      const prev = hints[k];
      hints[k] = prev === undefined ? v : Array.isArray(prev) ? [...prev, v] : [prev, v];
    }
    // node:http writes nothing without a Link, and throws on a Link it cannot parse: drop it then.
    try { res.writeEarlyHints(hints); } catch { /* dropped */ }
  }

  upstreamError(a: Attempt, err: Error): void {
    const s = this.p.s;
    const fe = this.l.s.name;
    const route = a.route;
    const code = (err as { code?: string }).code ?? '';
    const res = this.res;
    this.abortUpstream = null;
    if (this.finished) return;
    if (this.clientBodyError || (this.req.destroyed && !this.req.complete)) {
      // The client sent a broken body (bad chunk size) or went away: its fault, never retried.
      route.counters.errResp++;
      this.termination = 'CD';
      if (!res.headersSent && !res.destroyed) this.respondError(400);
      else res.destroy();
      return;
    }
    if (res.headersSent && (this.status === 304 || this.status === 204) && code === 'UND_ERR_RES_CONTENT_LENGTH_MISMATCH') {
      // undici holds a 204/304's Content-Length against a body these never have (a 304 may carry
      // the selected representation's length, RFC 9110 §8.6) and drops its connection: the
      // response is complete, not broken.
      res.end();
      return;
    }
    if (res.headersSent) {
      // Mid-body: nothing to retry; cut the client connection so it sees an incomplete response.
      route.counters.errResp++;
      this.termination = TIMEOUT_CODES.has(code) ? 'sD' : 'SD';
      res.destroy();
      return;
    }
    const neverSent = !a.connected;
    if (neverSent && LOCAL_CODES.has(code)) {
      // The engine refused the request itself before connecting: the client's mistake. It never
      // reached the backend, so it is taken off the backend's counters.
      leave(route);
      route.counters.total--;
      this.route = undefined;
      if (this.p.queues.queued > 0) this.p.queues.slotFreed(route.id);
      this.l.counters.errReq++;
      this.termination = 'PR';
      this.l.log.info({ mod: 'proxy', listen: fe, code, err: err.message }, 'bad request refused');
      this.respondError(400, true);
      return;
    }
    if (!neverSent && (code === 'PAIRLB_BAD_RESPONSE' || (code === 'UND_ERR_SOCKET' && (err.message === 'bad upgrade' || err.message === 'bad response')))) {
      // An answer no request of ours asked for (101 without Upgrade; undici also refuses an
      // unsolicited 100 this way): broken, not retried.
      route.counters.errResp++;
      this.termination = 'PH';
      this.l.log.warn({ mod: 'proxy', listen: fe, pool: s.name, backend: route.name, code, err: err.message }, 'request failed: 502');
      this.respondError(502);
      return;
    }
    let retry: boolean;
    let status: number;
    if (neverSent) {
      route.counters.errConn++;
      const rc = route.counters;
      // Our own open-file limit (EMFILE/ENFILE on socket()) says nothing about the backend.
      if (s.passiveConnect > 0 && !FD_CODES.has(code) && ++rc.connectFailStreak >= s.passiveConnect) this.p.passiveDown(route, `passive: ${rc.connectFailStreak} consecutive connect errors (${code || err.message})`);
      retry = !this.hasBody || s.engine.retriesBody;
      status = 502;
      this.termination = 'SC';
    } else {
      route.counters.errResp++;
      const timeout = TIMEOUT_CODES.has(code);
      const safe = !this.hasBody && IDEMPOTENT.has(this.method);
      retry = safe && (timeout ? s.retryTimeout : (s.retryEmpty || s.retryReset));
      status = timeout ? 504 : 502;
      this.termination = timeout ? 'sH' : 'SH';
    }
    if (retry && this.attempts <= s.retries) {
      (this.tried ??= []).push(route);
      const routing = this.p.routing;
      let next = s.redispatch ? routing.pick(this.key, this.tried) : route;
      if (next === undefined && route.maxconn > 0) {
        // Every other server is full (maxconn): wait for one that this request has not failed on
        // yet (the backend queue, as HAProxy's redispatch does), or, with none, retry this one.
        const tried = this.tried;
        if (routing.active.items.some((r) => !tried.includes(r))) {
          route.counters.retries++;
          leave(route);
          this.route = undefined;
          const qs = this.p.queues;
          const queued = qs.wait(this, qs.backend);
          qs.slotFreed(route.id);
          if (queued) return;
          this.termination = 'sQ';
          this.respondError(503, false, qs.retryAfter);
          return;
        }
        next = route;
      }
      if (next) {
        route.counters.retries++;
        leave(route);
        if (next !== route && this.p.queues.queued > 0) this.p.queues.slotFreed(route.id);
        if (next !== route) {
          route.counters.redispatches++;
          // The client is now served by another server: it must get that server's cookie.
          this.stickyOk = false;
        }
        this.send(next);
        return;
      }
    }
    this.l.log.warn({ mod: 'proxy', listen: fe, pool: s.name, backend: route.name, code, err: err.message, attempts: this.attempts }, `request failed: ${status}`);
    this.respondError(status);
  }

  /** BodyWatch: the client stopped sending its body. Its error, never the backend's (HAProxy cR/cD). */
  bodyTimedOut(): void {
    if (this.finished) return;
    this.l.counters.errReq++;
    const res = this.res;
    this.termination = res.headersSent ? 'cD' : 'cR';
    const a = this.attempt;
    if (a !== undefined && !a.done) { a.done = true; this.abortUpstream?.(); }
    if (res.headersSent || res.destroyed) { res.destroy(); return; }
    // The rest of the body will not be read: the connection cannot carry another request.
    res.shouldKeepAlive = false;
    this.respondError(408);
  }

  /** `retryAfter`: a Retry-After value in seconds (503 of a queue timeout with the pool's `retry_after`). */
  respondError(status: number, close = false, retryAfter?: string): void {
    const p = ERROR_PAGES.get(status)!;
    this.status = status;
    const res = this.res;
    if (res.headersSent || res.destroyed) { res.destroy(); return; }
    // A refusal closes the connection; requests pipelined behind it are not served (handle).
    if (close && !this.h2) {
      res.shouldKeepAlive = false;
      (this.socket as ClientSocket)[kRefused] = true;
    }
    let h = close && !this.h2 ? [...p.headers, 'connection', 'close'] : p.headers;
    if (retryAfter !== undefined) h = [...h, 'retry-after', retryAfter];
    res.writeHead(status, STATUS_TEXT[status], h);
    res.end(p.body);
  }

  /**
   * An answer of the frontend's own (a rule's redirect, deny or return): the request is not read
   * further, so a request with a body closes its connection (what follows the head is unread).
   */
  respondLocal(status: number, headers: string[], body: Buffer | undefined): void {
    this.status = status;
    const res = this.res;
    // (HTTP/2: the stream ends, its unread DATA is refused by RST_STREAM; the connection goes on.)
    if (this.hasBody && !this.h2) { res.shouldKeepAlive = false; (this.socket as ClientSocket)[kRefused] = true; headers.push('connection', 'close'); }
    const rule = this.rule;
    if (rule !== null) editResponse(rule, headers, this.socket);
    res.writeHead(status, STATUS_TEXT[status], headers);
    res.end(body);
  }

  /** res 'close': finished normally or the client went away. */
  clientClosed(): void {
    if (this.finished) return;
    this.finished = true;
    const res = this.res;
    const a = this.attempt;
    if (this.waitQ !== null) { this.p.queues.unqueue(this); this.termination = 'CQ'; }
    if (!res.writableFinished) {
      if (this.termination === '--') this.termination = this.status ? 'CD' : 'CH';
      if (a && !a.done) { a.done = true; this.abortUpstream?.(); }
    }
    this.l.finish(this);
  }
}

/**
 * One listen section: its HTTP server, routing snapshot, upstream pools, counters.
 */
export class Listener {
  s: ListenSettings;
  /** Requests no rule sends elsewhere (a listen section: its own pool). Undefined: 404. */
  defaultPool: Pool | undefined;
  /** Compiled rules, or null when the frontend has none (the hot path then skips matching). */
  rules: CompiledRule[] | null = null;
  readonly counters: Counters;
  /** Per-client limits of this frontend (kept across reloads; cleared on HA role changes). */
  readonly clients: ClientTable;
  server: Server | undefined;
  readonly access: AccessLog;
  readonly log: ProxyManager['host']['log'];
  private bound: { host: string; port: number } | undefined;
  /** clientError → refuseHead: the bytes the parser refused (for the access log's request line). */
  private rawPacket: Buffer | undefined;
  private readonly sockets = new Set<Socket>();
  private readonly bodies = new BodyWatch(this);
  /** TLS termination of this bind (cfg.tls), its certificates and handshake counters. */
  tls: TlsTerminator | undefined;
  /**
   * The server that holds the bind: the HTTP server itself, or for TLS a net.Server that peeks
   * each ClientHello (src/tls/terminator.ts) and hands the socket to the https server.
   */
  private acceptor: NetServer | undefined;
  /** More sockets on the acceptor's address (global.accept_sockets - 1), handing it their connections. */
  private extraAcceptors: NetServer[] = [];
  private detachTickets: (() => void) | undefined;
  /** accept_proxy: reads the PROXY header before node:http sees the connection. */
  acceptProxy: AcceptProxy | undefined;
  /** HTTP/2 to clients (src/h2/server.ts): ALPN h2 on a TLS bind (`h2`), prior knowledge on a plain one (`h2c`). */
  h2: H2Front | undefined;
  /** global.http1_front lean: the HTTP/1.1 connections of this bind (src/proxy/front/h1.ts); undefined: node:http's. */
  h1: H1Front | undefined;
  /** node:http's own connection handler for this bind (plain: 'connection', TLS: 'secureConnection'): the lean front hands Upgrade/CONNECT connections to it. */
  private nodeConn: ((s: Socket) => void) | undefined;

  constructor(readonly pm: ProxyManager, cfg: FrontendConfig) {
    this.s = new ListenSettings(cfg);
    this.counters = pm.host.counters.listen(cfg.name);
    this.clients = new ClientTable(this.s.limits);
    this.log = pm.host.log;
    this.access = pm.access;
    this.setAcceptProxy(cfg);
    this.compile();
  }

  /** Resolve pools and compile rules (config load; the manager creates pools before frontends). */
  private compile(): void {
    const pools = this.pm.pools;
    const cfg = this.s.cfg;
    this.defaultPool = cfg.default_backend !== undefined ? pools.get(cfg.default_backend) : undefined;
    this.rules = cfg.rules.length ? compileRules(cfg.rules, this.defaultPool, pools) : null;
  }

  private setAcceptProxy(cfg: FrontendConfig): void {
    const ap = cfg.accept_proxy;
    if (!ap) { this.acceptProxy = undefined; return; }
    const settings = acceptProxySettings(ap);
    if (this.acceptProxy) this.acceptProxy.settings = settings;
    else this.acceptProxy = new AcceptProxy(settings, this.counters, this.log, cfg.name);
  }

  /**
   * node:http's own 'connection' listener (it attaches the parser) and ours run only once the
   * PROXY header, if required, has been read; the bytes after it are put back for the parser.
   * With `h2c` the first bytes are read too: the HTTP/2 preface goes to the h2 server, anything
   * else to node:http (src/h2/server.ts sniffPreface); without it nothing more is read.
   */
  private gateConnections(server: Server, admit: (s: ClientSocket) => boolean): void {
    const handlers = server.listeners('connection') as ((s: Socket) => void)[];
    server.removeAllListeners('connection');
    // handlers[0] is node:http's own (made with the server); the others are ours (admit).
    const [nodeHandler, ...ours] = handlers;
    this.nodeConn = (sock: Socket): void => { nodeHandler.call(server, sock); };
    const h1 = (sock: Socket): void => {
      const lean = this.h1;
      if (lean !== undefined) { for (const h of ours) h.call(server, sock); lean.accept(sock); return; }
      for (const h of handlers) h.call(server, sock);
      sock.resume();
    };
    const h2 = (sock: Socket): void => { const f = this.h2; if (f !== undefined) f.accept(sock); else h1(sock); };
    const sniff = (sock: Socket): void => {
      // admit() first, so a refused client is closed before anything is read (it is a no-op in h1's handlers then).
      if (admit(sock)) sniffPreface(sock, this.s.cfg.timeouts.http_request, h2, h1);
    };
    const pass = (sock: Socket, rest: Buffer): void => {
      if (rest.length > 0) sock.unshift(rest);
      if (this.h2 !== undefined) { sniff(sock); return; }
      h1(sock);
    };
    server.on('connection', (sock: Socket) => {
      // A socket handed back after a refused Upgrade comes through here again: never re-read.
      const ap = this.acceptProxy;
      if (this.sockets.has(sock)) { for (const h of handlers) h.call(server, sock); return; }
      if (ap !== undefined) { ap.read(sock, pass); return; }
      if (this.h2 !== undefined) { sniff(sock); return; }
      if (this.h1 !== undefined) { h1(sock); return; }
      for (const h of handlers) h.call(server, sock);
    });
  }

  /**
   * HTTP/2 on or off for this bind (start and reload): the h2 server is made on first use; on a
   * TLS bind the ALPN list offered changes for new handshakes. Sessions open when it is turned
   * off get GOAWAY and finish their streams.
   */
  private setH2(cfg: FrontendConfig): void {
    const on = cfg.tls ? cfg.h2 : cfg.h2c;
    if (on) { if (this.h2 === undefined) this.h2 = new H2Front(this, cfg); else this.h2.update(cfg); }
    if (!on && this.h2 !== undefined) { this.h2.close(); this.h2 = undefined; }
    if (cfg.tls && this.server) setAlpn(this.server as unknown as HttpsServer, alpnList(cfg));
  }

  /**
   * TLS binds: after the handshake, a connection whose ALPN chose h2 goes to the h2 server; every
   * other one to node:http's own listener, as before (one string compare per connection).
   */
  private dispatchAlpn(server: Server): void {
    const [h1] = server.listeners('secureConnection') as ((s: Socket) => void)[];
    server.removeListener('secureConnection', h1);
    this.nodeConn = (s: Socket): void => { h1.call(server, s); };
    server.prependListener('secureConnection', (s: Socket) => {
      const f = this.h2;
      if (f !== undefined && (s as Socket & { alpnProtocol?: string | false }).alpnProtocol === 'h2') f.accept(s);
      else if (this.h1 !== undefined) this.h1.accept(s);
      else h1.call(server, s);
    });
  }

  /** The lean front hands a connection to node:http (an Upgrade or CONNECT request, src/proxy/front/h1.ts). */
  nodeAccept(sock: Socket): void {
    const f = this.nodeConn;
    if (f === undefined) { sock.destroy(); return; }
    f(sock);
  }

  /** Close the connections with nothing in flight (HA after handover, stop). */
  closeIdleConnections(): void {
    this.server?.closeIdleConnections();
    this.h1?.closeIdle();
  }

  address(): { host: string; port: number } | undefined { return this.bound; }
  isServing(): boolean { return this.server !== undefined && !!this.acceptor?.listening; }

  async start(): Promise<void> {
    const cfg = this.s.cfg;
    const hp = parseHostPort(cfg.bind)!;
    const opts: ServerOptions = {
      maxHeaderSize: cfg.max_header_size,
      keepAliveTimeout: cfg.timeouts.client,
      headersTimeout: cfg.timeouts.http_request,
      // The http-request timeout covers the request head only: bodies may take long (1 GiB uploads).
      requestTimeout: 0,
      connectionsCheckingInterval: Math.min(1000, Math.max(100, cfg.timeouts.http_request >> 2)),
      joinDuplicateHeaders: false,
      noDelay: true,
      // HTTP/1.1 without Host is refused in handle(), through reject(): node's own 400 would let the
      // requests pipelined behind it be served after its `Connection: close` (RFC 9112 §9.6).
      requireHostHeader: false,
    };
    if (cfg.tls) this.tls = new TlsTerminator(cfg.name, cfg.tls, this.log);
    if (this.pm.cfg.global.http1_front === 'lean') this.h1 = new H1Front(this, h1Settings(cfg));
    const server: Server = this.tls ? createHttpsServer({ ...opts, ...this.tls.serverOptions(), ALPNProtocols: alpnList(cfg) }) as unknown as Server : createServer(opts);
    if (this.tls) this.dispatchAlpn(server);
    // One more header line than allowed is kept, so that an excess is seen (431), not dropped.
    server.maxHeadersCount = cfg.max_headers + 1;
    server.on('request', (req, res) => this.onRequest(req, res));
    server.on('clientError', (err, socket) => this.clientError(err as Error & { code?: string; rawPacket?: Buffer }, socket as Socket));
    server.on('upgrade', (req, _socket, head) => this.onUpgrade(req, head));
    // node:http hands CONNECT over as a raw socket and, without this, closes it unanswered and
    // uncounted. pairlb is not a forward proxy: 501, as for any refused request head.
    server.on('connect', (req, socket) => { this.rawPacket = Buffer.from(`${req.method} ${req.url} HTTP/${req.httpVersion}`, 'latin1'); this.refuseHead(socket as Socket, 501, 'CONNECT'); });
    const guard = this.pm.guard;
    const admit = (sock: ClientSocket): boolean => {
      // A socket handed back to the server after a refused Upgrade comes through here again, and
      // on a TLS bind every socket comes from the acceptor, which admitted it.
      if (this.sockets.has(sock)) return false;
      const s = this.s;
      // The client is the PROXY header's with accept_proxy (read before admit on both kinds of bind).
      if (s.filter.active && !s.filter.admits(clientIp(sock))) { this.counters.deniedConn++; sock.destroy(); return false; }
      const fmax = s.maxconn;
      // With workers the frontend's maxconn holds over all of them (a slot of the shared table).
      const shared = this.pm.host.shared;
      const fslot = fmax !== 0 && shared !== undefined ? this.pm.host.frontendSlot(s.name) : -1;
      if (fmax !== 0 && (fslot >= 0 ? !shared!.acquire(fslot, fmax) : this.sockets.size >= fmax)) { this.counters.refusedConn++; sock.destroy(); return false; }
      if (!guard.admit(this.s.name, this.counters)) { if (fslot >= 0) shared!.release(fslot, false); sock.destroy(); return false; }
      this.sockets.add(sock);
      sock[kReady] = Date.now();
      if (s.limited) {
        const e = this.clients.connect(clientIp(sock), Date.now());
        if (e === null) sock[kOver] = true; else sock[kClient] = e;
      }
      sock.once('close', () => {
        this.sockets.delete(sock);
        guard.release();
        if (fslot >= 0) shared!.release(fslot, false);
        const e = sock[kClient];
        if (e !== undefined) this.clients.disconnect(e, Date.now());
        // Requests parsed but never started die with their connection (nothing was counted yet).
        const q = sock[kConn];
        if (q !== undefined) q.items.length = 0;
      });
      return true;
    };
    server.on('connection', admit);
    const tls = this.tls;
    // Plain binds read a PROXY header before node:http's parser; TLS binds in the acceptor below.
    if (!tls) this.gateConnections(server, admit);
    const acceptor: NetServer = tls ? createNetServer({ noDelay: true, pauseOnConnect: false }, (sock) => {
      // accept_proxy: the PROXY header comes before the ClientHello, and admit() judges its client.
      const ap = this.acceptProxy;
      if (ap === undefined) { if (admit(sock)) tls.accept(sock, (s) => server.emit('connection', s)); return; }
      ap.read(sock, (raw, rest) => {
        if (!admit(raw as ClientSocket)) return;
        if (rest.length > 0) raw.unshift(rest);
        raw.resume();
        tls.accept(raw, (s) => server.emit('connection', s));
      });
    }) : server;
    // libuv accepts one connection per listening socket per loop turn (src/proxy/turn-budget.ts):
    // global.accept_sockets sockets on the same address (SO_REUSEPORT, the kernel spreads new
    // connections over them) accept that many per turn, so a busy turn does not hold new
    // connections in the accept queue for several turns (HAProxy's tune.maxaccept in spirit).
    const extra = Math.max(0, this.pm.cfg.global.accept_sockets - 1);
    const reusePort = this.pm.host.reusePort || extra > 0;
    const listen = (srv: NetServer, port: number): Promise<void> => new Promise<void>((ok, fail) => {
      srv.once('error', fail);
      srv.listen({ port, host: hp.host, reusePort }, () => { srv.off('error', fail); ok(); });
    });
    // Data-plane workers all bind the same address (SO_REUSEPORT: the kernel spreads accepts);
    // after the first, a port-0 bind uses the port the first one got.
    await listen(acceptor, (this.pm.host.reusePort && hp.port === 0 ? this.pm.host.port(cfg.name, cfg.bind) : undefined) ?? hp.port);
    // Bound: an 'error' now is an accept failure (EMFILE when libuv's reserve fd is gone too).
    acceptor.on('error', (e: NodeJS.ErrnoException) => guard.acceptError(this.s.name, this.counters, e));
    const boundPort = (acceptor.address() as { port: number }).port;
    const extras: NetServer[] = [];
    try {
      for (let i = 0; i < extra; i++) {
        const x = createNetServer({ noDelay: true, pauseOnConnect: false }, (sock) => acceptor.emit('connection', sock));
        await listen(x, boundPort);
        x.on('error', (e: NodeJS.ErrnoException) => guard.acceptError(this.s.name, this.counters, e));
        extras.push(x);
      }
    } catch (e) {
      for (const x of extras) x.close();
      acceptor.close();
      throw e;
    }
    this.extraAcceptors = extras;
    this.acceptor = acceptor;
    // node:http starts its connection tracking (headers timeout, closeIdleConnections) on its own
    // 'listening'; the https server of a TLS bind never listens itself.
    if (acceptor !== server) server.emit('listening');
    const a = acceptor.address();
    this.bound = typeof a === 'object' && a ? { host: a.address, port: a.port } : hp;
    this.s = new ListenSettings(cfg, this.bound.port);
    this.server = server;
    this.setH2(cfg);
    if (this.tls) {
      this.tls.attach(server as unknown as HttpsServer);
      // Session-ticket keys of the process (shared by the HA pair): src/tls/ticket-keys.ts.
      this.detachTickets = this.pm.host.tickets.attach(server as unknown as HttpsServer);
      this.pm.host.tlsServer(server, cfg.name);
    }
  }

  /** New settings for the same bind address (reload): connections are kept, rules recompiled. */
  update(cfg: FrontendConfig): void {
    // Same bind, TLS on both sides (the manager starts a new server when TLS is turned on or off):
    // the certificates are read again, a refused set leaves the running one serving.
    if (cfg.tls && this.tls) this.tls.reload(cfg.tls, 'config reload');
    this.s = new ListenSettings(cfg, this.bound?.port);
    this.clients.policy = this.s.limits;
    this.setAcceptProxy(cfg);
    this.setH2(cfg);
    if (this.server) {
      this.server.keepAliveTimeout = cfg.timeouts.client;
      this.server.headersTimeout = cfg.timeouts.http_request;
      // Read by node:http for each new connection's parser; connections already open keep theirs.
      (this.server as Server & { maxHeaderSize?: number }).maxHeaderSize = cfg.max_header_size;
      this.server.maxHeadersCount = cfg.max_headers + 1;
    }
    this.h1?.update(h1Settings(cfg));
    this.compile();
  }

  // ---- hot path -----------------------------------------------------------------------------

  onRequest(req: IncomingMessage, res: ServerResponse): void {
    const sock = req.socket as ClientSocket;
    let q = sock[kConn];
    const first = q === undefined;
    if (q === undefined) q = sock[kConn] = new ConnQueue();
    if (q.handedBack) { q.handedBack = false; sock.setTimeout(0); }
    q.last = req;
    if (q.busy) { this.enqueue(sock, q, req, res); return; }
    q.busy = true;
    // A long turn parks requests of open keep-alive connections (src/proxy/turn-budget.ts).
    if (!this.pm.turn.admit(first, this, res)) { this.counters.parked++; return; }
    this.handle(req, res);
  }

  /** A request parked by the turn budget, served in a later pass (its connection may be gone). */
  resumeParked(res: ServerResponse): void {
    const req = res.req;
    // Closed while parked: nothing was counted yet, as for an unstarted pipelined request.
    if (req.socket.destroyed) return;
    this.handle(req, res);
  }

  /**
   * node:http's 'upgrade' event: the socket is already detached from its parser. Served in turn
   * like any request of the connection (src/proxy/upgrade.ts).
   */
  private onUpgrade(req: IncomingMessage, head: Buffer): void {
    const sock = req.socket as ClientSocket;
    // node:http removed its error handler with its parser: a reset must not crash the process.
    if (!sock.listeners('error').includes(ignoreError)) sock.on('error', ignoreError);
    let q = sock[kConn];
    if (q === undefined) q = sock[kConn] = new ConnQueue();
    const held = new HeldBytes(sock, head);
    if (q.busy) { this.enqueue(sock, q, req, held); return; }
    q.busy = true;
    startUpgrade(this, req, held);
  }

  /**
   * The socket goes back to node:http (src/proxy/upgrade.ts handBack): its idle timeout is ours
   * until the next request starts (node:http arms its keep-alive timer only after a response).
   */
  handedBack(sock: ClientSocket): void {
    sock.removeListener('error', ignoreError);
    let q = sock[kConn];
    if (q === undefined) q = sock[kConn] = new ConnQueue();
    q.handedBack = true;
    sock.setTimeout(this.s.cfg.timeouts.client);
  }

  /** A pipelined request (or Upgrade) arrived while another one of its connection is in flight. */
  enqueue(sock: ClientSocket, q: ConnQueue, req: IncomingMessage, x: ServerResponse | HeldBytes): void {
    q.items.push(req, x);
    if (q.items.length >= 2 * PIPELINE_MAX) {
      q.paused = true;
      const lean = sock[kLean];
      if (lean !== undefined) { lean.pauseQueue(true); return; }
      // node:http's own flag for "stop reading" (set when its pending responses pile up): without
      // it, it resumes the socket after every parsed request (readStart in parserOnMessageComplete).
      (sock as PausableSocket)._paused = true;
      sock.pause();
    }
  }

  /** The connection's current request is over: start the next pipelined one, if any. */
  next(sock: ClientSocket): void {
    const q = sock[kConn];
    if (q === undefined) return;
    q.busy = false;
    if (q.items.length === 0) {
      const last = sock[kLastWord];
      if (last !== undefined && sock.writable) { sock.end(rawErrorResponse(last)); setTimeout(() => sock.destroy(), 1000).unref(); }
      return;
    }
    const req = q.items.shift() as IncomingMessage;
    const x = q.items.shift()!;
    if (q.paused && q.items.length < 2 * PIPELINE_MAX) {
      q.paused = false;
      const lean = sock[kLean];
      if (lean !== undefined) lean.pauseQueue(false);
      // As node:http's socketOnDrain undoes its own pause.
      const ps = sock as PausableSocket;
      ps._paused = false;
      ps.parser?.resume();
      sock.resume();
    }
    q.busy = true;
    if (x instanceof HeldBytes) startUpgrade(this, req, x);
    else if (this.pm.turn.admit(false, this, x as ServerResponse)) this.handle(req, x as ServerResponse);
    else this.counters.parked++;
  }

  /** One request (upgrade: its Upgrade header and the bytes after its head, for startUpgrade). */
  handle(req: IncomingMessage, res: ServerResponse, upgrade: string | null = null, upgradeHeld: HeldBytes | null = null): void {
    const sock = req.socket as ClientSocket;
    if (sock[kRefused] === true) return;
    const s = this.s;
    const lc = this.counters;
    const now = Date.now();
    lc.begin(now);
    if (s.limited) {
      const ra = this.overLimit(sock, now);
      if (ra !== undefined) { lc.limited++; this.reject(req, res, 429, ra, sock); return; }
    }
    const url = req.url!;
    if (url.length > s.maxRequestLine) { lc.errReq++; this.reject(req, res, 414, undefined, sock); return; }
    // llhttp reads a request line without a version (`GET /`) as HTTP/0.9, and a fragment as part
    // of the target; RFC 9112 §2.3, §3.2 allow neither (HAProxy refuses both).
    if (req.httpVersionMajor !== 1) { lc.errReq++; this.reject(req, res, 505, undefined, sock); return; }
    if (url.includes('#')) { lc.errReq++; this.reject(req, res, 400, undefined, sock); return; }
    let path = url;
    let authority: string | undefined;
    if (url.charCodeAt(0) !== 47 /* / */) {
      // asterisk-form or absolute-form (forwarded as origin-form, its authority as Host).
      const t = nonOriginTarget(url, req.method!);
      if (t === undefined) { lc.errReq++; this.reject(req, res, 400, undefined, sock); return; }
      path = t.path;
      authority = t.authority;
    }
    this.route(req, res, sock, req.method!, req.rawHeaders, path, authority, false, false, upgrade, upgradeHeld);
  }

  /**
   * The per-client limits of the connection (its entry was made at accept): undefined when the
   * request may go on, else the Retry-After seconds of its 429. On a TLS bind the request's
   * socket is the TLSSocket over the raw one admitted.
   */
  overLimit(sock: ClientSocket, now: number): string | undefined {
    let c = sock as ClientSocket & { _parent?: ClientSocket };
    if (c[kClient] === undefined && c[kOver] === undefined && c._parent !== undefined) c = c._parent;
    const e = c[kClient];
    if (c[kOver] !== true && !(this.s.limitRate && e !== undefined && !this.clients.request(e, now))) return undefined;
    return String(this.clients.retryAfter(c[kOver] === true ? undefined : e, now));
  }

  /**
   * The request pipeline after the protocol's own checks, shared by HTTP/1.1 (handle) and HTTP/2
   * streams (src/h2/server.ts): ACME, rules, header rewriting, stickiness, balancing, queueing.
   * `sock`: the client connection (for HTTP/2 the session's socket, never the stream's proxy),
   * `raw`: regular header fields only, `authority`: replaces Host (absolute-form, :authority).
   * `h2`: the request is a stream of a multiplexed connection: refusals end the stream only;
   * `h2Body`: its HEADERS did not end the stream (RFC 9113 §8.1: DATA frames follow, with or
   * without content-length; the HTTP/1.1 request then goes out with that length, or chunked).
   * The caller has counted the request begun (lc.begin).
   */
  route(req: IncomingMessage, res: ServerResponse, sock: ClientSocket, method: string, raw: string[], path: string, authority: string | undefined, h2: boolean, h2Body: boolean, upgrade: string | null = null, upgradeHeld: HeldBytes | null = null): void {
    const s = this.s;
    const lc = this.counters;
    // ACME HTTP-01 (src/acme/http01.ts): answered before routing when the token is ours; the map is
    // empty without `acme:`, and lookup() returns at once then.
    const http01 = this.pm.host.http01;
    if (http01.size !== 0 && (method === 'GET' || method === 'HEAD')) {
      const ka = http01.lookup(path);
      if (ka !== undefined) {
        answerHttp01(req, res, ka);
        lc.cur--;
        if (this.access.enabled) { const [bin, bout] = wireBytes(sock); this.access.reject(this, req, 200, bin, bout); }
        return;
      }
    }
    const ip = clientIp(sock);
    const tls = isTls(sock);
    let pool = this.defaultPool;
    let rule: CompiledRule | undefined;
    const rules = this.rules;
    if (rules !== null) {
      const sni = tls ? matchSni((sock as Socket & { servername?: string | false }).servername) : '';
      rule = matchRule(rules, { method, path: pathOnly(path), host: matchHost(authority ?? hostOf(raw)), raw, ip, tls, sni });
      if (rule !== undefined) pool = rule.action === Action.Backend ? rule.pool : undefined;
    }
    const ps = pool === undefined ? NO_POOL.s : pool.s;
    const { headers, stickyId, hasBody, chunked, refuse, hostLine } = rewriteRequestHeaders(s, ps, raw, ip, authority, tls);
    // RFC 9112 §6.1: Transfer-Encoding on HTTP/1.0 means faulty framing. §3.2: HTTP/1.1 needs Host.
    // (HTTP/2: no Transfer-Encoding, and h2RequestHead wanted :authority or Host.)
    const minor = req.httpVersionMinor;
    if (refuse !== 0 || (!h2 && ((chunked && minor === 0) || (!hostLine && minor === 1)))) { lc.errReq++; this.reject(req, res, refuse || 400, undefined, sock, h2); return; }
    const ex = new Exchange(this, req, res, sock, method, headers, hasBody || h2Body, path, h2);
    if (s.clientClose) res.shouldKeepAlive = false;
    if (upgrade !== null) { ex.upgrade = upgrade; ex.upgradeHeld = upgradeHeld; }
    (res as TaggedRes)[kEx] = ex;
    // 'close' comes once per response: `on` spares the wrapper `once` makes per call.
    res.on('close', onResClose);
    if (hasBody) { (req as IncomingMessage & { [kEx]?: Exchange })[kEx] = ex; req.once('error', onReqError); this.bodies.add(ex); }

    if (rule !== undefined) {
      ex.rule = rule;
      if (rule.action !== Action.Backend) { this.answer(ex, rule); return; }
      if (rule.reqDel !== null || rule.reqAdd !== null) editHeaders(headers, rule.reqDel, rule.reqAdd);
    }
    if (pool === undefined) {
      ex.termination = 'PR';
      ex.respondError(404);
      return;
    }
    ex.p = pool;
    if (pool.ownCounters) pool.counters.begin(Date.now());
    const routing = pool.routing;
    let route: Route | undefined;
    if (stickyId !== undefined) {
      route = routing.byCookie.get(stickyId);
      if (route !== undefined) {
        ex.stickyOk = true;
        if (route.maxconn !== 0 && inflight(route) >= route.maxconn) {
          if (pool.queues.wait(ex, route.queue)) return;
          // Its queue is full (server maxqueue): balanced again, persistence broken (HAProxy).
          ex.stickyOk = false;
          route = undefined;
        }
      }
    }
    if (route === undefined) {
      const hk = ps.hashKind;
      if (hk !== 0) ex.key = hk === 1 ? hashString(ip) : hk === 2 ? uriHash(path) : headerHash(raw, ps.hashHeader);
      route = routing.pick(ex.key, null);
    }
    if (route === undefined) {
      // Servers exist but every one is full (maxconn): wait for a slot.
      if (routing.active.items.length > 0) {
        if (pool.queues.wait(ex, pool.queues.backend)) return;
        // The backend queue is full (maxqueue): refused at once.
        ex.termination = 'sQ';
        ex.respondError(503, false, pool.queues.retryAfter);
        return;
      }
      ex.termination = 'SC';
      ex.respondError(503);
      return;
    }
    ex.send(route);
  }

  /** A rule's own answer: redirect, deny or return (never reaches a pool). */
  private answer(ex: Exchange, rule: CompiledRule): void {
    if (rule.action === Action.Redirect) {
      ex.termination = 'LR';
      const loc = redirectLocation(rule.redirect!, hostOf(ex.headers) ?? ex.socket.localAddress, ex.path);
      ex.respondLocal(rule.redirect!.code, ['location', loc, 'content-length', '0'], undefined);
      return;
    }
    const p = rule.page!;
    ex.termination = rule.action === Action.Deny ? 'PR' : 'LR';
    ex.respondLocal(p.status, p.headers.slice(), p.body);
  }

  /**
   * Refuse before routing: one answer, `Connection: close` (counted by the caller as errReq).
   * `retryAfter`: seconds for a Retry-After header (429 of the per-client limits).
   * HTTP/2 (`h2`): the stream is answered and ends; the connection and its other streams go on.
   */
  reject(req: IncomingMessage, res: ServerResponse, status: number, retryAfter?: string, sock = req.socket as ClientSocket, h2 = false): void {
    const p = ERROR_PAGES.get(status)!;
    let h: string[];
    if (h2) h = p.headers.slice();
    else {
      sock[kRefused] = true;
      res.shouldKeepAlive = false;
      h = [...p.headers, 'connection', 'close'];
    }
    if (retryAfter !== undefined) h.push('retry-after', retryAfter);
    res.writeHead(status, STATUS_TEXT[status], h);
    res.end(p.body);
    this.counters.cur--;
    if (this.access.enabled) {
      const [bin, bout] = wireBytes(sock);
      this.access.reject(this, req, status, bin, bout);
    }
  }

  clientError(err: Error & { code?: string; rawPacket?: Buffer }, socket: Socket): void {
    if (err.code === 'ECONNRESET' || !socket.writable) { socket.destroy(); return; }
    this.rawPacket = err.rawPacket;
    let status = 400;
    if (err.code === 'HPE_HEADER_OVERFLOW') {
      // Node counts the request line in the header limit: no CRLF yet means the line itself is too long.
      const pkt = err.rawPacket;
      const eol = pkt ? pkt.indexOf('\r\n') : -1;
      status = pkt && (eol < 0 || eol > this.s.maxRequestLine) ? 414 : 431;
    } else if (err.code === 'ERR_HTTP_REQUEST_TIMEOUT') status = 408;
    this.refuseHead(socket, status, err.code);
  }

  /** A request head refused before any request object (parse error, CONNECT): counted, logged, answered in order. */
  private refuseHead(socket: Socket, status: number, code: string | undefined): void {
    const raw = this.rawPacket;
    this.rawPacket = undefined;
    if ((socket as ClientSocket)[kRefused] === true) { socket.end(); setTimeout(() => socket.destroy(), 1000).unref(); return; }
    this.counters.errReq++;
    this.log.info({ mod: 'proxy', listen: this.s.name, client: socket.remoteAddress, code, status }, 'bad request refused');
    if (this.access.enabled) {
      const cs = socket as ClientSocket;
      // Logged now, also when the answer waits for the requests in flight (kLastWord): its size is the error page's.
      const [bin] = wireBytes(cs);
      this.access.refused(this, socket, status, cs[kReady] ?? Date.now(), raw, bin, rawErrorResponse(status).length);
    }
    const q = (socket as ClientSocket)[kConn];
    if (q !== undefined && q.busy && q.last?.complete === true) {
      // The bad bytes follow complete requests that are still being served: answer those first,
      // in order, then this (HAProxy does the same); written now, the 400 would read as the answer
      // to the request in flight. (Bad bytes inside a body are that request's error: answered now.)
      // The parser reads nothing more on this connection.
      (socket as ClientSocket)[kLastWord] = status;
      return;
    }
    socket.end(rawErrorResponse(status));
    setTimeout(() => socket.destroy(), 1000).unref();
  }

  finish(ex: Exchange): void {
    const lc = this.counters;
    const now = performance.now();
    lc.cur--;
    const rt = (now - ex.start) / 1000;
    lc.observe(ex.status, rt);
    // Wire bytes since the previous request on this connection, heads included, both ways
    // (responses on a connection are written one after the other: see ConnQueue).
    const sock = ex.socket as ClientSocket;
    const [bytesIn, bytesOut] = wireBytes(sock);
    sock[kReady] = Date.now();
    lc.bytesOut += bytesOut;
    lc.bytesIn += bytesIn;
    const p = ex.p;
    if (p.ownCounters) {
      const pc = p.counters;
      pc.cur--;
      pc.observe(ex.status, rt);
      pc.bytesOut += bytesOut;
      pc.bytesIn += bytesIn;
    }
    const r = ex.route;
    if (r !== undefined) {
      const rc = r.counters;
      leave(r);
      if (p.queues.queued > 0) p.queues.slotFreed(r.id);
      rc.observe(ex.status, rt);
      rc.bytesOut += bytesOut;
      rc.bytesIn += bytesIn;
    }
    if (this.access.enabled) this.access.write(this, ex, now, bytesIn, bytesOut);
    this.next(sock);
  }

  destroyConnectionsTo(address: string): number {
    let n = 0;
    for (const sock of this.sockets) {
      const a = sock.localAddress;
      if (a === address || a === '::ffff:' + address) { sock.destroy(); n++; }
    }
    return n;
  }

  async stop(drainMs: number): Promise<void> {
    const server = this.server;
    if (!server) return;
    this.server = undefined;
    this.tls?.close();
    this.detachTickets?.();
    this.bodies.stop();
    // HTTP/2: GOAWAY now; each session ends when its streams have (or at the drain deadline).
    const h2 = this.h2;
    h2?.close();
    const acceptor = this.acceptor ?? server;
    this.acceptor = undefined;
    // The acceptor's close waits for every connection it accepted (TLS ones too), an extra
    // socket's for the ones it accepted.
    this.acceptProxy?.stop();
    const extras = this.extraAcceptors;
    this.extraAcceptors = [];
    const closed = Promise.all([acceptor, ...extras].map((a) => new Promise<void>((ok) => a.close(() => ok())))).then(() => {});
    if (acceptor !== server) server.close();
    server.closeIdleConnections();
    const h1 = this.h1;
    // Idle keep-alive sockets close as their current response ends.
    h1?.close();
    const timer = setTimeout(() => { server.closeAllConnections(); h1?.closeAll(); h2?.destroy(); for (const s of this.sockets) s.destroy(); }, drainMs);
    await closed;
    clearTimeout(timer);
    // Every connection is gone: the lean front's timeout sweep stops with them.
    h1?.closeAll();
  }
}

export type { Exchange };
