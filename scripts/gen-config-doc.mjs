#!/usr/bin/env node
/**
 * Generates docs/configuration.md from the zod schema (src/config/schema.ts and the sub-schemas it
 * imports), so the manual cannot drift from what `pairlb check` accepts:
 *
 *   - keys, types, constraints and defaults come from the schema objects themselves;
 *   - the description of a key is its `/** … *\/` comment in the schema source (found with the
 *     TypeScript parser) unless docs/configuration.keys.yaml gives a `text`;
 *   - docs/configuration.keys.yaml adds examples and caveats (and text where the source has none).
 *
 * test/daemon/config-doc.test.ts fails when a key has no description, when keys.yaml names a key the
 * schema does not have, when an example does not validate, or when docs/configuration.md is not what
 * this script generates.
 *
 * Usage (after `npm run build`, the schema is read from dist/):
 *   node scripts/gen-config-doc.mjs           rewrite docs/configuration.md
 *   node scripts/gen-config-doc.mjs --check   exit 1 if docs/configuration.md is stale
 */
import { readFileSync, writeFileSync, readdirSync, statSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { createRequire } from 'node:module';
import YAML from 'yaml';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
export const DOC_FILE = join(ROOT, 'docs/configuration.md');
export const KEYS_FILE = join(ROOT, 'docs/configuration.keys.yaml');

// ---------------------------------------------------------------------------------------------
// 1. Walk the schema

/**
 * Flattens a zod schema into one entry per key, depth first, in declaration order.
 * `named` maps shared building blocks (duration, hostPort, name) to the type name the manual uses,
 * by object identity, so `duration.default('2s')` reads "duration", not "number or string".
 * Entry: { path, segs, kind: 'section'|'list'|'value', type, hasDefault, default, optional,
 *          constraints: string[], keys?: string[] (sections), refined: bool }
 */
export function walkSchema(schema, named = new Map()) {
  const out = [];
  visit(schema, [], out, named, true);
  return out;
}

function unwrap(s, named) {
  const info = { hasDefault: false, default: undefined, optional: false, refined: false, label: undefined };
  for (let guard = 0; guard < 50; guard++) {
    if (named.has(s)) { info.label = named.get(s); info.inner = s; }
    const t = s._def.typeName;
    if (t === 'ZodDefault') { if (!info.hasDefault) { info.hasDefault = true; info.default = s._def.defaultValue(); } s = s._def.innerType; continue; }
    if (t === 'ZodOptional' || t === 'ZodNullable') { info.optional = true; s = s._def.innerType; continue; }
    if (t === 'ZodEffects' && !info.label && isDurationLike(s)) { info.label = 'duration'; info.inner = s; info.durationMin = durationMin(s); }
    if (t === 'ZodEffects') { if (!info.label) info.refined = true; s = s._def.schema; continue; }
    if (t === 'ZodBranded' || t === 'ZodReadonly' || t === 'ZodCatch') { s = s._def.type ?? s._def.innerType; continue; }
    if (t === 'ZodPipeline') { s = s._def.in; continue; }
    if (t === 'ZodLazy') { s = s._def.getter(); continue; }
    break;
  }
  return { s, info };
}

/**
 * Durations are built by a factory (durationAtLeast(min)), so identity is not enough: a transform
 * over `number | string` that accepts "1s" and returns 1000 is a duration.
 */
function isDurationLike(s) {
  const inner = s._def.schema;
  if (s._def.effect?.type !== 'transform' || inner?._def.typeName !== 'ZodUnion') return false;
  const kinds = inner._def.options.map((o) => o._def.typeName).sort().join(',');
  if (kinds !== 'ZodNumber,ZodString') return false;
  const r = s.safeParse('1h');
  return r.success && r.data === 3_600_000;
}

/** Smallest accepted value among a few probes (the factory's `min` lives in a closure). */
function durationMin(s) {
  for (const ms of [0, 1, 10, 50, 100, 1000, 10_000, 60_000]) if (s.safeParse(ms).success) return ms;
  return undefined;
}

function constraintsOf(s) {
  const c = [];
  const t = s._def.typeName;
  if (t === 'ZodString') {
    for (const k of s._def.checks ?? []) {
      if (k.kind === 'regex') c.push(`matches \`${k.regex.source}\``);
      else if (k.kind === 'startsWith') c.push(`starts with \`${k.value}\``);
      else if (k.kind === 'endsWith') c.push(`ends with \`${k.value}\``);
      else if (k.kind === 'min') c.push(k.value === 1 ? 'non-empty' : `at least ${k.value} characters`);
      else if (k.kind === 'max') c.push(`at most ${k.value} characters`);
      else if (k.kind === 'length') c.push(`exactly ${k.value} characters`);
      else c.push(k.kind);
    }
  } else if (t === 'ZodNumber') {
    let min, max;
    for (const k of s._def.checks ?? []) {
      if (k.kind === 'min') min = (k.inclusive ? '≥ ' : '> ') + k.value;
      else if (k.kind === 'max') max = (k.inclusive ? '≤ ' : '< ') + k.value;
      else if (k.kind === 'multipleOf') c.push(`multiple of ${k.value}`);
    }
    if (min) c.push(min);
    if (max) c.push(max);
  } else if (t === 'ZodArray') {
    if (s._def.minLength) c.push(`at least ${s._def.minLength.value} item(s)`);
    if (s._def.maxLength) c.push(`at most ${s._def.maxLength.value} item(s)`);
  }
  return c;
}

function typeName(s, named) {
  const { s: b, info } = unwrap(s, named);
  if (info.label) return info.label;
  switch (b._def.typeName) {
    case 'ZodString': return 'string';
    case 'ZodNumber': return (b._def.checks ?? []).some((k) => k.kind === 'int') ? 'integer' : 'number';
    case 'ZodBoolean': return 'boolean';
    case 'ZodEnum': return b._def.values.map((v) => `\`${v}\``).join(' \\| ');
    case 'ZodNativeEnum': return Object.values(b._def.values).map((v) => `\`${v}\``).join(' \\| ');
    case 'ZodLiteral': return `\`${b._def.value}\``;
    case 'ZodUnion': case 'ZodDiscriminatedUnion':
      return [...new Set([...(b._def.options.values?.() ?? b._def.options)].map((o) => typeName(o, named)))].join(' or ');
    case 'ZodArray': return `list of ${typeName(b._def.type, named)}`;
    case 'ZodRecord': return `map of ${typeName(b._def.valueType, named)}`;
    case 'ZodObject': return 'section';
    default: return b._def.typeName.replace(/^Zod/, '').toLowerCase();
  }
}

function visit(schema, segs, out, named, isRoot = false) {
  const { s, info } = unwrap(schema, named);
  const t = s._def.typeName;
  const entry = {
    path: segs.join('.').replace(/\.\[\]/g, '[]'), segs, hasDefault: info.hasDefault, default: info.default,
    optional: info.optional, refined: info.refined, type: typeName(schema, named),
    constraints: info.label ? (info.durationMin ? [`≥ ${info.durationMin}ms`] : []) : constraintsOf(s),
  };
  if (t === 'ZodObject' && !info.label) {
    entry.kind = 'section';
    entry.keys = Object.keys(s.shape);
    if (!isRoot) out.push(entry);
    for (const k of entry.keys) visit(s.shape[k], [...segs, k], out, named);
    return;
  }
  if (t === 'ZodArray' && !info.label) {
    const el = unwrap(s._def.type, named);
    if (el.s._def.typeName === 'ZodObject' && !el.info.label) {
      entry.kind = 'list';
      entry.type = 'list of sections';
      entry.elementRefined = el.info.refined;
      entry.keys = Object.keys(el.s.shape);
      out.push(entry);
      for (const k of entry.keys) visit(el.s.shape[k], [...segs, '[]', k], out, named);
      return;
    }
  }
  if (t === 'ZodRecord' && !info.label) {
    const v = unwrap(s._def.valueType, named);
    if (v.s._def.typeName === 'ZodObject' && !v.info.label) {
      entry.kind = 'list';
      entry.type = 'map of sections (key: a name)';
      entry.keys = Object.keys(v.s.shape);
      out.push(entry);
      for (const k of entry.keys) visit(v.s.shape[k], [...segs, '<name>', k], out, named);
      return;
    }
  }
  if ((t === 'ZodUnion' || t === 'ZodDiscriminatedUnion') && !info.label) {
    // A union of sections (e.g. SNMP v2c | v3): document the union of their keys once each.
    const opts = [...(s._def.options.values?.() ?? s._def.options)].map((o) => unwrap(o, named).s);
    if (opts.every((o) => o._def.typeName === 'ZodObject')) {
      entry.kind = 'section';
      entry.type = 'section (one of several forms)';
      entry.keys = [...new Set(opts.flatMap((o) => Object.keys(o.shape)))];
      out.push(entry);
      for (const k of entry.keys) {
        const o = opts.find((x) => k in x.shape);
        visit(o.shape[k], [...segs, k], out, named);
      }
      return;
    }
  }
  entry.kind = 'value';
  out.push(entry);
}

// ---------------------------------------------------------------------------------------------
// 2. Descriptions from the schema source (`/** … */` above a key of a z.object({...}) literal)

/**
 * Returns Map<"key1,key2,…" (the object's keys in order), Map<key, comment>>. Sections are matched
 * to their object literal by their exact key list, which is what the walker sees at run time.
 */
export function commentsFromSource(files) {
  const ts = createRequire(import.meta.url)('typescript');
  const bySig = new Map();
  for (const file of files) {
    const text = readFileSync(file, 'utf8');
    const sf = ts.createSourceFile(file, text, ts.ScriptTarget.ES2022, true);
    // `const fields = { … }` of this file, so that `...fields` inside a schema's object literal
    // contributes its keys and comments where it is spread (a field set shared by two schemas).
    const fieldSets = new Map();
    const collect = (node) => {
      if (ts.isVariableDeclaration(node) && ts.isIdentifier(node.name) && node.initializer && ts.isObjectLiteralExpression(node.initializer)) fieldSets.set(node.name.text, node.initializer);
      ts.forEachChild(node, collect);
    };
    collect(sf);
    const properties = (lit) => lit.properties.flatMap((p) => (ts.isSpreadAssignment(p) && ts.isIdentifier(p.expression) && fieldSets.has(p.expression.text) ? properties(fieldSets.get(p.expression.text)) : [p]));
    const visitNode = (node) => {
      // Any object literal: z.object({...}) arguments, and plain objects of fields that a schema is
      // built from (Object.fromEntries over a `fields` object keeps the same keys in the same order).
      if (ts.isObjectLiteralExpression(node)) {
        const lit = node;
        const keys = [];
        const comments = new Map();
        for (const p of properties(lit)) {
          const k = p.name && (ts.isIdentifier(p.name) || ts.isStringLiteral(p.name)) ? p.name.text : undefined;
          if (!k) continue;
          keys.push(k);
          const ranges = ts.getLeadingCommentRanges(text, p.getFullStart()) ?? [];
          const docs = ranges.map((r) => text.slice(r.pos, r.end)).filter((c) => c.startsWith('/**'));
          if (docs.length) comments.set(k, cleanJsDoc(docs[docs.length - 1]));
        }
        const sig = keys.join(',');
        const have = bySig.get(sig) ?? new Map();
        for (const [k, v] of comments) if (!have.has(k)) have.set(k, v);
        bySig.set(sig, have);
      }
      ts.forEachChild(node, visitNode);
    };
    visitNode(sf);
  }
  return bySig;
}

function cleanJsDoc(c) {
  return c.replace(/^\/\*\*\s?/, '').replace(/\s*\*\/$/, '').split('\n').map((l) => l.replace(/^\s*\* ?/, '')).join('\n').trim();
}

/** Every schema source: src/config/*.ts and src/<module>/config.ts. */
export function schemaSourceFiles() {
  const files = [];
  for (const f of readdirSync(join(ROOT, 'src/config'))) if (f.endsWith('.ts')) files.push(join(ROOT, 'src/config', f));
  for (const d of readdirSync(join(ROOT, 'src'))) {
    const f = join(ROOT, 'src', d, 'config.ts');
    try { if (statSync(f).isFile()) files.push(f); } catch { /* none */ }
  }
  return files;
}

// ---------------------------------------------------------------------------------------------
// 3. Merge and render

/**
 * Joins schema entries with source comments and keys.yaml. Returns { docs, problems }: problems
 * lists every key without a description, keys.yaml entries that match no key, and sections
 * without an example.
 */
export function buildDocs(entries, comments, keys) {
  const problems = [];
  const byPath = new Map(entries.map((e) => [e.path, e]));
  for (const k of Object.keys(keys)) if (!k.startsWith('_') && !byPath.has(k)) problems.push(`${k}: described in docs/configuration.keys.yaml but not in the schema`);
  // Comments are found via the parent's key list.
  const parentKeys = new Map();
  for (const e of entries) if (e.keys) parentKeys.set(e.path, e.keys);
  const topKeys = entries.filter((e) => e.segs.length === 1).map((e) => e.segs[0]);
  // `_same_as: { "backends[].servers[]": "listen[].backends[]" }`: a key under the first prefix
  // without its own text or example takes those of the same key under the second (a sub-schema
  // shared by two sections is described once). The second prefix comes earlier in the schema.
  const sameAs = Object.entries(keys._same_as ?? {});
  const done = new Map();
  const alias = (path) => {
    for (const [from, to] of sameAs) if (path === from || path.startsWith(from + '.') || path.startsWith(from + '[')) return done.get(to + path.slice(from.length));
    return undefined;
  };
  const docs = entries.map((e) => {
    const parentPath = e.segs.slice(0, -1).join('.').replace(/\.\[\]/g, '[]').replace(/\[\]$/, '').replace(/\.<name>$/, '');
    const sibling = e.segs.length === 1 ? topKeys : parentKeys.get(parentPath);
    const fromSource = sibling ? comments.get(sibling.join(','))?.get(e.segs[e.segs.length - 1]) : undefined;
    const k = keys[e.path] ?? {};
    const same = alias(e.path);
    const text = (k.text ?? fromSource ?? same?.text ?? '').trim();
    if (!text) problems.push(`${e.path}: no description (add a /** comment */ above the key in the schema, or a text in docs/configuration.keys.yaml)`);
    let example = k.example;
    if (example === undefined && e.kind === 'value' && e.hasDefault) example = YAML.stringify({ [lastKey(e)]: e.default }).trim();
    if (example === undefined && same?.example !== undefined && lastKey(same) === lastKey(e)) example = same.example;
    if (example === undefined && e.kind === 'value') problems.push(`${e.path}: no example and no default to show (add an example in docs/configuration.keys.yaml)`);
    const d = { ...e, text, example, caveats: (k.caveats ?? same?.caveats)?.trim(), defaultText: k.default, context: k.context ?? same?.context, seeAlso: k.see };
    done.set(e.path, d);
    return d;
  });
  return { docs, problems };
}

function lastKey(e) { return e.segs[e.segs.length - 1]; }

function fmtDefault(d) {
  if (d.defaultText) return d.defaultText;
  if (d.hasDefault) {
    const v = d.default;
    if (v && typeof v === 'object' && !Array.isArray(v) && Object.keys(v).length === 0) return '(every key at its default)';
    if (Array.isArray(v) && v.length === 0) return '`[]` (empty)';
    return '`' + (typeof v === 'string' ? v : JSON.stringify(v)) + '`';
  }
  if (d.optional) return 'not set';
  return '**required**';
}

/**
 * The example of a key nested under its parents, so it can be pasted (and validated): a key of a
 * list item gets `- ` and the item's `context` line (e.g. `name: web`) from keys.yaml.
 */
export function nestExample(d, docsByPath) {
  const lines = String(d.example).replace(/\n+$/, '').split('\n');
  let body = lines;
  const segs = d.segs;
  // Build from the innermost parent outwards.
  for (let i = segs.length - 2; i >= 0; i--) {
    const seg = segs[i];
    if (seg === '[]' || seg === '<name>') continue;
    const isList = segs[i + 1] === '[]';
    const isMap = segs[i + 1] === '<name>';
    const path = segs.slice(0, i + 1).join('.').replace(/\.\[\]/g, '[]');
    // `context`: lines a reader needs around the key (a list item's name, a section's required
    // key), left out when the example already sets that key.
    const ctxOf = () => {
      const ctx = docsByPath.get(path)?.context;
      if (!ctx) return [];
      const lines = String(ctx).trim().split('\n');
      const key = lines[0].split(':')[0];
      return body.some((l) => l.startsWith(`${key}:`)) ? [] : lines;
    };
    if (isList) {
      const item = [...ctxOf(), ...body];
      body = [`${seg}:`, ...item.map((l, j) => (j === 0 ? '  - ' : '    ') + l)];
    } else if (isMap) {
      const ctx = docsByPath.get(path)?.context ?? 'example';
      body = [`${seg}:`, `  ${String(ctx).trim()}:`, ...body.map((l) => '    ' + l)];
    } else {
      body = [`${seg}:`, ...[...ctxOf(), ...body].map((l) => '  ' + l)];
    }
  }
  return body.join('\n');
}

export function anchor(path) { return path.replace(/\[\]/g, '').replace(/<name>/g, 'name').replace(/[^A-Za-z0-9_.-]/g, '').replace(/[._]/g, '-').toLowerCase(); }

export function renderDoc(docs, intro) {
  const byPath = new Map(docs.map((d) => [d.path, d]));
  const out = [];
  out.push('<!-- Generated by scripts/gen-config-doc.mjs from the zod schema and docs/configuration.keys.yaml.');
  out.push('     Do not edit by hand: edit those, then run `npm run docs:config`.');
  out.push('     test/daemon/config-doc.test.ts fails when this file and the schema disagree. -->');
  out.push('');
  out.push(intro.trim());
  out.push('');
  const tops = docs.filter((d) => d.segs.length === 1);
  out.push('## Quick reference');
  out.push('');
  out.push('| key | type | default |');
  out.push('|---|---|---|');
  for (const d of docs) out.push(`| [\`${d.path}\`](#${anchor(d.path)}) | ${d.type} | ${fmtDefault(d)} |`);
  out.push('');
  tops.forEach((top, n) => {
    out.push(`## ${n + 1}. \`${top.path}\``);
    out.push('');
    for (const d of docs.filter((x) => x.segs[0] === top.segs[0])) {
      out.push(`<a id="${anchor(d.path)}"></a>`);
      out.push(`### \`${d.path}\``);
      out.push('');
      out.push(`- **Type:** ${d.type}${d.constraints.length ? ` (${d.constraints.join(', ')})` : ''}`);
      out.push(`- **Default:** ${fmtDefault(d)}`);
      if (d.kind !== 'value' && d.keys) out.push(`- **Keys:** ${d.keys.map((k) => `[\`${k}\`](#${anchor(d.path + (d.kind === 'list' ? (d.type.startsWith('map') ? '.<name>' : '[]') : '') + '.' + k)})`).join(', ')}`);
      out.push('');
      out.push(d.text);
      out.push('');
      if (d.example !== undefined) {
        out.push('Example:');
        out.push('');
        out.push('```yaml');
        out.push(nestExample(d, byPath));
        out.push('```');
        out.push('');
      }
      if (d.caveats) { out.push(`Caveats: ${d.caveats}`); out.push(''); }
      if (d.seeAlso) { out.push(`See also: ${[].concat(d.seeAlso).map((p) => `[\`${p}\`](#${anchor(p)})`).join(', ')}.`); out.push(''); }
    }
  });
  return out.join('\n').replace(/\n{3,}/g, '\n\n');
}

/** Everything in one call: used by the CLI below and by the test (with the TS schema). */
export function generate({ configSchema, named }) {
  const keysDoc = YAML.parse(readFileSync(KEYS_FILE, 'utf8')) ?? {};
  const entries = walkSchema(configSchema, named);
  const comments = commentsFromSource(schemaSourceFiles());
  const { docs, problems } = buildDocs(entries, comments, keysDoc);
  return { docs, problems, markdown: renderDoc(docs, keysDoc._intro ?? '# pairlb configuration manual') + '\n', keysDoc };
}

async function main() {
  const schema = await import(pathToFileURL(join(ROOT, 'dist/config/schema.js')).href);
  const types = await import(pathToFileURL(join(ROOT, 'dist/config/types.js')).href);
  const named = new Map([[types.duration, 'duration'], [types.hostPort, 'host:port'], [types.name, 'name']]);
  const { markdown, problems } = generate({ configSchema: schema.configSchema, named });
  for (const p of problems) process.stderr.write(`warning: ${p}\n`);
  const rel = relative(process.cwd(), DOC_FILE);
  if (process.argv.includes('--check')) {
    let cur = '';
    try { cur = readFileSync(DOC_FILE, 'utf8'); } catch { /* missing */ }
    if (cur !== markdown) { process.stderr.write(`${rel} is stale: run npm run docs:config\n`); process.exit(1); }
    process.stdout.write(`${rel} is up to date\n`);
    return;
  }
  writeFileSync(DOC_FILE, markdown);
  process.stdout.write(`wrote ${rel} (${markdown.split('\n').length} lines${problems.length ? `, ${problems.length} problem(s)` : ''})\n`);
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) await main();
