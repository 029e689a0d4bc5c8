import type { Socket } from 'node:net';
import { SourceFilter } from '../config/cidr.js';
import type { Logger } from '../log.js';
import { RateLimitedLog } from '../log.js';
import type { Counters } from '../stats/counters.js';
import { parseProxyHeader, type ProxyAddress, type ProxyRefusal } from './proxy-protocol.js';

/**
 * `accept_proxy` on a bind: every connection must come from one of the configured source CIDRs
 * (a load balancer or CDN in front of pairlb) and start with a PROXY protocol v1 or v2 header; the
 * client address in the header then stands for the connection everywhere (X-Forwarded-For, rules,
 * limits, logs: read through `clientAddress()`).
 *
 * Refused, closed and counted (Counters.proxyRefused, one log line per reason per 10 s):
 * a connection from anywhere else (`untrusted`, before a byte is read), a header that is not one
 * (`signature`, at its first wrong byte), malformed or oversized (see ProxyRefusal), or not complete
 * within `timeout` (`timeout`). Nothing is ever sent back: a refused peer learns nothing.
 */

export type AcceptRefusal = ProxyRefusal | 'untrusted' | 'timeout' | 'closed';

/** The client as the header gave it; set on the socket before anything else sees it. */
const kClient = Symbol('pairlb.proxyClient');
const kDest = Symbol('pairlb.proxyDest');
type Tagged = Socket & { [kClient]?: ProxyAddress };

/** The client's address and port: from an accepted PROXY header, else the connection's peer. */
export function clientAddress(s: Socket): string {
  const p = (s as Tagged)[kClient];
  const a = p !== undefined ? p.address : (s.remoteAddress ?? '');
  return a.startsWith('::ffff:') ? a.slice(7) : a;
}

export function clientPort(s: Socket): number | undefined {
  const p = (s as Tagged)[kClient];
  return p !== undefined ? p.port : s.remotePort;
}

/** The address the client connected to (the header's destination when there was one). */
export function localAddress(s: Socket): ProxyAddress {
  const t = (s as Tagged & { [kDest]?: ProxyAddress })[kDest];
  return t ?? { address: s.localAddress ?? '', port: s.localPort ?? 0 };
}

/**
 * `to` stands for the same client as `from` (a TLSSocket over the raw socket whose header was
 * read): copied once per connection, so the per-request readers above stay one property read.
 */
export function inheritClient(from: Socket, to: Socket): void {
  const f = from as Tagged & { [kDest]?: ProxyAddress };
  if (f[kClient] === undefined) return;
  const t = to as Tagged & { [kDest]?: ProxyAddress };
  t[kClient] = f[kClient];
  t[kDest] = f[kDest];
}

export interface AcceptProxySettings {
  /** The trusted sources (src/config/cidr.ts: the one home of CIDR matching). */
  readonly from: SourceFilter;
  readonly timeoutMs: number;
}

/** A socket whose header is being read: its state lives on the socket, no closure per connection. */
interface Pending {
  buf: Buffer;
  timer: ReturnType<typeof setTimeout>;
  done: (sock: Socket, rest: Buffer | null) => void;
  reader: AcceptProxy;
}
const kPending = Symbol('pairlb.proxyPending');
type PendingSocket = Socket & { [kPending]?: Pending };

export class AcceptProxy {
  /** Refusals by reason since start (the total is also in Counters.proxyRefused). */
  readonly refused = new Map<AcceptRefusal, number>();
  private readonly logs = new Map<string, RateLimitedLog>();
  /** Sockets whose header is still awaited (destroyed on stop). */
  readonly pending = new Set<Socket>();

  constructor(public settings: AcceptProxySettings, private readonly counters: Counters, private readonly log: Logger, private readonly listen: string) {}

  /**
   * Reads the header off `sock`, then calls `done(sock, rest)` with the bytes that followed it
   * (the socket is paused; `rest` may be empty), or refuses: the socket is destroyed and `done`
   * is never called. Call it on a fresh socket, before any other 'data' listener.
   */
  read(sock: Socket, done: (sock: Socket, rest: Buffer) => void): void {
    if (!this.settings.from.admits(sock.remoteAddress)) { this.refuse(sock, 'untrusted'); return; }
    const p: Pending = { buf: EMPTY, timer: setTimeout(() => onTimeout(sock), this.settings.timeoutMs), done: done as Pending['done'], reader: this };
    (sock as PendingSocket)[kPending] = p;
    this.pending.add(sock);
    sock.on('data', onData);
    sock.on('close', onClose);
    sock.on('error', ignore);
  }

  refuse(sock: Socket, reason: AcceptRefusal): void {
    this.counters.proxyRefused++;
    this.refused.set(reason, (this.refused.get(reason) ?? 0) + 1);
    let l = this.logs.get(reason);
    if (!l) {
      const client = sock.remoteAddress;
      this.logs.set(reason, (l = new RateLimitedLog((n) => this.log.warn(
        { mod: 'proxy', listen: this.listen, reason, refused: n, client },
        `listen ${this.listen}: refused ${n} connection(s) at the PROXY header: ${reason}`), 10_000)));
    }
    l.hit();
    sock.destroy();
  }

  finish(sock: Socket, p: Pending, rest: Buffer | null): void {
    clearTimeout(p.timer);
    (sock as PendingSocket)[kPending] = undefined;
    this.pending.delete(sock);
    sock.removeListener('data', onData);
    sock.removeListener('close', onClose);
    sock.removeListener('error', ignore);
    if (rest === null) return;
    sock.pause();
    p.done(sock, rest);
  }

  stop(): void {
    for (const s of this.pending) s.destroy();
    for (const l of this.logs.values()) l.close();
  }
}

const EMPTY = Buffer.alloc(0);
function ignore(): void {}

function onData(this: PendingSocket, chunk: Buffer): void {
  const p = this[kPending];
  if (p === undefined) return;
  p.buf = p.buf.length === 0 ? chunk : Buffer.concat([p.buf, chunk]);
  const r = parseProxyHeader(p.buf);
  if (r.kind === 'more') return;
  const reader = p.reader;
  if (r.kind === 'bad') { reader.finish(this, p, null); reader.refuse(this, r.reason); return; }
  if (r.source !== undefined) (this as Tagged)[kClient] = r.source;
  if (r.dest !== undefined) (this as Socket & { [kDest]?: ProxyAddress })[kDest] = r.dest;
  reader.finish(this, p, p.buf.subarray(r.length));
}

function onTimeout(sock: PendingSocket): void {
  const p = sock[kPending];
  if (p === undefined) return;
  p.reader.finish(sock, p, null);
  p.reader.refuse(sock, 'timeout');
}

function onClose(this: PendingSocket): void {
  const p = this[kPending];
  if (p === undefined) return;
  p.reader.finish(this, p, null);
  // A peer that hangs up before its header is complete: counted, nothing to close.
  p.reader.refuse(this, 'closed');
}

/** Settings from the config (compiled once per reload). */
export function acceptProxySettings(cfg: { from: readonly string[]; timeout: number }): AcceptProxySettings {
  return { from: new SourceFilter(cfg.from, []), timeoutMs: cfg.timeout };
}
