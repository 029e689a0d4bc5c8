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
