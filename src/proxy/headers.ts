import type { ListenSettings } from './listener.js';
import { readInsertCookie, readPrefixCookie } from './sticky.js';

/**
 * Hop-by-hop headers (RFC 9110 §7.6.1) plus those a proxy must regenerate. Never forwarded in
 * either direction; names listed in a Connection header are dropped too.
 */
export const HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'te', 'trailer', 'upgrade', 'http2-settings', 'expect']);

export interface RequestHead {
  /** Flat [name, value…] to send upstream: hop-by-hop removed, sticky cookie handled, forwarding headers added. */
  headers: string[];
  /** Server id from the sticky cookie, if any. */
  stickyId: string | undefined;
  /** Framed by Transfer-Encoding or a non-zero Content-Length (RFC 9112 §6.3). */
  hasBody: boolean;
}

/**
 * The request head as the backend must see it, for both proxied requests and Upgrade tunnels.
 * Hot path: only names whose length is one we care about are lowercased and compared, so most
 * headers (user-agent, accept…) are copied without allocating.
 */
export function rewriteRequestHeaders(s: ListenSettings, raw: string[], ip: string): RequestHead {
  const headers: string[] = [];
  let xff: string | undefined;
  let stickyId: string | undefined;
  let connTokens: string | null = null;
  let host: string | undefined;
  let hasBody = false;
  const lens = s.interestingLengths;
  for (let i = 0; i < raw.length; i += 2) {
    const k = raw[i];
    if (k.length >= lens.length || lens[k.length] === 0) { headers.push(k, raw[i + 1]); continue; }
    const lk = k.toLowerCase();
    if (HOP.has(lk)) {
      if (lk === 'connection') connTokens = connTokens === null ? raw[i + 1].toLowerCase() : connTokens + ',' + raw[i + 1].toLowerCase();
      // llhttp already refused requests with both Transfer-Encoding and Content-Length.
      else if (lk === 'transfer-encoding') hasBody = true;
      continue;
    }
    if (s.xff && lk === s.xffLower) { xff = xff === undefined ? raw[i + 1] : xff + ', ' + raw[i + 1]; continue; }
    if (lk === 'host') host = raw[i + 1];
    else if (lk === 'content-length') { if (raw[i + 1] !== '0') hasBody = true; }
    else if (s.xproto && (lk === 'x-forwarded-proto' || lk === 'x-forwarded-host' || lk === 'x-forwarded-port')) continue;
    else if (s.cookieMode !== 0 && lk === 'cookie') {
      const r = s.cookieMode === 1 ? readInsertCookie(raw[i + 1], s.cookieName, s.cookieIndirect) : readPrefixCookie(raw[i + 1], s.cookieName);
      if (r.id !== undefined) stickyId = r.id;
      if (r.forward !== null) headers.push(k, r.forward);
      continue;
    }
    headers.push(k, raw[i + 1]);
  }
  if (connTokens !== null && connTokens !== 'keep-alive' && connTokens !== 'close') {
    for (const t of connTokens.split(',')) {
      const tok = t.trim();
      if (tok === 'keep-alive' || tok === 'close' || !tok) continue;
      for (let i = headers.length - 2; i >= 0; i -= 2) if (headers[i].toLowerCase() === tok) headers.splice(i, 2);
    }
  }
  if (s.xff) {
    headers.push(s.xffName, xff === undefined ? ip : xff + ', ' + ip);
    if (s.xproto) {
      headers.push('X-Forwarded-Proto', 'http', 'X-Forwarded-Port', s.port);
      if (host !== undefined) headers.push('X-Forwarded-Host', host);
    }
  }
  if (s.forwarded) {
    // RFC 7239 §4, §6: IPv6 nodes are quoted and bracketed.
    const node = ip.includes(':') ? `"[${ip}]"` : ip;
    const v = `for=${node};proto=http` + (host ? `;host="${host}"` : '');
    let j = -1;
    for (let i = 0; i < headers.length; i += 2) if (headers[i].length === 9 && headers[i].toLowerCase() === 'forwarded') j = i;
    if (j >= 0) headers[j + 1] += ', ' + v; else headers.push('Forwarded', v);
  }
  return { headers, stickyId, hasBody };
}
