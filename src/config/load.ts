import { readFileSync } from 'node:fs';
import { LineCounter, parseDocument, isMap, isScalar, isSeq, type Node as YamlNode } from 'yaml';
import type { ZodIssue } from 'zod';
import { configSchema, type Config } from './schema.js';
import type { PreflightProblem } from './preflight.js';
import { findMisindentedKey } from './indent.js';
import { ConfigError } from '../errors.js';

/**
 * YAML text → validated, deeply frozen Config.
 * Every problem (YAML syntax and schema) is collected and reported at once, each with its key path
 * and line: `listen[0].backends[1].address: expected host:port (line 14)`.
 */

export interface ConfigProblem { path: string; message: string; line?: number }

export function formatPath(path: (string | number)[]): string {
  let s = '';
  for (const p of path) s += typeof p === 'number' ? `[${p}]` : (s ? '.' : '') + p;
  return s || '(root)';
}

function nodeAt(doc: ReturnType<typeof parseDocument>, path: (string | number)[]): { node?: YamlNode; keyNode?: YamlNode } {
  let cur: unknown = doc.contents;
  let keyNode: YamlNode | undefined;
  for (const p of path) {
    if (isMap(cur)) {
      const pair = cur.items.find((it) => (it.key as { value?: unknown } | null)?.value === p);
      if (!pair) return { node: cur as YamlNode, keyNode };
      keyNode = pair.key as YamlNode;
      cur = pair.value;
    } else if (isSeq(cur) && typeof p === 'number') {
      const item = cur.items[p];
      if (!item) return { node: cur as YamlNode, keyNode };
      cur = item; keyNode = undefined;
    } else break;
  }
  return { node: cur as YamlNode, keyNode };
}

/** Is every key of `path` in the YAML (not filled in by a default)? */
function written(doc: ReturnType<typeof parseDocument>, path: (string | number)[]): boolean {
  let cur: unknown = doc.contents;
  for (const p of path) {
    if (isMap(cur)) {
      const pair = cur.items.find((it) => (it.key as { value?: unknown } | null)?.value === p);
      if (!pair) return false;
      cur = pair.value;
    } else if (isSeq(cur) && typeof p === 'number' && cur.items[p]) cur = cur.items[p];
    else return false;
  }
  return true;
}

function issueToProblems(issue: ZodIssue, doc: ReturnType<typeof parseDocument>, lc: LineCounter): ConfigProblem[] {
  if (issue.code === 'unrecognized_keys') {
    return issue.keys.map((k) => {
      const path = [...issue.path, k];
      const { keyNode } = nodeAt(doc, path);
      const off = keyNode?.range?.[0];
      return { path: formatPath(path), message: 'unknown key', line: off !== undefined ? lc.linePos(off).line : undefined };
    });
  }
  if (issue.code === 'invalid_union') {
    // Prefer the most specific message from the union branches.
    const inner = issue.unionErrors.flatMap((e) => e.issues).find((i) => i.code === 'custom') ?? issue.unionErrors[0]?.issues[0];
    if (inner) return issueToProblems({ ...inner, path: issue.path.concat(inner.path.slice(issue.path.length)) }, doc, lc);
  }
  const moved = issue.code === 'custom' ? writtenKeyFor(doc, issue.path, issue.message) : undefined;
  if (moved) issue = { ...issue, path: moved.path, message: `${issue.message} (${formatPath(issue.path)} was not written: its default applies)` };
  const { node, keyNode } = nodeAt(doc, issue.path);
  const off = (node?.range?.[0]) ?? keyNode?.range?.[0];
  const message = issue.code === 'invalid_type' && issue.received === 'undefined' ? 'required key is missing' : bareNumberHint(node, issue.message);
  return [{ path: formatPath(issue.path), message, line: off !== undefined ? lc.linePos(off).line : undefined }];
}

/**
 * A cross-key check failed on a key the user never wrote (its default), e.g. `deadtime: 5` refused
 * as `garp.probe_timeout (60 ms) must be shorter than deadtime (5 ms)`: name the key they did write.
 * That is a key the message names as `key (`, written in the YAML in the same section or an
 * enclosing one (nearest first). Undefined when the issue's own key was written, or none matches.
 */
function writtenKeyFor(doc: ReturnType<typeof parseDocument>, path: (string | number)[], message: string): { path: (string | number)[] } | undefined {
  if (written(doc, path)) return undefined;
  for (let n = path.length - 1; n >= 0; n--) {
    const parent = path.slice(0, n);
    if (!written(doc, parent)) continue;
    const { node } = nodeAt(doc, parent);
    if (!isMap(node)) continue;
    for (const it of node.items) {
      const k = (it.key as { value?: unknown } | null)?.value;
      if (typeof k === 'string' && k !== path[n] && message.includes(`${k} (`) && isScalar(it.value)) return { path: [...parent, k] };
    }
  }
  return undefined;
}

/**
 * `deadtime: 5` is 5 ms (a bare number in a duration is milliseconds); heartbeat's ha.cf meant
 * seconds. When the value the user wrote as a bare number is refused, and the message quotes it
 * as milliseconds (`(5 ms)`, `(got 5)`), ask whether seconds were meant.
 */
function bareNumberHint(node: YamlNode | undefined, message: string): string {
  if (!isScalar(node) || typeof node.value !== 'number' || !Number.isInteger(node.value) || node.value <= 0) return message;
  const v = node.value;
  if (!message.includes(`(${v} ms)`) && !message.includes(`(got ${v})`)) return message;
  return `${message}; did you mean ${v}s? (a bare number is milliseconds)`;
}

/**
 * `extra`: checks beyond the schema on the valid config (files, interfaces: config/preflight.ts),
 * reported like schema errors, with the line of the key.
 */
export function parseConfig(text: string, file = '<config>', extra?: (cfg: Config) => PreflightProblem[]): Config {
  const lc = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lc, prettyErrors: false, uniqueKeys: true });
  const problems: ConfigProblem[] = [];
  // A misindented key makes the parser report one or two errors, often on the line above it:
  // report the key instead, once (config/indent.ts).
  const indent = doc.errors.length ? findMisindentedKey(text) : undefined;
  if (indent) problems.push({ path: '(yaml)', message: indent.message, line: indent.line });
  else {
    for (const e of doc.errors) {
      const line = e.linePos?.[0]?.line ?? (e.pos ? lc.linePos(e.pos[0]).line : undefined);
      // One line per source line: the parser often reports the same spot twice.
      if (!problems.some((p) => p.line === line)) problems.push({ path: '(yaml)', message: e.message.split('\n')[0], line });
    }
  }
  if (problems.length) throw new ConfigError(file, problems);
  const raw = doc.toJS({ maxAliasCount: 100 }) ?? {};
  const res = configSchema.safeParse(raw);
  if (!res.success) {
    for (const issue of res.error.issues) problems.push(...issueToProblems(issue, doc, lc));
    throw new ConfigError(file, problems);
  }
  const cfg = deepFreeze(res.data);
  for (const p of extra?.(cfg) ?? []) {
    const { node, keyNode } = nodeAt(doc, p.path);
    const off = keyNode?.range?.[0] ?? node?.range?.[0];
    problems.push({ path: formatPath(p.path), message: p.message, line: off !== undefined ? lc.linePos(off).line : undefined });
  }
  if (problems.length) throw new ConfigError(file, problems);
  return cfg;
}

export function loadConfigFile(file: string, extra?: (cfg: Config) => PreflightProblem[]): Config {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw new ConfigError(file, [{ path: '(file)', message: (e as Error).message }]);
  }
  return parseConfig(text, file, extra);
}

export function deepFreeze<T>(o: T): T {
  if (o && typeof o === 'object' && !Object.isFrozen(o)) {
    Object.freeze(o);
    for (const v of Object.values(o as object)) deepFreeze(v);
  }
  return o;
}
