import { SmoothRoundRobin } from '../balance/round-robin.js';
import type { EffectiveState } from '../backends/backend-set.js';
import type { Counters } from '../stats/counters.js';
import type { Upstream } from './engine.js';

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
  readonly cookieId: string;
  /** insert mode: the complete Set-Cookie value for this server. */
  readonly setCookie: string | undefined;
  readonly counters: Counters;
  readonly upstream: Upstream;
}

/**
 * The routing snapshot of one listen section, rebuilt whenever the backend set publishes.
 * Primaries: UP, non-backup, weight > 0. Backups serve only when no primary is UP (HAProxy `backup`).
 * Sticky lookups (`byCookie`) also find DRAIN servers: clients already stuck to a draining server
 * keep going to it until it is removed; DOWN and MAINT servers are not found, so their clients
 * are rebalanced and get a new cookie.
 */
export class Routing {
  static readonly EMPTY = new Routing([], [], new Map());
  private readonly primary: SmoothRoundRobin<Route>;
  private readonly backup: SmoothRoundRobin<Route>;

  constructor(primary: Route[], backup: Route[], readonly byCookie: ReadonlyMap<string, Route>) {
    this.primary = new SmoothRoundRobin(primary);
    this.backup = new SmoothRoundRobin(backup);
  }

  /**
   * Next server, skipping `tried` (the servers this request already failed on). When every server
   * was tried, one is tried again, as HAProxy retries on the same server: a reset on a reused
   * keep-alive connection is often transient. Returns undefined only when no server is UP.
   */
  pick(tried: Route[] | null): Route | undefined {
    const set = this.primary.items.length > 0 ? this.primary : this.backup;
    return set.pick(tried) ?? (tried !== null ? set.pick(null) : undefined);
  }
}
