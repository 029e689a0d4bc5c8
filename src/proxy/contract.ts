import type { Config } from '../config/schema.js';
import { effectiveState, type BackendSet, type EffectiveState } from '../backends/backend-set.js';
import type { CounterStore } from '../stats/counters.js';
import type { AcceptGuard } from './accept-guard.js';
import type { Logger } from '../log.js';
import type { Http01Tokens } from '../acme/http01.js';
import type { TlsStatus } from '../tls/terminator.js';
import type { LagSnapshot } from '../ha/loop-lag.js';

/**
 * What crosses between the control plane and the data plane. Everything here is plain data
 * (structured-clone safe): the same contract serves the in-process data plane (`workers: 0`) and
 * data-plane worker threads (src/proxy/workers.ts, src/proxy/worker.ts).
 *
 * Out (control → data): the validated config (listener settings are compiled from it in the
 * worker, ListenSettings), routing snapshots as RouteSpec lists, ports already bound for port-0
 * binds. Back (data → control): passive-check verdicts, counter deltas (src/stats/counters.ts
 * counterDelta) which carry the in-flight counts, and answers to control requests.
 */

/** One backend of a listen section as the data plane sees it; the Listener adds its pool. */
export interface RouteSpec {
  readonly id: number;
  readonly name: string;
  readonly address: string;
  readonly host: string;
  readonly port: number;
  readonly backup: boolean;
  readonly check: boolean;
  readonly cookie: string;
  readonly state: EffectiveState;
  /** Effective weight (slow start applied at `now`). */
  readonly weight: number;
  /** Server maxconn (0: unlimited); with workers it holds over all of them (`slot`). */
  readonly maxconn: number;
  /** With workers: the server's slot in the shared in-flight table (src/proxy/shared-inflight.ts), -1 or absent: none. */
  readonly slot?: number;
}

/** The routing snapshot of one listen section at `now` (every backend; the Listener filters). */
export function routeSpecs(set: BackendSet, listen: string, now: number): RouteSpec[] {
  const out: RouteSpec[] = [];
  for (const b of set.backends(listen)) {
    out.push({
      id: b.id, name: b.name, address: b.address, host: b.host, port: b.port, backup: b.backup,
      check: b.check, cookie: b.cookie, state: effectiveState(b), weight: set.effectiveWeight(b, now), maxconn: b.maxconn,
    });
  }
  return out;
}

/** What one data plane (ProxyManager: every listener of one thread) needs from where it runs. */
export interface DataPlaneHost {
  readonly log: Logger;
  readonly counters: CounterStore;
  /** Latest routing snapshot of a listen section. */
  routes(listen: string): readonly RouteSpec[];
  /** A passive check took a backend down: the control plane's backend set decides. */
  passiveDown(listen: string, backend: string, reason: string): void;
  /** Bind with SO_REUSEPORT (workers: every worker binds every listen address). */
  readonly reusePort: boolean;
  /**
   * The port a port-0 bind of section `name` already got in another worker, if any (by name and
   * bind text: two sections on 127.0.0.1:0 get two ports).
   */
  port(name: string, bind: string): number | undefined;
  /** TLS session-ticket keys of the process (src/tls/ticket-keys.ts); a worker gets the key by message. */
  readonly tickets: { attach(server: import('node:https').Server): () => void };
  /** ACME HTTP-01 answers (src/acme/http01.ts); a worker holds a copy of the map. */
  readonly http01: Http01Tokens;
  /** A TLS server started (the App's 'tls-server' event in-process; nothing in a worker). */
  tlsServer(server: unknown, listen: string): void;
  /** With workers: the in-flight counts every worker shares (server and frontend maxconn, leastconn). */
  readonly shared?: import('./shared-inflight.js').SharedInflight;
  /** A frontend's slot in `shared` (-1: none, its maxconn holds in this data plane only). */
  frontendSlot(name: string): number;
}

/** A listen section as the control plane sees it (HA's self-check). */
export interface ListenerView {
  address(): { host: string; port: number } | undefined;
  /** Set on a TLS bind: its certificates and handshake counters. */
  readonly tls: { status(): TlsStatus } | undefined;
}

/** The access log as the control plane reconfigures it (global.log reload, SIGUSR1). */
export interface AccessControl {
  configure(cfg: Config['global']['log']): string | undefined;
  reopen(): void;
}

/** The data plane as the control plane drives it: in-process (ProxyManager) or worker threads (WorkerPool). */
export interface DataPlaneControl {
  readonly guard: AcceptGuard;
  readonly access: AccessControl;
  /** Listen sections and their bound addresses. */
  readonly listeners: ReadonlyMap<string, ListenerView>;
  start(): Promise<void>;
  reload(cfg: Config): Promise<void>;
  stop(drainMs?: number): Promise<void>;
  closeIdleConnections(): void;
  /** Resolves with the number of client connections destroyed (over every worker). */
  destroyConnectionsTo(address: string): Promise<number>;
  isServing(): boolean;
  address(listen: string): { host: string; port: number } | undefined;
  /** Resolves once every worker's counters up to now reached the control plane (bounded wait). */
  sync(): Promise<void>;
  /** One row per data-plane thread (the in-process data plane is worker 0 of 1, thread 0). */
  workers(): WorkerInfo[];
}

export interface WorkerInfo { index: number; threadId: number; state: 'starting' | 'ready' | 'stopping' | 'dead'; restarts: number; requests: number; startedAt: number }

/** The key of a port-0 bind's port in WorkerInit.ports: section name and bind text. */
export function portKey(name: string, bind: string): string { return `${name} ${bind}`; }

/** global.workers resolved: 0 = in-process data plane; `auto` = available cores. */
export function resolveWorkers(v: Config['global']['workers'], cores: number): number {
  return v === 'auto' ? Math.max(1, cores) : v;
}

// ---- messages ----------------------------------------------------------------------------------

export interface WorkerInit {
  index: number;
  cfg: Config;
  logLevel: string;
  /** The current TLS session-ticket key (48 bytes). */
  ticketKey: Uint8Array;
  http01: [string, string][];
  /** "name bind" → port for port-0 binds already bound by another worker (portKey). */
  ports: Record<string, number>;
  snapshots: Record<string, RouteSpec[]>;
  /** Open client connections per worker (Int32Array over it): one global.maxconn budget. */
  conn: SharedArrayBuffer;
  /** Connections admitted since start per worker (Float64Array over it). */
  accepted: SharedArrayBuffer;
  /** ms between counter reports. */
  flushMs: number;
  /** In-flight counts shared by every worker (src/proxy/shared-inflight.ts), and frontend name → slot. */
  inflight: SharedArrayBuffer;
  frontendSlots: Record<string, number>;
}

export type ToWorker =
  | { t: 'snapshot'; listen: string; routes: RouteSpec[] }
  | { t: 'config'; id: number; cfg: Config; ports: Record<string, number>; snapshots: Record<string, RouteSpec[]>; frontendSlots: Record<string, number> }
  | { t: 'closeIdle' }
  | { t: 'tickets'; key: Uint8Array }
  | { t: 'http01'; entries: [string, string][] }
  | { t: 'log'; log: Config['global']['log'] }
  | { t: 'reopen' }
  | { t: 'clearClients' }
  | { t: 'destroyTo'; id: number; address: string }
  | { t: 'flush'; id: number }
  | { t: 'stop'; drainMs: number | undefined };

export type Addresses = Record<string, { host: string; port: number; bind: string }>;

export type FromWorker =
  | { t: 'ready'; addresses: Addresses }
  | { t: 'startFailed'; message: string; code?: string }
  | { t: 'reloaded'; id: number; addresses: Addresses; error?: string }
  | { t: 'counters'; listens: [string, Float64Array][]; pools: [string, Float64Array][]; backends: [number, Float64Array][]; tls?: TlsStatus[] }
  | { t: 'passive'; listen: string; backend: string; reason: string }
  | { t: 'destroyed'; id: number; n: number }
  | { t: 'flushed'; id: number; lag: LagSnapshot }
  | { t: 'stopped' };
