/**
 * The HA state machine: pure, `step(state, event) → {state, actions}`. No clock, no I/O: the shell
 * (node.ts) turns sockets and timers into events and carries out the actions.
 *
 *                 initdead / peer dead / peer fault / peer hands over / failback_due
 *          ┌──────────┐   (probe first when nobody told us the VIP is free)   ┌──────────┐
 *   INIT ─►│  BACKUP  │ ─────────────────────────────────────────────────────► │  MASTER  │
 *          │          │ ◄───────────────────────────────────────────────────── │          │
 *          └──────────┘   peer master and preferred (split brain settled,      └──────────┘
 *               ▲ │        failback), or handed over at stop                       │
 *     healthy   │ │ not healthy (public interface down / proxy not serving)        │
 *               │ ▼                                                                 │
 *          ┌──────────┐ ◄──────────────────────── not healthy (VIP released) ──────┘
 *          │  FAULT   │
 *          └──────────┘
 *
 *   MASTER ── vip_lost (we were hung for the watchdog's timeout: it removed the VIP) ──► BACKUP
 *
 * "Preferred" = higher priority, ties broken by the lower node name, so both nodes always agree.
 * A master that hears another master (split brain healing, keepalived#166) settles it at once:
 * the preferred one stays and re-announces with gratuitous ARP, the other releases.
 * Make-before-break: when the peer says it is handing over (graceful stop) or when we fail back, we
 * take the VIP without a probe (the peer still holds it) and the peer releases only after it has
 * seen our MASTER advert, which we send after the VIP is added and announced.
 */

export type HaRole = 'init' | 'backup' | 'master' | 'fault';

export interface PeerView {
  name: string;
  role: HaRole;
  priority: number;
  /** The peer is stopping and asks us to take the VIP. */
  handover: boolean;
  healthy: boolean;
}

export interface FsmState {
  role: HaRole;
  self: { name: string; priority: number; autoFailback: boolean; probe: boolean };
  healthy: boolean;
  /** Last advert of a live peer; null = never heard or dead. */
  peer: PeerView | null;
  /** An RFC 5227 probe is running before we claim the VIP. */
  claiming: boolean;
  /** Graceful stop in progress. */
  stopping: boolean;
  /** The failback timer is running (shell owns the clock). */
  failbackArmed: boolean;
  /** Terminal: stop finished. */
  stopped: boolean;
}

export type FsmEvent =
  | { type: 'initdead' }
  | { type: 'advert'; peer: PeerView }
  | { type: 'peer_dead' }
  | { type: 'health'; ok: boolean; reason: string }
  /** answered = the VIP is in use by a live host (ARP answer and, when checked, it serves); why: reason for the role change when it is free. */
  | { type: 'probe_done'; answered: boolean; why?: string }
  /** The VIP watchdog removed our VIP (or we found our event loop stalled that long). */
  | { type: 'vip_lost'; reason: string }
  | { type: 'retry_claim' }
  | { type: 'failback_due' }
  | { type: 'stop' }
  | { type: 'handover_timeout' };

export type Action =
  | { type: 'probe' }
  | { type: 'take_vip' }
  | { type: 'release_vip' }
  | { type: 'garp' }
  | { type: 'send_advert' }
  | { type: 'set_role'; role: HaRole; reason: string }
  | { type: 'arm_failback' }
  | { type: 'cancel_failback' }
  | { type: 'retry_later' }
  | { type: 'stopped'; reason: string };

export interface StepResult { state: FsmState; actions: Action[] }

export function initialState(self: FsmState['self'], healthy = true): FsmState {
  return { role: 'init', self, healthy, peer: null, claiming: false, stopping: false, failbackArmed: false, stopped: false };
}

/** True when `a` should hold the VIP rather than `b` (both healthy). */
export function prefers(a: { name: string; priority: number }, b: { name: string; priority: number }): boolean {
  return a.priority !== b.priority ? a.priority > b.priority : a.name < b.name;
}

type Draft = { s: FsmState; actions: Action[] };

function setRole(d: Draft, role: HaRole, reason: string): void {
  if (d.s.role === 'master' && role !== 'master') d.actions.push({ type: 'release_vip' });
  if (role === 'master' && d.s.role !== 'master') d.actions.push({ type: 'take_vip' });
  if (d.s.role !== role) {
    d.s.role = role;
    d.actions.push({ type: 'set_role', role, reason });
  }
  d.actions.push({ type: 'send_advert' });
}

function disarmFailback(d: Draft): void {
  if (d.s.failbackArmed) { d.s.failbackArmed = false; d.actions.push({ type: 'cancel_failback' }); }
}

/** Become master, after an RFC 5227 probe unless someone told us the VIP is free or handed to us. */
function claim(d: Draft, reason: string, probe: boolean): void {
  if (!d.s.healthy) { setRole(d, 'fault', reason + ', but not healthy'); return; }
  disarmFailback(d);
  if (probe && d.s.self.probe) {
    if (!d.s.claiming) { d.s.claiming = true; d.actions.push({ type: 'probe' }); }
    if (d.s.role === 'init') setRole(d, 'backup', reason + ': probing the VIP before claiming it');
    return;
  }
  d.s.claiming = false;
  setRole(d, 'master', reason);
}

function toBackup(d: Draft, reason: string): void {
  d.s.claiming = false;
  setRole(d, 'backup', reason);
}

export function step(state: FsmState, ev: FsmEvent): StepResult {
  const d: Draft = { s: { ...state, self: state.self, peer: state.peer }, actions: [] };
  const s = d.s;
  if (s.stopped) return { state: s, actions: [] };

  if (s.stopping) {
    // Only the handover matters now.
    if (ev.type === 'advert') {
      s.peer = ev.peer;
      if (s.role === 'master' && ev.peer.role === 'master') {
        s.role = 'backup';
        s.stopped = true;
        d.actions.push({ type: 'release_vip' }, { type: 'set_role', role: 'backup', reason: 'handed over: peer holds and announced the VIP' }, { type: 'stopped', reason: 'handed over' });
      }
    } else if (ev.type === 'handover_timeout' || ev.type === 'peer_dead' || ev.type === 'vip_lost' || (ev.type === 'health' && !ev.ok)) {
      if (ev.type === 'peer_dead') s.peer = null;
      if (s.role === 'master') d.actions.push({ type: 'release_vip' });
      s.stopped = true;
      d.actions.push({ type: 'stopped', reason: ev.type === 'handover_timeout' ? 'handover timed out: VIP released anyway' : `handover aborted (${ev.type})` });
    }
    return { state: s, actions: d.actions };
  }

  switch (ev.type) {
    case 'initdead':
      if (s.role === 'init' && !s.peer) claim(d, 'initdead expired and no peer heard', true);
      break;

    case 'advert': {
      const p = ev.peer;
      const before = s.peer;
      s.peer = p;
      if (!s.healthy) { if (s.role !== 'fault') setRole(d, 'fault', 'not healthy'); break; }
      const peerHolds = p.role === 'master' && !p.handover;
      if (p.handover && p.role === 'master' && s.role !== 'master') { claim(d, 'peer hands over (graceful stop)', false); break; }
      switch (s.role) {
        case 'init':
          if (peerHolds) toBackup(d, `peer ${p.name} is master`);
          else if (p.role === 'fault' || !p.healthy) claim(d, `peer ${p.name} is in fault`, false);
          else if (prefers(s.self, p)) claim(d, `preferred over peer ${p.name} (${p.role})`, true);
          else toBackup(d, `peer ${p.name} is preferred`);
          break;
        case 'backup':
          if (peerHolds) {
            if (s.claiming) { s.claiming = false; }
            if (s.self.autoFailback && prefers(s.self, p) && !s.failbackArmed) { s.failbackArmed = true; d.actions.push({ type: 'arm_failback' }); }
          } else if (p.role === 'fault' || !p.healthy) claim(d, `peer ${p.name} is in fault`, false);
          else if (prefers(s.self, p)) claim(d, `no master and preferred over peer ${p.name} (${p.role})`, true);
          break;
        case 'master':
          disarmFailback(d);
          if (peerHolds && !prefers(s.self, p)) {
            toBackup(d, `peer ${p.name} is master and preferred (priority ${p.priority} vs ${s.self.priority})`);
          } else if (before === null || (peerHolds && before.role !== 'master')) {
            // The peer is back after a silence (it may have been master meanwhile, and its first
            // advert we hear may already say BACKUP), or it claims the VIP while we are preferred:
            // we stay and re-announce so clients that followed it come back (keepalived#166).
            // Once per episode.
            d.actions.push({ type: 'garp' }, { type: 'send_advert' });
          }
          break;
        case 'fault':
          break;
      }
      break;
    }

    case 'peer_dead':
      s.peer = null;
      disarmFailback(d);
      if (s.role === 'backup' || s.role === 'init') claim(d, 'peer dead: no heartbeat for deadtime on any path', true);
      break;

    case 'retry_claim':
      if (!s.peer && (s.role === 'backup' || s.role === 'init') && !s.claiming) claim(d, 'peer still silent: probing the VIP again', true);
      break;

    case 'health':
      if (s.healthy === ev.ok) break;
      s.healthy = ev.ok;
      if (!ev.ok) {
        disarmFailback(d);
        s.claiming = false;
        setRole(d, 'fault', ev.reason);
      } else if (s.role === 'fault' || s.role === 'init') {
        const p = s.peer;
        if (s.role === 'init' && !p) { /* initdead decides */ }
        else if (!p) claim(d, `${ev.reason}; no peer`, true);
        else if (p.role === 'master' && !p.handover) {
          toBackup(d, `${ev.reason}; peer ${p.name} is master`);
          if (s.self.autoFailback && prefers(s.self, p)) { s.failbackArmed = true; d.actions.push({ type: 'arm_failback' }); }
        } else if (p.role === 'fault' || !p.healthy) claim(d, `${ev.reason}; peer ${p.name} is in fault`, false);
        else if (prefers(s.self, p)) claim(d, `${ev.reason}; preferred over peer ${p.name}`, true);
        else toBackup(d, `${ev.reason}; peer ${p.name} is preferred`);
      }
      break;

    case 'probe_done':
      if (!s.claiming) break;
      s.claiming = false;
      if (ev.answered) {
        // RFC 5227 §2.1.1: someone else uses the address; claiming it would split the clients.
        if (s.role !== 'backup') setRole(d, 'backup', 'VIP answers on the network: not claiming it');
        d.actions.push({ type: 'retry_later' });
      } else if (!s.healthy) setRole(d, 'fault', 'not healthy');
      else if (s.peer && s.peer.role === 'master' && !s.peer.handover) { /* the peer came back meanwhile */ }
      else setRole(d, 'master', ev.why ?? 'VIP free (RFC 5227 probe unanswered)');
      break;

    case 'vip_lost':
      // We were hung (SIGSTOP, stuck event loop) for about deadtime: the watchdog took the VIP away
      // and the peer may hold it by now. Never advertise MASTER again from here: come back as
      // BACKUP, forget what we knew of the peer (old news), and claim again only through a probe.
      if (s.role !== 'master') break;
      s.peer = null;
      disarmFailback(d);
      toBackup(d, ev.reason);
      d.actions.push({ type: 'retry_later' });
      break;

    case 'failback_due':
      if (!s.failbackArmed) break;
      s.failbackArmed = false;
      if (s.role === 'backup' && s.healthy && s.peer && s.peer.role === 'master' && s.self.autoFailback && prefers(s.self, s.peer)) {
        claim(d, `auto_failback: preferred over peer ${s.peer.name}`, false);
      }
      break;

    case 'stop':
      s.stopping = true;
      disarmFailback(d);
      s.claiming = false;
      if (s.role === 'master' && s.peer && s.peer.healthy && s.peer.role === 'backup') {
        d.actions.push({ type: 'send_advert' }); // carries HANDOVER; the shell arms handover_timeout
      } else {
        if (s.role === 'master') d.actions.push({ type: 'release_vip' });
        s.stopped = true;
        d.actions.push({ type: 'stopped', reason: s.role === 'master' ? 'no healthy backup to hand over to: VIP released' : 'not master' });
      }
      break;

    case 'handover_timeout':
      break;
  }
  return { state: s, actions: d.actions };
}
