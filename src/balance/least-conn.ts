import { inflight, type Balancer, type Candidate } from './balancer.js';

/**
 * Weighted least connections (HAProxy `balance leastconn`, lb_fwlc.c): the server with the fewest
 * requests in flight per unit of weight, (cur + 1) / weight, so a weight-2 server carries twice the
 * load of a weight-1 one. Ties are broken by round robin: the scan starts after the last server
 * picked, and only a strictly better score displaces the first one found. The rotation point is
 * the last pick's id, carried across snapshots.
 *
 * `cur` is the in-flight count over every data-plane worker (Candidate.load, docs/workers.md).
 */
export class LeastConnBalancer<T extends Candidate> implements Balancer<T> {
  /** Index after the last pick: where the tie-breaking scan starts. */
  private start = 0;
  private lastId = -1;

  constructor(readonly items: readonly T[]) {}

  pick(_key: number, exclude: readonly T[] | null): T | undefined {
    const items = this.items;
    const n = items.length;
    let best = -1;
    let bestScore = Infinity;
    for (let k = 0; k < n; k++) {
      const i = (this.start + k) % n;
      const it = items[i];
      const w = it.weight;
      if (w <= 0) continue;
      const cur = inflight(it);
      if (it.maxconn !== 0 && cur >= it.maxconn) continue;
      if (exclude !== null && exclude.includes(it)) continue;
      const score = (cur + 1) / w;
      if (score < bestScore) { best = i; bestScore = score; }
    }
    if (best < 0) return undefined;
    this.start = best + 1 === n ? 0 : best + 1;
    this.lastId = items[best].id;
    return items[best];
  }

  carry(prev: Balancer<T>): void {
    if (!(prev instanceof LeastConnBalancer) || prev.lastId < 0) return;
    const i = this.items.findIndex((it) => it.id === prev.lastId);
    if (i >= 0) { this.start = (i + 1) % this.items.length; this.lastId = prev.lastId; }
  }
}
