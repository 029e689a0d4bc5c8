/**
 * 32-bit string hash for request keys (source address, URI path, header value) and hash ring
 * points: FNV-1a over UTF-16 code units, then murmur3's fmix32 so that near-identical keys
 * (10.0.0.1, 10.0.0.2) spread over the whole 32-bit range (FNV alone clusters their high bits,
 * which a ring lookup and a map-based division both read).
 */
export function hashString(s: string, from = 0, to = s.length): number {
  let h = 0x811c9dc5;
  for (let i = from; i < to; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return fmix32(h);
}

export function fmix32(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}
