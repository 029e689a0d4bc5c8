/**
 * Known pending (issue 10): inputs whose failure belongs to an item another engineer is fixing
 * right now, matched by what the input is. Both edge tests (differential, fuzz) report a failure
 * on such an input as "pending <owner>" instead of failing. Shrink this list as the fixes land on
 * main: an entry that matched no failure in a run is reported as "now passes, remove it".
 */

export interface Pending { owner: string; item: string; match: (bytes: Buffer) => boolean }

/**
 * Empty since every item of issue 10 that the edge tests exercise landed on main (edge-core:
 * two Host, OPTIONS *, absolute-form, header count, client errors never against a backend;
 * edge-stream: Upgrade only on a matching 101, pipelining). An entry, when needed, names its
 * owner and matches inputs by their bytes, e.g.
 *   { owner: 'edge-x', item: 'two Host → 400', match: (b) => (b.toString('latin1').match(/^host[ \t]*:/gim) ?? []).length > 1 }
 */
export const PENDING: Pending[] = [];

export function pendingFor(bytes: Buffer): Pending | undefined {
  return PENDING.find((p) => p.match(bytes));
}
