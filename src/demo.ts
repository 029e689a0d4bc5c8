import { createServer, type Server } from 'node:http';
import type { Config } from './config/schema.js';
import { parseHostPort } from './config/types.js';
import type { Logger } from './log.js';

/**
 * Demo backends for `npm start`: one tiny HTTP server per backend address of the first listen
 * section, each answering with its own name (two curls show round robin) and echoing the request
 * headers it received (the tour shows X-Forwarded-For and the other headers pairlb sets).
 */
export async function startDemoBackends(cfg: Config, log: Logger): Promise<{ close(): Promise<void> }> {
  const servers: Server[] = [];
  for (const b of cfg.listen[0].backends) {
    const hp = parseHostPort(b.address)!;
    const srv = createServer((req, res) => {
      // The headers as this backend received them: the tour shows what pairlb adds (X-Forwarded-For …).
      let body = `hello from ${b.name} (${req.method} ${req.url})\nheaders received:\n`;
      const raw = req.rawHeaders;
      for (let i = 0; i < raw.length; i += 2) body += `  ${raw[i]}: ${raw[i + 1]}\n`;
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
