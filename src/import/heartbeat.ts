import { isIPv4 } from 'node:net';
import { ImportResult, NAME_RE, fmtMs, keyRecipe, sourceLines } from './result.js';

/**
 * heartbeat's ha.cf + haresources + authkeys → pairlb's `ha:` section and global.node (pure).
 * Times keep heartbeat's meaning: a bare number is seconds, `ms` marks milliseconds (ha.cf(5)).
 * pairlb's own defaults are sub-second; the imported values are kept and the comments say so.
 */

export interface HeartbeatFiles {
  hacf?: { text: string; file: string };
  haresources?: { text: string; file: string };
  authkeys?: { text: string; file: string };
}

export interface HaOptions {
  /** This node's name (`node` line); default: the node that owns the resources in haresources. */
  node?: string;
  /** Addresses of this machine (os.networkInterfaces), to tell this node's ucast address from the peer's. */
  localAddresses?: string[];
}

export interface HaImport { global: Record<string, unknown>; ha?: Record<string, unknown>; result: ImportResult }

/** ha.cf time: seconds by default, `ms` suffix for milliseconds. */
export function heartbeatTime(v: string): number | undefined {
  const m = /^(\d+(?:\.\d+)?)(ms|s)?$/.exec(v);
  if (!m) return undefined;
  return Math.round(Number(m[1]) * (m[2] === 'ms' ? 1 : 1000));
}

/** The four timings pairlb checks against each other (src/ha/config.ts), with the pairlb defaults for the missing ones. */
export interface Timing { keepalive: number; warntime: number; deadtime: number; initdead: number }
export const PAIRLB_TIMING: Timing = { keepalive: 50, warntime: 120, deadtime: 200, initdead: 2000 };

/**
 * Makes timings pass pairlb's rules, changing as little as possible; each change is returned with
 * the reason and the fix so the importer can flag it (pure; shared by heartbeat and keepalived).
 */
export function repairTiming(t: Timing, src: Partial<Record<keyof Timing, string>>): { timing: Timing; fixes: { key: keyof Timing; why: string }[] } {
  const x = { ...t };
  const fixes: { key: keyof Timing; why: string }[] = [];
  const was = (k: keyof Timing): string => src[k] ?? `${fmtMs(t[k])} (pairlb's default)`;
  if (x.deadtime < 2 * x.keepalive) {
    x.deadtime = 2 * x.keepalive;
    fixes.push({ key: 'deadtime', why: `deadtime ${was('deadtime')} is shorter than two keepalive intervals (${was('keepalive')}): one lost heartbeat would fail over; written as ${fmtMs(x.deadtime)} (2 × keepalive). Fix: deadtime at least 2 × keepalive` });
  }
  if (x.warntime >= x.deadtime) {
    x.warntime = Math.max(x.keepalive, Math.floor(x.deadtime / 2));
    fixes.push({ key: 'warntime', why: `warntime ${was('warntime')} is not shorter than deadtime ${src.deadtime ?? fmtMs(x.deadtime)}: the peer would be declared dead before a late heartbeat is ever reported, and pairlb refuses it; written as ${fmtMs(x.warntime)} (half of deadtime). Fix: warntime below deadtime (in ha.cf too)` });
  } else if (x.warntime < x.keepalive) {
    x.warntime = x.keepalive;
    fixes.push({ key: 'warntime', why: `warntime ${was('warntime')} is shorter than keepalive ${was('keepalive')}: every heartbeat would be "late"; written as ${fmtMs(x.warntime)} (= keepalive). Fix: warntime at least keepalive` });
  }
  if (x.initdead < x.deadtime) {
    x.initdead = 2 * x.deadtime;
    fixes.push({ key: 'initdead', why: `initdead ${was('initdead')} is shorter than deadtime: a booting node would claim the VIP before its peer could be heard; written as ${fmtMs(x.initdead)} (2 × deadtime, heartbeat's own advice). Fix: initdead at least deadtime` });
  }
  return { timing: x, fixes };
}

/** `IPaddr::10.0.0.1/24/eth0[/bcast]`, `IPaddr2::…` or a bare address. */
export function parseIpResource(res: string): { ip: string; prefix?: number; iface?: string } | undefined {
  const m = /^(?:IPaddr2?::)?(\d{1,3}(?:\.\d{1,3}){3})(?:\/(\d{1,2}))?(?:\/([A-Za-z0-9._@:-]+))?(?:\/.*)?$/.exec(res);
  if (!m || !isIPv4(m[1])) return undefined;
  if (m[2] !== undefined && Number(m[2]) > 32) return undefined;
  return { ip: m[1], prefix: m[2] === undefined ? undefined : Number(m[2]), iface: m[3] };
}

const HACF_WHY: Record<string, string> = {
  logfacility: 'pairlb writes JSON logs to stdout (journald); no syslog facility',
  logfile: 'pairlb writes JSON logs to stdout (journald)', debugfile: 'pairlb writes JSON logs to stdout (journald); debug: global.log.level: debug',
  use_logd: 'pairlb writes JSON logs to stdout (journald)', debug: 'global.log.level: debug',
  mcast: 'pairlb has no multicast heartbeats: unicast to peer.dedicated (or node.broadcast)',
  serial: 'pairlb has no serial heartbeats: give it a second network path (node.public/peer.public)', baud: 'pairlb has no serial heartbeats',
  ping: 'pairlb has no ping nodes: it goes FAULT when vip.interface is down or its own listeners stop answering (ha.self_check)',
  ping_group: 'pairlb has no ping nodes: it goes FAULT when vip.interface is down or its own listeners stop answering (ha.self_check)',
  respawn: 'pairlb runs no helper processes (ipfail: see ha.self_check); systemd restarts pairlb itself',
  crm: 'pairlb is not a cluster resource manager: it holds one VIP for one pair',
  pacemaker: 'pairlb is not a cluster resource manager: it holds one VIP for one pair',
  watchdog: 'pairlb\'s ha.watchdog is its own helper process (a hung master loses the VIP), not /dev/watchdog',
  deadping: 'pairlb has no ping nodes', realtime: 'pairlb keeps the heartbeat loop in its own process; no realtime scheduling switch',
  compression: 'pairlb heartbeats are small; no compression', traditional_compression: 'pairlb heartbeats are small; no compression',
  autojoin: 'pairlb is a pair: the nodes are named in the config', uuidfrom: 'pairlb nodes are named by global.node',
};

export function convertHeartbeat(files: HeartbeatFiles, opts: HaOptions = {}): HaImport {
  const r = new ImportResult();
  const ha: Record<string, unknown> = {};
  const global: Record<string, unknown> = {};
  const nodes: string[] = [];
  const timingSrc: Partial<Record<keyof Timing, string>> = {};
  const timing: Timing = { ...PAIRLB_TIMING };
  const ucast: { iface: string; ip: string; at: string }[] = [];
  let bcast: { iface: string; at: string } | undefined;
  let udpport = 694;
  let autoFailback: boolean | undefined;
  const timingAt: Partial<Record<keyof Timing, string>> = {};

  if (files.hacf) {
    const f = files.hacf.file;
    for (const l of sourceLines(files.hacf.text)) {
      const at = `${f}:${l.n}`;
      const [kw, ...a] = l.words;
      const skip = (why: string): void => r.skip(at, l.text, why);
      switch (kw) {
        case 'keepalive': case 'deadtime': case 'warntime': case 'initdead': {
          const ms = heartbeatTime(a[0] ?? '');
          if (ms === undefined || ms <= 0) { skip('not a heartbeat time (seconds, or a number with ms)'); break; }
          timing[kw] = ms; timingSrc[kw] = `${a[0]}${/ms$/.test(a[0]) ? '' : ' (seconds)'}`; timingAt[kw] = at;
          break;
        }
        case 'udpport': { const p = Number(a[0]); if (Number.isInteger(p) && p > 0 && p < 65536) udpport = p; else skip('not a port'); break; }
        case 'bcast': bcast = { iface: a[0] ?? '', at }; if (a.length > 1) skip('pairlb sends heartbeats on one dedicated link (and optionally a public path): only the first interface is used'); break;
        case 'ucast': if (a[1] && isIPv4(a[1])) ucast.push({ iface: a[0], ip: a[1], at }); else skip('pairlb heartbeats are IPv4'); break;
        case 'auto_failback':
          if (a[0] === 'on' || a[0] === 'yes' || a[0] === 'true') autoFailback = true;
          else if (a[0] === 'off' || a[0] === 'no' || a[0] === 'false') autoFailback = false;
          else skip(`auto_failback ${a[0]}: pairlb has on/off only (legacy has no equivalent)`);
          break;
        case 'node': nodes.push(...a); break;
        default: skip(HACF_WHY[kw] ?? 'no pairlb equivalent');
      }
    }
  }

  // haresources: `<preferred node> <resource> <resource> …`; pairlb holds one VIP.
  let owner: string | undefined;
  let vip: { ip: string; prefix?: number; iface?: string; at: string } | undefined;
  if (files.haresources) {
    const f = files.haresources.file;
    for (const l of sourceLines(files.haresources.text, { continuation: true })) {
      const at = `${f}:${l.n}`;
      const [node, ...res] = l.words;
      if (owner !== undefined) { r.skip(at, l.text, 'pairlb holds one VIP for the pair: a second resource group has no equivalent'); continue; }
      owner = node;
      for (const x of res) {
        const ip = parseIpResource(x);
        if (ip && !vip) { vip = { ...ip, at }; continue; }
        if (ip) { r.skip(at, x, 'pairlb holds one VIP: only the first address is used'); continue; }
        if (x === 'haproxy' || x.startsWith('haproxy::')) { continue; } // pairlb is the proxy
        r.skip(at, x, 'pairlb starts no resource scripts on takeover: run it from ha.notify.master (and stop it in ha.notify.backup)');
      }
    }
  }

  if (files.authkeys) {
    const f = files.authkeys.file;
    for (const l of sourceLines(files.authkeys.text)) {
      const at = `${f}:${l.n}`;
      if (l.words[0] === 'auth') continue;
      // Never copy the secret into the output.
      const shown = `${l.words[0]} ${l.words[1] ?? ''}${l.words[2] ? ' …' : ''}`;
      r.skip(at, shown, `heartbeat's ${l.words[1] ?? ''} key cannot be reused (${l.words[1] === 'crc' ? 'crc authenticates nothing' : 'pairlb signs with HMAC-SHA256 over a key file, not a secret string'}). ${keyRecipe(peerName(nodes, opts.node ?? owner) ?? 'the-peer')}`);
    }
  }
  if (!files.hacf && !files.haresources) return { global, result: r };

  const me = opts.node ?? owner ?? nodes[0];
  if (nodes.length > 2) r.skip(files.hacf?.file ?? 'ha.cf', `node ${nodes.join(' ')}`, 'pairlb is a pair: the two nodes are this one and the peer; the others are not imported');
  if (me && NAME_RE.test(me)) { global.node = me; r.note(['global', 'node'], 'this node, as heartbeat\'s `uname -n` (run the import again with --node for the other node)'); }
  else r.fillIn(['global', 'node'], 'this node\'s name');
  if (me && nodes.length && !nodes.includes(me)) r.skip('--node', me, `not a node of ${files.hacf?.file ?? 'ha.cf'} (${nodes.join(', ')})`);
  const peer = peerName(nodes, me);
  ha.enabled = true;
  ha.key_file = '/etc/pairlb/ha.key';
  r.note(['ha', 'key_file'], `heartbeat's authkeys cannot be reused: ${keyRecipe(peer ?? 'the-peer')}`);
  ha.priority = owner && me === owner ? 150 : 100;
  r.note(['ha', 'priority'], owner ? `${owner} owns the resources in haresources: it gets the higher priority (150; the other node 100)` : 'no haresources: equal priorities (ties go to the lower node name)');

  // Addresses: ucast gives them; bcast names only the interface.
  const local = new Set(opts.localAddresses ?? []);
  const portOf = (ip: string) => `${ip}:${udpport}`;
  let nodeAddr: string | undefined, peerAddr: string | undefined;
  const mine = ucast.find((u) => local.has(u.ip));
  const others = ucast.filter((u) => u !== mine);
  if (mine) nodeAddr = portOf(mine.ip);
  if (others.length === 1) peerAddr = portOf(others[0].ip);
  const iface = ucast[0]?.iface ?? bcast?.iface;
  const node: Record<string, unknown> = { dedicated: nodeAddr ?? `192.0.2.1:${udpport}` };
  const peerObj: Record<string, unknown> = { name: peer && NAME_RE.test(peer) ? peer : 'peer', dedicated: peerAddr ?? `192.0.2.2:${udpport}` };
  if (!peer) r.fillIn(['ha', 'peer', 'name'], 'the peer\'s node name (its global.node)');
  if (!nodeAddr) r.fillIn(['ha', 'node', 'dedicated'], `this node's address on the heartbeat link${iface ? ` (${iface})` : ''}${ucast.length === 2 ? `: ${ucast.map((u) => u.ip).join(' or ')} from the ucast lines, whichever is on this machine` : ''}, port ${udpport}`);
  if (!peerAddr) r.fillIn(['ha', 'peer', 'dedicated'], `${peer ?? 'the peer'}'s address on the heartbeat link${iface ? ` (${iface})` : ''}, port ${udpport}`);
  if (bcast) r.note(['ha', 'node'], `bcast ${bcast.iface}: pairlb sends to peer.dedicated by unicast; to broadcast as heartbeat did, add node.broadcast: the broadcast address of ${bcast.iface}`);
  ha.node = node;
  ha.peer = peerObj;

  const { timing: t, fixes } = repairTiming(timing, timingSrc);
  for (const k of ['keepalive', 'warntime', 'deadtime', 'initdead'] as const) {
    if (timingSrc[k] === undefined && !fixes.some((x) => x.key === k)) continue;
    ha[k] = fmtMs(t[k]);
  }
  for (const x of fixes) {
    r.skip(timingAt[x.key] ?? files.hacf?.file ?? 'ha.cf', timingAt[x.key] ? `${x.key} ${timingSrc[x.key]}` : `(no ${x.key})`, x.why);
    r.note(['ha', x.key], x.why);
  }
  if (timingSrc.deadtime) r.note(['ha', 'deadtime'], `heartbeat's values kept (a failover takes about deadtime); pairlb's defaults are keepalive 50ms, warntime 120ms, deadtime 200ms, initdead 2s`);
  // pairlb's handover_timeout (2s default) must be at least two heartbeats.
  if (2 * t.keepalive > 2000) { ha.handover_timeout = fmtMs(2 * t.keepalive); r.note(['ha', 'handover_timeout'], 'graceful stop: at least two keepalive intervals (pairlb\'s rule)'); }
  if (autoFailback !== undefined) ha.auto_failback = autoFailback;

  if (vip) {
    ha.vip = { address: `${vip.ip}/${vip.prefix ?? 24}`, interface: vip.iface ?? 'eth0' };
    r.note(['ha', 'vip'], `from ${vip.at}`);
    if (vip.prefix === undefined) r.fillIn(['ha', 'vip', 'address'], `the prefix length of ${vip.ip} (haresources gives none; heartbeat took the netmask of the matching route): /24 written`);
    if (!vip.iface) r.fillIn(['ha', 'vip', 'interface'], `the interface of ${vip.ip} (haresources gives none): eth0 written`);
  } else {
    ha.vip = { address: '192.0.2.100/24', interface: 'eth0' };
    r.fillIn(['ha', 'vip'], 'the VIP (no IPaddr resource in haresources)');
  }
  return { global, ha, result: r };
}

function peerName(nodes: string[], me: string | undefined): string | undefined {
  return nodes.find((n) => n !== me);
}
