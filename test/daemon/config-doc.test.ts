import { describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import YAML from 'yaml';
import { configSchema } from '../../src/config/schema.js';
import { duration, hostPort, name } from '../../src/config/types.js';
import { formatPath } from '../../src/config/load.js';
// @ts-expect-error: plain ESM script without types
import { generate, nestExample, DOC_FILE } from '../../scripts/gen-config-doc.mjs';

/**
 * docs/configuration.md cannot drift from the schema: it must be exactly what the generator makes
 * from the schema in src/ (so a key added to any sub-schema fails here until it is documented and
 * the manual regenerated), every key needs a description, and every example must validate.
 */

interface Doc { path: string; segs: string[]; kind: string; example?: string; context?: string }
const named = new Map<unknown, string>([[duration, 'duration'], [hostPort, 'host:port'], [name, 'name']]);
const gen = generate({ configSchema, named }) as { docs: Doc[]; problems: string[]; markdown: string };
const ROOT = join(import.meta.dirname, '../..');
const REGEN = 'run `npm run docs:config` and commit docs/configuration.md';

/** A small valid file per top-level section, to merge each example into. */
function base(top: string): Record<string, unknown> {
  const lb = YAML.parse(readFileSync(join(ROOT, 'config/examples/lb-01.yaml'), 'utf8'));
  const sc = YAML.parse(readFileSync(join(ROOT, 'config/examples/scaling.yaml'), 'utf8'));
  const minimal: Record<string, unknown> = { listen: [{ name: 'www', bind: '127.0.0.1:80', backends: [{ name: 'php-01', address: '10.0.0.11:80' }, { name: 'php-02', address: '10.0.0.12:80' }] }] };
  if (top === 'ha') return { ...minimal, global: { node: 'lb-01' }, ha: lb.ha };
  if (top === 'stats') return { ...minimal, stats: lb.stats };
  if (top === 'scale') return { listen: sc.listen, scale: sc.scale };
  // listen[].acme needs the acme section; acme's examples need its required keys.
  if (top === 'acme' || top === 'listen') return { ...minimal, acme: { email: 'ops@shop.example', terms_of_service_agreed: true } };
  const pool = (name: string) => ({ name, servers: [{ name: 'php-01', address: '10.0.0.11:80' }] });
  if (top === 'frontends') return { ...minimal, acme: { email: 'ops@shop.example', terms_of_service_agreed: true }, frontends: [{ name: 'sites', bind: '127.0.0.1:81' }], backends: [pool('shop'), pool('api')] };
  if (top === 'backends') return { frontends: [{ name: 'sites', bind: '127.0.0.1:81', default_backend: 'www' }], backends: [pool('www')] };
  return minimal;
}

function merge(a: unknown, b: unknown): unknown {
  if (Array.isArray(a) && Array.isArray(b)) {
    const out = [...a];
    b.forEach((x, i) => { out[i] = i < a.length ? merge(a[i], x) : x; });
    return out;
  }
  if (a && b && typeof a === 'object' && typeof b === 'object' && !Array.isArray(a) && !Array.isArray(b)) {
    const out: Record<string, unknown> = { ...(a as Record<string, unknown>) };
    for (const [k, v] of Object.entries(b as Record<string, unknown>)) out[k] = k in out ? merge(out[k], v) : v;
    return out;
  }
  return b;
}

describe('docs/configuration.md', () => {
  it('documents every key of the schema (description, and an example or a default)', () => {
    expect(gen.problems).toEqual([]);
    expect(gen.docs.length).toBeGreaterThan(100);
  });

  it('is exactly what scripts/gen-config-doc.mjs generates from the schema', () => {
    const cur = readFileSync(DOC_FILE, 'utf8');
    if (cur !== gen.markdown) {
      // Say which keys differ rather than dumping two 3000-line files.
      const keys = (md: string) => new Set([...md.matchAll(/^### `([^`]+)`$/gm)].map((m) => m[1]));
      const have = keys(cur), want = keys(gen.markdown);
      const missing = [...want].filter((k) => !have.has(k));
      const extra = [...have].filter((k) => !want.has(k));
      expect.fail(`docs/configuration.md is stale (${REGEN}); keys missing: ${missing.join(', ') || '-'}; keys no longer in the schema: ${extra.join(', ') || '-'}${!missing.length && !extra.length ? '; text differs' : ''}`);
    }
  });

  it('every example validates against the schema when pasted into a minimal file', () => {
    const byPath = new Map(gen.docs.map((d) => [d.path, d]));
    const failures: string[] = [];
    for (const d of gen.docs) {
      if (d.example === undefined) continue;
      const text = nestExample(d, byPath) as string;
      let fragment: unknown;
      try { fragment = YAML.parse(text); } catch (e) { failures.push(`${d.path}: example is not YAML: ${(e as Error).message}`); continue; }
      const cfg = merge(base(d.segs[0]), fragment);
      const r = configSchema.safeParse(cfg);
      if (!r.success) failures.push(`${d.path}: ${r.error.issues.map((i) => `${formatPath(i.path)}: ${i.message}`).join('; ')}\n${text}`);
    }
    expect(failures).toEqual([]);
  });

  it('shows each key in its example (the example is about that key)', () => {
    for (const d of gen.docs) {
      if (d.example === undefined) continue;
      const key = d.segs[d.segs.length - 1];
      expect.soft(String(d.example), d.path).toMatch(new RegExp(`(^|\\n)\\s*(- )?${key.replace(/[[\]]/g, '')}:`));
    }
  });
});
