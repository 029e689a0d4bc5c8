import { constants, createServer, type Http2Server, type Http2Session, type IncomingHttpHeaders, type ServerHttp2Session } from 'node:http2';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import type { Listener } from '../proxy/listener.js';
import { h2RequestHead } from './translate.js';
import { compileH2Limits, guardSession, guardStream, guardStreamClosed, h2ServerOptions, type H2Limits } from './guard.js';
import { H2BodyReq, H2Req, H2Res, type PipelineStream } from './stream.js';
import type { FrontendConfig } from '../config/sites.js';

/**
 * HTTP/2 to clients on one bind (docs/http2.md): a node:http2 server that never listens itself.
 * The listener hands it connections: TLS sockets whose ALPN chose `h2` (the https server's
 * 'secureConnection' dispatch, src/proxy/listener.ts), or plain sockets that started with the
 * client preface (`h2c`, prior knowledge). HTTP/1.1 connections never come here, so their path
 * is unchanged.
 *
 * Each stream enters the same request pipeline as an HTTP/1.1 request (Listener.route), so that
 * retries, queueing, body timeouts, access logs and counters are the HTTP/1.1 code, not a second
 * copy. It is driven through node:http2's core API ('stream' events, stream.respond/write/end)
 * with the small request/response adapters of src/h2/stream.ts: node's compatibility API
 * (Http2ServerRequest/Response) cost more per stream than the rest of the h2 path together.
 */

/** The real client socket a session was made on (node only offers Proxies of it). */
const kSock = Symbol('pairlb.h2socket');
type Session = ServerHttp2Session & { [kSock]?: Socket };

export class H2Front {
  readonly server: Http2Server;
  private readonly sessions = new Set<Session>();
  /** Set while a connection is handed over: the 'session' event fires synchronously inside it. */
  private handing: Socket | undefined;
  private closing = false;

  /** The frontend's `h2_limits`, compiled (src/h2/guard.ts); new sessions take the current ones. */
  private limits: H2Limits;

  constructor(private readonly l: Listener, cfg: FrontendConfig) {
    this.limits = compileH2Limits(cfg.h2_limits, cfg);
    // Settings and session bounds: src/h2/guard.ts. SETTINGS_ENABLE_CONNECT_PROTOCOL stays off
    // (no RFC 8441 WebSocket over HTTP/2: docs/http2.md). No 'request' listener: node's
    // compatibility layer is never set up. CONNECT arrives as any stream (refused: 501).
    this.server = createServer(h2ServerOptions(this.limits));
    this.server.on('session', (s: Session) => this.onSession(s));
    // A session error (socket reset, protocol error) closes that session; nothing to do here.
    this.server.on('sessionError', () => {});
  }

  /** Serve a connection (TLS with ALPN h2, or plain with the preface read back into it). */
  accept(sock: Socket): void {
    if (this.closing) { sock.destroy(); return; }
    this.handing = sock;
    try { this.server.emit('connection', sock); } finally { this.handing = undefined; }
  }

  /** A reload: new sessions get the new limits and SETTINGS (node's session-memory bounds stay until a restart). */
  update(cfg: FrontendConfig): void {
    this.limits = compileH2Limits(cfg.h2_limits, cfg);
    this.server.updateSettings(h2ServerOptions(this.limits).settings!);
  }

  private onSession(s: Session): void {
    s[kSock] = this.handing;
    // Limits, attacks and the idle timeout of a session without streams (src/h2/guard.ts).
    // Its streams are handed to the guard by onStream (guardStream), not by a listener of its own.
    guardSession(s, this.limits, this.l.counters, false);
    this.sessions.add(s);
    s.on('error', ignore);
    // The session's own event, not the server's: a stream its client reset in the same read as
    // its HEADERS is destroyed before this runs, and has no `session` any more.
    s.on('stream', (st: PipelineStream, headers: IncomingHttpHeaders, _flags: number, raw: string[]) => this.onStream(s, st, headers, raw));
    s.once('close', () => this.sessions.delete(s));
    s.destroy = destroySession;
  }

  private onStream(s: Session, st: PipelineStream, headers: IncomingHttpHeaders, rawHeaders: string[]): void {
    const l = this.l;
    const body = !st.endAfterHeaders;
    // Counted open by the guard; H2Res's 'close' listener tells it the stream closed.
    guardStream(s, st, body);
    const sock = s[kSock];
    // Already reset by its client (rapid reset: HEADERS and RST_STREAM in one read): nothing to serve.
    if (st.destroyed || sock === undefined) { st.once('close', onRefusedClose); if (!st.closed) st.close(constants.NGHTTP2_REFUSED_STREAM); return; }
    const method = headers[':method'] ?? '';
    const url = (method === 'CONNECT' ? headers[':authority'] : headers[':path']) ?? '';
    const req = body ? new H2BodyReq(st, method, url, rawHeaders, headers, sock) : new H2Req(st, method, url, rawHeaders, headers, sock);
    const res = new H2Res(st, req);
    const expect = headers.expect;
    if (expect !== undefined) {
      // As node answered for the compatibility API (and node:http for HTTP/1.1): 100 Continue, or
      // 417 for an expectation it does not know, uncounted.
      if (expect !== '100-continue') { st.respond({ ':status': 417 }, { endStream: true }); return; }
      st.additionalHeaders({ ':status': 100 });
    }
    const lc = l.counters;
    const now = Date.now();
    lc.begin(now);
    const r = req as unknown as IncomingMessage;
    const w = res as unknown as ServerResponse;
    if (l.s.limited) {
      const ra = l.overLimit(sock, now);
      if (ra !== undefined) {
        lc.limited++;
        l.reject(r, w, 429, ra, sock, true);
        // As an HTTP/1.1 connection is closed after its 429: GOAWAY, the streams in flight finish.
        st.session?.close();
        return;
      }
    }
    const h = h2RequestHead(rawHeaders);
    if (h.refuse !== 0) { lc.errReq++; l.reject(r, w, h.refuse, undefined, sock, true); return; }
    if (h.path.length > l.s.maxRequestLine) { lc.errReq++; l.reject(r, w, 414, undefined, sock, true); return; }
    l.route(r, w, sock, h.method, h.raw, h.path, h.authority, true, body);
  }

  /** Sessions open (stats, tests). */
  get size(): number { return this.sessions.size; }

  /**
   * Graceful stop (RFC 9113 §6.8): GOAWAY to every session with the last stream it accepted;
   * streams in flight finish, then each session closes its connection. New connections are refused.
   */
  close(): void {
    this.closing = true;
    for (const s of this.sessions) if (!s.closed) s.close();
  }

  /** Drain time over: reset what is still open. */
  destroy(): void {
    for (const s of this.sessions) s.destroy();
  }
}

function ignore(): void {}
function onRefusedClose(this: PipelineStream): void { guardStreamClosed(this); }

/** nghttp2's NGHTTP2_ERR_BAD_CLIENT_MAGIC (not in node's http2.constants). */
const NGHTTP2_ERR_BAD_CLIENT_MAGIC = -903;

/**
 * Session.destroy with RFC 9113 §3.4's code for an invalid client preface: a connection error of
 * type PROTOCOL_ERROR. node destroys the session with nghttp2's error and no code, which makes its
 * GOAWAY say INTERNAL_ERROR (test/h2/conformance.test.ts). Every other destroy is node's own.
 */
function destroySession(this: Http2Session, err?: Error | number, code?: number): void {
  if (code === undefined && typeof err === 'object' && (err as { errno?: number } | null)?.errno === NGHTTP2_ERR_BAD_CLIENT_MAGIC) code = constants.NGHTTP2_PROTOCOL_ERROR;
  (Object.getPrototypeOf(this) as Http2Session).destroy.call(this, err as Error, code);
}

export type { Http2Session };

/** The HTTP/2 client connection preface (RFC 9113 §3.4), which no HTTP/1.1 request line can start with. */
export const PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1');

/**
 * h2c with prior knowledge on a plain bind: read until the first bytes either are the preface or
 * differ from it, put them back, and hand the socket on. An HTTP/1.1 request differs at its first
 * byte (no method starts with `PRI *`), so HTTP/1.1 waits for nothing extra. Bounded by
 * `timeoutMs` (the request head timeout): a silent connection is closed.
 */
export function sniffPreface(sock: Socket, timeoutMs: number, h2: (s: Socket) => void, h1: (s: Socket) => void): void {
  let buf: Buffer | null = null;
  const off = (): void => { sock.off('data', onData); sock.off('close', onClose); sock.off('error', ignore); sock.setTimeout(0); sock.off('timeout', onTimeout); };
  const onClose = (): void => off();
  const onTimeout = (): void => { off(); sock.destroy(); };
  const onData = (d: Buffer): void => {
    const b = buf = buf === null ? d : Buffer.concat([buf, d]);
    const n = Math.min(b.length, PREFACE.length);
    const same = b.compare(PREFACE, 0, n, 0, n) === 0;
    if (same && n < PREFACE.length) return;
    off();
    sock.pause();
    sock.unshift(b);
    if (same) h2(sock); else h1(sock);
  };
  sock.on('data', onData);
  sock.on('close', onClose);
  sock.on('error', ignore);
  sock.on('timeout', onTimeout);
  sock.setTimeout(timeoutMs);
}
