import { inflight, usable, type Balancer, type Candidate } from './balancer.js';

/**
 * Power of two random choices (HAProxy `balance random(2)`, nginx `random two least_conn`): draw two
 * servers at random in proportion to their weights, keep the one with fewer requests in flight per
 * unit of weight. Load stays near least-connections' balance without every data plane herding onto
 * the same least-loaded server (each worker sees only its own `cur`).
 *
 * `rng` returns [0, 1); injectable so tests can assert exact distributions.
 */
export class RandomBalancer<T extends Candidate> implements Balancer<T> {
  private readonly cum: Float64Array;
  private readonly total: number;

  constructor(readonly items: readonly T[], private readonly rng: () => number = Math.random) {
    this.cum = new Float64Array(items.length);
    let t = 0;
    items.forEach((it, i) => { t += it.weight > 0 ? it.weight : 0; this.cum[i] = t; });
    this.total = t;
  }

  pick(_key: number, exclude: readonly T[] | null): T | undefined {
    const a = this.draw(exclude);
    if (a === undefined) return undefined;
    const b = this.draw(exclude);
    if (b === undefined || b === a) return a;
    return (inflight(b) + 1) / b.weight < (inflight(a) + 1) / a.weight ? b : a;
  }

  /** One weighted draw; an unusable server found hands over to the next usable one in the list. */
  private draw(exclude: readonly T[] | null): T | undefined {
    if (this.total <= 0) return undefined;
    const x = this.rng() * this.total;
    const cum = this.cum;
    let lo = 0, hi = cum.length - 1;
    while (lo < hi) { const mid = (lo + hi) >>> 1; if (cum[mid] <= x) lo = mid + 1; else hi = mid; }
    const items = this.items;
    for (let k = 0; k < items.length; k++) {
      const it = items[(lo + k) % items.length];
      if (usable(it, exclude)) return it;
    }
    return undefined;
  }

  carry(): void { /* stateless */ }
}
