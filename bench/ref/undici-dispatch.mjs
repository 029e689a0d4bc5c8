#!/usr/bin/env node
// Reference, not pairlb: the smallest node:http + undici Pool.dispatch reverse proxy (round robin,
// keep-alive both sides, X-Forwarded-For, hop-by-hop headers dropped, backpressure). It is the
// design ceiling of pairlb's undici engine: the gap between the two is pairlb's own overhead.
//   node bench/ref/undici-dispatch.mjs PORT BACKEND_PORT...
//   REF_TLS_PORT=P REF_TLS_CERT=CHAIN REF_TLS_KEY=KEY node bench/ref/undici-dispatch.mjs …   also
//   serves the same handler over TLS (node:https) on P: bench:https's ref-undici, the TLS cost of the
//   smallest Node proxy.
import { readFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import { Pool } from 'undici';

const [port, ...bports] = process.argv.slice(2).map(Number);
const pools = bports.map((p) => new Pool(`http://127.0.0.1:${p}`, { pipelining: 1 }));
const HOP = new Set(['connection', 'keep-alive', 'transfer-encoding', 'te', 'trailer', 'upgrade', 'proxy-connection']);
let rr = 0;

function handler(req, res) {
  const pool = pools[rr++ % pools.length];
  const headers = [];
  const raw = req.rawHeaders;
  for (let i = 0; i < raw.length; i += 2) if (!HOP.has(raw[i].toLowerCase())) headers.push(raw[i], raw[i + 1]);
  headers.push('X-Forwarded-For', req.socket.remoteAddress);
  let resume = null;
  res.on('drain', () => resume?.());
  pool.dispatch({ method: req.method, path: req.url, headers, body: null }, {
    onConnect() {},
    onHeaders(status, rawh, r) {
      resume = r;
      const out = [];
      for (let i = 0; i < rawh.length; i += 2) {
        const k = rawh[i].toString('latin1');
        if (!HOP.has(k.toLowerCase())) out.push(k, rawh[i + 1].toString('latin1'));
      }
      res.writeHead(status, out);
      return true;
    },
    onData(c) { return res.write(c); },
    onComplete() { res.end(); },
    onError() { if (!res.headersSent) { res.statusCode = 502; res.end(); } else res.destroy(); },
  });
}

createServer(handler).listen(port, '127.0.0.1');
if (process.env.REF_TLS_PORT) {
  const tls = { cert: readFileSync(process.env.REF_TLS_CERT), key: readFileSync(process.env.REF_TLS_KEY), ALPNProtocols: ['http/1.1'] };
  createHttpsServer(tls, handler).listen(Number(process.env.REF_TLS_PORT), '127.0.0.1');
}
