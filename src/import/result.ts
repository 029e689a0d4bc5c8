/**
 * What an importer (haproxy.ts, heartbeat.ts, keepalived.ts) hands back: a fragment of a pairlb
 * config, comments to write next to its keys, every source line it could not map (with why), and
 * the values the user must fill in before the config can run. Pure data: no I/O.
 */

export type Path = (string | number)[];

/** A source line with no pairlb equivalent. `at` is "file:line". */
export interface Unmapped { at: string; text: string; why: string }

export class ImportResult {
  readonly unmapped: Unmapped[] = [];
  /** Values written as placeholders that the user must replace (also shown at the top). */
  readonly todo: string[] = [];
  /** Comments by key path ("listen.0.cookie"), written on the line(s) before the key. */
  readonly comments = new Map<string, string[]>();
  private seen = new Set<string>();

  /** Records a line that could not be mapped; the same line reported twice (a defaults line in two sections) is kept once. */
  skip(at: string, text: string, why: string): void {
    const k = `${at}\0${text}\0${why}`;
    if (this.seen.has(k)) return;
    this.seen.add(k);
    this.unmapped.push({ at, text: text.trim(), why });
  }

  note(path: Path, text: string): void {
    const k = path.join('.');
    const list = this.comments.get(k) ?? [];
    if (!list.includes(text)) list.push(text);
    this.comments.set(k, list);
  }

  fillIn(path: Path, text: string): void {
    this.todo.push(`${formatKey(path)}: ${text}`);
    this.note(path, `FILL IN: ${text}`);
  }

  /** Takes over another result's findings, its comment paths prefixed. */
  merge(other: ImportResult): void {
    for (const u of other.unmapped) this.skip(u.at, u.text, u.why);
    this.todo.push(...other.todo);
    for (const [k, v] of other.comments) for (const t of v) this.note(k.split('.').map((s) => (/^\d+$/.test(s) ? Number(s) : s)), t);
  }
}

export function formatKey(path: Path): string {
  let s = '';
  for (const p of path) s += typeof p === 'number' ? `[${p}]` : (s ? '.' : '') + p;
  return s;
}

/** Source lines: comments stripped, `\` continuations joined (haresources), with 1-based line numbers. */
export interface SourceLine { n: number; text: string; words: string[] }

export function sourceLines(text: string, opts: { continuation?: boolean; comment?: RegExp } = {}): SourceLine[] {
  const out: SourceLine[] = [];
  const raw = text.split(/\r?\n/);
  const comment = opts.comment ?? /(^|\s)#.*$/;
  for (let i = 0; i < raw.length; i++) {
    const n = i + 1;
    let t = raw[i];
    while (opts.continuation && t.endsWith('\\') && i + 1 < raw.length) t = t.slice(0, -1) + ' ' + raw[++i];
    t = t.replace(comment, '').trim();
    if (t) out.push({ n, text: t, words: t.split(/\s+/) });
  }
  return out;
}

/** Formats ms as the shortest pairlb duration string that keeps the value ("30s", "1500ms", "2m"). */
export function fmtMs(ms: number): string {
  if (ms % 3_600_000 === 0 && ms >= 3_600_000) return `${ms / 3_600_000}h`;
  if (ms % 60_000 === 0 && ms >= 60_000) return `${ms / 60_000}m`;
  if (ms % 1000 === 0) return `${ms / 1000}s`;
  return `${ms}ms`;
}

/** The name rule of pairlb's schema (src/config/types.ts `name`). */
export const NAME_RE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

/** The HA key recipe of docs/ha.md ("Key file"), for the node and its peer. */
export function keyRecipe(peer: string): string {
  return `pairlb's HMAC-SHA256 key is a separate file of raw bytes (16-4096, mode 0600). Make it once and copy it to the peer: ` +
    `head -c 32 /dev/urandom > /etc/pairlb/ha.key; chown pairlb:pairlb /etc/pairlb/ha.key && chmod 600 /etc/pairlb/ha.key; ` +
    `scp -p /etc/pairlb/ha.key ${peer}:/etc/pairlb/ha.key (then chown pairlb:pairlb there)`;
}
