import { sitesOf } from '../config/sites.js';
import { createSocket, type Socket } from 'node:dgram';
import { spawn } from 'node:child_process';
import { getPriority } from 'node:os';
import { dirname, join } from 'node:path';
import { parseHostPort, type HostPort } from '../config/types.js';
import type { Logger } from '../log.js';
import type { HaConfig } from './config.js';
import { readPersisted, writePersisted, writePersistedAsync } from './replay.js';
import { check, encode, readKeyFile, ReplayGuard, MsgType, FLAG_HANDOVER, FLAG_HEALTHY, REJECT_REASONS, type Packet, type RejectReason } from './advert.js';
import { initialState, step, type Action, type FsmEvent, type FsmState, type HaRole } from './fsm.js';
import { Vip, interfaceProblem } from './vip.js';
import { decodeAdvertBody, encodeAdvertBody } from './advert-body.js';
import { PathLiveness } from './paths.js';
import type { ReplicationStatus } from './replication.js';
import type { StateVersion } from '../state/version.js';
import { LoopLag, type LagSnapshot } from './loop-lag.js';
import { IntervalHistogram, type IntervalSummary } from './intervals.js';
import { LogThrottle } from './throttle.js';

/** A warning that repeats is written once, then at most once per this interval with its count. */
const LOG_REPEAT_MS = 10_000;
import { Watchdog } from './watchdog.js';
import { SelfCheck, type SelfCheckTarget } from './self-check.js';
import { httpAnswers } from './answers.js';

/**
 * The HA shell: runs the pure state machine (fsm.ts) over UDP heartbeats, timers, the VIP and the
 * replicated state.
 *
 * Paths: one socket on the dedicated link (unicast to the peer, or broadcast) and one on the public
 * side. Every packet gets a fresh sequence number, so the same advert on both paths is two distinct
 * packets and neither is ever "replayed". The peer is dead only when no valid packet came on any
 * path for `deadtime`: losing only the dedicated link never makes two masters.
 *
 * A path is up only when the peer answers on it (paths.ts: it echoes the sequence numbers it got
 * from us there). Replication (replication.ts): adverts carry the state version (version vector +
 * content hash); the node that is ahead sends its document over the first path that is up, and
 * resends it over every path that is up, with backoff, until the peer's adverts acknowledge it;
 * diverged states are reconciled by "the master's state wins" and reported as a conflict.
 */

export interface HaStatus {
  role: HaRole;
  node: string;
  peer: { name: string; role?: HaRole; alive: boolean; lastSeenMs?: number; paths: { dedicated: boolean; public: boolean } };
  incarnation: string;
  stateVersion: number;
  peerStateVersion?: number;
  /** Replication: versions, sync, unacknowledged document, conflicts. */
  replication: ReplicationStatus;
  /** The peer's highest incarnation seen (persisted in state_dir/ha-peer). */
  peerIncarnation?: string;
  /** The peer's packets echo our current incarnation (until then none is acted on). */
  peerConfirmed: boolean;
  rejected: Record<RejectReason, number>;
  /** Chunks of first copies of state documents, by the path they went over ('all': no path known up). */
  stateFirstCopies: { dedicated: number; public: number; all: number };
  /** Genuine packets older than one already accepted (link-flap backlog, reordering): not acted on. */
  backlog: number;
  /** VIP adds or GARPs of a takeover cancelled because the role changed before they ran. */
  takeoverStepsCancelled: number;
  received: number;
  sent: number;
  garps: number;
  lateHeartbeats: number;
  /** Times the VIP watchdog removed our VIP (hang) and self-check rounds that found the data plane not answering. */
  watchdogFired: number;
  selfCheckFailed: number;
  /** Self-check rounds unanswered in time while the data plane kept accepting connections (saturated): not counted as failed. */
  selfCheckSlow: number;
  /** Times we stepped down from master after our own event loop stalled for about the watchdog timeout. */
  stallStepDowns: number;
  transitions: number;
  /** Peer declared dead (no valid packet for deadtime). */
  peerDeaths: number;
  /** Dead/late verdicts withdrawn: our timer fired after an event-loop stall while the peer's packets were waiting unread. */
  deadAverted: number;
  /** Heartbeat ticks that came more than one keepalive late: our own event loop stalled (GC, CPU). */
  loopStalls: number;
  maxLoopLagMs: number;
  /** GARP re-announcements while master (peer back after a silence, split brain settled). */
  reannounces: number;
  /** RFC 5227 probes answered (VIP in use elsewhere: not claimed). */
  probeAnswered: number;
  /** Log lines not written because the same warning repeated (LogThrottle). */
  logsSuppressed: number;
  /** Where the loop runs (ha.isolation), its PID when a process, and how often it was restarted after dying. */
  isolation?: string;
  loopPid?: number;
  loopRestarts?: number;
  /** The loop's scheduling priority (nice) as it runs. */
  loopNice?: number;
  /** Event-loop lag of the heartbeat loop's own thread (p50/p99/max over the last window). */
  loopLag?: LagSnapshot;
  /** The control plane's (main thread's) lag, beside it. */
  controlLoopLag?: LagSnapshot;
  /** Intervals between the peer's adverts on the dedicated path as this loop handled them (since start). */
  peerIntervals: IntervalSummary;
}

/** What the heartbeat loop reports itself; the control plane adds the replication fields (module.ts). */
export type HaLoopStatus = Omit<HaStatus, 'replication' | 'stateVersion' | 'peerStateVersion' | 'isolation' | 'loopPid' | 'loopRestarts' | 'controlLoopLag'> & { loopLag: LagSnapshot };

/** The replicated state as the heartbeat loop needs it: what goes into our adverts, and whether failback may go. */
export interface ReplView {
  /** Total number of changes (packet header). */
  total: number;
  /** Version for the advert body (undefined: replication off). */
  version?: StateVersion;
  conflictAck?: string;
  inSync: boolean;
  /** For the log line of a failback that waits: our/peer version and how they relate. */
  sync?: string; ours?: string; peer?: string;
}

/**
 * Everything the heartbeat loop needs from the rest of the process (src/ha/runtime.ts carries it
 * over a message port when the loop runs in its own process or thread). It never calls into the
 * data plane directly: what it needs of it is pushed to it (serving, listener addresses), and what
 * it asks of it (close connections) is a message.
 */
export interface HaHost {
  readonly node: string;
  readonly log: Logger;
  /** Directory of ha-incarnation / ha-peer (the state store's directory); undefined: not persisted. */
  readonly stateDir: string | undefined;
  /** Port the serve check asks for on the VIP (serve_check.port or the first listen section's). */
  servePort(): number;
  /** The serve check speaks TLS (serve_check.port not set and the first listen section is TLS). */
  serveTls(): boolean;
  /** Every listener of the data plane is open (ProxyManager.isServing). */
  serving(): boolean;
  /** Client connections the data plane accepted since start (AcceptGuard.accepted), as last pushed. */
  accepted(): number;
  /** Addresses the self-check asks (every listener). */
  selfCheckTargets(): SelfCheckTarget[];
  setRole(role: HaRole | 'init', reason: string): void;
  /** Close idle keep-alive client connections (a graceful stop handed the VIP over). */
  closeIdleConnections(): void;
  /** The VIP left this node: connections to it are closed after a grace. */
  vipReleased(ip: string): void;
  /** Replication runs in the control plane: its view, and the peer's replication traffic. */
  repl(): ReplView;
  peerAdvert(version: StateVersion | undefined, conflictAck: string | undefined): void;
  peerState(payload: Buffer, senderRole: HaRole): void;
  peerRequest(): void;
  /** The peer became alive (a valid advert) or was declared dead. */
  peerAlive(alive: boolean): void;
}

interface PathSock { name: 'dedicated' | 'public'; id: 0 | 1; sock: Socket; to: HostPort; lastRx: number }

export class HaNode {
  private cfg: HaConfig;
  private readonly log: Logger;
  private key!: Buffer;
  private fsm: FsmState;
  private incarnation = 0n;
  private seq = 0n;
  private guard = new ReplayGuard();
  private peerFile: string | undefined;
  /** The peer incarnation of which a packet echoing our incarnation arrived (-1: none yet). */
  private confirmedInc = -1n;
  private persisting: Promise<void> = Promise.resolve();
  private paths: PathSock[] = [];
  private vip: Vip;
  private readonly watchdog: Watchdog | undefined;
  private readonly selfCheck: SelfCheck;
  private stallStepDowns = 0;
  private chain: Promise<void> = Promise.resolve();
  private timers: { hb?: NodeJS.Timeout; warn?: NodeJS.Timeout; dead?: NodeJS.Timeout; initdead?: NodeJS.Timeout; failback?: NodeJS.Timeout; handover?: NodeJS.Timeout; retry?: NodeJS.Timeout; release?: NodeJS.Timeout } = {};
  private lastRx = 0;
  private warned = false;
  private preProbe: { at: number; result: Promise<boolean> } | undefined;
  private stopResolve: (() => void) | undefined;
  private readonly liveness: PathLiveness;
  private peerWasAlive = false;
  readonly lag = new LoopLag();
  private readonly intervals = new IntervalHistogram();
  private failbackWaitLogged = false;
  private healthReason = '';
  private readonly firstCopies = { dedicated: 0, public: 0, all: 0 };
  private readonly counts = { rejected: Object.fromEntries(REJECT_REASONS.map((r) => [r, 0])) as Record<RejectReason, number>, received: 0, sent: 0, late: 0, transitions: 0, backlog: 0, peerDeaths: 0, deadAverted: 0, loopStalls: 0, maxLoopLagMs: 0, reannounces: 0, probeAnswered: 0 };
  private readonly throttle = new LogThrottle(LOG_REPEAT_MS);
  private lastTick = 0;

  constructor(private readonly host: HaHost, cfg: HaConfig) {
    this.cfg = cfg;
    this.log = host.log;
    this.fsm = initialState({ name: host.node, priority: cfg.priority, autoFailback: cfg.auto_failback, probe: cfg.garp.probe });
    this.vip = new Vip(cfg.vip, cfg.garp, this.log);
    this.liveness = new PathLiveness(cfg.deadtime);
    const wd = cfg.watchdog ?? Math.round(cfg.deadtime * 1.5);
    this.watchdog = wd > 0 ? new Watchdog(this.vip.delArgv(), this.vip.garpArgv(), wd, this.log, (why) => this.onWatchdogFired(why)) : undefined;
    if (this.watchdog) { const w = this.watchdog; this.vip.garpVia = { garp: (n) => w.garp(n), cancel: () => w.cancelGarps() }; }
    this.selfCheck = new SelfCheck(() => host.selfCheckTargets(), () => host.accepted(), cfg.self_check, this.vip.ip, () => this.fsm.role === 'master', this.log, () => this.tick());
  }

  status(): HaLoopStatus {
    const now = Date.now();
    return {
      role: this.fsm.role,
      node: this.host.node,
      peer: {
        name: this.cfg.peer.name, role: this.fsm.peer?.role, alive: !!this.fsm.peer, lastSeenMs: this.lastRx ? now - this.lastRx : undefined,
        paths: { dedicated: this.pathAlive('dedicated', now), public: this.pathAlive('public', now) },
      },
      incarnation: this.incarnation.toString(),
      peerIncarnation: this.guard.incarnation >= 0n ? this.guard.incarnation.toString() : undefined,
      peerConfirmed: this.confirmedInc >= 0n && this.confirmedInc === this.guard.incarnation,
      rejected: { ...this.counts.rejected },
      stateFirstCopies: { ...this.firstCopies },
      backlog: this.counts.backlog,
      takeoverStepsCancelled: this.vip.cancelled,
      received: this.counts.received,
      sent: this.counts.sent,
      garps: this.vip.garpsSent,
      lateHeartbeats: this.counts.late,
      watchdogFired: this.watchdog?.fired ?? 0,
      selfCheckFailed: this.selfCheck.failedRounds,
      selfCheckSlow: this.selfCheck.slowRounds,
      stallStepDowns: this.stallStepDowns,
      transitions: this.counts.transitions,
      peerDeaths: this.counts.peerDeaths,
      deadAverted: this.counts.deadAverted,
      loopStalls: this.counts.loopStalls,
      maxLoopLagMs: this.counts.maxLoopLagMs,
      reannounces: this.counts.reannounces,
      probeAnswered: this.counts.probeAnswered,
      logsSuppressed: this.throttle.suppressed,
      loopLag: this.lag.snapshot(),
      loopNice: niceNow(),
      peerIntervals: this.intervals.summary(),
    };
  }

  /** Up both ways: the peer is heard on it and echoes what we sent on it (paths.ts). */
  private pathAlive(name: string, now: number): boolean {
    const p = this.paths.find((x) => x.name === name);
    return !!p && this.liveness.up(p.id, now);
  }

  /**
   * A new incarnation per start, strictly above the last one: the start time in µs, but never below
   * the persisted previous value + 1, so a clock stepped backwards cannot make the peer refuse all
   * our packets as "old incarnation". Written with fsync before the first packet goes out: the
   * peer's echo rule (replay.ts) relies on no two runs of ours sharing an incarnation.
   */
  private nextIncarnation(): bigint {
    let inc = BigInt(Date.now()) * 1000n + BigInt(Math.floor(Math.random() * 1000));
    const file = this.stateFile('ha-incarnation');
    if (!file) return inc;
    const last = readPersisted(file);
    if (last !== undefined && last >= inc) inc = last + 1n;
    try { writePersisted(file, inc); } catch (e) {
      this.log.warn({ err: e, file }, 'could not persist the incarnation');
    }
    return inc;
  }

  private stateFile(name: string): string | undefined {
    return this.host.stateDir ? join(this.host.stateDir, name) : undefined;
  }

  /**
   * The peer's highest incarnation, persisted (fsync) whenever it grows, so that after our restart
   * a packet of an older run of the peer is still `old_incarnation`. Off the event loop; writes
   * are serialized so the file only grows.
   */
  private persistPeerIncarnation(): void {
    const file = this.peerFile;
    if (!file) return;
    const v = this.guard.incarnation;
    this.persisting = this.persisting.then(() => writePersistedAsync(file, v)).catch((e) => this.log.warn({ err: e, file }, 'could not persist the peer incarnation'));
  }

  async start(): Promise<void> {
    this.key = readKeyFile(this.cfg.key_file);
    this.incarnation = this.nextIncarnation();
    this.peerFile = this.stateFile('ha-peer');
    const knownPeer = this.peerFile ? readPersisted(this.peerFile) : undefined;
    this.guard = new ReplayGuard(knownPeer ?? -1n);
    // A previous incarnation (crash, kill -9) may have left the VIP on the interface: we do not
    // hold it until the state machine says so, and a stale copy would answer ARP for it.
    await this.vip.remove().catch((e) => this.log.warn({ err: e }, 'could not remove a stale VIP'));
    this.watchdog?.start();
    this.selfCheck.start();
    await this.openPaths();
    this.host.setRole('init', 'ha starting');
    // Unhealthy from the start (the VIP interface does not exist, say): the FSM goes INIT → FAULT
    // with the reason. Setting fsm.healthy directly would make the event a no-op and leave only a
    // later `role init -> fault: not healthy` without the why.
    if (!this.healthNow()) this.dispatch({ type: 'health', ok: false, reason: this.healthReason });
    this.timers.initdead = setTimeout(() => this.dispatch({ type: 'initdead' }), this.cfg.initdead);
    this.timers.hb = setInterval(() => this.tick(), this.cfg.keepalive);
    this.sendAdvert();
    this.log.info({ incarnation: this.incarnation.toString(), peer: this.cfg.peer.name, vip: this.cfg.vip.address, priority: this.cfg.priority, paths: this.paths.map((p) => `${p.name}->${p.to.host}:${p.to.port}`) }, 'ha started');
  }

  private async openPaths(): Promise<void> {
    const open = async (name: 'dedicated' | 'public', id: 0 | 1, local: string, to: HostPort, broadcast?: string): Promise<void> => {
      const l = parseHostPort(local)!;
      const sock = createSocket({ type: 'udp4', reuseAddr: true });
      const path: PathSock = { name, id, sock, to: broadcast ? { host: broadcast, port: to.port } : to, lastRx: 0 };
      sock.on('message', (msg, rinfo) => this.onPacket(msg, path, rinfo.address));
      sock.on('error', (e) => this.log.error({ err: e, path: name }, 'heartbeat socket error'));
      await new Promise<void>((resolve, reject) => {
        sock.once('error', reject);
        // Broadcasts are not delivered to a socket bound to a unicast address.
        sock.bind(l.port, broadcast ? '0.0.0.0' : l.host, () => { sock.off('error', reject); resolve(); });
      });
      if (broadcast) sock.setBroadcast(true);
      this.paths.push(path);
    };
    await open('dedicated', 0, this.cfg.node.dedicated, parseHostPort(this.cfg.peer.dedicated)!, this.cfg.node.broadcast);
    if (this.cfg.node.public && this.cfg.peer.public) await open('public', 1, this.cfg.node.public, parseHostPort(this.cfg.peer.public)!);
  }

  // ---- timers ---------------------------------------------------------------------------------

  /** Warn through the throttle (one line, then one per LOG_REPEAT_MS with `repeats`). */
  private warnThrottled(key: string, obj: Record<string, unknown>, msg: string): void {
    const repeats = this.throttle.admit(key, Date.now());
    if (repeats !== undefined) this.log.warn(repeats ? { ...obj, repeats, repeatsOverMs: LOG_REPEAT_MS } : obj, msg);
  }

  private tick(): void {
    const now = Date.now();
    const lag = this.lastTick ? now - this.lastTick - this.cfg.keepalive : 0;
    this.lastTick = now;
    if (lag > this.cfg.keepalive) {
      // Our heartbeats went out late: the peer may see us late or dead although we are fine.
      this.counts.loopStalls++;
      if (lag > this.counts.maxLoopLagMs) this.counts.maxLoopLagMs = lag;
      this.warnThrottled('loop_stall', { lagMs: lag, keepalive: this.cfg.keepalive, stalls: this.counts.loopStalls }, 'event loop stalled: our heartbeats went out late (GC or CPU load)');
    }
    this.checkStall();
    this.watchdog?.feed();
    if (this.fsm.role !== 'master' && !this.fsm.stopping) this.vip.prepare();
    const ok = this.healthNow();
    if (ok !== this.fsm.healthy) this.dispatch({ type: 'health', ok, reason: ok ? 'healthy again' : this.healthReason });
    this.sendAdvert();
  }

  /** FAULT when the public interface is down or this node's proxy is not serving or not answering. */
  private healthNow(): boolean {
    const link = interfaceProblem(this.cfg.vip.interface);
    if (link) { this.healthReason = link; return false; }
    if (!this.host.serving()) { this.healthReason = 'proxy is not serving'; return false; }
    if (!this.selfCheck.ok) { this.healthReason = this.selfCheck.reason; return false; }
    return true;
  }

  // ---- hang and crash of the master (issue 11) ----------------------------------------------------

  /**
   * Our event loop went without feeding the watchdog for about its timeout (SIGSTOP, a stuck loop):
   * the watchdog has removed the VIP, or will before our feed reaches it, and the peer has declared
   * us dead. Checked before anything else runs after the stall (every dispatch and every tick), so
   * we never advertise MASTER for a VIP we no longer hold.
   */
  private checkStall(): void {
    const gap = this.watchdog?.stalledFor();
    if (gap === undefined) return;
    this.watchdog!.disarm();
    if (this.fsm.role === 'master') this.stallStepDowns++;
    this.dispatch({ type: 'vip_lost', reason: `event loop stalled ${Math.round(gap)} ms (watchdog ${this.watchdog!.timeoutMs} ms): VIP given up` });
  }

  private onWatchdogFired(why: 'stalled' | 'dropped'): void {
    this.log.warn({ why, vip: this.cfg.vip.address }, why === 'stalled' ? 'VIP watchdog removed the VIP: our event loop did not feed it in time' : 'VIP watchdog removed the VIP on request');
    if (why === 'stalled') this.dispatch({ type: 'vip_lost', reason: 'the VIP watchdog removed the VIP (event loop stalled)' });
  }

  /**
   * Is the VIP held by a live master? The RFC 5227 probe alone cannot tell: a master whose process
   * died or hangs leaves a kernel that answers ARP for it. So when the probe is answered we ask the
   * VIP for a page (through the public network, as a client): an HTTP answer = a live master (also
   * one cut off from us: never claim then); no answer within serve_check.timeout, or a refused
   * connection = nobody serves: claim. Meanwhile we probe again: the hung master's watchdog removes
   * the VIP about deadtime after its last heartbeat, and a free VIP needs no further wait.
   */
  private vipInUse(pre: Promise<boolean> | undefined): Promise<{ inUse: boolean; why?: string }> {
    return (pre ?? this.vip.probe()).then((answered) => {
      if (!answered) return { inUse: false };
      const sc = this.cfg.serve_check;
      if (!sc.enabled) return { inUse: true, why: 'answers ARP (serve_check disabled)' };
      return new Promise((resolve) => {
        let done = false;
        const finish = (r: { inUse: boolean; why?: string }): void => { if (!done) { done = true; resolve(r); } };
        void httpAnswers(this.vip.ip, this.host.servePort(), sc.path, sc.timeout, this.host.serveTls()).then((a) => finish(a.ok
          ? { inUse: true, why: `answers ARP and serves (HTTP in ${a.ms} ms)` }
          : { inUse: false, why: `VIP answers ARP but does not serve (${a.err} after ${a.ms} ms)` }));
        // Two unanswered probes in a row, not one: a single one can be a reply that came too late.
        let unanswered = 0;
        const again = (): void => {
          if (done) return;
          void this.vip.probe().then((still) => {
            unanswered = still ? 0 : unanswered + 1;
            if (unanswered >= 2) finish({ inUse: false, why: 'VIP released meanwhile (RFC 5227 probe unanswered)' });
            else if (!done) setTimeout(again, still ? 30 : 0).unref();
          });
        };
        again();
      });
    });
  }

  private armPeerTimers(): void {
    const now = Date.now();
    this.lastRx = now;
    this.warned = false;
    if (this.timers.warn) this.timers.warn.refresh();
    else this.timers.warn = setTimeout(() => this.onWarn(), this.cfg.warntime);
    if (this.timers.dead) this.timers.dead.refresh();
    else this.timers.dead = setTimeout(() => this.onDead(), this.cfg.deadtime);
  }

  /*
   * Timers run before I/O in each event-loop turn: after a stall of our own loop (GC, CPU load) the
   * warn and dead timers fire while the peer's heartbeats of that period sit unread in the socket
   * buffers — ~140 false "peer dead" a minute under GC load, and as many re-announcements by the
   * master when the "dead" peer came "back". So the verdict waits one turn (setImmediate runs after
   * the poll phase has read the pending datagrams) and is withdrawn if a valid packet came.
   */
  private onWarn(): void {
    const seen = this.lastRx;
    setImmediate(() => {
      if (this.lastRx !== seen) { this.counts.deadAverted++; return; }
      this.judgeLate();
    });
  }

  private judgeLate(): void {
    if (!this.fsm.peer || this.warned) return;
    this.warned = true;
    this.counts.late++;
    this.warnThrottled('late', { lateMs: Date.now() - this.lastRx, peer: this.cfg.peer.name, late: this.counts.late }, 'late heartbeat from peer (warntime)');
    // Start the RFC 5227 probe now, so a dead master costs deadtime and not deadtime + probe.
    if (this.fsm.role === 'backup' && this.cfg.garp.probe) this.preProbe = { at: Date.now(), result: this.vip.probe() };
  }

  private onDead(): void {
    this.timers.dead = undefined;
    setImmediate(() => {
      if (this.timers.dead) { this.counts.deadAverted++; return; } // a valid packet re-armed it meanwhile
      this.judgeDead();
    });
  }

  private judgeDead(): void {
    clearTimeout(this.timers.warn); this.timers.warn = undefined;
    if (!this.fsm.peer) return;
    this.counts.peerDeaths++;
    this.warnThrottled('dead', { silentMs: Date.now() - this.lastRx, peer: this.cfg.peer.name, deaths: this.counts.peerDeaths }, 'peer dead: no heartbeat on any path for deadtime');
    this.setPeerAlive(false);
    this.intervals.gap();
    this.dispatch({ type: 'peer_dead' });
  }

  // ---- state machine --------------------------------------------------------------------------

  private dispatch(ev: FsmEvent): void {
    if (ev.type !== 'vip_lost') this.checkStall();
    const r = step(this.fsm, ev);
    this.fsm = r.state;
    if (r.actions.length) this.log.debug({ ev: ev.type, actions: r.actions.map((a) => a.type), role: r.state.role }, 'fsm step');
    for (const a of r.actions) this.perform(a);
  }

  /**
   * Actions that touch the system are serialized on one chain so that, e.g., the MASTER advert goes
   * out only after `ip addr add` finished and the GARPs were spawned.
   */
  private perform(a: Action): void {
    switch (a.type) {
      case 'set_role':
        this.counts.transitions++;
        this.host.setRole(a.role, a.reason);
        this.notify(a.role, a.reason);
        return;
      case 'arm_failback':
        clearTimeout(this.timers.failback);
        this.failbackWaitLogged = false;
        this.timers.failback = setTimeout(() => this.failbackDue(), this.cfg.failback_delay);
        return;
      case 'cancel_failback':
        clearTimeout(this.timers.failback); this.timers.failback = undefined;
        return;
      case 'retry_later':
        clearTimeout(this.timers.retry);
        this.timers.retry = setTimeout(() => this.dispatch({ type: 'retry_claim' }), this.cfg.deadtime);
        return;
      case 'probe': {
        const pre = this.preProbe;
        this.preProbe = undefined;
        const fresh = pre && Date.now() - pre.at < this.cfg.deadtime;
        void this.vipInUse(fresh ? pre.result : undefined).then(({ inUse, why }) => {
          if (inUse) { this.counts.probeAnswered++; this.warnThrottled('probe_answered', { vip: this.vip.ip, why, answered: this.counts.probeAnswered }, 'RFC 5227 probe: the VIP answers on the network; not claiming it'); }
          this.dispatch({ type: 'probe_done', answered: inUse, why: inUse ? undefined : why });
        });
        return;
      }
      case 'stopped':
        this.log.info({ reason: a.reason }, 'ha stopped');
        this.enqueue(async () => { this.stopResolve?.(); });
        return;
      case 'send_advert':
        this.enqueue(async () => this.sendAdvert());
        return;
      case 'take_vip': {
        clearTimeout(this.timers.release); this.timers.release = undefined;
        // Decided now, carried out when the chain gets there: a demotion meanwhile cancels it.
        const gen = this.vip.generation;
        this.enqueue(async () => {
          const t0 = performance.now();
          let r;
          this.watchdog?.arm(); // before the add: a hang from here on must not leave the VIP behind
          try { r = await this.vip.add(gen); } catch (e) { this.log.error({ err: e }, 'could not add the VIP'); return; }
          if (r.cancelled || !this.vip.startAnnouncing(!r.garpSent, gen)) {
            this.log.warn({ vip: this.cfg.vip.address, role: this.fsm.role }, 'takeover cancelled: the role changed before the VIP was announced (no GARP sent)');
            return;
          }
          this.log.info({ vip: this.cfg.vip.address, dev: this.cfg.vip.interface, ms: +(performance.now() - t0).toFixed(1), preforked: r.garpSent }, 'VIP added and announced (gratuitous ARP)');
        });
        return;
      }
      case 'garp':
        this.enqueue(async () => {
          if (this.fsm.role !== 'master') return;
          this.vip.reannounce();
          this.counts.reannounces++;
          this.log.info({ vip: this.vip.ip, reannounces: this.counts.reannounces }, 're-announced the VIP (peer back or split brain settled in our favour)');
        });
        return;
      case 'release_vip': {
        // After the peer has announced the VIP, keep it a few heartbeats longer: a client whose
        // SYN was already on its way to our MAC is still answered (make-before-break).
        const linger = this.fsm.peer?.role === 'master' ? Math.max(250, 4 * this.cfg.keepalive) : 0;
        const release = (): void => this.enqueue(async () => {
          if (this.fsm.role === 'master' && !this.fsm.stopping) return; // taken again meanwhile
          await this.removeVip({ lingerMs: linger });
        });
        this.vip.supersede(); // a queued add or GARP of ours must not run after this
        if (linger) { clearTimeout(this.timers.release); this.timers.release = setTimeout(release, linger); }
        else release();
        return;
      }
    }
  }

  /** `ip addr del`, then disarm the watchdog; when we cannot spawn `ip` (EMFILE…), the watchdog removes it. */
  private async removeVip(info: Record<string, unknown>): Promise<void> {
    try {
      await this.vip.remove();
      this.watchdog?.disarm();
      if (!info.stop) this.log.info({ vip: this.cfg.vip.address, ...info }, 'VIP released');
      this.dropVipConnectionsSoon();
    } catch (e) {
      const viaWatchdog = this.watchdog?.dropNow() ?? false;
      this.log.error({ err: e, viaWatchdog }, viaWatchdog ? 'could not remove the VIP: asked the watchdog to' : 'could not remove the VIP');
    }
  }

  private enqueue(fn: () => Promise<void>): void {
    this.chain = this.chain.then(fn).catch((e) => this.log.error({ err: e }, 'ha action failed'));
  }

  private failbackDue(): void {
    this.timers.failback = undefined;
    // Fail back only when both states are the same version (a diverged one is reconciled first):
    // the new master must serve exactly what the old one served.
    const rv = this.host.repl();
    if (!rv.inSync) {
      if (!this.failbackWaitLogged) {
        this.failbackWaitLogged = true;
        this.log.info({ sync: rv.sync, ours: rv.ours, peer: rv.peer }, 'auto_failback waits until the replicated state is the same on both nodes');
      }
      this.timers.failback = setTimeout(() => this.failbackDue(), this.cfg.keepalive * 2);
      return;
    }
    this.failbackWaitLogged = false;
    this.dispatch({ type: 'failback_due' });
  }

  private notify(role: HaRole, reason: string): void {
    const n = this.cfg.notify;
    const cmds = [role === 'master' ? n.master : role === 'backup' ? n.backup : role === 'fault' ? n.fault : undefined, n.any].filter((c): c is string => !!c);
    for (const cmd of cmds) {
      // Never awaited: a slow hook must not delay a takeover (keepalived runs notify scripts async too).
      // The command is a shell snippet with ROLE and REASON as $1 and $2 (`/path/hook "$@"` passes them on).
      const c = spawn('/bin/sh', ['-c', cmd, 'pairlb-notify', role, reason], {
        stdio: 'ignore',
        env: { ...process.env, PAIRLB_ROLE: role, PAIRLB_REASON: reason, PAIRLB_NODE: this.host.node, PAIRLB_PEER: this.cfg.peer.name, PAIRLB_VIP: this.cfg.vip.address },
      });
      const t = setTimeout(() => { this.log.warn({ cmd }, 'notify hook timed out: killed'); c.kill('SIGKILL'); }, n.timeout);
      t.unref();
      c.on('error', (e) => { clearTimeout(t); this.log.error({ err: e, cmd }, 'notify hook failed to start'); });
      c.on('exit', (code, sig) => { clearTimeout(t); if (code !== 0) this.log.warn({ cmd, code, sig }, 'notify hook failed'); });
    }
  }

  // ---- packets --------------------------------------------------------------------------------

  private send(type: MsgType, payload: Buffer, only?: PathSock[]): void {
    const s = this.fsm;
    const rv = this.host.repl();
    for (const p of only ?? this.paths) {
      const pkt: Packet = {
        type, role: s.role, priority: this.cfg.priority,
        flags: (s.stopping && s.role === 'master' ? FLAG_HANDOVER : 0) | (s.healthy ? FLAG_HEALTHY : 0),
        path: p.id, cluster: this.cfg.cluster, node: this.host.node, incarnation: this.incarnation, seq: ++this.seq,
        echo: this.guard.incarnation < 0n ? 0n : this.guard.incarnation,
        stateVersion: rv.total, payload,
      };
      const buf = encode(pkt, this.key);
      this.counts.sent++;
      p.sock.send(buf, p.to.port, p.to.host, (e) => { if (e && this.fsm.peer) this.log.debug({ err: e, path: p.name }, 'heartbeat send failed'); });
    }
  }

  private sendAdvert(): void {
    if (!this.paths.length || !this.key) return;
    const rv = this.host.repl();
    const body = encodeAdvertBody({ echo: this.liveness.echo(), version: this.cfg.replicate ? rv.version : undefined, conflictAck: rv.conflictAck });
    this.send(MsgType.Advert, body);
  }

  /**
   * A state document: the first copy over the first path that is up both ways (the dedicated link
   * while it works), resends over every path that is up; over all paths when none is known up.
   */
  sendState(payload: Buffer, attempt: number): void {
    if (this.fsm.stopped || !this.key || !this.paths.length) return;
    const now = Date.now();
    const up = this.paths.filter((p) => this.liveness.up(p.id, now));
    if (attempt === 0) this.firstCopies[up.length ? up[0].name : 'all']++;
    this.send(MsgType.State, payload, up.length ? (attempt === 0 ? [up[0]] : up) : this.paths);
  }

  private onPacket(buf: Buffer, path: PathSock, from: string): void {
    const knownInc = this.guard.incarnation;
    const v = check(buf, { key: this.key, cluster: this.cfg.cluster, self: this.host.node, peer: this.cfg.peer.name, guard: this.guard, incarnation: this.incarnation });
    if (this.guard.incarnation > knownInc) {
      this.log.info({ peer: this.cfg.peer.name, incarnation: this.guard.incarnation.toString() }, 'peer (re)started: new incarnation');
      this.liveness.peerRestarted();
      this.persistPeerIncarnation();
    }
    if (!v.ok) {
      if (v.reason === 'self') return;
      const n = ++this.counts.rejected[v.reason];
      // First few of each reason, then every 100th: a flood must not flood the log. The peer's own
      // first packets after our start are unconfirmed (it has not heard us yet): counted, not an alarm.
      const expected = v.reason === 'unconfirmed' && v.packet?.incarnation === this.guard.incarnation && this.confirmedInc !== this.guard.incarnation;
      if (n <= 10 || n % 100 === 0) this.log[expected ? 'debug' : 'warn']({ reject: v.reason, count: n, from, path: path.name, detail: v.detail }, `heartbeat rejected: ${v.reason}`);
      return;
    }
    const p = v.packet;
    const now = Date.now();
    path.lastRx = now;
    // Backlog too: we did receive it on this path, so the peer may see the path answered.
    this.liveness.received(path.id, p.seq, now, false);
    if (v.backlog && p.type === MsgType.Advert) {
      // Genuine but older than what we already know (a link-flap backlog, reordering between the
      // paths): it proves the path works, its role and flags are stale. (A state chunk or request
      // in the backlog is data, not a view of the peer: it is still handled below, once.)
      const n = ++this.counts.backlog;
      if (n <= 3 || n % 100 === 0) this.log.info({ count: n, path: path.name, seq: p.seq.toString() }, 'stale heartbeat (link-flap backlog or reordering): not acted on');
      return;
    }
    this.counts.received++;
    if (this.confirmedInc !== p.incarnation) { this.confirmedInc = p.incarnation; this.log.info({ peer: p.node, incarnation: p.incarnation.toString() }, 'peer confirmed our incarnation'); }
    if (!v.backlog) this.armPeerTimers();
    switch (p.type) {
      case MsgType.Advert: {
        if (path.id === 0) this.intervals.beat(performance.now());
        const body = decodeAdvertBody(p.payload);
        if (body.echo) this.liveness.echoed(body.echo, this.seq, now);
        this.dispatch({ type: 'advert', peer: { name: p.node, role: p.role, priority: p.priority, handover: !!(p.flags & FLAG_HANDOVER), healthy: !!(p.flags & FLAG_HEALTHY) } });
        this.setPeerAlive(!!this.fsm.peer);
        if (this.cfg.replicate && !this.fsm.stopped) this.host.peerAdvert(body.version, body.conflictAck);
        break;
      }
      case MsgType.State:
        if (this.cfg.replicate && !this.fsm.stopped) this.host.peerState(p.payload, p.role);
        break;
      case MsgType.StateRequest:
        if (this.cfg.replicate && !this.fsm.stopped) this.host.peerRequest();
        break;
    }
  }

  // ---- lifecycle ------------------------------------------------------------------------------

  /** Idle keep-alive client connections on every listener of the data plane. */
  private closeIdleClientConnections(): void {
    this.host.closeIdleConnections();
    this.log.debug('closed idle client connections after the handover');
  }

  /**
   * After the VIP left: connections to it still in flight get a short grace (a response already
   * being sent can still reach the client), then they are destroyed: the client's ACKs now go to
   * the peer, so they would otherwise hold a stopping process until timeouts.drain.
   */
  private dropVipConnectionsSoon(): void { this.host.vipReleased(this.vip.ip); }

  /** Replication follows the peer's liveness (a dead peer's state is unknown until it is heard again). */
  private setPeerAlive(alive: boolean): void {
    if (alive === this.peerWasAlive) return;
    this.peerWasAlive = alive;
    this.host.peerAlive(alive);
  }

  /** Same as a reload of the section: takes effect at the next restart. */
  configChanged(cfg: HaConfig): void {
    if (JSON.stringify(cfg) !== JSON.stringify(this.cfg)) this.log.warn('ha section changed: takes effect at the next restart');
  }

  /**
   * The rest of the process is gone (SIGKILL, crash) or about to exit on a fatal error: the data
   * plane serves nothing any more. Give the VIP up at once (FAULT: the peer claims without waiting
   * for deadtime) and stop; bounded by the caller.
   */
  async abandon(reason: string): Promise<void> {
    const held = this.fsm.role === 'master';
    this.dispatch({ type: 'health', ok: false, reason });
    clearTimeout(this.timers.release);
    this.sendAdvert();
    await this.removeVip({ stop: true, reason });
    await this.chain;
    this.log.warn({ reason, vip: this.cfg.vip.address, wasMaster: held }, 'gave the VIP up and told the peer (FAULT): the rest of the process is gone or exiting');
    this.close();
  }

  /**
   * Graceful stop, make-before-break: the master tells the backup (HANDOVER flag), waits until the
   * backup advertises MASTER (it adds and announces the VIP before it says so), then lets go.
   * Bounded by handover_timeout. App.stop() stops the proxy only after this, so requests that
   * still arrive on our MAC meanwhile are served.
   */
  async stop(): Promise<void> {
    if (this.key && this.paths.length) {
      const done = new Promise<void>((resolve) => { this.stopResolve = resolve; });
      this.dispatch({ type: 'stop' });
      if (!this.fsm.stopped) {
        this.log.info({ peer: this.cfg.peer.name }, 'graceful stop: handing the VIP over to the peer');
        this.timers.handover = setTimeout(() => this.dispatch({ type: 'handover_timeout' }), this.cfg.handover_timeout);
      }
      await done;
      clearTimeout(this.timers.release);
      const handedOver = this.fsm.peer?.role === 'master';
      // Clients now send to the new master's MAC: an idle keep-alive connection to us would get a
      // RST from it on its next request. Our FIN still reaches the client (our → client direction is
      // unaffected), so closing them now makes the client open a new connection, to the new master.
      if (handedOver) this.closeIdleClientConnections();
      // Keep the VIP a little longer (a SYN already on its way to our MAC), bounded.
      await new Promise((r) => setTimeout(r, handedOver ? Math.max(250, 4 * this.cfg.keepalive) : 0));
      if (handedOver) this.closeIdleClientConnections(); // those whose response ended meanwhile
      await this.removeVip({ stop: true });
      await this.chain;
    }
    this.close();
  }

  private close(): void {
    for (const t of Object.values(this.timers)) if (t) { clearTimeout(t); clearInterval(t); }
    this.selfCheck.stop();
    this.watchdog?.close();
    this.vip.close();
    for (const p of this.paths) p.sock.close();
    this.paths = [];
  }
}

function niceNow(): number | undefined { try { return getPriority(); } catch { return undefined; } }
