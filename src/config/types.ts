import { z } from 'zod';

/**
 * Shared zod building blocks for every config section.
 * Durations accept a number of milliseconds or a string with a unit: "250ms", "2s", "1m", "1h".
 */
const DURATION_RE = /^(\d+(?:\.\d+)?)\s*(ms|s|m|h)?$/;
const UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

export function parseDuration(v: string | number): number | undefined {
  if (typeof v === 'number') return Number.isFinite(v) && v >= 0 ? v : undefined;
  const m = DURATION_RE.exec(v.trim());
  if (!m) return undefined;
  return Math.round(Number(m[1]) * UNIT_MS[m[2] ?? 'ms']);
}

/** A duration in ms, at least `min` ms; one clear error per bad value. */
export function durationAtLeast(min: number) {
  return z.union([z.number(), z.string()]).transform((v, ctx) => {
    const ms = parseDuration(v);
    if (ms === undefined) {
      ctx.addIssue({ code: z.ZodIssueCode.custom, message: `expected a duration such as 500ms, 2s, 1m (got ${JSON.stringify(v)})` });
      return z.NEVER;
    }
    if (ms < min) {
      ctx.addIssue({ code: z.ZodIssueCode.custom, message: `expected at least ${min}ms (got ${JSON.stringify(v)})` });
      return z.NEVER;
    }
    return ms;
  });
}

export const duration = durationAtLeast(0);

/**
 * A boolean key. YAML 1.2 (the `yaml` package's default) reads `on`/`off`/`yes`/`no` as strings,
 * but heartbeat's ha.cf (`auto_failback on`) and HAProxy users write them: for boolean keys only,
 * those words (any case) mean true/false. Anything else still needs true/false.
 */
const BOOL_WORDS: Record<string, boolean> = { on: true, off: false, yes: true, no: false, true: true, false: false };
export const bool = z.preprocess((v) => (typeof v === 'string' && Object.hasOwn(BOOL_WORDS, v.toLowerCase()) ? BOOL_WORDS[v.toLowerCase()] : v), z.boolean({
  errorMap: (i, ctx) => ({ message: i.code === 'invalid_type' && ctx.data !== undefined ? `expected true/false (or on/off, yes/no), got ${JSON.stringify(ctx.data)}` : ctx.defaultError }),
}));

const HOSTPORT_RE = /^(?:\[([0-9a-fA-F:.]+)\]|([A-Za-z0-9.\-_]+)):(\d{1,5})$/;

export interface HostPort { host: string; port: number }

export function parseHostPort(s: string): HostPort | undefined {
  const m = HOSTPORT_RE.exec(s);
  if (!m) return undefined;
  const port = Number(m[3]);
  if (port > 65535) return undefined;
  return { host: m[1] ?? m[2], port };
}

/** "host:port" (IPv6 in brackets). Port 0 is allowed: tests bind ephemeral ports. */
export const hostPort = z.string().superRefine((s, ctx) => {
  if (!parseHostPort(s)) ctx.addIssue({ code: z.ZodIssueCode.custom, message: `expected host:port (got ${JSON.stringify(s)})` });
});

export const name = z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/, 'expected a name of letters, digits, . _ - (max 64)');
