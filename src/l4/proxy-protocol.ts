import { isIPv4, isIPv6 } from 'node:net';

/**
 * PROXY protocol v1 (text) and v2 (binary), as specified by HAProxy's doc/proxy-protocol.txt
 * (2020-03-05). Pure functions: the codec knows nothing of sockets (src/l4/accept-proxy.ts reads a
 * header off a connection, src/l4/tcp.ts and the health checks write one).
 *
 * Why not an npm parser: the two on the registry (proxy-protocol-js, @balena/proxy-protocol-parser)
 * parse a complete buffer. A server reading from a socket needs three answers for a prefix of the
 * stream — "need more bytes", "refuse now (and why)", "header of N bytes" — so a garbage first
 * byte is refused at once instead of waiting for a timeout, and an oversized header is refused
 * before it is buffered. That, plus the strict v1 grammar below, is ~150 lines.
 *
 * Limits: a v1 line is at most 107 bytes with its CRLF (spec §2.1); a v2 header is at most
 * 16 + MAX_V2_BODY bytes (the spec allows 65,535 bytes of body; AWS and GCP send under 200).
 */

export const V2_SIG = Buffer.from([0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a]);
const V1_PREFIX = Buffer.from('PROXY ', 'latin1');
export const V1_MAX = 107;
/** Most bytes of address + TLVs accepted after a v2 header's 16 fixed bytes. */
export const MAX_V2_BODY = 2048;

/** Why a header was refused; each has its own counter. */
export type ProxyRefusal =
  | 'signature' // neither "PROXY " nor the v2 signature
  | 'v1_syntax' // a v1 line that does not follow the grammar
  | 'v1_too_long' // no CRLF within 107 bytes
  | 'v2_version' // version nibble other than 2
  | 'v2_command' // command other than LOCAL / PROXY
  | 'v2_family' // unknown address family / transport
  | 'v2_length' // body shorter than its family's addresses
  | 'oversized'; // v2 body larger than MAX_V2_BODY

export interface ProxyAddress { readonly address: string; readonly port: number }

export type ProxyParse =
  | { readonly kind: 'more' }
  | { readonly kind: 'bad'; readonly reason: ProxyRefusal }
  /**
   * `length` bytes make up the header. `source`/`dest` are absent for v1 UNKNOWN, v2 LOCAL and
   * v2 UNSPEC/unix: the connection's own addresses stand (spec §2.1, §2.2).
   */
  | { readonly kind: 'ok'; readonly length: number; readonly version: 1 | 2; readonly source?: ProxyAddress; readonly dest?: ProxyAddress };

const MORE: ProxyParse = { kind: 'more' };
const bad = (reason: ProxyRefusal): ProxyParse => ({ kind: 'bad', reason });

/** Reads a header at the start of `buf` (everything received so far). Never throws. */
export function parseProxyHeader(buf: Buffer): ProxyParse {
  if (buf.length === 0) return MORE;
  if (buf[0] === 0x50 /* P */) return parseV1(buf);
  if (buf[0] === 0x0d) return parseV2(buf);
  return bad('signature');
}

/** Bytes that may follow "PROXY " in a v1 line: printable ASCII (no control characters). */
function parseV1(buf: Buffer): ProxyParse {
  const n = Math.min(buf.length, V1_PREFIX.length);
  for (let i = 0; i < n; i++) if (buf[i] !== V1_PREFIX[i]) return bad('signature');
  const lim = Math.min(buf.length, V1_MAX);
  let cr = -1;
  for (let i = V1_PREFIX.length; i < lim; i++) {
    const c = buf[i];
    if (c === 0x0d) { cr = i; break; }
    if (c < 0x20 || c > 0x7e) return bad('v1_syntax');
  }
  if (cr < 0) return buf.length >= V1_MAX ? bad('v1_too_long') : MORE;
  if (cr + 1 >= buf.length) return MORE;
  if (buf[cr + 1] !== 0x0a) return bad('v1_syntax');
  const line = buf.toString('latin1', V1_PREFIX.length, cr);
  const length = cr + 2;
  if (line === 'UNKNOWN' || line.startsWith('UNKNOWN ')) return { kind: 'ok', length, version: 1 };
  const f = line.split(' ');
  if (f.length !== 5) return bad('v1_syntax');
  const [proto, src, dst, sp, dp] = f;
  const okAddr = proto === 'TCP4' ? isIPv4 : proto === 'TCP6' ? isIPv6 : undefined;
  if (okAddr === undefined || !okAddr(src) || !okAddr(dst)) return bad('v1_syntax');
  const sport = v1Port(sp);
  const dport = v1Port(dp);
  if (sport < 0 || dport < 0) return bad('v1_syntax');
  return { kind: 'ok', length, version: 1, source: { address: src, port: sport }, dest: { address: dst, port: dport } };
}

/** A v1 port: decimal 0-65535 without leading zeros (spec §2.1). */
function v1Port(s: string): number {
  if (s.length === 0 || s.length > 5 || (s.length > 1 && s.charCodeAt(0) === 48)) return -1;
  for (let i = 0; i < s.length; i++) { const c = s.charCodeAt(i); if (c < 48 || c > 57) return -1; }
  const n = Number(s);
  return n <= 65535 ? n : -1;
}

function parseV2(buf: Buffer): ProxyParse {
  const n = Math.min(buf.length, V2_SIG.length);
  for (let i = 0; i < n; i++) if (buf[i] !== V2_SIG[i]) return bad('signature');
  if (buf.length < 16) return MORE;
  const verCmd = buf[12];
  if (verCmd >> 4 !== 2) return bad('v2_version');
  const cmd = verCmd & 0x0f;
  if (cmd > 1) return bad('v2_command');
  const fam = buf[13];
  const len = buf.readUInt16BE(14);
  if (len > MAX_V2_BODY) return bad('oversized');
  // Family (high nibble): 0 UNSPEC, 1 INET, 2 INET6, 3 UNIX; transport: 0 UNSPEC, 1 STREAM, 2 DGRAM.
  const af = fam >> 4;
  const tp = fam & 0x0f;
  if (af > 3 || tp > 2) return bad('v2_family');
  const need = af === 1 ? 12 : af === 2 ? 36 : af === 3 ? 216 : 0;
  if (len < need) return bad('v2_length');
  if (buf.length < 16 + len) return MORE;
  const length = 16 + len;
  // LOCAL: the connection was made by the proxy itself (a health check): its own addresses stand.
  if (cmd === 0 || af === 0 || af === 3 || tp === 0) return { kind: 'ok', length, version: 2 };
  if (af === 1) {
    return {
      kind: 'ok', length, version: 2,
      source: { address: `${buf[16]}.${buf[17]}.${buf[18]}.${buf[19]}`, port: buf.readUInt16BE(24) },
      dest: { address: `${buf[20]}.${buf[21]}.${buf[22]}.${buf[23]}`, port: buf.readUInt16BE(26) },
    };
  }
  return {
    kind: 'ok', length, version: 2,
    source: { address: ipv6(buf, 16), port: buf.readUInt16BE(48) },
    dest: { address: ipv6(buf, 32), port: buf.readUInt16BE(50) },
  };
}

/** An IPv6 address as Node prints remoteAddress (compressed, lower case; v4-mapped as ::ffff:a.b.c.d). */
function ipv6(buf: Buffer, off: number): string {
  const w: number[] = [];
  for (let i = 0; i < 8; i++) w.push(buf.readUInt16BE(off + 2 * i));
  if (w[0] === 0 && w[1] === 0 && w[2] === 0 && w[3] === 0 && w[4] === 0 && w[5] === 0xffff) {
    return `::ffff:${buf[off + 12]}.${buf[off + 13]}.${buf[off + 14]}.${buf[off + 15]}`;
  }
  // Longest run of two or more zero words becomes "::" (RFC 5952 §4.2).
  let bs = -1, bl = 0;
  for (let i = 0; i < 8;) {
    if (w[i] !== 0) { i++; continue; }
    let j = i;
    while (j < 8 && w[j] === 0) j++;
    if (j - i > bl && j - i >= 2) { bs = i; bl = j - i; }
    i = j;
  }
  const hex = (a: number[]) => a.map((x) => x.toString(16)).join(':');
  return bs < 0 ? hex(w) : `${hex(w.slice(0, bs))}::${hex(w.slice(bs + bl))}`;
}

// ---- encoding ---------------------------------------------------------------------------------

/** ::ffff:1.2.3.4 → 1.2.3.4 (Node reports IPv4 clients of a dual-stack socket that way). */
function plain(a: string): string { return a.startsWith('::ffff:') && isIPv4(a.slice(7)) ? a.slice(7) : a; }

/**
 * The header a proxy sends first on a server connection. `src` is the client, `dst` the address
 * the client connected to. Mixed families (IPv4 client on an IPv6 bind) are sent as IPv6 with
 * v4-mapped addresses; an address that is not an IP gives v1 UNKNOWN / v2 LOCAL.
 */
export function encodeProxyHeader(version: 1 | 2, src: ProxyAddress, dst: ProxyAddress): Buffer {
  let s = plain(src.address);
  let d = plain(dst.address);
  let fam = isIPv4(s) && isIPv4(d) ? 4 : (isIP(s) && isIP(d)) ? 6 : 0;
  if (fam === 6) { s = isIPv4(s) ? '::ffff:' + s : s; d = isIPv4(d) ? '::ffff:' + d : d; }
  if (version === 1) {
    if (fam === 0) return Buffer.from('PROXY UNKNOWN\r\n', 'latin1');
    return Buffer.from(`PROXY TCP${fam} ${s} ${d} ${src.port} ${dst.port}\r\n`, 'latin1');
  }
  const body = fam === 4 ? 12 : fam === 6 ? 36 : 0;
  const out = Buffer.alloc(16 + body);
  V2_SIG.copy(out, 0);
  out[12] = fam === 0 ? 0x20 : 0x21; // v2, LOCAL or PROXY
  out[13] = fam === 4 ? 0x11 : fam === 6 ? 0x21 : 0x00;
  out.writeUInt16BE(body, 14);
  if (fam === 4) {
    writeV4(out, 16, s); writeV4(out, 20, d);
    out.writeUInt16BE(src.port, 24); out.writeUInt16BE(dst.port, 26);
  } else if (fam === 6) {
    writeV6(out, 16, s); writeV6(out, 32, d);
    out.writeUInt16BE(src.port, 48); out.writeUInt16BE(dst.port, 50);
  }
  return out;
}

/** A v2 LOCAL header (health checks: "the connection was established on purpose by the proxy"). */
export const V2_LOCAL = (() => { const b = Buffer.alloc(16); V2_SIG.copy(b, 0); b[12] = 0x20; return b; })();
/** v1 has no LOCAL command: UNKNOWN tells the receiver to use the connection's own addresses. */
export const V1_LOCAL = Buffer.from('PROXY UNKNOWN\r\n', 'latin1');

function isIP(a: string): boolean { return isIPv4(a) || isIPv6(a); }

function writeV4(out: Buffer, off: number, a: string): void {
  const p = a.split('.');
  for (let i = 0; i < 4; i++) out[off + i] = Number(p[i]);
}

function writeV6(out: Buffer, off: number, a: string): void {
  let tail: number[] = [];
  const m = /^(.*:)(\d+\.\d+\.\d+\.\d+)$/.exec(a);
  if (m) {
    const p = m[2].split('.').map(Number);
    tail = [(p[0] << 8) | p[1], (p[2] << 8) | p[3]];
    a = m[1].endsWith('::') ? m[1] : m[1].slice(0, -1);
  }
  const [head, rest] = a.includes('::') ? a.split('::') : [a, undefined];
  const hw = head ? head.split(':').map((x) => parseInt(x, 16)) : [];
  const rw = rest ? rest.split(':').map((x) => parseInt(x, 16)) : [];
  const words = rest === undefined ? [...hw, ...tail] : [...hw, ...new Array(8 - hw.length - rw.length - tail.length).fill(0), ...rw, ...tail];
  for (let i = 0; i < 8; i++) out.writeUInt16BE(words[i] ?? 0, off + 2 * i);
}
