import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFile } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { startBackend, type TestBackend } from '../helpers/backend.js';
import { startPairlb, type PairlbProc } from '../helpers/proc.js';
import { ensurePackages } from '../helpers/sys.js';
import { cleanup, cli, ensureBuilt, tempDir } from '../daemon/daemon.js';
import { makeCa, makeLeaf, type Ca } from '../helpers/certs.js';

/**
 * Many sites over TLS (issue 13, the TLS half of test/sites/many-sites.test.ts): 50 host names
 * across 10 backend pools on one TLS frontend, the real pairlb from dist/, one certificate per
 * pool (exact names + a wildcard; pool 0 with RSA and ECDSA). Every name asked with
 * `curl --resolve` (the certificate verified against the name) and `openssl s_client -servername`
 * (the certificate chosen by SNI), the exact backend per name asserted, X-Forwarded-Proto https.
 * `pairlb check` warns on a routed name no certificate serves.
 */

const run = promisify(execFile);
const POOLS = 10;
let dir: string;
let ca: Ca;
let backends: TestBackend[] = [];
let lb: PairlbProc | undefined;
let yaml: string;

function names(i: number): { rule: string[]; cert: string[]; ask: string[] } {
  const rule = [`site-${i}.test`, `www.site-${i}.test`, `shop-${i}.example.test`, `blog-${i}.example.test`, `*.site-${i}.test`];
  return { rule, cert: rule, ask: [`site-${i}.test`, `WWW.Site-${i}.test`, `shop-${i}.example.test`, `blog-${i}.example.test`, `cdn.site-${i}.test`] };
}

beforeAll(async () => {
  ensureBuilt();
  ensurePackages(['curl']);
  dir = tempDir('tls-sites');
  ca = makeCa(join(dir, 'ca'));
  const bundles = Array.from({ length: POOLS }, (_, i) => makeLeaf(ca, `pool${i}`, names(i).cert).bundle);
  bundles.push(makeLeaf(ca, 'pool0-rsa', names(0).cert, { type: 'rsa' }).bundle);
  backends = await Promise.all(Array.from({ length: POOLS }, (_, i) => startBackend(`b${i}`)));
  const rules = Array.from({ length: POOLS }, (_, i) => `      - { when: { host: [${names(i).rule.map((n) => JSON.stringify(n)).join(', ')}] }, backend: pool-${i} }`).join('\n');
  const pools = backends.map((b, i) => `  - { name: pool-${i}, servers: [{ name: ${b.name}, address: "${b.address}", check: false }] }`).join('\n');
  yaml = `global: { log: { access: off } }
frontends:
  - name: sites
    bind: "127.0.0.1:0"
    tls:
      certificates:
${bundles.map((b) => `        - ${b}`).join('\n')}
    rules:
${rules}
backends:
${pools}
`;
  lb = await startPairlb(yaml);
}, 120_000);

afterAll(async () => {
  await lb?.stop();
  await Promise.all(backends.map((b) => b.close()));
  if (dir) cleanup(dir);
});

async function batches<T>(items: T[], n: number, fn: (x: T) => Promise<void>): Promise<void> {
  for (let k = 0; k < items.length; k += n) await Promise.all(items.slice(k, k + n).map(fn));
}

describe('50 host names across 10 backends on one TLS bind', () => {
  it('curl --resolve (certificate verified for the name) reaches exactly the backend of each name', async () => {
    const port = lb!.port('sites');
    const want: Record<string, string> = {};
    for (let i = 0; i < POOLS; i++) for (const n of names(i).ask) want[n] = `b${i} 200`;
    const all = Object.keys(want);
    expect(all).toHaveLength(50);
    const got: Record<string, string> = {};
    await batches(all, 10, async (n) => {
      const { stdout } = await run('curl', ['-sS', '--max-time', '10', '--cacert', ca.rootCert, '--resolve', `${n}:${port}:127.0.0.1`, '-o', '-', '-w', ' %{http_code}', `https://${n}:${port}/who`]);
      got[n] = stdout;
    });
    expect(got).toEqual(want);
    for (let i = 0; i < POOLS; i++) {
      expect(backends[i].seen.map((s) => s.headers.host!.split(':')[0]).sort()).toEqual(names(i).ask.slice().sort());
      expect(new Set(backends[i].seen.map((s) => s.headers['x-forwarded-proto']))).toEqual(new Set(['https']));
    }
  });

  it('openssl s_client -servername gets each name\'s certificate (verified); an unknown name gets the default', async () => {
    const port = lb!.port('sites');
    const all: [string, number][] = [];
    for (let i = 0; i < POOLS; i++) for (const n of names(i).ask) all.push([n, i]);
    const got: Record<string, string> = {};
    const want: Record<string, string> = {};
    for (const [n, i] of all) want[n] = `CN=site-${i}.test ok`;
    await batches(all, 10, async ([n]) => {
      const out = await new Promise<string>((ok) => {
        const p = execFile('openssl', ['s_client', '-connect', `127.0.0.1:${port}`, '-servername', n, '-CAfile', ca.rootCert, '-verify_hostname', n.toLowerCase(), '-verify_return_error'], { timeout: 15_000 }, (_e, so, se) => ok(so + se));
        p.stdin?.end();
      });
      const cn = /subject=CN ?= ?([^\s,/]+)/.exec(out)?.[1];
      got[n] = `CN=${cn} ${out.includes('Verify return code: 0 (ok)') ? 'ok' : 'FAILED'}`;
    });
    expect(got).toEqual(want);
    const out = await new Promise<string>((ok) => {
      const p = execFile('openssl', ['s_client', '-connect', `127.0.0.1:${port}`, '-servername', 'nosuch.test', '-CAfile', ca.rootCert], { timeout: 15_000 }, (_e, so, se) => ok(so + se));
      p.stdin?.end();
    });
    expect(out).toMatch(/subject=CN ?= ?site-0\.test/);
  });

  it('pool 0 has RSA and ECDSA: an RSA-only client gets the RSA certificate of the same names', async () => {
    const port = lb!.port('sites');
    const rsa = await new Promise<string>((ok) => {
      const p = execFile('openssl', ['s_client', '-connect', `127.0.0.1:${port}`, '-servername', 'www.site-0.test', '-CAfile', ca.rootCert, '-sigalgs', 'RSA-PSS+SHA256:RSA+SHA256', '-tls1_2', '-cipher', 'ECDHE-RSA-AES128-GCM-SHA256'], { timeout: 15_000 }, (_e, so, se) => ok(so + se));
      p.stdin?.end();
    });
    expect(rsa).toMatch(/Server public key is 2048 bit/);
    expect(rsa).toContain('Verify return code: 0 (ok)');
    const ec = await new Promise<string>((ok) => {
      const p = execFile('openssl', ['s_client', '-connect', `127.0.0.1:${port}`, '-servername', 'www.site-0.test', '-CAfile', ca.rootCert], { timeout: 15_000 }, (_e, so, se) => ok(so + se));
      p.stdin?.end();
    });
    expect(ec).toMatch(/Server public key is 256 bit/);
  });

  it('pairlb check warns on a routed name no certificate serves (exit 0)', () => {
    const f = join(dir, 'uncovered.yaml');
    writeFileSync(f, yaml.replace('    rules:\n', '    rules:\n      - { when: { host: [nocert.test, "*.other.test"] }, backend: pool-1 }\n'));
    const r = cli(['check', '-c', f]);
    expect(r.code).toBe(0);
    expect(r.stderr).toContain('warning: frontends[0].rules[0].when.host: no certificate of sites serves nocert.test');
    expect(r.stderr).toContain('serves *.other.test');
    expect(r.stderr).not.toContain('site-1.test');
  });
});
