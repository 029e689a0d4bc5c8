import pino, { type Logger } from 'pino';

/**
 * JSON logs to stdout (journald picks them up). One root logger; modules take a child with
 * `{ mod: 'health' }` so lines can be filtered by concern.
 */
export type { Logger };

/** Every child of a logger made by createLogger, so that a new level reaches them (pino copies the level into a child once). */
const families = new WeakMap<Logger, Set<WeakRef<Logger>>>();

/** The descriptor of each destination createLogger opened on a descriptor number. */
const destFds = new WeakMap<object, number>();

export function createLogger(level = 'info', dest: NodeJS.WritableStream | number = 1): Logger {
  const stream = typeof dest === 'number' ? pino.destination({ dest, sync: false }) : dest;
  if (typeof dest === 'number') destFds.set(stream, dest);
  const kids = new Set<WeakRef<Logger>>();
  // onChild is inherited: grandchildren are registered too.
  const root = pino({ level, base: { pid: process.pid }, timestamp: pino.stdTimeFunctions.isoTime, onChild: (c) => { kids.add(new WeakRef(c)); } }, stream);
  families.set(root, kids);
  return root;
}

/**
 * Set the level of a logger from createLogger and of all its children (reload of global.log.level).
 * Returns false for a logger that createLogger did not make (its children cannot be reached).
 */
export function setLogLevel(root: Logger, level: string): boolean {
  const kids = families.get(root);
  if (kids === undefined) return false;
  root.level = level;
  for (const r of kids) {
    const c = r.deref();
    if (c === undefined) kids.delete(r); else c.level = level;
  }
  return true;
}

/**
 * The descriptor a logger from createLogger (or its child) writes to, when it was made on one
 * (stdout): the access log writes its batches there itself (src/log-sinks.ts FdLines).
 */
export function loggerFd(logger: Logger): { dest: object; fd: number } | undefined {
  const dest = (logger as unknown as Record<symbol, object | undefined>)[pino.symbols.streamSym];
  const fd = dest === undefined ? undefined : destFds.get(dest);
  return fd === undefined ? undefined : { dest: dest!, fd };
}

export const silentLogger: Logger = pino({ level: 'silent' });

/**
 * At most one line per `windowMs` for an event that can repeat thousands of times a second
 * (refused connections, failed logins): the first occurrence is logged at once; later ones are
 * counted and reported in one line, with the count since the last line, when the window ends.
 */
export class RateLimitedLog {
  private pending = 0;
  private last = -Infinity;
  private timer: NodeJS.Timeout | undefined;

  constructor(private readonly emit: (count: number) => void, private readonly windowMs = 10_000) {}

  hit(): void {
    const now = performance.now();
    if (this.timer === undefined && now - this.last >= this.windowMs) { this.last = now; this.emit(1); return; }
    this.pending++;
    if (this.timer === undefined) {
      this.timer = setTimeout(() => this.flush(), Math.max(0, this.last + this.windowMs - now));
      this.timer.unref();
    }
  }

  private flush(): void {
    this.timer = undefined;
    if (this.pending === 0) return;
    const n = this.pending;
    this.pending = 0;
    this.last = performance.now();
    this.emit(n);
  }

  /** Log what is pending now (on stop). */
  close(): void {
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.flush();
  }
}
