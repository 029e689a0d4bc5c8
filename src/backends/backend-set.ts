import { EventEmitter } from 'node:events';
import { createHash } from 'node:crypto';
import type { BackendConfig, ListenConfig } from '../config/schema.js';
import { listenPool, type PoolConfig } from '../config/sites.js';
import { parseHostPort } from '../config/types.js';
import { PairlbError } from '../errors.js';

/**
 * The only owner of backend state. Health checks, passive checks, admin actions, the scaler and
 * HA replication change backends only through this class; the proxy and stats react to its events.
 *
 *   admin state (operator):  ready | drain | maint
 *   health (checks):         up | down
 *   effective state:         MAINT if admin=maint, else DOWN if health=down, else DRAIN if admin=drain, else UP
 *
 * Events:
 *   'change'  (ev: StateChange)   a backend's effective state, weight or membership changed
 *   'publish' (listen: string)    the data plane must rebuild its routing snapshot for this listen
 *   'runtime' ()                  the runtime overlay (what is persisted and replicated) changed
 */

export type AdminState = 'ready' | 'drain' | 'maint';
export type Health = 'up' | 'down';
export type EffectiveState = 'UP' | 'DOWN' | 'DRAIN' | 'MAINT';
export type Origin = 'config' | 'runtime' | 'clone';

export interface Backend {
  readonly id: number;
  readonly listen: string;
  readonly name: string;
  readonly address: string;
  readonly host: string;
  readonly port: number;
  /** Weight set by config or admin, before slow start. */
  weight: number;
  readonly cookie: string;
  readonly backup: boolean;
  readonly check: boolean;
  /** Most requests in flight at once (server maxconn); 0 = unlimited. */
  readonly maxconn: number;
  readonly origin: Origin;
  admin: AdminState;
  health: Health;
  /** ms timestamp of the last DOWN→UP (slow start ramps from here); 0 = up since start (no ramp). */
  upSince: number;
  lastChange: number;
  lastReason: string;
  downs: number;
  /** Accumulated ms spent DOWN, not counting the current period. */
  downtimeMs: number;
  downSince: number;
  /** Last active check result (written by the health checker, read by stats). */
  lastCheck?: CheckResult;
  /** Free-form data of the owner (e.g. the scaler's clone record). Not used by the data plane. */
  meta?: Record<string, unknown>;
}

/** One active check result, with HAProxy-style codes: L4OK L4TOUT L4CON L7OK L7STS L7TOUT L7RSP. */
export interface CheckResult {
  code: string;
  ok: boolean;
  /** HTTP status for L7 checks. */
  status?: number;
  durationMs: number;
  at: number;
  detail?: string;
}

export interface StateChange {
  listen: string;
  backend: string;
  from: EffectiveState | 'ABSENT';
  to: EffectiveState | 'ABSENT';
  reason: string;
}

/** One entry of the runtime overlay: what operators/scaler changed relative to the config. */
export interface RuntimeEntry {
  listen: string;
  name: string;
  admin?: AdminState;
  weight?: number;
  /** Present for backends that exist only at runtime (admin API or scaler). */
  added?: { address: string; cookie?: string; backup: boolean; check: boolean; origin: Origin; meta?: Record<string, unknown>; maxconn?: number };
  /** Config backend removed at runtime. */
  removed?: boolean;
  /** Fingerprint of the config entry when the change was made: if the config changes it later, a `removed` is dropped (and, in entries without cfg_state/cfg_weight, written before those existed, everything). */
  basis?: string;
  /** The config's `state` when `admin` was set: `admin` gives way only when the config changes `state` (issue 15). */
  cfg_state?: AdminState;
  /** The config's `weight` when `weight` was set: it gives way only when the config changes `weight`. */
  cfg_weight?: number;
}

/** What a reload changed for one backend (logged by the App, one line per backend). */
export interface ReloadChange { listen: string; backend: string; changes: string[] }

export interface RuntimeState { version: number; entries: RuntimeEntry[] }

export function effectiveState(b: Pick<Backend, 'admin' | 'health'>): EffectiveState {
  if (b.admin === 'maint') return 'MAINT';
  if (b.health === 'down') return 'DOWN';
  if (b.admin === 'drain') return 'DRAIN';
  return 'UP';
}

/** Cookie ids never reveal addresses: default is a short hash of listen and backend names. */
export function defaultCookieId(listen: string, name: string): string {
  return createHash('sha256').update(listen + '\0' + name).digest('base64url').slice(0, 8);
}

/** `weight 1 -> 4`, `address a -> b`: the keys of a backend's config entry that a reload changed. */
function configDiff(a: BackendConfig, b: BackendConfig): string[] {
  const out: string[] = [];
  for (const k of new Set([...Object.keys(a), ...Object.keys(b)]) as Set<keyof BackendConfig>) {
    if (JSON.stringify(a[k]) !== JSON.stringify(b[k])) out.push(`${k} ${JSON.stringify(a[k]) ?? '(unset)'} -> ${JSON.stringify(b[k]) ?? '(unset)'}`);
  }
  return out;
}

export function configFingerprint(b: BackendConfig): string {
  return createHash('sha256').update(JSON.stringify(b)).digest('base64url').slice(0, 12);
}

interface ListenEntry { cfg: PoolConfig; backends: Map<string, Backend> }

let nextId = 1;

export class BackendSet extends EventEmitter {
  private listens = new Map<string, ListenEntry>();
  private overlay = new Map<string, RuntimeEntry>();
  private rampTimer: NodeJS.Timeout | undefined;
  /** Bumped on every change of the runtime overlay; replicated with it. */
  runtimeVersion = 0;

  constructor(private readonly now: () => number = Date.now) { super(); }

  // ---- configuration -------------------------------------------------------------------------

  /**
   * Apply a (new) list of listen sections. Existing backends keep their health, counters identity
   * (same id) and admin state when their address is unchanged; the runtime overlay is re-applied
   * except where the config changed the entry since (the config wins).
   */
  applyConfig(input: readonly (PoolConfig | ListenConfig)[]): ReloadChange[] {
    const listens = input.map((p) => ('servers' in p ? p : listenPool(p)));
    const report: ReloadChange[] = [];
    const names = new Set(listens.map((l) => l.name));
    for (const [name, le] of this.listens) {
      if (!names.has(name)) {
        for (const b of le.backends.values()) this.emitChange(b, effectiveState(b), 'ABSENT', 'config: listen removed');
        this.listens.delete(name);
        this.emit('publish', name);
      }
    }
    for (const l of listens) {
      const prev = this.listens.get(l.name);
      const le: ListenEntry = { cfg: l, backends: new Map() };
      for (const bc of l.servers) {
        const key = l.name + '/' + bc.name;
        const prevBc = prev?.cfg.servers.find((x) => x.name === bc.name);
        const changes = prevBc ? configDiff(prevBc, bc) : [];
        const ov = this.overlay.get(key);
        if (ov && !ov.added) changes.push(...this.rebaseOverlay(key, ov, bc, changes.length > 0));
        if (changes.length) report.push({ listen: l.name, backend: bc.name, changes });
        const ov2 = this.overlay.get(key);
        if (ov2?.removed) continue;
        const old = prev?.backends.get(bc.name);
        const b = this.makeBackend(l.name, bc.name, bc.address, bc.cookie, bc.backup, bc.check, 'config', old, bc.maxconn);
        b.weight = ov2?.weight ?? bc.weight;
        // No runtime state = none set, or the config has since changed `state` (dropped just above):
        // either way the config's state applies.
        b.admin = ov2?.admin ?? bc.state;
        le.backends.set(bc.name, b);
      }
      for (const ov of this.overlay.values()) {
        if (ov.listen !== l.name || !ov.added) continue;
        if (le.backends.has(ov.name)) { this.overlay.delete(l.name + '/' + ov.name); continue; } // config now defines it: config wins
        const old = prev?.backends.get(ov.name);
        const b = this.makeBackend(l.name, ov.name, ov.added.address, ov.added.cookie, ov.added.backup, ov.added.check, ov.added.origin, old, ov.added.maxconn ?? 0);
        b.weight = ov.weight ?? 1;
        b.admin = ov.admin ?? 'ready';
        b.meta = ov.added.meta;
        le.backends.set(ov.name, b);
      }
      if (prev) for (const [n, b] of prev.backends) if (!le.backends.has(n)) this.emitChange(b, effectiveState(b), 'ABSENT', 'config: removed');
      for (const b of le.backends.values()) {
        const o = prev?.backends.get(b.name);
        if (!o) this.emitChange(b, 'ABSENT', effectiveState(b), b.origin === 'config' ? 'config: added' : 'runtime: restored');
      }
      this.listens.set(l.name, le);
      this.emit('publish', l.name);
    }
    this.scheduleRamp();
    return report;
  }

  /**
   * An operator's change survives a reload unless the config changed the same key since: admin
   * state gives way only to a new `state`, a runtime weight only to a new `weight` (a drained
   * backend whose address or weight the file changes stays drained). A `removed` gives way to any
   * change of the entry. Returns what happened, for the reload's log line (what was kept only when
   * the entry changed).
   */
  private rebaseOverlay(key: string, ov: RuntimeEntry, bc: BackendConfig, entryChanged: boolean): string[] {
    const notes: string[] = [];
    const legacyStale = ov.basis !== undefined && ov.basis !== configFingerprint(bc);
    if (ov.admin !== undefined) {
      const stale = ov.cfg_state !== undefined ? ov.cfg_state !== bc.state : legacyStale;
      if (stale) { notes.push(`config state ${bc.state} replaces the operator's ${ov.admin}`); delete ov.admin; delete ov.cfg_state; }
      else if (entryChanged && ov.admin !== bc.state) notes.push(`operator's ${ov.admin} kept (config state unchanged: ${bc.state})`);
    }
    if (ov.weight !== undefined) {
      const stale = ov.cfg_weight !== undefined ? ov.cfg_weight !== bc.weight : legacyStale;
      if (stale) { notes.push(`config weight ${bc.weight} replaces the operator's ${ov.weight}`); delete ov.weight; delete ov.cfg_weight; }
      else if (entryChanged && ov.weight !== bc.weight) notes.push(`operator's weight ${ov.weight} kept`);
    }
    if (ov.removed && legacyStale) { notes.push('config entry changed: the runtime removal is dropped'); delete ov.removed; }
    if (ov.admin === undefined && ov.weight === undefined && !ov.removed) this.overlay.delete(key);
    return notes;
  }

  private makeBackend(listen: string, name: string, address: string, cookie: string | undefined, backup: boolean, check: boolean, origin: Origin, old: Backend | undefined, maxconn = 0): Backend {
    const hp = parseHostPort(address);
    if (!hp) throw new PairlbError('PAIRLB_BAD_ADDRESS', `${listen}/${name}: bad address ${address}`);
    const same = old && old.address === address;
    return {
      id: same ? old.id : nextId++,
      listen, name, address, host: hp.host, port: hp.port,
      weight: 1,
      cookie: cookie ?? defaultCookieId(listen, name),
      backup, check, origin, maxconn,
      admin: 'ready',
      // A new backend with checks enabled starts UP (as HAProxy does) and the first failed checks
      // take it down; no traffic is lost at start while checks warm up.
      health: same ? old.health : 'up',
      upSince: same ? old.upSince : 0,
      lastChange: same ? old.lastChange : this.now(),
      lastReason: same ? old.lastReason : 'start',
      downs: same ? old.downs : 0,
      downtimeMs: same ? old.downtimeMs : 0,
      downSince: same ? old.downSince : 0,
    };
  }

  // ---- queries --------------------------------------------------------------------------------

  listenNames(): string[] { return [...this.listens.keys()]; }
  /** The pool's config (for a listen section: its server-side keys, sites.ts). */
  poolConfig(pool: string): PoolConfig | undefined { return this.listens.get(pool)?.cfg; }
  backends(listen: string): Backend[] { return [...(this.listens.get(listen)?.backends.values() ?? [])]; }
  all(): Backend[] { return [...this.listens.values()].flatMap((l) => [...l.backends.values()]); }
  get(listen: string, name: string): Backend | undefined { return this.listens.get(listen)?.backends.get(name); }

  private must(listen: string, name: string): Backend {
    const le = this.listens.get(listen);
    if (!le) throw new PairlbError('PAIRLB_NO_LISTEN', `no listen section named ${JSON.stringify(listen)}`);
    const b = le.backends.get(name);
    if (!b) throw new PairlbError('PAIRLB_NO_BACKEND', `no backend ${JSON.stringify(name)} in listen ${JSON.stringify(listen)}`);
    return b;
  }

  /**
   * Weight the data plane uses now: the configured weight, scaled during slow start.
   * The ramp starts at 1/20 of the weight (never 0, so the backend gets some traffic to prove itself).
   */
  effectiveWeight(b: Backend, now = this.now()): number {
    const le = this.listens.get(b.listen);
    const ss = le?.cfg.slowstart ?? 0;
    if (!ss || !b.upSince) return b.weight;
    const f = (now - b.upSince) / ss;
    if (f >= 1) return b.weight;
    return Math.max(b.weight * Math.max(f, 0.05), b.weight > 0 ? 0.05 : 0);
  }

  isRamping(b: Backend, now = this.now()): boolean {
    const ss = this.listens.get(b.listen)?.cfg.slowstart ?? 0;
    return !!ss && !!b.upSince && now - b.upSince < ss && b.health === 'up';
  }

  // ---- health (checks, passive) -------------------------------------------------------------

  setHealth(listen: string, name: string, health: Health, reason: string): void {
    const b = this.get(listen, name);
    if (!b || b.health === health) return;
    const from = effectiveState(b);
    const now = this.now();
    b.health = health;
    b.lastReason = reason;
    b.lastChange = now;
    if (health === 'down') { b.downs++; b.downSince = now; b.upSince = 0; }
    else {
      if (b.downSince) b.downtimeMs += now - b.downSince;
      b.downSince = 0;
      b.upSince = now;
    }
    this.emitChange(b, from, effectiveState(b), reason);
    this.emit('publish', listen);
    this.scheduleRamp();
  }

  /** Record a check result for display; state changes go through setHealth(). */
  recordCheck(listen: string, name: string, result: CheckResult): void {
    const b = this.get(listen, name);
    if (b) b.lastCheck = result;
  }

  // ---- admin (operator, scaler) --------------------------------------------------------------

  setAdmin(listen: string, name: string, admin: AdminState, reason: string): void {
    const b = this.must(listen, name);
    if (b.admin === admin) return;
    const from = effectiveState(b);
    b.admin = admin;
    b.lastReason = reason;
    b.lastChange = this.now();
    this.touchOverlay(b, { admin });
    this.emitChange(b, from, effectiveState(b), reason);
    this.emit('publish', listen);
  }

  setWeight(listen: string, name: string, weight: number, reason: string): void {
    const b = this.must(listen, name);
    if (!Number.isInteger(weight) || weight < 0 || weight > 256) throw new PairlbError('PAIRLB_BAD_WEIGHT', `weight must be an integer 0..256 (got ${weight})`);
    if (b.weight === weight) return;
    b.weight = weight;
    b.lastReason = reason;
    this.touchOverlay(b, { weight });
    this.emitChange(b, effectiveState(b), effectiveState(b), reason);
    this.emit('publish', listen);
  }

  addBackend(listen: string, spec: { name: string; address: string; weight?: number; cookie?: string; backup?: boolean; check?: boolean; admin?: AdminState; origin?: Origin; meta?: Record<string, unknown>; maxconn?: number;
    /** 'down' makes a new backend wait for `rise` good checks before it takes traffic (clones). */
    health?: Health }, reason: string): Backend {
    const le = this.listens.get(listen);
    if (!le) throw new PairlbError('PAIRLB_NO_LISTEN', `no listen section named ${JSON.stringify(listen)}`);
    if (le.backends.has(spec.name)) throw new PairlbError('PAIRLB_BACKEND_EXISTS', `backend ${JSON.stringify(spec.name)} already exists in ${listen}`);
    if (!parseHostPort(spec.address)) throw new PairlbError('PAIRLB_BAD_ADDRESS', `expected host:port (got ${JSON.stringify(spec.address)})`);
    const cookie = spec.cookie ?? defaultCookieId(listen, spec.name);
    for (const o of le.backends.values()) if (o.cookie === cookie) throw new PairlbError('PAIRLB_BACKEND_EXISTS', `cookie id ${cookie} already used by ${o.name}`);
    const origin = spec.origin ?? 'runtime';
    const b = this.makeBackend(listen, spec.name, spec.address, cookie, spec.backup ?? false, spec.check ?? true, origin, undefined, spec.maxconn ?? 0);
    b.weight = spec.weight ?? 1;
    b.admin = spec.admin ?? 'ready';
    b.meta = spec.meta;
    if (spec.health === 'down') { b.health = 'down'; b.downSince = this.now(); b.lastReason = 'added: waiting for checks'; }
    le.backends.set(spec.name, b);
    const key = listen + '/' + spec.name;
    this.overlay.set(key, {
      listen, name: spec.name, admin: b.admin, weight: b.weight,
      added: { address: spec.address, cookie: spec.cookie, backup: b.backup, check: b.check, origin, meta: spec.meta, ...(b.maxconn ? { maxconn: b.maxconn } : {}) },
    });
    this.bumpRuntime();
    this.emitChange(b, 'ABSENT', effectiveState(b), reason);
    this.emit('publish', listen);
    return b;
  }

  /** Remove at once (callers drain first: see src/backends/drain.ts). */
  removeBackend(listen: string, name: string, reason: string): void {
    const b = this.must(listen, name);
    const le = this.listens.get(listen)!;
    le.backends.delete(name);
    const key = listen + '/' + name;
    if (b.origin === 'config') {
      const bc = le.cfg.servers.find((x) => x.name === name);
      this.overlay.set(key, { listen, name, removed: true, basis: bc ? configFingerprint(bc) : undefined });
    } else this.overlay.delete(key);
    this.bumpRuntime();
    this.emitChange(b, effectiveState(b), 'ABSENT', reason);
    this.emit('publish', listen);
  }


  // ---- runtime overlay: persisted and replicated -------------------------------------------

  private touchOverlay(b: Backend, patch: Partial<RuntimeEntry>): void {
    const key = b.listen + '/' + b.name;
    let ov = this.overlay.get(key);
    if (!ov) {
      const bc = this.listens.get(b.listen)?.cfg.servers.find((x) => x.name === b.name);
      ov = { listen: b.listen, name: b.name, basis: bc ? configFingerprint(bc) : undefined };
      this.overlay.set(key, ov);
    }
    Object.assign(ov, patch);
    // The config values this change overrides: a later config change of the same key wins.
    if (!ov.added) {
      const bc = this.listens.get(b.listen)?.cfg.servers.find((x) => x.name === b.name);
      if (bc && patch.admin !== undefined) ov.cfg_state = bc.state;
      if (bc && patch.weight !== undefined) ov.cfg_weight = bc.weight;
    }
    this.bumpRuntime();
  }

  private bumpRuntime(): void {
    this.runtimeVersion++;
    this.emit('runtime');
  }

  exportRuntime(): RuntimeState {
    return { version: this.runtimeVersion, entries: [...this.overlay.values()].map((e) => structuredClone(e)) };
  }

  /**
   * Replace the runtime overlay (from the state file at start, or from the master) and re-apply
   * the current config on top. Health of surviving backends is kept.
   */
  importRuntime(state: RuntimeState): void {
    this.overlay.clear();
    for (const e of state.entries) this.overlay.set(e.listen + '/' + e.name, structuredClone(e));
    this.runtimeVersion = state.version;
    const cfgs = [...this.listens.values()].map((l) => l.cfg);
    // Admin states restored from the overlay must override the ones kept from before.
    for (const le of this.listens.values()) for (const b of le.backends.values()) if (b.origin === 'config') b.admin = le.cfg.servers.find((x) => x.name === b.name)?.state ?? 'ready';
    this.applyConfig(cfgs);
  }

  // ---- internals ------------------------------------------------------------------------------

  private emitChange(b: Backend, from: EffectiveState | 'ABSENT', to: EffectiveState | 'ABSENT', reason: string): void {
    this.emit('change', { listen: b.listen, backend: b.name, from, to, reason } satisfies StateChange);
  }

  /** While any backend is in slow start, republish periodically so the data plane sees the ramp. */
  private scheduleRamp(): void {
    if (this.rampTimer) return;
    const tick = () => {
      this.rampTimer = undefined;
      const now = this.now();
      const ramping = new Set<string>();
      for (const b of this.all()) if (this.isRamping(b, now)) ramping.add(b.listen);
      for (const l of ramping) this.emit('publish', l);
      if (ramping.size) { this.rampTimer = setTimeout(tick, 250); this.rampTimer.unref(); }
      else {
        // One last publish so weights reach exactly 100%.
        for (const l of this.lastRamping) if (!ramping.has(l)) this.emit('publish', l);
      }
      this.lastRamping = ramping;
    };
    this.rampTimer = setTimeout(tick, 250);
    this.rampTimer.unref();
  }
  private lastRamping = new Set<string>();

  close(): void { if (this.rampTimer) clearTimeout(this.rampTimer); }
}
