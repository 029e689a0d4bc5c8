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
 * any keep-alive connection (HAProxy keeps parsing too). Until the backend answered, nothing more is
 * read from the client: bytes after the request head wait in the socket.
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

const kHead = Symbol('pairlb.upgradeHead');
const kListener = Symbol('pairlb.listener');
type UpgradeRes = ServerResponse & { [kHead]?: Buffer; [kListener]?: Listener; _last?: boolean };

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
 * Serve one Upgrade request (the connection's earlier requests are done). `head` holds the bytes
 * that followed its head in the same read.
 */
export function startUpgrade(l: Listener, req: IncomingMessage, head: Buffer): void {
  const sock = req.socket;
  const h = req.headers;
  const cl = h['content-length'];
  // Replayed, node:http's own checks apply, then ours in Listener.handle (a missing Host gets 400
  // there, which the 'upgrade' path does not check).
  if (req.httpVersion !== '1.1' || (cl !== undefined && cl !== '0') || h['transfer-encoding'] !== undefined || h.host === undefined) {
    l.next(sock); // this one is not served here: the replayed request takes its turn
    handBack(l, sock, head, plainHead(req));
    return;
  }
  const res = new ServerResponse(req) as UpgradeRes;
  res.shouldKeepAlive = !hasToken(h.connection, 'close');
  res[kHead] = head;
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
  l.handle(req, res, h.upgrade!, head);
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
  if (res._last || !res.shouldKeepAlive) { sock.destroySoon(); return; }
  handBack(res[kListener]!, sock, res[kHead]!, null);
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
  // Public API: "this event can also be explicitly emitted by users to inject connections".
  server.emit('connection', sock);
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
  const held = ex.upgradeHead;
  if (held !== null && held.length) up.write(held);
  ex.upgradeHead = null;

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
