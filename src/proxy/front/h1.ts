import { EventEmitter } from 'node:events';
import { Readable } from 'node:stream';
import { ServerResponse, STATUS_CODES, type IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';
import { HTTPParser, METHODS, type Parser } from '../llhttp.js';

/**
 * `global.http1_front: lean`: the HTTP/1.1 server side of a bind without node:http. Each client
 * connection's requests are parsed by Node's native llhttp (the parser node:http uses) consuming
 * the socket's handle in C++ (`consume`: no JS 'data' event per read, as node:http does), and
 * handed to the Listener as small request/response objects that carry exactly the surface the
 * request pipeline uses (listener.ts: Exchange, handle, route, reject; access-log.ts;
 * body-timeout.ts) — not an IncomingMessage (a Readable per request) and a ServerResponse (an
 * OutgoingMessage with its own queue, validation and 'finish' machinery) per request. A response
 * head is built as one string and written corked with the first body chunk: one writev for a
 * small response.
 *
 * Why: bench/ref/ref-lean.mjs (the same design, nothing else) runs at 0.66-0.72x HAProxy per CPU
 * second where pairlb on node:http ran 0.24-0.34x; the node:http server side was the largest
 * user-space cost in the profile (bench/RESULTS.md 2026-12-01).
 *
 * The wire behaviour is node:http's, byte for byte where the edge tests assert it: the same parser
 * and limits (max_header_size → HPE_HEADER_OVERFLOW, maxHeadersCount), parse errors reported to
 * Listener.clientError with `rawPacket`, the request-head timeout (408 through clientError, from the
 * accept or the first byte of a head) and the keep-alive idle timeout (silent close), `100
 * Continue`, the response framing (Date, Connection, Keep-Alive, chunked for HTTP/1.1 without a
 * length, close-delimited for HTTP/1.0), a client FIN with a request pending ends the connection.
 * What it does not do itself it hands to node:http at a request boundary (`handOver`): Upgrade and
 * CONNECT requests (llhttp stops after their head) and an Expect other than 100-continue. The
 * connection is node:http's from then on, as if it had been from the accept.
 */

const { kOnMessageBegin, kOnHeaders, kOnHeadersComplete, kOnBody, kOnMessageComplete, kOnExecute } = HTTPParser;

/** RFC 9110 §5.1 token and §5.5 field-value bytes: what node:http's writeHead also refuses (it throws). */
const TOKEN = /^[\^_`a-zA-Z\-0-9!#$%&'*+.|~]+$/;
const BAD_VALUE = /[^\t\x20-\x7e\x80-\xff]/;
const CONTINUE = /(?:^|\W)100-continue(?:$|\W)/i;
/** A first body chunk up to this size is copied into the head's Buffer (one write); larger ones are corked. */
const ONE_WRITE_MAX = 8192;

let dateSec = -1;
let dateStr = '';
/** The Date header's value (RFC 9110 §6.6.1), computed once per second. */
function httpDate(): string {
  const now = Date.now();
  const sec = Math.floor(now / 1000);
  if (sec !== dateSec) { dateSec = sec; dateStr = new Date(sec * 1000).toUTCString(); }
  return dateStr;
}

function lowerIs(name: string, want: string): boolean {
  return name.length === want.length && name.toLowerCase() === want;
}

/** On a client socket: its lean connection (the Listener pauses its reads when its pipeline queue is full). */
export const kLean = Symbol('pairlb.lean');

/** The settings a connection reads from its bind (reload changes them for new requests). */
export interface H1Settings {
  maxHeaderSize: number;
  /** Header lines kept (max_headers + 1: an excess shows, and handle() answers 431). */
  maxHeadersCount: number;
  /** timeouts.http_request: a request head must be complete this long after it began. */
  headersTimeout: number;
  /** timeouts.client: an idle keep-alive connection is closed after this. */
  keepAliveTimeout: number;
}

/** What the front needs of its Listener. */
export interface H1Host {
  onRequest(req: IncomingMessage, res: import('node:http').ServerResponse): void;
  clientError(err: Error & { code?: string; rawPacket?: Buffer }, socket: Socket): void;
  /** node:http takes this connection from here on (it parses the bytes put back in the socket). */
  nodeAccept(sock: Socket): void;
}

/** Parse errors carry llhttp's code (HPE_…), the reason and where they stopped. */
type ParseError = Error & { code?: string; reason?: string; bytesParsed?: number; rawPacket?: Buffer };

/** Request head fields, the same names as IncomingMessage's. */
interface RequestFields {
  method: string;
  url: string;
  rawHeaders: string[];
  httpVersionMajor: number;
  httpVersionMinor: number;
  httpVersion: string;
  socket: Socket;
  complete: boolean;
}

/** IncomingMessage.headers for the few readers that want it (combined access log: referer, user-agent): first value wins. */
function headersOf(raw: string[]): Record<string, string> {
  const h: Record<string, string> = {};
  for (let i = 0; i < raw.length; i += 2) {
    const k = raw[i].toLowerCase();
    if (h[k] === undefined) h[k] = raw[i + 1];
  }
  return h;
}

/** A request without a body: nothing to stream, complete once its head is parsed. */
export class LeanRequest implements RequestFields {
  complete = true;
  readonly destroyed = false;
  readonly readableFlowing = null;
  readonly readableLength = 0;
  private hdrs: Record<string, string> | undefined;
  constructor(
    readonly socket: Socket, readonly method: string, readonly url: string, readonly rawHeaders: string[],
    readonly httpVersionMajor: number, readonly httpVersionMinor: number, readonly httpVersion: string,
  ) {}
  get headers(): Record<string, string> { return (this.hdrs ??= headersOf(this.rawHeaders)); }
  // An EventEmitter's surface, for the listeners the pipeline may add (none fire).
  on(): this { return this; }
  once(): this { return this; }
  off(): this { return this; }
  removeListener(): this { return this; }
}

/**
 * A request with a body (Transfer-Encoding, or a Content-Length other than 0: the listener's own
 * rule, headers.ts): a Readable of the body bytes, with backpressure onto the connection's reads.
 */
export class LeanBodyRequest extends Readable implements RequestFields {
  complete = false;
  private hdrs: Record<string, string> | undefined;
  constructor(
    private readonly conn: H1Conn,
    readonly socket: Socket, readonly method: string, readonly url: string, readonly rawHeaders: string[],
    readonly httpVersionMajor: number, readonly httpVersionMinor: number, readonly httpVersion: string,
  ) { super(); }
  get headers(): Record<string, string> { return (this.hdrs ??= headersOf(this.rawHeaders)); }
  override _read(): void { this.conn.bodyWanted(); }
}

type AnyRequest = LeanRequest | LeanBodyRequest;

function emitClose(res: LeanResponse): void { res.emit('close'); }

/**
 * One response. The Exchange calls writeHead once, then write/end; 'drain' after a write that
 * returned false; 'close' once, when it ended (next tick) or the connection closed before.
 */
export class LeanResponse extends EventEmitter {
  statusCode = 200;
  headersSent = false;
  writableEnded = false;
  writableFinished = false;
  destroyed = false;
  /** Keep the connection after this response (the request's, cleared by refusals and connection_mode). */
  shouldKeepAlive: boolean;
  /** Expect: 100-continue, not yet answered (written when this response's turn comes). */
  expectContinue = false;
  private head: string | null = null;
  private chunked = false;
  private noBody = false;
  /** The connection closes after this response (Connection: close, HTTP/1.0 without a length…). */
  private last = false;
  closed = false;

  constructor(private readonly conn: H1Conn, readonly req: AnyRequest, keepAlive: boolean) {
    super();
    this.shouldKeepAlive = keepAlive;
  }

  get socket(): Socket | null { return this.writableFinished ? null : this.conn.sock; }

  /**
   * node:http's writeHead with a flat [name, value…] list (or an object, the ACME answer's): the
   * head is kept and goes out with the first body bytes. Throws on a name or value node:http
   * refuses, before anything is written (the Exchange answers 502 then).
   */
  writeHead(status: number, text?: string, headers?: string[] | Record<string, string | number>): this {
    if (this.headersSent) return this;
    const flat: string[] = Array.isArray(headers) ? headers : headers === undefined ? [] : Object.entries(headers).flatMap(([k, v]) => [k, String(v)]);
    let h = 'HTTP/1.1 ' + status + ' ' + (text ?? STATUS_CODES[status] ?? 'unknown') + '\r\n';
    let hasLength = false;
    let hasTe = false;
    let hasDate = false;
    let conn = -1;
    for (let i = 0; i < flat.length; i += 2) {
      const k = flat[i];
      const v = flat[i + 1];
      if (!TOKEN.test(k)) throw Object.assign(new TypeError(`Header name must be a valid HTTP token ["${k}"]`), { code: 'ERR_INVALID_HTTP_TOKEN' });
      if (BAD_VALUE.test(v)) throw Object.assign(new TypeError(`Invalid character in header content ["${k}"]`), { code: 'ERR_INVALID_CHAR' });
      const n = k.length;
      if (n === 14) { if (!hasLength) hasLength = lowerIs(k, 'content-length'); }
      else if (n === 17) { if (!hasTe) hasTe = lowerIs(k, 'transfer-encoding'); }
      else if (n === 4) { if (!hasDate) hasDate = lowerIs(k, 'date'); }
      else if (n === 10 && conn < 0 && lowerIs(k, 'connection')) conn = i;
      h += k + ': ' + v + '\r\n';
    }
    const req = this.req;
    this.statusCode = status;
    this.noBody = status === 204 || status === 304 || (status >= 100 && status < 200) || req.method === 'HEAD';
    const http11 = req.httpVersionMinor === 1 && req.httpVersionMajor === 1;
    if (!hasDate) h += 'Date: ' + httpDate() + '\r\n';
    if (conn >= 0) {
      if (flat[conn + 1].toLowerCase().includes('close')) this.last = true;
    } else if (this.shouldKeepAlive && !this.conn.front.closing && (hasLength || http11)) {
      h += 'Connection: keep-alive\r\n';
      const ka = this.conn.front.keepAliveHeader;
      if (ka !== '') h += ka;
    } else {
      this.last = true;
      h += 'Connection: close\r\n';
    }
    if (!hasLength && !hasTe && !this.noBody) {
      if (http11) { h += 'Transfer-Encoding: chunked\r\n'; this.chunked = true; }
      else this.last = true;
    }
    this.head = h + '\r\n';
    this.headersSent = true;
    return this;
  }

  write(chunk: Buffer | string): boolean {
    if (this.writableEnded || this.destroyed) return false;
    if (!this.headersSent) this.writeHead(this.statusCode);
    if (this.noBody || chunk.length === 0) { this.flushHead(); return true; }
    const s = this.conn.sock;
    const h = this.head;
    let ok: boolean;
    if (h !== null) {
      this.head = null;
      ok = this.headAndBody(s, h, chunk, '');
    } else ok = this.body(s, chunk);
    if (!ok) this.conn.wantDrain();
    return ok;
  }

  /**
   * The head with the first body bytes (and `tail`: the last chunk of a chunked body ending here).
   * A small body goes out in the same Buffer as the head: one write, one TLS record. Measured
   * (bench/tls-writes.mjs, bench/RESULTS.md 2026-12-01 18:50): cork + two writes cost 1.10-1.13x
   * one write over TLS, 1.15x over plain TCP; past ~16 KiB the copy costs more than the write.
   */
  private headAndBody(s: Socket, h: string, chunk: Buffer | string, tail: string): boolean {
    if (typeof chunk !== 'string' && chunk.length <= ONE_WRITE_MAX) {
      const pre = this.chunked ? h + chunk.length.toString(16) + '\r\n' : h;
      const post = this.chunked ? '\r\n' + tail : tail;
      const b = Buffer.allocUnsafe(pre.length + chunk.length + post.length);
      b.write(pre, 0, 'latin1');
      chunk.copy(b, pre.length);
      if (post.length !== 0) b.write(post, pre.length + chunk.length, 'latin1');
      return s.write(b);
    }
    s.cork();
    s.write(h, 'latin1');
    const ok = this.body(s, chunk);
    if (tail !== '') s.write(tail, 'latin1');
    s.uncork();
    return ok;
  }

  private body(s: Socket, chunk: Buffer | string): boolean {
    if (!this.chunked) return s.write(chunk);
    const n = typeof chunk === 'string' ? Buffer.byteLength(chunk) : chunk.length;
    if (h1Chunk(s, n)) { s.write(chunk); return s.write('\r\n', 'latin1'); }
    return false;
  }

  private flushHead(): void {
    const h = this.head;
    if (h !== null) { this.head = null; this.conn.sock.write(h, 'latin1'); }
  }

  end(data?: Buffer | string): this {
    if (this.writableEnded) return this;
    if (this.destroyed) { this.writableEnded = true; return this; }
    if (!this.headersSent) this.writeHead(this.statusCode);
    const s = this.conn.sock;
    const h = this.head;
    this.head = null;
    const hasData = data !== undefined && data.length !== 0 && !this.noBody;
    if (!hasData) {
      const tail = this.chunked ? '0\r\n\r\n' : '';
      if (h !== null) s.write(h + tail, 'latin1');
      else if (tail !== '') s.write(tail, 'latin1');
    } else if (h !== null) this.headAndBody(s, h, data, this.chunked ? '0\r\n\r\n' : '');
    else {
      s.cork();
      this.body(s, data);
      if (this.chunked) s.write('0\r\n\r\n', 'latin1');
      s.uncork();
    }
    this.writableEnded = true;
    this.writableFinished = true;
    this.conn.responseDone(this, this.last || !this.shouldKeepAlive);
    return this;
  }

  destroy(): this {
    if (!this.destroyed) { this.destroyed = true; this.conn.sock.destroy(); }
    return this;
  }

  /** The connection closed (or this response ended): 'close' once. */
  close(now: boolean): void {
    if (this.closed) return;
    this.closed = true;
    if (!this.writableFinished) this.destroyed = true;
    if (now) this.emit('close'); else process.nextTick(emitClose, this);
  }

  writeContinue(): void { this.conn.sock.write('HTTP/1.1 100 Continue\r\n\r\n', 'latin1'); }
  writeProcessing(): void { this.conn.sock.write('HTTP/1.1 102 Processing\r\n\r\n', 'latin1'); }

  /** node:http's own writeEarlyHints (its Link validation, its format), writing to this connection. */
  writeEarlyHints(hints: Record<string, string | string[]>): void {
    const sock = this.conn.sock;
    const P = ServerResponse.prototype as unknown as Record<string, unknown>;
    // The OutgoingMessage members node's writeEarlyHints → writeInformation use (Node 24).
    const out = { _header: null, writeInformation: P.writeInformation, _isLenientHeaderValidation: () => false, _writeRaw: (head: string) => sock.write(head, 'latin1') };
    (P.writeEarlyHints as (this: unknown, h: unknown) => void).call(out, hints);
  }
}

/** A chunk-size line (RFC 9112 §7.1). */
function h1Chunk(s: Socket, n: number): boolean { return s.write(n.toString(16) + '\r\n', 'latin1'); }

/** The socket handle as llhttp's consume() takes it (a libuv stream or TLSWrap). */
type Handle = { readStart(): number; readStop(): number; reading?: boolean; isStreamBase?: boolean };

/** One client connection parsed by llhttp. */
export class H1Conn {
  private readonly p: Parser;
  private consumed = false;
  /** Header lines of the head being parsed, when llhttp flushed them before its end (> 32 lines). */
  private partial: string[] | null = null;
  /** The request whose body is being parsed. */
  private bodyReq: LeanBodyRequest | null = null;
  /** Responses not yet ended, oldest first (pipelined ones wait in the Listener's queue). */
  private readonly open: LeanResponse[] = [];
  /** performance.now() when the current request head began (0: none), when the connection went idle (0: not idle). */
  headStart: number;
  idleSince = 0;
  /** Reasons not to read: body backpressure, the Listener's pipeline queue full, handing over. */
  private bodyPaused = false;
  private queuePaused = false;
  private stopped = false;
  /** Upgrade / CONNECT / other Expect: the head to replay to node:http once the connection is idle. */
  private handing: Buffer | null = null;
  private dead = false;

  constructor(readonly front: H1Front, readonly sock: Socket) {
    this.headStart = performance.now();
    (sock as Socket & { [kLean]?: H1Conn })[kLean] = this;
    const p = (this.p = new HTTPParser());
    p.initialize(HTTPParser.REQUEST, {}, front.settings.maxHeaderSize, 0);
    p[kOnMessageBegin] = this.onBegin;
    p[kOnHeaders] = this.onHeaders;
    p[kOnHeadersComplete] = this.onHeadersComplete;
    p[kOnBody] = this.onBody;
    p[kOnMessageComplete] = this.onComplete;
    p[kOnExecute] = this.onExecute;
    sock.on('data', this.onData);
    sock.on('end', this.onEnd);
    sock.on('close', this.onClose);
    sock.on('drain', this.onDrain);
    sock.on('error', this.onError);
    const h = (sock as Socket & { _handle?: Handle | null })._handle;
    // Bytes put back in the socket (PROXY header, h2c sniff) come through 'data' first; the
    // handle's further reads are parsed in C++.
    // `_consumed`: node:http's own mark; a connection handed to it later (handOver) is then read
    // through 'data' events, as node:http reads one handed back after an Upgrade.
    if (h?.isStreamBase === true && (h as Handle & { _consumed?: boolean })._consumed !== true) { p.consume(h); this.consumed = true; (h as Handle & { _consumed?: boolean })._consumed = true; }
    sock.resume();
  }

  // ---- parser callbacks (kept as bound fields: llhttp calls them with no `this`) ----

  private readonly onBegin = (): void => { this.headStart = performance.now(); this.idleSince = 0; };

  /** The request target so far, when llhttp flushed header lines before the head's end (it comes with the first flush). */
  private partialUrl = '';
  private readonly onHeaders = (headers: string[], url: string): void => {
    this.partial = this.partial === null ? headers : this.partial.concat(headers);
    if (url) this.partialUrl += url;
  };

  private readonly onHeadersComplete = (major: number, minor: number, headers: string[] | undefined, method: number, url: string, _s: unknown, _m: unknown, upgrade: boolean, keepAlive: boolean): number => {
    let raw = this.partial === null ? (headers ?? []) : headers ? this.partial.concat(headers) : this.partial;
    this.partial = null;
    if (!url) { url = this.partialUrl; }
    this.partialUrl = '';
    this.headStart = 0;
    const max = this.front.settings.maxHeadersCount * 2;
    if (raw.length > max) raw = raw.slice(0, max);
    const m = METHODS[method];
    const version = major === 1 && minor === 1 ? '1.1' : major + '.' + minor;
    let hasBody = false;
    let expect = -1;
    for (let i = 0; i < raw.length; i += 2) {
      const n = raw[i].length;
      if (n === 17) { if (lowerIs(raw[i], 'transfer-encoding')) hasBody = true; }
      else if (n === 14) { if (raw[i + 1] !== '0' && lowerIs(raw[i], 'content-length')) hasBody = true; }
      else if (n === 6 && lowerIs(raw[i], 'expect')) expect = i;
    }
    const http11 = major === 1 && minor === 1;
    if (upgrade || (expect >= 0 && http11 && !CONTINUE.test(raw[expect + 1]))) {
      // llhttp stops after an Upgrade or CONNECT head; node:http serves those (src/proxy/upgrade.ts).
      this.handing = replayHead(m, url, version, raw);
      // 2: llhttp stops right after this head, even with a body (node:http returns 2 for an
      // upgrade too): the body is replayed to node:http with the rest.
      return 2;
    }
    const sock = this.sock;
    let req: AnyRequest;
    if (hasBody) req = this.bodyReq = new LeanBodyRequest(this, sock, m, url, raw, major, minor, version);
    else req = new LeanRequest(sock, m, url, raw, major, minor, version);
    const res = new LeanResponse(this, req, keepAlive);
    const open = this.open;
    open.push(res);
    if (expect >= 0 && http11) {
      // node:http answers 100 Continue before the request event (it never forwards Expect).
      if (open.length === 1) res.writeContinue(); else res.expectContinue = true;
    }
    this.front.host.onRequest(req as unknown as IncomingMessage, res as unknown as import('node:http').ServerResponse);
    return 0;
  };

  private readonly onBody = (b: Buffer): void => {
    const r = this.bodyReq;
    if (r === null || r.destroyed) return;
    if (!r.push(b)) { this.bodyPaused = true; this.reading(); }
  };

  private readonly onComplete = (): void => {
    // Trailer fields of a chunked body come through kOnHeaders: not forwarded (as node:http keeps
    // them in req.trailers, which nothing sends on), never part of the next request's head.
    this.partial = null;
    this.partialUrl = '';
    const r = this.bodyReq;
    if (r === null) return;
    this.bodyReq = null;
    r.complete = true;
    r.push(null);
    if (this.bodyPaused) { this.bodyPaused = false; this.reading(); }
  };

  /** consume mode: after each read llhttp parsed (ret: bytes used, or the parse error). */
  private readonly onExecute = (ret: number | ParseError): void => { this.after(ret, null); };

  private readonly onData = (d: Buffer): void => {
    if (this.dead || this.handing !== null) return;
    this.after(this.p.execute(d), d);
  };

  private after(ret: number | ParseError, d: Buffer | null): void {
    if (ret instanceof Error) { this.parseError(ret, d); return; }
    if (this.handing !== null) {
      const buf = d ?? this.p.getCurrentBuffer();
      this.handing = Buffer.concat([this.handing, buf.subarray(ret)]);
      this.stopped = true;
      this.reading();
      if (this.open.length === 0) this.handOver();
    }
  }

  private parseError(err: ParseError, d: Buffer | null): void {
    this.dead = true;
    this.stopped = true;
    this.reading();
    err.rawPacket = d ?? this.p.getCurrentBuffer();
    if (typeof err.reason === 'string') err.message = `Parse Error: ${err.reason}`;
    const r = this.bodyReq;
    // Bad bytes inside a body are that request's error (a bad chunk size): its upload fails.
    if (r !== null) { this.bodyReq = null; abort(r, err); }
    this.front.host.clientError(err, this.sock);
  }

  /** The client's FIN: as node:http (httpAllowHalfOpen false), a pending request dies with the connection. */
  private readonly onEnd = (): void => {
    const s = this.sock;
    if (!this.dead) {
      const ret = this.p.finish();
      if (ret instanceof Error) { this.parseError(ret as ParseError, null); }
    }
    this.dead = true;
    if (this.open.length !== 0 || this.bodyReq !== null) s.destroy();
    else if (s.writable) s.end();
  };

  private readonly onClose = (): void => {
    this.dead = true;
    this.front.conns.delete(this);
    const r = this.bodyReq;
    if (r !== null) { this.bodyReq = null; if (!r.complete) abort(r, Object.assign(new Error('aborted'), { code: 'ECONNRESET' })); }
    for (const res of this.open.splice(0)) res.close(true);
    if (this.consumed) { this.consumed = false; this.p.unconsume(); }
    closeLater(this.p);
  };

  /**
   * A socket error (a reset, a TLS error such as a client renegotiating past Node's limit): to
   * Listener.clientError once, as node:http's socketOnError does (a reset or an unwritable socket
   * is destroyed there; anything else gets a 400 and the connection ends).
   */
  private readonly onError = (e: Error): void => {
    this.sock.removeListener('error', this.onError);
    this.sock.on('error', noop);
    this.dead = true;
    this.front.host.clientError(e, this.sock);
  };

  private readonly onDrain = (): void => {
    const r = this.open[0];
    if (r !== undefined && this.drainWanted) { this.drainWanted = false; r.emit('drain'); }
  };
  private drainWanted = false;
  /** A write returned false: the next socket drain is the current response's. */
  wantDrain(): void { this.drainWanted = true; }

  /** A response ended: the next one's turn, the idle timer, or the end of the connection. */
  responseDone(res: LeanResponse, close: boolean): void {
    const open = this.open;
    const i = open.indexOf(res);
    if (i >= 0) open.splice(i, 1);
    res.close(false);
    const s = this.sock;
    if (close) { this.dead = true; this.stopped = true; this.reading(); s.destroySoon(); return; }
    const next = open[0];
    if (next !== undefined) { if (next.expectContinue) { next.expectContinue = false; next.writeContinue(); } return; }
    if (this.handing !== null) { this.handOver(); return; }
    if (this.headStart === 0) this.idleSince = performance.now();
    if (this.front.closing) { this.dead = true; s.destroySoon(); }
  }

  /** The Listener's pipeline queue is full (true) or has room again (false). */
  pauseQueue(on: boolean): void { this.queuePaused = on; this.reading(); }

  /** The body's reader wants more (Readable _read). */
  bodyWanted(): void { if (this.bodyPaused) { this.bodyPaused = false; this.reading(); } }

  private isReading = true;
  private reading(): void {
    const want = !this.stopped && !this.bodyPaused && !this.queuePaused;
    if (want === this.isReading) return;
    this.isReading = want;
    const h = (this.sock as Socket & { _handle?: Handle | null })._handle;
    if (h === null || h === undefined) return;
    if (want) { h.reading = true; h.readStart(); } else { h.reading = false; h.readStop(); }
  }

  /** Idle: no request in flight, no head begun. */
  get idle(): boolean { return this.open.length === 0 && this.headStart === 0 && this.bodyReq === null; }

  /** The front's sweep: the head timeout (408 through clientError) and the idle keep-alive timeout. */
  check(now: number, s: H1Settings): void {
    if (this.dead) return;
    if (this.headStart !== 0 && s.headersTimeout > 0 && now - this.headStart >= s.headersTimeout) {
      this.dead = true;
      this.stopped = true;
      this.reading();
      this.front.host.clientError(Object.assign(new Error('Request timeout'), { code: 'ERR_HTTP_REQUEST_TIMEOUT' }), this.sock);
      return;
    }
    if (this.idleSince !== 0 && s.keepAliveTimeout > 0 && now - this.idleSince >= s.keepAliveTimeout) this.sock.destroy();
  }

  /** Give the connection to node:http: its parser reads the replayed head, then the rest. */
  private handOver(): void {
    const head = this.handing!;
    this.handing = null;
    this.dead = true;
    const s = this.sock;
    this.front.conns.delete(this);
    (s as Socket & { [kLean]?: H1Conn })[kLean] = undefined;
    s.removeListener('data', this.onData);
    s.removeListener('end', this.onEnd);
    s.removeListener('close', this.onClose);
    s.removeListener('drain', this.onDrain);
    s.removeListener('error', this.onError);
    s.removeListener('error', noop);
    if (this.consumed) { this.consumed = false; this.p.unconsume(); }
    closeLater(this.p);
    if (s.destroyed) return;
    s.unshift(head);
    this.front.host.nodeAccept(s);
    // Reading again (this connection stopped its reads when the head came), through the JS stream
    // now: node:http's parser takes over.
    const h = (s as Socket & { _handle?: Handle | null })._handle;
    if (h && !this.isReading) { h.reading = true; h.readStart(); }
  }
}

function noop(): void {}

/** The C++ parser is deleted by close(): never from inside one of its own callbacks (node:http's freeParser does the same). */
function closeLater(p: Parser): void { setImmediate(closeParser, p); }
function closeParser(p: Parser): void { p.close(); }

/** As IncomingMessage: a body that fails emits 'error' only to a listener (an unread body's failure is no crash). */
function abort(r: LeanBodyRequest, err: Error): void {
  r.destroy(r.listenerCount('error') > 0 ? err : undefined);
}

/** A head llhttp parsed, serialised again (names and values were validated by it: exact). */
function replayHead(method: string, url: string, version: string, raw: string[]): Buffer {
  let h = method + ' ' + url + ' HTTP/' + version + '\r\n';
  for (let i = 0; i < raw.length; i += 2) h += raw[i] + ': ' + raw[i + 1] + '\r\n';
  return Buffer.from(h + '\r\n', 'latin1');
}

/** The lean front of one bind: its connections, their timeouts, stop. */
export class H1Front {
  readonly conns = new Set<H1Conn>();
  closing = false;
  settings: H1Settings;
  /** `Keep-Alive: timeout=N\r\n` as node:http writes it (empty below 1 s … as node: timeout=0). */
  keepAliveHeader = '';
  private timer: NodeJS.Timeout | undefined;

  constructor(readonly host: H1Host, settings: H1Settings) {
    this.settings = settings;
    this.update(settings);
  }

  update(s: H1Settings): void {
    this.settings = s;
    this.keepAliveHeader = s.keepAliveTimeout > 0 ? `Keep-Alive: timeout=${Math.floor(s.keepAliveTimeout / 1000)}\r\n` : '';
    if (this.timer !== undefined) clearInterval(this.timer);
    // As node:http's connectionsCheckingInterval: a quarter of the head timeout, within 100 ms-1 s.
    const every = Math.min(1000, Math.max(100, s.headersTimeout >> 2));
    this.timer = setInterval(() => this.sweep(), every);
    this.timer.unref();
  }

  accept(sock: Socket): void {
    if (sock.destroyed) return;
    this.conns.add(new H1Conn(this, sock));
  }

  private sweep(): void {
    const now = performance.now();
    const s = this.settings;
    for (const c of this.conns) c.check(now, s);
  }

  /** server.closeIdleConnections(): connections with nothing in flight close now. */
  closeIdle(): void { for (const c of this.conns) if (c.idle) c.sock.destroy(); }

  /** Stop: idle connections close now, the others after their current response. */
  close(): void { this.closing = true; this.closeIdle(); }

  closeAll(): void {
    clearInterval(this.timer);
    for (const c of this.conns) c.sock.destroy();
  }
}
