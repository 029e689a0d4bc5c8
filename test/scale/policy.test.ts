import { describe, expect, it } from 'vitest';
import { decide, type GroupView, type PolicyParams, type Sample } from '../../src/scale/policy.js';
import { policySchema } from '../../src/scale/config.js';

/** The pure scaling policy, as a table. Loads: numbers are known samples, 'u' is unknown. */

const P: PolicyParams = { ...policySchema.parse({}), up_cooldown: 60_000, down_cooldown: 120_000 };
const NOW = 1_000_000;
const S = (xs: (number | 'u')[]): Sample[] => xs.map((x, i) => x === 'u'
  ? { at: NOW - (xs.length - i) * 1000, status: 'unknown', reason: 'timeout' }
  : { at: NOW - (xs.length - i) * 1000, status: 'ok', load: x });

function g(over: Partial<Omit<GroupView, 'original' | 'clones'>> & { original?: (number | 'u')[]; clones?: Record<string, (number | 'u')[]> } = {}): GroupView {
  return {
    source: 'vds', original: S(over.original ?? []),
    clones: Object.entries(over.clones ?? {}).map(([name, xs]) => ({ name, samples: S(xs) })),
    pending: over.pending ?? 0, totalClones: over.totalClones ?? Object.keys(over.clones ?? {}).length + (over.pending ?? 0),
    busy: over.busy ?? false, lastCloneAt: over.lastCloneAt ?? 0, lastActionAt: over.lastActionAt ?? 0,
  };
}

type Row = [string, GroupView, string, (RegExp | string)?];
const rows: Row[] = [
  ['no samples', g(), 'none', /no sample/],
  ['steady load 1.0', g({ original: [1, 1, 1] }), 'none', /steady/],
  ['one hot sample is not enough (N=2)', g({ original: [1, 2.5] }), 'none'],
  ['hot for N=2 samples clones', g({ original: [1, 2.5, 2.5] }), 'clone', /vds load 2\.50,2\.50 >= 2/],
  ['exactly at up counts (>=)', g({ original: [2, 2] }), 'clone'],
  ['an unknown sample breaks the hot streak', g({ original: [2.5, 'u', 2.5] }), 'none'],
  ['only unknown samples: never an action', g({ original: ['u', 'u', 'u', 'u'] }), 'none', /unknown \(timeout\)/],
  ['unknown never looks like low load for a clone', g({ original: [1.5], clones: { c1: ['u', 'u', 'u'] } }), 'none'],
  ['busy group decides nothing', g({ original: [3, 3], busy: true }), 'none', /in progress/],
  ['a pending clone blocks another', g({ original: [3, 3], pending: 1 }), 'none', /already in progress/],
  ['max per VDS', g({ original: [3, 3], clones: { c1: [1.5], c2: [1.5] } }), 'none', /max_clones_per_vds \(2\)/],
  ['max total', g({ original: [3, 3], totalClones: 4 }), 'none', /max_clones \(4\)/],
  ['up cooldown', g({ original: [3, 3], lastCloneAt: NOW - 30_000, lastActionAt: NOW - 30_000 }), 'none', /up cooldown 30s left/],
  ['after the up cooldown', g({ original: [3, 3], lastCloneAt: NOW - 60_000 }), 'clone'],
  ['a hot clone also makes the group clone', g({ original: [1.5, 1.5], clones: { c1: [2.5, 2.5] } }), 'clone', /c1 load/],
  ['clone cold for M=3 is removed', g({ original: [1.5], clones: { c1: [0.4, 0.4, 0.4] } }), 'remove', /c1 load 0\.40,0\.40,0\.40 < 1/],
  ['cold for only 2 samples: kept', g({ original: [1.5], clones: { c1: [1.5, 0.4, 0.4] } }), 'none'],
  ['load exactly at down is not cold (<)', g({ original: [1.5], clones: { c1: [1, 1, 1] } }), 'none'],
  ['unknown in the cold streak: kept', g({ original: [1.5], clones: { c1: [0.4, 'u', 0.4] } }), 'none'],
  ['originals are never removed', g({ original: [0.1, 0.1, 0.1, 0.1] }), 'none'],
  ['no removal while any member is hot', g({ original: [2.5, 2.5], clones: { c1: [0.4, 0.4, 0.4] }, pending: 0, totalClones: 1 }), 'clone'],
  ['down cooldown after any action', g({ original: [1.5], clones: { c1: [0.4, 0.4, 0.4] }, lastActionAt: NOW - 100_000 }), 'none', /down cooldown 20s left/],
  ['after the down cooldown', g({ original: [1.5], clones: { c1: [0.4, 0.4, 0.4] }, lastActionAt: NOW - 120_000 }), 'remove'],
  ['hysteresis band (1 <= load < 2) does nothing', g({ original: [1.9, 1.9, 1.9], clones: { c1: [1.2, 1.1, 1.0] } }), 'none'],
];

describe('decide()', () => {
  it.each(rows)('%s', (_name, view, action, reason) => {
    const d = decide(P, view, NOW);
    expect(d.action).toBe(action);
    if (reason) expect(d.reason).toMatch(reason);
  });

  it('removes the coldest clone first, ties by name', () => {
    expect(decide(P, g({ original: [1.5], clones: { c2: [0.5, 0.5, 0.3], c1: [0.2, 0.2, 0.5], c3: [0.1, 0.1, 0.3] } }), NOW))
      .toMatchObject({ action: 'remove', clone: 'c2' });
  });

  it('flapping load around up never clones with N=2', () => {
    const xs: number[] = [];
    for (let i = 0; i < 20; i++) {
      xs.push(i % 2 ? 2.5 : 1.5);
      expect(decide(P, g({ original: xs }), NOW).action).toBe('none');
    }
  });

  it('schema refuses down >= up (no hysteresis)', () => {
    expect(() => policySchema.parse({ up: 1, down: 1 })).toThrow(/hysteresis/);
  });
});
