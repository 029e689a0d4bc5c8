import { describe, expect, it } from 'vitest';
import { encodeProxyHeader, parseProxyHeader, MAX_V2_BODY, V2_LOCAL, V2_SIG, V1_LOCAL } from '../../src/l4/proxy-protocol.js';

/** The PROXY protocol codec against the spec's byte layouts (doc/proxy-protocol.txt §2.1, §2.2). */
const v2 = (verCmd: number, fam: number, body: number[] | Buffer): Buffer => {
  const b = Buffer.from(body);
  const h = Buffer.alloc(16);
  V2_SIG.copy(h, 0);
  h[12] = verCmd; h[13] = fam; h.writeUInt16BE(b.length, 14);
  return Buffer.concat([h, b]);
};
const V4_BODY = [192, 0, 2, 1, 198, 51, 100, 7, 0x30, 0x39, 0x00, 0x19]; // 192.0.2.1:12345 -> 198.51.100.7:25

describe('parseProxyHeader', () => {
  const cases: [string, Buffer, unknown][] = [
    ['v1 TCP4', Buffer.from('PROXY TCP4 192.0.2.1 198.51.100.7 12345 25\r\nEHLO'), { kind: 'ok', version: 1, length: 44, source: { address: '192.0.2.1', port: 12345 }, dest: { address: '198.51.100.7', port: 25 } }],
    ['v1 TCP6', Buffer.from('PROXY TCP6 2001:db8::1 2001:db8::2 1 65535\r\n'), { kind: 'ok', version: 1, source: { address: '2001:db8::1', port: 1 }, dest: { address: '2001:db8::2', port: 65535 } }],
    ['v1 UNKNOWN', Buffer.from('PROXY UNKNOWN\r\n'), { kind: 'ok', version: 1, length: 15, source: undefined }],
    ['v1 UNKNOWN with addresses', Buffer.from('PROXY UNKNOWN ffff::1 ffff::2 1 2\r\n'), { kind: 'ok', version: 1, source: undefined }],
    ['v1 prefix only', Buffer.from('PROX'), { kind: 'more' }],
    ['v1 without CRLF yet', Buffer.from('PROXY TCP4 192.0.2.1 198.51.100.7 12345'), { kind: 'more' }],
    ['v1 CR without LF yet', Buffer.from('PROXY TCP4 192.0.2.1 198.51.100.7 12345 25\r'), { kind: 'more' }],
    ['v1 lowercase', Buffer.from('proxy TCP4 1.2.3.4 1.2.3.5 1 2\r\n'), { kind: 'bad', reason: 'signature' }],
    ['v1 bad keyword', Buffer.from('PROXI TCP4'), { kind: 'bad', reason: 'signature' }],
    ['v1 TCP5', Buffer.from('PROXY TCP5 1.2.3.4 1.2.3.5 1 2\r\n'), { kind: 'bad', reason: 'v1_syntax' }],
    ['v1 v6 address under TCP4', Buffer.from('PROXY TCP4 ::1 1.2.3.5 1 2\r\n'), { kind: 'bad', reason: 'v1_syntax' }],
    ['v1 octet 256', Buffer.from('PROXY TCP4 1.2.3.256 1.2.3.5 1 2\r\n'), { kind: 'bad', reason: 'v1_syntax' }],
    ['v1 port 65536', Buffer.from('PROXY TCP4 1.2.3.4 1.2.3.5 65536 2\r\n'), { kind: 'bad', reason: 'v1_syntax' }],
    ['v1 leading zero port', Buffer.from('PROXY TCP4 1.2.3.4 1.2.3.5 025 2\r\n'), { kind: 'bad', reason: 'v1_syntax' }],
    ['v1 two spaces', Buffer.from('PROXY TCP4  1.2.3.4 1.2.3.5 1 2\r\n'), { kind: 'bad', reason: 'v1_syntax' }],
    ['v1 missing field', Buffer.from('PROXY TCP4 1.2.3.4 1.2.3.5 1\r\n'), { kind: 'bad', reason: 'v1_syntax' }],
    ['v1 bare LF', Buffer.from('PROXY TCP4 1.2.3.4 1.2.3.5 1 2\n'), { kind: 'bad', reason: 'v1_syntax' }],
    ['v1 CR then X', Buffer.from('PROXY TCP4 1.2.3.4 1.2.3.5 1 2\rX'), { kind: 'bad', reason: 'v1_syntax' }],
    ['v1 NUL inside', Buffer.from('PROXY TCP4 1.2.3.4\x00'), { kind: 'bad', reason: 'v1_syntax' }],
    ['v1 107 bytes without CRLF', Buffer.from('PROXY ' + 'A'.repeat(101)), { kind: 'bad', reason: 'v1_too_long' }],
    ['v1 106 bytes without CRLF', Buffer.from('PROXY ' + 'A'.repeat(100)), { kind: 'more' }],
    ['v2 PROXY TCP4', v2(0x21, 0x11, V4_BODY), { kind: 'ok', version: 2, length: 28, source: { address: '192.0.2.1', port: 12345 }, dest: { address: '198.51.100.7', port: 25 } }],
    ['v2 PROXY TCP4 with a TLV', v2(0x21, 0x11, [...V4_BODY, 0x04, 0x00, 0x01, 0x00]), { kind: 'ok', length: 32, source: { address: '192.0.2.1', port: 12345 } }],
    ['v2 PROXY TCP6', v2(0x21, 0x21, [0x20, 0x01, 0x0d, 0xb8, ...new Array(11).fill(0), 1, 0x20, 0x01, 0x0d, 0xb8, ...new Array(11).fill(0), 2, 0, 80, 1, 187]), { kind: 'ok', source: { address: '2001:db8::1', port: 80 }, dest: { address: '2001:db8::2', port: 443 } }],
    ['v2 LOCAL', v2(0x20, 0x00, []), { kind: 'ok', version: 2, length: 16, source: undefined }],
    ['v2 PROXY UNSPEC', v2(0x21, 0x00, [1, 2, 3]), { kind: 'ok', length: 19, source: undefined }],
    ['v2 signature prefix', V2_SIG.subarray(0, 7), { kind: 'more' }],
    ['v2 fixed part incomplete', v2(0x21, 0x11, V4_BODY).subarray(0, 15), { kind: 'more' }],
    ['v2 addresses incomplete', v2(0x21, 0x11, V4_BODY).subarray(0, 27), { kind: 'more' }],
    ['v2 signature wrong at byte 9', Buffer.concat([V2_SIG.subarray(0, 9), Buffer.from('X')]), { kind: 'bad', reason: 'signature' }],
    ['v2 version 1', v2(0x11, 0x11, V4_BODY), { kind: 'bad', reason: 'v2_version' }],
    ['v2 command 2', v2(0x22, 0x11, V4_BODY), { kind: 'bad', reason: 'v2_command' }],
    ['v2 family 4', v2(0x21, 0x41, V4_BODY), { kind: 'bad', reason: 'v2_family' }],
    ['v2 transport 3', v2(0x21, 0x13, V4_BODY), { kind: 'bad', reason: 'v2_family' }],
    ['v2 TCP4 with 11 address bytes', v2(0x21, 0x11, V4_BODY.slice(0, 11)), { kind: 'bad', reason: 'v2_length' }],
    ['v2 TCP6 with 12 address bytes', v2(0x21, 0x21, V4_BODY), { kind: 'bad', reason: 'v2_length' }],
    ['v2 oversized', (() => { const h = v2(0x21, 0x11, []); h.writeUInt16BE(MAX_V2_BODY + 1, 14); return h; })(), { kind: 'bad', reason: 'oversized' }],
    ['TLS ClientHello', Buffer.from([0x16, 0x03, 0x01, 0x00, 0xc8]), { kind: 'bad', reason: 'signature' }],
    ['plain HTTP', Buffer.from('GET / HTTP/1.1\r\n'), { kind: 'bad', reason: 'signature' }],
    ['empty', Buffer.alloc(0), { kind: 'more' }],
  ];
  it.each(cases)('%s', (_name, buf, want) => {
    // An absent source means "use the connection's own addresses": spelt out as undefined.
    expect({ source: undefined, ...parseProxyHeader(buf) }).toMatchObject(want as object);
  });

  it('every prefix of a valid header is "more", never a verdict', () => {
    for (const h of [Buffer.from('PROXY TCP4 192.0.2.1 198.51.100.7 12345 25\r\n'), v2(0x21, 0x11, V4_BODY)]) {
      for (let i = 0; i < h.length; i++) expect(parseProxyHeader(h.subarray(0, i)).kind).toBe('more');
      expect(parseProxyHeader(h).kind).toBe('ok');
    }
  });
});

describe('encodeProxyHeader', () => {
  it('v1 and v2 round-trip through the parser; v4-mapped addresses become IPv4; mixed families IPv6', () => {
    const src = { address: '::ffff:192.0.2.1', port: 40000 };
    const dst = { address: '198.51.100.7', port: 993 };
    expect(encodeProxyHeader(1, src, dst).toString()).toBe('PROXY TCP4 192.0.2.1 198.51.100.7 40000 993\r\n');
    expect(parseProxyHeader(encodeProxyHeader(2, src, dst))).toMatchObject({ kind: 'ok', length: 28, source: { address: '192.0.2.1', port: 40000 }, dest: dst });
    const mixed = encodeProxyHeader(2, { address: '2001:db8::5', port: 1 }, dst);
    expect(parseProxyHeader(mixed)).toMatchObject({ kind: 'ok', length: 52, source: { address: '2001:db8::5', port: 1 }, dest: { address: '::ffff:198.51.100.7', port: 993 } });
    expect(encodeProxyHeader(1, { address: '2001:db8::5', port: 1 }, { address: '2001:db8::6', port: 2 }).toString()).toBe('PROXY TCP6 2001:db8::5 2001:db8::6 1 2\r\n');
    expect(encodeProxyHeader(1, { address: 'unix', port: 0 }, dst).toString()).toBe('PROXY UNKNOWN\r\n');
    expect(parseProxyHeader(V2_LOCAL)).toEqual({ kind: 'ok', length: 16, version: 2 });
    expect(parseProxyHeader(V1_LOCAL)).toEqual({ kind: 'ok', length: 15, version: 1 });
  });
});
