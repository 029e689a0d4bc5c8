import { connect, createServer, type AddressInfo, type Server, type Socket } from 'node:net';

/**
 * Real TCP servers on 127.0.0.1:0 for mode tcp tests: each greets with "220 <name>\r\n" (as an
 * SMTP server does), records the exact bytes it received per connection, and echoes each line
 * in upper case. `mode: 'silent'` greets nobody and answers nothing.
 */
export interface TcpBackend {
  name: string;
  port: number;
  address: string;
  /** Bytes received, one entry per connection, in accept order. */
  received: Buffer[];
  sockets: Socket[];
  server: Server;
  close(): Promise<void>;
}

export async function tcpBackend(name: string, mode: 'greet' | 'silent' | 'echo' = 'greet'): Promise<TcpBackend> {
  const received: Buffer[] = [];
  const sockets: Socket[] = [];
  const server = createServer({ allowHalfOpen: true }, (sock) => {
    const i = received.push(Buffer.alloc(0)) - 1;
    sockets.push(sock);
    sock.on('error', () => {});
    if (mode === 'greet') sock.write(`220 ${name}\r\n`);
    sock.on('data', (d: Buffer) => {
      received[i] = Buffer.concat([received[i], d]);
      if (mode === 'greet') sock.write(d.toString('latin1').toUpperCase());
      else if (mode === 'echo') sock.write(d);
    });
    sock.on('end', () => sock.end());
  });
  await new Promise<void>((ok) => server.listen(0, '127.0.0.1', () => ok()));
  const port = (server.address() as AddressInfo).port;
  return {
    name, port, address: `127.0.0.1:${port}`, received, sockets, server,
    close: () => new Promise<void>((ok) => { for (const s of sockets) s.destroy(); server.close(() => ok()); }),
  };
}

/** A client connection that collects what it receives and knows when the peer closed. */
export class TcpClient {
  readonly sock: Socket;
  data = Buffer.alloc(0);
  ended = false;
  closed = false;
  private waiters: (() => void)[] = [];

  constructor(port: number, host = '127.0.0.1') {
    this.sock = connect({ port, host, allowHalfOpen: true });
    this.sock.on('error', () => {});
    this.sock.on('data', (d: Buffer) => { this.data = Buffer.concat([this.data, d]); this.poke(); });
    this.sock.on('end', () => { this.ended = true; this.poke(); });
    this.sock.on('close', () => { this.closed = true; this.poke(); });
  }

  get text(): string { return this.data.toString('latin1'); }

  private poke(): void { for (const w of this.waiters.splice(0)) w(); }

  /** Resolves when `cond` holds, re-checked on every event; rejects after `ms` with what was seen. */
  until(cond: () => boolean, ms = 5000, what = 'condition'): Promise<void> {
    return new Promise((ok, fail) => {
      const t = setTimeout(() => fail(new Error(`timeout waiting for ${what}; got ${JSON.stringify(this.text.slice(0, 300))}, ended=${this.ended} closed=${this.closed}`)), ms);
      const check = () => { if (cond()) { clearTimeout(t); ok(); } else this.waiters.push(check); };
      check();
    });
  }

  write(s: string | Buffer): void { this.sock.write(s); }
  destroy(): void { this.sock.destroy(); }
}

/** Wait for `cond` (polled every 10 ms) for at most `ms`. */
export async function waitFor(cond: () => boolean, ms = 5000, what = 'condition'): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timeout waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** A port on 127.0.0.1 that nobody listens on (bound, then closed). */
export async function closedPort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((ok) => s.listen(0, '127.0.0.1', () => ok()));
  const port = (s.address() as AddressInfo).port;
  await new Promise<void>((ok) => s.close(() => ok()));
  return port;
}
