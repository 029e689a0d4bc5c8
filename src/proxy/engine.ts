import type { Readable } from 'node:stream';
import type { Socket } from 'node:net';

/**
 * A forwarding engine sends one attempt of a request to one backend and reports back through the
 * `AttemptSink` callbacks (the shape of undici's dispatch handler, which the undici engine passes
 * through untouched). Retry, stickiness, header rewriting and error mapping live once, in
 * listener.ts; an engine only moves bytes.
 */
/** What an upstream is made with: a pool's server-side timeouts and response head limit. */
export interface UpstreamConfig {
  readonly timeouts: { readonly connect: number; readonly server: number };
  readonly max_header_size: number;
}

export interface Upstream {
  /** Wait for in-flight requests, then close idle connections. */
  close(): Promise<void>;
  /** Close everything now. */
  destroy(): void;
}

export interface AttemptSink {
  /** Request bytes are about to be written: from here a failure may have reached the backend. */
  onConnect(abort: (err?: Error) => void): void;
  /** Return false to pause the body until `resume` is called. */
  onHeaders(status: number, rawHeaders: (Buffer | string)[], resume: () => void, statusText: string): boolean;
  onData(chunk: Buffer): boolean;
  onComplete(trailers: unknown): void;
  onError(err: Error): void;
  /**
   * Only for a request with `upgrade`: the backend answered 101 (Switching Protocols). The socket is
   * detached from the pool and now belongs to the sink; bytes after the response head are unread in
   * it. Any other answer to an upgrade request comes through onHeaders as usual.
   */
  onUpgrade(status: number, rawHeaders: (Buffer | string)[], socket: Socket): void;
}

export interface AttemptRequest {
  readonly method: string;
  readonly path: string;
  /** Flat [name, value, name, value…], already rewritten and without hop-by-hop headers. */
  readonly headers: string[];
  readonly body: Readable | null;
  /** The client's Upgrade header (protocols to switch to; the request has no body), or null. */
  readonly upgrade: string | null;
  /** Close the backend connection after this response (`connection_mode` http-server-close / httpclose). */
  readonly close: boolean;
  readonly req: import('node:http').IncomingMessage;
  readonly res: import('node:http').ServerResponse;
}

export interface Engine {
  readonly name: string;
  /**
   * Whether a request with a body may be retried after a connect failure: true only when the
   * engine does not read the body before the connection is established.
   */
  readonly retriesBody: boolean;
  /**
   * `proxyHeader`: a PROXY protocol header written first on every connection the upstream opens
   * (send_proxy). Such an upstream belongs to one client connection (Exchange.send): its
   * connections carry that client's address and must never serve another (HAProxy marks them
   * private the same way).
   */
  createUpstream(host: string, port: number, pool: UpstreamConfig, proxyHeader?: Buffer): Upstream;
  send(up: Upstream, req: AttemptRequest, sink: AttemptSink): void;
}
