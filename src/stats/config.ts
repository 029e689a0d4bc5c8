import { z } from 'zod';
import { bool, duration, durationAtLeast, hostPort, name } from '../config/types.js';
import { cidrList } from '../config/cidr.js';

/**
 * Stats page and admin API configuration. Owned by the ops module (issue 4).
 * docs/operations-stats.md documents every key.
 *
 *   stats:
 *     bind: 127.0.0.1:8404
 *     refresh: 5s
 *     admin: true                  # READY/DRAIN/MAINT and weight from the page (POST + anti-CSRF token)
 *     auth:
 *       - user: ops
 *         password: "$scrypt$ln=15,r=8,p=1$…"   # from `pairlb hash-password`; plaintext works with a warning
 *   admin:
 *     socket: /run/pairlb/admin.sock            # default transport: JSON over a unix socket
 *     # or: bind: 127.0.0.1:8405 + token_file: /etc/pairlb/admin.token
 */

export const statsUserSchema = z.object({
  user: name,
  /** An scrypt hash made by `pairlb hash-password` ($scrypt$…), or a plaintext password (logged as a warning). */
  password: z.string().min(1),
  /** `admin`: may act on backends from the page (with `stats.admin: true`); `read-only`: sees the page, CSV, JSON and metrics only. */
  role: z.enum(['admin', 'read-only']).default('admin'),
}).strict();

/** Failed-login limits of the stats page (and of the admin API's token check). */
export const loginSchema = z.object({
  /** Failed logins from one source (IPv4 address, IPv6 /64) before it is locked out. */
  max_failures: z.number().int().min(1).max(1000).default(5),
  /** First lockout; it doubles with each further failure, up to `max_lockout`. While locked, requests get 429 without a password check. */
  lockout: durationAtLeast(100).default('1s'),
  max_lockout: durationAtLeast(100).default('5m'),
  /** A source's failures are forgotten after this long without a new one (and its lockout has ended). */
  forget: durationAtLeast(1000).default('15m'),
  /** Most sources remembered; the one with the oldest failure is forgotten first. */
  sources: z.number().int().min(16).max(1_000_000).default(4096),
  /** How long a verified credential is remembered (no scrypt for the next requests). 0 = never. */
  cache: duration.default('5m'),
  /** Most credentials remembered; the oldest is forgotten first. */
  cache_size: z.number().int().min(1).max(100_000).default(1024),
  /** scrypt verifications running at once (each takes 32 MiB and a libuv thread pool thread at ln=15). */
  concurrent: z.number().int().min(1).max(64).default(2),
  /** Verifications waiting for a slot; more get 503 with Retry-After: 1. */
  queue: z.number().int().min(0).max(10_000).default(64),
}).strict();

const origin = z.string().transform((s, ctx) => {
  let u: URL | undefined;
  try { u = new URL(s); } catch { /* reported below */ }
  if (!u || (u.protocol !== 'http:' && u.protocol !== 'https:') || (u.pathname !== '/' && u.pathname !== '') || u.search || u.username) {
    ctx.addIssue({ code: z.ZodIssueCode.custom, message: `expected an origin such as https://lb-01.example.com:8404 (got ${JSON.stringify(s)})` });
    return z.NEVER;
  }
  return u.origin;
});

export const statsSchema = z.object({
  bind: hostPort.default('127.0.0.1:8404'),
  /** How often the page reloads itself (0 = never). */
  refresh: duration.default('5s'),
  /** Allow admin actions from the page (needs `auth`). */
  admin: bool.default(false),
  /** Basic-auth users. Empty = the page is open (only sensible on a loopback bind). */
  auth: z.array(statsUserSchema).default([]),
  /** Realm shown by the browser's login prompt. */
  realm: z.string().regex(/^[\x20-\x7e]{1,64}$/).refine((s) => !s.includes('"'), 'no quotes').default('pairlb'),
  /** Serve Prometheus metrics at /metrics. */
  metrics: bool.default(true),
  /** Require the page's credentials for /metrics too (Prometheus `basic_auth`). */
  metrics_auth: bool.default(true),
  /**
   * Origins (scheme://host[:port]) allowed to POST admin actions, besides the bind address itself
   * (and `localhost` on a loopback bind). Needed when the page is reached by a name or through a
   * TLS reverse proxy. The request's own Host header is never trusted for this.
   */
  origins: z.array(origin).default([]),
  /** Failed-login limits and the credential cache. */
  login: loginSchema.default({}),
  /** Sources (addresses or CIDRs) that may connect; empty: every source. Others are closed at accept. */
  allow: cidrList.default([]),
  /** Sources closed at accept. */
  deny: cidrList.default([]),
}).strict().superRefine((s, ctx) => {
  if (s.admin && s.auth.length === 0) ctx.addIssue({ code: z.ZodIssueCode.custom, path: ['admin'], message: 'admin: true needs at least one user in stats.auth' });
  const seen = new Set<string>();
  s.auth.forEach((u, i) => {
    if (seen.has(u.user)) ctx.addIssue({ code: z.ZodIssueCode.custom, path: ['auth', i, 'user'], message: `duplicate user ${JSON.stringify(u.user)}` });
    seen.add(u.user);
  });
});

export const DEFAULT_ADMIN_SOCKET = '/run/pairlb/admin.sock';

export const adminSchema = z.object({
  /** Unix socket of the runtime API (the default transport; access = file permissions). */
  socket: z.string().startsWith('/').optional(),
  /** Mode of the socket file (octal string), e.g. "0660" to let a group use the CLI. */
  socket_mode: z.string().regex(/^0?[0-7]{3}$/).default('0600'),
  /** Alternative transport: a local TCP address; every request then needs the bearer token. */
  bind: hostPort.optional(),
  /** Bearer token for `bind` (prefer token_file: a config file is often world-readable). */
  token: z.string().min(16).optional(),
  token_file: z.string().optional(),
  /** A second bearer token for `bind` that may only read (GET): every write answers 403. */
  read_only_token: z.string().min(16).optional(),
  read_only_token_file: z.string().optional(),
  /**
   * A second unix socket where the API only reads (every write answers 403), e.g. for a monitoring
   * user running `pairlb status`; next to `socket` or `bind`.
   */
  read_only_socket: z.string().startsWith('/').optional(),
  /** Mode of the read-only socket file. */
  read_only_socket_mode: z.string().regex(/^0?[0-7]{3}$/).default('0660'),
  /** How long `backend remove` waits for active sessions to end before removing anyway. */
  remove_timeout: duration.default('30s'),
  /** With `bind`: sources (addresses or CIDRs) that may connect; empty: every source. Others are closed at accept. */
  allow: cidrList.default([]),
  /** With `bind`: sources closed at accept. */
  deny: cidrList.default([]),
}).strict().superRefine((a, ctx) => {
  if (a.bind && !a.token && !a.token_file) ctx.addIssue({ code: z.ZodIssueCode.custom, path: ['bind'], message: 'admin.bind needs token or token_file' });
  if ((a.read_only_token || a.read_only_token_file) && !a.bind) ctx.addIssue({ code: z.ZodIssueCode.custom, path: ['read_only_token'], message: 'read-only tokens need admin.bind (the unix socket has no tokens: its file mode decides)' });
  if (a.read_only_socket && a.read_only_socket === (a.bind ? undefined : a.socket ?? DEFAULT_ADMIN_SOCKET)) ctx.addIssue({ code: z.ZodIssueCode.custom, path: ['read_only_socket'], message: 'read_only_socket must differ from socket' });
  if (a.bind && a.socket) ctx.addIssue({ code: z.ZodIssueCode.custom, path: ['socket'], message: 'give either admin.socket or admin.bind, not both' });
});

export type StatsConfig = z.output<typeof statsSchema>;
export type AdminConfig = z.output<typeof adminSchema>;
export type LoginConfig = z.output<typeof loginSchema>;
