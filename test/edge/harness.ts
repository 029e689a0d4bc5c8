import { spawn, type ChildProcess } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { connect, createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { join } from 'node:path';
import { ensurePackages } from '../helpers/sys.js';
import { freePort } from '../daemon/daemon.js';
import { parseRequest, type StrictRequest } from './strict.js';

/**
 * The pieces the edge tests share: a raw recording backend that reads what a proxy forwarded with
 * the strict parser (strict.ts), a client that sends raw bytes and reads responses, HAProxy from
 * Debian as the reference, and the admin API probe. See differential.test.ts and fuzz.test.ts.
 */

/** Printable form of raw bytes: CR, LF, tab, NUL and non-ASCII escaped, so a failing input can be replayed. */
export function esc(b: Buffer | string, max = 600): string {
  const s = typeof b === 'string' ? b : b.toString('latin1');
  let out = '';
  for (let i = 0; i < s.length && out.length < max; i++) {
    const c = s.charCodeAt(i);
    if (c === 13) out += '\\r';
    else if (c === 10) out += '\\n';
    else if (c === 9) out += '\\t';
    else if (c === 92) out += '\\\\';
    else if (c === 39) out += "\\'";
    else if (c < 32 || c >= 127) out += '\\x' + c.toString(16).padStart(2, '0');
    else out += s[i];
  }
  return s.length > 0 && out.length >= max ? out + `… (${s.length} bytes)` : out;
}

// ---- recording backend ------------------------------------------------------------------------

export type BackendEvent =
  | { kind: 'request'; conn: number; req: StrictRequest }
  | { kind: 'error'; conn: number; reason: string; bytes: string; xff: string | undefined };

/**
 * A node:net server that parses every connection's bytes with the strict parser and answers each
 * complete request with a fixed 200 whose body is the request-target as received (so a client can
 * tell its own response from anyone else's). A parse error is recorded and the connection closed.
 * CONNECT gets 405 (no tunnel); Upgrade requests get a plain 200 (never 101).
 */
export class RecordingBackend {
  readonly events: BackendEvent[] = [];
  /** Called for every parse error (the fuzz test attributes it to a client by X-Forwarded-For). */
  onError: ((e: Extract<BackendEvent, { kind: 'error' }>) => void) | undefined;
  port = 0;
  private server: Server | undefined;
  private nextConn = 0;
  private readonly sockets = new Set<Socket>();

  constructor(readonly name: string) {}

  get address(): string { return `127.0.0.1:${this.port}`; }

  async start(): Promise<this> {
    const server = createServer((s) => this.onConn(s));
    await new Promise<void>((ok) => server.listen(0, '127.0.0.1', () => ok()));
    this.port = (server.address() as AddressInfo).port;
    this.server = server;
    return this;
  }

  private onConn(s: Socket): void {
    const conn = ++this.nextConn;
    this.sockets.add(s);
    s.on('close', () => this.sockets.delete(s));
    s.on('error', () => {});
    let buf: Buffer = Buffer.alloc(0);
    s.on('data', (d: Buffer) => {
      buf = buf.length ? Buffer.concat([buf, d]) : d;
      let pos = 0;
      while (pos < buf.length) {
        const r = parseRequest(buf, pos);
        if (r.kind === 'incomplete') break;
        if (r.kind === 'error') {
          const rest = buf.subarray(pos).toString('latin1');
          const xff = /\r\nX-Forwarded-For: *([^\r\n]*)/i.exec(rest)?.[1].split(',').at(-1)!.trim();
          const e = { kind: 'error' as const, conn, reason: r.reason, bytes: esc(rest, 300), xff };
          this.events.push(e);
          this.onError?.(e);
          s.destroy();
          return;
        }
        const req = { ...r.req, body: Buffer.from(r.req.body) };
        this.events.push({ kind: 'request', conn, req });
        pos = r.end;
        const body = req.target;
        const status = req.method === 'CONNECT' ? '405 Method Not Allowed' : '200 OK';
        s.write(`HTTP/1.1 ${status}\r\nContent-Type: text/plain\r\nContent-Length: ${req.method === 'HEAD' ? 0 : body.length}\r\nX-Backend: ${this.name}\r\n\r\n${req.method === 'HEAD' ? '' : body}`, 'latin1');
      }
      buf = buf.subarray(pos);
    });
  }

  async close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((ok) => (this.server ? this.server.close(() => ok()) : ok()));
  }
}

// ---- raw client -------------------------------------------------------------------------------

export interface Response { status: number; body: string; headers: [string, string][] }

/**
 * Incremental, lenient response reader (the client side only needs to find response boundaries):
 * Content-Length, chunked, or until close; 1xx interim responses are skipped, 101 ends parsing.
 * `headFirst`: the first response answers a HEAD (no body).
 */
export class ResponseReader {
  readonly responses: Response[] = [];
  tunnel = false;
  private buf: Buffer = Buffer.alloc(0);
  private headPending: boolean;
  constructor(headFirst = false) { this.headPending = headFirst; }

  push(d: Buffer): void {
    this.buf = this.buf.length ? Buffer.concat([this.buf, d]) : d;
    while (!this.tunnel && this.step()) { /* parse as many as are complete */ }
  }

  /** At close: a response delimited by the close completes now. */
  end(): void {
    const b = this.buf;
    const he = b.indexOf('\r\n\r\n');
    if (he < 0) return;
    const head = this.head(b.subarray(0, he));
    if (!head) return;
    if (!head.headers.some(([n]) => n === 'content-length' || n === 'transfer-encoding')) {
      this.responses.push({ status: head.status, headers: head.headers, body: b.toString('latin1', he + 4) });
      this.buf = Buffer.alloc(0);
    }
  }

  private head(h: Buffer): { status: number; headers: [string, string][] } | null {
    const lines = h.toString('latin1').split('\r\n');
    const m = /^HTTP\/1\.[01] (\d{3})/.exec(lines[0]);
    if (!m) return null;
    const headers = lines.slice(1).map((l): [string, string] => { const i = l.indexOf(':'); return [l.slice(0, i).trim().toLowerCase(), l.slice(i + 1).trim()]; });
    return { status: Number(m[1]), headers };
  }

  private step(): boolean {
    const b = this.buf;
    const he = b.indexOf('\r\n\r\n');
    if (he < 0) return false;
    const head = this.head(b.subarray(0, he));
    if (!head) { this.tunnel = true; return false; }
    let p = he + 4;
    if (head.status === 101) { this.responses.push({ ...head, body: '' }); this.tunnel = true; this.buf = b.subarray(p); return false; }
    if (head.status < 200) { this.buf = b.subarray(p); return true; }
    const noBody = this.headPending || head.status === 204 || head.status === 304;
    this.headPending = false;
    let body = '';
    const cl = head.headers.find(([n]) => n === 'content-length');
    const te = head.headers.find(([n]) => n === 'transfer-encoding');
    if (noBody) { /* nothing */ } else if (te && /chunked/i.test(te[1])) {
      const parts: Buffer[] = [];
      for (;;) {
        const le = b.indexOf('\r\n', p);
        if (le < 0) { this.headPending = noBody; return false; }
        const size = parseInt(b.toString('latin1', p, le), 16);
        if (size === 0) {
          const te2 = b.indexOf('\r\n\r\n', le);
          if (te2 < 0 && !(b[le + 2] === 13 && b[le + 3] === 10)) return false;
          p = b[le + 2] === 13 && b[le + 3] === 10 ? le + 4 : te2 + 4;
          break;
        }
        if (b.length < le + 2 + size + 2) return false;
        parts.push(b.subarray(le + 2, le + 2 + size));
        p = le + 2 + size + 2;
      }
      body = Buffer.concat(parts).toString('latin1');
    } else if (cl) {
      const n = Number(cl[1]);
      if (b.length < p + n) return false;
      body = b.toString('latin1', p, p + n);
      p += n;
    } else return false; // delimited by close: end() completes it
    this.responses.push({ status: head.status, headers: head.headers, body });
    this.buf = b.subarray(p);
    return true;
  }
}

/** A raw client connection with conditions to wait on (each wait is bounded). */
export class RawConn {
  readonly sock: Socket;
  readonly reader: ResponseReader;
  closed = false;
  private waiters: (() => void)[] = [];

  /** `from`: local address to connect from (any 127/8 address), so a backend can tell clients apart by X-Forwarded-For. */
  constructor(port: number, headFirst = false, from?: string) {
    this.reader = new ResponseReader(headFirst);
    this.sock = connect({ port, host: '127.0.0.1', localAddress: from });
    this.sock.on('data', (d: Buffer) => { this.reader.push(d); this.wake(); });
    this.sock.on('error', () => {});
    this.sock.on('close', () => { this.reader.end(); this.closed = true; this.wake(); });
  }

  private wake(): void { for (const w of this.waiters.splice(0)) w(); }

  write(b: Buffer | string): void { if (!this.closed && this.sock.writable) this.sock.write(b); }

  /** Resolves true when pred() holds, false when `ms` passed or the connection closed without it. */
  until(pred: () => boolean, ms: number): Promise<boolean> {
    return new Promise((ok) => {
      const end = Date.now() + ms;
      const check = (): void => {
        if (pred()) { clearTimeout(t); ok(true); return; }
        if (this.closed || Date.now() >= end) { clearTimeout(t); ok(pred()); return; }
        this.waiters.push(check);
      };
      const t = setTimeout(() => { this.waiters = this.waiters.filter((w) => w !== check); ok(pred()); }, ms);
      check();
    });
  }

  destroy(): void { this.sock.destroy(); }
}

/** One GET on a fresh connection; resolves with the response body or null (error, timeout). */
export async function freshGet(port: number, path: string, ms = 5000, from?: string): Promise<Response | null> {
  const c = new RawConn(port, false, from);
  c.write(`GET ${path} HTTP/1.1\r\nHost: other.test\r\nConnection: close\r\n\r\n`);
  await c.until(() => c.reader.responses.length > 0, ms);
  c.destroy();
  return c.reader.responses[0] ?? null;
}

// ---- HAProxy ----------------------------------------------------------------------------------

export interface Haproxy { port: number; child: ChildProcess; stop(): Promise<void> }

/** Waits until something accepts on 127.0.0.1:port (bounded). */
export async function waitListening(port: number, ms: number, child?: ChildProcess): Promise<void> {
  const end = Date.now() + ms;
  for (;;) {
    const ok = await new Promise<boolean>((res) => {
      const s = connect(port, '127.0.0.1');
      s.once('connect', () => { s.destroy(); res(true); });
      s.once('error', () => res(false));
    });
    if (ok) return;
    if (child && child.exitCode !== null) throw new Error(`process exited with ${child.exitCode} before listening on ${port}`);
    if (Date.now() > end) throw new Error(`nothing listening on ${port} after ${ms} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/**
 * HAProxy from Debian's package in front of one backend, with the limits pairlb has by default so
 * that what differs is parsing, not configuration: a 32 KiB buffer (pairlb's 16 KiB head limit is
 * then the stricter one), `maxhdr` as given, `timeout http-request` as pairlb's test config.
 */
export async function startHaproxy(dir: string, backendPort: number, opts: { maxhdr: number; httpRequestMs: number }): Promise<Haproxy> {
  ensurePackages(['haproxy']);
  const port = await freePort();
  const cfg = join(dir, 'haproxy.cfg');
  writeFileSync(cfg, `global
  maxconn 500
  tune.bufsize 32768
  tune.http.maxhdr ${opts.maxhdr}

defaults
  mode http
  timeout connect 2s
  timeout client 10s
  timeout server 10s
  timeout http-request ${opts.httpRequestMs}ms
  timeout http-keep-alive 10s
  option forwardfor

listen diff
  bind 127.0.0.1:${port}
  server b 127.0.0.1:${backendPort}
`);
  let stderr = '';
  const child = spawn('/usr/sbin/haproxy', ['-db', '-f', cfg], { stdio: ['ignore', 'ignore', 'pipe'] });
  child.stderr!.on('data', (d) => { stderr += d; });
  const exited = new Promise<void>((ok) => child.once('exit', () => ok()));
  await waitListening(port, 10_000, child).catch((e) => { throw new Error(`${(e as Error).message}; haproxy stderr: ${stderr}`); });
  return {
    port, child,
    stop: async () => { if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM'); await exited; },
  };
}

// ---- pairlb admin API -------------------------------------------------------------------------

/** Every backend of the running pairlb, from the admin API on its unix socket: name → state. */
export function backendStates(socketPath: string): Promise<Record<string, string>> {
  return new Promise((ok, fail) => {
    const r = request({ socketPath, path: '/v1/backends', method: 'GET', timeout: 5000 }, (res) => {
      let s = '';
      res.on('data', (d) => { s += d; });
      res.on('end', () => {
        try {
          const j = JSON.parse(s) as { backends: { listen: string; name: string; state: string }[] };
          ok(Object.fromEntries(j.backends.map((b) => [`${b.listen}/${b.name}`, b.state])));
        } catch (e) { fail(new Error(`admin API answered ${res.statusCode}: ${s.slice(0, 200)} (${(e as Error).message})`)); }
      });
    });
    r.on('error', fail);
    r.on('timeout', () => r.destroy(new Error('admin API timeout')));
    r.end();
  });
}
