#!/usr/bin/env node
// Reference, not pairlb: node:http server + a purpose-built upstream client: a keep-alive pool of
// net.Sockets per backend, requests written as one latin1 string, responses parsed by Node's own
// native llhttp (`HTTPParser` from `_http_common`, the parser node:http's client uses; it handles
// chunked, no-body statuses and header limits). Measured here at ~1.4x the requests per CPU-second
// of the same proxy on undici Pool.dispatch (bench/ref/undici-dispatch.mjs): it sizes what an
// upstream client leaner than undici could give pairlb. Prototype: GET-style requests without a
// body, no timeouts, no retries.
//   node bench/ref/llhttp-upstream.mjs PORT BACKEND_PORT...
import { createServer } from 'node:http';
import net from 'node:net';
import { HTTPParser } from '_http_common';

const { kOnHeaders, kOnHeadersComplete, kOnBody, kOnMessageComplete } = HTTPParser;
const [port, ...bports] = process.argv.slice(2).map(Number);
const idle = bports.map(() => []);
const HOP = new Set(['connection', 'keep-alive', 'transfer-encoding', 'te', 'trailer', 'upgrade', 'proxy-connection']);
let rr = 0;

class Upstream {
  constructor(bi) {
    this.bi = bi;
    this.res = null;
    this.keepAlive = true;
    const s = (this.s = net.connect(bports[bi], '127.0.0.1'));
    s.setNoDelay(true);
    const p = (this.p = new HTTPParser());
    p.initialize(HTTPParser.RESPONSE, {}, 16384, 0);
    p[kOnHeaders] = () => {};
    p[kOnHeadersComplete] = (_maj, _min, headers, _method, _url, status, msg, _upgrade, keepAlive) => {
      this.keepAlive = keepAlive;
      const out = [];
      for (let i = 0; i < headers.length; i += 2) if (!HOP.has(headers[i].toLowerCase())) out.push(headers[i], headers[i + 1]);
      this.res.writeHead(status, msg, out);
      return 0;
    };
    // Backpressure: stop reading the backend while the client is slow.
    p[kOnBody] = (b) => { if (!this.res.write(b)) { s.pause(); this.res.once('drain', () => s.resume()); } };
    p[kOnMessageComplete] = () => {
      const r = this.res;
      this.res = null;
      r.end();
      if (this.keepAlive) idle[this.bi].push(this); else s.destroy();
    };
    s.on('data', (d) => { if (p.execute(d) instanceof Error) s.destroy(); });
    s.on('error', () => {});
    s.on('close', () => {
      if (this.res) { this.res.destroy(); this.res = null; }
      const i = idle[this.bi].indexOf(this);
      if (i >= 0) idle[this.bi].splice(i, 1);
    });
  }

  send(req, res, headers) {
    this.res = res;
    let h = `${req.method} ${req.url} HTTP/1.1\r\n`;
    for (let i = 0; i < headers.length; i += 2) h += `${headers[i]}: ${headers[i + 1]}\r\n`;
    this.s.write(h + '\r\n', 'latin1');
  }
}

createServer((req, res) => {
  const bi = rr++ % bports.length;
  const headers = [];
  const raw = req.rawHeaders;
  for (let i = 0; i < raw.length; i += 2) if (!HOP.has(raw[i].toLowerCase())) headers.push(raw[i], raw[i + 1]);
  headers.push('X-Forwarded-For', req.socket.remoteAddress);
  (idle[bi].pop() ?? new Upstream(bi)).send(req, res, headers);
}).listen(port, '127.0.0.1');
