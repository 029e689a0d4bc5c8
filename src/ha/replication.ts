import { deflateRaw, deflateRawSync, inflateRaw, inflateRawSync } from 'node:zlib';
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { z } from 'zod';
import type { Logger } from '../log.js';
import { parseStateDoc, type StateDoc, type StateStore } from '../state/store.js';
import { canonicalJson, compareVersions, formatVersion, total, type StateVersion, type VersionOrder } from '../state/version.js';
import type { HaRole } from './fsm.js';
import { chunkPayload, Reassembler } from './chunks.js';

/**
 * Replication of the runtime state between the two nodes (called from node.ts).
 *
 * Versions are version vectors + content hash (src/state/version.ts); adverts carry them
 * (advert-body.ts), so each node always knows how its state relates to the peer's:
 *
 *   same      nothing to do; this is also the acknowledgement of a document we sent
 *   ahead     we send our document (deflated JSON in State packets, chunks.ts) and resend it, with backoff,
 *             until the peer's adverts show our version — whatever the roles: the newer state wins
 *   behind    the peer does the same towards us
 *   diverged  both changed something while apart (or a node lost a change and made another):
 *             both send their document; the rule below decides, and both record a conflict
 *
 * The rule for a diverged state (docs/ha.md "Replicated state"): **the master's state wins**. The
 * node that holds the VIP once the pair has settled (both compute the same preferred node, so they
 * agree who that is) keeps its state; the other applies the master's document. Why it is safe:
 * the state that clients are being served with does not change at the heal; only the node that
 * serves nothing changes; the decision needs no clock and no tie-break beyond the one the role
 * election already made; and nothing is lost for good: the discarded document is written to
 * `state_dir/conflict-*.json` on both nodes, the differences are logged, counted and shown in the
 * status (admin API, stats page, /metrics) for the operator to re-apply what should be kept. No
 * merge: two edits of the same backend cannot be merged safely, and a partial merge would serve a
 * state that neither node ever had. auto_failback waits until both versions are the same.
 *
 * The loser sends its discarded document to the winner (so the winner can show the differences
 * too) and resends it until the winner's adverts acknowledge it (advert-body.ts tag 3).
 */

/** When to (re)send one outstanding document: at once, then with doubling gaps up to `max`. */
export interface RetryPolicy { first: number; max: number }

/**
 * Acknowledgement/resend bookkeeping for one outstanding item (a newer one replaces it). Pure:
 * the caller passes the clock and decides what "acknowledged" means.
 */
export class Outbox {
  private cur: { key: string; attempts: number; nextAt: number; since: number } | undefined;
  constructor(private readonly policy: RetryPolicy) {}

  /** Offer the item identified by `key`; true when it must be sent now. */
  offer(key: string, now: number): boolean {
    if (!this.cur || this.cur.key !== key) this.cur = { key, attempts: 0, nextAt: now, since: now };
    return now >= this.cur.nextAt;
  }

  /** It was sent at `now`: the next attempt waits first × 2^(attempts−1), at most max. */
  sent(now: number): void {
    if (!this.cur) return;
    this.cur.attempts++;
    this.cur.nextAt = now + Math.min(this.policy.first * 2 ** (this.cur.attempts - 1), this.policy.max);
  }

  ack(): void { this.cur = undefined; }

  get attempts(): number { return this.cur?.attempts ?? 0; }
  get key(): string | undefined { return this.cur?.key; }
  /** How long the current item has been waiting for its acknowledgement. */
  pendingMs(now: number): number | undefined { return this.cur ? now - this.cur.since : undefined; }
}

/** What to do with a document received from the peer. */
export type DocDecision = 'apply' | 'same' | 'stale' | 'lose' | 'win' | 'unsettled';

/**
 * `order`: the received document's version compared with ours. A newer document is applied
 * whatever the roles; a diverged one only by the non-master, from the master ("the master's
 * state wins"); while both or neither are master the pair has not settled: wait (it is resent).
 */
export function decideOnDoc(order: VersionOrder, senderRole: HaRole, ourRole: HaRole): DocDecision {
  switch (order) {
    case 'ahead': return 'apply';
    case 'same': return 'same';
    case 'behind': return 'stale';
    case 'diverged':
      if (senderRole === 'master' && ourRole !== 'master') return 'lose';
      if (ourRole === 'master' && senderRole !== 'master') return 'win';
      return 'unsettled';
  }
}

/** Whether we send our document, from how our version relates to the peer's. */
export function mustSend(order: VersionOrder): boolean {
  return order === 'ahead' || order === 'diverged';
}

/**
 * Human-readable differences between two documents, per item (backends by listen/name, clones by
 * name), at most `max` lines.
 */
/**
 * Sections whose discarded side loses nothing an operator must re-apply: TLS session ticket keys
 * (each node made its own while apart; losing one costs a client a full handshake). The master's
 * still wins; such a difference alone is no conflict.
 */
const UNREPORTED_SECTIONS = new Set(['tls_tickets']);

export function diffDocs(kept: StateDoc, discarded: StateDoc, keptBy: string, discardedBy: string, max = 50): string[] {
  const out: string[] = [];
  const short = (v: unknown): string => { const s = canonicalJson(v); return s.length > 160 ? s.slice(0, 157) + '...' : s; };
  const items = (sec: unknown): Map<string, unknown> | undefined => {
    if (!sec || typeof sec !== 'object') return undefined;
    const arr = (sec as Record<string, unknown>).entries ?? (sec as Record<string, unknown>).clones;
    if (!Array.isArray(arr)) return undefined;
    const m = new Map<string, unknown>();
    arr.forEach((x, i) => {
      const o = x as Record<string, unknown>;
      const k = o && typeof o === 'object' && typeof o.name === 'string' ? (typeof o.listen === 'string' ? `${o.listen}/${o.name}` : o.name) : `#${i}`;
      m.set(k, x);
    });
    return m;
  };
  for (const s of [...new Set([...Object.keys(kept.sections), ...Object.keys(discarded.sections)])].sort()) {
    if (UNREPORTED_SECTIONS.has(s)) continue;
    const a = kept.sections[s], b = discarded.sections[s];
    if (canonicalJson(a) === canonicalJson(b)) continue;
    const ma = items(a), mb = items(b);
    if (!ma || !mb) { out.push(`${s}: differs (${keptBy} kept ${short(a)}; ${discardedBy} discarded ${short(b)})`); continue; }
    for (const k of [...new Set([...ma.keys(), ...mb.keys()])].sort()) {
      const x = ma.get(k), y = mb.get(k);
      if (x === undefined) out.push(`${s} ${k}: only in ${discardedBy}'s discarded state ${short(y)}`);
      else if (y === undefined) out.push(`${s} ${k}: only in ${keptBy}'s kept state ${short(x)}`);
      else if (canonicalJson(x) !== canonicalJson(y)) out.push(`${s} ${k}: ${keptBy} kept ${short(x)}; ${discardedBy} discarded ${short(y)}`);
    }
  }
  return out.length > max ? [...out.slice(0, max), `… ${out.length - max} more`] : out;
}

export interface ConflictRecord {
  at: string;
  rule: string;
  winner: string;
  loser: string;
  /** What this node did: kept its state (winner) or discarded it (loser). */
  here: 'kept' | 'discarded';
  kept: string;
  discarded: string;
  differences: string[];
  /** Both documents, on this node. */
  file?: string;
}

export interface ReplicationStatus {
  enabled: boolean;
  version: StateVersion & { text: string; total: number };
  peer?: StateVersion & { text: string; total: number };
  /** How our state relates to the peer's: same / ahead / behind / diverged / unknown (peer silent). */
  sync: VersionOrder | 'unknown';
  /** A sent document not acknowledged yet: since how long, after how many attempts. */
  unacked?: { ms: number; attempts: number };
  sent: number;
  resent: number;
  applied: number;
  invalid: number;
  /** `open`: not acknowledged by an operator yet (POST /v1/ha/conflicts/ack). */
  conflicts: { count: number; open: number; last?: ConflictRecord; acknowledged?: { at: string; by: string } };
}

export interface ReplicationHost {
  log: Logger;
  store: StateStore;
  node: string;
  peer: string;
  enabled: boolean;
  role(): HaRole;
  peerAlive(): boolean;
  /** Send a State packet; `attempt` 0 = the first copy (the host picks the path(s)). */
  send(payload: Buffer, attempt: number): void;
  /**
   * 'async': (de)compression on libuv's thread pool, off the calling event loop (the daemon: a
   * large document deflated synchronously stalls the loop for milliseconds). 'sync' (default):
   * within the call, for the pure tests that drive two replicators step by step.
   */
  codec?: 'sync' | 'async';
}

const envelopeSchema = z.object({ kind: z.enum(['state', 'discarded']), doc: z.unknown() }).passthrough();
const RULE = "the master's state wins";
/** Largest inflated document accepted from the peer. */
const MAX_DOC = 64 * 1024 * 1024;

export class Replicator {
  private peerVersion: StateVersion | undefined;
  /** The peer's adverts carry no version (an older pairlb): replication is not tracked. */
  private peerLegacy = false;
  private peerConflictAck: string | undefined;
  private readonly out: Outbox;
  private readonly outDiscarded: Outbox;
  /** Our document discarded in favour of the master's, until the master acknowledges it. */
  private discarded: StateDoc | undefined;
  /** Hash of the last peer document recorded as discarded (advertised as tag 3). */
  conflictAck: string | undefined;
  private readonly recorded = new Set<string>();
  private readonly counts = { sent: 0, resent: 0, applied: 0, invalid: 0 };
  private readonly conflicts: { count: number; acked: number; last?: ConflictRecord; ack?: { at: string; by: string } } = { count: 0, acked: 0 };
  private lastAlarmAttempts = 0;
  private readonly chunks = new Reassembler();
  /** Deflated bytes of the last state document sent (resent as they are). */
  private lastPayload: Buffer | undefined;
  /** codec 'async': a state document being deflated (its number), and received ones inflated in order. */
  private deflating = 0;
  private deflateGen = 0;
  private inflating: Promise<void> = Promise.resolve();

  constructor(private readonly h: ReplicationHost, policy: RetryPolicy) {
    this.out = new Outbox(policy);
    this.outDiscarded = new Outbox(policy);
  }

  /** Version fields of our adverts. */
  advertVersion(): StateVersion { return this.h.store.currentVersion(); }

  onPeerAdvert(version: StateVersion | undefined, conflictAck: string | undefined, now: number): void {
    this.peerLegacy = !version;
    this.peerVersion = version;
    this.peerConflictAck = conflictAck;
    this.evaluate(now);
  }

  /** The peer is dead: what it had is unknown until it is heard again. */
  onPeerGone(): void {
    this.peerVersion = undefined;
    this.out.ack();
    this.lastAlarmAttempts = 0;
  }

  /** The peer asks for our document: send it now. */
  onRequest(now: number): void {
    this.out.ack();
    this.evaluate(now);
  }

  /** The operator has resolved the conflicts recorded so far; returns how many were open. */
  acknowledgeConflicts(by: string): number {
    const open = this.conflicts.count - this.conflicts.acked;
    this.conflicts.acked = this.conflicts.count;
    this.conflicts.ack = { at: new Date().toISOString(), by };
    this.h.log.info({ open, by }, 'replicated state conflicts acknowledged');
    return open;
  }

  /** In sync with the peer (auto_failback waits for this). */
  inSync(): boolean {
    if (!this.h.enabled || this.peerLegacy) return true;
    return !!this.peerVersion && compareVersions(this.h.store.currentVersion(), this.peerVersion) === 'same';
  }

  order(): VersionOrder | 'unknown' {
    if (!this.peerVersion || !this.h.peerAlive()) return 'unknown';
    return compareVersions(this.h.store.currentVersion(), this.peerVersion);
  }

  /** Send what must be sent now: after a peer advert, a local change, a role change, each tick. */
  evaluate(now: number): void {
    if (!this.h.enabled || !this.peerVersion || !this.h.peerAlive()) return;
    const ours = this.h.store.currentVersion();
    const order = compareVersions(ours, this.peerVersion);
    if (!mustSend(order)) { this.out.ack(); this.lastAlarmAttempts = 0; }
    else if (this.out.offer(`${ours.hash}/${total(ours)}`, now)) {
      const attempt = this.out.attempts;
      if (this.sendDoc('state', attempt === 0 ? this.h.store.snapshot() : undefined, attempt, order)) {
        this.out.sent(now);
        this.alarm(now);
      }
    }
    const d = this.discarded;
    if (d) {
      if (this.peerConflictAck === d.hash) { this.discarded = undefined; this.outDiscarded.ack(); }
      else if (this.outDiscarded.offer(d.hash, now) && this.sendDoc('discarded', d, this.outDiscarded.attempts, 'diverged', true)) this.outDiscarded.sent(now);
    }
  }

  /** A document not acknowledged after 5 attempts is an alarm (then every 20th attempt). */
  private alarm(now: number): void {
    const n = this.out.attempts;
    if (n >= 5 && (this.lastAlarmAttempts === 0 || n - this.lastAlarmAttempts >= 20)) {
      this.lastAlarmAttempts = n;
      this.h.log.warn({ attempts: n, unackedMs: this.out.pendingMs(now), ours: formatVersion(this.h.store.currentVersion()), peer: formatVersion(this.peerVersion) }, 'replicated state not acknowledged by the peer: still resending');
    }
  }

  /**
   * `doc` undefined: resend the bytes of the last document sent, so the chunks of all sends of one
   * version carry the same transfer id and complete each other at the receiver.
   */
  private sendDoc(kind: 'state' | 'discarded', doc: StateDoc | undefined, attempt: number, order: VersionOrder | 'diverged', oneShot = false): boolean {
    let payload: Buffer;
    if (doc && this.h.codec === 'async') {
      const gen = oneShot ? 0 : ++this.deflateGen;
      if (!oneShot) { this.deflating = gen; this.lastPayload = undefined; }
      deflateRaw(Buffer.from(JSON.stringify({ kind, doc })), (err, out) => {
        if (!oneShot) { if (gen !== this.deflateGen) return; this.deflating = 0; } // a newer document replaced it
        if (err) { this.h.log.error({ err }, 'could not compress the replicated state'); return; }
        if (!oneShot) this.lastPayload = out;
        this.sendChunks(out, attempt, kind, order);
      });
      if (attempt === 0) this.counts.sent++; else this.counts.resent++;
      return true;
    }
    if (doc) {
      payload = deflateRawSync(Buffer.from(JSON.stringify({ kind, doc })));
      if (!oneShot) this.lastPayload = payload;
    } else if (this.lastPayload) payload = this.lastPayload;
    else if (this.deflating) return true; // still being compressed: it goes out when done
    else return this.sendDoc(kind, this.h.store.snapshot(), attempt, order);
    if (!this.sendChunks(payload, attempt, kind, order)) return false;
    if (attempt === 0) this.counts.sent++; else this.counts.resent++;
    return true;
  }

  private sendChunks(payload: Buffer, attempt: number, kind: string, order: string): boolean {
    try {
      for (const c of chunkPayload(payload)) this.h.send(c, attempt);
    } catch (e) {
      this.h.log.error({ err: e, bytes: payload.length }, 'could not replicate state');
      return false;
    }
    this.h.log.debug({ kind, bytes: payload.length, attempt, order }, 'replicated state sent');
    return true;
  }

  /** A State packet from the peer (authenticated); `senderRole` from its header. */
  onState(payload: Buffer, senderRole: HaRole, now: number): void {
    if (!this.h.enabled) return;
    const whole = this.chunks.add(payload, now);
    if (whole.kind === 'partial') return;
    if (whole.kind === 'bad') { this.invalid('malformed', whole.why); return; }
    if (this.h.codec === 'async') {
      // In arrival order, each after the previous one was handled.
      const bytes = whole.doc;
      this.inflating = this.inflating.then(() => new Promise<void>((resolve) => {
        inflateRaw(bytes, { maxOutputLength: MAX_DOC }, (err, out) => {
          try { this.onDoc(err ? err : out, senderRole, Date.now()); } catch (e) { this.h.log.error({ err: e }, 'replicated state not handled'); }
          resolve();
        });
      }));
      return;
    }
    let out: Buffer | Error;
    try { out = inflateRawSync(whole.doc, { maxOutputLength: MAX_DOC }); } catch (e) { out = e as Error; }
    this.onDoc(out, senderRole, now);
  }

  private onDoc(inflated: Buffer | Error, senderRole: HaRole, now: number): void {
    let raw: unknown;
    try {
      if (inflated instanceof Error) throw inflated;
      raw = JSON.parse(inflated.toString('utf8'));
    } catch (e) {
      this.invalid('undecodable', (e as Error).message);
      return;
    }
    // A pairlb without versions in its adverts sends the bare document (rolling upgrade).
    if (raw && typeof raw === 'object' && !('kind' in raw) && 'sections' in raw) raw = { kind: 'state', doc: raw };
    const env = envelopeSchema.safeParse(raw);
    const r = env.success ? parseStateDoc(env.data.doc) : { ok: false as const, error: 'not a state envelope' };
    if (!env.success || !r.ok) { this.invalid('invalid', r.ok ? '' : r.error); return; }
    const doc = r.doc;
    const theirs: StateVersion = { vv: doc.vv, hash: doc.hash };
    if (env.data.kind === 'discarded') {
      // The peer applied our state and tells us what it gave up.
      this.record('kept', this.h.store.snapshot(), this.h.node, doc, this.h.peer);
      this.conflictAck = doc.hash;
      return;
    }
    this.peerVersion = theirs;
    const ours = this.h.store.currentVersion();
    const decision = decideOnDoc(compareVersions(theirs, ours), senderRole, this.h.role());
    switch (decision) {
      case 'apply':
        this.h.store.apply(doc);
        this.counts.applied++;
        this.h.log.info({ before: formatVersion(ours), after: formatVersion(theirs), peer: this.h.peer }, 'replicated state applied');
        break;
      case 'lose': {
        const mine = this.h.store.snapshot();
        this.h.store.apply(doc);
        this.counts.applied++;
        if (this.record('discarded', doc, this.h.peer, mine, this.h.node)) this.discarded = mine;
        else this.h.log.info({ before: formatVersion(ours), after: formatVersion(theirs), peer: this.h.peer }, 'replicated state applied (same content under another version)');
        break;
      }
      case 'win':
        this.record('kept', this.h.store.snapshot(), this.h.node, doc, this.h.peer);
        this.conflictAck = doc.hash;
        break;
      case 'unsettled':
        this.h.log.debug({ ours: formatVersion(ours), peer: formatVersion(theirs), senderRole, role: this.h.role() }, 'replicated state diverged: waiting for the roles to settle');
        break;
      case 'same': case 'stale':
        break;
    }
    this.evaluate(now);
  }

  private invalid(what: string, detail: string): void {
    const n = ++this.counts.invalid;
    if (n <= 10 || n % 100 === 0) this.h.log.error({ detail, count: n }, `replicated state from the peer ${what} (authenticated, so a bug or version skew): not applied`);
  }

  /**
   * Record a conflict once per discarded document; false when the two contents are the same
   * (another version of one content, e.g. files of the old format on both nodes): nothing is lost.
   */
  private record(here: 'kept' | 'discarded', kept: StateDoc, keptBy: string, discarded: StateDoc, discardedBy: string): boolean {
    if (this.recorded.has(discarded.hash)) return true;
    const differences = diffDocs(kept, discarded, keptBy, discardedBy);
    if (!differences.length) return false;
    this.recorded.add(discarded.hash);
    this.conflicts.count++;
    const at = new Date().toISOString();
    let file: string | undefined;
    const base = this.h.store.file;
    if (base) {
      file = join(dirname(base), `conflict-${at.replace(/[:.]/g, '-')}-${discardedBy}.json`);
      try {
        mkdirSync(dirname(file), { recursive: true, mode: 0o750 });
        writeFileSync(file, JSON.stringify({ at, rule: RULE, winner: keptBy, loser: discardedBy, differences, kept, discarded }, null, 1), { mode: 0o640 });
      } catch (e) { this.h.log.error({ err: e, file }, 'could not save the conflicting state'); file = undefined; }
    }
    this.conflicts.last = { at, rule: RULE, winner: keptBy, loser: discardedBy, here, kept: formatVersion(kept), discarded: formatVersion(discarded), differences, file };
    this.h.log.warn({ conflict: this.conflicts.count, rule: RULE, winner: keptBy, loser: discardedBy, here, kept: this.conflicts.last.kept, discarded: this.conflicts.last.discarded, differences, file },
      here === 'kept' ? `replicated state conflict: ${discardedBy}'s changes made while apart are discarded (${RULE}); re-apply what must be kept` : `replicated state conflict: this node's changes made while apart are discarded for ${keptBy}'s state (${RULE}); re-apply what must be kept`);
    return true;
  }

  status(now: number): ReplicationStatus {
    const v = this.h.store.currentVersion();
    const pend = this.out.pendingMs(now);
    return {
      enabled: this.h.enabled,
      version: { ...v, text: formatVersion(v), total: total(v) },
      peer: this.peerVersion ? { ...this.peerVersion, text: formatVersion(this.peerVersion), total: total(this.peerVersion) } : undefined,
      sync: this.order(),
      unacked: pend !== undefined && this.out.attempts > 0 ? { ms: pend, attempts: this.out.attempts } : undefined,
      ...this.counts,
      conflicts: { count: this.conflicts.count, open: this.conflicts.count - this.conflicts.acked, last: this.conflicts.last, acknowledged: this.conflicts.ack },
    };
  }
}
