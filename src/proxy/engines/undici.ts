import { Client, Pool, buildConnector } from 'undici';
import type { UpstreamConfig } from '../engine.js';
import type { AttemptRequest, AttemptSink, Engine, Upstream } from '../engine.js';
import { nativeEngine } from './native.js';

/**
 * Default engine: one undici Pool per backend (keep-alive, unlimited connections, no pipelining),
 * driven with `dispatch` and a handler object, the fastest of the measured ways (shared/bench.md:
 * Pool + dispatch ≈ 0.30 × HAProxy vs http-proxy ≈ 0.13 ×).
 */
class UndiciUpstream implements Upstream {
  readonly pool: Pool | Client;
  /**
   * undici refuses a request-target that is not `/…` or absolute (InvalidArgumentError), so
   * `OPTIONS *` (RFC 9112 §3.2.4) goes through a native upstream made on first use.
   */
  asterisk: Upstream | undefined;
  constructor(readonly host: string, readonly port: number, readonly l: UpstreamConfig, readonly proxyHeader?: Buffer) {
    const origin = `http://${host.includes(':') ? `[${host}]` : host}:${port}`;
    const opts = {
      pipelining: 1,
      connect: { timeout: l.timeouts.connect } as Client.Options['connect'],
      headersTimeout: l.timeouts.server,
      bodyTimeout: l.timeouts.server,
      keepAliveTimeout: 4_000,
      keepAliveMaxTimeout: 60_000,
      strictContentLength: true,
    };
    if (proxyHeader === undefined) this.pool = new Pool(origin, opts);
    else {
      // One client connection's own upstream (send_proxy): one connection at a time is all it
      // needs (its requests are served one after the other), and each new one starts with the
      // header, written on 'connect' before undici writes the request.
      const base = buildConnector({ timeout: l.timeouts.connect });
      opts.connect = (o, cb) => base(o, (err, sock) => {
        if (err !== null) { cb(err, null); return; }
        sock.write(proxyHeader);
        cb(null, sock);
      });
      this.pool = new Client(origin, opts);
    }
    // A connection error is reported per request; the pool-level event must not crash the process.
    this.pool.on('connectionError', () => {});
  }
  close(): Promise<void> { this.asterisk?.close().catch(() => {}); return this.pool.close(); }
  destroy(): void { this.asterisk?.destroy(); this.pool.destroy().catch(() => {}); }
}

export const undiciEngine: Engine = {
  name: 'undici',
  // undici starts reading a stream body only once it writes the request on a connected socket.
  retriesBody: true,
  createUpstream(host, port, l, proxyHeader) { return new UndiciUpstream(host, port, l, proxyHeader); },
  send(up, r: AttemptRequest, sink: AttemptSink) {
    const u = up as UndiciUpstream;
    if (r.path.charCodeAt(0) === 42 /* * */) {
      nativeEngine.send(u.asterisk ??= nativeEngine.createUpstream(u.host, u.port, u.l, u.proxyHeader), r, sink);
      return;
    }
    u.pool.dispatch(
      // An upgrade request's connection never goes back to the pool (reset: the 101 detaches it,
      // any other answer closes it).
      { method: r.method, path: r.path, headers: r.headers, body: r.body, blocking: false, reset: r.upgrade !== null || r.close, upgrade: r.upgrade },
      // The sink already implements undici's (legacy) dispatch handler interface.
      sink as never,
    );
  },
};
