#!/usr/bin/env node
// Reference, not pairlb: a keep-alive HTTP/1.1 server that answers every request itself (no
// backend) with a fixed response, written in one of several shapes, over TLS or plain TCP, with
// requests parsed by llhttp consuming the socket (or TLSWrap) handle as bench/ref/ref-lean.mjs does.
// bench/tls-writes.mjs runs several at once to compare what each shape of response write costs.
//   node bench/ref/tls-writes.mjs PORT SHAPE BODY_BYTES [CERT KEY [CIPHERS]]   (with CERT: TLS)
// SHAPE: str      one latin1 string, head + body (one write)
//        concat   one Buffer, head + body copied into it (one write)
//        cork     cork(); write(head); write(body); uncork on nextTick (a writev; ref-lean's shape)
//        two      write(head); write(body) (two writes: on TLS two records, two sends)
//        handle   head + body as one string straight to the handle (a WriteWrap without oncomplete:
//                 no net.Socket Writable, no JS callback when it completes). Unsafe beyond this
//                 test: TLSWrap takes one write at a time (a second one before the first completes
//                 aborts the process), and nothing here waits for it.
//        http     node:http (or node:https) instead of llhttp + raw socket: writeHead + end(body)
import net from 'node:net';
import tls from 'node:tls';
import http from 'node:http';
import https from 'node:https';
import { readFileSync } from 'node:fs';
import { HTTPParser } from '_http_common';
const { kOnHeaders, kOnHeadersComplete, kOnBody, kOnMessageComplete, kOnExecute } = HTTPParser;
const { WriteWrap } = process.binding('stream_wrap');
const [port, shape, bytes, cert, key, ciphers] = process.argv.slice(2);
const body = Buffer.alloc(Number(bytes), 'x');
const head = `HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: ${body.length}\r\n\r\n`;
const whole = head + body.toString('latin1');
const opts = cert ? { cert: readFileSync(cert), key: readFileSync(key), ALPNProtocols: ['http/1.1'], noDelay: true, ...(ciphers ? { ciphers } : {}) } : { noDelay: true };
const uncork = (s) => s.uncork();
const WRITE = {
  str: (s) => s.write(whole, 'latin1'),
  concat: (s) => { const b = Buffer.allocUnsafe(head.length + body.length); b.latin1Write(head, 0); body.copy(b, head.length); s.write(b); },
  cork: (s) => { s.cork(); s.write(head, 'latin1'); s.write(body); process.nextTick(uncork, s); },
  two: (s) => { s.write(head, 'latin1'); s.write(body); },
  handle: (s) => { const req = new WriteWrap(); req.handle = s._handle; s._handle.writeLatin1String(req, whole); },
}[shape];
function accept(s) {
  const p = new HTTPParser();
  p.initialize(HTTPParser.REQUEST, {}, 16384, 0);
  p[kOnHeaders] = () => {};
  p[kOnHeadersComplete] = () => 0;
  p[kOnBody] = () => {};
  p[kOnMessageComplete] = () => WRITE(s);
  p[kOnExecute] = (ret) => { if (ret instanceof Error) s.destroy(); };
  p.consume(s._handle);
  s.on('error', () => {});
}
const hdrs = ['Content-Type', 'text/plain', 'Content-Length', String(body.length)];
const onRequest = (_req, res) => { res.writeHead(200, hdrs); res.end(body); };
const server = shape === 'http' ? (cert ? https.createServer(opts, onRequest) : http.createServer(opts, onRequest))
  : (cert ? tls.createServer(opts, accept) : net.createServer(opts, accept));
if (shape === 'http') server.keepAliveTimeout = 60_000;
server.listen(Number(port), '127.0.0.1');
