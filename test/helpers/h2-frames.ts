import { connect as netConnect, type Socket } from 'node:net';
import { connect as tlsConnect } from 'node:tls';

/**
 * Raw HTTP/2 for tests that must send exactly the bytes a hostile or broken client sends (RFC 9113
 * frames, RFC 7541 HPACK), and read back exactly what the server answered, frame by frame.
 *
 * - `frame(type, flags, streamId, payload)` and one builder per frame type (`settings`, `headers`,
 *   `continuation`, `data`, `rstStream`, `ping`, `goaway`, `windowUpdate`, `priority`).
 * - `hpack`: a minimal encoder (literal without indexing is enough for requests; `incremental`,
 *   `indexed` and `tableSizeUpdate` are there to build HPACK-bomb and table-abuse blocks) and
 *   `decodeHpack`, a decoder of the static table, a dynamic table and plain literals (Huffman-coded
 *   strings come back as `huffman:<hex>`; nghttp2 sends `:status 200/204/404/…` indexed and 3-digit
 *   codes it cannot shorten, e.g. `431`, as plain literals).
 * - `H2Conn`: a client connection (plain h2c prior knowledge, or TLS with ALPN h2) that writes
 *   buffers as given and parses every frame the server sends into `frames`; `waitFor(pred, ms)`
 *   waits for a frame (or for the close), never a fixed sleep.
 *
 * Typical use:
 * ```ts
 * const c = await H2Conn.open({ port });            // TCP connect (h2c)
 * c.write(PREFACE, settings([]));                    // client preface + empty SETTINGS
 * c.write(headers(1, requestBlock('GET', '/', 'localhost')), { endStream: true }));
 * const h = await c.waitFor((f) => f.type === FrameType.HEADERS && f.streamId === 1, 2000);
 * decodeHpack(h.payload)  // [[':status', '200'], …]
 * c.destroy();
 * ```
 */

/** The client connection preface (RFC 9113 §3.4). */
export const PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1');

export const FrameType = {
  DATA: 0x0, HEADERS: 0x1, PRIORITY: 0x2, RST_STREAM: 0x3, SETTINGS: 0x4, PUSH_PROMISE: 0x5,
  PING: 0x6, GOAWAY: 0x7, WINDOW_UPDATE: 0x8, CONTINUATION: 0x9,
} as const;

export const Flag = { END_STREAM: 0x1, ACK: 0x1, END_HEADERS: 0x4, PADDED: 0x8, PRIORITY: 0x20 } as const;

/** RFC 9113 §7 error codes. */
export const ErrorCode = {
  NO_ERROR: 0x0, PROTOCOL_ERROR: 0x1, INTERNAL_ERROR: 0x2, FLOW_CONTROL_ERROR: 0x3, SETTINGS_TIMEOUT: 0x4,
  STREAM_CLOSED: 0x5, FRAME_SIZE_ERROR: 0x6, REFUSED_STREAM: 0x7, CANCEL: 0x8, COMPRESSION_ERROR: 0x9,
  CONNECT_ERROR: 0xa, ENHANCE_YOUR_CALM: 0xb, INADEQUATE_SECURITY: 0xc, HTTP_1_1_REQUIRED: 0xd,
} as const;

export const ERROR_NAMES: Record<number, string> = Object.fromEntries(Object.entries(ErrorCode).map(([k, v]) => [v, k]));

/** RFC 9113 §6.5.2 setting identifiers. */
export const Setting = {
  HEADER_TABLE_SIZE: 0x1, ENABLE_PUSH: 0x2, MAX_CONCURRENT_STREAMS: 0x3, INITIAL_WINDOW_SIZE: 0x4,
  MAX_FRAME_SIZE: 0x5, MAX_HEADER_LIST_SIZE: 0x6, ENABLE_CONNECT_PROTOCOL: 0x8,
} as const;

// ---- frames ----------------------------------------------------------------------------------------

/** One frame: 9-byte header (RFC 9113 §4.1) + payload. The length is the payload's, unchecked (tests send oversized ones on purpose). */
export function frame(type: number, flags: number, streamId: number, payload: Buffer = Buffer.alloc(0)): Buffer {
  const b = Buffer.alloc(9 + payload.length);
  b.writeUIntBE(payload.length, 0, 3);
  b[3] = type;
  b[4] = flags;
  b.writeUInt32BE(streamId & 0x7fffffff, 5);
  payload.copy(b, 9);
  return b;
}

export function settings(entries: readonly (readonly [number, number])[] = [], ack = false): Buffer {
  const p = Buffer.alloc(entries.length * 6);
  entries.forEach(([id, v], i) => { p.writeUInt16BE(id, i * 6); p.writeUInt32BE(v >>> 0, i * 6 + 2); });
  return frame(FrameType.SETTINGS, ack ? Flag.ACK : 0, 0, p);
}

export const settingsAck = (): Buffer => frame(FrameType.SETTINGS, Flag.ACK, 0);

/** HEADERS; END_HEADERS unless `endHeaders: false` (then CONTINUATION frames must follow). */
export function headers(streamId: number, block: Buffer, o: { endStream?: boolean; endHeaders?: boolean } = {}): Buffer {
  const flags = (o.endStream ? Flag.END_STREAM : 0) | (o.endHeaders === false ? 0 : Flag.END_HEADERS);
  return frame(FrameType.HEADERS, flags, streamId, block);
}

export function continuation(streamId: number, block: Buffer, endHeaders = false): Buffer {
  return frame(FrameType.CONTINUATION, endHeaders ? Flag.END_HEADERS : 0, streamId, block);
}

export function data(streamId: number, body: Buffer | string, endStream = false): Buffer {
  return frame(FrameType.DATA, endStream ? Flag.END_STREAM : 0, streamId, typeof body === 'string' ? Buffer.from(body) : body);
}

export function rstStream(streamId: number, code: number = ErrorCode.CANCEL): Buffer {
  const p = Buffer.alloc(4);
  p.writeUInt32BE(code);
  return frame(FrameType.RST_STREAM, 0, streamId, p);
}

/** PING with 8 bytes of opaque data (a number written big-endian, or given bytes). */
export function ping(opaque: number | Buffer = 0, ack = false): Buffer {
  let p: Buffer;
  if (typeof opaque === 'number') { p = Buffer.alloc(8); p.writeBigUInt64BE(BigInt(opaque)); } else p = opaque;
  return frame(FrameType.PING, ack ? Flag.ACK : 0, 0, p);
}

export function goaway(lastStreamId: number, code: number = ErrorCode.NO_ERROR, debug = ''): Buffer {
  const d = Buffer.from(debug);
  const p = Buffer.alloc(8 + d.length);
  p.writeUInt32BE(lastStreamId & 0x7fffffff);
  p.writeUInt32BE(code, 4);
  d.copy(p, 8);
  return frame(FrameType.GOAWAY, 0, 0, p);
}

export function windowUpdate(streamId: number, increment: number): Buffer {
  const p = Buffer.alloc(4);
  p.writeUInt32BE(increment & 0x7fffffff);
  return frame(FrameType.WINDOW_UPDATE, 0, streamId, p);
}

export function priority(streamId: number, dependsOn: number, weight = 16, exclusive = false): Buffer {
  const p = Buffer.alloc(5);
  p.writeUInt32BE(((exclusive ? 0x80000000 : 0) | (dependsOn & 0x7fffffff)) >>> 0);
  p[4] = weight - 1;
  return frame(FrameType.PRIORITY, 0, streamId, p);
}

// ---- HPACK (RFC 7541) --------------------------------------------------------------------------------

/** §5.1 integer with an N-bit prefix; `first` carries the pattern bits above the prefix. */
export function hpackInt(value: number, prefixBits: number, first = 0): Buffer {
  const max = (1 << prefixBits) - 1;
  if (value < max) return Buffer.from([first | value]);
  const out = [first | max];
  value -= max;
  while (value >= 128) { out.push((value & 0x7f) | 0x80); value = Math.floor(value / 128); }
  out.push(value);
  return Buffer.from(out);
}

/** §5.2 string literal, never Huffman-coded. */
export function hpackString(s: string | Buffer): Buffer {
  const b = typeof s === 'string' ? Buffer.from(s, 'latin1') : s;
  return Buffer.concat([hpackInt(b.length, 7, 0), b]);
}

export const hpack = {
  /** §6.2.2 literal header field without indexing, new name (0x00): never touches the dynamic table. */
  literal: (name: string, value: string | Buffer): Buffer => Buffer.concat([Buffer.from([0]), hpackString(name), hpackString(value)]),
  /** §6.2.3 literal never indexed, new name (0x10). */
  neverIndexed: (name: string, value: string | Buffer): Buffer => Buffer.concat([Buffer.from([0x10]), hpackString(name), hpackString(value)]),
  /** §6.2.1 literal with incremental indexing, new name (0x40): the entry is added to the decoder's dynamic table (index 62 is the newest). */
  incremental: (name: string, value: string | Buffer): Buffer => Buffer.concat([Buffer.from([0x40]), hpackString(name), hpackString(value)]),
  /** §6.1 indexed header field: static 1..61, dynamic 62.. (newest first). */
  indexed: (index: number): Buffer => hpackInt(index, 7, 0x80),
  /** §6.3 dynamic table size update (only at the start of a header block). */
  tableSizeUpdate: (size: number): Buffer => hpackInt(size, 5, 0x20),
};

/** A request header block: pseudo-headers first, then `extra` (names lower-case), all literals without indexing. */
export function requestBlock(method: string, path: string, authority: string, extra: readonly (readonly [string, string])[] = [], scheme = 'http'): Buffer {
  const parts = [hpack.literal(':method', method), hpack.literal(':scheme', scheme), hpack.literal(':authority', authority), hpack.literal(':path', path)];
  for (const [k, v] of extra) parts.push(hpack.literal(k, v));
  return Buffer.concat(parts);
}

/** A header block of literal fields without indexing, names and order exactly as given (tests choose what to break: case, order, duplicates). */
export function fieldBlock(fields: readonly (readonly [string, string])[]): Buffer {
  return Buffer.concat(fields.map(([k, v]) => hpack.literal(k, v)));
}

/** RFC 7541 Appendix A static table (index 1..61). */
const STATIC: readonly (readonly [string, string])[] = [
  ['', ''], [':authority', ''], [':method', 'GET'], [':method', 'POST'], [':path', '/'], [':path', '/index.html'],
  [':scheme', 'http'], [':scheme', 'https'], [':status', '200'], [':status', '204'], [':status', '206'], [':status', '304'],
  [':status', '400'], [':status', '404'], [':status', '500'], ['accept-charset', ''], ['accept-encoding', 'gzip, deflate'],
  ['accept-language', ''], ['accept-ranges', ''], ['accept', ''], ['access-control-allow-origin', ''], ['age', ''], ['allow', ''],
  ['authorization', ''], ['cache-control', ''], ['content-disposition', ''], ['content-encoding', ''], ['content-language', ''],
  ['content-length', ''], ['content-location', ''], ['content-range', ''], ['content-type', ''], ['cookie', ''], ['date', ''],
  ['etag', ''], ['expect', ''], ['expires', ''], ['from', ''], ['host', ''], ['if-match', ''], ['if-modified-since', ''],
  ['if-none-match', ''], ['if-range', ''], ['if-unmodified-since', ''], ['last-modified', ''], ['link', ''], ['location', ''],
  ['max-forwards', ''], ['proxy-authenticate', ''], ['proxy-authorization', ''], ['range', ''], ['referer', ''], ['refresh', ''],
  ['retry-after', ''], ['server', ''], ['set-cookie', ''], ['strict-transport-security', ''], ['transfer-encoding', ''],
  ['user-agent', ''], ['vary', ''], ['via', ''], ['www-authenticate', ''],
];

/**
 * Decoder state for one connection's responses (the server's HPACK encoder context): keep one per
 * H2Conn and decode header blocks in the order they arrived.
 */
export class HpackDecoder {
  private table: [string, string][] = [];
  private size = 0;
  maxSize = 4096;

  decode(block: Buffer): [string, string][] {
    const out: [string, string][] = [];
    let i = 0;
    const int = (prefix: number): number => {
      const max = (1 << prefix) - 1;
      let v = block[i++] & max;
      if (v < max) return v;
      let m = 0, b: number;
      do { b = block[i++]; v += (b & 0x7f) * 2 ** m; m += 7; } while (b & 0x80);
      return v;
    };
    const str = (): string => {
      const huff = (block[i] & 0x80) !== 0;
      const n = int(7);
      const s = block.subarray(i, i + n);
      i += n;
      return huff ? 'huffman:' + s.toString('hex') : s.toString('latin1');
    };
    const entry = (idx: number): [string, string] => {
      if (idx >= 1 && idx < STATIC.length) return [STATIC[idx][0], STATIC[idx][1]];
      const d = this.table[idx - STATIC.length];
      if (!d) throw new Error(`hpack: index ${idx} out of range`);
      return d;
    };
    while (i < block.length) {
      const b = block[i];
      if (b & 0x80) { out.push(entry(int(7))); continue; }
      if ((b & 0xe0) === 0x20) { this.maxSize = int(5); this.evict(); continue; }
      const incremental = (b & 0xc0) === 0x40;
      const idx = incremental ? int(6) : int(4);
      const name = idx === 0 ? str() : entry(idx)[0];
      const value = str();
      out.push([name, value]);
      if (incremental) { this.table.unshift([name, value]); this.size += name.length + value.length + 32; this.evict(); }
    }
    return out;
  }

  private evict(): void {
    while (this.size > this.maxSize && this.table.length) { const [n, v] = this.table.pop()!; this.size -= n.length + v.length + 32; }
  }
}

/** Decode one header block without connection state (fine when the block uses no dynamic entries). */
export const decodeHpack = (block: Buffer): [string, string][] => new HpackDecoder().decode(block);

// ---- reading frames ---------------------------------------------------------------------------------

export interface Frame {
  type: number;
  flags: number;
  streamId: number;
  payload: Buffer;
  /** ms since the connection opened when the frame was parsed. */
  at: number;
}

/** RST_STREAM / GOAWAY error code of a frame (GOAWAY: the code after the last stream id). */
export function errorCodeOf(f: Frame): number {
  if (f.type === FrameType.RST_STREAM) return f.payload.readUInt32BE(0);
  if (f.type === FrameType.GOAWAY) return f.payload.readUInt32BE(4);
  throw new Error(`frame type ${f.type} has no error code`);
}

/** Parse the SETTINGS payload into [id, value] pairs. */
export function settingsOf(f: Frame): [number, number][] {
  const out: [number, number][] = [];
  for (let i = 0; i + 6 <= f.payload.length; i += 6) out.push([f.payload.readUInt16BE(i), f.payload.readUInt32BE(i + 2)]);
  return out;
}

/** Incremental frame parser: push bytes, get whole frames. */
export class FrameReader {
  private buf: Buffer = Buffer.alloc(0);
  constructor(private readonly t0 = performance.now()) {}

  push(chunk: Buffer): Frame[] {
    this.buf = this.buf.length ? Buffer.concat([this.buf, chunk]) : chunk;
    const out: Frame[] = [];
    while (this.buf.length >= 9) {
      const len = this.buf.readUIntBE(0, 3);
      if (this.buf.length < 9 + len) break;
      out.push({ type: this.buf[3], flags: this.buf[4], streamId: this.buf.readUInt32BE(5) & 0x7fffffff, payload: Buffer.from(this.buf.subarray(9, 9 + len)), at: performance.now() - this.t0 });
      this.buf = this.buf.subarray(9 + len);
    }
    return out;
  }
}

export interface OpenOptions {
  port: number;
  host?: string;
  /** TLS with ALPN h2 (certificate not verified unless `ca` is given). */
  tls?: { servername?: string; ca?: string | Buffer };
  /**
   * Keep at most this many frames in `frames` (the newest); counts in `counts` stay exact. Attack
   * tests that provoke thousands of ACKs set it low to keep the test's own memory flat.
   */
  keep?: number;
  /** Answer the server's SETTINGS with an ACK automatically (default true). */
  ackSettings?: boolean;
}

/**
 * A raw client connection. Writes go out as given (nothing is added except, by default, the ACK
 * of the server's SETTINGS). Every frame received is parsed into `frames`, counted by type in
 * `counts`; `closed` resolves when the server closes the connection (or it errors).
 */
export class H2Conn {
  readonly frames: Frame[] = [];
  readonly counts = new Map<number, number>();
  /** `counts` as they were when the first GOAWAY arrived. */
  countsAtGoaway: Map<number, number> | undefined;
  /** Bytes received from the server. */
  bytesIn = 0;
  isClosed = false;
  /** ms after open when the socket closed. */
  closedAt = -1;
  readonly closed: Promise<void>;
  private waiters: { pred: (f: Frame) => boolean; resolve: (f: Frame | undefined) => void }[] = [];
  private readonly t0 = performance.now();
  private readonly reader = new FrameReader(this.t0);
  /** Header blocks decoded so far, per stream, in arrival order (the server's HPACK context is per connection). */
  private readonly dec = { hpack: new HpackDecoder(), at: 0, blocks: new Map<number, [string, string][][]>(), pending: undefined as { id: number; parts: Buffer[] } | undefined };

  private constructor(readonly socket: Socket, private readonly o: OpenOptions) {
    let done!: () => void;
    this.closed = new Promise((r) => (done = r));
    socket.on('data', (c: Buffer) => this.onData(c));
    socket.on('error', () => {});
    socket.on('close', () => {
      this.isClosed = true;
      this.closedAt = performance.now() - this.t0;
      for (const w of this.waiters.splice(0)) w.resolve(undefined);
      done();
    });
  }

  /** Connect (TCP, or TLS with ALPN h2). Resolves once connected (TLS: handshake done, ALPN checked). */
  static open(o: OpenOptions): Promise<H2Conn> {
    return new Promise((resolve, reject) => {
      const host = o.host ?? '127.0.0.1';
      const s = o.tls
        ? tlsConnect({ host, port: o.port, ALPNProtocols: ['h2'], servername: o.tls.servername ?? 'localhost', rejectUnauthorized: !!o.tls.ca, ca: o.tls.ca })
        : netConnect({ host, port: o.port });
      s.once('error', reject);
      s.once(o.tls ? 'secureConnect' : 'connect', () => {
        s.off('error', reject);
        if (o.tls && (s as import('node:tls').TLSSocket).alpnProtocol !== 'h2') { s.destroy(); reject(new Error(`ALPN: server chose ${(s as import('node:tls').TLSSocket).alpnProtocol}`)); return; }
        s.setNoDelay(true);
        resolve(new H2Conn(s, o));
      });
    });
  }

  /** Connect over h2c (prior knowledge) and send the client preface and an empty SETTINGS. */
  static async h2c(port: number, host?: string): Promise<H2Conn> {
    const c = await H2Conn.open({ port, host });
    c.write(PREFACE, settings([]));
    return c;
  }

  /** ms since open. */
  now(): number { return performance.now() - this.t0; }

  /**
   * The header blocks the server sent on stream `id` (1xx heads, the final head, trailers), decoded
   * in the connection's arrival order. Frames dropped by `keep` are not decoded: do not combine them.
   */
  headerBlocks(id: number): [string, string][][] {
    const d = this.dec;
    for (; d.at < this.frames.length; d.at++) {
      const f = this.frames[d.at];
      if (f.type !== FrameType.HEADERS && f.type !== FrameType.CONTINUATION) continue;
      let p = f.payload;
      if (f.type === FrameType.HEADERS) {
        let off = 0, pad = 0;
        if (f.flags & Flag.PADDED) { pad = p[0]; off = 1; }
        if (f.flags & Flag.PRIORITY) off += 5;
        p = p.subarray(off, p.length - pad);
        d.pending = { id: f.streamId, parts: [p] };
      } else d.pending?.parts.push(p);
      if (f.flags & Flag.END_HEADERS && d.pending) {
        const list = d.blocks.get(d.pending.id) ?? [];
        list.push(d.hpack.decode(Buffer.concat(d.pending.parts)));
        d.blocks.set(d.pending.id, list);
        d.pending = undefined;
      }
    }
    return d.blocks.get(id) ?? [];
  }

  /**
   * How stream `id` was answered: the final response's status, its RST_STREAM error code, or a GOAWAY
   * (`{}` when the connection closed first); throws when nothing came within `ms`.
   */
  async answer(id: number, ms = 5000): Promise<{ status?: number; rst?: number; goaway?: boolean }> {
    const final = (f: Frame) => f.streamId === id && (f.type === FrameType.HEADERS || f.type === FrameType.CONTINUATION)
      && !!(f.flags & Flag.END_HEADERS) && this.headerBlocks(id).some(isFinalHead);
    const f = await this.waitFor((x) => (x.streamId === id && x.type === FrameType.RST_STREAM) || x.type === FrameType.GOAWAY || final(x), ms);
    if (f === undefined) {
      if (this.isClosed) return {};
      throw new Error(`stream ${id}: no answer in ${ms} ms; got ${JSON.stringify(this.frames.map((x) => [x.type, x.flags, x.streamId]))}`);
    }
    if (f.type === FrameType.GOAWAY) return { goaway: true };
    if (f.type === FrameType.RST_STREAM) return { rst: errorCodeOf(f) };
    return { status: statusOfHead(this.headerBlocks(id).find(isFinalHead)!) };
  }

  /** Write buffers; returns false when the socket's buffer is full (see `drain`). No-op once closed. */
  write(...bufs: Buffer[]): boolean {
    if (this.isClosed || this.socket.destroyed) return false;
    return this.socket.write(bufs.length === 1 ? bufs[0] : Buffer.concat(bufs));
  }

  /** Resolves when the socket can take more (or it closed). */
  drain(): Promise<void> {
    if (this.isClosed || !this.socket.writableNeedDrain) return Promise.resolve();
    return new Promise((r) => { const f = () => { this.socket.off('drain', f); this.socket.off('close', f); r(); }; this.socket.on('drain', f); this.socket.on('close', f); });
  }

  /**
   * The first frame (already received or to come) matching pred, or undefined if the connection
   * closes first or `ms` passes.
   */
  waitFor(pred: (f: Frame) => boolean, ms: number): Promise<Frame | undefined> {
    const have = this.frames.find(pred);
    if (have) return Promise.resolve(have);
    if (this.isClosed) return Promise.resolve(undefined);
    return new Promise((resolve) => {
      const w = { pred, resolve: (f: Frame | undefined) => { clearTimeout(t); resolve(f); } };
      const t = setTimeout(() => { this.waiters.splice(this.waiters.indexOf(w), 1); resolve(undefined); }, ms);
      this.waiters.push(w);
    });
  }

  /** Resolves true when the server closed the connection within ms. */
  async waitClosed(ms: number): Promise<boolean> {
    if (this.isClosed) return true;
    let t!: NodeJS.Timeout;
    const r = await Promise.race([this.closed.then(() => true), new Promise<boolean>((res) => (t = setTimeout(() => res(false), ms)))]);
    clearTimeout(t);
    return r;
  }

  /** The GOAWAY received, if any. */
  goaway(): { lastStreamId: number; code: number; debug: string } | undefined {
    const f = this.frames.find((x) => x.type === FrameType.GOAWAY);
    return f && { lastStreamId: f.payload.readUInt32BE(0) & 0x7fffffff, code: f.payload.readUInt32BE(4), debug: f.payload.subarray(8).toString() };
  }

  count(type: number): number { return this.counts.get(type) ?? 0; }

  /** Frames of `type` received before the first GOAWAY (all of them when none came). */
  countBeforeGoaway(type: number): number { return (this.countsAtGoaway ?? this.counts).get(type) ?? 0; }

  destroy(): void { this.socket.destroy(); }

  private onData(c: Buffer): void {
    this.bytesIn += c.length;
    for (const f of this.reader.push(c)) {
      if (f.type === FrameType.GOAWAY && !this.countsAtGoaway) this.countsAtGoaway = new Map(this.counts);
      this.counts.set(f.type, (this.counts.get(f.type) ?? 0) + 1);
      // GOAWAY is always kept (goaway() finds it), whatever `keep` says.
      this.frames.push(f);
      if (this.o.keep !== undefined && this.frames.length > this.o.keep) {
        const i = this.frames.findIndex((x) => x.type !== FrameType.GOAWAY);
        if (i >= 0) this.frames.splice(i, 1);
      }
      if (f.type === FrameType.SETTINGS && !(f.flags & Flag.ACK) && this.o.ackSettings !== false) this.write(settingsAck());
      for (let i = 0; i < this.waiters.length; i++) {
        const w = this.waiters[i];
        if (w.pred(f)) { this.waiters.splice(i--, 1); w.resolve(f); }
      }
    }
  }
}

/** `:status` of a decoded header block. */
export const statusOfHead = (b: readonly (readonly [string, string])[]): number => Number(b.find(([k]) => k === ':status')?.[1]);
/** A final (non-1xx) response head. */
export const isFinalHead = (b: readonly (readonly [string, string])[]): boolean => statusOfHead(b) >= 200;
