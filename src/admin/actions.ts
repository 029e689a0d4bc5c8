import type { App } from '../app.js';
import type { AdminState, Backend } from '../backends/backend-set.js';
import { PairlbError } from '../errors.js';
import type { Logger } from '../log.js';

/**
 * Operator actions on backends, shared by the stats page and the runtime API. They change state only
 * through app.backends (which persists the runtime overlay through app.state), and every action is
 * logged with who did it and from where.
 *
 * Removal is graceful: the backend is set to DRAIN (no new sessions; sticky clients go elsewhere),
 * then removed when its in-flight count reaches 0 or when the timeout expires, whichever is first.
 */

export interface Actor { user: string; via: 'page' | 'api' | 'cli' }

export interface BackendView {
  listen: string; name: string; address: string; state: string; admin: AdminState; health: string;
  weight: number; effective_weight: number; backup: boolean; check: boolean; origin: string;
  cur: number; total: number; last_check: string | null; reason: string; removing: boolean;
}

export class AdminActions {
  /** "listen/name" of backends being drained for removal. */
  readonly removing = new Set<string>();
  private readonly waits = new Set<{ timer: NodeJS.Timeout; done: () => void }>();

  constructor(private readonly app: App, private readonly log: Logger) {}

  /**
   * On the backup of a replicating pair, runtime state comes from the master and a local change
   * would be overwritten (or fight the master's): changes are refused with a pointer to the master.
   */
  readOnlyReason(): string | undefined {
    const ha = this.app.cfg.ha as { replicate?: boolean } | undefined;
    if (ha && ha.replicate !== false && this.app.role === 'backup') return 'this node is the HA backup: runtime state is replicated from the master; make the change on the master';
    return undefined;
  }

  private writable(): void {
    const why = this.readOnlyReason();
    if (why) throw new PairlbError('PAIRLB_NOT_MASTER', why);
  }

  view(b: Backend): BackendView {
    const state = b.admin === 'maint' ? 'MAINT' : b.health === 'down' ? 'DOWN' : b.admin === 'drain' ? 'DRAIN' : 'UP';
    return {
      listen: b.listen, name: b.name, address: b.address, state, admin: b.admin, health: b.health,
      weight: b.weight, effective_weight: Math.round(this.app.backends.effectiveWeight(b) * 100) / 100,
      backup: b.backup, check: b.check, origin: b.origin,
      cur: this.app.counters.backend(b.id).cur, total: this.app.counters.backend(b.id).total,
      last_check: b.lastCheck ? b.lastCheck.code + (b.lastCheck.status ? '/' + b.lastCheck.status : '') : null,
      reason: b.lastReason, removing: this.removing.has(b.listen + '/' + b.name),
    };
  }

  list(listen?: string): BackendView[] {
    if (listen !== undefined && !this.app.backends.listenNames().includes(listen)) throw new PairlbError('PAIRLB_NO_LISTEN', `no listen section named ${JSON.stringify(listen)}`);
    const bs = listen !== undefined ? this.app.backends.backends(listen) : this.app.backends.all();
    return bs.map((b) => this.view(b));
  }

  private must(listen: string, name: string): Backend {
    const b = this.app.backends.get(listen, name);
    if (!b) {
      if (!this.app.backends.listenNames().includes(listen)) throw new PairlbError('PAIRLB_NO_LISTEN', `no listen section named ${JSON.stringify(listen)}`);
      throw new PairlbError('PAIRLB_NO_BACKEND', `no backend ${JSON.stringify(name)} in listen ${JSON.stringify(listen)}`);
    }
    return b;
  }

  setState(listen: string, name: string, state: string, who: Actor): BackendView {
    this.writable();
    if (state !== 'ready' && state !== 'drain' && state !== 'maint') throw new PairlbError('PAIRLB_BAD_STATE', `state must be ready, drain or maint (got ${JSON.stringify(state)})`);
    const b = this.must(listen, name);
    if (this.removing.has(listen + '/' + name)) throw new PairlbError('PAIRLB_REMOVING', `${listen}/${name} is being removed`);
    const from = b.admin;
    this.app.backends.setAdmin(listen, name, state, `admin: ${state} by ${who.user} (${who.via})`);
    this.log.info({ user: who.user, via: who.via, action: 'state', listen, backend: name, from, to: state }, `admin ${who.user} via ${who.via}: ${listen}/${name} ${from} -> ${state}`);
    return this.view(b);
  }

  setWeight(listen: string, name: string, weight: unknown, who: Actor): BackendView {
    this.writable();
    const w = typeof weight === 'string' && /^\d{1,3}$/.test(weight.trim()) ? Number(weight) : weight;
    if (typeof w !== 'number' || !Number.isInteger(w) || w < 0 || w > 256) throw new PairlbError('PAIRLB_BAD_WEIGHT', `weight must be an integer 0..256 (got ${JSON.stringify(weight)})`);
    const b = this.must(listen, name);
    const from = b.weight;
    this.app.backends.setWeight(listen, name, w, `admin: weight ${w} by ${who.user} (${who.via})`);
    this.log.info({ user: who.user, via: who.via, action: 'weight', listen, backend: name, from, to: w }, `admin ${who.user} via ${who.via}: ${listen}/${name} weight ${from} -> ${w}`);
    return this.view(b);
  }

  add(listen: string, spec: { name?: unknown; address?: unknown; weight?: unknown; backup?: unknown; check?: unknown; state?: unknown; cookie?: unknown }, who: Actor): BackendView {
    this.writable();
    if (typeof spec.name !== 'string' || !/^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/.test(spec.name)) throw new PairlbError('PAIRLB_BAD_NAME', 'name: expected letters, digits, . _ - (max 64)');
    if (typeof spec.address !== 'string') throw new PairlbError('PAIRLB_BAD_ADDRESS', 'address: expected host:port');
    const weight = spec.weight === undefined ? 1 : spec.weight;
    if (typeof weight !== 'number' || !Number.isInteger(weight) || weight < 0 || weight > 256) throw new PairlbError('PAIRLB_BAD_WEIGHT', 'weight must be an integer 0..256');
    const state = spec.state ?? 'ready';
    if (state !== 'ready' && state !== 'drain' && state !== 'maint') throw new PairlbError('PAIRLB_BAD_STATE', 'state must be ready, drain or maint');
    if (spec.cookie !== undefined && (typeof spec.cookie !== 'string' || !/^[A-Za-z0-9._-]{1,64}$/.test(spec.cookie))) throw new PairlbError('PAIRLB_BAD_COOKIE', 'cookie: expected 1-64 letters, digits, . _ -');
    const b = this.app.backends.addBackend(listen, {
      name: spec.name, address: spec.address, weight, admin: state,
      backup: spec.backup === true, check: spec.check !== false, cookie: spec.cookie as string | undefined, origin: 'runtime',
    }, `admin: added by ${who.user} (${who.via})`);
    this.log.info({ user: who.user, via: who.via, action: 'add', listen, backend: b.name, address: b.address, weight }, `admin ${who.user} via ${who.via}: added ${listen}/${b.name} at ${b.address}`);
    return this.view(b);
  }

  /**
   * Drain, wait until no session is in flight (or `timeoutMs`), then remove. Resolves when removed.
   * A backend already being removed is not removed twice: the second caller waits for the first.
   */
  async remove(listen: string, name: string, timeoutMs: number, who: Actor): Promise<{ removed: true; waitedMs: number; forced: boolean; inflight: number }> {
    this.writable();
    const b = this.must(listen, name);
    const key = listen + '/' + name;
    const t0 = Date.now();
    const first = !this.removing.has(key);
    if (first) {
      this.removing.add(key);
      this.log.info({ user: who.user, via: who.via, action: 'remove', listen, backend: name, timeoutMs }, `admin ${who.user} via ${who.via}: removing ${key} (drain first, up to ${timeoutMs} ms)`);
      if (b.admin === 'ready') this.app.backends.setAdmin(listen, name, 'drain', `admin: draining for removal by ${who.user} (${who.via})`);
    }
    const c = this.app.counters.backend(b.id);
    // Data-plane workers report in-flight counts every 100 ms: a request that started just now
    // must be seen before "idle" is believed.
    await this.app.proxy.sync();
    const forced = await this.waitIdle(() => c.cur === 0 || this.app.backends.get(listen, name) !== b, timeoutMs);
    const inflight = c.cur;
    if (this.app.backends.get(listen, name) === b) {
      this.app.backends.removeBackend(listen, name, `admin: removed by ${who.user} (${who.via})` + (forced ? `, ${inflight} session(s) still in flight after ${timeoutMs} ms` : ''));
      this.log.info({ user: who.user, via: who.via, action: 'removed', listen, backend: name, forced, inflight, waitedMs: Date.now() - t0 }, `removed ${key}` + (forced ? ` after timeout with ${inflight} in flight` : ' (idle)'));
    }
    this.removing.delete(key);
    return { removed: true, waitedMs: Date.now() - t0, forced, inflight };
  }

  /** Resolves false when idle() became true, true on timeout. Polls at 50 ms (control plane only). */
  private waitIdle(idle: () => boolean, timeoutMs: number): Promise<boolean> {
    if (idle()) return Promise.resolve(false);
    const end = Date.now() + timeoutMs;
    return new Promise((ok) => {
      const w = {
        timer: setInterval(() => {
          if (idle()) finish(false);
          else if (Date.now() >= end) finish(true);
        }, 50),
        done: () => finish(true),
      };
      const finish = (v: boolean) => { clearInterval(w.timer); this.waits.delete(w); ok(v); };
      this.waits.add(w);
    });
  }

  /** On stop, pending removals finish now (the backends stay drained and are removed). */
  close(): void { for (const w of [...this.waits]) w.done(); }
}
