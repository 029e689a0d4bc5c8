import { HOST_VALUE } from '../proxy/headers.js';

/**
 * An HTTP/2 request head as the HTTP/1.1 request pipeline (src/proxy/listener.ts) reads it:
 * RFC 9113 §8.3.1 pseudo-header fields → method, target and authority; §8.2.2 connection-specific
 * fields refused; §8.2.3 `cookie` fields joined. Pure: no sockets, table-tested in
 * test/unit/h2-translate.test.ts.
 *
 * nghttp2 (inside node:http2) already resets streams whose head breaks RFC 9113's messaging rules
 * (uppercase names, pseudo-fields after regular ones or repeated, connection-specific fields,
 * `te` other than `trailers`, a content-length its DATA frames contradict). The same checks are
 * made again here, so a request that reaches the pipeline is well-formed whatever nghttp2 lets
 * through, and a refusal is an HTTP answer the client can read (400), counted as the frontend's
 * request error before any backend is chosen.
 */
export interface H2Head {
  /** 0, or the status to refuse the request with (the client's mistake: never a backend's). */
  refuse: number;
  method: string;
  /** What goes on the upstream request line: origin-form, or `*` (OPTIONS). */
  path: string;
  /** :authority, or undefined; it replaces Host (a Host that differs is refused by rewriteRequestHeaders). */
  authority: string | undefined;
  /** Regular fields only, flat [name, value…]; the cookie fields joined into one at the first one's place. */
  raw: string[];
}

/** RFC 9113 §8.2.2: a request carrying one of these is malformed (`te` is allowed with the value `trailers`). */
const CONNECTION_SPECIFIC = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'upgrade']);
/** Name lengths of the fields looked at (cookie, te, host, content-length and the set above); the rest is copied. */
const LENS = new Uint8Array(20);
for (const n of [...CONNECTION_SPECIFIC, 'cookie', 'te', 'host', 'content-length']) LENS[n.length] = 1;
const DIGITS = /^[0-9]+$/;

const bad = (status: number): H2Head => ({ refuse: status, method: '', path: '', authority: undefined, raw: [] });

/**
 * `raw`: the stream's header list as node:http2 gives it (flat, names lowercase, pseudo-fields
 * first). Never throws; a malformed head comes back with `refuse` set.
 *   400: pseudo-fields missing, repeated, unknown or invalid (:scheme not http/https, :path not
 *        origin-form or `*`, a fragment, :authority with userinfo), no :authority and no Host,
 *        connection-specific fields, `te` other than `trailers`, a content-length that is not
 *        one number.
 *   501: CONNECT (pairlb is not a forward proxy, and RFC 8441's extended CONNECT is not
 *        offered: SETTINGS_ENABLE_CONNECT_PROTOCOL is never sent) — as HTTP/1.1 CONNECT.
 */
export function h2RequestHead(raw: readonly string[]): H2Head {
  let method: string | undefined;
  let scheme: string | undefined;
  let path: string | undefined;
  let authority: string | undefined;
  let i = 0;
  for (; i < raw.length; i += 2) {
    const k = raw[i];
    if (k.charCodeAt(0) !== 58 /* : */) break;
    const v = raw[i + 1];
    switch (k) {
      case ':method': if (method !== undefined) return bad(400); method = v; break;
      case ':scheme': if (scheme !== undefined) return bad(400); scheme = v; break;
      case ':path': if (path !== undefined) return bad(400); path = v; break;
      case ':authority': if (authority !== undefined) return bad(400); authority = v; break;
      // :protocol (RFC 8441) is only valid once the server enabled it; :status is a response field.
      default: return bad(400);
    }
  }
  if (method === undefined || method === '') return bad(400);
  if (method === 'CONNECT') return bad(501);
  // RFC 9113 §8.3.1: :scheme and :path are required for every other method; :path is not empty.
  if (scheme === undefined || path === undefined || path === '') return bad(400);
  const sl = scheme.length === 4 || scheme.length === 5 ? scheme.toLowerCase() : '';
  if (sl !== 'http' && sl !== 'https') return bad(400);
  if (path.charCodeAt(0) !== 47 /* / */ && !(path === '*' && method === 'OPTIONS')) return bad(400);
  if (path.includes('#')) return bad(400);
  if (authority !== undefined) {
    // §8.3.1: the authority MUST NOT include userinfo (`@` is not in HOST_VALUE); empty is no authority.
    if (authority === '') authority = undefined;
    else if (authority.charCodeAt(0) === 58 /* : */ || !HOST_VALUE.test(authority)) return bad(400);
  }
  const out: string[] = [];
  let cookieAt = -1;
  let host = false;
  let length = false;
  for (; i < raw.length; i += 2) {
    const k = raw[i];
    const v = raw[i + 1];
    if (k.length < LENS.length && LENS[k.length] === 1) {
      if (k.charCodeAt(0) === 58) return bad(400);
      if (CONNECTION_SPECIFIC.has(k)) return bad(400);
      if (k === 'te') { if (v.toLowerCase() !== 'trailers') return bad(400); out.push(k, v); continue; }
      if (k === 'cookie') {
        // §8.2.3: a client may split the cookie into several fields; an HTTP/1.1 server wants one.
        if (cookieAt < 0) { cookieAt = out.length; out.push(k, v); } else out[cookieAt + 1] += '; ' + v;
        continue;
      }
      if (k === 'host') host = true;
      else if (k === 'content-length') {
        if (length || !DIGITS.test(v)) return bad(400);
        length = true;
      }
    } else if (k.charCodeAt(0) === 58) return bad(400);
    out.push(k, v);
  }
  // The HTTP/1.1 request needs a Host (RFC 9112 §3.2); without either there is nothing to send.
  if (authority === undefined && !host) return bad(400);
  return { refuse: 0, method, path, authority, raw: out };
}
