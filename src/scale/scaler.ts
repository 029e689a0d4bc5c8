import { randomBytes } from 'node:crypto';
import type { App, Module } from '../app.js';
import { moduleFactories } from '../app.js';
import type { Config } from '../config/schema.js';
import { parseHostPort } from '../config/types.js';
import type { Logger } from '../log.js';
import { resolveSnmp, type ScaleConfig, type VdsConfig, type SnmpTarget } from './config.js';
import { HypervisorClient, type ExecResult, type ListedVm } from './hypervisor.js';
import { decide, type Decision, type GroupView, type Sample } from './policy.js';
import { SnmpPoller } from './snmp.js';

/**
 * The scaler: polls every VDS (and every clone) over SNMP, asks the pure policy, and carries out
 * its decisions on the hypervisors and in the backend set. Runs only while this node is active
 * (master, or standalone without HA).
 *
 * A clone's life, each step persisted (StateStore section 'scale', saved synchronously) BEFORE the
 * external action it announces, so a crash at any point leaves a record that reconcile finishes:
 *
 *   creating ──clone ok──> joining ──health UP──> active ──cold──> removing ──drained──> destroying ──list confirms──> (gone)
 *      │ fail: destroy + confirm    │ timeout: remove + destroy                          │ destroy/list failed: retried
 *
 *   creating    `clone` is running on record.hypervisor (name chosen before the command runs)
 *   joining     in the pool with health 'down'; the health checker brings it UP after `rise` checks,
 *               then slow start ramps its weight
 *   active      serving; polled; may be removed by the policy
 *   removing    admin DRAIN; waiting until no request is in flight (or timeouts.drain)
 *   destroying  out of the pool; `destroy` then `list` must show it gone before the record goes
 *
 * Reconcile (start, becoming master, every reconcile_interval): `list` on every hypervisor; a record
 * whose clone is not listed leaves the pool; a listed clone without a record (named
 * `<source>-clone-<6 hex>`) is reported, and adopted or destroyed as `unknown_clones` says.
 *
 * Read API for the stats page: getScaler(app)?.status().
 */

export type CloneState = 'creating' | 'joining' | 'active' | 'removing' | 'destroying';

export interface CloneRecord {
  name: string;
  /** The VDS (backend name in `listen`) this is a clone of. */
  source: string;
  listen: string;
  hypervisor: string;
  state: CloneState;
  address?: string;
  /** SNMP agent of the clone, host[:port]; default: the address's host and the VDS's SNMP port. */
  snmp?: string;
  createdAt: number;
  since: number;
  adopted?: boolean;
  /** Last failure of a step (destroy failed…), for the stats page. */
  error?: string;
}

interface GroupClock { lastCloneAt: number; lastActionAt: number }
interface PersistedState { version: 1; clones: CloneRecord[]; groups: Record<string, GroupClock> }

export interface ScaleEvent { at: number; source?: string; clone?: string; event: string; message: string }
export interface ScaleAlarm { at: number; code: string; message: string; hypervisor?: string; clone?: string }

export interface ScaleTargetStatus {
  key: string;
  kind: 'vds' | 'clone';
  name: string;
  source: string;
  agent: string;
  version: '2c' | '3';
  intervalMs: number;
  last?: Sample;
  samples: Sample[];
}

export interface ScaleStatus {
  enabled: boolean;
  /** True while this node runs the scaler (master or standalone). */
  active: boolean;
  targets: ScaleTargetStatus[];
  /** Last decision per VDS (including 'none' with its reason). */
  decisions: (Decision & { at: number })[];
  clones: CloneRecord[];
  events: ScaleEvent[];
  alarms: ScaleAlarm[];
  unknownClones: { hypervisor: string; name: string; address?: string }[];
  lastReconcile?: { at: number; ok: boolean; message: string };
}

interface Target {
  key: string;
  kind: 'vds' | 'clone';
  name: string;
  source: string;
  snmp: SnmpTarget;
  poller: SnmpPoller;
  timer?: NodeJS.Timeout;
}

const EVENTS_KEPT = 200;
const ALARMS_KEPT = 50;
const CLONE_NAME_RE = /^(.+)-clone-[0-9a-f]{6}$/;

const scalers = new WeakMap<App, Scaler>();
/** The running scaler of an App (for the stats page / admin API), if `scale` is configured. */
export function getScaler(app: App): Scaler | undefined { return scalers.get(app); }

export class Scaler implements Module {
  readonly name = 'scale';
  private cfg: ScaleConfig;
  private readonly log: Logger;
  private running = false;
  private stopped = false;
  private records = new Map<string, CloneRecord>();
  private groups = new Map<string, GroupClock>();
  private samples = new Map<string, Sample[]>();
  private targets = new Map<string, Target>();
  private lastDecision = new Map<string, Decision & { at: number }>();
  private busy = new Set<string>();
  private events: ScaleEvent[] = [];
  private alarms: ScaleAlarm[] = [];
  private unknown: ScaleStatus['unknownClones'] = [];
  private lastReconcile: ScaleStatus['lastReconcile'];
  private reconcileTimer: NodeJS.Timeout | undefined;
  private reconciling: Promise<void> | undefined;
  private retryPending = false;
  private inflight = new Set<Promise<void>>();
  private clients = new Map<string, HypervisorClient>();
  private readonly onRole = () => { void this.syncRole(); };

  constructor(private readonly app: App, cfg: ScaleConfig) {
    this.cfg = cfg;
    this.log = app.log.child({ mod: 'scale' });
    this.buildClients();
    scalers.set(app, this);
  }

  // ---- module lifecycle ---------------------------------------------------------------------

  start(): void {
    this.app.state.register('scale', {
      export: () => this.exportState(),
      import: (v) => this.importState(v as PersistedState),
    });
    this.app.on('role', this.onRole);
    void this.syncRole();
  }

  async reload(cfg: Config): Promise<void> {
    const s = cfg.scale;
    if (!s) { this.log.warn('scale section removed: the scaler stops; existing clones stay in the pool'); await this.deactivate(); this.stopped = true; return; }
    this.cfg = s;
    this.buildClients();
    this.rebuildTargets();
    await this.syncRole();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.app.off('role', this.onRole);
    await this.deactivate();
    // Operations stop at their next step; give a running SSH command a moment to return so its
    // outcome is recorded. Whatever is still running is in the state file for the next start.
    if (this.inflight.size) await Promise.race([Promise.allSettled([...this.inflight]), sleep(2000)]);
  }

  private buildClients(): void {
    this.clients.clear();
    for (const h of this.cfg.hypervisors) this.clients.set(h.name, new HypervisorClient(h, this.cfg.timeouts.connect));
  }

  /** Run while the node is active; on losing the role, in-flight operations stop at their next step. */
  private async syncRole(): Promise<void> {
    // With HA configured, 'standalone' only means HA has not set the role yet: wait for it.
    const haPending = !!this.app.cfg.ha?.enabled && this.app.role === 'standalone';
    const want = !this.stopped && this.cfg.enabled && this.app.isActive() && !haPending;
    if (want && !this.running) await this.activate();
    else if (!want && this.running) await this.deactivate();
  }

  private async activate(): Promise<void> {
    this.running = true;
    this.event({ event: 'active', message: `scaler active (role ${this.app.role})` });
    this.rebuildTargets();
    this.scheduleReconcile(0);
  }

  private async deactivate(): Promise<void> {
    if (!this.running) { this.closeTargets(); return; }
    this.running = false;
    clearTimeout(this.reconcileTimer);
    this.reconcileTimer = undefined;
    this.retryPending = false;
    this.closeTargets();
    this.event({ event: 'inactive', message: `scaler inactive (role ${this.app.role})` });
  }

  // ---- persisted state (StateStore section 'scale', replicated to the backup by HA) -----------

  private exportState(): PersistedState {
    return { version: 1, clones: [...this.records.values()].map((r) => ({ ...r })), groups: Object.fromEntries(this.groups) };
  }

  private importState(v: PersistedState): void {
    if (!v || v.version !== 1 || !Array.isArray(v.clones)) { this.log.error({ v }, 'scale state section unreadable; ignored'); return; }
    this.records = new Map(v.clones.map((r) => [r.name, { ...r }]));
    this.groups = new Map(Object.entries(v.groups ?? {}));
    if (this.running) this.rebuildTargets();
  }

  /** Persist now (fsync + rename): called before each external step so a crash never leaks a clone. */
  private persist(): void {
    this.app.state.changed('scale');
    this.app.state.saveNow();
  }

  private setState(r: CloneRecord, state: CloneState, patch: Partial<CloneRecord> = {}): void {
    Object.assign(r, patch, { state, since: Date.now() });
    this.records.set(r.name, r);
    this.persist();
  }

  private dropRecord(r: CloneRecord): void {
    this.records.delete(r.name);
    this.samples.delete('clone:' + r.name);
    this.persist();
    this.rebuildTargets();
  }

  private clock(source: string): GroupClock {
    let c = this.groups.get(source);
    if (!c) this.groups.set(source, (c = { lastCloneAt: 0, lastActionAt: 0 }));
    return c;
  }

  // ---- polling --------------------------------------------------------------------------------

  private vdsOf(source: string): VdsConfig | undefined { return this.cfg.vds.find((v) => v.name === source); }

  private rebuildTargets(): void {
    if (!this.running) return;
    const want = new Map<string, Omit<Target, 'poller' | 'timer'>>();
    for (const v of this.cfg.vds) {
      const b = this.app.backends.get(v.listen, v.name);
      const host = b?.host ?? '127.0.0.1';
      want.set('vds:' + v.name, { key: 'vds:' + v.name, kind: 'vds', name: v.name, source: v.name, snmp: resolveSnmp(this.cfg, v, host) });
    }
    for (const r of this.records.values()) {
      if (r.state !== 'joining' && r.state !== 'active') continue;
      const v = this.vdsOf(r.source);
      if (!v || !r.address) continue;
      const base = resolveSnmp(this.cfg, v, parseHostPort(r.address)!.host);
      const snmp = { ...base };
      if (r.snmp) {
        const hp = parseHostPort(r.snmp);
        if (hp) { snmp.host = hp.host; snmp.port = hp.port; } else snmp.host = r.snmp;
      } else snmp.host = parseHostPort(r.address)!.host;
      want.set('clone:' + r.name, { key: 'clone:' + r.name, kind: 'clone', name: r.name, source: r.source, snmp });
    }
    for (const [k, t] of this.targets) {
      const w = want.get(k);
      if (!w || JSON.stringify(w.snmp) !== JSON.stringify(t.snmp)) { clearTimeout(t.timer); t.poller.close(); this.targets.delete(k); }
    }
    for (const [k, w] of want) {
      if (this.targets.has(k)) continue;
      const t: Target = { ...w, poller: new SnmpPoller(w.snmp) };
      this.targets.set(k, t);
      this.schedulePoll(t, 0);
    }
  }

  private closeTargets(): void {
    for (const t of this.targets.values()) { clearTimeout(t.timer); t.poller.close(); }
    this.targets.clear();
  }

  private schedulePoll(t: Target, delay: number): void {
    t.timer = setTimeout(async () => {
      const s = await t.poller.read();
      if (this.targets.get(t.key) !== t || !this.running) return;
      const prev = this.samples.get(t.key)?.at(-1);
      this.pushSample(t.key, s);
      // Log transitions only: an agent down for an hour is one line, not 720.
      if (s.status === 'unknown' && prev?.status !== 'unknown') {
        this.log.warn({ target: t.name, agent: `${t.snmp.host}:${t.snmp.port}`, reason: s.reason }, `load of ${t.name} unknown: ${s.reason}`);
      } else if (s.status === 'ok' && prev?.status === 'unknown') {
        this.log.info({ target: t.name, load: s.load }, `load of ${t.name} known again: ${s.load}`);
      }
      this.evaluate(t.source);
      if (this.targets.get(t.key) === t && this.running) this.schedulePoll(t, t.snmp.interval);
    }, delay);
    t.timer.unref?.();
  }

  private pushSample(key: string, s: Sample): void {
    let a = this.samples.get(key);
    if (!a) this.samples.set(key, (a = []));
    a.push(s);
    if (a.length > this.cfg.samples_kept) a.splice(0, a.length - this.cfg.samples_kept);
  }

  // ---- decisions --------------------------------------------------------------------------------

  private groupView(source: string): GroupView {
    const mine = [...this.records.values()].filter((r) => r.source === source);
    const c = this.clock(source);
    return {
      source,
      original: this.samples.get('vds:' + source) ?? [],
      clones: mine.filter((r) => r.state === 'active').map((r) => ({ name: r.name, samples: this.samples.get('clone:' + r.name) ?? [] })),
      pending: mine.filter((r) => r.state === 'creating' || r.state === 'joining').length,
      leaving: mine.filter((r) => r.state === 'removing' || r.state === 'destroying').length,
      totalClones: this.records.size,
      busy: this.busy.has(source) || this.reconciling !== undefined,
      lastCloneAt: c.lastCloneAt,
      lastActionAt: c.lastActionAt,
    };
  }

  private evaluate(source: string): void {
    const p = this.cfg.policy;
    const now = Date.now();
    const d = decide(p, this.groupView(source), now);
    const prev = this.lastDecision.get(source);
    this.lastDecision.set(source, { ...d, at: now });
    if (d.action === 'none') {
      if (prev?.reason !== d.reason && !/^steady/.test(d.reason)) this.log.debug({ source, reason: d.reason }, 'no action');
      return;
    }
    this.event({ source, clone: d.action === 'remove' ? d.clone : undefined, event: 'decision', message: `${d.action}: ${d.reason}` });
    this.log.info({ source, action: d.action, clone: d.action === 'remove' ? d.clone : undefined, reason: d.reason }, `scale decision: ${d.action} (${d.reason})`);
    if (d.action === 'clone') this.runOp(source, () => this.cloneVds(source, d.reason));
    else {
      const r = this.records.get(d.clone);
      if (r) this.runOp(source, () => this.removeClone(r, d.reason));
    }
  }

  /** One operation per VDS group at a time; a second request while busy is dropped. */
  private runOp(source: string, fn: () => Promise<void>): void {
    if (this.busy.has(source)) return;
    this.busy.add(source);
    const p = fn().catch((e) => this.log.error({ err: e, source }, 'scale operation crashed'))
      .finally(() => { this.busy.delete(source); this.inflight.delete(p); });
    this.inflight.add(p);
  }

  // ---- clone ------------------------------------------------------------------------------------

  private async cloneVds(source: string, reason: string): Promise<void> {
    const v = this.vdsOf(source);
    if (!v) return;
    const srcName = v.source ?? v.name;
    // The classic recipe picks a random server; a failed clone is tried once on another one.
    const order = shuffle([...this.clients.values()]).slice(0, 2);
    const clock = this.clock(source);
    for (const hv of order) {
      if (!this.running) return;
      const name = `${srcName}-clone-${randomBytes(3).toString('hex')}`;
      const now = Date.now();
      const rec: CloneRecord = { name, source, listen: v.listen, hypervisor: hv.name, state: 'creating', createdAt: now, since: now };
      this.records.set(name, rec);
      clock.lastCloneAt = clock.lastActionAt = now;
      this.persist();
      this.event({ source, clone: name, event: 'clone-started', message: `clone ${srcName} as ${name} on ${hv.name} (${reason})` });
      const r = await hv.clone(this.cfg.commands.clone, srcName, name, this.cfg.timeouts.clone);
      if (r.ok) {
        this.setState(rec, 'joining', { address: r.out.address, snmp: r.out.snmp });
        this.event({ source, clone: name, event: 'cloned', message: `${name} created on ${hv.name} at ${r.out.address} in ${r.res.ms} ms` });
        this.log.info({ source, clone: name, hypervisor: hv.name, address: r.out.address, ms: r.res.ms }, `clone ${name} created`);
        this.join(rec);
        await this.waitHealthy(rec);
        return;
      }
      this.failed(hv, r.res, { source, clone: name, what: 'clone' });
      if (r.started) {
        // The command ran: a VM may exist (garbage output, timeout, crash half-way). Destroy and confirm.
        this.setState(rec, 'destroying', { error: r.res.reason });
        await this.destroyAndConfirm(rec);
      } else this.dropRecord(rec);
    }
    this.event({ source, event: 'clone-failed', message: `could not clone ${srcName} on ${order.map((h) => h.name).join(', then ')}` });
  }

  private join(rec: CloneRecord): void {
    const orig = this.app.backends.get(rec.listen, rec.source);
    if (this.app.backends.get(rec.listen, rec.name)) return;
    try {
      this.app.backends.addBackend(rec.listen, {
        name: rec.name, address: rec.address!, weight: orig?.weight ?? 1, origin: 'clone', health: 'down', check: true,
        meta: { source: rec.source, hypervisor: rec.hypervisor, createdAt: rec.createdAt, ...(rec.adopted ? { adopted: true } : {}) },
      }, `scale: clone of ${rec.source} on ${rec.hypervisor}, waiting for health checks`);
    } catch (e) {
      this.log.error({ err: e, clone: rec.name }, 'could not add clone to the pool');
    }
    this.rebuildTargets();
  }

  /** Wait until the health checker brings the clone UP; a clone that never does is removed and destroyed. */
  private async waitHealthy(rec: CloneRecord): Promise<void> {
    const deadline = rec.since + this.cfg.timeouts.clone_health;
    while (this.running && Date.now() < deadline) {
      const b = this.app.backends.get(rec.listen, rec.name);
      if (!b) break;
      if (b.health === 'up') {
        this.setState(rec, 'active', { error: undefined });
        this.event({ source: rec.source, clone: rec.name, event: 'healthy', message: `${rec.name} UP after ${Date.now() - rec.createdAt} ms; taking traffic (slow start)` });
        this.log.info({ clone: rec.name, ms: Date.now() - rec.createdAt }, `clone ${rec.name} is UP and joins the pool`);
        return;
      }
      await sleep(Math.min(100, Math.max(10, deadline - Date.now())));
    }
    if (!this.running) return;
    const b = this.app.backends.get(rec.listen, rec.name);
    const why = b ? `not healthy after ${this.cfg.timeouts.clone_health} ms (${b.lastCheck?.code ?? 'no check'}${b.lastCheck?.detail ? ': ' + b.lastCheck.detail : ''})` : 'left the pool';
    this.alarm({ code: 'PAIRLB_CLONE_UNHEALTHY', clone: rec.name, hypervisor: rec.hypervisor, message: `clone ${rec.name} ${why}; destroying it` });
    this.setState(rec, 'destroying', { error: why });
    if (b) this.app.backends.removeBackend(rec.listen, rec.name, `scale: clone ${why}`);
    this.rebuildTargets();
    await this.destroyAndConfirm(rec);
  }

  // ---- removal ------------------------------------------------------------------------------------

  private async removeClone(rec: CloneRecord, reason: string): Promise<void> {
    const clock = this.clock(rec.source);
    clock.lastActionAt = Date.now();
    this.setState(rec, 'removing');
    this.rebuildTargets();
    const b = this.app.backends.get(rec.listen, rec.name);
    if (b) {
      this.app.backends.setAdmin(rec.listen, rec.name, 'drain', `scale: ${reason}`);
      this.event({ source: rec.source, clone: rec.name, event: 'drain', message: `${rec.name} draining (${reason})` });
      const deadline = Date.now() + this.cfg.timeouts.drain;
      const c = this.app.counters.backend(b.id);
      while (this.running && c.cur > 0 && Date.now() < deadline) await sleep(50);
      if (!this.running) return;
      if (c.cur > 0) this.log.warn({ clone: rec.name, inflight: c.cur }, `drain timeout: removing ${rec.name} with ${c.cur} request(s) in flight`);
    }
    this.setState(rec, 'destroying');
    if (this.app.backends.get(rec.listen, rec.name)) this.app.backends.removeBackend(rec.listen, rec.name, `scale: removed (${reason})`);
    this.event({ source: rec.source, clone: rec.name, event: 'removed', message: `${rec.name} removed from ${rec.listen}` });
    await this.destroyAndConfirm(rec);
  }

  /** `destroy` then `list`: the record goes only when the hypervisor no longer lists the clone. */
  private async destroyAndConfirm(rec: CloneRecord): Promise<boolean> {
    const hv = this.clients.get(rec.hypervisor);
    if (!hv) {
      this.alarm({ code: 'PAIRLB_DESTROY_FAILED', clone: rec.name, hypervisor: rec.hypervisor, message: `clone ${rec.name}: hypervisor ${rec.hypervisor} is no longer configured; destroy it by hand` });
      return false;
    }
    const d = await hv.destroy(this.cfg.commands.destroy, rec.name, this.cfg.timeouts.destroy);
    if (!d.ok) this.failed(hv, d, { source: rec.source, clone: rec.name, what: 'destroy', quiet: true });
    const l = await hv.list(this.cfg.commands.list, this.cfg.timeouts.list);
    if (l.ok && !l.vms.some((x) => x.name === rec.name)) {
      this.event({ source: rec.source, clone: rec.name, event: 'destroyed', message: `${rec.name} destroyed on ${hv.name} (confirmed by list)` });
      this.log.info({ clone: rec.name, hypervisor: hv.name }, `clone ${rec.name} destroyed`);
      this.dropRecord(rec);
      return true;
    }
    const why = !l.ok ? `list failed: ${l.res.reason}` : `still listed after destroy (${d.ok ? 'destroy exit 0' : d.reason}${d.stderr ? ': ' + d.stderr.trim().slice(0, 200) : ''})`;
    rec.error = why;
    this.persist();
    this.alarm({ code: 'PAIRLB_DESTROY_FAILED', clone: rec.name, hypervisor: hv.name, message: `clone ${rec.name} on ${hv.name} not confirmed destroyed: ${why}; retry in ${this.cfg.retry_interval} ms` });
    this.scheduleRetry();
    return false;
  }

  // ---- reconcile ------------------------------------------------------------------------------------

  private scheduleReconcile(delay: number): void {
    clearTimeout(this.reconcileTimer);
    if (!this.running) return;
    this.reconcileTimer = setTimeout(() => {
      this.retryPending = false;
      void this.reconcile().finally(() => { if (!this.retryPending) this.scheduleReconcile(this.cfg.reconcile_interval); });
    }, delay);
    this.reconcileTimer.unref?.();
  }

  /** Bring the next reconcile forward to retry_interval (it finishes 'destroying' records). */
  private scheduleRetry(): void {
    if (!this.running || this.retryPending) return;
    this.retryPending = true;
    this.scheduleReconcile(this.cfg.retry_interval);
  }

  /** Public for the admin API and tests: compare records with `list` on every hypervisor and repair. */
  reconcile(): Promise<void> {
    if (this.reconciling) return this.reconciling;
    this.reconciling = this.doReconcile().finally(() => { this.reconciling = undefined; });
    return this.reconciling;
  }

  private async doReconcile(): Promise<void> {
    const lists = new Map<string, Map<string, ListedVm>>();
    const failed: string[] = [];
    await Promise.all([...this.clients.values()].map(async (hv) => {
      const l = await hv.list(this.cfg.commands.list, this.cfg.timeouts.list);
      if (l.ok) lists.set(hv.name, new Map(l.vms.map((x) => [x.name, x])));
      else { failed.push(hv.name); this.failed(hv, l.res, { what: 'list' }); }
    }));
    if (!this.running) return;
    // Repairs per VDS group, run in order under the group's single operation slot.
    const repairs = new Map<string, (() => Promise<void>)[]>();
    const repair = (source: string, fn: () => Promise<void>) => {
      const l = repairs.get(source);
      if (l) l.push(fn); else repairs.set(source, [fn]);
    };
    for (const r of [...this.records.values()]) {
      if (this.busy.has(r.source)) continue;
      const listed = lists.get(r.hypervisor);
      if (!listed) continue; // unreachable: keep the record, retry at the next reconcile
      const vm = listed.get(r.name);
      const inPool = this.app.backends.get(r.listen, r.name);
      if (!vm) {
        if (inPool) this.app.backends.removeBackend(r.listen, r.name, `scale: clone no longer exists on ${r.hypervisor}`);
        if (r.state !== 'creating' && r.state !== 'destroying') {
          this.alarm({ code: 'PAIRLB_CLONE_VANISHED', clone: r.name, hypervisor: r.hypervisor, message: `clone ${r.name} (${r.state}) is not listed on ${r.hypervisor}; removed from the pool` });
        }
        this.event({ source: r.source, clone: r.name, event: 'reconcile', message: `${r.name} (${r.state}) not on ${r.hypervisor}: record dropped` });
        this.dropRecord(r);
        continue;
      }
      switch (r.state) {
        case 'creating':
          if (vm.address && parseHostPort(vm.address)) {
            this.setState(r, 'joining', { address: vm.address, snmp: vm.snmp });
            repair(r.source, async () => { this.join(r); await this.waitHealthy(r); });
          } else {
            this.setState(r, 'destroying', { error: 'found half-created at reconcile' });
            repair(r.source, async () => { await this.destroyAndConfirm(r); });
          }
          break;
        case 'joining':
          repair(r.source, async () => { this.setState(r, 'joining'); this.join(r); await this.waitHealthy(r); });
          break;
        case 'active':
          if (!inPool) { this.setState(r, 'joining'); repair(r.source, async () => { this.join(r); await this.waitHealthy(r); }); }
          break;
        case 'removing':
          repair(r.source, () => this.removeClone(r, 'resumed after restart'));
          break;
        case 'destroying':
          if (inPool) this.app.backends.removeBackend(r.listen, r.name, 'scale: destroying');
          repair(r.source, async () => { await this.destroyAndConfirm(r); });
          break;
      }
    }
    // Clones on a hypervisor that we have no record of.
    const unknown: ScaleStatus['unknownClones'] = [];
    for (const [hvName, listed] of lists) {
      for (const vm of listed.values()) {
        if (this.records.has(vm.name)) continue;
        const m = CLONE_NAME_RE.exec(vm.name);
        const v = m && this.cfg.vds.find((x) => (x.source ?? x.name) === m[1]);
        if (!v) continue;
        unknown.push({ hypervisor: hvName, name: vm.name, address: vm.address });
        const policy = this.cfg.unknown_clones;
        const what = policy === 'adopt' ? (vm.address ? 'adopting it' : 'cannot adopt it (list gives no address)') : policy === 'destroy' ? 'destroying it' : 'reported only';
        this.alarm({ code: 'PAIRLB_UNKNOWN_CLONE', clone: vm.name, hypervisor: hvName, message: `clone ${vm.name} on ${hvName} is not known to the scaler: ${what}` });
        if (policy === 'adopt' && vm.address && parseHostPort(vm.address)) {
          const now = Date.now();
          const r: CloneRecord = { name: vm.name, source: v.name, listen: v.listen, hypervisor: hvName, state: 'joining', address: vm.address, snmp: vm.snmp, createdAt: now, since: now, adopted: true };
          this.records.set(r.name, r);
          this.persist();
          repair(v.name, async () => { this.join(r); await this.waitHealthy(r); });
        } else if (policy === 'destroy') {
          const now = Date.now();
          const r: CloneRecord = { name: vm.name, source: v.name, listen: v.listen, hypervisor: hvName, state: 'destroying', createdAt: now, since: now, error: 'unknown clone' };
          this.records.set(r.name, r);
          this.persist();
          repair(v.name, async () => { await this.destroyAndConfirm(r); });
        }
      }
    }
    this.unknown = unknown.filter((u) => !this.records.has(u.name));
    // Clone backends left in the pool without a record (e.g. restored from the backends overlay).
    if (!failed.length) {
      const everywhere = new Set([...lists.values()].flatMap((m) => [...m.keys()]));
      for (const b of this.app.backends.all()) {
        if (b.origin === 'clone' && !this.records.has(b.name) && !everywhere.has(b.name)) {
          this.app.backends.removeBackend(b.listen, b.name, 'scale: clone without record, not on any hypervisor');
          this.event({ clone: b.name, event: 'reconcile', message: `stale clone backend ${b.listen}/${b.name} removed` });
        }
      }
    }
    this.rebuildTargets();
    const msg = `${lists.size}/${this.clients.size} hypervisors listed, ${this.records.size} clone(s) known, ${unknown.length} unknown${failed.length ? `, unreachable: ${failed.join(', ')}` : ''}`;
    this.lastReconcile = { at: Date.now(), ok: !failed.length, message: msg };
    if (failed.length && this.records.size) this.scheduleRetry();
    this.log.info({ failed, known: this.records.size, unknown: unknown.length }, `reconcile: ${msg}`);
    for (const [source, fns] of repairs) {
      this.runOp(source, async () => { for (const fn of fns) { if (!this.running) return; await fn(); } });
    }
  }

  // ---- reporting ------------------------------------------------------------------------------------

  private failed(hv: HypervisorClient, r: ExecResult, ctx: { source?: string; clone?: string; what: string; quiet?: boolean }): void {
    const stderr = r.stderr.trim().slice(0, 500);
    const code = r.kind === 'hostkey' ? 'PAIRLB_SSH_HOSTKEY' : r.kind === 'connect' || r.kind === 'auth' || (r.kind === 'timeout' && r.reason?.startsWith('connect')) ? 'PAIRLB_HV_UNREACHABLE' : `PAIRLB_${ctx.what.toUpperCase()}_FAILED`;
    const message = `${ctx.what}${ctx.clone ? ' ' + ctx.clone : ''} on ${hv.name} failed: ${r.reason}${stderr ? ` (stderr: ${stderr})` : ''}`;
    this.log.error({ code, hypervisor: hv.name, clone: ctx.clone, kind: r.kind, exit: r.code, signal: r.signal, stderr, stdout: r.stdout.slice(0, 500), ms: r.ms }, message);
    if (!ctx.quiet || code === 'PAIRLB_SSH_HOSTKEY') this.alarm({ code, hypervisor: hv.name, clone: ctx.clone, message }, false);
    this.event({ source: ctx.source, clone: ctx.clone, event: `${ctx.what}-failed`, message });
  }

  private alarm(a: Omit<ScaleAlarm, 'at'>, log = true): void {
    const x = { at: Date.now(), ...a };
    this.alarms.push(x);
    if (this.alarms.length > ALARMS_KEPT) this.alarms.shift();
    if (log) this.log.error({ code: a.code, hypervisor: a.hypervisor, clone: a.clone }, a.message);
  }

  private event(e: Omit<ScaleEvent, 'at'>): void {
    this.events.push({ at: Date.now(), ...e });
    if (this.events.length > EVENTS_KEPT) this.events.shift();
  }

  /** Snapshot for the stats page (copies; cheap enough at render time). */
  status(): ScaleStatus {
    return {
      enabled: this.cfg.enabled,
      active: this.running,
      targets: [...this.targets.values()].map((t) => {
        const s = this.samples.get(t.key) ?? [];
        return {
          key: t.key, kind: t.kind, name: t.name, source: t.source, agent: `${t.snmp.host}:${t.snmp.port}`, version: t.snmp.version,
          intervalMs: t.snmp.interval, last: s[s.length - 1], samples: s.slice(),
        };
      }),
      decisions: [...this.lastDecision.values()],
      clones: [...this.records.values()].map((r) => ({ ...r })),
      events: this.events.slice(),
      alarms: this.alarms.slice(),
      unknownClones: this.unknown.slice(),
      lastReconcile: this.lastReconcile,
    };
  }

  /** Samples of one VDS or clone (key 'vds:NAME' | 'clone:NAME'), oldest first. */
  samplesOf(key: string): readonly Sample[] { return this.samples.get(key) ?? []; }
}

/** Source of randomness for picking a hypervisor; tests replace `next` to force an order. */
export const scaleRandom = { next: Math.random };

function shuffle<T>(a: T[]): T[] {
  for (let i = a.length - 1; i > 0; i--) {
    const j = Math.floor(scaleRandom.next() * (i + 1));
    [a[i], a[j]] = [a[j], a[i]];
  }
  return a;
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

moduleFactories.push((app) => (app.cfg.scale ? new Scaler(app, app.cfg.scale) : undefined));
