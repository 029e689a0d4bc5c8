import { createHmac, timingSafeEqual } from 'node:crypto';
import { readFileSync, statSync } from 'node:fs';
import { PairlbError } from '../errors.js';
import { ReplayGuard } from './replay.js';

export { ReplayGuard };

/**
 * Heartbeat packet codec: encode, authenticate (HMAC-SHA256) and check incoming packets.
 *
 *   off  size  field
 *   0    4     magic "PLHB"
 *   4    1     version (2; 1 had no echo field and is refused as bad_version)
 *   5    1     type: 1 advert, 2 state (payload = replicated state doc), 3 state request
 *   6    1     role: 0 init, 1 backup, 2 master, 3 fault
 *   7    1     priority (1-254)
 *   8    1     flags: bit0 HANDOVER (sender is stopping: take the VIP), bit1 HEALTHY
 *   9    1     path the sender sent it on: 0 dedicated, 1 public (diagnostics only)
 *   10   1+n   cluster id (length-prefixed ASCII)
 *   …    1+n   node name  (length-prefixed ASCII)
 *   …    8     incarnation (u64, ms at start: a restarted node's packets supersede the old ones)
 *   …    8     sequence (u64, one counter for every packet of this incarnation, on every path)
 *   …    8     echo (u64, the receiver's incarnation as the sender last heard it; 0 = never)
 *   …    8     version of the sender's replicated state
 *   …    4     payload length, then the payload
 *   end  32    HMAC-SHA256 over everything before it
 *
 * `check()` returns a verdict like keepalived's packet checks; each rejection reason has a counter
 * (HaNode keeps them). None of the rejected packets reaches the state machine. The replay rules
 * (incarnation, per-path window, echo) are in replay.ts.
 */

export const MAGIC = 0x504c4842; // "PLHB"
export const VERSION = 2;
export const MAC_LEN = 32;
/** Largest UDP payload over IPv4. */
export const MAX_PACKET = 65507;

export const MsgType = { Advert: 1, State: 2, StateRequest: 3 } as const;
export type MsgType = (typeof MsgType)[keyof typeof MsgType];
export type WireRole = 'init' | 'backup' | 'master' | 'fault';
const ROLES: WireRole[] = ['init', 'backup', 'master', 'fault'];

export const FLAG_HANDOVER = 1;
export const FLAG_HEALTHY = 2;

export interface Packet {
  type: MsgType;
  role: WireRole;
  priority: number;
  flags: number;
  path: 0 | 1;
  cluster: string;
  node: string;
  incarnation: bigint;
  seq: bigint;
  /** The receiver's incarnation as the sender last heard it (0n: never heard). */
  echo: bigint;
  stateVersion: number;
  payload: Buffer;
}

export type RejectReason = 'garbage' | 'bad_version' | 'foreign_cluster' | 'bad_mac' | 'unknown_node' | 'old_incarnation' | 'replayed' | 'unconfirmed';
export const REJECT_REASONS: readonly RejectReason[] = ['garbage', 'bad_version', 'foreign_cluster', 'bad_mac', 'unknown_node', 'old_incarnation', 'replayed', 'unconfirmed'];

/**
 * `backlog`: authenticated and never seen, but older than a packet already accepted (reordering
 * between the paths, or packets queued while a link was down): not a rejection, but its content is
 * stale, so the caller must not act on it.
 */
export type Verdict =
  | { ok: true; packet: Packet; newIncarnation: boolean; backlog: boolean }
  | { ok: false; reason: RejectReason; detail: string; packet?: Packet }
  | { ok: false; reason: 'self'; detail: string };

export function encode(p: Packet, key: Buffer): Buffer {
  const cluster = Buffer.from(p.cluster, 'ascii');
  const node = Buffer.from(p.node, 'ascii');
  const len = 10 + 1 + cluster.length + 1 + node.length + FIXED + 4 + p.payload.length + MAC_LEN;
  if (len > MAX_PACKET) throw new PairlbError('PAIRLB_HA_PACKET_TOO_BIG', `heartbeat packet of ${len} bytes exceeds ${MAX_PACKET}`);
  const b = Buffer.allocUnsafe(len);
  b.writeUInt32BE(MAGIC, 0);
  b[4] = VERSION; b[5] = p.type; b[6] = ROLES.indexOf(p.role); b[7] = p.priority; b[8] = p.flags; b[9] = p.path;
  let o = 10;
  b[o++] = cluster.length; cluster.copy(b, o); o += cluster.length;
  b[o++] = node.length; node.copy(b, o); o += node.length;
  b.writeBigUInt64BE(p.incarnation, o); o += 8;
  b.writeBigUInt64BE(p.seq, o); o += 8;
  b.writeBigUInt64BE(p.echo, o); o += 8;
  b.writeBigUInt64BE(BigInt(p.stateVersion), o); o += 8;
  b.writeUInt32BE(p.payload.length, o); o += 4;
  p.payload.copy(b, o); o += p.payload.length;
  mac(key, b.subarray(0, o)).copy(b, o);
  return b;
}

/** incarnation, sequence, echo, state version. */
const FIXED = 32;

function mac(key: Buffer, data: Buffer): Buffer {
  return createHmac('sha256', key).update(data).digest();
}

/** Parse without authenticating. Returns undefined for anything malformed (garbage). */
export function decode(b: Buffer): { packet: Packet; signed: Buffer; mac: Buffer } | undefined {
  if (b.length < 10 + 2 + FIXED + 4 + MAC_LEN || b.readUInt32BE(0) !== MAGIC || b[4] !== VERSION) return undefined;
  const type = b[5];
  if (type < 1 || type > 3 || b[6] > 3 || (b[9] !== 0 && b[9] !== 1)) return undefined;
  let o = 10;
  const cl = b[o++];
  if (o + cl + 1 > b.length) return undefined;
  const cluster = b.toString('ascii', o, o + cl); o += cl;
  const nl = b[o++];
  if (o + nl + FIXED + 4 > b.length) return undefined;
  const node = b.toString('ascii', o, o + nl); o += nl;
  const incarnation = b.readBigUInt64BE(o); o += 8;
  const seq = b.readBigUInt64BE(o); o += 8;
  const echo = b.readBigUInt64BE(o); o += 8;
  const sv = b.readBigUInt64BE(o); o += 8;
  const pl = b.readUInt32BE(o); o += 4;
  if (o + pl + MAC_LEN !== b.length) return undefined;
  const payload = b.subarray(o, o + pl); o += pl;
  return {
    packet: { type: type as MsgType, role: ROLES[b[6]], priority: b[7], flags: b[8], path: b[9] as 0 | 1, cluster, node, incarnation, seq, echo, stateVersion: Number(sv), payload },
    signed: b.subarray(0, o),
    mac: b.subarray(o),
  };
}

/** `incarnation`: ours, which the peer must echo. */
export interface CheckContext { key: Buffer; cluster: string; self: string; peer: string; guard: ReplayGuard; incarnation: bigint }

/**
 * The order matters: cheap structural checks first, then the MAC (nothing unauthenticated may touch
 * the replay state), then incarnation and sequence.
 */
export function check(buf: Buffer, c: CheckContext): Verdict {
  const d = decode(buf);
  if (!d) {
    if (buf.length >= 5 && buf.readUInt32BE(0) === MAGIC && buf[4] !== VERSION) return { ok: false, reason: 'bad_version', detail: `protocol version ${buf[4]}, this node speaks ${VERSION} (upgrade both nodes)` };
    return { ok: false, reason: 'garbage', detail: `${buf.length} bytes, not a heartbeat` };
  }
  const p = d.packet;
  if (p.cluster !== c.cluster) return { ok: false, reason: 'foreign_cluster', detail: `cluster ${JSON.stringify(p.cluster)}` };
  const want = mac(c.key, d.signed);
  if (!timingSafeEqual(want, d.mac)) return { ok: false, reason: 'bad_mac', detail: `from node ${JSON.stringify(p.node)}` };
  if (p.node === c.self) return { ok: false, reason: 'self', detail: 'own packet (broadcast loop)' };
  if (p.node !== c.peer) return { ok: false, reason: 'unknown_node', detail: `node ${JSON.stringify(p.node)}` };
  const known = c.guard.incarnation;
  const { verdict, newIncarnation } = c.guard.judge(p.incarnation, p.seq, p.path, p.echo, c.incarnation);
  switch (verdict) {
    case 'old_incarnation': return { ok: false, reason: 'old_incarnation', detail: `incarnation ${p.incarnation} < ${known}`, packet: p };
    case 'replayed': return { ok: false, reason: 'replayed', detail: `seq ${p.seq} on path ${p.path} already seen or older than its window`, packet: p };
    case 'unconfirmed': return { ok: false, reason: 'unconfirmed', detail: `echoes incarnation ${p.echo}, ours is ${c.incarnation}: made before the peer heard this run of ours`, packet: p };
    default: return { ok: true, packet: p, newIncarnation, backlog: verdict === 'backlog' };
  }
}

/** A key file larger than this is a wrong path (a certificate bundle, a log), not a key. */
const MAX_KEY_FILE = 4096;

/**
 * Read the shared key. Like heartbeat with authkeys, refuse a file that group or others may read:
 * anyone who can read it can forge heartbeats and steal the VIP.
 *
 * The key is the file's bytes, all of them, verbatim: no text decoding, no trimming (docs/ha.md
 * "Key file"). Decoding as UTF-8 turned every invalid byte of a `head -c 32 /dev/urandom` key into
 * U+FFFD (13 of 32 bytes on average), so two different key files could give the same key.
 * Both nodes read the same file, so a text key with a trailing newline works as well.
 */
export function readKeyFile(file: string): Buffer {
  let st;
  try { st = statSync(file); } catch (e) {
    throw new PairlbError('PAIRLB_HA_KEY', `ha.key_file ${file}: ${(e as Error).message}`);
  }
  if (!st.isFile()) throw new PairlbError('PAIRLB_HA_KEY', `ha.key_file ${file}: not a regular file`);
  if (st.mode & 0o077) throw new PairlbError('PAIRLB_HA_KEY_PERMS', `ha.key_file ${file}: bad permissions ${(st.mode & 0o777).toString(8)}: group/others must have no access (chmod 600 ${file})`);
  if (st.size > MAX_KEY_FILE) throw new PairlbError('PAIRLB_HA_KEY', `ha.key_file ${file}: ${st.size} bytes, not a key (at most ${MAX_KEY_FILE})`);
  const key = readFileSync(file);
  if (key.length < 16) throw new PairlbError('PAIRLB_HA_KEY', `ha.key_file ${file}: key too short (${key.length} bytes, need at least 16)`);
  return key;
}
