import pino, { type Logger } from 'pino';

/**
 * JSON logs to stdout (journald picks them up). One root logger; modules take a child with
 * `{ mod: 'health' }` so lines can be filtered by concern.
 */
export type { Logger };

export function createLogger(level = 'info', dest: NodeJS.WritableStream | number = 1): Logger {
  const stream = typeof dest === 'number' ? pino.destination({ dest, sync: false }) : dest;
  return pino({ level, base: { pid: process.pid }, timestamp: pino.stdTimeFunctions.isoTime }, stream);
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
