import { isIPv4 } from 'node:net';
import { ImportResult, NAME_RE, fmtMs, keyRecipe } from './result.js';
import { repairTiming, PAIRLB_TIMING } from './heartbeat.js';

/**
 * keepalived.conf's vrrp_instance → pairlb's `ha:` section (pure). VRRP (RFC 5798 §6.1): a backup
 * declares the master down after 3 × advert_int + skew, skew = (256 - priority) / 256 × advert_int;
 * that is pairlb's deadtime, and advert_int its keepalive.
 */

export interface KeepalivedImport { global: Record<string, unknown>; ha?: Record<string, unknown>; result: ImportResult }

export interface Block { key: string; args: string[]; line: number; children?: Block[] }

/** keepalived's block syntax: `key args… {` … `}`; `#` and `!` start comments. */
export function parseBlocks(text: string): Block[] {
  const root: Block[] = [];
  const stack: Block[][] = [root];
  text.split(/\r?\n/).forEach((raw, i) => {
    const toks = raw.replace(/[#!].*$/, '').replace(/([{}])/g, ' $1 ').trim().split(/\s+/).filter(Boolean);
    let cur: Block | undefined;
    for (const t of toks) {
      if (t === '{') {
        const b = cur ?? { key: '', args: [], line: i + 1 };
        if (!cur) stack[stack.length - 1].push(b);
        b.children = [];
        stack.push(b.children);
        cur = undefined;
      } else if (t === '}') { if (stack.length > 1) stack.pop(); cur = undefined; }
      else if (!cur) { cur = { key: t, args: [], line: i + 1 }; stack[stack.length - 1].push(cur); }
      else cur.args.push(t);
    }
  });
  return root;
}

export function convertKeepalived(text: string, file = 'keepalived.conf', opts: { node?: string; peer?: string } = {}): KeepalivedImport {
  const r = new ImportResult();
  const global: Record<string, unknown> = {};
  const at = (b: Block): string => `${file}:${b.line}`;
  const show = (b: Block): string => `${b.key} ${b.args.join(' ')}`.trim();
  const blocks = parseBlocks(text);
  let inst: Block | undefined;
  for (const b of blocks) {
    if (b.key === 'vrrp_instance') {
      if (!inst) inst = b; else r.skip(at(b), show(b), 'pairlb holds one VIP for one pair: only the first vrrp_instance is imported');
    } else if (b.key === 'global_defs') {
      for (const c of b.children ?? []) {
        if (c.key === 'router_id' && NAME_RE.test(c.args[0] ?? '') && !opts.node) { global.node = c.args[0]; r.note(['global', 'node'], `from ${at(c)} (router_id)`); }
        else if (c.key !== 'router_id') r.skip(at(c), show(c), c.key.startsWith('notification_') || c.key.startsWith('smtp_') ? 'pairlb sends no mail: use ha.notify hooks' : 'no pairlb equivalent');
      }
    } else if (b.key === 'virtual_server' || b.key === 'virtual_server_group') r.skip(at(b), show(b), 'LVS virtual servers (layer 4) have no pairlb equivalent: pairlb is the HTTP proxy (import the HAProxy config)');
    else r.skip(at(b), show(b), b.key === 'vrrp_script' ? 'track scripts have no pairlb equivalent: it goes FAULT when vip.interface is down or its own listeners stop answering (ha.self_check)' : b.key === 'vrrp_sync_group' ? 'pairlb holds one VIP: no sync groups' : 'no pairlb equivalent');
  }
  if (opts.node) global.node = opts.node;
  if (!inst) return { global, result: r };
  if (!global.node) r.fillIn(['global', 'node'], 'this node\'s name (VRRP has none)');

  const ha: Record<string, unknown> = { enabled: true, cluster: 'pairlb', key_file: '/etc/pairlb/ha.key' };
  let priority = 100, advert = 1000, iface: string | undefined, src: string | undefined;
  const peers: string[] = [];
  const notify: Record<string, string> = {};
  const garp: Record<string, unknown> = {};
  for (const c of inst.children ?? []) {
    const skip = (why: string): void => r.skip(at(c), show(c), why);
    const a = c.args;
    switch (c.key) {
      case 'state': r.note(['ha', 'priority'], `keepalived state ${a[0]}: pairlb has no initial state, the higher priority holds the VIP`); break;
      case 'interface': iface = a[0]; break;
      case 'virtual_router_id': {
        const n = Number(a[0]);
        if (Number.isInteger(n) && n >= 1 && n <= 255) { ha.cluster = `vrid-${n}`; r.note(['ha', 'cluster'], `from virtual_router_id ${n}: keeps this pair's heartbeats apart from another pair's on the same wire (give both nodes the same)`); } else skip('not a VRID');
        break;
      }
      case 'priority': {
        const n = Number(a[0]);
        if (!Number.isInteger(n) || n < 1 || n > 255) { skip('not a VRRP priority'); break; }
        if (n === 255) skip('255 (address owner) has no pairlb equivalent: 254 is written');
        priority = Math.min(n, 254);
        break;
      }
      case 'advert_int': { const s = Number(a[0]); if (s > 0) advert = Math.round(s * 1000); else skip('not a number of seconds'); break; }
      case 'authentication':
        r.skip(at(c), 'authentication { … } (password not copied)', `VRRP authentication cannot be reused: ${keyRecipe(opts.peer ?? 'the-peer')}`);
        break;
      case 'virtual_ipaddress': {
        const lines = (c.children ?? []).map((x) => [x.key, ...x.args]);
        lines.forEach((w, i) => {
          const line = (c.children ?? [])[i];
          if (ha.vip) { r.skip(at(line), w.join(' '), 'pairlb holds one VIP: only the first address is used'); return; }
          const m = /^(\d{1,3}(?:\.\d{1,3}){3})(?:\/(\d{1,2}))?$/.exec(w[0]);
          if (!m || !isIPv4(m[1])) { r.skip(at(line), w.join(' '), 'pairlb VIPs are IPv4'); return; }
          const vip: Record<string, unknown> = { address: `${m[1]}/${m[2] ?? 32}` };
          if (!m[2]) r.note(['ha', 'vip', 'address'], 'no prefix in keepalived means /32');
          const extra: string[] = [];
          for (let j = 1; j < w.length; j++) {
            if (w[j] === 'dev') vip.interface = w[++j];
            else if (w[j] === 'label') vip.label = w[++j];
            else extra.push(w[j]);
          }
          if (extra.length) r.skip(at(line), w.join(' '), `${extra.join(' ')}: no pairlb equivalent (vip has address, interface, label)`);
          ha.vip = vip;
          r.note(['ha', 'vip'], `from ${at(line)}`);
        });
        break;
      }
      case 'unicast_src_ip': if (isIPv4(a[0] ?? '')) src = a[0]; else skip('pairlb heartbeats are IPv4'); break;
      case 'unicast_peer': for (const x of c.children ?? []) if (isIPv4(x.key)) peers.push(x.key); else r.skip(at(x), x.key, 'pairlb heartbeats are IPv4'); break;
      case 'nopreempt': ha.auto_failback = false; break;
      case 'preempt_delay': { const s = Number(a[0]); if (s >= 0) ha.failback_delay = fmtMs(Math.round(s * 1000)); else skip('not seconds'); break; }
      case 'notify_master': notify.master = a.join(' ').replace(/^"|"$/g, ''); break;
      case 'notify_backup': notify.backup = a.join(' ').replace(/^"|"$/g, ''); break;
      case 'notify_fault': notify.fault = a.join(' ').replace(/^"|"$/g, ''); break;
      case 'notify': notify.any = a.join(' ').replace(/^"|"$/g, ''); r.note(['ha', 'notify', 'any'], 'keepalived passes "INSTANCE name state priority"; pairlb passes ROLE REASON as $1 $2 (and PAIRLB_ROLE etc. in the environment): check the script'); break;
      case 'garp_master_delay': { const s = Number(a[0]); if (s >= 0) garp.repeat_delay = fmtMs(s * 1000); break; }
      case 'garp_master_repeat': { const n = Number(a[0]); if (n >= 1 && n <= 20) garp.burst = n; else skip('pairlb sends 1-20 per burst'); break; }
      case 'garp_master_refresh': { const s = Number(a[0]); if (s >= 0) garp.refresh = fmtMs(s * 1000); break; }
      case 'track_interface': case 'track_script': skip('pairlb goes FAULT when vip.interface is down or its own listeners stop answering (ha.self_check); other tracked interfaces and scripts have no equivalent'); break;
      default: skip('no pairlb equivalent');
    }
  }
  ha.priority = priority;
  // RFC 5798 §6.1: Master_Down_Interval = 3 × Advertisement_Interval + Skew_Time.
  const dead = 3 * advert + Math.floor(((256 - priority) * advert) / 256);
  const { timing } = repairTiming({ ...PAIRLB_TIMING, keepalive: advert, deadtime: dead, warntime: 2 * advert, initdead: dead }, {});
  ha.keepalive = fmtMs(timing.keepalive);
  ha.warntime = fmtMs(timing.warntime);
  ha.deadtime = fmtMs(timing.deadtime);
  ha.initdead = fmtMs(timing.initdead);
  r.note(['ha', 'keepalive'], `advert_int ${advert / 1000}s; deadtime = 3 × advert_int + skew (RFC 5798 §6.1) as a VRRP backup; warntime has no VRRP counterpart: 2 × advert_int; initdead = deadtime (a VRRP backup also waits one master-down interval at start)`);
  if (2 * advert > 2000) ha.handover_timeout = fmtMs(2 * advert);
  const port = 694;
  ha.node = { dedicated: src ? `${src}:${port}` : `192.0.2.1:${port}` };
  ha.peer = { name: opts.peer ?? 'peer', dedicated: peers[0] ? `${peers[0]}:${port}` : `192.0.2.2:${port}` };
  r.note(['ha', 'node'], `VRRP is IP protocol 112; pairlb heartbeats are UDP: port ${port} on both nodes${iface ? `, on the link of interface ${iface}` : ''}`);
  if (!src) r.fillIn(['ha', 'node', 'dedicated'], `this node's address${iface ? ` on ${iface}` : ''} for heartbeats (keepalived multicast needs none; pairlb sends unicast)`);
  if (!peers[0]) r.fillIn(['ha', 'peer', 'dedicated'], `the peer's address${iface ? ` on ${iface}` : ''} for heartbeats`);
  if (peers.length > 1) r.skip(file, `unicast_peer ${peers.join(' ')}`, 'pairlb is a pair: only the first peer is used');
  if (!opts.peer) r.fillIn(['ha', 'peer', 'name'], 'the peer\'s node name (its global.node; VRRP has no node names)');
  if (!ha.vip) { ha.vip = { address: '192.0.2.100/32', interface: iface ?? 'eth0' }; r.fillIn(['ha', 'vip'], 'the VIP (no virtual_ipaddress)'); }
  else if (!(ha.vip as Record<string, unknown>).interface) {
    const v = ha.vip as Record<string, unknown>;
    v.interface = iface ?? 'eth0';
    if (!iface) r.fillIn(['ha', 'vip', 'interface'], 'the VIP\'s interface');
    else r.note(['ha', 'vip', 'interface'], 'no `dev`: keepalived puts the VIP on the instance\'s interface');
    // Keep key order address, interface, label.
    ha.vip = { address: v.address, interface: v.interface, ...(v.label ? { label: v.label } : {}) };
  }
  if (Object.keys(notify).length) ha.notify = notify;
  if (Object.keys(garp).length) ha.garp = garp;
  r.note(['ha', 'key_file'], `VRRP authentication cannot be reused: ${keyRecipe(opts.peer ?? 'the-peer')}`);
  return { global, ha, result: r };
}
