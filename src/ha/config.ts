import { isIPv4 } from 'node:net';
import { z } from 'zod';
import { bool, duration, durationAtLeast, hostPort, name, parseHostPort } from '../config/types.js';

/**
 * HA pair configuration (the `ha:` section), in the spirit of heartbeat's ha.cf + haresources:
 *
 *   ha.cf                         pairlb
 *   keepalive 2                   keepalive: 50ms
 *   warntime 10 / deadtime 30     warntime: 120ms / deadtime: 200ms
 *   initdead 120                  initdead: 2s
 *   auto_failback on              auto_failback: true (+ failback_delay)
 *   ucast eth1 10.0.1.2           peer.dedicated: 10.0.1.2:694
 *   bcast eth1                    node.broadcast: 10.0.1.255
 *   authkeys (sha1)               key_file (HMAC-SHA256, mode 0600)
 *   haresources IPaddr::10.0.0.1/24/eth0    vip: {address: 10.0.0.1/24, interface: eth0}
 *
 * Defaults are sub-second: a dead master is replaced ~200-250 ms after its last heartbeat.
 * Every cross-field rule reports its own key path (`ha.warntime: …`), as `pairlb check` prints it.
 */

function ipv4Endpoint(what: string) {
  return hostPort.superRefine((s, ctx) => {
    const hp = parseHostPort(s);
    if (hp && !isIPv4(hp.host)) ctx.addIssue({ code: z.ZodIssueCode.custom, message: `${what}: expected an IPv4 address:port (got ${JSON.stringify(s)})` });
    if (hp && hp.port === 0) ctx.addIssue({ code: z.ZodIssueCode.custom, message: `${what}: port 0 is not allowed (the peer must know where to send)` });
  });
}

const ipv4 = z.string().refine((s) => isIPv4(s), (s) => ({ message: `expected an IPv4 address (got ${JSON.stringify(s)})` }));

const CIDR_RE = /^(\d{1,3}(?:\.\d{1,3}){3})\/(\d{1,2})$/;

export const vipSchema = z.object({
  /** The virtual IP with its prefix length, as `ip addr add` takes it: 198.18.0.10/24. */
  address: z.string().superRefine((s, ctx) => {
    const m = CIDR_RE.exec(s);
    if (!m || !isIPv4(m[1]) || Number(m[2]) > 32) ctx.addIssue({ code: z.ZodIssueCode.custom, message: `expected IPv4/prefix such as 198.18.0.10/24 (got ${JSON.stringify(s)})` });
  }),
  /** Public interface the VIP lives on (FAULT when it is down). */
  interface: z.string().regex(/^[A-Za-z0-9._@-]{1,15}$/, 'expected an interface name (max 15 chars)'),
  /** Optional `label` for `ip addr add … label` (shows in ifconfig as eth0:0). */
  label: z.string().regex(/^[A-Za-z0-9._:-]{1,15}$/).optional(),
}).strict();

export const garpSchema = z.object({
  /** Gratuitous ARPs sent at once on takeover (each its own arping, not awaited). */
  burst: z.number().int().min(1).max(20).default(3),
  /** A second burst this long after the first (keepalived: 5 after 5 s); 0 disables. */
  repeat_delay: duration.default('1s'),
  repeat: z.number().int().min(0).max(20).default(3),
  /** Periodic refresh while master (keepalived#20: switches/clients that missed the burst); 0 disables. */
  refresh: duration.default('30s'),
  /** RFC 5227 probe (`arping -D`) before claiming the VIP after the peer went silent. */
  probe: bool.default(true),
  /** How long to wait for an answer to the probe; an answer comes in ~1 ms on a LAN. */
  probe_timeout: duration.default('60ms'),
  /** Path of iputils arping. */
  arping: z.string().default('arping'),
}).strict();

export const notifySchema = z.object({
  /** Shell snippets run (not awaited) on entering a role, with ROLE and REASON as $1 $2 (`/path/hook "$@"` passes them on) and PAIRLB_ROLE/REASON/NODE/PEER/VIP in the environment. */
  master: z.string().optional(),
  backup: z.string().optional(),
  fault: z.string().optional(),
  /** Run on every role change. */
  any: z.string().optional(),
  /** A hook still running after this is killed. */
  timeout: duration.default('30s'),
}).strict();

export const serveCheckSchema = z.object({
  /** Off: an ARP answer alone blocks the claim (a dead master whose kernel still holds the VIP then blocks it too). */
  enabled: bool.default(true),
  /** Port asked on the VIP; not set = the port of the first listen section. */
  port: z.number().int().min(1).max(65535).optional(),
  /** Path requested; any HTTP status counts as serving (a 503 still comes from a live proxy). */
  path: z.string().regex(/^\/[!-~]*$/, 'expected an absolute path without spaces').default('/'),
  /** No status line within this time: the VIP does not serve. Generous on purpose: a live master slower than this (heartbeats cut, machine overloaded) would be taken for a hung one; a dead process refuses at once and a hung one loses the VIP to its watchdog, so this only bounds the case where both failed. */
  timeout: durationAtLeast(1).default('2s'),
}).strict();

export const selfCheckSchema = z.object({
  /** Off: only a closed listener counts as not serving. */
  enabled: bool.default(true),
  /** One request to every listener this often. */
  interval: durationAtLeast(50).default('1s'),
  /** No status line within this time: the round failed. */
  timeout: durationAtLeast(1).default('1s'),
  /** Failed rounds in a row that make the node unhealthy (FAULT). */
  fall: z.number().int().min(1).max(100).default(3),
  /** Answered rounds in a row that make it healthy again. */
  rise: z.number().int().min(1).max(100).default(2),
  /** Path requested; any HTTP status counts as answering. */
  path: z.string().regex(/^\/[!-~]*$/, 'expected an absolute path without spaces').default('/'),
}).strict();

export const haSchema = z.object({
  enabled: bool.default(true),
  /** Where the heartbeat loop (heartbeats, state machine, VIP, GARP, self-check) runs: `process` = its own small process, out of reach of the data plane's event loop, GC, disk writes and SIGSTOP (docs/ha.md "Isolation" has the measurements); `thread` = a worker thread of this process (own heap and event loop; forks of `ip`/arping copy the whole process); `inline` = the main thread, with the traffic. */
  isolation: z.enum(['process', 'thread', 'inline']).default('process'),
  /** Scheduling priority (nice) of the heartbeat loop's process or thread, so that a CPU saturated by the data plane still runs it at once when a heartbeat is due. Lowering it below 0 needs RLIMIT_NICE (the unit's LimitNICE=-10) or CAP_SYS_NICE; without either it stays at 0 and a warning says so. 0 = leave it; ignored with isolation: inline. */
  nice: z.number().int().min(-20).max(19).default(-10),
  /** Cluster id carried in every packet: heartbeats of another pair on the same wire are dropped. */
  cluster: name.default('pairlb'),
  /** Shared secret for HMAC-SHA256 (≥ 16 bytes). Refused when group/others can read it (chmod 600). */
  key_file: z.string(),
  /** Higher wins the VIP when both are healthy (ties: lower node name). 1-254. */
  priority: z.number().int().min(1).max(254).default(100),
  node: z.object({
    /** Where this node listens for heartbeats on the dedicated link (ip:port). */
    dedicated: ipv4Endpoint('dedicated'),
    /** Second path over the public side so that losing only the dedicated link never makes two masters. */
    public: ipv4Endpoint('public').optional(),
    /** Send on the dedicated link to this broadcast address instead of the peer's unicast address (ha.cf `bcast`). */
    broadcast: ipv4.optional(),
  }).strict(),
  peer: z.object({
    /** The peer's node name (its global.node). Packets from other node names are dropped. */
    name,
    dedicated: ipv4Endpoint('dedicated'),
    public: ipv4Endpoint('public').optional(),
    /** The peer's priority is carried in its packets; this is only used for documentation/checks. */
  }).strict(),
  keepalive: duration.default('50ms'),
  /** A heartbeat later than this is logged (and the RFC 5227 probe starts early). */
  warntime: duration.default('120ms'),
  /** No heartbeat for this long on any path: the peer is dead. */
  deadtime: duration.default('200ms'),
  /** Grace at boot before a node alone claims the VIP (links and peer may still be coming up). */
  initdead: duration.default('2s'),
  /** The preferred (higher priority) node takes the VIP back when it returns. */
  auto_failback: bool.default(true),
  /** …once it has been healthy (and in sync) for this long. */
  failback_delay: duration.default('2s'),
  /** Graceful stop: how long the master waits for the backup to hold and announce the VIP. */
  handover_timeout: duration.default('2s'),
  /** Replicate runtime state (backends added at runtime, drain/maint, weights, clones) master → backup. */
  replicate: bool.default(true),
  /** A master whose event loop stops feeding the VIP watchdog (a separate process) this long loses the VIP; a master whose process dies loses it at once. Not set = 1.5 × deadtime; 0 disables. */
  watchdog: duration.optional(),
  /** Before claiming a VIP that still answers ARP while the peer is silent, ask it for a page through the network: claim only when nothing serves behind it (a dead or hung master whose kernel keeps the address), never while it serves (a live master cut off from us). */
  serve_check: serveCheckSchema.default({}),
  /** Ask this node's own listeners for a page every `interval`; unanswered `fall` rounds in a row = FAULT (a master releases the VIP and the peer claims it at once). */
  self_check: selfCheckSchema.default({}),
  vip: vipSchema,
  garp: garpSchema.default({}),
  notify: notifySchema.default({}),
}).strict().superRefine((h, ctx) => {
  const issue = (path: (string | number)[], message: string): void => { ctx.addIssue({ code: z.ZodIssueCode.custom, path, message }); };
  if (h.keepalive <= 0) issue(['keepalive'], 'must be > 0');
  if (h.warntime >= h.deadtime) issue(['warntime'], `warntime (${h.warntime} ms) must be shorter than deadtime (${h.deadtime} ms): a late heartbeat must be reported before the peer is declared dead`);
  if (h.warntime < h.keepalive) issue(['warntime'], `warntime (${h.warntime} ms) must be at least keepalive (${h.keepalive} ms)`);
  if (h.deadtime < 2 * h.keepalive) issue(['deadtime'], `deadtime (${h.deadtime} ms) must be at least two keepalive intervals (${2 * h.keepalive} ms): one lost heartbeat must not cause a failover`);
  if (h.initdead < h.deadtime) issue(['initdead'], `initdead (${h.initdead} ms) must be at least deadtime (${h.deadtime} ms)`);
  if (h.handover_timeout < 2 * h.keepalive) issue(['handover_timeout'], `handover_timeout (${h.handover_timeout} ms) must be at least two keepalive intervals`);
  if (h.garp.probe && h.garp.probe_timeout >= h.deadtime) issue(['garp', 'probe_timeout'], `probe_timeout (${h.garp.probe_timeout} ms) must be shorter than deadtime (${h.deadtime} ms)`);
  if (h.watchdog !== undefined && h.watchdog > 0 && h.watchdog < 2 * h.keepalive) issue(['watchdog'], `watchdog (${h.watchdog} ms) must be at least two keepalive intervals (${2 * h.keepalive} ms), or 0 to disable it`);
  if (h.garp.repeat > 0 && h.garp.repeat_delay <= 0) issue(['garp', 'repeat_delay'], 'must be > 0 when garp.repeat > 0');
  if (!!h.node.public !== !!h.peer.public) issue([h.node.public ? 'peer' : 'node', 'public'], 'node.public and peer.public go together (the second heartbeat path needs both ends)');
  const nd = parseHostPort(h.node.dedicated), pd = parseHostPort(h.peer.dedicated);
  if (nd && pd && nd.host === pd.host) issue(['peer', 'dedicated'], 'peer.dedicated must differ from node.dedicated');
  const vip = CIDR_RE.exec(h.vip.address)?.[1];
  for (const [k, v] of [['node', h.node.public], ['peer', h.peer.public], ['node', h.node.dedicated], ['peer', h.peer.dedicated]] as const) {
    if (v && vip && parseHostPort(v)?.host === vip) issue([k, v === h.node.dedicated || v === h.peer.dedicated ? 'dedicated' : 'public'], 'heartbeats must not use the VIP (it moves)');
  }
});
export type HaConfig = z.output<typeof haSchema>;
export type VipConfig = z.output<typeof vipSchema>;
export type GarpConfig = z.output<typeof garpSchema>;
export type NotifyConfig = z.output<typeof notifySchema>;
export type ServeCheckConfig = z.output<typeof serveCheckSchema>;
export type SelfCheckConfig = z.output<typeof selfCheckSchema>;
