import { connect, createServer, type AddressInfo, type Server, type Socket } from 'node:net';

/**
 * Raw HTTP/1.1 on both sides of the proxy, for edge tests that assert exact bytes: a recording
 * backend that parses strictly what it receives (one record per request, the exact bytes kept),
 * and a client that writes exact bytes and reads responses one at a time.
 */

export interface RawRequest {
  /** Backend connection number (1, 2…) the request arrived on. */
  conn: number;
  /** The exact bytes of the request (head and body), latin1. */
  raw: string;
  method: string;
  target: string;
  /** Header lines in order, names as sent. */
  headers: [string, string][];
  body: string;
}

/** What the backend answers to one request: raw bytes to write, and whether to close afterwards. */
export type Responder = (r: RawRequest, n: number) => { bytes: string; close?: boolean };

export interface RawBackend {
  name: string;
  port: number;
  address: string;
  requests: RawRequest[];
  /** Bytes received on a connection that did not parse as a request (must stay empty). */
  garbage: string[];
  /** Connections accepted (health checks included). */
  connections: number;
  close(): Promise<void>;
}

const okResponse = (name: string) => (_r: RawRequest, n: number) => {
  const body = `${name} ${n}`;
  return { bytes: `HTTP/1.1 200 OK\r\nContent-Length: ${body.length}\r\n\r\n${body}` };
};

/** Parse one request from the start of buf: [request, bytes used], null if incomplete, 'bad' if not HTTP/1.1 framing. */
function parseRequest(buf: string): [Omit<RawRequest, 'conn'>, number] | null | 'bad' {
  const end = buf.indexOf('\r\n\r\n');
  if (end < 0) return buf.length > 1 << 20 ? 'bad' : null;
  const lines = buf.slice(0, end).split('\r\n');
  const m = /^([A-Z]+) (\S+) HTTP\/1\.1$/.exec(lines[0]);
  if (!m) return 'bad';
  const headers: [string, string][] = [];
  let cl: number | undefined;
  let chunked = false;
  for (const l of lines.slice(1)) {
    const hm = /^([!#$%&'*+\-.^_`|~0-9A-Za-z]+):[ \t]*(.*?)[ \t]*$/.exec(l);
    if (!hm) return 'bad';
    headers.push([hm[1], hm[2]]);
    const k = hm[1].toLowerCase();
    if (k === 'content-length') { if (cl !== undefined || !/^\d+$/.test(hm[2])) return 'bad'; cl = Number(hm[2]); }
    if (k === 'transfer-encoding') { if (hm[2].toLowerCase() !== 'chunked') return 'bad'; chunked = true; }
  }
  if (chunked && cl !== undefined) return 'bad';
  let pos = end + 4;
  let body = '';
  if (chunked) {
    for (;;) {
      const eol = buf.indexOf('\r\n', pos);
      if (eol < 0) return null;
      const size = parseInt(buf.slice(pos, eol), 16);
      if (!/^[0-9a-fA-F]+$/.test(buf.slice(pos, eol))) return 'bad';
      if (buf.length < eol + 2 + size + 2) return null;
      if (size === 0) { if (buf.slice(eol + 2, eol + 4) !== '\r\n') return 'bad'; pos = eol + 4; break; }
      body += buf.slice(eol + 2, eol + 2 + size);
      pos = eol + 2 + size + 2;
    }
  } else if (cl !== undefined) {
    if (buf.length < pos + cl) return null;
    body = buf.slice(pos, pos + cl);
    pos += cl;
  }
  return [{ raw: buf.slice(0, pos), method: m[1], target: m[2], headers, body }, pos];
}

/**
 * A backend on 127.0.0.1:0 that records every request it receives (strict framing: anything that
 * is not a well-framed HTTP/1.1 request goes to `garbage` and the connection is closed) and
 * answers each with `respond` (default: 200 with body "<name> <n>", n counting from 1).
 */
export async function rawBackend(name: string, respond: Responder = okResponse(name)): Promise<RawBackend> {
  const requests: RawRequest[] = [];
  const garbage: string[] = [];
  const sockets = new Set<Socket>();
  let conns = 0;
  const b: RawBackend = { name, port: 0, address: '', requests, garbage, connections: 0, close: async () => {} };
  const server: Server = createServer((s) => {
    const conn = ++conns;
    b.connections = conns;
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
    s.on('error', () => {});
    let buf = '';
    s.on('data', (d) => {
      buf += d.toString('latin1');
      for (;;) {
        const p = parseRequest(buf);
        if (p === null) return;
        if (p === 'bad') { garbage.push(buf); buf = ''; s.destroy(); return; }
        buf = buf.slice(p[1]);
        const r = { conn, ...p[0] };
        requests.push(r);
        const out = respond(r, requests.length);
        s.write(out.bytes, 'latin1');
        if (out.close) { s.end(); return; }
      }
    });
  });
  await new Promise<void>((ok) => server.listen(0, '127.0.0.1', () => ok()));
  b.port = (server.address() as AddressInfo).port;
  b.address = `127.0.0.1:${b.port}`;
  b.close = () => new Promise<void>((ok) => { server.close(() => ok()); for (const s of sockets) s.destroy(); });
  return b;
}

export interface RawResponse {
  status: number;
  /** The final response's head, exact (status line and header lines, without the blank line). */
  head: string;
  /** Lowercased header names → values (joined with ", " when repeated). */
  headers: Record<string, string>;
  body: string;
  /** Heads of 1xx responses received before the final one. */
  informational: string[];
}

/** A client connection that writes exact bytes and reads responses one by one. */
export class RawClient {
  private buf = '';
  private waiter: (() => void) | null = null;
  closed = false;
  readonly sock: Socket;
  readonly ready: Promise<void>;

  /** @param from source address (another loopback address, 127.0.0.2…, is another client). */
  constructor(port: number, from?: string) {
    this.sock = connect({ port, host: '127.0.0.1', localAddress: from });
    this.ready = new Promise((ok) => this.sock.once('connect', () => ok()));
    this.sock.on('data', (d) => { this.buf += d.toString('latin1'); this.wake(); });
    this.sock.on('error', () => {});
    this.sock.on('close', () => { this.closed = true; this.wake(); });
  }

  private wake(): void { const w = this.waiter; this.waiter = null; if (w) w(); }

  private async more(deadline: number): Promise<void> {
    if (this.closed) throw new Error('closed');
    await new Promise<void>((ok, fail) => {
      const t = setTimeout(() => fail(new Error(`no response within the bound; got so far: ${JSON.stringify(this.buf.slice(0, 400))}`)), Math.max(1, deadline - Date.now()));
      this.waiter = () => { clearTimeout(t); ok(); };
    });
  }

  send(bytes: string): void { this.sock.write(bytes, 'latin1'); }

  /**
   * Read the next response (after any 1xx). Resolves null if the connection closes before a byte
   * of it arrives. Rejects after `ms` (a bound for a loaded machine, not a timing assertion).
   */
  async next(opts: { head?: boolean; ms?: number } = {}): Promise<RawResponse | null> {
    const deadline = Date.now() + (opts.ms ?? 10_000);
    const informational: string[] = [];
    for (;;) {
      let end: number;
      while ((end = this.buf.indexOf('\r\n\r\n')) < 0) {
        if (this.closed) { if (this.buf.length || informational.length) throw new Error(`truncated response: ${JSON.stringify(this.buf)}`); return null; }
        await this.more(deadline);
      }
      const head = this.buf.slice(0, end);
      const status = Number(/^HTTP\/1\.[01] (\d{3})/.exec(head)?.[1] ?? NaN);
      if (!Number.isFinite(status)) throw new Error(`not an HTTP response: ${JSON.stringify(head)}`);
      this.buf = this.buf.slice(end + 4);
      if (status < 200 && status !== 101) { informational.push(head); continue; }
      const headers: Record<string, string> = {};
      for (const l of head.split('\r\n').slice(1)) {
        const i = l.indexOf(':');
        const k = l.slice(0, i).toLowerCase();
        const v = l.slice(i + 1).trim();
        headers[k] = headers[k] === undefined ? v : headers[k] + ', ' + v;
      }
      let body = '';
      if (opts.head || status === 204 || status === 304 || status === 101) { /* no body */ }
      else if (headers['transfer-encoding']?.toLowerCase() === 'chunked') {
        for (;;) {
          let eol: number;
          while ((eol = this.buf.indexOf('\r\n')) < 0) await this.more(deadline);
          const size = parseInt(this.buf.slice(0, eol), 16);
          while (this.buf.length < eol + 2 + size + 2) await this.more(deadline);
          body += this.buf.slice(eol + 2, eol + 2 + size);
          this.buf = this.buf.slice(eol + 2 + size + 2);
          if (size === 0) break;
        }
      } else if (headers['content-length'] !== undefined) {
        const n = Number(headers['content-length']);
        while (this.buf.length < n) await this.more(deadline);
        body = this.buf.slice(0, n);
        this.buf = this.buf.slice(n);
      } else {
        while (!this.closed) await this.more(deadline);
        body = this.buf;
        this.buf = '';
      }
      return { status, head, headers, body, informational };
    }
  }

  /** Resolves once the proxy closed the connection; rejects after ms. Returns bytes left unread. */
  async waitClosed(ms = 10_000): Promise<string> {
    const deadline = Date.now() + ms;
    while (!this.closed) await this.more(deadline).catch((e) => { if (!this.closed) throw e; });
    return this.buf;
  }

  /** Bytes received and not yet read as a response. */
  pending(): string { return this.buf; }

  destroy(): void { this.sock.destroy(); }
}

/** Send one request on a fresh connection and read its response. */
export async function rawOnce(port: number, bytes: string, opts: { head?: boolean; ms?: number } = {}): Promise<RawResponse | null> {
  const c = new RawClient(port);
  try {
    c.send(bytes);
    return await c.next(opts);
  } finally { c.destroy(); }
}
