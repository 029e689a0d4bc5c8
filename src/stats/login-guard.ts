import type { Logger } from '../log.js';
import { RateLimitedLog } from '../log.js';
import type { LoginConfig } from './config.js';
import type { Authenticator, Identity } from './auth.js';

/**
 * Limits on password checks of the stats page (and on the admin API's bearer token check).
 *
 * Why: each wrong Basic password costs one scrypt (32 MiB, tens of ms on a libuv thread pool
 * thread). Unbounded, 1,000 wrong passwords 20 at a time took RSS from 145 to 266 MiB, proxy
 * latency from 0.8 to 3.4 ms median (the thread pool also serves DNS and fs) and a legitimate login
 * to 3 s. So:
 *   - failures are counted per source (IPv4 address, IPv6 /64); after `max_failures` the source is
 *     locked out for `lockout`, doubling with each further failure up to `max_lockout`; a locked
 *     source gets 429 + Retry-After without any password check. A source has at most one check in
 *     flight (another attempt meanwhile: 429, Retry-After: 1), so a parallel burst cannot run more
 *     than `max_failures` scrypts either, and holds at most one of the `concurrent` slots;
 *   - the per-source table holds at most `sources` entries (a flood of sources evicts the entry with
 *     the oldest failure first: memory stays bounded; such a flood is still bounded by the next point);
 *   - at most `concurrent` scrypt verifications run at once and `queue` wait; beyond, 503;
 *   - identical Authorization headers in flight share one verification;
 *   - a verified credential is cached (src/stats/auth.ts) and a cached credential is accepted even
 *     from a locked source (a wrong password never hits the cache, so the lock still holds for it).
 */

/** The table key of a remote address: IPv4 as is, IPv6 by its /64 (one host usually owns a /64). */
export function sourceKey(remote: string | undefined): string {
  if (!remote) return '?';
  if (remote.startsWith('::ffff:') && remote.includes('.')) return remote.slice(7);
  if (!remote.includes(':')) return remote;
  const [head, tail] = remote.split('::');
  const h = head ? head.split(':') : [];
  const t = tail !== undefined ? (tail ? tail.split(':') : []) : [];
  const groups = tail !== undefined ? [...h, ...Array(Math.max(0, 8 - h.length - t.length)).fill('0'), ...t] : h;
  return groups.slice(0, 4).map((g) => (parseInt(g, 16) || 0).toString(16)).join(':') + '::/64';
}

export interface LimiterPolicy { maxFailures: number; lockoutMs: number; maxLockoutMs: number; forgetMs: number; sources: number }

interface Entry { fails: number; pending: number; until: number; last: number }

/** Per-source failure table. Pure: the caller passes the time; no timers. */
export class LoginLimiter {
  private readonly t = new Map<string, Entry>();
  /** Entries dropped because the table was full. */
  evicted = 0;

  constructor(private p: LimiterPolicy) {}

  setPolicy(p: LimiterPolicy): void { this.p = p; this.trim(); }

  get size(): number { return this.t.size; }

  /** ms this source must wait before a check may run (0: go ahead). */
  lockedFor(src: string, now: number): number {
    const e = this.t.get(src);
    if (!e) return 0;
    if (e.pending === 0 && now >= e.until && now - e.last >= this.p.forgetMs) { this.t.delete(src); return 0; }
    if (e.until > now) return e.until - now;
    // One check at a time per source: a parallel burst cannot run more checks than max_failures,
    // and one source holds at most one of the `concurrent` slots, so another source's login never
    // queues behind a flood. (Identical headers in flight share a check, so a browser's parallel
    // loads do not hit this.)
    if (e.pending > 0) return 1000;
    return 0;
  }

  begin(src: string, now: number): void {
    let e = this.t.get(src);
    if (!e) { e = { fails: 0, pending: 0, until: 0, last: now }; this.put(src, e); }
    e.pending++;
  }

  /** A check failed: returns the lockout (ms) it started, 0 if none. */
  fail(src: string, now: number): number {
    let e = this.t.get(src);
    if (e) { e.pending = Math.max(0, e.pending - 1); this.t.delete(src); } else e = { fails: 0, pending: 0, until: 0, last: now };
    // Re-inserted: Map order is the order of last failure, so eviction drops the stalest source.
    if (now - e.last >= this.p.forgetMs && now >= e.until) e.fails = 0;
    e.fails++;
    e.last = now;
    let lock = 0;
    if (e.fails >= this.p.maxFailures) {
      lock = Math.min(this.p.maxLockoutMs, this.p.lockoutMs * 2 ** Math.min(30, e.fails - this.p.maxFailures));
      e.until = now + lock;
    }
    this.put(src, e);
    return lock;
  }

  /**
   * A check succeeded. The source's failures are NOT forgiven: whoever holds one valid credential
   * (a read-only user) could otherwise reset the count between guesses at another user's password.
   * They expire after `forget`; the legitimate user meanwhile rides on the credential cache.
   */
  succeed(src: string): void {
    const e = this.t.get(src);
    if (!e) return;
    e.pending = Math.max(0, e.pending - 1);
    if (e.pending === 0 && e.fails === 0) this.t.delete(src);
  }

  private put(src: string, e: Entry): void {
    this.t.set(src, e);
    this.trim();
  }

  private trim(): void {
    while (this.t.size > this.p.sources) {
      this.t.delete(this.t.keys().next().value as string);
      this.evicted++;
    }
  }
}

/** A counting semaphore with a bounded queue. */
export class Gate {
  private running = 0;
  private readonly waiting: (() => void)[] = [];

  constructor(private max: number, private queue: number) {}

  setLimits(max: number, queue: number): void { this.max = max; this.queue = queue; this.pump(); }

  /** Resolves when a slot is free; undefined when the queue is full (refuse). */
  enter(): Promise<void> | undefined {
    if (this.running < this.max) { this.running++; return Promise.resolve(); }
    if (this.waiting.length >= this.queue) return undefined;
    return new Promise((ok) => this.waiting.push(ok));
  }

  leave(): void { this.running--; this.pump(); }

  private pump(): void {
    while (this.running < this.max && this.waiting.length) { this.running++; this.waiting.shift()!(); }
  }
}

export interface LoginCounters {
  /** Checks that found wrong credentials. */
  failures: number;
  /** Requests answered 429 because their source was locked out (no check ran). */
  locked: number;
  /** Requests answered 503 because too many checks were running or waiting. */
  busy: number;
  /** scrypt computations run. */
  scrypt: number;
  /** Lockouts started. */
  lockouts: number;
}

export function policyOf(c: LoginConfig): LimiterPolicy {
  return { maxFailures: c.max_failures, lockoutMs: c.lockout, maxLockoutMs: Math.max(c.lockout, c.max_lockout), forgetMs: c.forget, sources: c.sources };
}

/** Rate-limited logging of failures and lockouts (at most one line each per 10 s). */
export class LoginLog {
  private lastFail: Record<string, unknown> = {};
  private lastLock: Record<string, unknown> = {};
  private readonly failLog: RateLimitedLog;
  private readonly lockLog: RateLimitedLog;

  constructor(log: Logger, what: string) {
    this.failLog = new RateLimitedLog((n) => log.warn({ ...this.lastFail, failures: n }, `${what}: ${n} failed login(s) (last from ${String(this.lastFail.remote)})`));
    this.lockLog = new RateLimitedLog((n) => log.warn({ ...this.lastLock, lockouts: n }, `${what}: ${n} source(s) locked out after repeated failures (last ${String(this.lastLock.source)} for ${String(this.lastLock.lockoutMs)} ms)`));
  }

  failed(info: Record<string, unknown>): void { this.lastFail = info; this.failLog.hit(); }
  locked(info: Record<string, unknown>): void { this.lastLock = info; this.lockLog.hit(); }
  close(): void { this.failLog.close(); this.lockLog.close(); }
}

export type AuthOutcome =
  | { status: 200; id: Identity }
  | { status: 401 }
  | { status: 429 | 503; retryAfter: number };

/** The limits above around an Authenticator; one per server, kept across reloads. */
export class LoginGuard {
  readonly counters: LoginCounters = { failures: 0, locked: 0, busy: 0, scrypt: 0, lockouts: 0 };
  readonly limiter: LoginLimiter;
  private readonly gate: Gate;
  private readonly inflight = new Map<string, Promise<{ id?: Identity; scrypt: boolean }>>();
  private readonly log: LoginLog;

  constructor(log: Logger, cfg: LoginConfig, private readonly what = 'stats') {
    this.limiter = new LoginLimiter(policyOf(cfg));
    this.gate = new Gate(cfg.concurrent, cfg.queue);
    this.log = new LoginLog(log, what);
  }

  update(cfg: LoginConfig): void {
    this.limiter.setPolicy(policyOf(cfg));
    this.gate.setLimits(cfg.concurrent, cfg.queue);
  }

  close(): void { this.log.close(); }

  private refusedLocked(wait: number): AuthOutcome {
    this.counters.locked++;
    return { status: 429, retryAfter: Math.max(1, Math.ceil(wait / 1000)) };
  }

  private failed(src: string, remote: string | undefined, user: string | undefined): void {
    this.counters.failures++;
    const lock = this.limiter.fail(src, Date.now());
    this.log.failed({ remote, user });
    if (lock > 0) { this.counters.lockouts++; this.log.locked({ source: src, lockoutMs: lock }); }
  }

  /** Basic credentials: cache, then lockout, then a bounded scrypt. No header: 401 (not a failure). */
  async authenticate(auth: Authenticator, header: string | undefined, remote: string | undefined, now = Date.now()): Promise<AuthOutcome> {
    if (!header) return { status: 401 };
    const key = auth.key(header);
    const hit = auth.cached(key, now);
    if (hit) return { status: 200, id: hit };
    const src = sourceKey(remote);
    const wait = this.limiter.lockedFor(src, now);
    if (wait > 0) return this.refusedLocked(wait);
    const running = this.inflight.get(key);
    if (running) {
      // Same header already being checked (a page and its parallel loads): share the result.
      const r = await running;
      return r.id ? { status: 200, id: r.id } : { status: 401 };
    }
    const slot = this.gate.enter();
    if (!slot) { this.counters.busy++; return { status: 503, retryAfter: 1 }; }
    this.limiter.begin(src, now);
    const p = (async () => {
      await slot;
      try { return await auth.verify(header, key); } finally { this.gate.leave(); }
    })();
    this.inflight.set(key, p);
    let r: { id?: Identity; scrypt: boolean };
    try { r = await p; } catch (e) {
      this.limiter.succeed(src); // not a failure of the client's: only release its pending check
      throw e;
    } finally { this.inflight.delete(key); }
    if (r.scrypt) this.counters.scrypt++;
    if (r.id) { this.limiter.succeed(src); return { status: 200, id: r.id }; }
    this.failed(src, remote, userOf(header));
    return { status: 401 };
  }

  /**
   * A cheap credential (a bearer token, compared in constant time): checked first, so the right
   * token always passes, even from a locked source (another local user cannot lock the CLI out by
   * sending wrong tokens); a wrong one counts as a failed login, and from a locked source is
   * answered 429.
   */
  token<T>(remote: string | undefined, check: () => T | undefined, now = Date.now()): { status: 200; value: T } | { status: 401 } | { status: 429; retryAfter: number } {
    const v = check();
    if (v !== undefined) return { status: 200, value: v };
    const src = sourceKey(remote);
    const wait = this.limiter.lockedFor(src, now);
    if (wait > 0) return this.refusedLocked(wait) as { status: 429; retryAfter: number };
    this.failed(src, remote, undefined);
    return { status: 401 };
  }
}

/** User name of a Basic header, for the log (never the password). */
function userOf(header: string): string | undefined {
  const dec = Buffer.from(header.slice(6).trim(), 'base64').toString('utf8');
  const c = dec.indexOf(':');
  return c > 0 ? dec.slice(0, Math.min(c, 64)) : undefined;
}
