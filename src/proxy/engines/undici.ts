import { Pool } from 'undici';
import type { UpstreamConfig } from '../engine.js';
import type { AttemptRequest, AttemptSink, Engine, Upstream } from '../engine.js';
import { nativeEngine } from './native.js';

/**
 * Default engine: one undici Pool per backend (keep-alive, unlimited connections, no pipelining),
 * driven with `dispatch` and a handler object, the fastest of the measured ways (shared/bench.md:
 * Pool + dispatch ≈ 0.30 × HAProxy vs http-proxy ≈ 0.13 ×).
 */
class UndiciUpstream implements Upstream {
  readonly pool: Pool;
  /**
   * undici refuses a request-target that is not `/…` or absolute (InvalidArgumentError), so
   * `OPTIONS *` (RFC 9112 §3.2.4) goes through a native upstream made on first use.
   */
  asterisk: Upstream | undefined;
  constructor(readonly host: string, readonly port: number, readonly l: UpstreamConfig) {
    const origin = `http://${host.includes(':') ? `[${host}]` : host}:${port}`;
    this.pool = new Pool(origin, {
      pipelining: 1,
      connect: { timeout: l.timeouts.connect },
      headersTimeout: l.timeouts.server,
      bodyTimeout: l.timeouts.server,
      keepAliveTimeout: 4_000,
      keepAliveMaxTimeout: 60_000,
      strictContentLength: true,
    });
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
  createUpstream(host, port, l) { return new UndiciUpstream(host, port, l); },
  send(up, r: AttemptRequest, sink: AttemptSink) {
    const u = up as UndiciUpstream;
    if (r.path.charCodeAt(0) === 42 /* * */) {
      nativeEngine.send(u.asterisk ??= nativeEngine.createUpstream(u.host, u.port, u.l), r, sink);
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
