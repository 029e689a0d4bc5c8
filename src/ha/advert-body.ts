import type { StateVersion } from '../state/version.js';

/**
 * Payload of an advert (the packet itself, its HMAC and replay checks: advert.ts). A list of
 * TLVs — u8 tag, u16 length, value — so that a field added later is skipped by an older node:
 *
 *   tag  value
 *   1    echo: u64 × 2, the highest sequence number received from the peer on the dedicated
 *        link and on the public path (0 = none). The peer counts a path as up only when its own
 *        packets come back in these numbers: a link cut in one direction only is seen as down
 *        by both ends.
 *   2    state version: 8 bytes of content hash, u8 n, then n × (u8 length, node name, u32
 *        changes) — the version vector of src/state/version.ts.
 *   3    conflict ack: 8 bytes, hash of the last discarded state document of the peer that this
 *        node has recorded (the peer resends it until it sees this).
 *
 * Authenticated with the packet: a malformed body is version skew or a bug, never an attack;
 * decode returns what it could read.
 */

export interface AdvertBody {
  echo?: [bigint, bigint];
  version?: StateVersion;
  conflictAck?: string;
}

const T_ECHO = 1, T_VERSION = 2, T_CONFLICT_ACK = 3;

function tlv(tag: number, value: Buffer): Buffer {
  const h = Buffer.allocUnsafe(3);
  h[0] = tag; h.writeUInt16BE(value.length, 1);
  return Buffer.concat([h, value]);
}

export function encodeAdvertBody(b: AdvertBody): Buffer {
  const parts: Buffer[] = [];
  if (b.echo) {
    const v = Buffer.allocUnsafe(16);
    v.writeBigUInt64BE(b.echo[0], 0); v.writeBigUInt64BE(b.echo[1], 8);
    parts.push(tlv(T_ECHO, v));
  }
  if (b.version) {
    const names = Object.keys(b.version.vv).filter((k) => Buffer.byteLength(k) <= 255).slice(0, 255);
    const chunks: Buffer[] = [Buffer.from(b.version.hash, 'hex'), Buffer.from([names.length])];
    for (const n of names) {
      const nb = Buffer.from(n, 'utf8');
      const c = Buffer.allocUnsafe(1 + nb.length + 4);
      c[0] = nb.length; nb.copy(c, 1); c.writeUInt32BE(Math.min(b.version.vv[n], 0xffffffff), 1 + nb.length);
      chunks.push(c);
    }
    parts.push(tlv(T_VERSION, Buffer.concat(chunks)));
  }
  if (b.conflictAck) parts.push(tlv(T_CONFLICT_ACK, Buffer.from(b.conflictAck, 'hex')));
  return Buffer.concat(parts);
}

export function decodeAdvertBody(buf: Buffer): AdvertBody {
  const out: AdvertBody = {};
  let o = 0;
  while (o + 3 <= buf.length) {
    const tag = buf[o], len = buf.readUInt16BE(o + 1);
    const v = buf.subarray(o + 3, o + 3 + len);
    o += 3 + len;
    if (v.length !== len) break;
    if (tag === T_ECHO && len === 16) out.echo = [v.readBigUInt64BE(0), v.readBigUInt64BE(8)];
    else if (tag === T_VERSION && len >= 9) {
      const hash = v.subarray(0, 8).toString('hex');
      const n = v[8];
      const vv: Record<string, number> = {};
      let p = 9, ok = true;
      for (let i = 0; i < n; i++) {
        if (p >= v.length) { ok = false; break; }
        const l = v[p];
        if (p + 1 + l + 4 > v.length) { ok = false; break; }
        vv[v.toString('utf8', p + 1, p + 1 + l)] = v.readUInt32BE(p + 1 + l);
        p += 1 + l + 4;
      }
      if (ok) out.version = { vv, hash };
    } else if (tag === T_CONFLICT_ACK && len === 8) out.conflictAck = v.toString('hex');
  }
  return out;
}
