import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connect as tlsConnect, type ConnectionOptions, type PeerCertificate, type TLSSocket } from 'node:tls';
import { request as httpsRequest } from 'node:https';
import { mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { startBackend, type TestBackend } from '../helpers/backend.js';
import { startApp } from '../helpers/app.js';
import { makeCa, makeLeaf, type Ca, type Leaf } from '../helpers/certs.js';
import { tempDir } from '../daemon/daemon.js';

/**
 * TLS termination in-process: real certificates (openssl), a real App, real node:tls clients.
 * Asserts which certificate each ClientHello gets (SNI exact, wildcard, unknown, none; RSA vs
 * ECDSA by the client's signature algorithms), what the backend sees (X-Forwarded-Proto/Port,
 * Forwarded), protocol floor and ALPN.
 */

let dir: string;
let ca: Ca;
let ecA: Leaf; let rsaA: Leaf; let wild: Leaf; let other: Leaf;
let backend: TestBackend;
let app: Awaited<ReturnType<typeof startApp>>;
let port: number;

beforeAll(async () => {
  dir = tempDir('tls-term');
  ca = makeCa(join(dir, 'ca'));
  ecA = makeLeaf(ca, 'a-ec', ['a.example.test', 'www.a.example.test']);
  rsaA = makeLeaf(ca, 'a-rsa', ['a.example.test', 'www.a.example.test'], { type: 'rsa' });
  wild = makeLeaf(ca, 'wild', ['*.b.example.test']);
  other = makeLeaf(ca, 'other', ['c.example.test']);
  mkdirSync(join(dir, 'bundles'));
  backend = await startBackend('web1');
  app = await startApp(`listen:
  - name: web
    bind: 127.0.0.1:0
    tls:
      certificates:
        - ${ecA.bundle}
        - { cert: ${rsaA.chain}, key: ${rsaA.key} }
        - ${wild.bundle}
        - ${other.bundle}
    forwardfor: { forwarded: true }
    backends:
      - { name: web1, address: ${backend.address}, check: false }
`);
  port = app.port();
});

afterAll(async () => {
  await app?.stop();
  await backend?.close();
});

function handshake(opts: ConnectionOptions): Promise<{ cert: PeerCertificate; protocol: string | null; alpn: string | false; error?: undefined } | { error: Error & { code?: string } }> {
  return new Promise((ok) => {
    const s: TLSSocket = tlsConnect({ host: '127.0.0.1', port, ca: readFileSync(ca.rootCert), ...opts });
    s.once('secureConnect', () => {
      const r = { cert: s.getPeerCertificate(), protocol: s.getProtocol(), alpn: s.alpnProtocol };
      // A graceful close: destroy() with the server's session tickets unread sends a RST, which
      // can reach the server before it read our Finished (it would count an aborted handshake).
      s.on('close', () => ok(r));
      s.on('error', () => {});
      s.end();
      s.resume();
    });
    s.once('error', (error) => { s.destroy(); ok({ error }); });
  });
}

const cnOf = (r: Awaited<ReturnType<typeof handshake>>) => ('cert' in r && r.cert ? { cn: r.cert.subject.CN, key: r.cert.pubkey ? (r.cert.bits === 256 ? 'ec' : 'rsa') : '?' } : { error: r.error?.code });

describe('certificate selection', () => {
  it.each([
    ['a.example.test', 'a.example.test'],
    ['WWW.A.Example.Test', 'a.example.test'],
    ['x.b.example.test', '*.b.example.test'],
    ['c.example.test', 'c.example.test'],
  ])('SNI %s gets the certificate of %s', async (sni, cn) => {
    const r = await handshake({ servername: sni });
    expect(r.error).toBeUndefined();
    expect(cnOf(r).cn).toBe(cn);
  });

  it('a wildcard covers one label only, an unknown name and no SNI get the default (the first certificate)', async () => {
    const deep = await handshake({ servername: 'x.y.b.example.test', checkServerIdentity: () => undefined });
    expect(cnOf(deep).cn).toBe('a.example.test');
    const unknown = await handshake({ servername: 'nobody.test', checkServerIdentity: () => undefined });
    expect(cnOf(unknown).cn).toBe('a.example.test');
    const none = await handshake({ servername: '', checkServerIdentity: () => undefined });
    expect(cnOf(none).cn).toBe('a.example.test');
    const c = app.app.proxy.listeners.get('web')!.tls!.counters;
    expect(c.sniUnknown).toBeGreaterThanOrEqual(2);
    // The server counts once it has read the client's Finished (after the client's secureConnect).
    await waitFor(() => c.noSni >= 1);
  });

  it('RSA and ECDSA for one name: the client\'s signature algorithms pick the chain', async () => {
    const ec = await handshake({ servername: 'a.example.test', sigalgs: 'ecdsa_secp256r1_sha256', maxVersion: 'TLSv1.2' });
    expect(cnOf(ec)).toEqual({ cn: 'a.example.test', key: 'ec' });
    const rsa = await handshake({ servername: 'a.example.test', sigalgs: 'rsa_pss_rsae_sha256:rsa_pkcs1_sha256', maxVersion: 'TLSv1.2' });
    expect(cnOf(rsa)).toEqual({ cn: 'a.example.test', key: 'rsa' });
    const rsa13 = await handshake({ servername: 'a.example.test', sigalgs: 'rsa_pss_rsae_sha256' });
    expect(cnOf(rsa13)).toEqual({ cn: 'a.example.test', key: 'rsa' });
    // Without SNI too: the default serves both chains of its name.
    const rsaNoSni = await handshake({ servername: '', sigalgs: 'rsa_pss_rsae_sha256', checkServerIdentity: () => undefined });
    expect(cnOf(rsaNoSni)).toEqual({ cn: 'a.example.test', key: 'rsa' });
  });

  it('TLS 1.2 and 1.3 with ALPN (h2 by default, http/1.1 when that is all the client offers) after an SNI switch; TLS 1.1 refused and counted', async () => {
    const t13 = await handshake({ servername: 'c.example.test', ALPNProtocols: ['h2', 'http/1.1'] });
    expect(t13).toMatchObject({ protocol: 'TLSv1.3', alpn: 'h2' });
    const t12 = await handshake({ servername: 'x.b.example.test', maxVersion: 'TLSv1.2', ALPNProtocols: ['http/1.1'] });
    expect(t12).toMatchObject({ protocol: 'TLSv1.2', alpn: 'http/1.1' });
    const c = app.app.proxy.listeners.get('web')!.tls!.counters;
    const before = c.failures.version;
    const old = await handshake({ servername: 'c.example.test', minVersion: 'TLSv1', maxVersion: 'TLSv1.1', ciphers: 'DEFAULT@SECLEVEL=0' });
    expect(old.error).toBeDefined();
    await waitFor(() => c.failures.version === before + 1);
  });
});

describe('forwarding headers over TLS', () => {
  it('the backend sees X-Forwarded-Proto https, the bind port, Forwarded proto=https', async () => {
    const n = backend.seen.length;
    const r = await new Promise<{ status: number; body: string }>((ok, fail) => {
      const req = httpsRequest({ host: '127.0.0.1', port, path: '/x', servername: 'a.example.test', headers: { host: 'a.example.test', 'x-forwarded-proto': 'http' }, ca: readFileSync(ca.rootCert), agent: false }, (res) => {
        let body = '';
        res.on('data', (d) => { body += d; });
        res.on('end', () => ok({ status: res.statusCode!, body }));
      });
      req.on('error', fail);
      req.end();
    });
    expect(r).toEqual({ status: 200, body: 'web1' });
    const h = backend.seen[n].headers;
    expect(h['x-forwarded-proto']).toBe('https');
    expect(h['x-forwarded-port']).toBe(String(port));
    expect(h['x-forwarded-host']).toBe('a.example.test');
    expect(h.forwarded).toBe('for=127.0.0.1;proto=https;host="a.example.test"');
  });
});

async function waitFor(pred: () => boolean, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!pred()) {
    if (Date.now() > end) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 20));
  }
}
