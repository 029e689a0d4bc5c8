import { z } from 'zod';
import { duration, hostPort, name } from '../config/types.js';

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
}).strict();

export const statsSchema = z.object({
  bind: hostPort.default('127.0.0.1:8404'),
  /** How often the page reloads itself (0 = never). */
  refresh: duration.default('5s'),
  /** Allow admin actions from the page (needs `auth`). */
  admin: z.boolean().default(false),
  /** Basic-auth users. Empty = the page is open (only sensible on a loopback bind). */
  auth: z.array(statsUserSchema).default([]),
  /** Realm shown by the browser's login prompt. */
  realm: z.string().regex(/^[\x20-\x7e]{1,64}$/).refine((s) => !s.includes('"'), 'no quotes').default('pairlb'),
  /** Serve Prometheus metrics at /metrics. */
  metrics: z.boolean().default(true),
  /** Require the page's credentials for /metrics too (Prometheus `basic_auth`). */
  metrics_auth: z.boolean().default(true),
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
  /** How long `backend remove` waits for active sessions to end before removing anyway. */
  remove_timeout: duration.default('30s'),
}).strict().superRefine((a, ctx) => {
  if (a.bind && !a.token && !a.token_file) ctx.addIssue({ code: z.ZodIssueCode.custom, path: ['bind'], message: 'admin.bind needs token or token_file' });
  if (a.bind && a.socket) ctx.addIssue({ code: z.ZodIssueCode.custom, path: ['socket'], message: 'give either admin.socket or admin.bind, not both' });
});

export type StatsConfig = z.output<typeof statsSchema>;
export type AdminConfig = z.output<typeof adminSchema>;
