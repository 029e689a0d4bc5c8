import { describe, expect, it } from 'vitest';
import { convertKeepalived, parseBlocks } from '../../src/import/keepalived.js';
import { haSchema } from '../../src/ha/config.js';

/** keepalived's vrrp_instance → ha: (issue 15). */

const inst = (body: string, opts = {}) => convertKeepalived(`vrrp_instance VI_1 {\n${body}\n}\n`, 'k.conf', opts);

describe('keepalived syntax', () => {
  it('blocks, comments with # and !, braces on the same line', () => {
    expect(parseBlocks('! c\nglobal_defs { router_id lb1 }\nvrrp_instance X {\n  state MASTER # c\n  virtual_ipaddress {\n    1.2.3.4/24 dev eth0\n  }\n}\n')).toEqual([
      { key: 'global_defs', args: [], line: 2, children: [{ key: 'router_id', args: ['lb1'], line: 2 }] },
      { key: 'vrrp_instance', args: ['X'], line: 3, children: [
        { key: 'state', args: ['MASTER'], line: 4 },
        { key: 'virtual_ipaddress', args: [], line: 5, children: [{ key: '1.2.3.4/24', args: ['dev', 'eth0'], line: 6 }] },
      ] },
    ]);
  });
});

describe('vrrp_instance', () => {
  it.each<[string, string, Record<string, unknown>]>([
    ['advert_int 1, priority 101: deadtime = 3 s + skew (RFC 5798 §6.1)', 'priority 101\nadvert_int 1', { priority: 101, keepalive: '1s', warntime: '2s', deadtime: '3605ms', initdead: '3605ms' }],
    ['advert_int 0.1 (sub-second)', 'priority 200\nadvert_int 0.1', { keepalive: '100ms', warntime: '200ms', deadtime: '321ms', initdead: '321ms' }],
    ['virtual_router_id → cluster', 'virtual_router_id 51', { cluster: 'vrid-51' }],
    ['nopreempt, preempt_delay', 'nopreempt\npreempt_delay 300', { auto_failback: false, failback_delay: '5m' }],
    ['VIP with dev and label', 'interface eth1\nvirtual_ipaddress {\n 10.0.0.1/24 dev eth0 label eth0:1\n}', { vip: { address: '10.0.0.1/24', interface: 'eth0', label: 'eth0:1' } }],
    ['VIP without prefix is /32, on the instance interface', 'interface eth1\nvirtual_ipaddress {\n 10.0.0.1\n}', { vip: { address: '10.0.0.1/32', interface: 'eth1' } }],
    ['unicast peers', 'unicast_src_ip 10.0.1.1\nunicast_peer {\n 10.0.1.2\n}', { node: { dedicated: '10.0.1.1:694' }, peer: { name: 'lb-02', dedicated: '10.0.1.2:694' } }],
    ['notify scripts', 'notify_master "/etc/k/master.sh"\nnotify_fault /etc/k/fault.sh', { notify: { master: '/etc/k/master.sh', fault: '/etc/k/fault.sh' } }],
    ['garp', 'garp_master_delay 5\ngarp_master_repeat 3\ngarp_master_refresh 60', { garp: { repeat_delay: '5s', burst: 3, refresh: '1m' } }],
    ['priority 255 → 254', 'priority 255', { priority: 254 }],
  ])('%s', (_n, body, want) => {
    const r = inst(body, { node: 'lb-01', peer: 'lb-02' });
    expect(r.ha).toMatchObject(want);
    expect(haSchema.safeParse(r.ha).success).toBe(true);
  });

  it('authentication: the password is never copied; the key recipe is given', () => {
    const r = inst('authentication {\n auth_type PASS\n auth_pass s3cr3tpw\n}', { peer: 'lb-02' });
    expect(JSON.stringify(r)).not.toContain('s3cr3tpw');
    expect(r.result.unmapped[0]).toEqual({ at: 'k.conf:2', text: 'authentication { … } (password not copied)', why: expect.stringContaining('head -c 32 /dev/urandom > /etc/pairlb/ha.key') });
  });

  it('what has no equivalent is listed', () => {
    const r = convertKeepalived('vrrp_script chk { script "x" }\nvrrp_instance A {\n track_script {\n chk\n }\n smtp_alert\n}\nvrrp_instance B {\n}\nvirtual_server 10.0.0.1 80 {\n}\n', 'k.conf');
    expect(r.result.unmapped.map((u) => [u.at, u.text])).toEqual([
      ['k.conf:1', 'vrrp_script chk'], ['k.conf:8', 'vrrp_instance B'], ['k.conf:10', 'virtual_server 10.0.0.1 80'], ['k.conf:3', 'track_script'], ['k.conf:6', 'smtp_alert'],
    ]);
    expect(r.result.todo.map((t) => t.split(':')[0])).toEqual(['global.node', 'ha.node.dedicated', 'ha.peer.dedicated', 'ha.peer.name', 'ha.vip']);
  });
});
