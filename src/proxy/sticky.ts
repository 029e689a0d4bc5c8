/**
 * Cookie persistence, HAProxy's two modes (configuration.txt, "cookie"):
 *  - insert: we add `Set-Cookie: <name>=<server id>` when the client did not present the right one;
 *    `indirect` also removes our cookie from requests, so the application never sees it.
 *  - prefix: the application's own cookie (JSESSIONID) carries `<server id>~` in front of its value
 *    towards the client; we strip it on requests.
 * Server ids are config/hash values, never addresses. Cookie syntax per RFC 6265 §4.2.1 (requests:
 * `name=value; name2=value2`) and §4.1.1 (Set-Cookie: `name=value; attrs`).
 */

/** Position of `name=` as a cookie-pair inside a Cookie header value, or -1. */
export function findCookie(header: string, name: string): number {
  let from = 0;
  for (;;) {
    const i = header.indexOf(name, from);
    if (i < 0) return -1;
    const end = i + name.length;
    if (header.charCodeAt(end) === 61 /* = */) {
      let j = i - 1;
      while (j >= 0 && header.charCodeAt(j) === 32) j--;
      if (j < 0 || header.charCodeAt(j) === 59 /* ; */) return i;
    }
    from = end;
  }
}

function valueEnd(header: string, start: number): number {
  const semi = header.indexOf(';', start);
  return semi < 0 ? header.length : semi;
}

export interface CookieRead {
  /** Server id found (insert: whole value; prefix: part before `~`), or undefined. */
  id: string | undefined;
  /** The header value to forward (cookie removed or prefix stripped), or null to drop the header. */
  forward: string | null;
}

/** insert mode: read our cookie; with `remove` (indirect) take it out of the forwarded header. */
export function readInsertCookie(header: string, name: string, remove: boolean): CookieRead {
  const i = findCookie(header, name);
  if (i < 0) return { id: undefined, forward: header };
  const vStart = i + name.length + 1;
  const vEnd = valueEnd(header, vStart);
  let id = header.slice(vStart, vEnd).trim();
  if (id.length > 1 && id.charCodeAt(0) === 34 && id.charCodeAt(id.length - 1) === 34) id = id.slice(1, -1);
  if (!remove) return { id, forward: header };
  // Remove "name=value" and one separator.
  let before = header.slice(0, i).replace(/;\s*$/, '');
  let after = header.slice(vEnd).replace(/^;\s*/, '');
  const joined = before && after ? before + '; ' + after : before + after;
  return { id, forward: joined.trim() === '' ? null : joined };
}

/** prefix mode: `NAME=<id>~<value>` → id, and the header with `NAME=<value>`. */
export function readPrefixCookie(header: string, name: string): CookieRead {
  const i = findCookie(header, name);
  if (i < 0) return { id: undefined, forward: header };
  const vStart = i + name.length + 1;
  const vEnd = valueEnd(header, vStart);
  const tilde = header.indexOf('~', vStart);
  if (tilde < 0 || tilde >= vEnd) return { id: undefined, forward: header };
  return { id: header.slice(vStart, tilde), forward: header.slice(0, vStart) + header.slice(tilde + 1) };
}

/**
 * prefix mode, response side: `Set-Cookie: NAME=value; …` → `NAME=<id>~value; …`.
 * Returns the input unchanged when the Set-Cookie is for another cookie.
 */
export function prefixSetCookie(setCookie: string, name: string, id: string): string {
  let s = 0;
  while (s < setCookie.length && setCookie.charCodeAt(s) === 32) s++;
  if (!setCookie.startsWith(name, s) || setCookie.charCodeAt(s + name.length) !== 61) return setCookie;
  const v = s + name.length + 1;
  return setCookie.slice(0, v) + id + '~' + setCookie.slice(v);
}

export interface InsertCookieOptions {
  name: string; secure: boolean; httponly: boolean; samesite?: string; domain?: string; maxage?: number;
}

/** The full Set-Cookie value for a server id (built once per backend at snapshot time). */
export function insertCookieValue(o: InsertCookieOptions, id: string): string {
  let s = `${o.name}=${id}; Path=/`;
  if (o.domain) s += `; Domain=${o.domain}`;
  if (o.maxage) s += `; Max-Age=${o.maxage}`;
  if (o.httponly) s += '; HttpOnly';
  if (o.secure) s += '; Secure';
  if (o.samesite) s += `; SameSite=${o.samesite}`;
  return s;
}
