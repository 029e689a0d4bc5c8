/**
 * Known pending (issue 10): inputs whose failure belongs to an item another engineer is fixing
 * right now, matched by what the input is. Both edge tests (differential, fuzz) report a failure
 * on such an input as "pending <owner>" instead of failing. Shrink this list as the fixes land on
 * main: an entry that matched no failure in a run is reported as "now passes, remove it".
 */

export interface Pending { owner: string; item: string; match: (bytes: Buffer) => boolean }

function head(b: Buffer): string {
  const s = b.toString('latin1');
  const i = s.indexOf('\r\n\r\n');
  return i < 0 ? s : s.slice(0, i);
}
const lines = (b: Buffer, re: RegExp): number => (head(b).match(re) ?? []).length;

export const PENDING: Pending[] = [
];

export function pendingFor(bytes: Buffer): Pending | undefined {
  return PENDING.find((p) => p.match(bytes));
}
