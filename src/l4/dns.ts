/**
 * The few bytes of DNS (RFC 1035 §4.1) that pairlb needs: a query for a health check and the
 * header of its answer. Not a resolver.
 */

/** Query types used here (RFC 1035 §3.2.2). */
export const QTYPE_SOA = 6;

/** A standard query (RD set) for `name` (".", "example.com", "example.com."), class IN. */
export function buildQuery(id: number, name: string, qtype = QTYPE_SOA): Buffer {
  const labels = name === '.' ? [] : name.replace(/\.$/, '').split('.');
  const qname = Buffer.alloc(labels.reduce((n, l) => n + 1 + l.length, 0) + 1);
  let o = 0;
  for (const l of labels) { qname[o++] = l.length; o += qname.write(l, o, 'ascii'); }
  qname[o] = 0;
  const h = Buffer.alloc(12);
  h.writeUInt16BE(id & 0xffff, 0);
  h.writeUInt16BE(0x0100, 2); // QR=0 opcode=0 RD=1
  h.writeUInt16BE(1, 4); // QDCOUNT
  const tail = Buffer.alloc(4);
  tail.writeUInt16BE(qtype, 0);
  tail.writeUInt16BE(1, 2); // IN
  return Buffer.concat([h, qname, tail]);
}

/** The answer to query `id`: its RCODE (0 NOERROR, 2 SERVFAIL, 3 NXDOMAIN, 5 REFUSED), or -1 if it is not one. */
export function answerRcode(msg: Buffer, id: number): number {
  if (msg.length < 12 || msg.readUInt16BE(0) !== (id & 0xffff)) return -1;
  const flags = msg.readUInt16BE(2);
  if ((flags & 0x8000) === 0) return -1; // QR: not a response
  return flags & 0x000f;
}
