import { inflight, usable, type Balancer, type Candidate } from './balancer.js';

/**
 * Smooth weighted round robin, as nginx does it (ngx_http_upstream_get_peer): on each pick every
 * candidate's current weight grows by its weight, the largest wins and pays back the total.
 * Weights 5,1,1 give a,a,b,a,c,a,a, not a,a,a,a,a,b,c: load is interleaved, so a burst never hits
 * one server with five requests in a row.
 *
 * Weights may be fractional (slow start scales them). Candidates with weight 0 are never picked.
 * `pick` returns undefined when there is no candidate left (empty or all excluded); it never throws.
 *
 * The current weights survive snapshot rebuilds (`carry`): rebuilt from zero every 250 ms during
 * slow start, a server ramping from 1/20 of its weight never won a pick at 8 requests/s until its
 * weight passed about a third of the others' (issue 12). Carried over, the smooth sequence goes on
 * as if the weights had changed in place, so the aggregate stays exact at any request rate.
 */
export interface Weighted { readonly weight: number }

export class SmoothRoundRobin<T extends Weighted> {
  readonly current: Float64Array;

  constructor(readonly items: readonly T[]) {
    this.current = new Float64Array(items.length);
  }

  /**
   * @param exclude items already tried for this request (retries go elsewhere); may be null.
   *                Linear scan: it holds at most `retries + 1` entries.
   * @param ok      optional extra filter (full servers); called only for weighted candidates.
   */
  pick(exclude: readonly T[] | null, ok?: (it: T) => boolean): T | undefined {
    const items = this.items;
    const cur = this.current;
    let best = -1;
    let total = 0;
    for (let i = 0; i < items.length; i++) {
      const it = items[i];
      const w = it.weight;
      if (w <= 0 || (exclude !== null && exclude.includes(it)) || (ok !== undefined && !ok(it))) continue;
      cur[i] += w;
      total += w;
      if (best < 0 || cur[i] > cur[best]) best = i;
    }
    if (best < 0) return undefined;
    cur[best] -= total;
    return items[best];
  }
}

const notFull = (it: Candidate): boolean => it.maxconn === 0 || inflight(it) < it.maxconn;

export class RoundRobinBalancer<T extends Candidate> implements Balancer<T> {
  readonly rr: SmoothRoundRobin<T>;
  private readonly anyLimit: boolean;
  constructor(readonly items: readonly T[]) {
    this.rr = new SmoothRoundRobin(items);
    this.anyLimit = items.some((i) => i.maxconn > 0);
  }

  pick(_key: number, exclude: readonly T[] | null): T | undefined {
    return this.anyLimit ? this.rr.pick(exclude, notFull) : this.rr.pick(exclude);
  }

  carry(prev: Balancer<T>): void {
    if (!(prev instanceof RoundRobinBalancer)) return;
    carryCurrent(prev.rr, this.rr);
  }
}

/** Copy current weights by id; a server that left takes its debt with it (the rest is rebalanced). */
export function carryCurrent<T extends Candidate>(from: SmoothRoundRobin<T>, to: SmoothRoundRobin<T>): void {
  const byId = new Map<number, number>();
  for (let i = 0; i < from.items.length; i++) byId.set(from.items[i].id, from.current[i]);
  let sum = 0;
  for (let i = 0; i < to.items.length; i++) { const c = byId.get(to.items[i].id); if (c !== undefined) { to.current[i] = c; sum += c; } }
  // Smooth WRR keeps the current weights summing to 0; a server that left or joined breaks that.
  // Spreading the difference evenly keeps every server's relative position.
  if (sum !== 0 && to.items.length > 0) { const d = sum / to.items.length; for (let i = 0; i < to.items.length; i++) to.current[i] -= d; }
}

