import { Agent, type ClientRequest, type IncomingMessage, type ServerResponse } from 'node:http';
import { PassThrough } from 'node:stream';
import httpProxy from 'http-proxy';
import type { ListenConfig } from '../../config/schema.js';
import { PairlbError } from '../../errors.js';
import type { AttemptRequest, AttemptSink, Engine, Upstream } from '../engine.js';

/**
 * The design card's http-proxy (1.18), kept as a second engine behind the same interface and held
 * to the same conformance suite; the bench uses it as baseline. Measured here ≈ 2× slower than the
 * undici engine (bench/README.md).
 */
interface HpUpstream extends Upstream { agent: Agent; target: { host: string; port: number }; l: ListenConfig }

const kSink = Symbol('pairlb.sink');
const kBody = Symbol('pairlb.body');
const kUp = Symbol('pairlb.up');
type Tagged = IncomingMessage & { [kSink]?: AttemptSink; [kUp]?: HpUpstream; [kBody]?: PassThrough };

const proxy = httpProxy.createProxyServer({ selfHandleResponse: true, xfwd: false, ws: false });

proxy.on('proxyReq', (proxyReq: ClientRequest, req: Tagged) => {
  const sink = req[kSink]!;
  const up = req[kUp]!;
  const abort = (err?: Error) => proxyReq.destroy(err);
  const body = req[kBody];
  const connected = () => { if (body) req.pipe(body); sink.onConnect(abort); };
  // http-proxy emits 'proxyReq' from the request's 'socket' event: the socket is already assigned.
  const s = proxyReq.socket!;
  if (!s.connecting) connected();
  else {
    const t = setTimeout(() => proxyReq.destroy(new PairlbError('UND_ERR_CONNECT_TIMEOUT', 'connect timeout')), up.l.timeouts.connect);
    s.once('connect', () => { clearTimeout(t); connected(); });
    s.once('close', () => clearTimeout(t));
  }
  proxyReq.setTimeout(up.l.timeouts.server, () => proxyReq.destroy(new PairlbError('UND_ERR_HEADERS_TIMEOUT', 'server timeout')));
});

proxy.on('proxyRes', (proxyRes: IncomingMessage, req: Tagged, _res: ServerResponse) => {
  const sink = req[kSink]!;
  const resume = () => proxyRes.resume();
  if (sink.onHeaders(proxyRes.statusCode ?? 502, proxyRes.rawHeaders, resume, proxyRes.statusMessage ?? '') === false) proxyRes.pause();
  proxyRes.on('data', (c: Buffer) => { if (sink.onData(c) === false) proxyRes.pause(); });
  proxyRes.on('end', () => sink.onComplete(null));
  proxyRes.on('error', (e) => sink.onError(e));
  proxyRes.on('aborted', () => sink.onError(new PairlbError('UND_ERR_SOCKET', 'server aborted the response')));
});

/** http-proxy takes headers as an object; duplicates become arrays (Node sends one line each). */
function headersObject(flat: string[]): Record<string, string | string[]> {
  const o: Record<string, string | string[]> = {};
  for (let i = 0; i < flat.length; i += 2) {
    const k = flat[i].toLowerCase();
    const prev = o[k];
    o[k] = prev === undefined ? flat[i + 1] : Array.isArray(prev) ? [...prev, flat[i + 1]] : [prev, flat[i + 1]];
  }
  return o;
}

export const httpProxyEngine: Engine = {
  name: 'http-proxy',
  // http-proxy pipes its `buffer` stream into the upstream request at once; we hand it an empty
  // PassThrough and feed it the client body only once the upstream socket is connected, so a
  // connect failure leaves the body unread and the request can go elsewhere.
  retriesBody: true,
  createUpstream(host, port, l): HpUpstream {
    const agent = new Agent({ keepAlive: true, keepAliveMsecs: 1000, maxFreeSockets: 256, scheduling: 'lifo' });
    return {
      agent, target: { host, port }, l,
      close: async () => { agent.destroy(); },
      destroy: () => agent.destroy(),
    };
  },
  send(up, r: AttemptRequest, sink: AttemptSink) {
    const hp = up as HpUpstream;
    const req = r.req as Tagged;
    req[kSink] = sink;
    req[kUp] = hp;
    req.headers = headersObject(r.headers) as IncomingMessage['headers'];
    req.url = r.path;
    const body = r.body ? new PassThrough() : undefined;
    req[kBody] = body;
    proxy.web(req, r.res, { target: hp.target, agent: hp.agent, selfHandleResponse: true, buffer: body }, (err: Error) => {
      if (body) req.unpipe(body);
      sink.onError(err);
    });
  },
};
