#!/usr/bin/env node
// Reference, not pairlb: the leanest HTTP/1.1 proxy Node can run. A raw net.Server; each client
// connection's requests parsed by Node's native llhttp (`HTTPParser` of `_http_common`) consuming
// the socket's handle in C++ (`parser.consume`, as node:http does: no JS 'data' event per read);
// the request head written as one latin1 string to a keep-alive pool of raw sockets whose responses
// are parsed the same way; the response head built as one string and corked with the first body
// chunk. It sizes what a lean HTTP/1 front could give pairlb (bench/RESULTS.md 2026-12-01 17:30:
// 0.66-0.72x HAProxy per CPU-second, 0.61x without `consume`, pairlb-w1 0.24-0.34x).
// Prototype: GET-style requests without a body, no timeouts, no errors handled, no retries.
//   node bench/ref/ref-lean.mjs PORT BACKEND_PORT...
//   REF_TLS_PORT=P REF_TLS_CERT=CHAIN REF_TLS_KEY=KEY node bench/ref/ref-lean.mjs …   also serves the
//   same front over TLS (tls.Server; llhttp consumes the TLSWrap handle): bench:https's ref-lean.
import net from 'node:net';
import tls from 'node:tls';
import { readFileSync } from 'node:fs';
import { HTTPParser, methods } from '_http_common';
const { kOnHeaders, kOnHeadersComplete, kOnBody, kOnMessageComplete, kOnExecute } = HTTPParser;
const [port, ...bports] = process.argv.slice(2).map(Number);
const idle = bports.map(() => []);
const HOP = new Set(['connection', 'keep-alive', 'transfer-encoding', 'te', 'trailer', 'upgrade', 'proxy-connection']);
let rr = 0;
class Up {
  constructor(bi) {
    this.bi = bi; this.c = null; this.ka = true;
    const s = (this.s = net.connect({port: bports[bi], host: '127.0.0.1', noDelay: true}));
    const p = (this.p = new HTTPParser());
    p.initialize(HTTPParser.RESPONSE, {}, 16384, 0);
    p[kOnHeaders] = () => {};
    p[kOnHeadersComplete] = (_maj, _min, headers, _m, _u, status, msg, _upg, ka) => {
      this.ka = ka;
      let h = `HTTP/1.1 ${status} ${msg}\r\n`;
      for (let i = 0; i < headers.length; i += 2) { const k = headers[i]; if (k.length < 18 && HOP.has(k.toLowerCase())) continue; h += k + ': ' + headers[i + 1] + '\r\n'; }
      this.c.head = h + '\r\n';
      return 0;
    };
    p[kOnBody] = (b) => { const c = this.c; if (c.head !== null) { c.s.cork(); c.s.write(c.head, 'latin1'); c.head = null; c.s.write(b); process.nextTick(uncork, c.s); } else c.s.write(b); };
    p[kOnMessageComplete] = () => { const c = this.c; this.c = null; if (c.head !== null) { c.s.write(c.head, 'latin1'); c.head = null; } c.done(); if (this.ka) idle[this.bi].push(this); else s.destroy(); };
    p[kOnExecute] = (ret) => { if (ret instanceof Error) s.destroy(); };
    s.on('connect', () => { p.consume(s._handle); if (this.pend) { s.write(this.pend, 'latin1'); this.pend = null; } });
    s.on('data', (d) => { if (p.execute(d) instanceof Error) s.destroy(); });
    s.on('error', () => {});
    s.on('close', () => { const i = idle[this.bi].indexOf(this); if (i >= 0) idle[this.bi].splice(i, 1); });
    this.pend = null;
  }
  send(c, head) { this.c = c; if (this.s.connecting) this.pend = head; else this.s.write(head, 'latin1'); }
}
function uncork(s) { s.uncork(); }
class Client {
  constructor(s) {
    this.s = s; this.head = null;
    const p = (this.p = new HTTPParser());
    p.initialize(HTTPParser.REQUEST, {}, 16384, 0);
    p[kOnHeaders] = () => {};
    p[kOnHeadersComplete] = (maj, min, headers, method, url, _st, _msg, upg, ka) => {
      this.ka = ka;
      let h = `${methods[method]} ${url} HTTP/1.1\r\n`;
      for (let i = 0; i < headers.length; i += 2) { const k = headers[i]; if (k.length < 18 && HOP.has(k.toLowerCase())) continue; h += k + ': ' + headers[i + 1] + '\r\n'; }
      h += 'X-Forwarded-For: ' + this.ip + '\r\n\r\n';
      const bi = rr++ % bports.length;
      (idle[bi].pop() ?? new Up(bi)).send(this, h);
      return 0;
    };
    p[kOnBody] = () => {};
    p[kOnMessageComplete] = () => {};
    p[kOnExecute] = (ret) => { if (ret instanceof Error) s.destroy(); };
    this.ip = s.remoteAddress;
    p.consume(s._handle);
    s.on('data', (d) => { if (p.execute(d) instanceof Error) s.destroy(); });
    s.on('error', () => {});
    s.on('close', () => p.close && 0);
  }
  done() { if (!this.ka) this.s.end(); }
}
net.createServer({ noDelay: true }, (s) => new Client(s)).listen(port, '127.0.0.1');
if (process.env.REF_TLS_PORT) {
  const opts = { cert: readFileSync(process.env.REF_TLS_CERT), key: readFileSync(process.env.REF_TLS_KEY), ALPNProtocols: ['http/1.1'], noDelay: true };
  tls.createServer(opts, (s) => new Client(s)).listen(Number(process.env.REF_TLS_PORT), '127.0.0.1');
}
