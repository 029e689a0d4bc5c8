import { usable, type Balancer, type Candidate, type HashType } from './balancer.js';
import { hashString } from './hash.js';
import { RoundRobinBalancer, carryCurrent } from './round-robin.js';

/**
 * Hash balancing (HAProxy `balance source | uri | hdr(name)`): the request's key (client address,
 * URI path, header value: hashed by the listener, src/balance/hash.ts) picks the server, so the same
 * key reaches the same server while the set of servers stays the same. Two ways, `hash_type`:
 *
 *  - `map-based` (HAProxy's default): the key's position in [0, total weight) over the servers'
 *    cumulative weights. Exact weight shares, but adding or removing a server moves most keys.
 *  - `consistent`: a ring of POINTS_PER_WEIGHT points per unit of weight per server, each at the
 *    hash of `name#i`; a key goes to the first point at or after its hash. Adding or removing one
 *    of N servers moves only the keys of that server, about 1/N of them (test/unit/balance.test.ts
 *    asserts it on 100k keys). A ramping server (slow start) grows its points as a prefix of its
 *    final set, so keys move to it gradually and never between the others.
 *
 * A key whose server is excluded (retry) or full moves to the next server along the ring (or the
 * next in the map): the others' keys do not move. No key (-1): round robin, as HAProxy does when
 * the header or parameter is absent.
 */

/** Ring points per unit of weight: 40 keeps a server's share within about ±15% of its weight. */
export const POINTS_PER_WEIGHT = 40;

/** Ring points of one server, cached by name: hashing them again for every 250 ms snapshot is waste. */
const pointCache = new Map<string, Uint32Array>();
function points(name: string, n: number): Uint32Array {
  let p = pointCache.get(name);
  if (p === undefined || p.length < n) {
    const q = new Uint32Array(Math.max(n, POINTS_PER_WEIGHT));
    for (let i = 0; i < q.length; i++) q[i] = hashString(name + '#' + i);
    if (pointCache.size > 4096) pointCache.clear();
    pointCache.set(name, (p = q));
  }
  return p;
}

export class HashBalancer<T extends Candidate> implements Balancer<T> {
  /** consistent: ring point hashes, ascending, and the server index of each. */
  private readonly ring: Uint32Array;
  private readonly owner: Uint16Array;
  /** map-based: cumulative weights. */
  private readonly cum: Float64Array;
  private readonly total: number;
  private readonly fallback: RoundRobinBalancer<T>;

  constructor(readonly items: readonly T[], readonly type: HashType) {
    this.fallback = new RoundRobinBalancer(items);
    if (type === 'consistent') {
      let n = 0;
      const counts = items.map((it) => (it.weight > 0 ? Math.max(1, Math.round(it.weight * POINTS_PER_WEIGHT)) : 0));
      for (const c of counts) n += c;
      // hash * 2^16 + index is exact in a double (2^48): one numeric sort orders both.
      const packed = new Float64Array(n);
      let k = 0;
      items.forEach((it, i) => { const p = points(it.name, counts[i]); for (let j = 0; j < counts[i]; j++) packed[k++] = p[j] * 65536 + i; });
      packed.sort();
      this.ring = new Uint32Array(n);
      this.owner = new Uint16Array(n);
      for (let j = 0; j < n; j++) { const v = packed[j]; this.owner[j] = v % 65536; this.ring[j] = (v - this.owner[j]) / 65536; }
      this.cum = new Float64Array(0);
      this.total = 0;
    } else {
      this.cum = new Float64Array(items.length);
      let t = 0;
      items.forEach((it, i) => { t += it.weight > 0 ? it.weight : 0; this.cum[i] = t; });
      this.total = t;
      this.ring = new Uint32Array(0);
      this.owner = new Uint16Array(0);
    }
  }

  pick(key: number, exclude: readonly T[] | null): T | undefined {
    if (key < 0) return this.fallback.pick(key, exclude);
    const items = this.items;
    if (this.type === 'consistent') {
      const ring = this.ring;
      const n = ring.length;
      if (n === 0) return undefined;
      // First point >= key (wrapping to 0).
      let lo = 0, hi = n;
      while (lo < hi) { const mid = (lo + hi) >>> 1; if (ring[mid] < key) lo = mid + 1; else hi = mid; }
      for (let k = 0; k < n; k++) {
        const it = items[this.owner[(lo + k) % n]];
        if (usable(it, exclude)) return it;
        // Visiting every point of an unusable ring is bounded by n; servers are few, points many.
        if (k > 64 && k > 4 * items.length) return this.scan(exclude, this.owner[lo % n]);
      }
      return undefined;
    }
    if (this.total <= 0) return undefined;
    const cum = this.cum;
    const x = (key / 4294967296) * this.total;
    let lo = 0, hi = cum.length - 1;
    while (lo < hi) { const mid = (lo + hi) >>> 1; if (cum[mid] <= x) lo = mid + 1; else hi = mid; }
    return this.scan(exclude, lo);
  }

  /** The first usable server from index `from` on, in list order. */
  private scan(exclude: readonly T[] | null, from: number): T | undefined {
    const items = this.items;
    for (let k = 0; k < items.length; k++) {
      const it = items[(from + k) % items.length];
      if (usable(it, exclude)) return it;
    }
    return undefined;
  }

  carry(prev: Balancer<T>): void {
    if (prev instanceof HashBalancer) carryCurrent(prev.fallback.rr, this.fallback.rr);
  }
}
