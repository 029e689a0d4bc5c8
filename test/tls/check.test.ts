import { beforeAll, describe, expect, it } from 'vitest';
import { copyFileSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { cli, ensureBuilt, tempDir } from '../daemon/daemon.js';
import { makeCa, makeLeaf, type Ca, type Leaf } from '../helpers/certs.js';

/**
 * `pairlb check` on TLS binds, through the real CLI: refusals (exit 1, key path and line) for a key
 * that does not match, an unreadable file, a chain out of order, a bad file in the directory, a
 * cipher list OpenSSL refuses; warnings (exit 0) for a certificate expiring within 30 days.
 */

let dir: string;
let ca: Ca;
let good: Leaf; let other: Leaf; let soon: Leaf;

beforeAll(() => {
  ensureBuilt();
  dir = tempDir('tls-check');
  ca = makeCa(join(dir, 'ca'));
  good = makeLeaf(ca, 'good', ['www.example.test']);
  other = makeLeaf(ca, 'other', ['other.example.test'], { type: 'rsa' });
  soon = makeLeaf(ca, 'soon', ['soon.example.test'], { days: 10 });
});

function check(tls: string): ReturnType<typeof cli> {
  const f = join(dir, `c${Math.random().toString(36).slice(2)}.yaml`);
  writeFileSync(f, `listen:
  - name: www
    bind: 127.0.0.1:8443
    tls:
${tls.replace(/^/gm, '      ')}
    backends:
      - { name: a, address: 127.0.0.1:9000 }
`);
  return cli(['check', '-c', f]);
}

describe('pairlb check: TLS', () => {
  it('accepts a valid bundle and a cert + key pair, no warning', () => {
    const r = check(`certificates:\n  - ${good.bundle}\n  - { cert: ${other.chain}, key: ${other.key} }`);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
  });

  it('refuses a key that does not match its certificate', () => {
    const r = check(`certificates:\n  - ${good.bundle}\n  - { cert: ${good.chain}, key: ${other.key} }`);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/listen\[0\]\.tls\.certificates\[1\]: .*the private key does not match the certificate \(CN=www\.example\.test\) \(line 7\)/);
  });

  it('refuses an unreadable file, naming it', () => {
    const r = check(`certificates:\n  - ${join(dir, 'missing.pem')}`);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`listen[0].tls.certificates[0]: ${join(dir, 'missing.pem')}: cannot read: ENOENT (line 6)`);
  });

  it('refuses a chain out of order (intermediate before the leaf)', () => {
    const f = join(dir, 'swapped.pem');
    writeFileSync(f, readFileSync(ca.intCert, 'utf8') + readFileSync(good.cert, 'utf8') + readFileSync(good.key, 'utf8'));
    const r = check(`certificates:\n  - ${f}`);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/listen\[0\]\.tls\.certificates\[0\]: .*chain out of order: certificate 1 \(CN=pairlb test intermediate\) is not issued by certificate 2 \(CN=www\.example\.test\); the order is reversed: put the leaf first, then each issuer/);
  });

  it('refuses a bad bundle in the directory, names the file; a bundle without a key too', () => {
    const d = join(dir, 'bundles');
    mkdirSync(d);
    copyFileSync(good.bundle, join(d, 'good.pem'));
    copyFileSync(good.chain, join(d, 'nokey.pem'));
    writeFileSync(join(d, '.ignored.pem.tmp'), 'half written');
    writeFileSync(join(d, 'README'), 'not a bundle');
    const r = check(`directory: ${d}`);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`listen[0].tls.directory: ${join(d, 'nokey.pem')}: no private key`);
    expect(r.stderr.match(/tls\./g)).toHaveLength(1);
  });

  it('refuses a cipher list OpenSSL does not know', () => {
    const r = check(`certificates: [${good.bundle}]\nciphers: NOT-A-CIPHER`);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/listen\[0\]\.tls\.ciphers: .*cipher/i);
  });

  it('warns (exit 0) on a certificate that expires within 30 days', () => {
    const r = check(`certificates:\n  - ${good.bundle}\n  - ${soon.bundle}`);
    expect(r.code).toBe(0);
    expect(r.stderr).toMatch(/^warning: listen\[0\]\.tls\.certificates\[1\]: certificate .*soon\.bundle\.pem \(soon\.example\.test\) expires in (9|10) days/m);
    expect(r.stdout).toContain('Configuration file is valid');
  });
});
