import { setMaxListeners } from 'node:events';
import type { App, Module } from '../app.js';
import { moduleFactories } from '../app.js';
import type { BackendSet, StateChange } from '../backends/backend-set.js';
import type { CheckConfig } from '../config/schema.js';
import type { Logger } from '../log.js';
import { buildRequest, compileExpect, probe, type ProbeOutcome, type ProbeSpec } from './probes.js';
import { V1_LOCAL, V2_LOCAL } from '../l4/proxy-protocol.js';
import { initial, label, nextInterval, step, type RiseFall } from './rise-fall.js';

/**
 * Active health checks: one timer per checked backend, in the control plane, never on the
 * request path. Results go to the backend set (recordCheck) and state changes only through
 * backends.setHealth(); the checker never touches the data plane.
 *
 * Scheduling:
 * - The first check of a backend starts at a random point within its interval, so 100 backends
 *   configured together are not checked in the same millisecond.
 * - Each later check starts `nextInterval()` after the previous one STARTED, shortened by a random
 *   0-10 % so phases keep drifting apart. Never lengthened: with a check lasting at most `timeout`,
 *   a backend that dies is DOWN within fall x interval + timeout (with fastinterval <= interval).
 *
 * Membership follows the backend set: backends added or removed at runtime (admin API, scaler
 * clones added with health 'down') get or lose their checker on the next microtask after the
 * 'change' event; a reload re-reads every listen's `check` section. A backend with `check: false`
 * is never checked (and counts as UP, as in HAProxy).
 *
 * The health owner may change under us (passive checks mark a backend DOWN): before applying a
 * result the counters are re-synced with the backend's current health, so a passive DOWN is brought
 * back by `rise` good checks.
 */

export interface CheckProgress {
  listen: string;
  backend: string;
  /** What the counters say (normally equal to the backend's health). */
  state: 'UP' | 'DOWN';
  /** Consecutive good checks while DOWN, out of `rise`. */
  rise: { n: number; of: number };
  /** Consecutive failed checks while UP, out of `fall`. */
  fall: { n: number; of: number };
  /** "UP", "UP 1/3", "DOWN", "DOWN 1/2" (HAProxy's stats column). */
  label: string;
  /** Checks run and failed since this checker started. */
  checks: number;
  failed: number;
  /** Delay in use now (interval, fastinterval or downinterval), ms. */
  intervalMs: number;
  /** ms timestamp of the next scheduled check (0 while one is running). */
  nextAt: number;
}

interface Entry {
  readonly key: string;
  readonly listen: string;
  readonly name: string;
  /** Backend id: a different id (address changed) means a different target. */
  readonly id: number;
  /** Check settings this entry was built from; a different fingerprint rebuilds it. */
  readonly fp: string;
  readonly cfg: CheckConfig;
  readonly spec: ProbeSpec;
  rf: RiseFall;
  timer: NodeJS.Timeout | undefined;
  stopped: boolean;
  checks: number;
  failed: number;
  lastOk: boolean | undefined;
  intervalMs: number;
  nextAt: number;
}

/** Reasons under which a backend is DOWN because of checks (released if checks get disabled). */
const CHECK_REASON = /^(check:|added: waiting for checks)/;

export class HealthChecker {
  private entries = new Map<string, Entry>();
  private reconcilePending = false;
  private running = false;
  /** Aborts every check in flight on stop(), so stopping never waits for a check timeout. */
  private abort = newController();
  private readonly onChange = (ev: StateChange) => {
    if (ev.from === 'ABSENT' || ev.to === 'ABSENT') this.scheduleReconcile();
  };

  constructor(
    private readonly backends: BackendSet,
    private readonly log: Logger,
    private readonly random: () => number = Math.random,
  ) {}

  start(): void {
    if (this.running) return;
    this.running = true;
    if (this.abort.signal.aborted) this.abort = newController();
    this.backends.on('change', this.onChange);
    this.reconcile();
  }

  stop(): void {
    this.running = false;
    this.backends.off('change', this.onChange);
    for (const e of this.entries.values()) this.drop(e);
    this.entries.clear();
    this.abort.abort();
  }

  /** Progress of one backend's checks, or undefined when it is not checked. */
  progress(listen: string, backend: string): CheckProgress | undefined {
    const e = this.entries.get(listen + '/' + backend);
    return e && this.toProgress(e);
  }

  /** Progress of every checked backend. */
  list(): CheckProgress[] {
    return [...this.entries.values()].map((e) => this.toProgress(e));
  }

  private toProgress(e: Entry): CheckProgress {
    return {
      listen: e.listen, backend: e.name,
      state: e.rf.up ? 'UP' : 'DOWN',
      rise: { n: e.rf.good, of: e.cfg.rise },
      fall: { n: e.rf.bad, of: e.cfg.fall },
      label: label(e.rf, e.cfg),
      checks: e.checks, failed: e.failed,
      intervalMs: e.intervalMs, nextAt: e.nextAt,
    };
  }

  private scheduleReconcile(): void {
    if (this.reconcilePending || !this.running) return;
    this.reconcilePending = true;
    // The backend set emits 'change' in the middle of applyConfig(): wait until it is consistent.
    queueMicrotask(() => { this.reconcilePending = false; if (this.running) this.reconcile(); });
  }

  /** Make the running checkers match the backend set and the current check settings. */
  reconcile(): void {
    const seen = new Set<string>();
    for (const b of this.backends.all()) {
      const key = b.listen + '/' + b.name;
      const cfg = this.backends.poolConfig(b.listen)?.check;
      if (!b.check || !cfg) {
        if (b.health === 'down' && CHECK_REASON.test(b.lastReason)) this.backends.setHealth(b.listen, b.name, 'up', 'check: disabled');
        continue;
      }
      seen.add(key);
      const lc = this.backends.poolConfig(b.listen);
      const fp = JSON.stringify(cfg) + '|' + b.address + '|' + (lc?.servers.find((x) => x.name === b.name)?.send_proxy ?? lc?.send_proxy ?? '');
      const old = this.entries.get(key);
      if (old && old.id === b.id && old.fp === fp) continue;
      if (old) this.drop(old);
      this.add(key, b.listen, b.name, b.id, b.host, b.port, b.address, b.health === 'up', cfg, fp);
    }
    for (const [key, e] of this.entries) if (!seen.has(key)) { this.drop(e); this.entries.delete(key); }
  }

  private add(key: string, listen: string, name: string, id: number, host: string, port: number, address: string, up: boolean, cfg: CheckConfig, fp: string): void {
    const lc = this.backends.poolConfig(listen);
    const sp = lc?.servers.find((b) => b.name === name)?.send_proxy ?? lc?.send_proxy;
    const prefix = sp === 'v2' ? V2_LOCAL : sp === 'v1' ? V1_LOCAL : undefined;
    const spec: ProbeSpec = cfg.type === 'tcp'
      ? { type: 'tcp', host, port, timeoutMs: cfg.timeout, prefix }
      : cfg.type === 'dns'
        ? { type: 'dns', host, port, timeoutMs: cfg.timeout, dnsName: cfg.dns_name }
        : { type: 'http', host, port, timeoutMs: cfg.timeout, request: buildRequest(cfg.method, cfg.path, cfg.host ?? address), expect: compileExpect(cfg.expect), prefix };
    const e: Entry = { key, listen, name, id, fp, cfg, spec, rf: initial(up), timer: undefined, stopped: false, checks: 0, failed: 0, lastOk: undefined, intervalMs: cfg.interval, nextAt: 0 };
    this.entries.set(key, e);
    // Spread first checks over one interval (see the header).
    this.arm(e, Math.floor(this.random() * cfg.interval));
  }

  private drop(e: Entry): void {
    e.stopped = true;
    if (e.timer) clearTimeout(e.timer);
    e.timer = undefined;
  }

  private arm(e: Entry, delay: number): void {
    e.nextAt = Date.now() + delay;
    e.timer = setTimeout(() => { e.timer = undefined; void this.run(e); }, delay);
    e.timer.unref();
  }

  private async run(e: Entry): Promise<void> {
    if (e.stopped) return;
    e.nextAt = 0;
    const at = Date.now();
    let r: ProbeOutcome;
    try { r = await probe(e.spec, this.abort.signal); } catch (err) {
      r = { code: 'L4CON', ok: false, durationMs: Date.now() - at, detail: (err as Error).message };
    }
    if (e.stopped) return;
    const b = this.backends.get(e.listen, e.name);
    if (!b || b.id !== e.id) return; // replaced or removed: reconcile owns it now
    e.checks++;
    if (!r.ok) e.failed++;
    this.backends.recordCheck(e.listen, e.name, { code: r.code, ok: r.ok, status: r.status, durationMs: r.durationMs, at, detail: r.detail });
    if (e.rf.up !== (b.health === 'up')) e.rf = initial(b.health === 'up');
    const { state, changed } = step(e.rf, r.ok, e.cfg);
    e.rf = state;
    if (changed) {
      this.backends.setHealth(e.listen, e.name, state.up ? 'up' : 'down', 'check: ' + describe(r));
    } else if (r.ok !== e.lastOk) {
      // Edge-triggered, so a backend that stays DOWN does not log every downinterval.
      this.log.info({ listen: e.listen, backend: e.name, check: r.code, status: r.status, ms: r.durationMs, detail: r.detail, progress: label(state, e.cfg) },
        `check ${e.listen}/${e.name}: ${describe(r)} (${label(state, e.cfg)})`);
    }
    e.lastOk = r.ok;
    e.intervalMs = nextInterval(state, e.cfg);
    const jittered = e.intervalMs * (1 - 0.1 * this.random());
    this.arm(e, Math.max(0, Math.round(jittered - (Date.now() - at))));
  }
}

/** One listener per check in flight: hundreds of backends are normal, not a leak. */
function newController(): AbortController {
  const c = new AbortController();
  setMaxListeners(0, c.signal);
  return c;
}

/** "L7STS 500", "L4CON ECONNREFUSED", "L7TOUT no response after 1000ms", "L7OK 200". */
function describe(r: ProbeOutcome): string {
  if (r.status !== undefined) return `${r.code} ${r.status}`;
  return r.detail ? `${r.code} ${r.detail}` : r.code;
}

class HealthModule implements Module {
  readonly name = 'health';
  readonly checker: HealthChecker;
  constructor(app: App) { this.checker = new HealthChecker(app.backends, app.log.child({ mod: 'health' })); }
  start(): void { this.checker.start(); }
  reload(): void { this.checker.reconcile(); }
  stop(): void { this.checker.stop(); }
}

const byApp = new WeakMap<App, HealthChecker>();

/** The running checker of an App (for the stats page: progress labels, counts). */
export function healthOf(app: App): HealthChecker | undefined {
  return byApp.get(app);
}

moduleFactories.push((app) => {
  const m = new HealthModule(app);
  byApp.set(app, m.checker);
  return m;
});
