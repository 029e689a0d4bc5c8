/**
 * A TLS ClientHello read off the wire before node:tls sees it (RFC 8446 §4.1.2, RFC 5246 §7.4.1.2).
 * Pure: bytes in, fields out. pairlb's TLS binds use it to pick the RSA or the ECDSA certificate
 * of a name (node:tls switches to an SNI context with one key pair only); an SNI-routing TCP
 * proxy can use `sni` the same way.
 *
 * Only the first record is parsed (a ClientHello larger than one record, 16 KiB, is not seen:
 * the caller then falls back to its default).
 */
export interface ClientHello {
  /** server_name (host_name), as sent; undefined without the extension. */
  sni: string | undefined;
  /** signature_algorithms codepoints; undefined without the extension. */
  sigalgs: number[] | undefined;
  /** Cipher suite codepoints. */
  suites: number[];
  /** supported_versions includes TLS 1.3 (0x0304). */
  tls13: boolean;
  /** ALPN protocol names, in the client's order. */
  alpn: string[];
}

/** TLS record header + handshake header. */
export const RECORD_HEADER = 5;
/** Largest record plaintext (RFC 8446 §5.1): a first record longer than this is not a ClientHello. */
export const MAX_RECORD = 16384;

/**
 * How many bytes the first record needs in total, from its header: undefined when `b` does not
 * start like a TLS handshake record (plain HTTP, garbage), or the header is not complete yet (-1).
 */
export function firstRecordLength(b: Buffer): number | undefined {
  if (b.length === 0) return -1;
  if (b[0] !== 0x16) return undefined;
  if (b.length < RECORD_HEADER) return -1;
  if (b[1] !== 0x03) return undefined;
  const len = b.readUInt16BE(3);
  if (len === 0 || len > MAX_RECORD) return undefined;
  return RECORD_HEADER + len;
}

/** Parses the ClientHello in the first record; undefined if it is not one or is cut short. */
export function parseClientHello(b: Buffer): ClientHello | undefined {
  const total = firstRecordLength(b);
  if (total === undefined || total < 0 || b.length < total) return undefined;
  let p = RECORD_HEADER;
  const end = total;
  if (b[p] !== 0x01) return undefined;
  const hsLen = (b[p + 1] << 16) | (b[p + 2] << 8) | b[p + 3];
  p += 4;
  const hsEnd = Math.min(end, p + hsLen);
  p += 2 + 32; // legacy_version, random
  if (p >= hsEnd) return undefined;
  p += 1 + b[p]; // session id
  if (p + 2 > hsEnd) return undefined;
  const suitesLen = b.readUInt16BE(p); p += 2;
  if (p + suitesLen > hsEnd) return undefined;
  const suites: number[] = [];
  for (let i = 0; i + 1 < suitesLen; i += 2) suites.push(b.readUInt16BE(p + i));
  p += suitesLen;
  if (p >= hsEnd) return undefined;
  p += 1 + b[p]; // compression methods
  const out: ClientHello = { sni: undefined, sigalgs: undefined, suites, tls13: false, alpn: [] };
  if (p + 2 > hsEnd) return out; // no extensions (TLS 1.2 allows it)
  const extEnd = Math.min(hsEnd, p + 2 + b.readUInt16BE(p));
  p += 2;
  while (p + 4 <= extEnd) {
    const type = b.readUInt16BE(p);
    const len = b.readUInt16BE(p + 2);
    const d = p + 4;
    p = d + len;
    if (p > extEnd) return undefined;
    if (type === 0x0000 && len >= 5) {
      // server_name_list: list length, then (type 0 = host_name, length, name)…
      let q = d + 2;
      const listEnd = Math.min(p, d + 2 + b.readUInt16BE(d));
      while (q + 3 <= listEnd) {
        const nt = b[q];
        const nl = b.readUInt16BE(q + 1);
        if (nt === 0 && q + 3 + nl <= listEnd) { out.sni = b.toString('latin1', q + 3, q + 3 + nl); break; }
        q += 3 + nl;
      }
    } else if (type === 0x000d && len >= 2) {
      const l = Math.min(b.readUInt16BE(d), len - 2);
      const algs: number[] = [];
      for (let i = 0; i + 1 < l; i += 2) algs.push(b.readUInt16BE(d + 2 + i));
      out.sigalgs = algs;
    } else if (type === 0x002b && len >= 1) {
      const l = Math.min(b[d], len - 1);
      for (let i = 0; i + 1 < l; i += 2) if (b.readUInt16BE(d + 1 + i) === 0x0304) out.tls13 = true;
    } else if (type === 0x0010 && len >= 2) {
      let q = d + 2;
      const listEnd = Math.min(p, d + 2 + b.readUInt16BE(d));
      while (q < listEnd) { const l = b[q]; out.alpn.push(b.toString('latin1', q + 1, q + 1 + l)); q += 1 + l; }
    }
  }
  return out;
}

/** ECDSA signature schemes (RFC 8446 §4.2.3): ecdsa_secp256r1_sha256 … secp521r1_sha512, ecdsa_sha1. */
const ECDSA_SIGALGS = new Set([0x0403, 0x0503, 0x0603, 0x0203]);
/** TLS 1.2 suites that authenticate with ECDSA (ECDHE_ECDSA_*). */
function isEcdsaSuite(s: number): boolean {
  return (s >= 0xc006 && s <= 0xc00a) || s === 0xc023 || s === 0xc024 || s === 0xc02b || s === 0xc02c || s === 0xcca9 || s === 0xc0ac || s === 0xc0ad;
}

/**
 * Can this client verify an ECDSA certificate? It must accept an ECDSA signature scheme (or send no
 * signature_algorithms, which RFC 5246 §7.4.1.4.1 reads as "the key type of the suite"), and either
 * do TLS 1.3 (suites there are independent of the key) or offer an ECDHE_ECDSA suite.
 */
export function acceptsEcdsa(h: ClientHello): boolean {
  const sig = h.sigalgs === undefined || h.sigalgs.some((a) => ECDSA_SIGALGS.has(a));
  return sig && (h.tls13 || h.suites.some(isEcdsaSuite));
}
