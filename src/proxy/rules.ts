import type { RuleConfig, CondConfig } from '../config/rules.js';
import { SourceFilter } from '../config/cidr.js';
import type { Pool } from './pool.js';
import { localPage, type ErrorPage } from './error-pages.js';

/** The connection's TLS flag is src/tls/flag.ts's isTls (one property read). */

/**
 * A frontend's rules compiled once per config load (docs/sites.md): conditions become a list of
 * predicates over a MatchInput, header edits become flat arrays, answers (deny, return) become
 * prebuilt pages. The hot path runs `match()` only for a frontend that has rules; a frontend
 * without rules (every listen section) never builds a MatchInput.
 */

/** What conditions read, built once per request (only on frontends with rules). */
export interface MatchInput {
  readonly method: string;
  /** Path without the query. */
  readonly path: string;
  /** Host header lower-cased, port and trailing dot removed; '' when absent. */
  readonly host: string;
  /** The request's raw header list [name, value…]. */
  readonly raw: readonly string[];
  readonly ip: string;
  readonly tls: boolean;
  /** TLS server name (SNI) lower-cased without a trailing dot; '' on plain connections or without SNI. */
  readonly sni: string;
}

export enum Action { Backend = 0, Redirect = 1, Deny = 2, Return = 3 }

/**
 * `T`: what a `backend` action names — an HTTP Pool (frontends in mode http), or a server group
 * index (mode tcp, src/l4/tcp.ts): one rule engine, whatever the frontend routes to.
 */
export interface CompiledRule<T = Pool> {
  /** Index in the frontend's `rules` (access log, tests). */
  readonly index: number;
  readonly test: (m: MatchInput) => boolean;
  readonly action: Action;
  /** Action Backend: the rule's pool, or the frontend's default (undefined: none, 404). */
  readonly pool: T | undefined;
  /** Request edits: lower-cased names to remove (set and del), then [name, value…] to add. */
  readonly reqDel: readonly string[] | null;
  readonly reqAdd: readonly string[] | null;
  /** Response edits, likewise; `resAddTls` only on TLS connections (HSTS, RFC 6797 §7.2). */
  readonly resDel: readonly string[] | null;
  readonly resAdd: readonly string[] | null;
  readonly resAddTls: readonly string[] | null;
  /** Deny / Return: the answer. */
  readonly page: ErrorPage | undefined;
  /** Redirect. */
  readonly redirect: Readonly<{ code: number; scheme: string | null; port: string; location: string | null; prefix: string | null; dropQuery: boolean }> | undefined;
}

type Pred = (m: MatchInput) => boolean;

/** Exact names, `*.domain` suffixes and `prefix.*` prefixes of a host / sni condition, lower-cased once. */
function namePatterns(list: readonly string[]): { exact: Set<string>; suffixes: string[]; prefixes: string[] } {
  const exact = new Set<string>();
  const suffixes: string[] = [];
  const prefixes: string[] = [];
  for (const h of list) {
    const v = h.toLowerCase().replace(/\.$/, '');
    if (v.startsWith('*.')) suffixes.push(v.slice(1));
    else if (v.endsWith('.*')) prefixes.push(v.slice(0, -1));
    else exact.add(v);
  }
  return { exact, suffixes, prefixes };
}

function nameMatch(exact: Set<string>, suffixes: readonly string[], prefixes: readonly string[], n: string): boolean {
  if (exact.has(n)) return true;
  for (const s of suffixes) if (n.length > s.length && n.endsWith(s)) return true;
  for (const p of prefixes) if (n.length > p.length && n.startsWith(p)) return true;
  return false;
}

function hostPred(list: readonly string[]): Pred {
  const { exact, suffixes, prefixes } = namePatterns(list);
  return (m) => nameMatch(exact, suffixes, prefixes, m.host);
}

function sniPred(list: readonly string[]): Pred {
  const { exact, suffixes, prefixes } = namePatterns(list);
  return (m) => m.sni !== '' && nameMatch(exact, suffixes, prefixes, m.sni);
}

/** SNI for matching: lower case, no trailing dot; '' without one (`false` from node:tls). */
export function matchSni(v: string | false | undefined | null): string {
  if (typeof v !== 'string' || v === '') return '';
  const n = v.endsWith('.') ? v.slice(0, -1) : v;
  return n.toLowerCase();
}

function headerPred(h: { name: string; equals?: string }): Pred {
  const n = h.name.toLowerCase();
  const len = n.length;
  const eq = h.equals;
  return (m) => {
    const raw = m.raw;
    for (let i = 0; i < raw.length; i += 2) {
      const k = raw[i];
      if (k.length === len && k.toLowerCase() === n && (eq === undefined || raw[i + 1] === eq)) return true;
    }
    return false;
  };
}

function srcPred(f: SourceFilter): Pred {
  return (m) => f.admits(m.ip);
}

function preds(c: Omit<CondConfig, 'not'>): Pred[] {
  const out: Pred[] = [];
  if (c.host) out.push(hostPred(c.host));
  if (c.path_prefix) {
    const list = c.path_prefix;
    out.push(list.length === 1 ? ((p) => (m: MatchInput) => m.path.startsWith(p))(list[0]) : (m) => list.some((p) => m.path.startsWith(p)));
  }
  if (c.path_regex) { const re = new RegExp(c.path_regex); out.push((m) => re.test(m.path)); }
  if (c.method) { const set = new Set(c.method); out.push((m) => set.has(m.method)); }
  if (c.header) for (const h of c.header) out.push(headerPred(h));
  if (c.src) out.push(srcPred(new SourceFilter(c.src, [])));
  if (c.tls !== undefined) { const want = c.tls; out.push((m) => m.tls === want); }
  if (c.sni) out.push(sniPred(c.sni));
  return out;
}

function compileCond(w: CondConfig | undefined): (m: MatchInput) => boolean {
  if (!w) return () => true;
  const { not, ...pos } = w;
  const all = preds(pos);
  if (not) for (const p of preds(not)) all.push((m) => !p(m));
  if (all.length === 0) return () => true;
  if (all.length === 1) return all[0];
  return (m) => { for (const p of all) if (!p(m)) return false; return true; };
}

function flat(m: Record<string, string> | undefined, skip?: (lower: string) => boolean): string[] | null {
  if (!m) return null;
  const out: string[] = [];
  for (const [k, v] of Object.entries(m)) if (!skip || !skip(k.toLowerCase())) out.push(k, v);
  return out.length ? out : null;
}

function dels(names: readonly string[] | undefined, set: Record<string, string> | undefined): string[] | null {
  const out = new Set<string>();
  for (const n of names ?? []) out.add(n.toLowerCase());
  for (const n of Object.keys(set ?? {})) out.add(n.toLowerCase());
  return out.size ? [...out] : null;
}

const STS = 'strict-transport-security';

/** `pools`: the pools by name (validated: every name a rule gives exists). */
export function compileRules<T = Pool>(rules: readonly RuleConfig[], defaultPool: T | undefined, pools: ReadonlyMap<string, T>): CompiledRule<T>[] {
  return rules.map((r, index): CompiledRule<T> => {
    const action = r.redirect ? Action.Redirect : r.deny ? Action.Deny : r.return ? Action.Return : Action.Backend;
    const rd = r.redirect;
    return {
      index,
      test: compileCond(r.when),
      action,
      pool: r.backend !== undefined ? pools.get(r.backend) : defaultPool,
      reqDel: dels(r.del_header, r.set_header),
      reqAdd: flat(r.set_header),
      resDel: dels(r.response_del_header, r.response_set_header),
      resAdd: flat(r.response_set_header, (k) => k === STS),
      resAddTls: r.response_set_header && Object.keys(r.response_set_header).some((k) => k.toLowerCase() === STS)
        ? flat(Object.fromEntries(Object.entries(r.response_set_header).filter(([k]) => k.toLowerCase() === STS))) : null,
      page: r.deny ? localPage(r.deny.status) : r.return ? localPage(r.return.status, r.return.body, r.return.content_type) : undefined,
      redirect: rd ? {
        code: rd.code, scheme: rd.scheme ?? null, port: rd.port !== undefined ? ':' + rd.port : '',
        location: rd.location ?? null, prefix: rd.prefix ?? null, dropQuery: rd.drop_query,
      } : undefined,
    };
  });
}

/** First rule whose condition holds, or undefined. */
export function matchRule<T>(rules: readonly CompiledRule<T>[], m: MatchInput): CompiledRule<T> | undefined {
  for (let i = 0; i < rules.length; i++) if (rules[i].test(m)) return rules[i];
  return undefined;
}

/** Host for matching: lower case, no port, no trailing dot (`Example.COM.:8080` → `example.com`). */
export function matchHost(v: string | undefined): string {
  if (v === undefined || v === '') return '';
  let h = v;
  if (h.charCodeAt(0) === 91 /* [ */) { const e = h.indexOf(']'); h = e > 0 ? h.slice(0, e + 1) : h; }
  else { const c = h.indexOf(':'); if (c >= 0) h = h.slice(0, c); }
  if (h.endsWith('.')) h = h.slice(0, -1);
  return h.toLowerCase();
}

/** Apply request edits to an outgoing header list in place. */
export function editHeaders(headers: string[], del: readonly string[] | null, add: readonly string[] | null): void {
  if (del !== null) {
    for (let i = headers.length - 2; i >= 0; i -= 2) if (del.includes(headers[i].toLowerCase())) headers.splice(i, 2);
  }
  if (add !== null) for (let i = 0; i < add.length; i++) headers.push(add[i]);
}

/** The Location of a redirect rule for this request (`target`: origin-form path with query). */
export function redirectLocation(r: NonNullable<CompiledRule['redirect']>, host: string | undefined, target: string): string {
  if (r.location !== null) return r.location;
  let t = target;
  if (r.dropQuery) { const q = t.indexOf('?'); if (q >= 0) t = t.slice(0, q); }
  if (r.prefix !== null) return r.prefix + t;
  let h = host ?? '';
  if (h.charCodeAt(0) === 91) { const e = h.indexOf(']'); h = h.slice(0, e + 1); }
  else { const c = h.indexOf(':'); if (c >= 0) h = h.slice(0, c); }
  return `${r.scheme}://${h}${r.port}${t}`;
}
