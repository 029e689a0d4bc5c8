import { Document, isMap, isSeq, isScalar, type Node as YamlNode } from 'yaml';
import { ImportResult, type Unmapped } from './result.js';

/**
 * Puts the converters' fragments together and writes the commented YAML (pure). The header lists
 * what must be filled in and every source line that was not mapped, with why; the same list goes to
 * stderr (see src/cli/import.ts).
 */

export interface Fragments {
  sources: string[];
  global: Record<string, unknown>;
  listen: Record<string, unknown>[];
  frontends?: Record<string, unknown>[];
  backends?: Record<string, unknown>[];
  stats?: Record<string, unknown>;
  ha?: Record<string, unknown>;
  result: ImportResult;
}

export function unmappedLines(u: Unmapped[]): string[] {
  return u.map((x) => `${x.at}: ${x.text} — ${x.why}`);
}

export function renderConfig(f: Fragments): string {
  const cfg: Record<string, unknown> = {};
  if (Object.keys(f.global).length) cfg.global = f.global;
  if (f.listen.length || !f.frontends?.length) cfg.listen = f.listen;
  if (f.frontends?.length) cfg.frontends = f.frontends;
  if (f.backends?.length) cfg.backends = f.backends;
  if (f.stats) cfg.stats = f.stats;
  if (f.ha) cfg.ha = f.ha;
  // No YAML anchors for values that repeat (one frontend per bind shares its rules' objects).
  const doc = new Document(cfg, { aliasDuplicateObjects: false });
  for (const [k, lines] of f.result.comments) {
    const target = keyNodeAt(doc, k.split('.').map((s) => (/^\d+$/.test(s) ? Number(s) : s)));
    if (target) target.commentBefore = lines.map((l) => ` ${l}`).join('\n');
  }
  const head = [
    `pairlb config imported by \`pairlb import\` from ${f.sources.join(', ')}.`,
    'Check it with `pairlb check -c FILE` (every key: docs/configuration.md).',
  ];
  if (f.result.todo.length) head.push('', 'FILL IN before use (placeholders were written):', ...f.result.todo.map((t) => `  - ${t}`));
  head.push('', f.result.unmapped.length ? `Not mapped (${f.result.unmapped.length}):` : 'Every line was mapped.', ...unmappedLines(f.result.unmapped).map((t) => `  - ${t}`));
  doc.commentBefore = head.map((l) => (l ? ` ${l}` : '')).join('\n');
  return doc.toString({ lineWidth: 0 });
}

/** The node a comment for `path` attaches to: a map key, or a sequence item. */
function keyNodeAt(doc: Document, path: (string | number)[]): YamlNode | undefined {
  let cur: unknown = doc.contents;
  let target: YamlNode | undefined;
  for (const p of path) {
    if (isMap(cur)) {
      const pair = cur.items.find((it) => isScalar(it.key) && it.key.value === p);
      if (!pair) return undefined;
      target = pair.key as YamlNode;
      cur = pair.value;
    } else if (isSeq(cur) && typeof p === 'number') {
      target = cur.items[p] as YamlNode;
      cur = target;
    } else return undefined;
  }
  return target;
}
