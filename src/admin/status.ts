/**
 * `pairlb status` verdict, as a Nagios plugin (pure; unit-tested with a table of cases):
 *
 *   0 OK        every listen has a backend UP, no backend DOWN, and (with HA) a master and a live peer
 *   1 WARNING   a backend is DOWN (DRAIN and MAINT are operator choices, not warnings),
 *               or the HA peer is silent, or the replicated state diverged or had a conflict
 *               (changes discarded by the reconciliation: docs/ha.md "Replicated state"),
 *               or a StatusNote at level 1: the scaler (recent alarms, a failed reconcile, unknown
 *               clones), ACME (an order failed: the old certificate still serves), certificates
 *   2 CRITICAL  a listen section has no backend UP, or (with HA) there is no master, or a note at level 2
 *   3 UNKNOWN   the CLI could not get an answer it understands (the CLI sets this itself)
 *
 * One line: "PAIRLB WARNING - web: 1/2 up (web2 DOWN); role master, peer lb-02 seen 0.3s ago | …perfdata".
 */

export interface ListenSummary { name: string; up: number; down: string[]; drain: number; maint: number; total: number }
export interface PairSummary {
  /** False when HA is not configured (standalone). */
  configured: boolean;
  role: string;
  peer?: string;
  /** ms since the last heartbeat from the peer; undefined = never heard. */
  peerAgeMs?: number;
  /** The HA module's own judgement, when it gives one. */
  peerAlive?: boolean;
  /** Peer role as last advertised. */
  peerRole?: string;
  /** Replicated state compared with the peer's: same, ahead, behind, diverged, unknown. */
  stateSync?: string;
  /** Conflicts reconciled since start (the master's state won; something was discarded). */
  stateConflicts?: number;
}

/**
 * Health that a part of the control plane adds to the verdict (App.addStatusNotes): one short
 * phrase each, level 1 WARNING or 2 CRITICAL. Providers: the scaler (src/scale/scaler.ts
 * statusNotes); certificate expiry (src/tls/status.ts certVerdict, registered by the ProxyManager:
 * level 1 under 14 days, 2 when expired or under 3 days).
 */
export interface StatusNote {
  /** Who says it (scale, acme, tls): for the JSON of /v1/status. */
  source: string;
  level: 1 | 2;
  /** The phrase in the verdict line, starting with what it is about (`scale: …`, `acme shop: …`). */
  text: string;
}

export interface Verdict { code: 0 | 1 | 2 | 3; label: 'OK' | 'WARNING' | 'CRITICAL' | 'UNKNOWN'; text: string }

const LABEL = ['OK', 'WARNING', 'CRITICAL', 'UNKNOWN'] as const;

export function verdict(listens: readonly ListenSummary[], pair: PairSummary, notes: readonly StatusNote[] = []): Verdict {
  let code: 0 | 1 | 2 = 0;
  const parts: string[] = [];
  for (const l of listens) {
    let s = `${l.name}: ${l.up}/${l.total} up`;
    const bits: string[] = [];
    if (l.down.length) bits.push(l.down.slice(0, 5).join(', ') + (l.down.length > 5 ? ` +${l.down.length - 5}` : '') + ' DOWN');
    if (l.drain) bits.push(`${l.drain} drain`);
    if (l.maint) bits.push(`${l.maint} maint`);
    if (bits.length) s += ` (${bits.join('; ')})`;
    parts.push(s);
    if (l.up === 0) code = 2;
    else if (l.down.length && code < 1) code = 1;
  }
  if (!listens.length) { code = 2; parts.push('no listen section'); }
  if (pair.configured) {
    const peerSilent = pair.peerAlive === false || (pair.peerAlive === undefined && pair.peerAgeMs === undefined);
    const someMaster = pair.role === 'master' || (!peerSilent && pair.peerRole === 'master');
    let s = `role ${pair.role}`;
    if (pair.peer) s += peerSilent ? `, peer ${pair.peer} SILENT` + (pair.peerAgeMs !== undefined ? ` for ${(pair.peerAgeMs / 1000).toFixed(1)}s` : '') : `, peer ${pair.peer}${pair.peerRole ? ' ' + pair.peerRole : ''} seen ${((pair.peerAgeMs ?? 0) / 1000).toFixed(1)}s ago`;
    parts.push(s);
    if (!someMaster) { code = 2; parts.push('NO MASTER'); }
    else if (peerSilent && code < 1) code = 1;
    if (pair.stateSync === 'diverged') { parts.push('state DIVERGED from the peer'); if (code < 1) code = 1; }
    if (pair.stateConflicts) { parts.push(`state CONFLICT x${pair.stateConflicts} (changes discarded, see the stats page)`); if (code < 1) code = 1; }
  } else parts.push(`role ${pair.role}`);
  for (const n of notes) {
    parts.push(n.text.replace(/\s*[\r\n|]+\s*/g, ' '));
    if (n.level > code) code = n.level;
  }
  const perf = listens.map((l) => `${l.name}_up=${l.up};;1:;0;${l.total}`).join(' ');
  return { code, label: LABEL[code], text: `PAIRLB ${LABEL[code]} - ${parts.join('; ')}${perf ? ' | ' + perf : ''}` };
}

export function unknown(reason: string): Verdict { return { code: 3, label: 'UNKNOWN', text: `PAIRLB UNKNOWN - ${reason}` }; }
