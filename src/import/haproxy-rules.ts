/**
 * HAProxy ACLs and conditions → pairlb rule conditions (pure; used by haproxy.ts).
 *
 * An HAProxy condition (`if a !b || { path_beg /x }`, `unless c`) is put in disjunctive normal
 * form: an OR of terms, each term an AND of literals (one criterion, maybe negated). Each term
 * becomes one pairlb rule `when` (its keys ANDed, the negated ones under `when.not`), so a rule
 * whose condition has two terms becomes two rules with the same action. An ACL declared on several
 * lines is the OR of its lines (HAProxy configuration.txt §7.2), and the values of one line are
 * ORed too (a `host` list).
 */

export type CondKey = 'host' | 'path_prefix' | 'path_regex' | 'method' | 'header' | 'src' | 'tls';
export interface HeaderCond { name: string; equals?: string }
/** One criterion: `values` is a list (host, path_prefix, method, src), a regex, headers or a flag. */
export interface Lit { key: CondKey; values: string[] | HeaderCond[] | boolean; neg: boolean; note?: string }
export type Term = Lit[];
export type Dnf = Term[];

/** More terms than this after expanding a condition: not imported (the output would be unreadable). */
export const MAX_TERMS = 16;

/**
 * Words of an HAProxy line with its quoting: "…" and '…' group; a backslash escapes a space, a
 * quote, `#` or a backslash, and is kept before anything else (`path_reg \.css$` keeps its regex).
 */
export function haproxyWords(text: string): string[] {
  const out: string[] = [];
  let cur = '';
  let has = false;
  let q: string | null = null;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (c === '\\' && i + 1 < text.length && q !== "'" && ' \t"\'#\\'.includes(text[i + 1])) { cur += text[++i]; has = true; continue; }
    if (q) { if (c === q) q = null; else cur += c; continue; }
    if (c === '"' || c === "'") { q = c; has = true; continue; }
    if (c === ' ' || c === '\t') { if (has) { out.push(cur); cur = ''; has = false; } continue; }
    cur += c; has = true;
  }
  if (has) out.push(cur);
  return out;
}

const escapeRe = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
const HOST_RE = /^[A-Za-z0-9_](?:[A-Za-z0-9_.-]*[A-Za-z0-9_])?$/;
const TOKEN_RE = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;

/** Built-in ACLs (configuration.txt §7.4) that have a pairlb equivalent. */
const PREDEFINED: Record<string, Dnf> = {
  TRUE: [[]],
  FALSE: [],
  LOCALHOST: [[{ key: 'src', values: ['127.0.0.0/8', '::1/128'], neg: false }]],
  METH_GET: [[{ key: 'method', values: ['GET', 'HEAD'], neg: false }]],
  METH_HEAD: [[{ key: 'method', values: ['HEAD'], neg: false }]],
  METH_POST: [[{ key: 'method', values: ['POST'], neg: false }]],
  METH_PUT: [[{ key: 'method', values: ['PUT'], neg: false }]],
  METH_DELETE: [[{ key: 'method', values: ['DELETE'], neg: false }]],
  METH_OPTIONS: [[{ key: 'method', values: ['OPTIONS'], neg: false }]],
  METH_CONNECT: [[{ key: 'method', values: ['CONNECT'], neg: false }]],
  METH_TRACE: [[{ key: 'method', values: ['TRACE'], neg: false }]],
};

/** A bare address is one host (/32, /128). */
function cidrOf(v: string): string | undefined {
  if (/^\d{1,3}(\.\d{1,3}){3}(\/\d{1,2})?$/.test(v)) return v.includes('/') ? v : `${v}/32`;
  if (/^[0-9A-Fa-f:]+:[0-9A-Fa-f:.]*(\/\d{1,3})?$/.test(v)) return v.includes('/') ? v : `${v}/128`;
  return undefined;
}

/**
 * One criterion with its flags and values (`hdr(host) -i a b`, `path_beg /x`, `src 10.0.0.0/8`,
 * `ssl_fc`) → a literal, or why it cannot be one.
 */
export function criterion(words: string[]): { lit: Lit } | { why: string } {
  const [fetch0, ...rest] = words;
  if (!fetch0) return { why: 'empty condition' };
  let ci = false;
  let match: string | undefined;
  const values: string[] = [];
  for (let i = 0; i < rest.length; i++) {
    const w = rest[i];
    if (values.length === 0 && w.startsWith('-') && w !== '-') {
      if (w === '-i') { ci = true; continue; }
      if (w === '-m') { match = rest[++i]; continue; }
      if (w === '--') { values.push(...rest.slice(i + 1)); break; }
      if (w === '-f' || w === '-M') return { why: `${w} (patterns from a file) has no pairlb equivalent: list the values in the rule` };
      return { why: `match flag ${w} has no pairlb equivalent` };
    }
    values.push(w);
  }
  // Converters (`hdr(host),lower`) and fetch arguments beyond the header name are not followed.
  const fetch = fetch0.replace(/^req\./, '');
  if (fetch.includes(',')) {
    const [f, ...conv] = fetch.split(',');
    if (!(conv.length === 1 && conv[0] === 'lower' && /^hdr\(host\)$/i.test(f))) return { why: `converters (${conv.join(',')}) have no pairlb equivalent` };
    return criterion([f, '-i', ...rest]);
  }
  const hdr = /^hdr(?:_(beg|end|dom|reg|sub|len|cnt|ip|val))?\(([^,)]+)(?:,[^)]*)?\)$/i.exec(fetch);
  const kind = match ?? (hdr ? hdr[1] : undefined);
  if (hdr && hdr[2].toLowerCase() === 'host') {
    const m = (kind ?? 'str').toLowerCase();
    if (!values.length) return m === 'found' ? { lit: { key: 'header', values: [{ name: 'Host' }], neg: false } } : { why: 'no value to compare the Host with' };
    const names: string[] = [];
    for (const v0 of values) {
      const v = v0.toLowerCase().replace(/\.$/, '');
      if (m === 'str') { if (!HOST_RE.test(v)) return { why: `${v0} is not a host name (pairlb compares the Host without its port)` }; names.push(v); }
      else if (m === 'end') {
        // `.example.com` = every name below; `example.com` also matches `myexample.com` in HAProxy.
        const d = v.replace(/^\./, '');
        if (!HOST_RE.test(d)) return { why: `${v0}: pairlb matches a host name or *.domain` };
        if (v.startsWith('.')) names.push(`*.${d}`); else names.push(d, `*.${d}`);
      } else if (m === 'dom') {
        if (!HOST_RE.test(v)) return { why: `${v0}: pairlb matches a host name or *.domain` };
        names.push(v, `*.${v}`);
      } else if (m === 'beg') {
        // `www.` = any name starting with www.: pairlb's `www.*` pattern.
        const p = v0.toLowerCase().replace(/\.$/, '');
        if (!v0.endsWith('.') || !HOST_RE.test(p)) return { why: `hdr_beg(host) ${v0}: pairlb matches a name prefix that ends with a dot (www. → www.*)` };
        names.push(`${p}.*`);
      } else return { why: `hdr_${m}(host) has no pairlb equivalent (pairlb matches host names, *.domain and prefix.*)` };
    }
    const note = m === 'end' && values.some((v) => !v.startsWith('.')) ? 'hdr_end(host) without a leading dot: written as the name and *.name (HAProxy also matched names that merely end with it)' : undefined;
    return { lit: { key: 'host', values: names, neg: false, note } };
  }
  if (hdr) {
    const name = hdr[2];
    if (!TOKEN_RE.test(name)) return { why: `${name} is not a header name` };
    const m = (kind ?? 'str').toLowerCase();
    if (m === 'found' && !values.length) return { lit: { key: 'header', values: [{ name }], neg: false } };
    if (m === 'str' && values.length === 1 && (!ci || !/[A-Za-z]/.test(values[0]))) return { lit: { key: 'header', values: [{ name, equals: values[0] }], neg: false } };
    return { why: `hdr(${name}) ${match ? `-m ${match} ` : ''}${ci ? '-i ' : ''}with ${values.length} value(s): pairlb compares one header with one exact value (or presence)` };
  }
  switch (fetch) {
    case 'path_beg': case 'url_beg': case 'path': case 'path_end': case 'path_reg': case 'url_reg': case 'path_dir': case 'path_sub': {
      if (!values.length) return { why: 'no value' };
      if (ci) return { why: `${fetch} -i: pairlb compares paths case-sensitively` };
      if (fetch === 'path_beg' || fetch === 'url_beg') {
        if (!values.every((v) => v.startsWith('/'))) return { why: `${fetch}: pairlb path prefixes start with /` };
        return { lit: { key: 'path_prefix', values, neg: false } };
      }
      let re: string;
      if (fetch === 'path') re = values.length === 1 ? `^${escapeRe(values[0])}$` : `^(?:${values.map(escapeRe).join('|')})$`;
      else if (fetch === 'path_end') re = `(?:${values.map(escapeRe).join('|')})$`;
      else if (fetch === 'path_sub') re = values.map(escapeRe).join('|');
      else if (fetch === 'path_dir') re = `(?:^|/)(?:${values.map(escapeRe).join('|')})(?:/|$)`;
      else {
        if (fetch === 'url_reg') return { why: 'url_reg matches the query string too: pairlb regexes see the path only' };
        re = values.length === 1 ? values[0] : values.map((v) => `(?:${v})`).join('|');
      }
      try { new RegExp(re); } catch (e) { return { why: `not a JavaScript regular expression: ${(e as Error).message}` }; }
      return { lit: { key: 'path_regex', values: [re], neg: false } };
    }
    case 'method':
      if (!values.length || !values.every((v) => /^[A-Za-z]+$/.test(v))) return { why: 'expected method names' };
      return { lit: { key: 'method', values: values.map((v) => v.toUpperCase()), neg: false } };
    case 'src': {
      const c = values.map(cidrOf);
      if (!values.length || c.some((x) => x === undefined)) return { why: 'src: expected addresses or CIDR prefixes (no files, no names)' };
      return { lit: { key: 'src', values: c as string[], neg: false } };
    }
    case 'ssl_fc':
      if (values.length) return { why: 'ssl_fc takes no value' };
      return { lit: { key: 'tls', values: true, neg: false } };
    default:
      return { why: `${fetch0}: pairlb rules match host, path prefix/regex, method, header, source address and TLS only` };
  }
}

function negLit(l: Lit): Lit {
  // tls is a flag: its negation is the other value, kept positive (simpler output).
  if (l.key === 'tls') return { ...l, values: !(l.values as boolean), neg: l.neg };
  return { ...l, neg: !l.neg };
}

function and(a: Dnf, b: Dnf): Dnf {
  const out: Dnf = [];
  for (const x of a) for (const y of b) out.push([...x, ...y]);
  return out;
}

/** NOT of a DNF, as a DNF (De Morgan, expanded). */
export function negate(d: Dnf): Dnf {
  let out: Dnf = [[]];
  for (const t of d) {
    out = and(out, t.map((l) => [negLit(l)]));
    if (out.length > MAX_TERMS * 4) return out;
  }
  return out;
}

export class AclTable {
  private readonly acls = new Map<string, { lits: Lit[]; why?: string }>();

  /** `acl NAME CRITERION…` (words after `acl`). Returns why the line cannot be used, if so. */
  add(words: string[]): string | undefined {
    const [name, ...crit] = words;
    if (!name) return 'acl without a name';
    const e = this.acls.get(name) ?? { lits: [] };
    this.acls.set(name, e);
    const r = criterion(crit);
    if ('why' in r) { e.why ??= r.why; return r.why; }
    e.lits.push(r.lit);
    return undefined;
  }

  /** An ACL by name as a DNF (its lines ORed), or why it cannot be used. */
  ref(name: string): { dnf: Dnf } | { why: string } {
    const p = PREDEFINED[name];
    if (p) return { dnf: p };
    const e = this.acls.get(name);
    if (!e) return { why: `ACL ${name} is not declared in this section` };
    if (e.why) return { why: `ACL ${name}: ${e.why}` };
    return { dnf: e.lits.map((l) => [l]) };
  }
}

/**
 * `if COND` / `unless COND` (the words from the keyword on) → DNF. Without a keyword: always.
 * Anonymous ACLs `{ criterion … }` and `!` before a name or a `{` are understood; `||` / `or` ORs.
 */
export function condition(words: string[], acls: AclTable): { dnf: Dnf } | { why: string } {
  if (!words.length) return { dnf: [[]] };
  const kw = words[0];
  if (kw !== 'if' && kw !== 'unless') return { why: `expected if/unless, not ${kw}` };
  const groups: Dnf[] = [];
  let cur: Dnf = [[]];
  for (let i = 1; i < words.length; i++) {
    let w = words[i];
    if (w === '||' || w === 'or') { groups.push(cur); cur = [[]]; continue; }
    let neg = false;
    if (w === '!') { neg = true; w = words[++i] ?? ''; } else if (w.startsWith('!')) { neg = true; w = w.slice(1); }
    let d: Dnf;
    if (w === '{' || w.startsWith('{')) {
      const inner: string[] = [];
      if (w.length > 1) inner.push(w.slice(1));
      while (i + 1 < words.length && words[i + 1] !== '}') inner.push(words[++i]);
      if (words[i + 1] !== '}') return { why: 'unclosed { in the condition' };
      i++;
      const r = criterion(inner);
      if ('why' in r) return { why: r.why };
      d = [[r.lit]];
    } else {
      const r = acls.ref(w);
      if ('why' in r) return { why: r.why };
      d = r.dnf;
    }
    cur = and(cur, neg ? negate(d) : d);
    if (cur.length > MAX_TERMS) return { why: `the condition expands to more than ${MAX_TERMS} pairlb rules` };
  }
  groups.push(cur);
  let dnf = groups.flat();
  if (kw === 'unless') dnf = negate(dnf);
  if (dnf.length > MAX_TERMS) return { why: `the condition expands to more than ${MAX_TERMS} pairlb rules` };
  return { dnf };
}

/**
 * A term → a pairlb `when` object, or null when the term can never hold (`tls: true` and
 * `tls: false`, or `tls` against the bind's own kind), or why it cannot be written. `tls` is the
 * frontend's bind kind: a `tls` literal is then known and dropped (or kills the term).
 */
export function whenOf(t: Term, tls?: boolean): { when: Record<string, unknown> | undefined; notes: string[] } | null | { why: string } {
  const pos: Record<string, unknown> = {};
  const neg: Record<string, unknown> = {};
  const notes: string[] = [];
  for (const l of t) {
    if (l.note && !notes.includes(l.note)) notes.push(l.note);
    if (l.key === 'tls') {
      const v = l.neg ? !(l.values as boolean) : l.values as boolean;
      if (tls !== undefined) { if (v !== tls) return null; continue; }
      if (pos.tls !== undefined && pos.tls !== v) return null;
      pos.tls = v;
      continue;
    }
    const into = l.neg ? neg : pos;
    const have = into[l.key];
    if (have === undefined) { into[l.key] = Array.isArray(l.values) ? [...l.values] : l.values; continue; }
    if (l.key === 'header') {
      // Headers under `when` are ANDed (fine); under `not`, a list is NOT(a AND b), not NOT a AND NOT b.
      if (l.neg) return { why: 'two negated header conditions in one rule have no pairlb equivalent' };
      (have as HeaderCond[]).push(...(l.values as HeaderCond[]));
      continue;
    }
    if (l.neg) {
      // NOT a AND NOT b = NOT (a OR b): one list under `not`.
      if (l.key === 'path_regex') into[l.key] = [`(?:${(have as string[])[0]})|(?:${(l.values as string[])[0]})`];
      else into[l.key] = [...new Set([...(have as string[]), ...(l.values as string[])])];
      continue;
    }
    // a AND b of the same criterion: one list is enough when they agree.
    const a = have as string[], b = l.values as string[];
    if (a.length === b.length && a.every((x, i) => x === b[i])) continue;
    if (l.key === 'host' || l.key === 'method') {
      const both = a.filter((x) => b.includes(x));
      if (both.length === 0) return null;
      if (!both.some((x) => x.includes('*')) && !a.some((x) => x.includes('*')) && !b.some((x) => x.includes('*'))) { into[l.key] = both; continue; }
    }
    return { why: `two ${l.key} conditions ANDed in one rule have no pairlb equivalent` };
  }
  const when: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(pos)) when[k] = unlist(k, v);
  if (Object.keys(neg).length) when.not = Object.fromEntries(Object.entries(neg).map(([k, v]) => [k, unlist(k, v)]));
  return { when: Object.keys(when).length ? when : undefined, notes };
}

/** One-element lists written as the element (the schema takes both), path_regex always one string. */
function unlist(k: string, v: unknown): unknown {
  if (k === 'path_regex') return (v as string[])[0];
  if (Array.isArray(v) && v.length === 1) return v[0];
  return v;
}

/** A DNF on a bind whose kind is known: terms needing the other kind go, `tls` literals drop out. */
export function fixTls(d: Dnf, tls: boolean): Dnf {
  const out: Dnf = [];
  for (const t of d) {
    let ok = true;
    const nt: Term = [];
    for (const l of t) {
      if (l.key !== 'tls') { nt.push(l); continue; }
      const v = l.neg ? !(l.values as boolean) : l.values as boolean;
      if (v !== tls) { ok = false; break; }
    }
    if (ok) out.push(nt);
  }
  return out;
}

const litKey = (l: Lit): string => JSON.stringify([l.key, l.neg, l.values]);

/** Does every request matching term `t` match `d` (some term of d has only literals that t has)? */
export function implies(t: Term, d: Dnf): boolean {
  const have = new Set(t.map(litKey));
  return d.some((x) => x.every((l) => have.has(litKey(l))));
}
