import { parseHostPort } from '../config/types.js';

/**
 * A clone's life as a pure transition table: `step(record, event) → {record, actions}`. No clock,
 * no I/O: the scaler (scaler.ts) turns SSH results, health states and `list` into events, persists
 * the returned record (null = forget it) BEFORE carrying out the actions, and feeds the outcome of
 * the one asynchronous action (always the last one) back as the next event.
 *
 *   (none) ─clone_start─> creating ─clone_ok─> joining ─healthy─> active ─remove─> removing ─drained─> destroying ─destroyed─> (none)
 *            │                │ clone_failed: destroying     │ unhealthy: destroying                       │ destroy_unconfirmed: stays, retried
 *            │                │ (not started: forgotten)
 *            └─found_unknown─> joining (adopt, within the limits) | destroying (destroy) | (none) (report)
 *
 *   `listed` (reconcile: what `list` on the record's hypervisor shows) is a row of every state:
 *   a `creating` record is kept, whatever list shows, until its `deadline` (start + connect + clone
 *   timeouts): a crashed balancer's clone command may still be running on the hypervisor. After
 *   the deadline: listed with an address → join; listed without → destroy; not listed → forgotten.
 *
 * Every forgotten or adopted record comes with a `note` (logged by the shell).
 */

export type CloneState = 'creating' | 'joining' | 'active' | 'removing' | 'destroying';

export interface CloneRecord {
  name: string;
  /** The VDS (backend name in `listen`) this is a clone of. */
  source: string;
  listen: string;
  hypervisor: string;
  state: CloneState;
  address?: string;
  /** SNMP agent of the clone, host[:port]; default: the address's host and the VDS's SNMP port. */
  snmp?: string;
  /** When the clone command was started (or the clone adopted), ms since the epoch. */
  createdAt: number;
  /**
   * Until when the clone command may still be running on the hypervisor (createdAt + connect +
   * clone timeouts + 1 s). While `creating` and before it, the record is never dropped.
   */
  deadline?: number;
  since: number;
  adopted?: boolean;
  /** Last failure of a step (destroy failed…), for the stats page. */
  error?: string;
}

/** What `list` showed for the record's name; null = not listed. */
export interface ListedView { address?: string; snmp?: string }

export type LifeEvent =
  | { type: 'clone_start'; at: number; name: string; source: string; listen: string; hypervisor: string; deadline: number; reason: string }
  | { type: 'clone_ok'; at: number; address: string; snmp?: string; ms: number }
  /** started: the command ran (a VM may exist); false: never ran (connect/auth/host key). */
  | { type: 'clone_failed'; at: number; started: boolean; reason: string }
  | { type: 'healthy'; at: number }
  | { type: 'unhealthy'; at: number; why: string }
  | { type: 'remove'; at: number; reason: string }
  | { type: 'drained'; at: number; reason: string }
  /** `list` after `destroy` no longer shows it. */
  | { type: 'destroyed'; at: number }
  | { type: 'destroy_unconfirmed'; at: number; why: string; retryMs: number }
  /** Reconcile: `list` on the record's hypervisor answered. */
  | { type: 'listed'; at: number; vm: ListedView | null; inPool: boolean }
  /** Reconcile: a clone-named VM of a configured VDS without a record. */
  | { type: 'found_unknown'; at: number; name: string; source: string; listen: string; hypervisor: string; vm: ListedView; policy: 'report' | 'adopt' | 'destroy'; limit?: string };

export type LifeAction =
  /** Run `clone` (async → clone_ok | clone_failed). */
  | { type: 'clone' }
  /** Add to the pool with health down (no-op if already there). */
  | { type: 'join' }
  /** Wait for the health checker (async → healthy | unhealthy). */
  | { type: 'wait_healthy' }
  /** Admin DRAIN, wait for no request in flight or timeouts.drain (async → drained). */
  | { type: 'drain'; reason: string }
  /** Remove from the pool if it is there. */
  | { type: 'leave_pool'; reason: string }
  /** `destroy` then `list` (async → destroyed | destroy_unconfirmed). */
  | { type: 'destroy' }
  /** Reconcile again after retry_interval. */
  | { type: 'retry_later' }
  /** Reconcile again by `at` (a clone command may still be running until then). */
  | { type: 'recheck'; at: number }
  | { type: 'alarm'; code: string; message: string }
  /** A scale event for the stats page; with `log`, also a log line at that level. */
  | { type: 'note'; event: string; message: string; log?: 'info' | 'warn' };

export interface LifeResult { record: CloneRecord | null; actions: LifeAction[] }

/** Action types whose outcome is fed back as the next event; at most one per step, always last. */
export const ASYNC_ACTIONS: ReadonlySet<LifeAction['type']> = new Set(['clone', 'wait_healthy', 'drain', 'destroy']);

const to = (r: CloneRecord, state: CloneState, at: number, patch: Partial<CloneRecord> = {}): CloneRecord => ({ ...r, ...patch, state, since: at });
const same = (r: CloneRecord | null): LifeResult => ({ record: r, actions: [] });
const validAddress = (vm: ListedView | null): vm is ListedView & { address: string } => !!vm?.address && !!parseHostPort(vm.address);

/** Not listed any more: out of the pool, record forgotten, logged (alarmed when it was serving). */
function vanished(r: CloneRecord, alarm: boolean): LifeResult {
  const actions: LifeAction[] = [{ type: 'leave_pool', reason: `scale: clone no longer exists on ${r.hypervisor}` }];
  if (alarm) actions.push({ type: 'alarm', code: 'PAIRLB_CLONE_VANISHED', message: `clone ${r.name} (${r.state}) is not listed on ${r.hypervisor}; removed from the pool` });
  actions.push({ type: 'note', event: 'reconcile', message: `${r.name} (${r.state}) not on ${r.hypervisor}: record dropped`, log: 'warn' });
  return { record: null, actions };
}

const joinActions = (): LifeAction[] => [{ type: 'join' }, { type: 'wait_healthy' }];

function creating(r: CloneRecord, e: LifeEvent): LifeResult {
  switch (e.type) {
    case 'clone_ok':
      return {
        record: to(r, 'joining', e.at, { address: e.address, snmp: e.snmp }),
        actions: [{ type: 'note', event: 'cloned', message: `${r.name} created on ${r.hypervisor} at ${e.address} in ${e.ms} ms` }, ...joinActions()],
      };
    case 'clone_failed':
      // The command ran: a VM may exist (garbage output, timeout, crash half-way). Destroy and confirm.
      if (e.started) return { record: to(r, 'destroying', e.at, { error: e.reason }), actions: [{ type: 'destroy' }] };
      return { record: null, actions: [{ type: 'note', event: 'dropped', message: `${r.name}: clone never ran on ${r.hypervisor} (${e.reason}); record dropped`, log: 'info' }] };
    case 'listed': {
      const running = e.at < (r.deadline ?? 0);
      if (validAddress(e.vm)) {
        return {
          record: to(r, 'joining', e.at, { address: e.vm.address, snmp: e.vm.snmp }),
          actions: [{ type: 'note', event: 'reconcile', message: `${r.name} (creating) listed on ${r.hypervisor} at ${e.vm.address}: joining`, log: 'info' }, ...joinActions()],
        };
      }
      if (running) {
        // A crashed balancer's clone command may still run (the SSH command outlives it): wait.
        const seen = e.vm ? 'listed without an address' : 'not listed yet';
        return {
          record: r,
          actions: [
            { type: 'note', event: 'reconcile', message: `${r.name} (creating) ${seen} on ${r.hypervisor}; kept until ${new Date(r.deadline!).toISOString()} (its clone command may still be running)`, log: 'info' },
            { type: 'recheck', at: r.deadline! },
          ],
        };
      }
      if (e.vm) return { record: to(r, 'destroying', e.at, { error: 'found half-created at reconcile' }), actions: [{ type: 'destroy' }] };
      return vanished(r, false);
    }
    default: return same(r);
  }
}

function joining(r: CloneRecord, e: LifeEvent): LifeResult {
  switch (e.type) {
    case 'healthy':
      return {
        record: to(r, 'active', e.at, { error: undefined }),
        actions: [{ type: 'note', event: 'healthy', message: `${r.name} UP after ${e.at - r.createdAt} ms; taking traffic (slow start)` }],
      };
    case 'unhealthy':
      return {
        record: to(r, 'destroying', e.at, { error: e.why }),
        actions: [
          { type: 'alarm', code: 'PAIRLB_CLONE_UNHEALTHY', message: `clone ${r.name} ${e.why}; destroying it` },
          { type: 'leave_pool', reason: `scale: clone ${e.why}` },
          { type: 'destroy' },
        ],
      };
    case 'listed':
      if (!e.vm) return vanished(r, true);
      return { record: to(r, 'joining', e.at), actions: joinActions() };
    default: return same(r);
  }
}

function active(r: CloneRecord, e: LifeEvent): LifeResult {
  switch (e.type) {
    case 'remove': return { record: to(r, 'removing', e.at), actions: [{ type: 'drain', reason: e.reason }] };
    case 'listed':
      if (!e.vm) return vanished(r, true);
      if (e.inPool) return same(r);
      return { record: to(r, 'joining', e.at), actions: joinActions() };
    default: return same(r);
  }
}

function removing(r: CloneRecord, e: LifeEvent): LifeResult {
  switch (e.type) {
    case 'drained':
      return {
        record: to(r, 'destroying', e.at),
        actions: [
          { type: 'leave_pool', reason: `scale: removed (${e.reason})` },
          { type: 'note', event: 'removed', message: `${r.name} removed from ${r.listen}` },
          { type: 'destroy' },
        ],
      };
    case 'listed':
      if (!e.vm) return vanished(r, true);
      return { record: to(r, 'removing', e.at), actions: [{ type: 'drain', reason: 'resumed after restart' }] };
    default: return same(r);
  }
}

function destroying(r: CloneRecord, e: LifeEvent): LifeResult {
  switch (e.type) {
    case 'destroyed':
      return { record: null, actions: [{ type: 'note', event: 'destroyed', message: `${r.name} destroyed on ${r.hypervisor} (confirmed by list)` }] };
    case 'destroy_unconfirmed':
      return {
        record: { ...r, error: e.why },
        actions: [
          { type: 'alarm', code: 'PAIRLB_DESTROY_FAILED', message: `clone ${r.name} on ${r.hypervisor} not confirmed destroyed: ${e.why}; retry in ${e.retryMs} ms` },
          { type: 'retry_later' },
        ],
      };
    case 'listed':
      if (!e.vm) return vanished(r, false);
      return { record: r, actions: [{ type: 'leave_pool', reason: 'scale: destroying' }, { type: 'destroy' }] };
    default: return same(r);
  }
}

function none(e: LifeEvent): LifeResult {
  if (e.type === 'clone_start') {
    const r: CloneRecord = { name: e.name, source: e.source, listen: e.listen, hypervisor: e.hypervisor, state: 'creating', createdAt: e.at, deadline: e.deadline, since: e.at };
    return { record: r, actions: [{ type: 'note', event: 'clone-started', message: `clone ${e.source} as ${e.name} on ${e.hypervisor} (${e.reason})` }, { type: 'clone' }] };
  }
  if (e.type !== 'found_unknown') return same(null);
  const alarm = (what: string): LifeAction => ({ type: 'alarm', code: 'PAIRLB_UNKNOWN_CLONE', message: `clone ${e.name} on ${e.hypervisor} is not known to the scaler: ${what}` });
  const base = { name: e.name, source: e.source, listen: e.listen, hypervisor: e.hypervisor, createdAt: e.at, since: e.at };
  if (e.policy === 'destroy') {
    return { record: { ...base, state: 'destroying', error: 'unknown clone' }, actions: [alarm('destroying it'), { type: 'destroy' }] };
  }
  if (e.policy === 'adopt') {
    if (!validAddress(e.vm)) return { record: null, actions: [alarm('cannot adopt it (list gives no address); reported only')] };
    // Adoption honours the limits: over them the clone is reported (it stays listed as unknown
    // and is adopted at a later reconcile once a slot is free), never joined and never destroyed.
    if (e.limit) return { record: null, actions: [alarm(`not adopting it: ${e.limit}; reported only`)] };
    return {
      record: { ...base, state: 'joining', address: e.vm.address, snmp: e.vm.snmp, adopted: true },
      actions: [alarm('adopting it'), { type: 'note', event: 'adopted', message: `${e.name} on ${e.hypervisor} adopted at ${e.vm.address}`, log: 'info' }, ...joinActions()],
    };
  }
  return { record: null, actions: [alarm('reported only')] };
}

/** One transition. `record` null = no record (a new clone, or an unknown VM found by list). */
export function step(record: CloneRecord | null, e: LifeEvent): LifeResult {
  if (!record) return none(e);
  switch (record.state) {
    case 'creating': return creating(record, e);
    case 'joining': return joining(record, e);
    case 'active': return active(record, e);
    case 'removing': return removing(record, e);
    case 'destroying': return destroying(record, e);
  }
}

/**
 * Why adopting one more clone of `source` would break a limit, or undefined. `records` are all
 * records (every state counts, as in the policy's limits).
 */
export function adoptionLimit(records: Iterable<CloneRecord>, source: string, maxPerVds: number, maxTotal: number): string | undefined {
  let mine = 0, total = 0;
  for (const r of records) { total++; if (r.source === source) mine++; }
  if (mine >= maxPerVds) return `max_clones_per_vds ${maxPerVds} reached for ${source}`;
  if (total >= maxTotal) return `max_clones ${maxTotal} reached`;
  return undefined;
}
