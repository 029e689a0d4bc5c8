import { Pool } from 'undici';
import type { ListenConfig } from '../../config/schema.js';
import type { AttemptRequest, AttemptSink, Engine, Upstream } from '../engine.js';

/**
 * Default engine: one undici Pool per backend (keep-alive, unlimited connections, no pipelining),
 * driven with `dispatch` and a handler object, the fastest of the measured ways (shared/bench.md:
 * Pool + dispatch ≈ 0.30 × HAProxy vs http-proxy ≈ 0.13 ×).
 */
class UndiciUpstream implements Upstream {
  readonly pool: Pool;
  constructor(host: string, port: number, l: ListenConfig) {
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
  close(): Promise<void> { return this.pool.close(); }
  destroy(): void { this.pool.destroy().catch(() => {}); }
}

export const undiciEngine: Engine = {
  name: 'undici',
  // undici starts reading a stream body only once it writes the request on a connected socket.
  retriesBody: true,
  createUpstream(host, port, l) { return new UndiciUpstream(host, port, l); },
  send(up, r: AttemptRequest, sink: AttemptSink) {
    (up as UndiciUpstream).pool.dispatch(
      { method: r.method, path: r.path, headers: r.headers, body: r.body, blocking: false, reset: false },
      // The sink already implements undici's (legacy) dispatch handler interface.
      sink as never,
    );
  },
};
