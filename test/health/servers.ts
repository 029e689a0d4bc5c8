import { createServer as createHttpServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { createServer as createNetServer, connect, type Server, type Socket } from 'node:net';
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';

/** Real servers on 127.0.0.1 port 0 that misbehave in the ways a health check must classify. */

export interface TestServer {
  port: number;
  /** Requests seen (method, url, host header, arrival ms). */
  seen: { method: string; url: string; host: string; at: number }[];
  close(): Promise<void>;
}

async function listen(srv: Server, port = 0): Promise<number> {
  srv.listen(port, '127.0.0.1');
  await once(srv, 'listening');
  return (srv.address() as { port: number }).port;
}

function closer(srv: Server, sockets: Set<Socket>): () => Promise<void> {
  return async () => {
    for (const s of sockets) s.destroy();
    if (srv.listening) await new Promise<void>((ok) => srv.close(() => ok()));
  };
}

/** An HTTP server; `status` may be changed while it runs. */
export async function httpServer(opts: { status?: number; port?: number } = {}): Promise<TestServer & { status: number }> {
  const sockets = new Set<Socket>();
  const self = {
    port: 0, status: opts.status ?? 200, seen: [] as TestServer['seen'],
    close: async () => {},
  };
  const srv = createHttpServer((req: IncomingMessage, res: ServerResponse) => {
    self.seen.push({ method: req.method!, url: req.url!, host: req.headers.host ?? '', at: Date.now() });
    res.writeHead(self.status, { 'content-type': 'text/plain' });
    res.end('check\n');
  });
  srv.on('connection', (s) => { sockets.add(s); s.on('close', () => sockets.delete(s)); });
  self.port = await listen(srv, opts.port);
  self.close = async () => {
    srv.closeAllConnections();
    await closer(srv, sockets)();
  };
  return self;
}

/** Accepts connections and reads, never answers. */
export async function hangServer(): Promise<TestServer & { accepted: number; open(): number }> {
  const sockets = new Set<Socket>();
  const self = { port: 0, seen: [] as TestServer['seen'], accepted: 0, open: () => sockets.size, close: async () => {} };
  const srv = createNetServer((s) => { self.accepted++; sockets.add(s); s.on('close', () => sockets.delete(s)); s.on('error', () => {}); s.resume(); });
  self.port = await listen(srv);
  self.close = closer(srv, sockets);
  return self;
}

/** Resets every connection (RST) as soon as the request bytes arrive. */
export async function resetServer(): Promise<TestServer & { resets: number }> {
  const sockets = new Set<Socket>();
  const self = { port: 0, seen: [] as TestServer['seen'], resets: 0, close: async () => {} };
  const srv = createNetServer((s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
    s.on('error', () => {});
    s.once('data', () => { self.resets++; s.resetAndDestroy(); });
  });
  self.port = await listen(srv);
  self.close = closer(srv, sockets);
  return self;
}

/** Answers every connection with bytes that are not HTTP. */
export async function garbageServer(): Promise<TestServer> {
  const sockets = new Set<Socket>();
  const self = { port: 0, seen: [] as TestServer['seen'], close: async () => {} };
  const srv = createNetServer((s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
    s.on('error', () => {});
    s.once('data', () => s.end('SSH-2.0-OpenSSH_9.2\r\n'));
  });
  self.port = await listen(srv);
  self.close = closer(srv, sockets);
  return self;
}

/** A port that refuses connections: bind, note the port, close. */
export async function closedPort(): Promise<number> {
  const srv = createNetServer();
  const port = await listen(srv);
  await new Promise<void>((ok) => srv.close(() => ok()));
  return port;
}

/**
 * A port where the TCP handshake itself never completes: a child process listens with a backlog
 * of 1 and is stopped (SIGSTOP), its accept queue is filled, so the kernel drops further SYNs and
 * a connect hangs. Only loopback is involved.
 */
export async function blackholePort(): Promise<{ port: number; close(): Promise<void> }> {
  const child: ChildProcess = spawn(process.execPath, ['-e',
    "const s=require('net').createServer();s.listen(0,'127.0.0.1',1,()=>{process.stdout.write(s.address().port+'\\n')});"],
  { stdio: ['ignore', 'pipe', 'inherit'] });
  const port = await new Promise<number>((ok, fail) => {
    child.stdout!.once('data', (d: Buffer) => ok(Number(d.toString().trim())));
    child.once('exit', () => fail(new Error('blackhole child exited')));
  });
  child.kill('SIGSTOP');
  const fillers: Socket[] = [];
  // Linux queues backlog+1 completed handshakes; a few more make sure the queue is full.
  for (let i = 0; i < 4; i++) {
    const s = connect({ host: '127.0.0.1', port });
    s.on('error', () => {});
    fillers.push(s);
  }
  await new Promise((r) => setTimeout(r, 200));
  return {
    port,
    close: async () => {
      for (const s of fillers) s.destroy();
      const exited = once(child, 'exit');
      child.kill('SIGKILL');
      await exited;
    },
  };
}
