import { sitesOf } from '../config/sites.js';
import { fork, type ChildProcess } from 'node:child_process';
import { dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { MessageChannel, Worker } from 'node:worker_threads';
import pino from 'pino';
import { App, moduleFactories, type Module } from '../app.js';
import type { Config } from '../config/schema.js';
import { parseHostPort } from '../config/types.js';
import type { Logger } from '../log.js';
import type { HaConfig } from './config.js';
import type { HaRole } from './fsm.js';
import type { HaLoopStatus, HaStatus, ReplView } from './node.js';
import { Replicator } from './replication.js';
import { RUNTIME_ENV, runHaLoop, type Channel, type FromHa, type ToHa } from './runtime.js';
import type { SelfCheckTarget } from './self-check.js';
import type { LagSnapshot } from './loop-lag.js';

/**
 * The HA module of the control plane. The heartbeat loop itself (runtime.ts + node.ts) runs in its
 * own process by default (`ha.isolation`); this side keeps what belongs to the control plane:
 *
 * - replication (replication.ts), next to the state store it reads and writes; its compression and
 *   decompression run on libuv's thread pool (async zlib), not on this loop nor on the HA loop;
 * - the App's role (App.setRole from the loop's `role` messages), closing client connections
 *   when the VIP left, the data plane's listener addresses and serving state for the loop;
 * - status for the stats page, /metrics and the admin API: the loop's counters (pushed every
 *   100 ms) + replication;
 * - liveness for systemd's WATCHDOG=1 (App.liveness): the loop answers a ping.
 *
 * The loop exiting on its own (crash) is logged and it is started again after a second (a new
 * incarnation, INIT → BACKUP); its VIP watchdog removed the VIP when it died.
 */

const RUNTIME = fileURLToPath(new URL('./runtime.js', import.meta.url));
/** After the loop exits unexpectedly, wait this long before starting it again. */
const RESTART_MS = 1000;

interface Runner { ch: Channel<FromHa, ToHa>; pid?: number; kill(): void; exited: Promise<void> }

export class HaModule implements Module {
  readonly name = 'ha';
  private readonly log: Logger;
  private readonly repl: Replicator;
  private runner: Runner | undefined;
  private loop: HaLoopStatus | undefined;
  private role: HaRole = 'init';
  private peerAlive = false;
  private stopping = false;
  private lastRepl = '';
  private lastServing = true;
  private lastAccepted = 0;
  private servingTimer: NodeJS.Timeout | undefined;
  private pings = new Map<number, (lag: LagSnapshot) => void>();
  private pingId = 0;
  private waiters: { t: FromHa['t']; fn: (m: FromHa) => void }[] = [];
  private restarts = 0;
  /** Last loop lag reported with a pong or status. */
  lag: LagSnapshot | undefined;
  private readonly onStateChange = (): void => { setImmediate(() => { this.repl.evaluate(Date.now()); this.pushRepl(); }); };

  constructor(private readonly app: App, private cfg: HaConfig) {
    this.log = app.log.child({ mod: 'ha' });
    this.repl = new Replicator({
      log: this.log, store: app.state, node: app.node, peer: cfg.peer.name, enabled: cfg.replicate,
      role: () => this.role, peerAlive: () => this.peerAlive,
      send: (payload, attempt) => this.post({ t: 'sendState', payload, attempt }),
      codec: 'async',
    }, { first: Math.max(2 * cfg.keepalive, 50), max: Math.max(1000, 2 * cfg.deadtime) });
    app.liveness.push({ name: 'ha', ping: () => this.ping() });
    app.threadLag.set('ha', () => this.loop?.loopLag);
  }

  /** Where the loop runs (ha.isolation). */
  get isolation(): HaConfig['isolation'] { return this.cfg.isolation; }
  /** PID of the loop's process (isolation: process). */
  get loopPid(): number | undefined { return this.runner?.pid; }

  status(): HaStatus | undefined {
    const l = this.loop;
    if (!l) return undefined;
    const repl = this.repl.status(Date.now());
    const { loopLag, ...rest } = l;
    return { ...rest, stateVersion: this.app.state.version, peerStateVersion: repl.peer?.total, replication: repl, isolation: this.cfg.isolation, loopPid: this.runner?.pid, loopRestarts: this.restarts, loopLag, controlLoopLag: this.app.threadLag.get('main')?.() } as HaStatus;
  }

  /** Admin API (POST /v1/ha/conflicts/ack): the operator resolved the recorded state conflicts. */
  acknowledgeConflicts(by: string): number { const n = this.repl.acknowledgeConflicts(by); this.pushRepl(); return n; }

  private servePort(): number {
    const a = sitesOf(this.app.cfg).frontends[0];
    return this.cfg.serve_check.port ?? this.app.proxy.address(a.name)?.port ?? parseHostPort(a.bind)!.port;
  }

  private serveTls(): boolean { return this.cfg.serve_check.port === undefined && sitesOf(this.app.cfg).frontends[0].tls !== undefined; }

  private targets(): SelfCheckTarget[] {
    const out: SelfCheckTarget[] = [];
    for (const [name, l] of this.app.proxy.listeners) { const a = l.address(); if (a) out.push({ name, host: a.host, port: a.port, tls: l.tls !== undefined }); }
    return out;
  }

  private replView(): ReplView {
    const v = this.app.state.currentVersion();
    const st = this.cfg.replicate ? this.repl.status(Date.now()) : undefined;
    return { total: this.app.state.version, version: this.cfg.replicate ? v : undefined, conflictAck: this.repl.conflictAck, inSync: this.repl.inSync(), sync: st?.sync, ours: st?.version.text, peer: st?.peer?.text };
  }

  /** Tell the loop when what goes into its adverts changed. */
  private pushRepl(): void {
    const v = this.replView();
    const k = JSON.stringify(v);
    if (k === this.lastRepl) return;
    this.lastRepl = k;
    this.post({ t: 'repl', repl: v });
  }

  private post(m: ToHa): void { this.runner?.ch.post(m); }

  private ping(): Promise<LagSnapshot> {
    const id = ++this.pingId;
    return new Promise((resolve) => {
      this.pings.set(id, (lag) => { this.lag = lag; resolve(lag); });
      this.post({ t: 'ping', id });
      // Unanswered pings are dropped at the next start of the loop; bound the map meanwhile.
      if (this.pings.size > 100) this.pings.delete(this.pings.keys().next().value!);
    });
  }

  private wait<T extends FromHa['t']>(t: T, ms: number): Promise<Extract<FromHa, { t: T }> | undefined> {
    return new Promise((resolve) => {
      const w = { t, fn: (m: FromHa) => { clearTimeout(timer); resolve(m as Extract<FromHa, { t: T }>); } };
      const timer = setTimeout(() => { this.waiters = this.waiters.filter((x) => x !== w); resolve(undefined); }, ms);
      this.waiters.push(w);
    });
  }

  private onMessage(m: FromHa): void {
    switch (m.t) {
      case 'log': this.writeLine(m.line); break;
      case 'role':
        if (m.role !== 'init') this.role = m.role;
        this.app.setRole(m.role, m.reason);
        // Who wins a diverged state depends on the roles.
        setImmediate(() => { this.repl.evaluate(Date.now()); this.pushRepl(); });
        break;
      case 'closeIdle': this.app.proxy.closeIdleConnections(); this.log.debug('closed idle client connections after the handover'); break;
      case 'released': {
        // Connections to the VIP still in flight get a short grace (a response already being sent
        // can still reach the client), then they are destroyed: the client's ACKs now go to the
        // peer, so they would otherwise hold a stopping process until timeouts.drain.
        const ip = m.ip;
        setTimeout(() => {
          void this.app.proxy.destroyConnectionsTo(ip).then((n) => {
            if (n) this.log.info({ vip: ip, connections: n }, 'closed client connections to the released VIP');
          });
        }, 2000).unref();
        break;
      }
      case 'peerAdvert': this.repl.onPeerAdvert(m.version, m.conflictAck, Date.now()); this.pushRepl(); break;
      case 'peerState': this.repl.onState(Buffer.from(m.payload.buffer, m.payload.byteOffset, m.payload.byteLength), m.role, Date.now()); this.pushRepl(); break;
      case 'peerRequest': this.repl.onRequest(Date.now()); break;
      case 'peerAlive':
        this.peerAlive = m.alive;
        if (!m.alive) this.repl.onPeerGone();
        this.pushRepl();
        break;
      case 'status': this.loop = m.status; break;
      case 'pong': { const f = this.pings.get(m.id); this.pings.delete(m.id); f?.(m.lag); break; }
      default: break;
    }
    for (const w of this.waiters.filter((x) => x.t === m.t)) { this.waiters = this.waiters.filter((x) => x !== w); w.fn(m); }
  }

  /** A line logged by the loop, written into our own log stream (never two writers mid-line). */
  private writeLine(line: string): void {
    const dest = (this.app.log as unknown as Record<symbol, { write(s: string): void } | undefined>)[pino.symbols.streamSym];
    if (dest) dest.write(line); else process.stdout.write(line);
  }

  private launch(): Runner {
    const mode = this.cfg.isolation;
    const handlers: ((m: FromHa) => void)[] = [];
    const deliver = (m: FromHa): void => { for (const h of handlers) h(m); };
    if (mode === 'process') {
      const env = { ...process.env, [RUNTIME_ENV]: 'process' };
      const c: ChildProcess = fork(RUNTIME, [], { env, execArgv: [], serialization: 'advanced', stdio: ['ignore', 'inherit', 'inherit', 'ipc'], cwd: dirname(RUNTIME) });
      c.on('message', (m) => deliver(m as FromHa));
      c.on('error', (e) => this.log.error({ err: e }, 'HA loop process error'));
      const exited = new Promise<void>((r) => c.once('exit', (code, sig) => { this.onExit(code, sig); r(); }));
      return {
        pid: c.pid, exited,
        ch: { post: (m) => { if (c.connected) c.send(m, (e) => { if (e && !this.stopping) this.log.debug({ err: e }, 'HA loop message not sent'); }); }, onMessage: (fn) => handlers.push(fn) },
        kill: () => { try { c.kill('SIGKILL'); } catch { /* gone */ } },
      };
    }
    if (mode === 'thread') {
      const w = new Worker(RUNTIME, { workerData: { pairlbHa: true }, stdout: false, stderr: false });
      w.on('message', (m) => deliver(m as FromHa));
      w.on('error', (e) => this.log.error({ err: e }, 'HA loop thread error'));
      const exited = new Promise<void>((r) => w.once('exit', (code) => { this.onExit(code, null); r(); }));
      return { exited, ch: { post: (m) => w.postMessage(m), onMessage: (fn) => handlers.push(fn) }, kill: () => { void w.terminate(); } };
    }
    // inline: the same loop on this thread, over a MessageChannel (the same contract, for comparison).
    const mc = new MessageChannel();
    let done!: () => void;
    const exited = new Promise<void>((r) => { done = r; });
    mc.port1.on('message', (m) => deliver(m as FromHa));
    runHaLoop({ post: (m) => mc.port2.postMessage(m), onMessage: (fn) => mc.port2.on('message', fn) }, () => { mc.port2.close(); done(); }, { ownThread: false });
    return { exited, ch: { post: (m) => mc.port1.postMessage(m), onMessage: (fn) => handlers.push(fn) }, kill: () => { mc.port1.close(); mc.port2.close(); done(); } };
  }

  private onExit(code: number | null, sig: string | null): void {
    if (this.stopping) return;
    this.runner = undefined;
    this.loop = undefined;
    this.restarts++;
    // Not before the peer has judged us dead (2 × deadtime): a new loop whose first heartbeats
    // reach the peer just before its deadtime would keep it from claiming while nobody holds the VIP.
    const delay = Math.max(RESTART_MS, 2 * this.cfg.deadtime);
    this.log.error({ code, sig, restarts: this.restarts, delayMs: delay }, `HA loop exited unexpectedly: starting it again in ${delay} ms (its VIP watchdog has removed the VIP)`);
    this.app.setRole('fault', 'HA loop exited');
    this.role = 'fault';
    setTimeout(() => { if (!this.stopping) void this.startLoop().catch((e) => this.log.error({ err: e }, 'HA loop did not start again')); }, delay).unref();
  }

  private async startLoop(): Promise<void> {
    const r = this.launch();
    this.runner = r;
    r.ch.onMessage((m) => this.onMessage(m));
    this.lastRepl = '';
    this.lastServing = this.app.proxy.isServing();
    const v = this.replView();
    this.lastRepl = JSON.stringify(v);
    const started = Promise.race([this.wait('started', 30_000), this.wait('failed', 30_000)]);
    r.ch.post({ t: 'init', cfg: this.cfg, node: this.app.node, stateDir: this.app.state.file ? dirname(this.app.state.file) : undefined, logLevel: this.app.cfg.global.log.level, servePort: this.servePort(), serveTls: this.serveTls(), targets: this.targets(), serving: this.lastServing, repl: v });
    const m = await started;
    if (!m || m.t === 'failed') {
      r.kill();
      throw new Error(m ? `HA did not start: ${m.error}` : 'HA loop did not start within 30 s');
    }
    this.log.info({ isolation: this.cfg.isolation, loopPid: this.runner?.pid }, `HA loop runs ${this.cfg.isolation === 'process' ? 'in its own process' : this.cfg.isolation === 'thread' ? 'in a worker thread' : 'on the main thread'}`);
  }

  async start(): Promise<void> {
    await this.startLoop();
    this.app.state.on('change', this.onStateChange);
    // The data plane's serving state and accept counter, pushed when they change (the loop reads
    // serving every tick; the self-check tells a saturated data plane from a wedged one by accepts).
    this.servingTimer = setInterval(() => {
      const s = this.app.proxy.isServing(), a = this.app.proxy.guard.accepted;
      if (s !== this.lastServing || a !== this.lastAccepted) { this.lastServing = s; this.lastAccepted = a; this.post({ t: 'serving', serving: s, accepted: a }); }
    }, Math.min(100, this.cfg.keepalive));
    this.servingTimer.unref();
  }

  reload(cfg: Config): void {
    if (!cfg.ha) return;
    this.post({ t: 'targets', targets: this.targets(), servePort: this.servePort(), serveTls: this.serveTls() });
    this.post({ t: 'config', cfg: cfg.ha, logLevel: cfg.global.log.level });
  }

  /**
   * A fatal error: the process is about to exit. The loop gives the VIP up at once and tells the
   * peer (FAULT), bounded by `ms`.
   */
  async abandon(reason: string, ms = 1000): Promise<void> {
    if (!this.runner) return;
    const done = this.wait('abandoned', ms);
    this.post({ t: 'abandon', reason });
    await done;
  }

  /** Graceful stop: the loop hands the VIP over (make-before-break), then exits. */
  async stop(): Promise<void> {
    this.app.state.off('change', this.onStateChange);
    clearInterval(this.servingTimer);
    const r = this.runner;
    if (!r) { this.stopping = true; return; }
    const stopped = this.wait('stopped', this.cfg.handover_timeout + 5000);
    this.stopping = true;
    r.ch.post({ t: 'stop' });
    if (!(await stopped)) this.log.error('HA loop did not stop in time: killed');
    const t = setTimeout(() => r.kill(), 1000);
    await r.exited;
    clearTimeout(t);
    this.runner = undefined;
  }
}

moduleFactories.push((app) => {
  const ha = app.cfg.ha;
  if (!ha || !ha.enabled) return undefined;
  return new HaModule(app, ha);
});

/** Read-only HA status for other modules (acme waits for the replicated state); undefined without HA. */
export function haStatus(app: App): HaStatus | undefined {
  return (app.modules.find((m) => m instanceof HaModule) as HaModule | undefined)?.status();
}
