import { connect, type Socket } from 'node:net';
import type { IncomingMessage } from 'node:http';
import { clientIp, type Listener } from './listener.js';
import { rawErrorResponse } from './error-pages.js';
import { rewriteRequestHeaders } from './headers.js';

/**
 * `Upgrade` requests (WebSocket) are tunnelled: the request head is rewritten as for any request
 * (rewriteRequestHeaders: forwarding headers, sticky cookie, hop-by-hop) and sent to a backend
 * over a new TCP connection, then bytes are relayed both ways until either side closes. The backend's 101 (or refusal) goes back to the client untouched.
 */
export function tunnelUpgrade(l: Listener, req: IncomingMessage, client: Socket, head: Buffer): void {
  const s = l.s;
  const lc = l.counters;
  lc.begin(Date.now());
  const { headers, stickyId, refuse } = rewriteRequestHeaders(s, req.rawHeaders, clientIp(client));
  client.on('error', () => {});
  if (refuse !== 0 || req.httpVersionMajor !== 1 || req.url!.includes('#')) { lc.errReq++; lc.cur--; client.end(rawErrorResponse(refuse || 400)); return; }
  let out = `${req.method} ${req.url} HTTP/1.1\r\n`;
  for (let i = 0; i < headers.length; i += 2) out += `${headers[i]}: ${headers[i + 1]}\r\n`;
  // The same rewriting as a proxied request, plus the two hop-by-hop headers that make it an upgrade.
  out += `Connection: Upgrade\r\nUpgrade: ${req.headers.upgrade}\r\n\r\n`;

  const routing = l.routing;
  const route = (stickyId !== undefined ? routing.byCookie.get(stickyId) : undefined) ?? routing.pick(null);
  let done = false;
  const finish = () => { if (!done) { done = true; lc.cur--; if (route) route.counters.cur--; } };
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
