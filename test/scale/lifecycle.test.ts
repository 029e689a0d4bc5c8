import { describe, expect, it } from 'vitest';
import { adoptionLimit, ASYNC_ACTIONS, step, type CloneRecord, type CloneState, type LifeAction, type LifeEvent } from '../../src/scale/lifecycle.js';

/**
 * The clone lifecycle as a table: one row per state (none + the five record states) × event, with
 * the resulting state (null = record forgotten) and the exact list of action types. Rows that
 * must not change anything say so (same record object, no actions).
 */

const T0 = 1_000_000;
const DEADLINE = T0 + 11_000;
const NAME = 'vds-01-clone-abc123';
const rec = (state: CloneState, o: Partial<CloneRecord> = {}): CloneRecord =>
  ({ name: NAME, source: 'vds-01', listen: 'web', hypervisor: 'hv1', state, createdAt: T0, deadline: state === 'creating' ? DEADLINE : undefined, since: T0, address: state === 'creating' ? undefined : '127.0.0.1:8081', ...o });

const at = T0 + 500;
const late = DEADLINE + 1;
const subject = { name: NAME, source: 'vds-01', listen: 'web', hypervisor: 'hv1' };
const E = {
  clone_start: { type: 'clone_start', at, ...subject, deadline: DEADLINE, reason: 'hot' },
  clone_ok: { type: 'clone_ok', at, address: '127.0.0.1:8081', snmp: '127.0.0.1:1161', ms: 250 },
  clone_failed: { type: 'clone_failed', at, started: true, reason: 'exit 3' },
  clone_failed_unstarted: { type: 'clone_failed', at, started: false, reason: 'ECONNREFUSED' },
  healthy: { type: 'healthy', at },
  unhealthy: { type: 'unhealthy', at, why: 'not healthy after 4000 ms (http 503)' },
  remove: { type: 'remove', at, reason: 'cold' },
  drained: { type: 'drained', at, reason: 'cold' },
  destroyed: { type: 'destroyed', at },
  destroy_unconfirmed: { type: 'destroy_unconfirmed', at, why: 'still listed', retryMs: 30_000 },
  listed_addr: { type: 'listed', at, vm: { address: '127.0.0.1:8081' }, inPool: true },
  listed_addr_out: { type: 'listed', at, vm: { address: '127.0.0.1:8081' }, inPool: false },
  listed_bare: { type: 'listed', at, vm: {}, inPool: false },
  absent: { type: 'listed', at, vm: null, inPool: true },
  listed_bare_late: { type: 'listed', at: late, vm: {}, inPool: false },
  absent_late: { type: 'listed', at: late, vm: null, inPool: false },
  listed_addr_late: { type: 'listed', at: late, vm: { address: '127.0.0.1:8081' }, inPool: false },
  found_report: { type: 'found_unknown', at, ...subject, vm: { address: '127.0.0.1:8081' }, policy: 'report' },
  found_adopt: { type: 'found_unknown', at, ...subject, vm: { address: '127.0.0.1:8081' }, policy: 'adopt' },
  found_adopt_limit: { type: 'found_unknown', at, ...subject, vm: { address: '127.0.0.1:8081' }, policy: 'adopt', limit: 'max_clones_per_vds 1 reached for vds-01' },
  found_adopt_noaddr: { type: 'found_unknown', at, ...subject, vm: {}, policy: 'adopt' },
  found_destroy: { type: 'found_unknown', at, ...subject, vm: {}, policy: 'destroy' },
} satisfies Record<string, LifeEvent>;
type EvName = keyof typeof E;

const types = (as: LifeAction[]): string[] => as.map((a) => a.type === 'alarm' ? `alarm:${a.code}` : a.type === 'note' ? `note:${a.event}${a.log ? '!' : ''}` : a.type);
/** `note:x!` = a scale event that is also logged. */
const NOTHING: string[] = [];

type From = CloneState | 'none';
interface Row { from: From; ev: EvName; to: CloneState | null | 'same'; actions: string[]; check?: (r: CloneRecord | null, a: LifeAction[]) => void }

const rows: Row[] = [
  // ---- no record
  { from: 'none', ev: 'clone_start', to: 'creating', actions: ['note:clone-started', 'clone'], check: (r) => expect(r).toMatchObject({ createdAt: at, since: at, deadline: DEADLINE }) },
  { from: 'none', ev: 'found_report', to: null, actions: ['alarm:PAIRLB_UNKNOWN_CLONE'], check: (_r, a) => expect(a[0]).toMatchObject({ message: expect.stringContaining('reported only') }) },
  { from: 'none', ev: 'found_adopt', to: 'joining', actions: ['alarm:PAIRLB_UNKNOWN_CLONE', 'note:adopted!', 'join', 'wait_healthy'], check: (r) => expect(r).toMatchObject({ adopted: true, address: '127.0.0.1:8081' }) },
  { from: 'none', ev: 'found_adopt_limit', to: null, actions: ['alarm:PAIRLB_UNKNOWN_CLONE'], check: (_r, a) => expect(a[0]).toMatchObject({ message: expect.stringContaining('not adopting it: max_clones_per_vds 1 reached for vds-01; reported only') }) },
  { from: 'none', ev: 'found_adopt_noaddr', to: null, actions: ['alarm:PAIRLB_UNKNOWN_CLONE'] },
  { from: 'none', ev: 'found_destroy', to: 'destroying', actions: ['alarm:PAIRLB_UNKNOWN_CLONE', 'destroy'] },

  // ---- creating
  { from: 'creating', ev: 'clone_ok', to: 'joining', actions: ['note:cloned', 'join', 'wait_healthy'], check: (r) => expect(r).toMatchObject({ address: '127.0.0.1:8081', snmp: '127.0.0.1:1161', since: at }) },
  { from: 'creating', ev: 'clone_failed', to: 'destroying', actions: ['destroy'], check: (r) => expect(r?.error).toBe('exit 3') },
  { from: 'creating', ev: 'clone_failed_unstarted', to: null, actions: ['note:dropped!'] },
  { from: 'creating', ev: 'listed_addr', to: 'joining', actions: ['note:reconcile!', 'join', 'wait_healthy'] },
  { from: 'creating', ev: 'listed_addr_out', to: 'joining', actions: ['note:reconcile!', 'join', 'wait_healthy'] },
  { from: 'creating', ev: 'listed_addr_late', to: 'joining', actions: ['note:reconcile!', 'join', 'wait_healthy'] },
  // The crash mid-clone: the command may still run on the hypervisor until the deadline.
  { from: 'creating', ev: 'listed_bare', to: 'same', actions: ['note:reconcile!', 'recheck'], check: (_r, a) => expect(a[1]).toEqual({ type: 'recheck', at: DEADLINE }) },
  { from: 'creating', ev: 'absent', to: 'same', actions: ['note:reconcile!', 'recheck'] },
  { from: 'creating', ev: 'listed_bare_late', to: 'destroying', actions: ['destroy'], check: (r) => expect(r?.error).toBe('found half-created at reconcile') },
  { from: 'creating', ev: 'absent_late', to: null, actions: ['leave_pool', 'note:reconcile!'] },

  // ---- joining
  { from: 'joining', ev: 'healthy', to: 'active', actions: ['note:healthy'] },
  { from: 'joining', ev: 'unhealthy', to: 'destroying', actions: ['alarm:PAIRLB_CLONE_UNHEALTHY', 'leave_pool', 'destroy'] },
  { from: 'joining', ev: 'listed_addr', to: 'joining', actions: ['join', 'wait_healthy'], check: (r) => expect(r?.since).toBe(at) },
  { from: 'joining', ev: 'listed_addr_out', to: 'joining', actions: ['join', 'wait_healthy'] },
  { from: 'joining', ev: 'listed_bare', to: 'joining', actions: ['join', 'wait_healthy'] },
  { from: 'joining', ev: 'absent', to: null, actions: ['leave_pool', 'alarm:PAIRLB_CLONE_VANISHED', 'note:reconcile!'] },

  // ---- active
  { from: 'active', ev: 'remove', to: 'removing', actions: ['drain'] },
  { from: 'active', ev: 'listed_addr', to: 'same', actions: NOTHING },
  { from: 'active', ev: 'listed_addr_out', to: 'joining', actions: ['join', 'wait_healthy'] },
  { from: 'active', ev: 'listed_bare', to: 'joining', actions: ['join', 'wait_healthy'] },
  { from: 'active', ev: 'absent', to: null, actions: ['leave_pool', 'alarm:PAIRLB_CLONE_VANISHED', 'note:reconcile!'] },

  // ---- removing
  { from: 'removing', ev: 'drained', to: 'destroying', actions: ['leave_pool', 'note:removed', 'destroy'] },
  { from: 'removing', ev: 'listed_addr', to: 'removing', actions: ['drain'], check: (_r, a) => expect(a[0]).toEqual({ type: 'drain', reason: 'resumed after restart' }) },
  { from: 'removing', ev: 'listed_addr_out', to: 'removing', actions: ['drain'] },
  { from: 'removing', ev: 'listed_bare', to: 'removing', actions: ['drain'] },
  { from: 'removing', ev: 'absent', to: null, actions: ['leave_pool', 'alarm:PAIRLB_CLONE_VANISHED', 'note:reconcile!'] },

  // ---- destroying
  { from: 'destroying', ev: 'destroyed', to: null, actions: ['note:destroyed'] },
  { from: 'destroying', ev: 'destroy_unconfirmed', to: 'destroying', actions: ['alarm:PAIRLB_DESTROY_FAILED', 'retry_later'], check: (r) => { expect(r?.error).toBe('still listed'); expect(r?.since).toBe(T0); } },
  { from: 'destroying', ev: 'listed_addr', to: 'same', actions: ['leave_pool', 'destroy'] },
  { from: 'destroying', ev: 'listed_addr_out', to: 'same', actions: ['leave_pool', 'destroy'] },
  { from: 'destroying', ev: 'listed_bare', to: 'same', actions: ['leave_pool', 'destroy'] },
  { from: 'destroying', ev: 'absent', to: null, actions: ['leave_pool', 'note:reconcile!'] },
];

const ALL_STATES: From[] = ['none', 'creating', 'joining', 'active', 'removing', 'destroying'];
/** The `*_late` events (after a creating record's deadline) only matter to `creating`. */
const LATE: EvName[] = ['listed_bare_late', 'absent_late', 'listed_addr_late'];
const eventsOf = (s: From): EvName[] => (Object.keys(E) as EvName[]).filter((e) => s === 'creating' || !LATE.includes(e));
const start = (from: From): CloneRecord | null => from === 'none' ? null : rec(from);

describe('clone lifecycle transition table', () => {
  it.each(rows.map((r) => [`${r.from} × ${r.ev} → ${r.to === null ? '(forgotten)' : r.to}`, r] as const))('%s', (_n, row) => {
    const before = start(row.from);
    const snapshot = JSON.stringify(before);
    const r = step(before, E[row.ev]);
    expect(JSON.stringify(before)).toBe(snapshot); // pure: the input is never mutated
    if (row.to === 'same') expect(r.record).toBe(before);
    else if (row.to === null) expect(r.record).toBeNull();
    else expect(r.record?.state).toBe(row.to);
    expect(types(r.actions)).toEqual(row.actions);
    row.check?.(r.record, r.actions);
  });

  // Every state × event not in the table changes nothing.
  const listed = new Set(rows.map((r) => `${r.from}|${r.ev}`));
  const ignored = ALL_STATES.flatMap((s) => eventsOf(s).filter((e) => !listed.has(`${s}|${e}`)).map((e) => [s, e] as const));
  it.each(ignored)('%s × %s → ignored', (from, ev) => {
    const before = start(from);
    const r = step(before, E[ev]);
    expect(r.record).toBe(before);
    expect(r.actions).toEqual([]);
  });

  it('every record state has a row for a reconcile that lists it and one that does not', () => {
    for (const s of ALL_STATES.filter((x) => x !== 'none')) {
      for (const ev of ['listed_addr', 'listed_addr_out', 'listed_bare', 'absent'] as const) expect(listed.has(`${s}|${ev}`), `${s} × ${ev}`).toBe(true);
    }
  });

  it('covers every state × event, and each row gives at most one asynchronous action, last, to a kept record', () => {
    let cells = 0;
    for (const s of ALL_STATES) {
      for (const ev of eventsOf(s)) {
        cells++;
        const r = step(start(s), E[ev]);
        const asyncIdx = r.actions.map((a, i) => ASYNC_ACTIONS.has(a.type) ? i : -1).filter((i) => i >= 0);
        expect(asyncIdx.length, `${s} × ${ev}`).toBeLessThanOrEqual(1);
        if (asyncIdx.length) {
          expect(asyncIdx[0], `${s} × ${ev}`).toBe(r.actions.length - 1);
          expect(r.record, `${s} × ${ev}`).not.toBeNull();
        }
        // Every record that is forgotten is logged (note with a log level) or was already destroyed/alarmed.
        if (s !== 'none' && r.record === null) expect(r.actions.some((a) => (a.type === 'note' && (a.log || a.event === 'destroyed'))), `${s} × ${ev}`).toBe(true);
      }
    }
    expect(cells).toBe(ALL_STATES.length * (Object.keys(E).length - LATE.length) + LATE.length);
  });

  it('a creating record past its deadline without one (old state file) is not kept forever', () => {
    const r = step(rec('creating', { deadline: undefined }), E.absent);
    expect(r.record).toBeNull();
  });
});

describe('adoptionLimit', () => {
  const r = (source: string, state: CloneState = 'active'): CloneRecord => ({ ...rec(state), name: `${source}-clone-${Math.random()}`, source });
  it.each([
    { records: [], perVds: 1, total: 2, want: undefined },
    { records: [r('vds-01')], perVds: 1, total: 2, want: 'max_clones_per_vds 1 reached for vds-01' },
    { records: [r('vds-01', 'destroying')], perVds: 1, total: 2, want: 'max_clones_per_vds 1 reached for vds-01' },
    { records: [r('vds-02'), r('vds-02')], perVds: 2, total: 2, want: 'max_clones 2 reached' },
    { records: [r('vds-02')], perVds: 1, total: 2, want: undefined },
  ])('$records.length record(s), per VDS $perVds, total $total → $want', ({ records, perVds, total, want }) => {
    expect(adoptionLimit(records, 'vds-01', perVds, total)).toBe(want);
  });
});
