import { isTls } from '../tls/flag.js';
import { ServerResponse, type IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';
import type { Exchange, Listener } from './listener.js';

/**
 * Upgrade requests (WebSocket, RFC 6455 §4; RFC 9110 §7.8), issue 10 item 4.
 *
 * node:http hands an Upgrade request over in its 'upgrade' event with the socket already detached
 * from its parser. A tunnel is opened only when the backend answers `101` with a `Connection:
 * upgrade` and an `Upgrade` naming protocols the client asked for. Any other answer is an ordinary
 * response: it is proxied through the same Exchange as every request (rewriting, sticky cookie,
 * errors, access log) on a ServerResponse bound to the detached socket, and the socket is then
 * handed back to node:http so that the next bytes are parsed as HTTP requests again, exactly as on
 * any keep-alive connection (HAProxy keeps parsing too). Until the backend answered, what the client
 * sends after the request head is read only to be held (HeldBytes: so that a client going away is
 * seen), never interpreted.
 *
 *   'upgrade' ─► startUpgrade ─► Listener.handle (Exchange, engine with `upgrade`)
 *                                   ├─ 101 + Upgrade ⊆ asked ─► openTunnel ─► relay … close: access log
 *                                   ├─ 101 otherwise ─► 502 (PH) ─┐
 *                                   └─ any other response ────────┴─► handBack ─► node:http parses on
 *
 * An Upgrade request with a body, or not in HTTP/1.1, is not upgraded (a server may ignore Upgrade,
 * RFC 9110 §7.8; in HTTP/1.0 it must), nor one without Host: its head is re-serialised without the
 * upgrade and handed back to node:http with the rest of the bytes, and it is parsed and served (or
 * refused) as a plain request.
 */

const kHeld = Symbol('pairlb.upgradeHeld');
const kListener = Symbol('pairlb.listener');
type UpgradeRes = ServerResponse & { [kHeld]?: HeldBytes; [kListener]?: Listener; _last?: boolean };

/** Held client bytes beyond this: stop reading until we know what they are. */
const HOLD_MAX = 64 << 10;

/**
 * What the client sends after an Upgrade request's head, from the moment node:http detached the
 * socket until pairlb knows whether it is a tunnel's first bytes or the next HTTP requests. It is
 * read (a paused socket would never see the client close, and the backend connection would wait
 * for ever) and kept in order, up to HOLD_MAX; a client that half-closes meanwhile is gone (as
 * node:http treats an end of input while requests are pending).
 */
export class HeldBytes {
  private readonly chunks: Buffer[] = [];
  private bytes = 0;
  private readonly onData = (d: Buffer): void => {
    this.chunks.push(d);
    this.bytes += d.length;
    if (this.bytes >= HOLD_MAX) this.sock.pause();
  };
  private readonly onEnd = (): void => { this.sock.destroy(); };

  constructor(private readonly sock: Socket, head: Buffer) {
    if (head.length) { this.chunks.push(head); this.bytes = head.length; }
    sock.on('data', this.onData);
    sock.on('end', this.onEnd);
  }

  /**
   * Stop reading and return everything held, in order. The socket is left as node:http leaves an
   * upgraded one (not flowing, neither paused: its next reader starts it).
   */
  take(): Buffer {
    this.sock.removeListener('data', this.onData);
    this.sock.removeListener('end', this.onEnd);
    this.sock.pause();
    (this.sock as { readableFlowing: boolean | null }).readableFlowing = null;
    const b = this.chunks.length === 1 ? this.chunks[0] : Buffer.concat(this.chunks);
    this.chunks.length = 0;
    return b;
  }
}

function hasToken(v: string | undefined, token: string): boolean {
  if (v === undefined) return false;
  for (const t of v.split(',')) if (t.trim().toLowerCase() === token) return true;
  return false;
}

function lowerTokens(v: string): string[] {
  const out: string[] = [];
  for (const t of v.split(',')) { const x = t.trim().toLowerCase(); if (x) out.push(x); }
  return out;
}

const WS_KEY = /^[A-Za-z0-9+/]{22}==$/;

const str = (x: Buffer | string): string => (typeof x === 'string' ? x : x.toString('latin1'));

/**
 * Whether a 101's headers switch to protocols the client asked for (`asked` is its Upgrade
 * header): `Connection` must list `upgrade` and every protocol of `Upgrade` must have been asked.
 */
export function switchedTo(asked: string, raw: (Buffer | string)[]): boolean {
  let upgrade = '';
  let connection = false;
  for (let i = 0; i < raw.length; i += 2) {
    const k = str(raw[i]).toLowerCase();
    if (k === 'upgrade') upgrade += (upgrade ? ',' : '') + str(raw[i + 1]);
    else if (k === 'connection' && hasToken(str(raw[i + 1]), 'upgrade')) connection = true;
  }
  if (!connection) return false;
  const want = lowerTokens(asked);
  const got = lowerTokens(upgrade);
  return got.length > 0 && got.every((p) => want.includes(p));
}

/** The request head without its upgrade (Upgrade header and the `upgrade` Connection token). */
function plainHead(req: IncomingMessage): string {
  let out = `${req.method} ${req.url} HTTP/${req.httpVersion}\r\n`;
  const raw = req.rawHeaders;
  for (let i = 0; i < raw.length; i += 2) {
    const k = raw[i].toLowerCase();
    if (k === 'upgrade') continue;
    let v = raw[i + 1];
    if (k === 'connection') {
      v = v.split(',').map((t) => t.trim()).filter((t) => t && t.toLowerCase() !== 'upgrade').join(', ');
      if (!v) continue;
    }
    // Names and values were validated by llhttp (no CR, LF or NUL): re-serialising them is exact.
    out += `${raw[i]}: ${v}\r\n`;
  }
  return out + '\r\n';
}

/**
 * Serve one Upgrade request (the connection's earlier requests are done). `held` has the bytes
 * that followed its head.
 */
export function startUpgrade(l: Listener, req: IncomingMessage, held: HeldBytes): void {
  const sock = req.socket;
  const h = req.headers;
  const cl = h['content-length'];
  // Replayed, node:http's own checks apply, then ours in Listener.handle (a missing Host gets 400
  // there, which the 'upgrade' path does not check).
  if (req.httpVersion !== '1.1' || (cl !== undefined && cl !== '0') || h['transfer-encoding'] !== undefined || h.host === undefined) {
    l.next(sock); // this one is not served here: the replayed request takes its turn
    handBack(l, sock, held.take(), plainHead(req));
    return;
  }
  const res = new ServerResponse(req) as UpgradeRes;
  res.shouldKeepAlive = !hasToken(h.connection, 'close');
  res[kHeld] = held;
  res[kListener] = l;
  res.assignSocket(sock);
  res.once('finish', onManualFinish);
  // RFC 6455 §4.1, §4.2.1: a WebSocket handshake carries a key, base64 of 16 bytes. HAProxy refuses
  // one without (400); so does pairlb, before choosing a backend.
  if (hasToken(h.upgrade, 'websocket') && !WS_KEY.test(h['sec-websocket-key'] ?? '')) {
    l.counters.begin(Date.now());
    l.counters.errReq++;
    l.reject(req, res, 400);
    return;
  }
  l.handle(req, res, h.upgrade!, held);
}

/** What node:http's resOnFinish does for its own responses, for ours on a detached socket. */
function onManualFinish(this: UpgradeRes): void {
  const sock = this.socket;
  if (!sock) return;
  this.detachSocket(sock);
  process.nextTick(afterManualFinish, this, sock);
}

function afterManualFinish(res: UpgradeRes, sock: Socket): void {
  res.destroyed = true;
  res.emit('close'); // ends the Exchange: counters, access log, the connection's next request
  // _last: node:http's own "no keep-alive after this response" (Connection: close, HTTP/1.0…).
  const bytes = res[kHeld]!.take();
  if (res._last || !res.shouldKeepAlive) { sock.destroySoon(); return; }
  handBack(res[kListener]!, sock, bytes, null);
}

/**
 * Give the socket back to node:http, which parses it as a new connection: first `prefix` (a
 * replayed request head), then `head`, then whatever the client sent meanwhile.
 */
function handBack(l: Listener, sock: Socket, head: Buffer, prefix: string | null): void {
  const server = l.server;
  if (server === undefined || sock.destroyed) { sock.destroy(); return; }
  try {
    if (head.length) sock.unshift(head);
    if (prefix !== null) sock.unshift(Buffer.from(prefix, 'latin1'));
  } catch {
    sock.destroy();
    return;
  }
  l.handedBack(sock);
  // Public API: "this event can also be explicitly emitted by users to inject connections". A TLS
  // socket goes back past the handshake: node:https serves HTTP on 'secureConnection'.
  server.emit(isTls(sock) ? 'secureConnection' : 'connection', sock);
}

/**
 * The backend switched protocols: write its 101 to the client and relay bytes both ways until
 * either side closes, fails, or nothing moved either way for `timeouts.tunnel` (the client socket's
 * idle timer sees both directions: reads from the client and writes to it). One access-log line
 * when it ends: status 101, Ta = whole duration, bytes both ways, termination `--` (closed),
 * `CD`/`SD` (client/server error), `cD` (idle timeout).
 */
export function openTunnel(ex: Exchange, up: Socket, raw: (Buffer | string)[]): void {
  const l = ex.l;
  const client = ex.socket;
  const res = ex.res as UpgradeRes;
  // The 101 is written raw; the ServerResponse is never used (and never emits 'close').
  if (res.socket) res.detachSocket(client);
  let head = 'HTTP/1.1 101 Switching Protocols\r\n';
  for (let i = 0; i < raw.length; i += 2) head += `${str(raw[i])}: ${str(raw[i + 1])}\r\n`;
  client.write(head + '\r\n', 'latin1');
  const written0 = client.bytesWritten;
  const early = ex.upgradeHeld!.take();
  if (early.length) up.write(early);
  ex.upgradeHeld = null;

  const lc = l.counters;
  const rc = ex.route!.counters;
  lc.tunnels++; lc.tunnelsCur++;
  rc.tunnels++; rc.tunnelsCur++;
  let over = false;
  const end = (termination: string): void => {
    if (over) return;
    over = true;
    lc.tunnelsCur--;
    rc.tunnelsCur--;
    client.destroy();
    up.destroy();
    ex.termination = termination;
    ex.bytesOut = client.bytesWritten - written0;
    ex.finished = true;
    l.finish(ex);
  };
  client.setTimeout(l.s.tunnelMs);
  client.on('timeout', () => end('cD'));
  client.on('error', () => end('CD'));
  up.on('error', () => end('SD'));
  client.on('close', () => end('--'));
  up.on('close', () => end('--'));
  up.setNoDelay(true);
  up.pipe(client);
  client.pipe(up);
}
