/**
 * A strict HTTP/1.1 request parser (RFC 9112) for the backend side of the edge tests: it reads
 * what a proxy forwarded and refuses anything a lenient parser could read two ways. Only what a
 * conforming proxy should ever send passes:
 *
 * - request-line `method SP request-target SP HTTP/1.x CRLF` (§3), one SP each, no leading empty
 *   line; the target is visible ASCII in origin-, absolute-, authority- (CONNECT) or asterisk-form
 *   (OPTIONS) (§3.2);
 * - field lines `token ":" OWS value OWS CRLF` (§5), no whitespace before the colon, no obs-fold,
 *   no CTL other than HTAB in a value, CRLF only (a bare CR or LF is an error, §2.2);
 * - framing (§6): Transfer-Encoding only as exactly `chunked` and never with Content-Length, never
 *   on HTTP/1.0; at most one Content-Length line, 1*DIGIT; HTTP/1.1 has exactly one Host (§3.2);
 * - chunked body (§7.1): 1*HEXDIG size (≤ 15 digits), extensions `;name[=token|quoted]`, data
 *   followed by CRLF, trailer fields parsed like header fields.
 */

export interface StrictRequest {
  method: string;
  target: string;
  version: string;
  /** Field lines as received: [name, value] with OWS trimmed. */
  headers: [string, string][];
  body: Buffer;
  framing: 'none' | 'length' | 'chunked';
  trailers: [string, string][];
}

export type ParseResult =
  | { kind: 'request'; req: StrictRequest; end: number }
  | { kind: 'incomplete' }
  | { kind: 'error'; reason: string };

const TCHAR = new Uint8Array(256);
for (const c of "!#$%&'*+-.^_`|~") TCHAR[c.charCodeAt(0)] = 1;
for (let c = 48; c <= 57; c++) TCHAR[c] = 1;
for (let c = 65; c <= 90; c++) { TCHAR[c] = 1; TCHAR[c + 32] = 1; }

const MAX_HEAD = 1 << 20;

function isToken(b: Buffer, from: number, to: number): boolean {
  if (to <= from) return false;
  for (let i = from; i < to; i++) if (!TCHAR[b[i]]) return false;
  return true;
}

/** Index of the CR of the next CRLF at or after `from`; -1 if not there yet; -2 on a bare CR/LF. */
function lineEnd(b: Buffer, from: number): number {
  for (let i = from; i < b.length; i++) {
    const c = b[i];
    if (c === 10) return -2;
    if (c === 13) {
      if (i + 1 >= b.length) return -1;
      return b[i + 1] === 10 ? i : -2;
    }
  }
  return -1;
}

type Fields = { fields: [string, string][]; end: number } | { error: string } | null;

/** Field lines from `pos` up to and including the empty line. null = incomplete. */
function parseFields(b: Buffer, pos: number): Fields {
  const fields: [string, string][] = [];
  for (;;) {
    const e = lineEnd(b, pos);
    if (e === -2) return { error: 'bare CR or LF in a field line' };
    if (e === -1) return b.length - pos > MAX_HEAD ? { error: 'head too large' } : null;
    if (e === pos) return { fields, end: pos + 2 };
    const first = b[pos];
    if (first === 32 || first === 9) return { error: 'obs-fold or leading whitespace in a field line' };
    const colon = b.indexOf(58, pos);
    if (colon < 0 || colon > e) return { error: 'field line without a colon' };
    if (!isToken(b, pos, colon)) return { error: 'field name is not a token' };
    let vs = colon + 1;
    let ve = e;
    while (vs < ve && (b[vs] === 32 || b[vs] === 9)) vs++;
    while (ve > vs && (b[ve - 1] === 32 || b[ve - 1] === 9)) ve--;
    for (let i = vs; i < ve; i++) {
      const c = b[i];
      if ((c < 32 && c !== 9) || c === 127) return { error: `control character 0x${c.toString(16)} in a field value` };
    }
    fields.push([b.toString('latin1', pos, colon), b.toString('latin1', vs, ve)]);
    pos = e + 2;
  }
}

const HOST_RE = /^(?:[A-Za-z0-9\-._~%!$&'()*+,;=]*|\[[0-9A-Fa-f:.]+\])(?::[0-9]*)?$/;
const ABSOLUTE_RE = /^[A-Za-z][A-Za-z0-9+.-]*:\/\/[^/?#]*/;

/** Parse one request starting at `pos` (strict). */
export function parseRequest(b: Buffer, pos = 0): ParseResult {
  const e = lineEnd(b, pos);
  if (e === -2) return { kind: 'error', reason: 'bare CR or LF in the request line' };
  if (e === -1) return b.length - pos > MAX_HEAD ? { kind: 'error', reason: 'request line too long' } : { kind: 'incomplete' };
  const line = b.toString('latin1', pos, e);
  const sp1 = line.indexOf(' ');
  const sp2 = sp1 < 0 ? -1 : line.indexOf(' ', sp1 + 1);
  if (sp1 <= 0 || sp2 < 0 || line.indexOf(' ', sp2 + 1) >= 0) return { kind: 'error', reason: `request line is not method SP target SP version: ${JSON.stringify(line)}` };
  const method = line.slice(0, sp1);
  const target = line.slice(sp1 + 1, sp2);
  const version = line.slice(sp2 + 1);
  if (!isToken(b, pos, pos + sp1)) return { kind: 'error', reason: 'method is not a token' };
  if (!/^HTTP\/1\.[01]$/.test(version)) return { kind: 'error', reason: `version ${JSON.stringify(version)}` };
  if (!/^[\x21-\x7e]+$/.test(target)) return { kind: 'error', reason: 'request-target has characters outside visible ASCII' };
  const form = target[0] === '/' ? 'origin' : target === '*' ? 'asterisk' : ABSOLUTE_RE.test(target) ? 'absolute' : 'authority';
  if (form === 'asterisk' && method !== 'OPTIONS') return { kind: 'error', reason: 'asterisk-form on a method other than OPTIONS' };
  if (form === 'authority' && (method !== 'CONNECT' || !HOST_RE.test(target))) return { kind: 'error', reason: `target ${JSON.stringify(target)} is in no valid form` };
  const f = parseFields(b, e + 2);
  if (f === null) return { kind: 'incomplete' };
  if ('error' in f) return { kind: 'error', reason: f.error };
  const headers = f.fields;
  let te: string[] | null = null;
  let cl: string | null = null;
  let hosts = 0;
  for (const [n, v] of headers) {
    const ln = n.toLowerCase();
    if (ln === 'transfer-encoding') te = (te ?? ([] as string[])).concat(v.split(',').map((t) => t.trim().toLowerCase()));
    else if (ln === 'content-length') {
      if (cl !== null) return { kind: 'error', reason: 'more than one Content-Length line' };
      cl = v;
    } else if (ln === 'host') {
      hosts++;
      if (!HOST_RE.test(v)) return { kind: 'error', reason: `invalid Host ${JSON.stringify(v)}` };
    }
  }
  if (version === 'HTTP/1.1' ? hosts !== 1 : hosts > 1) return { kind: 'error', reason: `${hosts} Host lines` };
  const req: StrictRequest = { method, target, version, headers, body: Buffer.alloc(0), framing: 'none', trailers: [] };
  let p = f.end;
  if (te !== null) {
    if (cl !== null) return { kind: 'error', reason: 'both Transfer-Encoding and Content-Length' };
    if (version !== 'HTTP/1.1') return { kind: 'error', reason: 'Transfer-Encoding on HTTP/1.0' };
    if (te.length !== 1 || te[0] !== 'chunked') return { kind: 'error', reason: `Transfer-Encoding ${JSON.stringify(te.join(','))}` };
    req.framing = 'chunked';
    const parts: Buffer[] = [];
    for (;;) {
      const ce = lineEnd(b, p);
      if (ce === -2) return { kind: 'error', reason: 'bare CR or LF in a chunk-size line' };
      if (ce === -1) return b.length - p > 4096 ? { kind: 'error', reason: 'chunk-size line too long' } : { kind: 'incomplete' };
      const sl = b.toString('latin1', p, ce);
      const m = /^([0-9A-Fa-f]{1,15})((?:;[!#$%&'*+\-.^_`|~0-9A-Za-z]+(?:=(?:[!#$%&'*+\-.^_`|~0-9A-Za-z]+|"(?:[\t \x21\x23-\x5b\x5d-\x7e\x80-\xff]|\\[\t \x21-\x7e\x80-\xff])*"))?)*)$/.exec(sl);
      if (!m) return { kind: 'error', reason: `chunk-size line ${JSON.stringify(sl)}` };
      const size = parseInt(m[1], 16);
      p = ce + 2;
      if (size === 0) {
        const t = parseFields(b, p);
        if (t === null) return { kind: 'incomplete' };
        if ('error' in t) return { kind: 'error', reason: 'trailer: ' + t.error };
        req.trailers = t.fields;
        req.body = Buffer.concat(parts);
        return { kind: 'request', req, end: t.end };
      }
      if (b.length < p + size + 2) return { kind: 'incomplete' };
      parts.push(b.subarray(p, p + size));
      if (b[p + size] !== 13 || b[p + size + 1] !== 10) return { kind: 'error', reason: 'chunk data not followed by CRLF' };
      p += size + 2;
    }
  }
  if (cl !== null) {
    if (!/^[0-9]{1,15}$/.test(cl)) return { kind: 'error', reason: `Content-Length ${JSON.stringify(cl)}` };
    const n = Number(cl);
    req.framing = 'length';
    if (b.length < p + n) return { kind: 'incomplete' };
    req.body = b.subarray(p, p + n);
    return { kind: 'request', req, end: p + n };
  }
  return { kind: 'request', req, end: p };
}
