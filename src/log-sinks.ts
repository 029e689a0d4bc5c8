import { spawn, type ChildProcess } from 'node:child_process';
import { accessSync, constants, createWriteStream, existsSync, fstatSync, openSync, writeSync, type WriteStream } from 'node:fs';
import { dirname } from 'node:path';
import type { Logger } from './log.js';

/**
 * Destinations of line-oriented logs other than stdout (the access log: GoAccess and Awstats read
 * a file or a syslog stream of combined lines, not the journal's mix of JSON and combined).
 *
 * A sink never blocks the caller and never buffers without bound: when its destination cannot keep
 * up (disk full, syslog stalled), lines beyond MAX_PENDING bytes are dropped and counted, and the
 * count is logged once the destination takes lines again.
 */
export interface LineSink {
  /** Whole lines, each with its trailing "\n" (one line, or a batch of them). */
  write(lines: string): void;
  /** logrotate's postrotate (SIGUSR1): start a new file under the configured name. */
  reopen(): void;
  close(): void;
  readonly dropped: number;
}

const MAX_PENDING = 4 << 20;

/** Lines in a batch of whole lines (for the drop counts). */
function countLines(s: string): number {
  let n = 0;
  for (let i = s.indexOf('\n'); i !== -1; i = s.indexOf('\n', i + 1)) n++;
  return n;
}

/**
 * Batches of whole lines written straight to a descriptor by the calling thread, one write(2) per
 * batch, for a regular file or a character device (a terminal, /dev/null) — nginx's access_log
 * model. The access log's per-turn batch on stdout goes out this way rather than through pino's
 * SonicBoom in async mode, which costs a libuv threadpool hop and a wake-up of the loop per write
 * and encodes each string up to four times (bench/RESULTS.md, 2026-12-01 "access log cost").
 *
 * A slow disk slows the caller (as nginx's workers). A descriptor that says EAGAIN (made
 * non-blocking by someone else) keeps the rest: later batches queue behind it, retried on the next
 * write and by a timer, up to MAX_PENDING bytes; beyond that, and on a write error (ENOSPC, EIO),
 * lines are dropped and counted, and the count is logged once the descriptor takes lines again.
 */
export class FdLines {
  dropped = 0;
  private droppedSinceLog = 0;
  /** Bytes the descriptor has not taken yet (EAGAIN or a short write), then the batches behind them. */
  private held: Buffer | undefined;
  private queued = '';
  private timer: NodeJS.Timeout | undefined;
  private readonly retryFn = (): void => { this.timer = undefined; this.drain(); };

  constructor(readonly fd: number, private readonly log?: Logger, private readonly what = 'access log') {}

  write(batch: string): void {
    if (this.held !== undefined) {
      if (this.queued.length + batch.length > MAX_PENDING) this.drop(countLines(batch));
      else this.queued += batch;
      this.drain();
      return;
    }
    this.put(batch);
  }

  /** Whether bytes wait for the descriptor (EAGAIN). */
  get pending(): boolean { return this.held !== undefined; }

  /** Try once more to write what waits (at close: what the descriptor still refuses is dropped and counted). */
  close(): void {
    if (this.timer !== undefined) { clearTimeout(this.timer); this.timer = undefined; }
    this.drain();
    if (this.held !== undefined) {
      this.drop(countLines(this.held.toString('latin1')) + countLines(this.queued));
      this.held = undefined;
      this.queued = '';
    }
  }

  private put(batch: string): void {
    let n: number;
    try { n = writeSync(this.fd, batch); } catch (e) { this.failed(e, batch); return; }
    const len = Buffer.byteLength(batch);
    if (n < len) { this.held = Buffer.from(batch).subarray(n); this.drain(); return; }
    this.recovered();
  }

  private drain(): void {
    while (this.held !== undefined) {
      let n: number;
      try { n = writeSync(this.fd, this.held); } catch (e) {
        if ((e as NodeJS.ErrnoException).code === 'EAGAIN') { this.timer ??= setTimeout(this.retryFn, 10).unref(); return; }
        const lines = countLines(this.held.toString('latin1'));
        this.held = undefined;
        this.drop(lines);
        this.report(e);
        break;
      }
      this.held = n < this.held.length ? this.held.subarray(n) : undefined;
      if (this.held === undefined && this.queued !== '') { this.held = Buffer.from(this.queued); this.queued = ''; }
    }
    if (this.held === undefined) this.recovered();
  }

  private failed(e: unknown, batch: string): void {
    if ((e as NodeJS.ErrnoException).code === 'EAGAIN') { this.held = Buffer.from(batch); this.timer ??= setTimeout(this.retryFn, 10).unref(); return; }
    this.drop(countLines(batch));
    this.report(e);
  }

  private drop(lines: number): void { this.dropped += lines; this.droppedSinceLog += lines; }

  private lastError = '';
  private report(e: unknown): void {
    const code = (e as NodeJS.ErrnoException).code ?? String(e);
    if (code === this.lastError) return;
    this.lastError = code;
    this.log?.error({ err: e, fd: this.fd }, `${this.what}: write failed, lines dropped until it works again`);
  }

  private recovered(): void {
    if (this.droppedSinceLog === 0) return;
    const n = this.droppedSinceLog;
    this.droppedSinceLog = 0;
    this.lastError = '';
    this.log?.warn({ fd: this.fd, dropped: n }, `${this.what}: ${n} lines dropped`);
  }
}

const direct = new WeakMap<object, FdLines | null>();

/**
 * The FdLines for a logger destination's descriptor (stdout) that `dest` writes to, or undefined
 * when write(2) on it can wait for a reader (see writesDirect). One per destination: every
 * AccessLog on it shares it (in order with each other); it never closes the descriptor.
 */
export function directLines(dest: object, fd: number, log?: Logger): FdLines | undefined {
  let w = direct.get(dest);
  if (w === undefined) direct.set(dest, (w = writesDirect(fd) ? new FdLines(fd, log) : null));
  return w ?? undefined;
}

/**
 * Whether write(2) on this descriptor never waits for a reader: a regular file or a character
 * device. False for a pipe or a socket (journald's stdout stream), whose reader can stall.
 */
export function writesDirect(fd: number): boolean {
  try { const st = fstatSync(fd); return st.isFile() || st.isCharacterDevice(); } catch { return false; }
}

/**
 * Appends to a file (mode 0640). reopen() opens the path again and closes the old descriptor
 * once what was written to it is flushed, so `mv access.log access.log.1; kill -USR1` loses no
 * line and splits none (logrotate without copytruncate).
 */
export class FileSink implements LineSink {
  dropped = 0;
  private out: WriteStream;
  private droppedSinceLog = 0;

  /** Throws (ENOENT, EACCES) when the file cannot be opened: the caller reports it. */
  constructor(readonly path: string, private readonly log: Logger) {
    this.out = this.open();
  }

  private open(): WriteStream {
    const fd = openSync(this.path, 'a', 0o640);
    const s = createWriteStream('', { fd, autoClose: true });
    s.on('error', (e) => this.log.error({ err: e, file: this.path }, 'access log file: write failed'));
    return s;
  }

  write(line: string): void {
    const out = this.out;
    if (out.writableLength > MAX_PENDING) { const n = countLines(line); this.dropped += n; this.droppedSinceLog += n; return; }
    if (this.droppedSinceLog !== 0) {
      this.log.warn({ file: this.path, dropped: this.droppedSinceLog }, `access log file: ${this.droppedSinceLog} lines dropped (the disk did not keep up)`);
      this.droppedSinceLog = 0;
    }
    out.write(line);
  }

  reopen(): void {
    let next: WriteStream;
    try { next = this.open(); } catch (e) {
      // Keep writing to the old file rather than losing lines.
      this.log.error({ err: e, file: this.path }, 'access log file: reopen failed, still writing to the old file');
      return;
    }
    const old = this.out;
    this.out = next;
    old.end();
  }

  close(): void { this.out.end(); }
}

/** Syslog facilities by name (RFC 5424 §6.2.1). */
export const FACILITIES = ['kern', 'user', 'mail', 'daemon', 'auth', 'syslog', 'lpr', 'news', 'uucp', 'cron', 'authpriv', 'ftp',
  'local0', 'local1', 'local2', 'local3', 'local4', 'local5', 'local6', 'local7'] as const;

export interface SyslogSettings {
  /** Unix datagram socket of the local syslog daemon (rsyslog's imuxsock, journald's dev-log). */
  socket: string;
  /** host:port of a syslog server over UDP instead of the socket. */
  server?: string;
  format: 'rfc3164' | 'rfc5424';
  facility: (typeof FACILITIES)[number];
  tag: string;
}

/**
 * Syslog through util-linux `logger` (Debian's essential bsdutils), one long-lived child that
 * reads lines on its stdin and sends each as one message: Node cannot open a unix datagram
 * socket, and /dev/log is one. logger writes the RFC 3164 header (`<PRI>Mmm dd hh:mm:ss
 * TAG[PID]: `, no hostname on the local socket, as rsyslog's imuxsock and journald expect; with
 * the hostname to a server) or the RFC 5424 one, with our pid. A logger that exits (no socket yet, syslog restarted) is started again at
 * most once a second; lines meanwhile are dropped and counted.
 */
export class SyslogSink implements LineSink {
  dropped = 0;
  private child: ChildProcess | undefined;
  private restartAt = 0;
  private closed = false;
  private droppedSinceLog = 0;

  constructor(readonly s: SyslogSettings, private readonly log: Logger, private readonly loggerBin = '/usr/bin/logger') {
    this.start();
  }

  /** logger's arguments for these settings (pure). */
  static args(s: SyslogSettings, pid: number): string[] {
    const where = s.server === undefined ? ['--socket', s.socket, '--socket-errors=off'] : serverArgs(s.server);
    // On the local socket, rfc3164 is logger's default "local" header, without a hostname:
    // `--rfc3164` would add one, which rsyslog's imuxsock and journald read as the tag.
    // notq: no timeQuality structured data in RFC 5424 messages.
    const format = s.format === 'rfc5424' ? ['--rfc5424=notq'] : s.server === undefined ? [] : ['--rfc3164'];
    return [...where, ...format, '--tag', s.tag, `--id=${pid}`, '--priority', `${s.facility}.info`, '--size', '8192'];
  }

  private start(): void {
    if (this.closed) return;
    this.restartAt = Date.now() + 1000;
    const c = spawn(this.loggerBin, SyslogSink.args(this.s, process.pid), { stdio: ['pipe', 'ignore', 'pipe'] });
    let err = '';
    c.stderr!.setEncoding('utf8').on('data', (d: string) => { if (err.length < 500) err += d; });
    c.stdin!.on('error', () => {});
    c.on('error', (e) => this.log.error({ err: e }, 'access log syslog: cannot run logger'));
    c.on('exit', (code, sig) => {
      if (this.child === c) this.child = undefined;
      if (!this.closed) this.log.error({ code, sig, stderr: err.trim() }, 'access log syslog: logger exited; started again on the next line');
    });
    this.child = c;
  }

  write(line: string): void {
    let c = this.child;
    if (c === undefined && Date.now() >= this.restartAt) { this.start(); c = this.child; }
    if (c === undefined || c.stdin!.writableLength > MAX_PENDING) { const n = countLines(line); this.dropped += n; this.droppedSinceLog += n; return; }
    if (this.droppedSinceLog !== 0) {
      this.log.warn({ dropped: this.droppedSinceLog }, `access log syslog: ${this.droppedSinceLog} lines dropped`);
      this.droppedSinceLog = 0;
    }
    c.stdin!.write(line);
  }

  reopen(): void {}

  close(): void {
    this.closed = true;
    // logger sends what it has read, then exits at the end of its input.
    this.child?.stdin!.end();
  }
}

function serverArgs(hp: string): string[] {
  const i = hp.lastIndexOf(':');
  const host = hp.slice(0, i).replace(/^\[(.*)\]$/, '$1');
  return ['--server', host, '--port', hp.slice(i + 1), '--udp'];
}

/**
 * For `pairlb check`: why the file could not be opened for appending by this user, or undefined.
 * Creates nothing (check has no side effects): an existing file must be writable, else its directory.
 */
export function checkAppendable(path: string): string | undefined {
  const target = existsSync(path) ? path : dirname(path);
  try { accessSync(target, constants.W_OK); return undefined; } catch (e) {
    return `cannot append to ${path}: ${target} is not writable by this user (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`;
  }
}
