import { describe, expect, it } from 'vitest';
import { initialState, prefers, step, type Action, type FsmEvent, type FsmState, type HaRole, type PeerView } from '../../src/ha/fsm.js';

/**
 * Table tests of every transition of the HA state machine. Each row: a state (built from a few
 * knobs), one event, the expected role and the exact list of actions.
 */

const ME = { name: 'lb1', priority: 150, autoFailback: true, probe: true };
const peer = (role: HaRole, o: Partial<PeerView> = {}): PeerView => ({ name: 'lb2', role, priority: 100, handover: false, healthy: role !== 'fault', ...o });
const hiPeer = (role: HaRole, o: Partial<PeerView> = {}): PeerView => peer(role, { priority: 200, ...o });

function st(role: HaRole, o: Partial<FsmState> = {}): FsmState {
  return { ...initialState(ME), role, ...o };
}

const A = (...types: string[]): string[] => types;
const types = (as: Action[]): string[] => as.map((a) => a.type === 'set_role' ? `set_role:${a.role}` : a.type);

interface Row { name: string; state: FsmState; ev: FsmEvent; role: HaRole; actions: string[]; check?: (s: FsmState, a: Action[]) => void }

const rows: Row[] = [
  // ---- INIT
  { name: 'INIT initdead, no peer → probe (BACKUP while probing)', state: st('init'), ev: { type: 'initdead' }, role: 'backup', actions: A('probe', 'set_role:backup', 'send_advert'), check: (s) => expect(s.claiming).toBe(true) },
  { name: 'INIT initdead, no peer, probe disabled → MASTER', state: st('init', { self: { ...ME, probe: false } }), ev: { type: 'initdead' }, role: 'master', actions: A('take_vip', 'set_role:master', 'send_advert') },
  { name: 'INIT initdead after a peer was heard → nothing', state: st('init', { peer: peer('backup') }), ev: { type: 'initdead' }, role: 'init', actions: [] },
  { name: 'INIT hears MASTER → BACKUP', state: st('init'), ev: { type: 'advert', peer: peer('master') }, role: 'backup', actions: A('set_role:backup', 'send_advert') },
  { name: 'INIT hears FAULT peer → MASTER without probe', state: st('init'), ev: { type: 'advert', peer: peer('fault') }, role: 'master', actions: A('take_vip', 'set_role:master', 'send_advert') },
  { name: 'INIT hears BACKUP, we are preferred → probe', state: st('init'), ev: { type: 'advert', peer: peer('backup') }, role: 'backup', actions: A('probe', 'set_role:backup', 'send_advert') },
  { name: 'INIT hears INIT, peer preferred → BACKUP', state: st('init'), ev: { type: 'advert', peer: hiPeer('init') }, role: 'backup', actions: A('set_role:backup', 'send_advert') },
  { name: 'INIT hears handing-over MASTER → MASTER without probe', state: st('init'), ev: { type: 'advert', peer: peer('master', { handover: true }) }, role: 'master', actions: A('take_vip', 'set_role:master', 'send_advert') },
  { name: 'INIT not healthy → FAULT', state: st('init'), ev: { type: 'health', ok: false, reason: 'eth0 down' }, role: 'fault', actions: A('set_role:fault', 'send_advert') },
  { name: 'INIT unhealthy hears a peer → FAULT', state: st('init', { healthy: false }), ev: { type: 'advert', peer: peer('master') }, role: 'fault', actions: A('set_role:fault', 'send_advert') },
  { name: 'INIT peer dead → probe', state: st('init'), ev: { type: 'peer_dead' }, role: 'backup', actions: A('probe', 'set_role:backup', 'send_advert') },

  // ---- BACKUP
  { name: 'BACKUP hears MASTER (not preferred) → stays', state: st('backup', { self: { ...ME, priority: 50 } }), ev: { type: 'advert', peer: peer('master') }, role: 'backup', actions: [] },
  { name: 'BACKUP preferred hears MASTER → arms failback', state: st('backup'), ev: { type: 'advert', peer: peer('master') }, role: 'backup', actions: A('arm_failback'), check: (s) => expect(s.failbackArmed).toBe(true) },
  { name: 'BACKUP preferred, failback armed, hears MASTER → nothing new', state: st('backup', { failbackArmed: true, peer: peer('master') }), ev: { type: 'advert', peer: peer('master') }, role: 'backup', actions: [] },
  { name: 'BACKUP preferred without auto_failback hears MASTER → stays', state: st('backup', { self: { ...ME, autoFailback: false } }), ev: { type: 'advert', peer: peer('master') }, role: 'backup', actions: [] },
  { name: 'BACKUP failback_due → MASTER without probe (make-before-break)', state: st('backup', { failbackArmed: true, peer: peer('master') }), ev: { type: 'failback_due' }, role: 'master', actions: A('take_vip', 'set_role:master', 'send_advert') },
  { name: 'BACKUP failback_due but disarmed → nothing', state: st('backup', { peer: peer('master') }), ev: { type: 'failback_due' }, role: 'backup', actions: [] },
  { name: 'BACKUP peer hands over → MASTER without probe', state: st('backup', { peer: hiPeer('master') }), ev: { type: 'advert', peer: hiPeer('master', { handover: true }) }, role: 'master', actions: A('take_vip', 'set_role:master', 'send_advert') },
  { name: 'BACKUP peer FAULT → MASTER without probe', state: st('backup', { peer: hiPeer('master') }), ev: { type: 'advert', peer: hiPeer('fault') }, role: 'master', actions: A('take_vip', 'set_role:master', 'send_advert') },
  { name: 'BACKUP peer BACKUP, we preferred → probe', state: st('backup'), ev: { type: 'advert', peer: peer('backup') }, role: 'backup', actions: A('probe') },
  { name: 'BACKUP peer BACKUP, peer preferred → wait', state: st('backup'), ev: { type: 'advert', peer: hiPeer('backup') }, role: 'backup', actions: [] },
  { name: 'BACKUP peer dead → probe', state: st('backup', { peer: hiPeer('master') }), ev: { type: 'peer_dead' }, role: 'backup', actions: A('probe'), check: (s) => { expect(s.claiming).toBe(true); expect(s.peer).toBeNull(); } },
  { name: 'BACKUP peer dead disarms failback', state: st('backup', { peer: peer('master'), failbackArmed: true }), ev: { type: 'peer_dead' }, role: 'backup', actions: A('cancel_failback', 'probe') },
  { name: 'BACKUP probe unanswered → MASTER', state: st('backup', { claiming: true }), ev: { type: 'probe_done', answered: false }, role: 'master', actions: A('take_vip', 'set_role:master', 'send_advert') },
  { name: 'BACKUP VIP answers ARP but does not serve → MASTER with that reason', state: st('backup', { claiming: true }), ev: { type: 'probe_done', answered: false, why: 'VIP answers ARP but does not serve (timeout after 500 ms)' }, role: 'master', actions: A('take_vip', 'set_role:master', 'send_advert'), check: (_s, a) => expect(a.find((x) => x.type === 'set_role')).toMatchObject({ reason: 'VIP answers ARP but does not serve (timeout after 500 ms)' }) },
  { name: 'BACKUP probe answered → stays, retries later', state: st('backup', { claiming: true }), ev: { type: 'probe_done', answered: true }, role: 'backup', actions: A('retry_later') },
  { name: 'BACKUP probe result after the master came back → stays', state: st('backup', { claiming: true, peer: hiPeer('master') }), ev: { type: 'probe_done', answered: false }, role: 'backup', actions: [] },
  { name: 'BACKUP master heard while probing cancels the claim', state: st('backup', { claiming: true, self: { ...ME, priority: 50 } }), ev: { type: 'advert', peer: peer('master') }, role: 'backup', actions: [], check: (s) => expect(s.claiming).toBe(false) },
  { name: 'BACKUP stale probe result → ignored', state: st('backup'), ev: { type: 'probe_done', answered: false }, role: 'backup', actions: [] },
  { name: 'BACKUP retry_claim, peer still silent → probe', state: st('backup'), ev: { type: 'retry_claim' }, role: 'backup', actions: A('probe') },
  { name: 'BACKUP retry_claim, peer back → nothing', state: st('backup', { peer: hiPeer('master') }), ev: { type: 'retry_claim' }, role: 'backup', actions: [] },
  { name: 'BACKUP not healthy → FAULT', state: st('backup', { peer: hiPeer('master') }), ev: { type: 'health', ok: false, reason: 'proxy not serving' }, role: 'fault', actions: A('set_role:fault', 'send_advert') },
  { name: 'BACKUP stop → stopped at once', state: st('backup', { peer: hiPeer('master') }), ev: { type: 'stop' }, role: 'backup', actions: A('stopped'), check: (s) => expect(s.stopped).toBe(true) },

  // ---- MASTER
  { name: 'MASTER hears BACKUP → stays', state: st('master', { peer: peer('backup') }), ev: { type: 'advert', peer: peer('backup') }, role: 'master', actions: [] },
  { name: 'MASTER hears a peer back from silence → re-announces (it may have held the VIP)', state: st('master', { peer: null }), ev: { type: 'advert', peer: peer('backup') }, role: 'master', actions: A('garp', 'send_advert') },
  { name: 'MASTER peer dead → stays', state: st('master', { peer: peer('backup') }), ev: { type: 'peer_dead' }, role: 'master', actions: [] },
  { name: 'MASTER hears preferred MASTER (split brain / failback) → BACKUP, releases', state: st('master', { self: { ...ME, priority: 50 }, peer: peer('backup') }), ev: { type: 'advert', peer: peer('master') }, role: 'backup', actions: A('release_vip', 'set_role:backup', 'send_advert') },
  { name: 'MASTER preferred hears MASTER → stays and re-announces (keepalived#166)', state: st('master', { peer: null }), ev: { type: 'advert', peer: peer('master') }, role: 'master', actions: A('garp', 'send_advert') },
  { name: 'MASTER preferred hears MASTER again → no GARP storm', state: st('master', { peer: peer('master') }), ev: { type: 'advert', peer: peer('master') }, role: 'master', actions: [] },
  { name: 'MASTER equal priority: lower name wins', state: st('master', { self: { ...ME, priority: 100, name: 'lb3' } }), ev: { type: 'advert', peer: peer('master') }, role: 'backup', actions: A('release_vip', 'set_role:backup', 'send_advert') },
  { name: 'MASTER hears handing-over MASTER → stays', state: st('master', { peer: hiPeer('backup') }), ev: { type: 'advert', peer: hiPeer('master', { handover: true }) }, role: 'master', actions: [] },
  { name: 'MASTER not healthy → FAULT, releases', state: st('master', { peer: peer('backup') }), ev: { type: 'health', ok: false, reason: 'eth0 down' }, role: 'fault', actions: A('release_vip', 'set_role:fault', 'send_advert') },
  { name: 'MASTER stop with healthy backup → handover advert, waits', state: st('master', { peer: peer('backup') }), ev: { type: 'stop' }, role: 'master', actions: A('send_advert'), check: (s) => { expect(s.stopping).toBe(true); expect(s.stopped).toBe(false); } },
  { name: 'MASTER stop without peer → releases, stopped', state: st('master'), ev: { type: 'stop' }, role: 'master', actions: A('release_vip', 'stopped') },
  { name: 'MASTER stop with FAULT peer → releases, stopped', state: st('master', { peer: peer('fault') }), ev: { type: 'stop' }, role: 'master', actions: A('release_vip', 'stopped') },
  { name: 'MASTER stopping: peer announces MASTER → release, stopped', state: st('master', { stopping: true, peer: peer('backup') }), ev: { type: 'advert', peer: peer('master') }, role: 'backup', actions: A('release_vip', 'set_role:backup', 'stopped') },
  { name: 'MASTER stopping: peer still BACKUP → keep waiting', state: st('master', { stopping: true, peer: peer('backup') }), ev: { type: 'advert', peer: peer('backup') }, role: 'master', actions: [] },
  { name: 'MASTER stopping: handover timeout → release anyway', state: st('master', { stopping: true, peer: peer('backup') }), ev: { type: 'handover_timeout' }, role: 'master', actions: A('release_vip', 'stopped') },
  { name: 'MASTER stopping: peer dies → release, stopped', state: st('master', { stopping: true, peer: peer('backup') }), ev: { type: 'peer_dead' }, role: 'master', actions: A('release_vip', 'stopped') },
  { name: 'MASTER stopping ignores health recovery', state: st('master', { stopping: true, peer: peer('backup') }), ev: { type: 'health', ok: true, reason: 'x' }, role: 'master', actions: [] },
  { name: 'MASTER vip_lost (hung: the watchdog removed the VIP) → BACKUP, releases, forgets the peer, retries later', state: st('master', { peer: peer('backup') }), ev: { type: 'vip_lost', reason: 'stalled' }, role: 'backup', actions: A('release_vip', 'set_role:backup', 'send_advert', 'retry_later'), check: (s) => expect(s.peer).toBeNull() },
  { name: 'MASTER vip_lost with failback armed → disarmed first', state: st('master', { peer: peer('backup'), failbackArmed: true }), ev: { type: 'vip_lost', reason: 'stalled' }, role: 'backup', actions: A('cancel_failback', 'release_vip', 'set_role:backup', 'send_advert', 'retry_later') },
  { name: 'MASTER stopping: vip_lost → release, stopped', state: st('master', { stopping: true, peer: peer('backup') }), ev: { type: 'vip_lost', reason: 'stalled' }, role: 'master', actions: A('release_vip', 'stopped') },
  { name: 'BACKUP vip_lost (late report) → nothing', state: st('backup', { peer: hiPeer('master') }), ev: { type: 'vip_lost', reason: 'stalled' }, role: 'backup', actions: [] },
  { name: 'MASTER failback_due (stale) → nothing', state: st('master', { peer: peer('backup') }), ev: { type: 'failback_due' }, role: 'master', actions: [] },

  // ---- FAULT
  { name: 'FAULT hears adverts → stays', state: st('fault', { healthy: false }), ev: { type: 'advert', peer: peer('master') }, role: 'fault', actions: [] },
  { name: 'FAULT peer dead → stays', state: st('fault', { healthy: false, peer: peer('master') }), ev: { type: 'peer_dead' }, role: 'fault', actions: [] },
  { name: 'FAULT healthy, peer MASTER (not preferred) → BACKUP', state: st('fault', { healthy: false, self: { ...ME, priority: 50 }, peer: peer('master') }), ev: { type: 'health', ok: true, reason: 'eth0 up' }, role: 'backup', actions: A('set_role:backup', 'send_advert') },
  { name: 'FAULT healthy, peer MASTER, preferred → BACKUP + failback armed', state: st('fault', { healthy: false, peer: peer('master') }), ev: { type: 'health', ok: true, reason: 'eth0 up' }, role: 'backup', actions: A('set_role:backup', 'send_advert', 'arm_failback') },
  { name: 'FAULT healthy, no peer → probe', state: st('fault', { healthy: false }), ev: { type: 'health', ok: true, reason: 'eth0 up' }, role: 'fault', actions: A('probe') },
  { name: 'FAULT healthy, peer FAULT → MASTER', state: st('fault', { healthy: false, peer: peer('fault') }), ev: { type: 'health', ok: true, reason: 'eth0 up' }, role: 'master', actions: A('take_vip', 'set_role:master', 'send_advert') },
  { name: 'FAULT healthy, peer BACKUP preferred → BACKUP', state: st('fault', { healthy: false, peer: hiPeer('backup') }), ev: { type: 'health', ok: true, reason: 'eth0 up' }, role: 'backup', actions: A('set_role:backup', 'send_advert') },
  { name: 'FAULT healthy, probe unanswered → MASTER', state: st('fault', { claiming: true }), ev: { type: 'probe_done', answered: false }, role: 'master', actions: A('take_vip', 'set_role:master', 'send_advert') },
  { name: 'FAULT stop → stopped', state: st('fault', { healthy: false }), ev: { type: 'stop' }, role: 'fault', actions: A('stopped') },
  { name: 'FAULT peer hands over but we are unhealthy → stays FAULT', state: st('fault', { healthy: false }), ev: { type: 'advert', peer: hiPeer('master', { handover: true }) }, role: 'fault', actions: [] },
];

describe('ha fsm: every transition', () => {
  it.each(rows)('$name', (r) => {
    const before = structuredClone(r.state);
    const { state, actions } = step(r.state, r.ev);
    expect(state.role).toBe(r.role);
    expect(types(actions)).toEqual(r.actions);
    r.check?.(state, actions);
    expect(r.state).toEqual(before); // pure: the input is never mutated
  });

  it('a stopped machine ignores everything', () => {
    const s = st('backup', { stopped: true });
    for (const ev of [{ type: 'initdead' }, { type: 'peer_dead' }, { type: 'advert', peer: peer('fault') }] as FsmEvent[]) expect(step(s, ev).actions).toEqual([]);
  });

  it('role changes carry a reason', () => {
    const { actions } = step(st('backup', { peer: hiPeer('master') }), { type: 'advert', peer: hiPeer('master', { handover: true }) });
    expect(actions.find((a) => a.type === 'set_role')).toMatchObject({ role: 'master', reason: 'peer hands over (graceful stop)' });
  });

  it('preference is total and antisymmetric', () => {
    const a = { name: 'a', priority: 100 }, b = { name: 'b', priority: 100 }, c = { name: 'c', priority: 101 };
    expect([prefers(a, b), prefers(b, a)]).toEqual([true, false]);
    expect([prefers(c, a), prefers(a, c)]).toEqual([true, false]);
  });

  it('two nodes started together converge on exactly one master', () => {
    const self2 = { name: 'lb2', priority: 100, autoFailback: true, probe: false };
    let n1 = initialState({ ...ME, probe: false }), n2 = initialState(self2);
    const view = (s: FsmState): PeerView => ({ name: s.self.name, role: s.role, priority: s.self.priority, handover: s.stopping && s.role === 'master', healthy: s.healthy });
    for (let i = 0; i < 4; i++) {
      const v1 = view(n1), v2 = view(n2);
      n1 = step(n1, { type: 'advert', peer: v2 }).state;
      n2 = step(n2, { type: 'advert', peer: v1 }).state;
    }
    expect([n1.role, n2.role]).toEqual(['master', 'backup']);
  });
});
