#!/usr/bin/env node
// Baseline peer, not pairlb: http-proxy 1.18 (the library the design card names, and what a user
// would otherwise pick) as a reverse proxy with a keep-alive agent per backend, round robin and
// X-Forwarded-For (`xfwd`). It left pairlb's engines (issue 10: smuggling, crash on two Host
// headers); the bench keeps it as the figure the undici engine is compared to.
//   node bench/ref/http-proxy.mjs PORT BACKEND_PORT...
import { createServer, Agent } from 'node:http';
import httpProxy from 'http-proxy';

const [port, ...bports] = process.argv.slice(2).map(Number);
const targets = bports.map((p) => ({
  target: { host: '127.0.0.1', port: p },
  agent: new Agent({ keepAlive: true, maxFreeSockets: 256, scheduling: 'lifo' }),
  xfwd: true,
}));
const proxy = httpProxy.createProxyServer({});
proxy.on('error', (_e, _req, res) => {
  if (res.headersSent === false) { res.statusCode = 502; res.end(); } else res.destroy?.();
});
let rr = 0;

createServer((req, res) => proxy.web(req, res, targets[rr++ % targets.length])).listen(port, '127.0.0.1');
