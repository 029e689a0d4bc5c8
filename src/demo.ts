import { createServer, type Server } from 'node:http';
import type { Config } from './config/schema.js';
import { parseHostPort } from './config/types.js';
import type { Logger } from './log.js';

/**
 * Demo backends for `npm start`: one tiny HTTP server per backend address of the first listen
 * section, each answering with its own name, so two curls show round robin.
 */
export async function startDemoBackends(cfg: Config, log: Logger): Promise<{ close(): Promise<void> }> {
  const servers: Server[] = [];
  for (const b of cfg.listen[0].backends) {
    const hp = parseHostPort(b.address)!;
    const srv = createServer((req, res) => {
      const body = `hello from ${b.name} (${req.method} ${req.url})\n`;
      res.writeHead(200, { 'content-type': 'text/plain', 'content-length': Buffer.byteLength(body), 'x-backend': b.name });
      res.end(body);
    });
    await new Promise<void>((ok, fail) => { srv.once('error', fail); srv.listen(hp.port, hp.host, () => ok()); });
    servers.push(srv);
    log.info({ mod: 'demo', backend: b.name, address: b.address }, 'demo backend listening');
  }
  return {
    close: async () => {
      await Promise.all(servers.map((s) => new Promise<void>((ok) => { s.close(() => ok()); s.closeAllConnections(); })));
    },
  };
}
