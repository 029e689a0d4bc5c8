import { randomBytes } from 'node:crypto';
import type { StatusNote } from '../admin/status.js';
import type { App, Module } from '../app.js';
import { moduleFactories } from '../app.js';
import type { Config } from '../config/schema.js';
import { parseHostPort } from '../config/types.js';
import type { Logger } from '../log.js';
import { resolveSnmp, type ScaleConfig, type VdsConfig, type SnmpTarget } from './config.js';
import { HypervisorClient, type ExecResult, type ListedVm } from './hypervisor.js';
import { adoptionLimit, ASYNC_ACTIONS, step, type CloneRecord, type LifeAction, type LifeEvent } from './lifecycle.js';
import { decide, type Decision, type GroupView, type Sample } from './policy.js';
import { SnmpPoller } from './snmp.js';

/**
 * The scaler: polls every VDS (and every clone) over SNMP, asks the pure policy, and carries out
 * its decisions on the hypervisors and in the backend set. Runs only while this node is active
 * (master, or standalone without HA).
 *
 * A clone's life is the pure transition table in lifecycle.ts (`step(record, event) → {record,
 * actions}`); this shell turns SSH results, health states and `list` output into its events,
 * persists the returned record (StateStore section 'scale', saved synchronously) BEFORE carrying
 * out the actions it announces, so a crash at any point leaves a record that reconcile finishes.
 *
 * Reconcile (start, becoming master, every reconcile_interval, retry_interval after a failure or
 * while a `creating` record waits for its clone command's deadline): `list` on every hypervisor,
 * each record gets a `listed` event; a listed clone without a record (named `<source>-clone-<6 hex>`)
 * gets `found_unknown` (report / adopt within the limits / destroy, as `unknown_clones` says).
 *
 * Read API for the stats page: getScaler(app)?.status().
 */

export type { CloneRecord, CloneState } from './lifecycle.js';

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
/** How long an alarm keeps `pairlb status` at WARNING. */
const ALARM_WINDOW_MS = 15 * 60_000;
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
    this.unregisterNotes = app.addStatusNotes(() => this.statusNotes(Date.now()));
  }

  private readonly unregisterNotes: () => void;

  /**
   * For `pairlb status` (WARNING): alarms of the last ALARM_WINDOW_MS (an alarm is an event, not a
   * state: it ages out instead of holding the check at WARNING for ever), a reconcile that failed
   * last time, VMs on the hypervisors that look like our clones but have no record.
   */
  statusNotes(now: number): StatusNote[] {
    if (!this.cfg.enabled) return [];
    const out: StatusNote[] = [];
    const recent = this.alarms.filter((a) => now - a.at <= ALARM_WINDOW_MS);
    if (recent.length) {
      const last = recent[recent.length - 1];
      out.push({ source: 'scale', level: 1, text: `scale: ${recent.length} alarm(s) in the last ${ALARM_WINDOW_MS / 60_000} min, latest ${last.code}: ${last.message.slice(0, 160)}` });
    }
    const r = this.lastReconcile;
    if (r && !r.ok) out.push({ source: 'scale', level: 1, text: `scale: last reconcile failed (${r.message})` });
    if (this.unknown.length) {
      const names = this.unknown.slice(0, 3).map((u) => `${u.hypervisor}/${u.name}`).join(', ') + (this.unknown.length > 3 ? ` +${this.unknown.length - 3}` : '');
      out.push({ source: 'scale', level: 1, text: `scale: ${this.unknown.length} unknown clone(s) not in the pool (${names}; unknown_clones: ${this.cfg.unknown_clones})` });
    }
    return out;
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
    this.unregisterNotes();
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
    // Records written before deadlines existed: the clone command's window counts from createdAt.
    this.records = new Map(v.clones.map((r) => [r.name, { ...r, ...(r.state === 'creating' && r.deadline === undefined ? { deadline: this.cloneDeadline(r.createdAt) } : {}) }]));
    this.groups = new Map(Object.entries(v.groups ?? {}));
    if (this.running) this.rebuildTargets();
  }

  /** Persist now (fsync + rename): called before each external step so a crash never leaks a clone. */
  private persist(): void {
    this.app.state.changed('scale');
    this.app.state.saveNow();
  }

  // ---- the lifecycle driver (lifecycle.ts is the table; this carries out its actions) ----------

  /**
   * One step of a record's life: persist what the table returns (null = forget), then carry out the
   * synchronous actions. Returns the record and the asynchronous action still to run (the table puts
   * at most one, last), for run().
   */
  private apply(rec: CloneRecord | null, ev: LifeEvent): { record: CloneRecord | null; subject: CloneRecord | null; pending?: LifeAction } {
    const r = step(rec, ev);
    const subject = r.record ?? rec ?? subjectOf(ev);
    if (r.record !== rec) {
      if (r.record) this.records.set(r.record.name, r.record);
      else if (rec) { this.records.delete(rec.name); this.samples.delete('clone:' + rec.name); }
      this.persist();
      if (!r.record || !rec || r.record.state !== rec.state) this.rebuildTargets();
    }
    let pending: LifeAction | undefined;
    for (const a of r.actions) {
      if (ASYNC_ACTIONS.has(a.type)) pending = a;
      else if (subject) this.performNow(subject, a);
    }
    return { record: r.record, subject, pending };
  }

  /** Run a record's asynchronous actions and the steps they lead to; returns the event types fed. */
  private async run(rec: CloneRecord | null, pending: LifeAction | undefined): Promise<Set<LifeEvent['type']>> {
    const fed = new Set<LifeEvent['type']>();
    // The table gives asynchronous actions only to a record it keeps (lifecycle.test.ts checks it).
    while (rec && pending) {
      const ev = await this.performAsync(rec, pending);
      if (!ev) break;
      fed.add(ev.type);
      const r = this.apply(rec, ev);
      rec = r.record;
      pending = r.pending;
    }
    return fed;
  }

  private performNow(rec: CloneRecord, a: LifeAction): void {
    switch (a.type) {
      case 'join': this.join(rec); break;
      case 'leave_pool':
        if (this.app.backends.get(rec.listen, rec.name)) this.app.backends.removeBackend(rec.listen, rec.name, a.reason);
        break;
      case 'retry_later': this.scheduleRetry(); break;
      case 'recheck': this.scheduleRetry(Math.max(0, Math.min(this.cfg.retry_interval, a.at - Date.now() + 50))); break;
      case 'alarm': this.alarm({ code: a.code, clone: rec.name, hypervisor: rec.hypervisor, message: a.message }); break;
      case 'note':
        this.event({ source: rec.source, clone: rec.name, event: a.event, message: a.message });
        if (a.log) this.log[a.log]({ clone: rec.name, source: rec.source, hypervisor: rec.hypervisor, state: rec.state, event: a.event }, a.message);
        break;
      default: break;
    }
  }

  private async performAsync(rec: CloneRecord, a: LifeAction): Promise<LifeEvent | undefined> {
    switch (a.type) {
      case 'clone': return this.runClone(rec);
      case 'wait_healthy': return this.waitHealthy(rec);
      case 'drain': return this.drain(rec, a.reason);
      case 'destroy': return this.destroyAndConfirm(rec);
      default: return undefined;
    }
  }

  /** The clone command may run until connect + clone timeouts (+1 s for the handshake and teardown). */
  private cloneDeadline(start: number): number { return start + this.cfg.timeouts.connect + this.cfg.timeouts.clone + 1000; }

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
      clock.lastCloneAt = clock.lastActionAt = now;
      const { record, pending } = this.apply(null, { type: 'clone_start', at: now, name, source, listen: v.listen, hypervisor: hv.name, deadline: this.cloneDeadline(now), reason });
      const fed = await this.run(record, pending);
      if (fed.has('clone_ok')) return;
    }
    this.event({ source, event: 'clone-failed', message: `could not clone ${srcName} on ${order.map((h) => h.name).join(', then ')}` });
  }

  private async runClone(rec: CloneRecord): Promise<LifeEvent | undefined> {
    const hv = this.clients.get(rec.hypervisor);
    if (!hv) return { type: 'clone_failed', at: Date.now(), started: false, reason: `hypervisor ${rec.hypervisor} is no longer configured` };
    const v = this.vdsOf(rec.source);
    const r = await hv.clone(this.cfg.commands.clone, v?.source ?? rec.source, rec.name, this.cfg.timeouts.clone);
    if (r.ok) {
      this.log.info({ source: rec.source, clone: rec.name, hypervisor: hv.name, address: r.out.address, ms: r.res.ms }, `clone ${rec.name} created`);
      return { type: 'clone_ok', at: Date.now(), address: r.out.address, snmp: r.out.snmp, ms: r.res.ms };
    }
    this.failed(hv, r.res, { source: rec.source, clone: rec.name, what: 'clone' });
    return { type: 'clone_failed', at: Date.now(), started: r.started, reason: r.res.reason ?? 'failed' };
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
  private async waitHealthy(rec: CloneRecord): Promise<LifeEvent | undefined> {
    const deadline = rec.since + this.cfg.timeouts.clone_health;
    while (this.running && Date.now() < deadline) {
      const b = this.app.backends.get(rec.listen, rec.name);
      if (!b) break;
      if (b.health === 'up') {
        this.log.info({ clone: rec.name, ms: Date.now() - rec.createdAt }, `clone ${rec.name} is UP and joins the pool`);
        return { type: 'healthy', at: Date.now() };
      }
      await sleep(Math.min(100, Math.max(10, deadline - Date.now())));
    }
    if (!this.running) return undefined;
    const b = this.app.backends.get(rec.listen, rec.name);
    const why = b ? `not healthy after ${this.cfg.timeouts.clone_health} ms (${b.lastCheck?.code ?? 'no check'}${b.lastCheck?.detail ? ': ' + b.lastCheck.detail : ''})` : 'left the pool';
    return { type: 'unhealthy', at: Date.now(), why };
  }

  // ---- removal ------------------------------------------------------------------------------------

  private async removeClone(rec: CloneRecord, reason: string): Promise<void> {
    const clock = this.clock(rec.source);
    clock.lastActionAt = Date.now();
    const { record, pending } = this.apply(rec, { type: 'remove', at: Date.now(), reason });
    await this.run(record, pending);
  }

  /** Admin DRAIN, then wait until nothing is in flight (or timeouts.drain). */
  private async drain(rec: CloneRecord, reason: string): Promise<LifeEvent | undefined> {
    const b = this.app.backends.get(rec.listen, rec.name);
    if (b) {
      this.app.backends.setAdmin(rec.listen, rec.name, 'drain', `scale: ${reason}`);
      this.event({ source: rec.source, clone: rec.name, event: 'drain', message: `${rec.name} draining (${reason})` });
      const deadline = Date.now() + this.cfg.timeouts.drain;
      const c = this.app.counters.backend(b.id);
      await this.app.proxy.sync(); // in-flight counts of data-plane workers, up to now
      while (this.running && c.cur > 0 && Date.now() < deadline) await sleep(50);
      if (!this.running) return undefined;
      if (c.cur > 0) this.log.warn({ clone: rec.name, inflight: c.cur }, `drain timeout: removing ${rec.name} with ${c.cur} request(s) in flight`);
    }
    return { type: 'drained', at: Date.now(), reason };
  }

  /** `destroy` then `list`: the record goes only when the hypervisor no longer lists the clone. */
  private async destroyAndConfirm(rec: CloneRecord): Promise<LifeEvent | undefined> {
    const hv = this.clients.get(rec.hypervisor);
    if (!hv) {
      this.alarm({ code: 'PAIRLB_DESTROY_FAILED', clone: rec.name, hypervisor: rec.hypervisor, message: `clone ${rec.name}: hypervisor ${rec.hypervisor} is no longer configured; destroy it by hand` });
      return undefined;
    }
    const d = await hv.destroy(this.cfg.commands.destroy, rec.name, this.cfg.timeouts.destroy);
    if (!d.ok) this.failed(hv, d, { source: rec.source, clone: rec.name, what: 'destroy', quiet: true });
    const l = await hv.list(this.cfg.commands.list, this.cfg.timeouts.list);
    if (l.ok && !l.vms.some((x) => x.name === rec.name)) {
      this.log.info({ clone: rec.name, hypervisor: hv.name }, `clone ${rec.name} destroyed`);
      return { type: 'destroyed', at: Date.now() };
    }
    const why = !l.ok ? `list failed: ${l.res.reason}` : `still listed after destroy (${d.ok ? 'destroy exit 0' : d.reason}${d.stderr ? ': ' + d.stderr.trim().slice(0, 200) : ''})`;
    return { type: 'destroy_unconfirmed', at: Date.now(), why, retryMs: this.cfg.retry_interval };
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

  /** Bring the next reconcile forward to `delay` (default retry_interval; it finishes 'destroying' records). */
  private scheduleRetry(delay = this.cfg.retry_interval): void {
    if (!this.running || this.retryPending) return;
    this.retryPending = true;
    this.scheduleReconcile(delay);
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
    const now = Date.now();
    for (const r of [...this.records.values()]) {
      if (this.busy.has(r.source)) continue;
      const listed = lists.get(r.hypervisor);
      if (!listed) continue; // unreachable: keep the record, retry at the next reconcile
      const vm = listed.get(r.name) ?? null;
      const inPool = !!this.app.backends.get(r.listen, r.name);
      const { record, pending } = this.apply(r, { type: 'listed', at: now, vm, inPool });
      if (record && pending) repair(r.source, async () => { await this.run(record, pending); });
    }
    // Clones on a hypervisor that we have no record of.
    const unknown: ScaleStatus['unknownClones'] = [];
    const lim = this.cfg.policy;
    for (const [hvName, listed] of lists) {
      for (const vm of listed.values()) {
        if (this.records.has(vm.name)) continue;
        const m = CLONE_NAME_RE.exec(vm.name);
        const v = m && this.cfg.vds.find((x) => (x.source ?? x.name) === m[1]);
        if (!v) continue;
        unknown.push({ hypervisor: hvName, name: vm.name, address: vm.address });
        const limit = adoptionLimit(this.records.values(), v.name, lim.max_clones_per_vds, lim.max_clones);
        const subject = { name: vm.name, source: v.name, listen: v.listen, hypervisor: hvName };
        const { record, pending } = this.apply(null, { type: 'found_unknown', at: Date.now(), ...subject, vm, policy: this.cfg.unknown_clones, limit });
        if (record && pending) repair(v.name, async () => { await this.run(record, pending); });
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

/** The record an event without one is about (a new clone, an unknown VM), for its actions' log lines. */
function subjectOf(e: LifeEvent): CloneRecord | null {
  if (e.type !== 'clone_start' && e.type !== 'found_unknown') return null;
  return { name: e.name, source: e.source, listen: e.listen, hypervisor: e.hypervisor, state: 'creating', createdAt: e.at, since: e.at };
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
