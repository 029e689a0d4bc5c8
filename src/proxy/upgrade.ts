import { connect, type Socket } from 'node:net';
import type { IncomingMessage } from 'node:http';
import type { Listener } from './listener.js';
import { rawErrorResponse } from './error-pages.js';
import { readInsertCookie, readPrefixCookie } from './sticky.js';

/**
 * `Upgrade` requests (WebSocket) are tunnelled: the request head is rewritten (X-Forwarded-For
 * appended) and sent to a backend over a new TCP connection, then bytes are relayed both ways
 * until either side closes. The backend's 101 (or refusal) goes back to the client untouched.
 */
export function tunnelUpgrade(l: Listener, req: IncomingMessage, client: Socket, head: Buffer): void {
  const s = l.s;
  const lc = l.counters;
  lc.begin(Date.now());
  let stickyId: string | undefined;
  let xff: string | undefined;
  let out = `${req.method} ${req.url} HTTP/1.1\r\n`;
  const raw = req.rawHeaders;
  for (let i = 0; i < raw.length; i += 2) {
    const lk = raw[i].toLowerCase();
    let v = raw[i + 1];
    if (lk === 'keep-alive' || lk === 'proxy-connection' || lk === 'te' || lk === 'trailer') continue;
    if (s.xff && lk === s.xffLower) { xff = xff === undefined ? v : xff + ', ' + v; continue; }
    if (s.cookieMode !== 0 && lk === 'cookie') {
      const r = s.cookieMode === 1 ? readInsertCookie(v, s.cookieName, s.cookieIndirect) : readPrefixCookie(v, s.cookieName);
      stickyId = r.id ?? stickyId;
      if (r.forward === null) continue;
      v = r.forward;
    }
    out += `${raw[i]}: ${v}\r\n`;
  }
  const ip = (client.remoteAddress ?? '').replace(/^::ffff:/, '');
  if (s.xff) out += `${s.xffName}: ${xff === undefined ? ip : xff + ', ' + ip}\r\n`;
  out += '\r\n';

  const routing = l.routing;
  const route = (stickyId !== undefined ? routing.byCookie.get(stickyId) : undefined) ?? routing.pick(null);
  let done = false;
  const finish = () => { if (!done) { done = true; lc.cur--; if (route) route.counters.cur--; } };
  client.on('error', () => {});
  if (!route) { client.end(rawErrorResponse(503)); finish(); return; }
  route.counters.begin(Date.now());
  const up = connect({ host: route.host, port: route.port, noDelay: true });
  const t = setTimeout(() => up.destroy(new Error('connect timeout')), s.cfg.timeouts.connect);
  up.once('connect', () => {
    clearTimeout(t);
    up.write(out);
    if (head.length) up.write(head);
    up.pipe(client);
    client.pipe(up);
  });
  up.on('error', (e) => {
    clearTimeout(t);
    if (!up.bytesRead) { route.counters.errConn++; if (client.writable) client.end(rawErrorResponse(502)); }
    else client.destroy();
    l.log.warn({ mod: 'proxy', listen: s.name, backend: route.name, err: e.message }, 'upgrade tunnel failed');
  });
  up.on('close', () => { client.destroy(); finish(); });
  client.on('close', () => { up.destroy(); finish(); });
}
