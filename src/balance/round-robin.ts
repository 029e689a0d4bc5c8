/**
 * Smooth weighted round robin, as nginx does it (ngx_http_upstream_get_peer): on each pick every
 * candidate's current weight grows by its weight, the largest wins and pays back the total.
 * Weights 5,1,1 give a,a,b,a,c,a,a, not a,a,a,a,a,b,c: load is interleaved, so a burst never hits
 * one server with five requests in a row.
 *
 * Weights may be fractional (slow start scales them). Candidates with weight 0 are never picked.
 * `pick` returns undefined when there is no candidate left (empty or all excluded); it never throws.
 */
export interface Weighted { readonly weight: number }

export class SmoothRoundRobin<T extends Weighted> {
  private readonly current: Float64Array;

  constructor(readonly items: readonly T[]) {
    this.current = new Float64Array(items.length);
  }

  /**
   * @param exclude items already tried for this request (retries go elsewhere); may be null.
   *                Linear scan: it holds at most `retries + 1` entries.
   */
  pick(exclude: readonly T[] | null): T | undefined {
    const items = this.items;
    const cur = this.current;
    let best = -1;
    let total = 0;
    for (let i = 0; i < items.length; i++) {
      const it = items[i];
      const w = it.weight;
      if (w <= 0 || (exclude !== null && exclude.includes(it))) continue;
      cur[i] += w;
      total += w;
      if (best < 0 || cur[i] > cur[best]) best = i;
    }
    if (best < 0) return undefined;
    cur[best] -= total;
    return items[best];
  }
}
