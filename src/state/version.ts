import { createHash } from 'node:crypto';

/**
 * Version of the replicated runtime state: a version vector plus a content hash.
 *
 *   vv    one counter per node, bumped by that node on each of its own changes (a node that
 *         applies the peer's document adopts the peer's vector). Two nodes that both changed
 *         something during a split end with vectors where neither dominates: "diverged", even
 *         when the plain totals are equal (a scalar version cannot tell those apart).
 *   hash  of the sections' content (canonical JSON), so that equal vectors with different
 *         contents — a node that lost its last change in a crash and then made another — are
 *         also detected as diverged.
 *
 * Pure: no clock, no I/O.
 */
export interface StateVersion { vv: Record<string, number>; hash: string }

/** How version `a` relates to version `b`. */
export type VersionOrder = 'same' | 'ahead' | 'behind' | 'diverged';

/** Key under which a state file of the old scalar format counts its changes. */
export const LEGACY_NODE = '*';

export function total(v: StateVersion | Record<string, number>): number {
  const vv = 'vv' in v && typeof v.vv === 'object' ? (v as StateVersion).vv : (v as Record<string, number>);
  let n = 0;
  for (const k in vv) n += vv[k];
  return n;
}

export function compareVersions(a: StateVersion, b: StateVersion): VersionOrder {
  let aGreater = false, bGreater = false;
  for (const k of new Set([...Object.keys(a.vv), ...Object.keys(b.vv)])) {
    const x = a.vv[k] ?? 0, y = b.vv[k] ?? 0;
    if (x > y) aGreater = true;
    else if (y > x) bGreater = true;
  }
  if (aGreater && bGreater) return 'diverged';
  if (aGreater) return 'ahead';
  if (bGreater) return 'behind';
  return a.hash === b.hash ? 'same' : 'diverged';
}

/** Pointwise maximum. */
export function mergeVectors(a: Record<string, number>, b: Record<string, number>): Record<string, number> {
  const out: Record<string, number> = { ...a };
  for (const k in b) if ((out[k] ?? 0) < b[k]) out[k] = b[k];
  return out;
}

/** `lb1:5 lb2:2 #3fa9…`: for logs and the stats page. */
export function formatVersion(v: StateVersion | undefined): string {
  if (!v) return 'unknown';
  const parts = Object.keys(v.vv).sort().map((k) => `${k}:${v.vv[k]}`);
  return `${parts.join(' ') || 'empty'} #${v.hash.slice(0, 8)}`;
}

/** JSON with object keys sorted at every level: the same content always gives the same bytes. */
export function canonicalJson(v: unknown): string {
  if (v === null || typeof v !== 'object') return JSON.stringify(v) ?? 'null';
  if (Array.isArray(v)) return '[' + v.map((x) => (x === undefined ? 'null' : canonicalJson(x))).join(',') + ']';
  const o = v as Record<string, unknown>;
  const keys = Object.keys(o).filter((k) => o[k] !== undefined).sort();
  return '{' + keys.map((k) => JSON.stringify(k) + ':' + canonicalJson(o[k])).join(',') + '}';
}

/** 64 bits of SHA-256 over the canonical JSON of the sections, as 16 hex digits. */
export function contentHash(sections: Record<string, unknown>): string {
  return createHash('sha256').update(canonicalJson(sections)).digest('hex').slice(0, 16);
}
