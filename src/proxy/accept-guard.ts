import { closeSync, openSync, readFileSync } from 'node:fs';
import type { Logger } from '../log.js';
import { RateLimitedLog } from '../log.js';
import type { Counters } from '../stats/counters.js';

/**
 * Accept-time limits of the process: a budget of client connections over every listen section
 * (`global.maxconn`, by default derived from the open-file limit, as HAProxy derives maxconn from
 * ulimit-n), and visibility when connections are refused.
 *
 * Why a budget of our own: at the open-file limit libuv accepts each pending connection into a
 * reserved descriptor and closes it at once (uv__emfile_trick in src/unix/stream.c), and tells
 * nobody: node:http emits neither 'error' nor 'drop' (measured on Node 20.20; libuv 1.x does the
 * same in Node 24). Keeping client connections below the limit leaves descriptors for backend
 * connections, health checks, the state file, the stats page and `ip`/ARP helpers, and makes each
 * refusal visible: counted per listen section (Counters.refusedConn) and logged at most once per
 * 10 s with the count since the last line.
 *
 * If the limit is reached anyway (backend sockets, a maxconn set above what the limit allows), a
 * probe that opens /dev/null once a second sees EMFILE/ENFILE, counts it (fdLimitHits: seconds at
 * the limit) and logs it, rate limited the same way. libuv's own 'error' (when even its reserve is
 * gone) is counted and logged instead of crashing the process.
 */

/** Descriptors kept out of the client budget: min(256, limit/4). */
export function autoMaxconn(fdLimit: number): number {
  const reserve = Math.min(256, Math.floor(fdLimit / 4));
  // A proxied connection holds two descriptors: the client's and the backend's.
  return Math.max(1, Math.floor((fdLimit - reserve) / 2));
}

/** Soft RLIMIT_NOFILE of this process (Linux /proc), undefined when unknown or unlimited. */
export function openFileLimit(): number | undefined {
  try {
    const m = /^Max open files\s+(\d+)/m.exec(readFileSync('/proc/self/limits', 'utf8'));
    return m ? Number(m[1]) : undefined;
  } catch { return undefined; }
}

const WINDOW_MS = 10_000;
const PROBE_MS = 1000;

/**
 * With data-plane workers every worker has its own AcceptGuard over one shared table of open
 * connections (one slot per worker, so a crashed worker's slot is simply zeroed): global.maxconn
 * stays one budget for the process. Two workers admitting at the same instant may pass the limit
 * by at most one connection each.
 */
export interface SharedConnections {
  /** Int32Array over a SharedArrayBuffer: open client connections per worker. */
  readonly table: Int32Array;
  /** Float64Array over a SharedArrayBuffer: connections admitted since start per worker (written by its worker only). */
  readonly accepted: Float64Array;
  /** This worker's slot; -1: the control plane (reads only). */
  readonly slot: number;
  /** Whether this guard runs the once-a-second descriptor probe (one per process is enough). */
  readonly probe: boolean;
}

export class AcceptGuard {
  /** Client connections open now, over every listen section (and every worker). */
  get open(): number {
    const t = this.table;
    let n = 0;
    for (let i = 0; i < t.length; i++) n += Atomics.load(t, i);
    return n;
  }
  /** Connections admitted since start (HA's self-check: a data plane that accepts is not wedged). */
  get accepted(): number {
    const a = this.acceptedBy;
    let n = 0;
    for (let i = 0; i < a.length; i++) n += a[i];
    return n;
  }
  maxconn: number;
  readonly fdLimit: number | undefined;
  /** 1 s probes that found the descriptor table full. */
  fdLimitHits = 0;
  /** Accept errors libuv reported (its reserve descriptor was gone too). */
  acceptErrors = 0;
  private readonly logs = new Map<string, RateLimitedLog>();
  private probe: NodeJS.Timeout | undefined;

  private readonly table: Int32Array;
  private readonly acceptedBy: Float64Array;
  private readonly slot: number;
  private readonly probes: boolean;

  constructor(private readonly log: Logger, maxconn: number | undefined, shared?: SharedConnections) {
    this.fdLimit = openFileLimit();
    this.maxconn = this.resolve(maxconn);
    this.table = shared?.table ?? new Int32Array(1);
    this.acceptedBy = shared?.accepted ?? new Float64Array(1);
    this.slot = shared?.slot ?? 0;
    this.probes = shared?.probe ?? true;
  }

  private resolve(maxconn: number | undefined): number {
    if (maxconn !== undefined) {
      if (this.fdLimit !== undefined && maxconn > autoMaxconn(this.fdLimit)) {
        this.log.warn({ mod: 'proxy', maxconn, fdLimit: this.fdLimit, auto: autoMaxconn(this.fdLimit) }, `global.maxconn ${maxconn} is more than the open-file limit ${this.fdLimit} allows (${autoMaxconn(this.fdLimit)}): raise LimitNOFILE or connections may be dropped unseen`);
      }
      return maxconn;
    }
    return this.fdLimit !== undefined ? autoMaxconn(this.fdLimit) : 1_000_000;
  }

  start(): void {
    if (!this.probes) return;
    this.log.info({ mod: 'proxy', maxconn: this.maxconn, fdLimit: this.fdLimit }, `client connection budget: maxconn ${this.maxconn} (open-file limit ${this.fdLimit ?? 'unknown'})`);
    this.probe = setInterval(() => this.probeFds(), PROBE_MS);
    this.probe.unref();
  }

  update(maxconn: number | undefined): void {
    const next = this.resolve(maxconn);
    if (next !== this.maxconn && this.probes) this.log.info({ mod: 'proxy', maxconn: next, was: this.maxconn }, `client connection budget: maxconn ${next}`);
    this.maxconn = next;
  }

  stop(): void {
    if (this.probe) clearInterval(this.probe);
    this.probe = undefined;
    for (const l of this.logs.values()) l.close();
  }

  /** Per accepted connection (not per request). False: refuse it (the caller destroys the socket). */
  admit(listen: string, c: Counters): boolean {
    const t = this.table;
    // One slot (in-process): no sum to take.
    if ((t.length === 1 ? t[0] : this.open) < this.maxconn) { Atomics.add(t, this.slot, 1); this.acceptedBy[this.slot]++; return true; }
    c.refusedConn++;
    this.rateLog('maxconn:' + listen, (n) => this.log.warn(
      { mod: 'proxy', listen, reason: 'maxconn', refused: n, open: this.open, maxconn: this.maxconn, fdLimit: this.fdLimit },
      `listen ${listen}: refused ${n} connection(s): maxconn ${this.maxconn} reached (open-file limit ${this.fdLimit ?? 'unknown'})`)).hit();
    return false;
  }

  release(): void { Atomics.sub(this.table, this.slot, 1); }

  /** Control plane: a worker died; its connections died with it. */
  clearSlot(slot: number): void { Atomics.store(this.table, slot, 0); }

  /** A listening server's 'error' after it is bound: libuv could not accept (EMFILE, ENFILE…). */
  acceptError(listen: string, c: Counters, err: NodeJS.ErrnoException): void {
    this.acceptErrors++;
    c.refusedConn++;
    const code = err.code ?? 'ERROR';
    this.rateLog(code + ':' + listen, (n) => this.log.error(
      { mod: 'proxy', listen, reason: code, refused: n, open: this.open, fdLimit: this.fdLimit, err: err.message },
      `listen ${listen}: ${n} accept failure(s): ${code} (open-file limit ${this.fdLimit ?? 'unknown'})`)).hit();
  }

  private probeFds(): void {
    let fd: number;
    try { fd = openSync('/dev/null', 'r'); } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code !== 'EMFILE' && code !== 'ENFILE') return;
      this.fdLimitHits++;
      this.rateLog('fd:' + code, (n) => this.log.error(
        { mod: 'proxy', reason: code, seconds: n, open: this.open, maxconn: this.maxconn, fdLimit: this.fdLimit },
        `open-file limit reached (${code}, limit ${this.fdLimit ?? 'unknown'}, ${this.open} client connections): new connections are closed unseen; ${n} s at the limit since the last line`)).hit();
      return;
    }
    closeSync(fd);
  }

  private rateLog(key: string, emit: (n: number) => void): RateLimitedLog {
    let l = this.logs.get(key);
    if (!l) this.logs.set(key, (l = new RateLimitedLog(emit, WINDOW_MS)));
    return l;
  }
}
