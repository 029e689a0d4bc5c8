import { connect, type Socket } from 'node:net';

/**
 * The few raw HTTP/2 frames a proxy test needs to send what node's own client refuses to
 * (connection-specific fields, a cookie split over several fields, a content-length its DATA
 * contradicts), over h2c with prior knowledge; and a frame reader that waits for a condition
 * (never a fixed sleep). HPACK: literals without indexing, no Huffman (RFC 7541 §6.2.2); only
 * the response's `:status` is decoded, and only when the server sends it indexed (static table).
 */
export const PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1');
export const T = { DATA: 0, HEADERS: 1, RST_STREAM: 3, SETTINGS: 4, PING: 6, GOAWAY: 7, WINDOW_UPDATE: 8 } as const;

export function frame(type: number, flags: number, stream: number, payload: Buffer = Buffer.alloc(0)): Buffer {
  const h = Buffer.alloc(9);
  h.writeUIntBE(payload.length, 0, 3);
  h[3] = type; h[4] = flags; h.writeUInt32BE(stream, 5);
  return Buffer.concat([h, payload]);
}

/** RFC 7541 §5.1 integer with an n-bit prefix. */
function int(v: number, n: number, first: number): number[] {
  const max = (1 << n) - 1;
  if (v < max) return [first | v];
  const out = [first | max];
  v -= max;
  while (v >= 128) { out.push((v & 127) | 128); v >>= 7; }
  out.push(v);
  return out;
}
function str(s: string): Buffer { const b = Buffer.from(s, 'latin1'); return Buffer.concat([Buffer.from(int(b.length, 7, 0)), b]); }

/** A header block of literal fields without indexing, names as given (tests choose their case). */
export function block(fields: [string, string][]): Buffer {
  return Buffer.concat(fields.flatMap(([k, v]) => [Buffer.from([0]), str(k), str(v)]));
}

export const headers = (stream: number, fields: [string, string][], endStream: boolean): Buffer => frame(T.HEADERS, 0x4 | (endStream ? 1 : 0), stream, block(fields));
export const data = (stream: number, b: Buffer | string, endStream: boolean): Buffer => frame(T.DATA, endStream ? 1 : 0, stream, Buffer.from(b));

export interface Frame { type: number; flags: number; stream: number; payload: Buffer }

/** RFC 7541 Appendix A: the static table's :status entries. */
const STATUS_INDEX: Record<number, number> = { 8: 200, 9: 204, 10: 206, 11: 304, 12: 400, 13: 404, 14: 500 };

/** `:status` of a response HEADERS frame, when it is the block's first field and indexed or a literal with indexed name. */
export function statusOf(f: Frame): number | undefined {
  const b = f.payload;
  if (b.length === 0) return undefined;
  if (b[0] & 0x80) return STATUS_INDEX[b[0] & 0x7f];
  // Literal with an indexed name (:status is index 8–14): the value follows as a plain or Huffman string.
  const idx = b[0] & 0x40 ? b[0] & 0x3f : b[0] & 0x0f;
  if (idx < 8 || idx > 14 || (b[1] & 0x80) !== 0) return undefined;
  return Number(b.subarray(2, 2 + (b[1] & 0x7f)).toString('latin1'));
}

export class RawH2 {
  readonly frames: Frame[] = [];
  closed = false;
  private buf = Buffer.alloc(0);
  private waiters: (() => void)[] = [];
  private constructor(readonly sock: Socket) {
    sock.on('data', (d: Buffer) => {
      this.buf = Buffer.concat([this.buf, d]);
      while (this.buf.length >= 9) {
        const len = this.buf.readUIntBE(0, 3);
        if (this.buf.length < 9 + len) break;
        const f = { type: this.buf[3], flags: this.buf[4], stream: this.buf.readUInt32BE(5) & 0x7fffffff, payload: this.buf.subarray(9, 9 + len) };
        this.buf = this.buf.subarray(9 + len);
        this.frames.push(f);
        // SETTINGS from the server: acknowledge (RFC 9113 §6.5.3), or it may close the connection.
        if (f.type === T.SETTINGS && (f.flags & 1) === 0) sock.write(frame(T.SETTINGS, 1, 0));
      }
      this.wake();
    });
    sock.on('close', () => { this.closed = true; this.wake(); });
    sock.on('error', () => {});
  }
  private wake(): void { const w = this.waiters; this.waiters = []; for (const f of w) f(); }

  /** Connect (h2c prior knowledge), send the preface and an empty SETTINGS. */
  static async open(port: number): Promise<RawH2> {
    const sock = connect(port, '127.0.0.1');
    await new Promise<void>((ok, fail) => { sock.once('connect', ok); sock.once('error', fail); });
    const c = new RawH2(sock);
    sock.write(Buffer.concat([PREFACE, frame(T.SETTINGS, 0, 0)]));
    return c;
  }

  write(...b: Buffer[]): void { this.sock.write(Buffer.concat(b)); }

  /** The first frame matching `pred` (or null once the connection closed), within `ms`. */
  async waitFor(pred: (f: Frame) => boolean, ms = 5000): Promise<Frame | null> {
    const deadline = Date.now() + ms;
    for (;;) {
      const f = this.frames.find(pred);
      if (f) return f;
      if (this.closed) return null;
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`no matching frame in ${ms} ms; got ${JSON.stringify(this.frames.map((x) => [x.type, x.flags, x.stream]))}`);
      await new Promise<void>((ok) => { const t = setTimeout(ok, left); this.waiters.push(() => { clearTimeout(t); ok(); }); });
    }
  }

  /** The stream's answer: its response status (HEADERS), or its RST_STREAM error code. */
  async answer(stream: number, ms = 5000): Promise<{ status?: number; rst?: number; goaway?: boolean }> {
    const f = await this.waitFor((x) => (x.stream === stream && (x.type === T.HEADERS || x.type === T.RST_STREAM)) || x.type === T.GOAWAY, ms);
    if (f === null) return {};
    if (f.type === T.GOAWAY) return { goaway: true };
    if (f.type === T.RST_STREAM) return { rst: f.payload.readUInt32BE(0) };
    return { status: statusOf(f) };
  }

  destroy(): void { this.sock.destroy(); }
}
