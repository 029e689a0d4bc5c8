import { createBalancer, type Balancer, type BalanceOptions } from '../balance/index.js';
import type { EffectiveState } from '../backends/backend-set.js';
import type { Counters } from '../stats/counters.js';
import type { Upstream } from './engine.js';
import type { WaitQueue } from './queue.js';
import type { Exchange } from './listener.js';
import type { SharedLoad } from './shared-inflight.js';

/** A backend as the data plane sees it: immutable, everything precomputed. */
export interface Route {
  readonly id: number;
  readonly name: string;
  readonly host: string;
  readonly port: number;
  readonly backup: boolean;
  /** Active checks run on it (passive checks may then mark it DOWN). */
  readonly checked: boolean;
  readonly state: EffectiveState;
  /** Effective weight (slow start applied). */
  readonly weight: number;
  /** Server `maxconn`: most requests in flight at once on it, 0 = unlimited. */
  readonly maxconn: number;
  /** Requests waiting for this server (sticky requests of a full server); survives rebuilds. */
  readonly queue: WaitQueue<Exchange>;
  readonly cookieId: string;
  /** insert mode: the complete Set-Cookie value for this server. */
  readonly setCookie: string | undefined;
  readonly counters: Counters;
  /** The shared upstream (unused for a send_proxy server: each client connection gets its own). */
  readonly upstream: Upstream;
  /** send_proxy: 0 none, 1 or 2 the PROXY protocol version (connections private to a client). */
  readonly sendProxy: 0 | 1 | 2;
  /** With workers, a limited server (maxconn) or a leastconn pool's: in flight over every worker. */
  readonly load?: SharedLoad;
}

/**
 * The routing snapshot of one listen section, rebuilt whenever the backend set publishes.
 * Primaries: UP, non-backup, weight > 0. Backups serve only when no primary is UP (HAProxy `backup`).
 * Sticky lookups (`byCookie`) also find DRAIN servers: clients already stuck to a draining server
 * keep going to it until it is removed; DOWN and MAINT servers are not found, so their clients
 * are rebalanced and get a new cookie. These rules are the same for every algorithm (src/balance/).
 */
export class Routing {
  static readonly EMPTY = new Routing([], [], new Map(), { algorithm: 'roundrobin', hashType: 'map-based' });
  readonly primary: Balancer<Route>;
  readonly backup: Balancer<Route>;

  /** @param prev the previous snapshot: balancers carry their position from it (issue 12). */
  constructor(primary: Route[], backup: Route[], readonly byCookie: ReadonlyMap<string, Route>, o: BalanceOptions, prev?: Routing) {
    this.primary = createBalancer(o, primary, prev?.primary);
    this.backup = createBalancer(o, backup, prev?.backup);
  }

  /** The set that serves now: primaries, or the backups when no primary is UP. */
  get active(): Balancer<Route> { return this.primary.items.length > 0 ? this.primary : this.backup; }

  /**
   * Next server for a request with hash `key` (-1: none), skipping `tried` (the servers this
   * request already failed on). When every server was tried, one is tried again, as HAProxy
   * retries on the same server: a reset on a reused keep-alive connection is often transient.
   * Returns undefined when no server is UP, or every one is full (maxconn: the caller queues).
   */
  pick(key: number, tried: Route[] | null): Route | undefined {
    const set = this.primary.items.length > 0 ? this.primary : this.backup;
    return set.pick(key, tried) ?? (tried !== null ? set.pick(key, null) : undefined);
  }
}
