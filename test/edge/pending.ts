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
const targetOf = (b: Buffer): string => head(b).split(/[\r\n]/)[0].split(' ')[1] ?? '';
const lines = (b: Buffer, re: RegExp): number => (head(b).match(re) ?? []).length;

export const PENDING: Pending[] = [
  { owner: 'edge-core', item: 'two Host lines → 400 (and never counted against the backend)', match: (b) => lines(b, /^host[ \t]*:/gim) > 1 },
  { owner: 'edge-core', item: 'OPTIONS * / asterisk-form (and never counted against the backend)', match: (b) => targetOf(b).startsWith('*') },
  { owner: 'edge-core', item: 'absolute-form: the target\'s authority wins, query kept, userinfo refused', match: (b) => targetOf(b).includes('://') },
  { owner: 'edge-core', item: 'more header lines than the limit → 431', match: (b) => head(b).split('\n').length > 100 },
  { owner: 'edge-stream', item: 'Upgrade: tunnel only on a 101 answering the requested protocol', match: (b) => lines(b, /^(upgrade[ \t]*:|connection[ \t]*:.*upgrade)/gim) > 0 },
];

export function pendingFor(bytes: Buffer): Pending | undefined {
  return PENDING.find((p) => p.match(bytes));
}
