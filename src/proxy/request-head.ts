import { HOST_VALUE } from './headers.js';

/**
 * The request-target forms other than origin-form (RFC 9112 §3.2.3-4). Header-level refusals
 * (two Host lines, max_headers, Transfer-Encoding…) live in headers.ts; both are the client's
 * mistake: they count as the listen section's request error, never against a backend.
 */

export interface Target {
  /** What goes on the upstream request line: origin-form, or `*`. */
  path: string;
  /** The authority of an absolute-form target: it replaces Host (RFC 9112 §3.2.2). */
  authority: string | undefined;
}

/**
 * The request-target (RFC 9112 §3.2) as pairlb forwards it, or undefined for a target to refuse
 * with 400: asterisk-form with another method than OPTIONS (§3.2.4), an absolute-form that is not
 * http(s), whose authority is empty or carries userinfo (RFC 9110 §4.2.1, §4.2.4), or that has a
 * query without a path. (A Host that differs from the authority is refused in headers.ts.)
 * Called only for targets that do not start with `/` (origin-form is forwarded as received).
 */
export function nonOriginTarget(url: string, method: string): Target | undefined {
  if (url === '*') return method === 'OPTIONS' ? { path: '*', authority: undefined } : undefined;
  const sep = url.indexOf('://');
  if (sep !== 4 && sep !== 5) return undefined;
  const scheme = url.slice(0, sep).toLowerCase();
  if (scheme !== 'http' && scheme !== 'https') return undefined;
  let end = sep + 3;
  while (end < url.length) {
    const c = url.charCodeAt(end);
    if (c === 47 /* / */ || c === 63 /* ? */ || c === 35 /* # */) break;
    end++;
  }
  const authority = url.slice(sep + 3, end);
  // A Host value, not empty (no userinfo: `@` is not in HOST_VALUE).
  if (end === sep + 3 || authority.charCodeAt(0) === 58 /* : */ || !HOST_VALUE.test(authority)) return undefined;
  // `http://a?x` (no path before the query) is valid RFC 3986 but HAProxy refuses it: so do we.
  if (end < url.length && url.charCodeAt(end) !== 47) return undefined;
  return { path: end < url.length ? url.slice(end) : '/', authority };
}
