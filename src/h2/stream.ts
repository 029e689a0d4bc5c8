import { constants, type IncomingHttpHeaders, type ServerHttp2Stream } from 'node:http2';
import { Readable } from 'node:stream';
import type { Socket } from 'node:net';
import { guardStreamClosed } from './guard.js';

/**
 * One HTTP/2 stream as the request pipeline (Listener.route, src/proxy/listener.ts) drives an
 * HTTP/1.1 request/response pair: the subset of IncomingMessage and ServerResponse that the
 * Exchange, the access log and the body timeout read, over node:http2's core stream API
 * (`stream.respond()`, `write`, `end`). node's compatibility layer (Http2ServerRequest /
 * Http2ServerResponse) did the same with a Readable, a legacy Stream, a header object rebuilt and
 * validated field by field, a Proxy socket and about ten listeners per stream; here a request
 * without a body is a plain object and a stream carries two listeners ('close', 'error'; the
 * guard's stream bookkeeping, src/h2/guard.ts guardStream, shares the 'close' one).
 *
 * What differs from HTTP/1.1 (and is the reason for each method below): no reason phrase
 * (RFC 9113 §8.3.2); 102 and 103 go out as informational HEADERS; a response cut in the middle
 * reaches the client as RST_STREAM INTERNAL_ERROR, never as a clean end (the client would take
 * a truncated body for a complete one); connection-specific fields are never sent (§8.2.2).
 */

const kRes = Symbol('pairlb.h2res');
const kBody = Symbol('pairlb.h2body');
export type PipelineStream = ServerHttp2Stream & { [kRes]?: H2Res; [kBody]?: H2BodyReq };

/** Response field names never sent over HTTP/2 (RFC 9113 §8.2.2), by length; `te` only as `trailers`. */
const CONNECTION_SPECIFIC = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'upgrade', 'http2-settings', 'te']);
const CS_LENS = new Uint8Array(20);
for (const n of CONNECTION_SPECIFIC) CS_LENS[n.length] = 1;

/** The request of a stream whose HEADERS ended it (no body: GET, HEAD…). */
export class H2Req {
  constructor(
    readonly stream: ServerHttp2Stream,
    readonly method: string,
    readonly url: string,
    /** The stream's header list as node:http2 gives it (flat, pseudo-fields first). */
    readonly rawHeaders: string[],
    readonly headers: IncomingHttpHeaders,
    /** The client connection (the session's socket). */
    readonly socket: Socket,
  ) {}
  get destroyed(): boolean { return this.stream.destroyed; }
}
export interface H2Req {
  readonly httpVersion: string;
  readonly httpVersionMajor: number;
  readonly httpVersionMinor: number;
  readonly complete: boolean;
}
Object.defineProperties(H2Req.prototype, {
  httpVersion: { value: '2.0' }, httpVersionMajor: { value: 2 }, httpVersionMinor: { value: 0 }, complete: { value: true },
});

/**
 * The request of a stream with DATA frames to come: a Readable of the body (what the engines
 * read: 'data', pause/resume, 'end'), fed by the stream under HTTP/2 flow control (a body paused
 * by the engine stops reading the stream, which keeps the client's window shut). A stream reset
 * before END_STREAM never ends it: the upstream request is abandoned by the response's 'close'.
 */
export class H2BodyReq extends Readable {
  aborted = false;
  constructor(
    readonly stream: PipelineStream,
    readonly method: string,
    readonly url: string,
    readonly rawHeaders: string[],
    readonly headers: IncomingHttpHeaders,
    readonly socket: Socket,
  ) {
    super({ autoDestroy: false });
    stream[kBody] = this;
    stream.on('data', onBodyData);
    stream.once('end', onBodyEnd);
  }
  override _read(): void { this.stream.resume(); }
  /** As node's compat request: over once ended, or once its stream is gone. */
  get complete(): boolean { return this.readableEnded || this.aborted || this.stream.destroyed; }
}
export interface H2BodyReq {
  readonly httpVersion: string;
  readonly httpVersionMajor: number;
  readonly httpVersionMinor: number;
}
Object.defineProperties(H2BodyReq.prototype, {
  httpVersion: { value: '2.0' }, httpVersionMajor: { value: 2 }, httpVersionMinor: { value: 0 },
});

function onBodyData(this: PipelineStream, chunk: Buffer): void {
  const b = this[kBody];
  if (b !== undefined && !b.push(chunk)) this.pause();
}
function onBodyEnd(this: PipelineStream): void {
  const b = this[kBody];
  if (b !== undefined) b.push(null);
}

type Listener = (this: H2Res, ...args: unknown[]) => void;

/**
 * The response: writeHead(status, reason, flat fields) → stream.respond(), write/drain, end,
 * destroy, and one 'close' when the stream has closed (delivered or cut).
 */
export class H2Res {
  /** Read by the HTTP/1.1 code paths; meaningless on a stream. */
  shouldKeepAlive = true;
  writableEnded = false;
  /** The pipeline's 'close' listener (called once, with the response as `this`). */
  closeFn: Listener | undefined = undefined;

  constructor(readonly stream: PipelineStream, readonly req: H2Req | H2BodyReq) {
    stream[kRes] = this;
    stream.on('close', onStreamClose);
    // A stream destroyed with an error (a client's RST_STREAM with an error code) emits it: the
    // response's 'close' tells the pipeline.
    stream.on('error', ignore);
  }

  get headersSent(): boolean { return this.stream.headersSent; }
  get destroyed(): boolean { return this.stream.destroyed; }

  /**
   * Delivered: ended by pairlb and the stream closed without error. (A stream's writable side is
   * finished also when it was reset, by the client or by nghttp2 for a malformed request.)
   */
  get writableFinished(): boolean {
    const st = this.stream;
    return this.writableEnded && st.writableFinished && (!st.closed || st.rstCode === constants.NGHTTP2_NO_ERROR);
  }

  /**
   * `headers`: flat [name, value…] (or an object). Throws on a field node:http2 will not send
   * (invalid name): the pipeline answers 502 then. A stream already gone takes nothing.
   */
  writeHead(status: number, reason?: unknown, headers?: unknown): this {
    const st = this.stream;
    if (st.destroyed || st.closed) return this;
    if (headers === undefined && typeof reason === 'object') headers = reason;
    const out: (string | number)[] = [':status', status];
    if (Array.isArray(headers)) {
      const h = headers as string[];
      for (let i = 0; i < h.length; i += 2) {
        const k = h[i].toLowerCase();
        if (k.length < CS_LENS.length && CS_LENS[k.length] === 1 && CONNECTION_SPECIFIC.has(k) && !(k === 'te' && h[i + 1] === 'trailers')) continue;
        out.push(k, h[i + 1]);
      }
    } else if (headers !== null && typeof headers === 'object') {
      const o = headers as Record<string, string | number | string[]>;
      for (const key of Object.keys(o)) {
        const k = key.toLowerCase();
        if (CONNECTION_SPECIFIC.has(k)) continue;
        const v = o[key];
        if (Array.isArray(v)) for (const x of v) out.push(k, x);
        else out.push(k, String(v));
      }
    }
    st.respond(out as unknown as string[]);
    return this;
  }

  write(chunk: Buffer | string): boolean {
    const st = this.stream;
    if (this.writableEnded || st.destroyed) return false;
    if (!st.headersSent) this.writeHead(200);
    return st.write(chunk);
  }

  end(chunk?: Buffer | string): this {
    if (this.writableEnded) return this;
    const st = this.stream;
    if (chunk !== undefined && chunk !== null) this.write(chunk);
    this.writableEnded = true;
    if (st.destroyed) return this;
    if (!st.headersSent) this.writeHead(200);
    st.end();
    return this;
  }

  /**
   * Cut: RST_STREAM INTERNAL_ERROR (a response cut in the middle must not look complete). node's
   * close() ends the stream's writable side before it resets, and an ended writable side is
   * flushed as END_STREAM ahead of the RST_STREAM: the client would take the truncated body for a
   * whole one. So the writable side is ended here without that shutdown (node's compatibility
   * layer avoided it by holding every response's END_STREAM for trailers, a callback and an
   * empty DATA frame per stream).
   */
  destroy(): this {
    const st = this.stream;
    if (st.closed || st.destroyed) return this;
    if (!st.writableEnded) (st as unknown as { _final: (cb: () => void) => void })._final = endWithoutShutdown;
    st.close(constants.NGHTTP2_INTERNAL_ERROR);
    return this;
  }

  /** 102 Processing as an informational HEADERS frame. */
  writeProcessing(): void {
    const st = this.stream;
    if (!st.headersSent && !st.destroyed && !st.closed) st.additionalHeaders({ ':status': 102 });
  }

  /** 103 Early Hints (lowercase names, hop-by-hop fields already dropped); nothing without a Link. */
  writeEarlyHints(hints: Record<string, string | string[]>): void {
    const st = this.stream;
    if (hints.link === undefined || st.headersSent || st.destroyed || st.closed) return;
    st.additionalHeaders({ ...hints, ':status': 103 });
  }

  /** 'close' (once, when the stream has closed) and 'drain'; anything else goes to the stream. */
  on(ev: string, fn: Listener): this {
    if (ev === 'close') {
      const prev = this.closeFn;
      this.closeFn = prev === undefined ? fn : function (this: H2Res, ...a: unknown[]) { prev.apply(this, a); fn.apply(this, a); };
    } else this.stream.on(ev, fn as (...a: unknown[]) => void);
    return this;
  }
  once(ev: string, fn: Listener): this {
    if (ev === 'close') return this.on(ev, fn);
    this.stream.once(ev, fn as (...a: unknown[]) => void);
    return this;
  }
  off(ev: string, fn: Listener): this {
    if (ev === 'close') { if (this.closeFn === fn) this.closeFn = undefined; } else this.stream.off(ev, fn as (...a: unknown[]) => void);
    return this;
  }
  removeListener(ev: string, fn: Listener): this { return this.off(ev, fn); }
}

function onStreamClose(this: PipelineStream): void {
  guardStreamClosed(this);
  const res = this[kRes];
  if (res === undefined) return;
  this[kRes] = undefined;
  this[kBody] = undefined;
  const fn = res.closeFn;
  if (fn !== undefined) fn.call(res);
}

function ignore(): void {}
function endWithoutShutdown(cb: () => void): void { cb(); }
