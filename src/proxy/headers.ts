import type { ListenSettings } from './listener.js';
import type { PoolSettings } from './pool.js';
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
  /** Framed by Transfer-Encoding: chunked. */
  chunked: boolean;
  /** 0, or the status to refuse the request with before any backend is chosen (the client's mistake). */
  refuse: number;
  /** The request had a Host line (RFC 9112 §3.2: HTTP/1.1 needs one, even with an absolute-form target). */
  hostLine: boolean;
}

/**
 * Host = uri-host [ ":" port ] (RFC 9110 §7.2, RFC 3986 §3.2.2): a reg-name or IPv4 address, or an
 * IP literal, then digits; empty is allowed (a target without authority). Anything else gets 400
 * (RFC 9112 §3.2: "a Host header field with an invalid field value"): backends and the
 * X-Forwarded-Host we derive from it must never see `a b`, `a/x` or `x:abc`.
 */
export const HOST_VALUE = /^(?:[A-Za-z0-9._~!$&'()*+,;=%-]*|\[[0-9A-Fa-f:.]+\])(?::[0-9]*)?$/;
/** A list of transfer-coding tokens (RFC 9112 §6.1): well-formed, so an unknown one is 501, not 400. */
const CODINGS = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+(?:[ \t]*,[ \t]*[!#$%&'*+\-.^_`|~0-9A-Za-z]+)*$/;

/**
 * The request head as the backend must see it, for both proxied requests and Upgrade tunnels.
 * `s`: the frontend's settings; `ps`: the pool's (sticky cookie), NO_POOL's for a rule's own answer.
 * `authority`: that of an absolute-form request-target, which replaces the Host header.
 * Refused (431) beyond `max_headers` lines: node:http keeps max_headers + 1, so an excess shows.
 * `tls`: the client connection is TLS (src/tls/flag.ts): X-Forwarded-Proto and Forwarded say https.
 * Hot path: only names whose length is one we care about are lowercased and compared, so most
 * headers (user-agent, accept…) are copied without allocating.
 */
export function rewriteRequestHeaders(s: ListenSettings, ps: PoolSettings, raw: string[], ip: string, authority?: string, tls = false): RequestHead {
  const headers: string[] = [];
  let xff: string | undefined;
  let stickyId: string | undefined;
  let connTokens: string | null = null;
  let host: string | undefined;
  let hasBody = false;
  let chunked = false;
  let refuse = raw.length > s.maxHeaderFields ? 431 : 0;
  const lens = s.interestingLengths;
  for (let i = 0; i < raw.length; i += 2) {
    const k = raw[i];
    if (k.length >= lens.length || lens[k.length] === 0) { headers.push(k, raw[i + 1]); continue; }
    const lk = k.toLowerCase();
    if (HOP.has(lk)) {
      if (lk === 'connection') connTokens = connTokens === null ? raw[i + 1].toLowerCase() : connTokens + ',' + raw[i + 1].toLowerCase();
      // llhttp already refused requests with both Transfer-Encoding and Content-Length. It takes
      // any list whose last coding is chunked as chunked; we forward only what every parser reads
      // the same way: one line, exactly `chunked` (RFC 9112 §6.1; unknown codings SHOULD get 501).
      else if (lk === 'transfer-encoding') {
        const v = raw[i + 1];
        if (chunked || v.length !== 7 || v.toLowerCase() !== 'chunked') refuse ||= chunked || !CODINGS.test(v) ? 400 : 501;
        hasBody = chunked = true;
      }
      continue;
    }
    if (s.xff && lk === s.xffLower) { xff = xff === undefined ? raw[i + 1] : xff + ', ' + raw[i + 1]; continue; }
    if (lk === 'host') {
      // RFC 9112 §3.2: more than one Host line, or an invalid value, is a 400. With an
      // absolute-form target the client MUST send Host identical to its authority (§3.2.2): a
      // different one is refused, as HAProxy does; the authority is what goes upstream.
      const v = raw[i + 1];
      if (host !== undefined || !HOST_VALUE.test(v) || (authority !== undefined && v.toLowerCase() !== authority.toLowerCase())) refuse ||= 400;
      host = authority ?? v;
      headers.push(k, host);
      continue;
    } else if (lk === 'content-length') {
      const v = raw[i + 1];
      if (v !== '0') hasBody = true;
      // llhttp takes up to 2^64-1; the engines hold it in a double, so 9999999999999999999 would
      // go out as 10000000000000000000 (another framing). 15 digits are exact, and ~900 TB.
      if (v.length > 15) refuse ||= 413;
    }
    else if (s.xproto && (lk === 'x-forwarded-proto' || lk === 'x-forwarded-host' || lk === 'x-forwarded-port')) continue;
    else if (ps.cookieMode !== 0 && lk === 'cookie') {
      const r = ps.cookieMode === 1 ? readInsertCookie(raw[i + 1], ps.cookieName, ps.cookieIndirect) : readPrefixCookie(raw[i + 1], ps.cookieName);
      if (r.id !== undefined) stickyId = r.id;
      if (r.forward !== null) headers.push(k, r.forward);
      continue;
    }
    headers.push(k, raw[i + 1]);
  }
  const hostLine = host !== undefined;
  if (authority !== undefined && host === undefined) headers.push('Host', (host = authority));
  if (connTokens !== null && connTokens !== 'keep-alive' && connTokens !== 'close') {
    for (const t of connTokens.split(',')) {
      const tok = t.trim();
      // Host is never hop-by-hop: dropping it would send the backend's own address instead.
      if (tok === 'keep-alive' || tok === 'close' || tok === 'host' || !tok) continue;
      for (let i = headers.length - 2; i >= 0; i -= 2) if (headers[i].toLowerCase() === tok) headers.splice(i, 2);
    }
  }
  if (s.xff) {
    headers.push(s.xffName, xff === undefined ? ip : xff + ', ' + ip);
    if (s.xproto) {
      headers.push('X-Forwarded-Proto', tls ? 'https' : 'http', 'X-Forwarded-Port', s.port);
      if (host !== undefined) headers.push('X-Forwarded-Host', host);
    }
  }
  if (s.forwarded) {
    // RFC 7239 §4, §6: IPv6 nodes are quoted and bracketed.
    const node = ip.includes(':') ? `"[${ip}]"` : ip;
    const v = `for=${node};proto=${tls ? 'https' : 'http'}` + (host ? `;host="${host}"` : '');
    let j = -1;
    for (let i = 0; i < headers.length; i += 2) if (headers[i].length === 9 && headers[i].toLowerCase() === 'forwarded') j = i;
    if (j >= 0) headers[j + 1] += ', ' + v; else headers.push('Forwarded', v);
  }
  return { headers, stickyId, hasBody, chunked, refuse, hostLine };
}
