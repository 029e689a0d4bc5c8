import { describe, expect, it } from 'vitest';
import { createServer, type AddressInfo } from 'node:net';
import { connect, type ConnectionOptions } from 'node:tls';
import { acceptsEcdsa, firstRecordLength, parseClientHello } from '../../src/tls/client-hello.js';

/** The ClientHello parser on real ClientHellos written by node:tls (OpenSSL), and on bad bytes. */
async function capture(opts: ConnectionOptions): Promise<Buffer> {
  const srv = createServer();
  await new Promise<void>((ok) => srv.listen(0, '127.0.0.1', () => ok()));
  const got = new Promise<Buffer>((ok) => srv.once('connection', (s) => {
    let b = Buffer.alloc(0);
    s.on('data', (d: Buffer) => { b = Buffer.concat([b, d]); const n = firstRecordLength(b); if (n !== undefined && n > 0 && b.length >= n) { ok(b); s.destroy(); } });
  }));
  const c = connect({ host: '127.0.0.1', port: (srv.address() as AddressInfo).port, ...opts });
  c.on('error', () => {});
  const b = await got;
  c.destroy();
  srv.close();
  return b;
}

describe('parseClientHello', () => {
  it('reads SNI, ALPN, TLS 1.3 support and ECDSA acceptance', async () => {
    const h = parseClientHello(await capture({ servername: 'www.example.test', ALPNProtocols: ['h2', 'http/1.1'] }))!;
    expect(h).toMatchObject({ sni: 'www.example.test', alpn: ['h2', 'http/1.1'], tls13: true });
    expect(acceptsEcdsa(h)).toBe(true);
  });
  it('an RSA-only TLS 1.2 client does not accept ECDSA; one with ECDSA suites does', async () => {
    const rsa = parseClientHello(await capture({ servername: 'a.test', maxVersion: 'TLSv1.2', sigalgs: 'rsa_pss_rsae_sha256:rsa_pkcs1_sha256' }))!;
    expect(rsa).toMatchObject({ sni: 'a.test', tls13: false });
    expect(acceptsEcdsa(rsa)).toBe(false);
    const rsaSuites = parseClientHello(await capture({ maxVersion: 'TLSv1.2', ciphers: 'ECDHE-RSA-AES128-GCM-SHA256' }))!;
    expect(rsaSuites.sni).toBeUndefined();
    expect(acceptsEcdsa(rsaSuites)).toBe(false);
    const ec = parseClientHello(await capture({ maxVersion: 'TLSv1.2', ciphers: 'ECDHE-ECDSA-AES128-GCM-SHA256' }))!;
    expect(acceptsEcdsa(ec)).toBe(true);
  });
  it('refuses what is not a whole ClientHello record', async () => {
    const b = await capture({ servername: 'x.test' });
    expect(parseClientHello(b.subarray(0, b.length - 1))).toBeUndefined();
    expect(firstRecordLength(b.subarray(0, 3))).toBe(-1);
    expect(firstRecordLength(Buffer.from('GET / HTTP/1.1\r\n'))).toBeUndefined();
    expect(firstRecordLength(Buffer.from([0x16, 0x03, 0x01, 0xff, 0xff]))).toBeUndefined();
    expect(parseClientHello(Buffer.from([0x16, 0x03, 0x01, 0x00, 0x04, 0x02, 0x00, 0x00, 0x00]))).toBeUndefined();
    // Truncated inner lengths never read past the record.
    const cut = Buffer.from(b);
    cut.writeUInt16BE(0xffff, 5 + 4 + 2 + 32 + 1 + cut[5 + 4 + 2 + 32]);
    expect(() => parseClientHello(cut)).not.toThrow();
  });
});
