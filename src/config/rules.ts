import { z } from 'zod';
import { bool, name } from './types.js';
import { cidr } from './cidr.js';

/**
 * Routing rules of a frontend (docs/sites.md). A rule is a condition (`when`, every key ANDed, the
 * keys under `when.not` each negated) and what to do: one terminal action (`backend`, `redirect`,
 * `deny`, `return`) and/or header edits. The first rule whose condition holds wins; a rule with no
 * terminal action sends the request to the frontend's `default_backend` with its header edits.
 * Everything is validated here and compiled once per config load (src/proxy/rules.ts): no regex
 * is built and no config is looked up per request.
 */

/** RFC 9110 §5.1 token: a header name. */
const TOKEN_RE = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
/** RFC 9110 §5.5 field-value: visible characters, SP and HTAB inside; never CR, LF or NUL. */
const FIELD_VALUE_RE = /^(?:[\x21-\x7e\x80-\xff](?:[\x20\x09\x21-\x7e\x80-\xff]*[\x21-\x7e\x80-\xff])?)?$/;
/** Headers a rule may not set or delete: framing and hop-by-hop (RFC 9110 §7.6.1, RFC 9112 §6). */
export const RULE_FORBIDDEN_HEADERS = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'te', 'trailer', 'upgrade', 'http2-settings', 'expect', 'content-length']);

export const headerName = z.string().regex(TOKEN_RE, 'expected a header name (RFC 9110 token)')
  .refine((s) => !RULE_FORBIDDEN_HEADERS.has(s.toLowerCase()), (s) => ({ message: `${s} is a framing or hop-by-hop header: rules may not change it` }));
export const headerValue = z.string().max(8192).regex(FIELD_VALUE_RE, 'expected a header value without CR, LF, NUL or other control characters, nor leading/trailing spaces');

const one = <T extends z.ZodTypeAny>(t: T) => z.union([t, z.array(t).min(1)]).transform((v) => (Array.isArray(v) ? v : [v]) as z.output<T>[]);

/**
 * `example.com`, `*.example.com` (any depth below, not the bare name) or `www.*` (any name that
 * starts with `www.`: HAProxy's `hdr_beg(host) www.`); no port, no scheme.
 */
const hostPattern = z.string().regex(/^(?:\*\.)?[A-Za-z0-9_](?:[A-Za-z0-9_.-]*[A-Za-z0-9_])?\.?$|^[A-Za-z0-9_](?:[A-Za-z0-9_.-]*[A-Za-z0-9_])?\.\*$|^\[[0-9A-Fa-f:.]+\]$/, 'expected a host name, *.domain, prefix.* or [IPv6], without port');

export const headerCondSchema = z.object({
  /** Header name (case-insensitive). */
  name: z.string().regex(TOKEN_RE, 'expected a header name (RFC 9110 token)'),
  /** The value must equal this exactly (case-sensitive); without it, the header must be present. */
  equals: z.string().optional(),
}).strict();

const condFields = {
  /** Host header, case-insensitive, port ignored: exact names, `*.example.com` (any subdomain) or `www.*` (any name starting with www.). */
  host: one(hostPattern).optional(),
  /** The path (before `?`) starts with one of these. */
  path_prefix: one(z.string().startsWith('/')).optional(),
  /** The path (before `?`) matches this regular expression (JavaScript syntax, compiled at load). */
  path_regex: z.string().min(1).refine((s) => { try { new RegExp(s); return true; } catch { return false; } }, (s) => {
    let why = ''; try { new RegExp(s); } catch (e) { why = (e as Error).message; }
    return { message: `invalid regular expression: ${why}` };
  }).optional(),
  /** Request method, one or a list (exact, upper case). */
  method: one(z.string().regex(/^[A-Z]+$/, 'expected an upper-case method such as GET')).optional(),
  /** A header is present, or equals a value; a list is ANDed. */
  header: one(headerCondSchema).optional(),
  /** The client address is in one of these CIDR prefixes. */
  src: one(cidr).optional(),
  /** The connection is TLS (true) or plain (false). */
  tls: bool.optional(),
  /**
   * The TLS server name the client sent (SNI), case-insensitive: exact names or `*.example.com`
   * (any subdomain). Distinct from `host`: it is what the handshake asked for, not the Host header.
   * Never holds on a plain connection or without SNI. Mode tcp frontends route on it (passthrough).
   */
  sni: one(hostPattern).optional(),
};

export const condNotSchema = z.object({
  /** Host header, case-insensitive, port ignored: exact names, `*.example.com` (any subdomain) or `www.*` (any name starting with www.). */
  host: condFields.host,
  /** The path (before `?`) starts with one of these. */
  path_prefix: condFields.path_prefix,
  /** The path (before `?`) matches this regular expression (JavaScript syntax, compiled at load). */
  path_regex: condFields.path_regex,
  /** Request method, one or a list (exact, upper case). */
  method: condFields.method,
  /** A header is present, or equals a value; a list is ANDed. */
  header: condFields.header,
  /** The client address is in one of these CIDR prefixes. */
  src: condFields.src,
  /** The connection is TLS (true) or plain (false). */
  tls: condFields.tls,
  /** The TLS server name the client sent (SNI): exact names or `*.example.com`, case-insensitive. */
  sni: condFields.sni,
}).strict();

export const condSchema = z.object({
  /** Host header, case-insensitive, port ignored: exact names, `*.example.com` (any subdomain) or `www.*` (any name starting with www.). */
  host: condFields.host,
  /** The path (before `?`) starts with one of these. */
  path_prefix: condFields.path_prefix,
  /** The path (before `?`) matches this regular expression (JavaScript syntax, compiled at load). */
  path_regex: condFields.path_regex,
  /** Request method, one or a list (exact, upper case). */
  method: condFields.method,
  /** A header is present, or equals a value; a list is ANDed. */
  header: condFields.header,
  /** The client address is in one of these CIDR prefixes. */
  src: condFields.src,
  /** The connection is TLS (true) or plain (false). */
  tls: condFields.tls,
  /** The TLS server name the client sent (SNI): exact names or `*.example.com`, case-insensitive. */
  sni: condFields.sni,
  /** Conditions that must each NOT hold (same keys). */
  not: condNotSchema.optional(),
}).strict();

export const redirectSchema = z.object({
  /** Same URL with this scheme (the Host's port dropped unless `port` is given). */
  scheme: z.enum(['http', 'https']).optional(),
  /** Port for a `scheme` redirect (omitted: the scheme's default). */
  port: z.number().int().min(1).max(65535).optional(),
  /** An absolute URL or a path, sent as is (the request's path is not appended). */
  location: headerValue.refine((s) => s.length > 0, 'expected a URL').optional(),
  /** A URL or path put in front of the request's path (`https://new.example.com`, `/v2`). */
  prefix: headerValue.refine((s) => s.length > 0 && !s.endsWith('/'), 'expected a URL or path without a trailing /').optional(),
  /** 301, 302, 303, 307 or 308. */
  code: z.union([z.literal(301), z.literal(302), z.literal(303), z.literal(307), z.literal(308)]).default(302),
  /** Drop the query string (`scheme` and `prefix` keep path and query by default). */
  drop_query: bool.default(false),
}).strict().superRefine((r, ctx) => {
  const n = (r.scheme ? 1 : 0) + (r.location !== undefined ? 1 : 0) + (r.prefix !== undefined ? 1 : 0);
  if (n !== 1) ctx.addIssue({ code: z.ZodIssueCode.custom, message: 'expected exactly one of scheme, location, prefix' });
  if (r.port !== undefined && !r.scheme) ctx.addIssue({ code: z.ZodIssueCode.custom, path: ['port'], message: 'port goes with scheme' });
});

export const denySchema = z.object({
  /** Status of the refusal (4xx or 5xx). */
  status: z.number().int().min(400).max(599).default(403),
}).strict();

export const returnSchema = z.object({
  /** Status of the answer. */
  status: z.number().int().min(200).max(599),
  /** Body of the answer. */
  body: z.string().max(65536).default(''),
  /** Content-Type of the body. */
  content_type: headerValue.default('text/plain; charset=utf-8'),
}).strict();

const headerMap = z.record(z.string(), headerValue).superRefine((m, ctx) => {
  for (const k of Object.keys(m)) {
    const r = headerName.safeParse(k);
    if (!r.success) ctx.addIssue({ code: z.ZodIssueCode.custom, path: [k], message: r.error.issues[0].message });
  }
});

export const ruleSchema = z.object({
  /** Conditions, all of which must hold; omitted: always. */
  when: condSchema.optional(),
  /** Send the request to this backend (a `backends` entry or a `listen` section's pool). */
  backend: name.optional(),
  /** Answer with a redirect. */
  redirect: redirectSchema.optional(),
  /** Refuse the request (`deny: {}` is 403). */
  deny: denySchema.optional(),
  /** Answer with a fixed status and body. */
  return: returnSchema.optional(),
  /** Request headers to set (replacing any the client sent), name: value. */
  set_header: headerMap.optional(),
  /** Request headers to remove. */
  del_header: one(headerName).optional(),
  /**
   * Response headers to set, name: value. Strict-Transport-Security is only ever sent on a TLS
   * connection (RFC 6797 §7.2), whatever the rule says.
   */
  response_set_header: headerMap.optional(),
  /** Response headers to remove. */
  response_del_header: one(headerName).optional(),
}).strict().superRefine((r, ctx) => {
  const terminal = ['backend', 'redirect', 'deny', 'return'].filter((k) => (r as Record<string, unknown>)[k] !== undefined);
  if (terminal.length > 1) ctx.addIssue({ code: z.ZodIssueCode.custom, path: [terminal[1]], message: `a rule has one of backend, redirect, deny, return (also ${terminal[0]})` });
  const edits = r.set_header || r.del_header || r.response_set_header || r.response_del_header;
  if (terminal.length === 0 && !edits) ctx.addIssue({ code: z.ZodIssueCode.custom, message: 'a rule needs an action: backend, redirect, deny, return or a header edit' });
});

export type RuleConfig = z.output<typeof ruleSchema>;
export type CondConfig = z.output<typeof condSchema>;

/** True when a condition always holds (no key, or an empty `not`). */
export function unconditional(r: RuleConfig): boolean {
  const w = r.when;
  if (!w) return true;
  const keys = Object.entries(w).filter(([k, v]) => v !== undefined && k !== 'not');
  const notKeys = w.not ? Object.values(w.not).filter((v) => v !== undefined) : [];
  return keys.length === 0 && notKeys.length === 0;
}
