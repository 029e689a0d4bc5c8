import { createHash } from 'node:crypto';

/**
 * A state document (deflated JSON) split into datagrams that fit one Ethernet frame, so that no
 * datagram is IP-fragmented (one lost fragment of a 60 KB datagram loses all of it) and documents
 * larger than a UDP datagram still go through. Each chunk is a State packet of its own (HMAC,
 * sequence number: advert.ts); its payload:
 *
 *   0   1  magic 0xC7 (cannot start a raw deflate stream)
 *   1   1  format 1
 *   2   8  transfer id: first 8 bytes of SHA-256 of the whole document — a resend of the same
 *          document has the same id, so chunks of several sends complete each other
 *   10  2  index
 *   12  2  count
 *   14  …  data (≤ CHUNK_DATA bytes)
 *
 * A payload that does not start like this is a whole document (older pairlb). Pure.
 */

/** Bits 1-2 set = deflate block type 3, which is invalid: no raw deflate stream starts with it. */
export const CHUNK_MAGIC = 0xc7;
/** 1200 data + 14 chunk header + ~80 packet header/MAC + 28 UDP/IP < 1500 (Ethernet MTU). */
export const CHUNK_DATA = 1200;
/** At most 1024 chunks (≈ 1.2 MB deflated, far more than any runtime state): a bound for the receiver. */
export const MAX_CHUNKS = 1024;
const HEAD = 14;

export function chunkPayload(doc: Buffer, size = CHUNK_DATA): Buffer[] {
  const count = Math.max(1, Math.ceil(doc.length / size));
  if (count > MAX_CHUNKS) throw new RangeError(`state document of ${doc.length} bytes needs ${count} chunks (max ${MAX_CHUNKS})`);
  const id = createHash('sha256').update(doc).digest().subarray(0, 8);
  const out: Buffer[] = [];
  for (let i = 0; i < count; i++) {
    const data = doc.subarray(i * size, (i + 1) * size);
    const b = Buffer.allocUnsafe(HEAD + data.length);
    b[0] = CHUNK_MAGIC; b[1] = 1; id.copy(b, 2); b.writeUInt16BE(i, 10); b.writeUInt16BE(count, 12); data.copy(b, HEAD);
    out.push(b);
  }
  return out;
}

export type ChunkResult = { kind: 'whole'; doc: Buffer } | { kind: 'partial' } | { kind: 'bad'; why: string };

/**
 * Collects chunks per transfer id. Keeps at most `maxTransfers` incomplete transfers (the oldest
 * is dropped) and forgets one not completed within `ttlMs`: memory stays bounded whatever the
 * peer sends.
 */
export class Reassembler {
  private readonly t = new Map<string, { count: number; parts: (Buffer | undefined)[]; have: number; at: number }>();
  constructor(private readonly maxTransfers = 2, private readonly ttlMs = 30_000) {}

  add(payload: Buffer, now: number): ChunkResult {
    if (payload.length < HEAD || payload[0] !== CHUNK_MAGIC || payload[1] !== 1) return { kind: 'whole', doc: payload };
    const id = payload.toString('hex', 2, 10);
    const index = payload.readUInt16BE(10), count = payload.readUInt16BE(12);
    if (count === 0 || count > MAX_CHUNKS || index >= count) return { kind: 'bad', why: `chunk ${index}/${count}` };
    for (const [k, v] of this.t) if (now - v.at > this.ttlMs) this.t.delete(k);
    let tr = this.t.get(id);
    if (tr && tr.count !== count) return { kind: 'bad', why: `chunk count ${count} != ${tr.count}` };
    if (!tr) {
      if (count === 1) return { kind: 'whole', doc: payload.subarray(HEAD) };
      while (this.t.size >= this.maxTransfers) this.t.delete(this.t.keys().next().value!);
      tr = { count, parts: new Array(count), have: 0, at: now };
      this.t.set(id, tr);
    }
    if (!tr.parts[index]) { tr.parts[index] = Buffer.from(payload.subarray(HEAD)); tr.have++; }
    if (tr.have < count) return { kind: 'partial' };
    this.t.delete(id);
    return { kind: 'whole', doc: Buffer.concat(tr.parts as Buffer[]) };
  }

  get pending(): number { return this.t.size; }
}
