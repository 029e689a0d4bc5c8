/**
 * Network-namespace testbed for the HA pair (client, lb1, lb2, web1, web2, a switch namespace with a
 * bridge, a dedicated lb1–lb2 link). The implementation is plain ESM in bench/failover-lib.mjs so
 * that `npm run bench:failover` shares it without a build step; this file gives it types.
 */
import http from 'node:http';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ChildProcess } from 'node:child_process';
import type { EventEmitter } from 'node:events';
// @ts-ignore plain .mjs without declarations (tests are not type-checked by tsc -p .)
import * as lib from '../../bench/failover-lib.mjs';

export interface LogLine { mod?: string; msg?: string; to?: string; from?: string; reason?: string; _at: number; [k: string]: unknown }
export interface Sample { s: number; e: number; ok: boolean; lb?: string; be?: string; err?: string }
export interface Proc extends EventEmitter {
  child: ChildProcess; name: string; pid: number; lines: string[]; logs: LogLine[]; stderr: string; exitCode?: number | null;
  exited: Promise<{ code: number | null; signal: string | null }>;
  kill(sig?: NodeJS.Signals): void;
  waitFor(pred: (x: any) => boolean, ms?: number, what?: string): Promise<any>;
  roles(): { to: string; reason: string; at: number }[];
  role(): string | undefined;
  waitRole(role: string, ms?: number, after?: number): Promise<LogLine>;
  /** pairlb: PID of its HA loop process (ha.isolation: process), and main + HA loop. */
  haLoopPid(): number | undefined;
  daemonPids(): number[];
}
export interface Poller extends Proc { samples: Sample[]; stop(): Promise<Sample[]> }
export interface Topology {
  prefix: string;
  ns(n: string): string;
  ip(n: string, args: string[], opts?: { allowFail?: boolean }): Promise<string>;
  exec(n: string, cmd: string, args: string[], opts?: { allowFail?: boolean }): Promise<string>;
  spawn(n: string, cmd: string, args: string[], opts?: { env?: Record<string, string>; name?: string }): Proc;
  startWeb(n: 'w1' | 'w2'): Proc;
  destroy(): Promise<void>;
}
export interface Figures { first_reply_ms: number | null; outage_ms: number; failed: number; errors: string[]; requests: number; by: Record<string, number> }

export const NET = lib.NET as {
  vip: string; prefix: number; client: string; lb1: { pub: string; ded: string }; lb2: { pub: string; ded: string };
  web1: string; web2: string; webPort: number;
};
/** `tag`: up to 4 lower-case letters in every namespace name (a test's or an engineer's prefix). */
export const createTopology = (tag?: string): Promise<Topology> => lib.Topology.create(tag);
export const cleanupStale = (): Promise<void> => lib.cleanupStale();
export const startPoller = (t: Topology, o?: { interval?: number; timeout?: number; maxMs?: number }): Poller => lib.startPoller(t, o);
export const analyse = (samples: Sample[], t0: number, to: string, tEnd?: number): Figures => lib.analyse(samples, t0, to, tEnd);
/** As bench/failover-lib.mjs's, plus STALL_TOLERANT_HA unless the test sets its own `watchdog` or `deadtime`. */
export const pairlbConfig = (node: 'lb1' | 'lb2', o: { dir: string; ha?: boolean; extra?: string; haExtra?: string; admin?: boolean }): string =>
  lib.pairlbConfig(node, { ...o, haExtra: /^\s*(watchdog|deadtime):/m.test(o.haExtra ?? '') ? o.haExtra : STALL_TOLERANT_HA + (o.haExtra ?? '') });
export const startPairlb = (t: Topology, node: 'lb1' | 'lb2', cfgFile: string, stateDir: string): Proc => lib.startPairlb(t, node, cfgFile, stateDir);
export const clientNeigh = (t: Topology): Promise<string | undefined> => lib.clientNeigh(t);
export const mac = (t: Topology, n: string, dev?: string): Promise<string | undefined> => lib.mac(t, n, dev);
export const vipOn = (t: Topology, n: string): Promise<boolean> => lib.vipOn(t, n);
export const sleep = (ms: number): Promise<void> => lib.sleep(ms);
export const MAIN: string = lib.MAIN;
export const sendUdp = (t: Topology, n: string, host: string, port: number, bufs: Buffer[]): Promise<void> => lib.sendUdp(t, n, host, port, bufs);
export const tcpdump = (t: Topology, n: string, dev: string, filter: string): Proc => lib.tcpdump(t, n, dev, filter);
export const captureUdp = (t: Topology, n: string, dev: string, filter: string, count: number, file: string): Promise<Buffer[]> => lib.captureUdp(t, n, dev, filter, count, file);

/** A request to a node's admin API on its unix socket (reachable from the root namespace). */
export function adminRequest(socketPath: string, method: string, path: string, body?: unknown): Promise<{ status: number; json: any }> {
  return new Promise((resolve, reject) => {
    const data = body ? JSON.stringify(body) : undefined;
    const req = http.request({ socketPath, method, path, headers: data ? { 'content-type': 'application/json' } : {} }, (res) => {
      let s = ''; res.on('data', (d) => { s += d; });
      res.on('end', () => { try { resolve({ status: res.statusCode!, json: JSON.parse(s) }); } catch { resolve({ status: res.statusCode!, json: s }); } });
    });
    req.on('error', reject);
    req.end(data);
  });
}

/** Poll `f` every 25 ms until it is true; throws after `ms` naming `what`. */
export async function untilTrue(f: () => Promise<boolean> | boolean, ms: number, what: string): Promise<void> {
  const end = Date.now() + ms;
  while (Date.now() < end) { if (await f()) return; await sleep(25); }
  throw new Error(`timeout after ${ms} ms: ${what}`);
}
export const startCapture = (t: Topology, n: string, dev: string, filter: string, file: string): { proc: Proc; ready(ms?: number): Promise<void>; until(pred: (b: Buffer[]) => boolean, ms?: number, what?: string): Promise<Buffer[]>; stop(): Promise<Buffer[]> } => lib.startCapture(t, n, dev, filter, file);
export const sendUdpLoop = (t: Topology, n: string, host: string, port: number, bufs: Buffer[], o?: { everyMs?: number; forMs?: number }): Proc => lib.sendUdpLoop(t, n, host, port, bufs, o);
export interface VipMonitor { events: { at: number; n: string; held: boolean }[]; bothHeldMs(from?: number, to?: number): number; holders(): Record<string, boolean>; stop(): void }
export const vipMonitor = (t: Topology): Promise<VipMonitor> => lib.vipMonitor(t);
export const nftDrop = (t: Topology, n: string, rule: string): Promise<void> => lib.nftDrop(t, n, rule);
export const nftClear = (t: Topology, n: string): Promise<void> => lib.nftClear(t, n);
export const blockEventLoop = (t: Topology, n: string, pid: number, ms: number): Promise<{ at: number; released: Promise<unknown> }> => lib.blockEventLoop(t, n, pid, ms);
export const run = (cmd: string, args: string[], opts?: { allowFail?: boolean }): Promise<string> => lib.run(cmd, args, opts);
/**
 * `ha:` lines for namespace tests that are not about hangs. The machine running the suite is loaded
 * to 10-25 on 2 cores and a pairlb process there sees event-loop stalls of up to ~0.6 s (measured:
 * 280-540 ms under a parallel run); with the default VIP watchdog (1.5 × deadtime = 300 ms) such a
 * stall is a hang and costs a failover, which those tests would read as a spurious role change.
 */
export const STALL_TOLERANT_HA = '  watchdog: 1s\n';

/** A running HA pair in a fresh topology (startPair). */
export interface Pair {
  t: Topology;
  /** Temp dir (mode 0755): ha.key, lbN.yaml, state-lbN/, lbN-admin.sock. */
  dir: string;
  lb1: Proc;
  lb2: Proc;
  webs: Proc[];
  /** Start a node again from its config file (after a kill); replaces pair.lb1 / pair.lb2. */
  start(node: 'lb1' | 'lb2'): Proc;
  /** The node's admin socket (pairlbConfig puts it in dir). */
  admin(node: 'lb1' | 'lb2'): string;
  /** Kill every process started here, delete the namespaces and the dir. */
  destroy(): Promise<void>;
}

/**
 * The two-node set-up the namespace tests share: stale namespaces cleaned, a temp dir with the
 * HA key, the topology (`tag` in its names), the web backends listening, each node's config
 * written (`config(node, dir)`, default pairlbConfig with STALL_TOLERANT_HA + `haExtra`), lb1
 * started and master, then lb2 started and backup. On a failure half-way, what was made is undone.
 */
export async function startPair(o: {
  tag: string; key: string; dirPrefix?: string; webs?: ('w1' | 'w2')[]; haExtra?: string;
  /** Files the configs need (certificates…), made in dir before anything starts. */
  prepare?: (dir: string) => void;
  /** What must run in the topology before the nodes start (a CA in the client namespace…). */
  beforeNodes?: (t: Topology, dir: string) => Promise<void>;
  config?: (node: 'lb1' | 'lb2', dir: string) => string; roleMs?: number;
}): Promise<Pair> {
  const dir = mkdtempSync(join(tmpdir(), `pairlb-${o.dirPrefix ?? o.tag}-`));
  chmodSync(dir, 0o755);
  writeFileSync(join(dir, 'ha.key'), o.key + '\n', { mode: 0o600 });
  const procs: Proc[] = [];
  let t: Topology | undefined;
  const destroy = async (): Promise<void> => {
    for (const p of procs) p.kill('SIGKILL');
    await t?.destroy();
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    o.prepare?.(dir);
    t = await createTopology(o.tag);
    const topo = t;
    const webs = (o.webs ?? ['w1', 'w2']).map((w) => topo.startWeb(w));
    procs.push(...webs);
    await Promise.all(webs.map((w) => w.waitFor((l: string) => l === 'listening', 10_000, 'web listening')));
    await o.beforeNodes?.(topo, dir);
    for (const n of ['lb1', 'lb2'] as const) writeFileSync(join(dir, `${n}.yaml`), o.config ? o.config(n, dir) : pairlbConfig(n, { dir, haExtra: o.haExtra }));
    const pair: Pair = {
      t: topo, dir, webs, lb1: undefined as unknown as Proc, lb2: undefined as unknown as Proc,
      start(node) { const p = startPairlb(topo, node, join(dir, `${node}.yaml`), join(dir, `state-${node}`)); procs.push(p); pair[node] = p; return p; },
      admin: (node) => join(dir, `${node}-admin.sock`),
      destroy,
    };
    await pair.start('lb1').waitRole('master', o.roleMs ?? 20_000);
    await pair.start('lb2').waitRole('backup', o.roleMs ?? 20_000);
    return pair;
  } catch (e) {
    await destroy();
    throw e;
  }
}
