import { describe, expect, it } from 'vitest';
import { convertHeartbeat, heartbeatTime, parseIpResource, repairTiming, PAIRLB_TIMING } from '../../src/import/heartbeat.js';
import { haSchema } from '../../src/ha/config.js';

/** ha.cf + haresources + authkeys → ha: (issue 15). heartbeat times are seconds unless `ms`. */

const hb = (hacf: string, haresources = 'lb1 IPaddr::10.0.0.1/24/eth0\n', authkeys?: string, opts = {}) => convertHeartbeat({
  hacf: { text: hacf, file: 'ha.cf' }, haresources: { text: haresources, file: 'haresources' }, ...(authkeys ? { authkeys: { text: authkeys, file: 'authkeys' } } : {}),
}, opts);

describe('heartbeat values', () => {
  it.each([['5', 5000], ['30', 30000], ['500ms', 500], ['1.5', 1500], ['2s', 2000], ['x', undefined], ['5m', undefined]])('time %s → %s ms', (v, ms) => expect(heartbeatTime(v)).toBe(ms));

  it.each([
    ['IPaddr::10.0.0.1/24/eth0', { ip: '10.0.0.1', prefix: 24, iface: 'eth0' }],
    ['IPaddr2::10.0.0.1/16/ens18/10.0.255.255', { ip: '10.0.0.1', prefix: 16, iface: 'ens18' }],
    ['IPaddr::10.0.0.1', { ip: '10.0.0.1', prefix: undefined, iface: undefined }],
    ['10.0.0.1', { ip: '10.0.0.1', prefix: undefined, iface: undefined }],
    ['httpd', undefined], ['IPaddr::10.0.0.1/33', undefined],
  ])('resource %s', (res, want) => expect(parseIpResource(res)).toEqual(want));
});

describe('timing repairs (pairlb refuses what heartbeat only misuses)', () => {
  it.each<[string, Partial<typeof PAIRLB_TIMING>, Partial<typeof PAIRLB_TIMING>, string[]]>([
    ['classic values pass unchanged', { keepalive: 2000, warntime: 10000, deadtime: 30000, initdead: 120000 }, {}, []],
    ['warntime 10 > deadtime 5 → half of deadtime', { keepalive: 1000, warntime: 10000, deadtime: 5000, initdead: 60000 }, { warntime: 2500 }, ['warntime']],
    ['warntime = deadtime is refused too', { keepalive: 1000, warntime: 5000, deadtime: 5000, initdead: 60000 }, { warntime: 2500 }, ['warntime']],
    ['deadtime under two keepalives', { keepalive: 2000, warntime: 2000, deadtime: 3000, initdead: 60000 }, { deadtime: 4000 }, ['deadtime']],
    ['warntime under keepalive', { keepalive: 2000, warntime: 1000, deadtime: 30000, initdead: 60000 }, { warntime: 2000 }, ['warntime']],
    ['initdead under deadtime → 2 × deadtime', { keepalive: 2000, warntime: 10000, deadtime: 30000, initdead: 10000 }, { initdead: 60000 }, ['initdead']],
  ])('%s', (_n, t, changed, keys) => {
    const input = { ...PAIRLB_TIMING, ...t };
    const { timing, fixes } = repairTiming(input, {});
    expect(timing).toEqual({ ...input, ...changed });
    expect(fixes.map((f) => f.key)).toEqual(keys);
  });
});

describe('ha.cf', () => {
  const classic = 'keepalive 2\ndeadtime 30\nwarntime 10\ninitdead 120\nudpport 694\nbcast eth1\nauto_failback on\nnode lb1\nnode lb2\n';

  it('the classic file: seconds kept, lb1 (haresources owner) is this node with the higher priority', () => {
    const r = hb(classic);
    expect(r.global).toEqual({ node: 'lb1' });
    expect(r.ha).toMatchObject({
      key_file: '/etc/pairlb/ha.key', priority: 150, keepalive: '2s', warntime: '10s', deadtime: '30s', initdead: '2m', handover_timeout: '4s', auto_failback: true,
      peer: { name: 'lb2' }, vip: { address: '10.0.0.1/24', interface: 'eth0' },
    });
    expect(r.result.todo).toEqual(['ha.node.dedicated: this node\'s address on the heartbeat link (eth1), port 694', 'ha.peer.dedicated: lb2\'s address on the heartbeat link (eth1), port 694']);
    expect(haSchema.safeParse(r.ha).success).toBe(true);
  });

  it('--node lb2: the other side, lower priority', () => {
    const r = hb(classic, undefined, undefined, { node: 'lb2' });
    expect(r.global.node).toBe('lb2');
    expect(r.ha).toMatchObject({ priority: 100, peer: { name: 'lb1' } });
  });

  it('ucast: the address on this machine is ours, the other the peer', () => {
    const r = hb('ucast eth1 10.0.1.1\nucast eth1 10.0.1.2\nudpport 700\nnode lb1\nnode lb2\n', undefined, undefined, { localAddresses: ['127.0.0.1', '10.0.1.1'] });
    expect(r.ha).toMatchObject({ node: { dedicated: '10.0.1.1:700' }, peer: { name: 'lb2', dedicated: '10.0.1.2:700' } });
    expect(r.result.todo).toEqual([]);
  });

  it('ms suffix, and warntime 10 > deadtime 5 flagged with the fix', () => {
    const r = hb('keepalive 500ms\ndeadtime 5\nwarntime 10\ninitdead 20\nnode a\nnode b\n', 'a IPaddr::10.0.0.1/24/eth0\n');
    expect(r.ha).toMatchObject({ keepalive: '500ms', deadtime: '5s', warntime: '2500ms', initdead: '20s' });
    expect(r.result.unmapped).toEqual([{ at: 'ha.cf:3', text: 'warntime 10 (seconds)', why: 'warntime 10 (seconds) is not shorter than deadtime 5 (seconds): the peer would be declared dead before a late heartbeat is ever reported, and pairlb refuses it; written as 2500ms (half of deadtime). Fix: warntime below deadtime (in ha.cf too)' }]);
    expect(haSchema.safeParse(r.ha).success).toBe(true);
  });

  it.each([
    ['mcast eth1 225.0.0.1 694 1 0', 'pairlb has no multicast heartbeats: unicast to peer.dedicated (or node.broadcast)'],
    ['serial /dev/ttyS0', 'pairlb has no serial heartbeats: give it a second network path (node.public/peer.public)'],
    ['crm respawn', 'pairlb is not a cluster resource manager: it holds one VIP for one pair'],
    ['auto_failback legacy', 'auto_failback legacy: pairlb has on/off only (legacy has no equivalent)'],
    ['ping 10.0.0.254', 'pairlb has no ping nodes: it goes FAULT when vip.interface is down or its own listeners stop answering (ha.self_check)'],
  ])('%s is listed as not mapped', (line, why) => {
    expect(hb(`node lb1\nnode lb2\n${line}\n`).result.unmapped).toEqual([{ at: 'ha.cf:3', text: line, why }]);
  });
});

describe('haresources and authkeys', () => {
  it('other resources and a second group are listed; haproxy needs nothing', () => {
    const r = hb('node lb1\nnode lb2\n', 'lb1 IPaddr::10.0.0.1/24/eth0 IPaddr::10.0.0.2/24/eth0 \\\n   haproxy Filesystem::/dev/sdb1::/data\nlb2 10.0.0.9\n');
    expect(r.result.unmapped).toEqual([
      { at: 'haresources:1', text: 'IPaddr::10.0.0.2/24/eth0', why: 'pairlb holds one VIP: only the first address is used' },
      { at: 'haresources:1', text: 'Filesystem::/dev/sdb1::/data', why: 'pairlb starts no resource scripts on takeover: run it from ha.notify.master (and stop it in ha.notify.backup)' },
      { at: 'haresources:3', text: 'lb2 10.0.0.9', why: 'pairlb holds one VIP for the pair: a second resource group has no equivalent' },
    ]);
  });

  it('an IPaddr without prefix or interface is a FILL IN, not a silent guess', () => {
    const r = hb('node lb1\nnode lb2\n', 'lb1 10.0.0.1\n');
    expect(r.ha!.vip).toEqual({ address: '10.0.0.1/24', interface: 'eth0' });
    expect(r.result.todo.filter((t) => t.startsWith('ha.vip'))).toEqual([
      'ha.vip.address: the prefix length of 10.0.0.1 (haresources gives none; heartbeat took the netmask of the matching route): /24 written',
      'ha.vip.interface: the interface of 10.0.0.1 (haresources gives none): eth0 written',
    ]);
  });

  it('authkeys: the secret is never copied; the key file recipe is given', () => {
    const r = hb('node lb1\nnode lb2\n', undefined, 'auth 1\n1 sha1 SomeSecret\n');
    expect(JSON.stringify(r)).not.toContain('SomeSecret');
    expect(r.result.unmapped).toEqual([{
      at: 'authkeys:2', text: '1 sha1 …',
      why: 'heartbeat\'s sha1 key cannot be reused (pairlb signs with HMAC-SHA256 over a key file, not a secret string). pairlb\'s HMAC-SHA256 key is a separate file of raw bytes (16-4096, mode 0600). Make it once and copy it to the peer: head -c 32 /dev/urandom > /etc/pairlb/ha.key; chown pairlb:pairlb /etc/pairlb/ha.key && chmod 600 /etc/pairlb/ha.key; scp -p /etc/pairlb/ha.key lb2:/etc/pairlb/ha.key (then chown pairlb:pairlb there)',
    }]);
  });
});
