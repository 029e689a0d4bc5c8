import { connect, createServer, type Server, type Socket } from 'node:net';
import type { AddressInfo } from 'node:net';

/**
 * Raw-socket helpers for the edge tests of connection handling (pipelining, Upgrade tunnels, body
 * timeouts): a client that keeps every byte it got and parses the responses in it, a condition
 * poller, and a TCP backend that records the raw bytes of every connection.
 */

export interface RawResponse { status: number; head: string; headers: Record<string, string>; body: string }

/**
 * Parse as many complete HTTP/1.1 responses as `buf` holds (Content-Length, chunked, or no body
 * for 1xx/204/304). `rest` is what follows the last complete one.
 */
export function parseResponses(buf: Buffer, headRequests = 0): { responses: RawResponse[]; rest: Buffer } {
  const responses: RawResponse[] = [];
  let off = 0;
  for (;;) {
    const end = buf.indexOf('\r\n\r\n', off);
    if (end < 0) break;
    const head = buf.subarray(off, end).toString('latin1');
    const lines = head.split('\r\n');
    const status = Number(lines[0].split(' ')[1]);
    const headers: Record<string, string> = {};
    for (const l of lines.slice(1)) {
      const i = l.indexOf(':');
      const k = l.slice(0, i).toLowerCase();
      const v = l.slice(i + 1).trim();
      headers[k] = k in headers ? `${headers[k]}, ${v}` : v;
    }
    let p = end + 4;
    let body = '';
    if (status >= 200 && status !== 204 && status !== 304 && responses.length >= headRequests) {
      if (headers['content-length'] !== undefined) {
        const n = Number(headers['content-length']);
        if (buf.length < p + n) break;
        body = buf.subarray(p, p + n).toString('latin1');
        p += n;
      } else if (/chunked/i.test(headers['transfer-encoding'] ?? '')) {
        let complete = false;
        for (;;) {
          const eol = buf.indexOf('\r\n', p);
          if (eol < 0) break;
          const n = parseInt(buf.subarray(p, eol).toString('latin1'), 16);
          if (n === 0) {
            if (buf.length < eol + 4) break;
            p = eol + 4;
            complete = true;
            break;
          }
          if (buf.length < eol + 2 + n + 2) break;
          body += buf.subarray(eol + 2, eol + 2 + n).toString('latin1');
          p = eol + 2 + n + 2;
        }
        if (!complete) break;
      }
    }
    responses.push({ status, head, headers, body });
    off = p;
  }
  return { responses, rest: buf.subarray(off) };
}

/** Poll `cond` every 10 ms until it holds; fail after `ms` with `what`. */
export async function waitUntil(cond: () => boolean, ms: number, what: string): Promise<void> {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** A raw client connection that keeps everything it received. */
export class RawClient {
  readonly sock: Socket;
  data = Buffer.alloc(0);
  closed = false;
  private readonly ready: Promise<void>;

  constructor(port: number) {
    this.sock = connect(port, '127.0.0.1');
    this.sock.on('data', (d: Buffer) => { this.data = Buffer.concat([this.data, d]); });
    this.sock.on('error', () => {});
    this.sock.on('close', () => { this.closed = true; });
    this.ready = new Promise((ok) => this.sock.once('connect', () => ok()));
  }

  async write(b: string | Buffer): Promise<void> {
    await this.ready;
    await new Promise<void>((ok) => this.sock.write(b, () => ok()));
  }

  responses(): RawResponse[] { return parseResponses(this.data).responses; }

  /** Wait until `n` complete responses arrived (or fail after `ms`). */
  async waitResponses(n: number, ms = 15_000): Promise<RawResponse[]> {
    await waitUntil(() => this.responses().length >= n || this.closed, ms, `${n} responses`);
    // A close may race the last bytes: give the parser what was read.
    return this.responses();
  }

  async waitClosed(ms = 15_000): Promise<void> { await waitUntil(() => this.closed, ms, 'the connection to close'); }

  text(): string { return this.data.toString('latin1'); }

  destroy(): void { this.sock.destroy(); }
}

/** A TCP backend that records the raw bytes of each connection; `onConn` may answer. */
export interface RawBackend { port: number; address: string; conns: { sock: Socket; data: Buffer; closed: boolean }[]; server: Server; close(): Promise<void> }

export async function rawBackend(onConn: (c: RawBackend['conns'][number], chunk: Buffer) => void): Promise<RawBackend> {
  const conns: RawBackend['conns'] = [];
  const server = createServer({ allowHalfOpen: true }, (sock) => {
    const c = { sock, data: Buffer.alloc(0), closed: false };
    conns.push(c);
    sock.on('data', (d: Buffer) => { c.data = Buffer.concat([c.data, d]); onConn(c, d); });
    sock.on('end', () => sock.end());
    sock.on('error', () => {});
    sock.on('close', () => { c.closed = true; });
  });
  await new Promise<void>((ok) => server.listen(0, '127.0.0.1', () => ok()));
  const port = (server.address() as AddressInfo).port;
  return {
    port, address: `127.0.0.1:${port}`, conns, server,
    close: () => new Promise<void>((ok) => { for (const c of conns) c.sock.destroy(); server.close(() => ok()); }),
  };
}

/** A real App in-process whose JSON log lines (access log included) are kept in `lines`. */
export async function startAppLogged(yaml: string, front?: import('../helpers/app.js').Front): Promise<{ app: import('../../src/app.js').App; port: () => number; lines: Record<string, unknown>[]; access: () => Record<string, unknown>[]; stop(): Promise<void> }> {
  const { Writable } = await import('node:stream');
  const { createLogger } = await import('../../src/log.js');
  const { parseConfig } = await import('../../src/config/load.js');
  const { App } = await import('../../src/app.js');
  await import('../../src/modules.js');
  const lines: Record<string, unknown>[] = [];
  const sink = new Writable({ write(c, _e, cb) { for (const l of c.toString().split('\n')) if (l) lines.push(JSON.parse(l)); cb(); } });
  const { withFront } = await import('../helpers/app.js');
  const cfg = parseConfig(front === undefined ? yaml : withFront(yaml, front));
  const app = new App(cfg, createLogger('info', sink), { stateDir: null });
  await app.start();
  return {
    app, lines,
    port: () => app.proxy.address(cfg.listen[0].name)!.port,
    access: () => lines.filter((j) => j.mod === 'access'),
    stop: () => app.stop(200),
  };
}
