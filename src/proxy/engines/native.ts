import { connect, type Socket } from 'node:net';
import { HTTPParser, type Parser } from '../llhttp.js';
import type { UpstreamConfig } from '../engine.js';
import { PairlbError } from '../../errors.js';
import type { AttemptRequest, AttemptSink, Engine, Upstream } from '../engine.js';

/**
 * `engine: native` (the default): a purpose-built upstream client. A keep-alive pool of
 * net.Sockets per backend; the request head is written as one latin1 string; responses are parsed
 * by Node's own native llhttp binding, the `HTTPParser` that node:http's client uses (it handles
 * chunked bodies, bodies delimited by close, 1xx, 204/304 and header limits).
 *
 * Why: the profile of the undici engine spends ~27% of the proxy's CPU in undici itself (its wasm
 * parser called back through JS, header re-validation, its queue); with this engine a small
 * keep-alive request costs ~1.2× less CPU (bench/ab.mjs, bench/RESULTS.md 2026-12-01). Held to the
 * same conformance and edge suites as undici (which stays selectable: `engine: undici`).
 * The internal binding is loaded and checked in src/proxy/llhttp.ts.
 */
const { kOnMessageBegin, kOnHeaders, kOnHeadersComplete, kOnBody, kOnMessageComplete, kOnExecute } = HTTPParser;

/** Idle upstream connections are closed after this (backends usually keep them 5-75 s). */
const IDLE_MS = 4_000;
/**
 * How often a pool with idle connections closes those idle for IDLE_MS or more. A connection's
 * socket timeout stays timeouts.server for its whole life (every write of a request restarts it):
 * re-arming it twice per request (server timeout when taken, IDLE_MS when given back) cost ~1 % of
 * a small request's CPU in timer-list churn (profile, bench/RESULTS.md); acquire() never hands out
 * one idle for IDLE_MS, so the sweep only bounds how long an unused one stays open (≤ IDLE_MS + this).
 */
const SWEEP_MS = 500;
const MAX_IDLE = 512;

function lowerIs(name: string, want: string): boolean {
  return name.length === want.length && name.toLowerCase() === want;
}

/** The socket handle as llhttp's consume() takes it (a libuv stream). */
type Handle = { readStart(): number; readStop(): number; reading?: boolean; isStreamBase?: boolean };
function closeParser(p: Parser): void { p.close(); }

class Conn {
  readonly s: Socket;
  readonly p: Parser;
  /** llhttp reads the handle itself (after connect). */
  private consumed = false;
  sink: AttemptSink | null = null;
  connected = false;
  /** The current request's method is HEAD: its response has no body (RFC 9110 §9.3.2). */
  head = false;
  /** Request body fully written (a connection is reused only then). */
  sent = true;
  gotHeaders = false;
  keepAlive = true;
  /** The request asked the backend to close after this response (connection_mode). */
  closeAfter = false;
  partial: string[] | null = null;
  /** performance.now() when it went back to the idle pool. */
  idleAt = 0;
  /** The current request asks to switch protocols (Upgrade); the backend's 101 head once it came. */
  upgrade = false;
  switched: string[] | null = null;
  private pending: AttemptRequest | null = null;

  constructor(readonly up: NativeUpstream) {
    const s = (this.s = connect({ host: up.host, port: up.port, noDelay: true }));
    s.setTimeout(up.l.timeouts.connect);
    const p = (this.p = new HTTPParser());
    p.initialize(HTTPParser.RESPONSE, {}, up.maxHeaderSize, 0);
    // A response begins with no request outstanding: bytes after the end of the last response
    // (more than its Content-Length, a body after a 204/304, a 'response' on an idle connection).
    // Given to the next request they would be its answer (response-queue poisoning): the
    // connection is closed instead (llhttp skips blank lines between messages: no begin for those).
    p[kOnMessageBegin] = () => { if (this.sink === null) this.s.destroy(); };
    p[kOnHeaders] = (headers: string[]) => { this.partial = this.partial ? this.partial.concat(headers) : headers; };
    p[kOnHeadersComplete] = (_maj: number, _min: number, headers: string[] | undefined, _m: unknown, _u: unknown, status: number, msg: string, _upg: boolean, keepAlive: boolean) => this.onHeadersComplete(headers, status, msg, keepAlive);
    p[kOnBody] = (b: Buffer) => this.onBody(b);
    p[kOnMessageComplete] = () => this.onMessageComplete();
    // consume mode: after each read llhttp parsed in C++ (ret: bytes used, or the parse error).
    p[kOnExecute] = (ret: number | Error) => this.afterRead(ret, null);
    s.on('connect', () => {
      this.connected = true;
      // The backend's bytes are parsed off the handle in C++ (no JS 'data' event per read), as
      // node:http's client does; measured in bench/RESULTS.md (2026-12-01, lean front).
      const h = (s as Socket & { _handle?: Handle | null })._handle;
      if (h?.isStreamBase === true) { p.consume(h); this.consumed = true; }
      // send_proxy: the PROXY header first (this upstream is one client connection's own).
      if (up.proxyHeader !== undefined) s.write(up.proxyHeader);
      s.setTimeout(up.l.timeouts.server);
      const r = this.pending;
      this.pending = null;
      if (r) this.write(r);
    });
    s.on('data', (d: Buffer) => {
      // Bytes on an idle pooled connection: no request asked for them (a blank line included).
      if (this.sink === null) { s.destroy(); return; }
      this.afterRead(this.p.execute(d), d);
    });
    // A response delimited by the end of the connection completes at EOF (RFC 9112 §6.3 rule 8).
    s.on('end', () => { this.p.finish(); s.end(); });
    s.on('timeout', () => {
      if (!this.sink) { s.destroy(); return; }
      this.fail(this.connected
        ? new PairlbError(this.gotHeaders ? 'UND_ERR_BODY_TIMEOUT' : 'UND_ERR_HEADERS_TIMEOUT', 'server timeout')
        : new PairlbError('UND_ERR_CONNECT_TIMEOUT', 'connect timeout'));
    });
    s.on('error', (e) => this.fail(e));
    s.on('close', () => {
      this.up.forget(this);
      this.fail(new PairlbError('UND_ERR_SOCKET', 'other side closed'));
      this.release();
    });
  }

  /** What one read parsed to: an error, the end of a 101's head, or bytes nobody asked for. */
  private afterRead(ret: number | Error, d: Buffer | null): void {
    if (ret instanceof Error) { this.fail(new PairlbError('UND_ERR_SOCKET', `invalid response from backend: ${(ret as Error & { code?: string }).code ?? ret.message}`)); return; }
    // llhttp stopped after the 101 head: what follows is the new protocol.
    if (this.switched !== null) { this.handOver((d ?? this.p.getCurrentBuffer()).subarray(ret)); return; }
    // consume mode: a read on a connection that was idle when it came, a blank line included
    // (llhttp skips those silently; other bytes are refused at message begin).
    if (d === null) {
      if (this.sink === null && ret > 0 && !this.completedInRead && !this.s.destroyed) this.s.destroy();
      this.completedInRead = false;
    }
  }
  /** A response completed during the read being parsed (consume mode: its bytes were asked for). */
  private completedInRead = false;

  /** Stop / start reading the backend (backpressure from the client): the handle itself in consume mode. */
  private pauseRead(): void {
    const h = (this.s as Socket & { _handle?: Handle | null })._handle;
    if (this.consumed && h) { if (h.reading !== false) { h.reading = false; h.readStop(); } } else this.s.pause();
  }
  private resumeRead(): void {
    const h = (this.s as Socket & { _handle?: Handle | null })._handle;
    if (this.consumed && h) { if (h.reading !== true) { h.reading = true; h.readStart(); } } else this.s.resume();
  }

  /** Begin one exchange on this connection (fresh: after connect; reused: now). */
  start(r: AttemptRequest, sink: AttemptSink): void {
    this.sink = sink;
    this.gotHeaders = false;
    this.partial = null;
    this.head = r.method === 'HEAD';
    this.upgrade = r.upgrade !== null;
    this.closeAfter = r.close;
    if (this.connected) this.write(r); else this.pending = r;
  }

  private readonly abort = (err?: Error): void => {
    this.sink = null;
    this.s.destroy(err);
  };

  private write(r: AttemptRequest): void {
    const sink = this.sink;
    if (!sink) return;
    sink.onConnect(this.abort);
    if (this.sink !== sink) return; // aborted in onConnect
    const s = this.s;
    const h = r.headers;
    let head = `${r.method} ${r.path} HTTP/1.1\r\n`;
    let hasHost = false;
    let hasLength = false;
    for (let i = 0; i < h.length; i += 2) {
      const k = h[i];
      if (k.length === 4 && !hasHost) hasHost = lowerIs(k, 'host');
      else if (k.length === 14 && !hasLength) hasLength = lowerIs(k, 'content-length');
      head += `${k}: ${h[i + 1]}\r\n`;
    }
    if (!hasHost) head += `Host: ${this.up.hostHeader}\r\n`;
    if (r.close) head += 'Connection: close\r\n';
    if (r.upgrade !== null) {
      head += `Connection: Upgrade\r\nUpgrade: ${r.upgrade}\r\n`;
      // Whatever the answer, this connection is not reused.
      this.keepAlive = false;
    }
    const body = r.body;
    if (body === null) {
      this.sent = true;
      s.write(head + '\r\n', 'latin1');
      return;
    }
    // A body without Content-Length came chunked from the client (we removed its framing):
    // re-frame it chunked (RFC 9112 §7.1).
    const chunked = !hasLength;
    if (chunked) head += 'Transfer-Encoding: chunked\r\n';
    s.write(head + '\r\n', 'latin1');
    this.sent = false;
    const onData = (c: Buffer) => {
      const ok = chunked ? (s.write(c.length.toString(16) + '\r\n'), s.write(c), s.write('\r\n')) : s.write(c);
      if (!ok) { body.pause(); s.once('drain', () => body.resume()); }
    };
    // The connection went before the body's end (an early answer, an error): a body paused for
    // backpressure would wait for a 'drain' that never comes, and the client connection with it
    // (its next request is parsed only after this body). The rest is read and dropped.
    const onGone = (): void => { body.off('data', onData); body.resume(); };
    s.once('close', onGone);
    body.on('data', onData);
    body.once('end', () => {
      s.off('close', onGone);
      if (chunked) s.write('0\r\n\r\n');
      this.sent = true;
    });
  }

  private onHeadersComplete(headers: string[] | undefined, status: number, msg: string, keepAlive: boolean): number {
    const raw = this.partial ? (headers ? this.partial.concat(headers) : this.partial) : (headers ?? []);
    this.partial = null;
    // llhttp reads any three digits: 000-099 is no status (RFC 9110 §15), and below 200 this
    // engine would take it for a 1xx and its body for the final response's.
    if (status < 100) {
      this.fail(new PairlbError('PAIRLB_BAD_RESPONSE', `backend answered with status ${status}`));
      return 1;
    }
    if (status === 101) {
      // Asked for: 2 = upgrade, llhttp stops after this head (execute returns the bytes it used).
      if (this.upgrade) { this.switched = raw; return 2; }
      // Never asked for: llhttp would hand the rest of the connection over as raw bytes. 502, and
      // this connection is not reused.
      this.fail(new PairlbError('PAIRLB_BAD_RESPONSE', 'backend answered 101 Switching Protocols to a request without Upgrade'));
      return 1;
    }
    // 1xx (103 Early Hints…) are not the response: the listener forwards or drops them, then the final one.
    if (status < 200) {
      const sink = this.sink;
      if (sink) sink.onHeaders(status, raw, this.resume, msg);
      return 0;
    }
    this.keepAlive = keepAlive && !this.upgrade && !this.closeAfter;
    this.gotHeaders = true;
    const sink = this.sink;
    if (sink && sink.onHeaders(status, raw, this.resume, msg) === false) this.pauseRead();
    // 1 = skip the body: a response to HEAD has none whatever its headers say.
    return this.head ? 1 : 0;
  }

  private readonly resume = (): void => { this.resumeRead(); };

  private onBody(b: Buffer): void {
    const sink = this.sink;
    if (sink && sink.onData(b) === false) this.pauseRead();
  }

  private onMessageComplete(): void {
    if (!this.gotHeaders) return; // end of a 1xx
    this.completedInRead = true;
    const sink = this.sink;
    this.sink = null;
    this.gotHeaders = false;
    if (sink) sink.onComplete(null);
    // The client may have paused us for backpressure just before the end: its 'drain' never comes
    // once the response is ended, and a pooled connection must read (to see the backend close it).
    this.resumeRead();
    if (this.keepAlive && this.sent && !this.s.destroyed) this.up.release(this);
    else this.s.destroy();
  }

  /** The backend switched protocols: the socket leaves the pool and goes to the sink, `rest` unread in it. */
  private handOver(rest: Buffer): void {
    const s = this.s;
    const sink = this.sink;
    const raw = this.switched!;
    this.sink = null;
    this.switched = null;
    for (const ev of ['data', 'end', 'timeout', 'error', 'close', 'connect']) s.removeAllListeners(ev);
    s.setTimeout(0);
    this.up.forget(this);
    this.release();
    // Reads go to the JS stream from here, buffered (paused) until the tunnel pipes it: the handle
    // reads as net does for any socket (stopped by backpressure, not by us).
    const h = (s as Socket & { _handle?: Handle | null })._handle;
    if (h && h.reading !== true) { h.reading = true; h.readStart(); }
    s.pause();
    if (rest.length) s.unshift(rest);
    if (sink) sink.onUpgrade(101, raw, s); else s.destroy();
  }

  /** Let go of the parser: unconsumed now, deleted later (never from inside one of its own callbacks, as node:http's freeParser). */
  private release(): void {
    if (this.consumed) { this.consumed = false; this.p.unconsume(); }
    setImmediate(closeParser, this.p);
  }

  private fail(err: Error): void {
    const sink = this.sink;
    this.sink = null;
    this.pending = null;
    if (!this.s.destroyed) this.s.destroy();
    if (sink) sink.onError(err);
  }
}

class NativeUpstream implements Upstream {
  private readonly idle: Conn[] = [];
  private readonly all = new Set<Conn>();
  private closing = false;
  readonly hostHeader: string;
  readonly maxHeaderSize: number;

  constructor(readonly host: string, readonly port: number, readonly l: UpstreamConfig, readonly proxyHeader?: Buffer) {
    this.hostHeader = host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
    this.maxHeaderSize = Math.max(l.max_header_size, 16384);
  }

  private sweeper: NodeJS.Timeout | undefined;
  private readonly sweepFn = (): void => this.sweep();

  acquire(): Conn {
    const idle = this.idle;
    let c: Conn | undefined;
    if (idle.length !== 0) {
      const old = performance.now() - IDLE_MS;
      while ((c = idle.pop()) !== undefined) {
        if (c.s.destroyed) continue;
        // The stack is in idleAt order: below one idle too long, all are.
        if (c.idleAt <= old) { c.s.destroy(); for (const o of idle.splice(0)) o.s.destroy(); break; }
        c.s.ref();
        return c;
      }
    }
    c = new Conn(this);
    this.all.add(c);
    return c;
  }

  release(c: Conn): void {
    if (this.closing || this.idle.length >= MAX_IDLE) { c.s.destroy(); return; }
    c.idleAt = performance.now();
    // An idle pool must not keep a stopping process alive.
    c.s.unref();
    this.idle.push(c);
    if (this.sweeper === undefined) { this.sweeper = setInterval(this.sweepFn, SWEEP_MS); this.sweeper.unref(); }
  }

  /** Close the connections idle for IDLE_MS or more (the oldest are at the bottom of the stack). */
  private sweep(): void {
    const idle = this.idle;
    const old = performance.now() - IDLE_MS;
    let n = 0;
    while (n < idle.length && idle[n].idleAt <= old) n++;
    if (n !== 0) for (const c of idle.splice(0, n)) c.s.destroy();
    if (idle.length === 0) { clearInterval(this.sweeper); this.sweeper = undefined; }
  }

  forget(c: Conn): void {
    this.all.delete(c);
    const i = this.idle.indexOf(c);
    if (i >= 0) this.idle.splice(i, 1);
  }

  async close(): Promise<void> {
    this.closing = true;
    clearInterval(this.sweeper);
    for (const c of this.idle.splice(0)) c.s.destroy();
  }

  destroy(): void {
    this.closing = true;
    clearInterval(this.sweeper);
    for (const c of this.all) c.s.destroy();
    this.idle.length = 0;
  }
}

export const nativeEngine: Engine = {
  name: 'native',
  // The client body is read only once the request head has been written on a connected socket.
  retriesBody: true,
  createUpstream(host, port, l, proxyHeader) { return new NativeUpstream(host, port, l, proxyHeader); },
  send(up, r, sink) { (up as NativeUpstream).acquire().start(r, sink); },
};

export { checkHttpParserInternal } from '../llhttp.js';
