/**
 * The one interface every balancing algorithm implements (HAProxy's `struct lb_ops`): one file per
 * algorithm in this folder, chosen by `createBalancer`. What is common to every algorithm lives
 * outside them, in the routing snapshot (src/proxy/routing.ts): backups serve only when no primary
 * is UP, DRAIN/DOWN/MAINT servers are never candidates (sticky clients of a DRAIN server reach it
 * through the cookie table before any balancer runs), slow start arrives as a reduced `weight`.
 * So weights, slow start, backups, drain and stickiness behave the same whatever the algorithm.
 *
 * A balancer is built per routing snapshot (cheap: at config/snapshot time, never per request).
 * Whatever position it keeps (round robin's current weights, leastconn's rotation) is carried from
 * the previous snapshot's balancer with `carry`, keyed by the candidate's `id`: a rebuild (slow
 * start republishes every 250 ms) must not reset it (issue 12).
 */

/** What an algorithm needs to know about a server. Routes (HTTP) and TCP servers both fit. */
export interface Candidate {
  /** Stable identity across snapshots (the backend id). */
  readonly id: number;
  /** Stable name: hash ring points derive from it, so a server keeps its keys across rebuilds. */
  readonly name: string;
  /** Effective weight (slow start applied). 0 or less: never picked. */
  readonly weight: number;
  /** `cur`: requests/connections in flight on it now (leastconn, random). */
  readonly counters: { readonly cur: number };
  /** Most in flight at once (server `maxconn`); 0 = unlimited. A full server is skipped. */
  readonly maxconn: number;
  /**
   * In flight over every data-plane worker (src/proxy/shared-inflight.ts SharedLoad), when the
   * server's limit or its pool's leastconn needs it; absent: `counters.cur` (this data plane's).
   */
  readonly load?: { readonly cur: number };
}

/** Requests in flight on `it`: over every worker when shared (Candidate.load), else this data plane's. */
export function inflight(it: Candidate): number {
  const l = it.load;
  return l === undefined ? it.counters.cur : l.cur;
}

export type Algorithm = 'roundrobin' | 'leastconn' | 'source' | 'uri' | 'header' | 'random';
export type HashType = 'map-based' | 'consistent';

export interface Balancer<T extends Candidate> {
  readonly items: readonly T[];
  /**
   * The next server for a request. `key` is the request's hash (hash algorithms; -1: no key, e.g.
   * the header is absent, which falls back to round robin as HAProxy does); other algorithms
   * ignore it. `exclude`: servers this request already failed on (linear scan, at most
   * retries + 1 entries), or null. Full servers (cur >= maxconn) are skipped.
   * Returns undefined when no candidate is left; never throws.
   */
  pick(key: number, exclude: readonly T[] | null): T | undefined;
  /** Take over the position of the previous snapshot's balancer (same algorithm), by id. */
  carry(prev: Balancer<T>): void;
}

/** A server can take one more request: not excluded, weight > 0, below its maxconn. */
export function usable<T extends Candidate>(it: T, exclude: readonly T[] | null): boolean {
  return it.weight > 0 && (it.maxconn === 0 || inflight(it) < it.maxconn) && (exclude === null || !exclude.includes(it));
}
