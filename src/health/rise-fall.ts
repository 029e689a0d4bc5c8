/**
 * Rise/fall counting for active health checks: a pure core, no timers, no I/O.
 *
 *            ok (good < rise-1)                       fail (bad < fall-1)
 *          +-------------------+                   +-------------------+
 *          v                   |                   v                   |
 *   DOWN good=n ------------------> UP bad=0 -----------> UP bad=n ----+
 *     ^    |   ok, good = rise-1      ^   ^   fail          |  |
 *     |    | fail: good=0             |   +---- ok: bad=0 --+  |
 *     +----+--------------------------+------------------------+ fail, bad = fall-1
 *
 * `rise` and `fall` count CONSECUTIVE results (as documented by HAProxy): one good check while
 * going down resets the failure streak, one failed check while coming up resets the success streak.
 *
 * Intervals (HAProxy `inter` / `fastinter` / `downinter`):
 *   UP, no failure pending            -> interval
 *   a transition in progress          -> fastinterval (default: interval)
 *   DOWN, no success pending          -> downinterval (default: interval)
 */

export interface RiseFall {
  readonly up: boolean;
  /** Consecutive good checks while DOWN (progress towards `rise`). Always 0 while UP. */
  readonly good: number;
  /** Consecutive failed checks while UP (progress towards `fall`). Always 0 while DOWN. */
  readonly bad: number;
}

export interface Thresholds { readonly rise: number; readonly fall: number }

export interface Intervals {
  readonly interval: number;
  readonly fastinterval?: number;
  readonly downinterval?: number;
}

export function initial(up: boolean): RiseFall {
  return { up, good: 0, bad: 0 };
}

/**
 * Apply one check result. `changed` is true exactly when the result flips UP <-> DOWN.
 * Thresholds must be integers >= 1 (the config schema guarantees it).
 */
export function step(s: RiseFall, ok: boolean, t: Thresholds): { state: RiseFall; changed: boolean } {
  if (s.up) {
    if (ok) return { state: s.bad === 0 ? s : { up: true, good: 0, bad: 0 }, changed: false };
    const bad = s.bad + 1;
    if (bad >= t.fall) return { state: { up: false, good: 0, bad: 0 }, changed: true };
    return { state: { up: true, good: 0, bad }, changed: false };
  }
  if (!ok) return { state: s.good === 0 ? s : { up: false, good: 0, bad: 0 }, changed: false };
  const good = s.good + 1;
  if (good >= t.rise) return { state: { up: true, good: 0, bad: 0 }, changed: true };
  return { state: { up: false, good, bad: 0 }, changed: false };
}

export function inTransition(s: RiseFall): boolean {
  return s.up ? s.bad > 0 : s.good > 0;
}

/** Delay before the next check, before jitter. */
export function nextInterval(s: RiseFall, iv: Intervals): number {
  if (inTransition(s)) return iv.fastinterval ?? iv.interval;
  return s.up ? iv.interval : (iv.downinterval ?? iv.interval);
}

/**
 * Stats-page label, HAProxy style: "UP", "DOWN", "UP 1/3" (up, 1 of the 3 failures that take it
 * down), "DOWN 1/2" (down, 1 of the 2 successes that bring it up).
 */
export function label(s: RiseFall, t: Thresholds): string {
  if (s.up) return s.bad > 0 ? `UP ${s.bad}/${t.fall}` : 'UP';
  return s.good > 0 ? `DOWN ${s.good}/${t.rise}` : 'DOWN';
}
