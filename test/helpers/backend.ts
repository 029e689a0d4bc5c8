import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

/**
 * A real HTTP backend on 127.0.0.1:0 that records what it received and answers with its name.
 * `handler` may override the answer.
 */
export interface Seen { method: string; url: string; headers: IncomingMessage['headers']; raw: string[]; body: string; complete: boolean }

export interface TestBackend {
  name: string;
  port: number;
  address: string;
  seen: Seen[];
  server: Server;
  close(): Promise<void>;
}

export async function startBackend(name: string, handler?: (req: IncomingMessage, res: ServerResponse, body: string) => void | boolean): Promise<TestBackend> {
  const seen: Seen[] = [];
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    const rec: Seen = { method: req.method!, url: req.url!, headers: req.headers, raw: req.rawHeaders, body: '', complete: false };
    seen.push(rec);
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      rec.body = Buffer.concat(chunks).toString();
      rec.complete = true;
      if (handler && handler(req, res, rec.body) !== false) return;
      const body = name;
      res.writeHead(200, { 'content-type': 'text/plain', 'content-length': body.length, 'x-backend': name });
      res.end(body);
    });
  });
  await new Promise<void>((ok) => server.listen(0, '127.0.0.1', () => ok()));
  const port = (server.address() as AddressInfo).port;
  return {
    name, port, address: `127.0.0.1:${port}`, seen, server,
    close: () => new Promise<void>((ok) => { server.close(() => ok()); server.closeAllConnections(); }),
  };
}
