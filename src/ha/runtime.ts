import { writeSync } from 'node:fs';
import { getPriority, setPriority } from 'node:os';
import { isMainThread, parentPort, workerData, type MessagePort } from 'node:worker_threads';
import pino from 'pino';
import type { HaConfig } from './config.js';
import type { HaRole } from './fsm.js';
import { HaNode, type HaHost, type HaLoopStatus, type ReplView } from './node.js';
import type { SelfCheckTarget } from './self-check.js';
import type { StateVersion } from '../state/version.js';
import type { LagSnapshot } from './loop-lag.js';

/**
 * The HA heartbeat loop's own runtime (send, receive, FSM, VIP, GARP, self-check): by default a
 * child process (`ha.isolation: process`, docs/ha.md says why), or a worker thread, or the main
 * thread (`inline`, the old way). It shares nothing with the data plane — no heap, no event loop,
 * no GC, no disk write — and talks to the control plane (module.ts) only through these messages:
 *
 *   control plane → HA loop                      HA loop → control plane
 *   init      config, node, listeners, repl      log        one JSON line (written by the control plane)
 *   targets   listener addresses (reload)        started / failed
 *   serving   the data plane is open or not      role       role change + reason (App.setRole)
 *   repl      our state version for adverts      closeIdle  close idle client connections (handover)
 *   sendState a replication payload to send      released   the VIP left: close connections to it
 *   ping      liveness (systemd WATCHDOG=1)      peerAdvert / peerState / peerRequest / peerAlive
 *   abandon   fatal error: give the VIP up now   status     counters for stats / metrics / admin
 *   stop      graceful stop (VIP hand-over)      pong / abandoned / stopped
 *
 * Every payload is structured-clone data (Buffers arrive as Uint8Array over a MessagePort).
 */

export type ToHa =
  | { t: 'init'; cfg: HaConfig; node: string; stateDir?: string; logLevel: string; servePort: number; serveTls: boolean; targets: SelfCheckTarget[]; serving: boolean; repl: ReplView }
  | { t: 'targets'; targets: SelfCheckTarget[]; servePort: number; serveTls: boolean }
  | { t: 'serving'; serving: boolean; accepted: number }
  | { t: 'repl'; repl: ReplView }
  | { t: 'sendState'; payload: Uint8Array; attempt: number }
  | { t: 'config'; cfg: HaConfig; logLevel: string }
  | { t: 'ping'; id: number }
  | { t: 'abandon'; reason: string }
  | { t: 'stop' };

export type FromHa =
  | { t: 'log'; line: string }
  | { t: 'started' }
  | { t: 'failed'; error: string }
  | { t: 'role'; role: HaRole | 'init'; reason: string }
  | { t: 'closeIdle' }
  | { t: 'released'; ip: string }
  | { t: 'peerAdvert'; version?: StateVersion; conflictAck?: string }
  | { t: 'peerState'; payload: Uint8Array; role: HaRole }
  | { t: 'peerRequest' }
  | { t: 'peerAlive'; alive: boolean }
  | { t: 'status'; status: HaLoopStatus }
  | { t: 'pong'; id: number; lag: LagSnapshot }
  | { t: 'abandoned' }
  | { t: 'stopped' };

/** One end of the channel, whatever carries it (IPC pipe, MessagePort). */
export interface Channel<In, Out> {
  post(msg: Out): void;
  onMessage(fn: (msg: In) => void): void;
  /** The other end is gone (the control plane's process died): undefined when it cannot happen. */
  onClose?(fn: () => void): void;
}

/** How often the loop's counters are pushed to the control plane. */
const STATUS_EVERY_MS = 100;

export function runHaLoop(ch: Channel<ToHa, FromHa>, exit: (code: number) => void, opts: { ownThread: boolean } = { ownThread: true }): void {
  let node: HaNode | undefined;
  let init: Extract<ToHa, { t: 'init' }> | undefined;
  let targets: SelfCheckTarget[] = [];
  let servePort = 0;
  let serveTls = false;
  let serving = true;
  let accepted = 0;
  let repl: ReplView = { total: 0, inSync: true };
  let log: { level: string } | undefined;
  let statusTimer: NodeJS.Timeout | undefined;
  let closed = false;
  let ending = false;

  // Log lines go to the control plane, which writes them into its own stream: lines of both never
  // interleave mid-line on stdout. Once the control plane is gone, straight to fd 1.
  const stream = { write(line: string): void { if (!closed) ch.post({ t: 'log', line }); else try { writeSync(1, line); } catch { /* no stdout */ } } };

  const postStatus = (): void => { if (node && !closed) ch.post({ t: 'status', status: node.status() }); };

  const start = async (m: Extract<ToHa, { t: 'init' }>): Promise<void> => {
    init = m;
    targets = m.targets; servePort = m.servePort; serveTls = m.serveTls; serving = m.serving; repl = m.repl;
    const root = pino({ level: m.logLevel, base: { pid: process.pid }, timestamp: pino.stdTimeFunctions.isoTime }, stream);
    log = root;
    const host: HaHost = {
      node: m.node, log: root.child({ mod: 'ha' }), stateDir: m.stateDir,
      servePort: () => servePort,
      serveTls: () => serveTls,
      serving: () => serving,
      accepted: () => accepted,
      selfCheckTargets: () => targets,
      setRole: (role, reason) => { ch.post({ t: 'role', role, reason }); postStatus(); },
      closeIdleConnections: () => ch.post({ t: 'closeIdle' }),
      vipReleased: (ip) => ch.post({ t: 'released', ip }),
      repl: () => repl,
      peerAdvert: (version, conflictAck) => ch.post({ t: 'peerAdvert', version, conflictAck }),
      peerState: (payload, role) => ch.post({ t: 'peerState', payload, role }),
      peerRequest: () => ch.post({ t: 'peerRequest' }),
      peerAlive: (alive) => ch.post({ t: 'peerAlive', alive }),
    };
    // Linux: setpriority(PRIO_PROCESS, 0) is per thread, so this reaches this loop's thread only.
    if (opts.ownThread && m.cfg.nice !== 0) {
      try {
        setPriority(m.cfg.nice);
        host.log.info({ nice: getPriority() }, 'HA loop scheduling priority raised');
      } catch (e) {
        host.log.warn({ err: e, nice: getPriority(), wanted: m.cfg.nice }, `could not set the HA loop's nice to ${m.cfg.nice}: give the unit LimitNICE=${m.cfg.nice} (as systemd/pairlb.service does) or CAP_SYS_NICE; it runs at the data plane's priority`);
      }
    }
    node = new HaNode(host, m.cfg);
    try {
      await node.start();
    } catch (e) {
      host.log.error({ err: e }, 'ha start failed');
      ch.post({ t: 'failed', error: (e as Error).message });
      return;
    }
    statusTimer = setInterval(postStatus, STATUS_EVERY_MS);
    postStatus();
    ch.post({ t: 'started' });
  };

  const end = (code: number): void => { clearInterval(statusTimer); node?.lag.close(); exit(code); };

  ch.onMessage((m) => {
    switch (m.t) {
      case 'init': void start(m); return;
      case 'targets': targets = m.targets; servePort = m.servePort; serveTls = m.serveTls; return;
      case 'serving': serving = m.serving; accepted = m.accepted; return;
      case 'repl': repl = m.repl; return;
      case 'sendState': node?.sendState(Buffer.from(m.payload.buffer, m.payload.byteOffset, m.payload.byteLength), m.attempt); return;
      case 'config': if (log) log.level = m.logLevel; node?.configChanged(m.cfg); return;
      case 'ping': ch.post({ t: 'pong', id: m.id, lag: node?.lag.snapshot() ?? { p50Ms: 0, p99Ms: 0, maxMs: 0, windowMs: 0 } }); return;
      case 'abandon':
        if (ending || !node) { ch.post({ t: 'abandoned' }); return; }
        ending = true;
        void node.abandon(m.reason).finally(() => { postStatus(); ch.post({ t: 'abandoned' }); });
        return;
      case 'stop':
        if (ending) return;
        ending = true;
        void (node ? node.stop() : Promise.resolve()).catch(() => { /* logged */ }).finally(() => { postStatus(); ch.post({ t: 'stopped' }); end(0); });
        return;
    }
  });

  // The control plane's process died (SIGKILL, crash): the data plane went with it. FAULT, VIP off,
  // the peer told at once; bounded, then exit. (Our VIP watchdog, a child of ours, would remove the
  // VIP too when we exit: this also tells the peer, so it need not wait for deadtime.)
  ch.onClose?.(() => {
    closed = true;
    if (!node || !init) { end(0); return; }
    const bound = setTimeout(() => end(1), 2000);
    bound.unref();
    if (ending) return;
    ending = true;
    void node.abandon('control plane gone (process died)').finally(() => { clearTimeout(bound); end(0); });
  });
}

// ---- entry points ---------------------------------------------------------------------------

/** Marks the process started by module.ts (fork) and the worker thread it starts. */
export const RUNTIME_ENV = 'PAIRLB_HA_RUNTIME';

if (!isMainThread && (workerData as { pairlbHa?: boolean } | undefined)?.pairlbHa && parentPort) {
  const port: MessagePort = parentPort;
  runHaLoop({ post: (m) => port.postMessage(m), onMessage: (fn) => port.on('message', fn) }, (code) => { port.close(); process.exit(code); });
} else if (isMainThread && process.env[RUNTIME_ENV] === 'process' && process.send) {
  // Ctrl-C reaches the whole foreground process group: the control plane decides when we stop.
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.on(sig, () => { /* the control plane stops us */ });
  runHaLoop({
    post: (m) => { if (process.connected) process.send!(m); },
    onMessage: (fn) => process.on('message', (m) => fn(m as ToHa)),
    onClose: (fn) => process.once('disconnect', fn),
  }, (code) => { if (process.connected) process.disconnect(); setTimeout(() => process.exit(code), 50); });
}
