import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect, createServer as createTlsServer } from 'node:tls';
import { CLI, startPairlb, type PairlbProc } from '../helpers/proc.js';
import { startBackend, type TestBackend } from '../helpers/backend.js';
import { freePort, startPebble, type Pebble } from '../helpers/pebble.js';
import { certFacts, splitBundle } from '../../src/acme/store.js';
import { PLACEHOLDER_CN } from '../../src/acme/placeholder.js';
import { X509Certificate } from 'node:crypto';

/**
 * ACME end to end against a real CA: Debian's pebble (Let's Encrypt's test server) validates
 * HTTP-01 on the real pairlb's plain listener. Certificates live 12 s, so renewal at 2/3 of the
 * lifetime comes after 8 s; then the name is pointed where nothing listens, and the failed
 * renewal must leave the installed certificate in place, backing off, with an alarm in
 * `pairlb status`.
 */

let pebble: Pebble;
let lb: PairlbProc;
let be: TestBackend;
let dir: string;
let httpPort: number;
const NAMES = ['shop.test', 'www.shop.test'];

function cli(args: string[]): Promise<{ code: number; stdout: string }> {
  return new Promise((ok) => {
    execFile(process.execPath, [CLI, ...args], { timeout: 20_000, encoding: 'utf8' }, (err, stdout) => ok({ code: err ? (typeof err.code === 'number' ? err.code : 99) : 0, stdout }));
  });
}

async function until<T>(f: () => T | undefined | Promise<T | undefined>, ms: number, what: string): Promise<T> {
  const t0 = Date.now();
  for (;;) {
    const v = await f();
    if (v !== undefined && v !== false) return v as T;
    if (Date.now() - t0 > ms) throw new Error(`timed out after ${ms} ms waiting for ${what}; last logs: ${JSON.stringify(lb?.logs.filter((l) => l.mod === 'acme').slice(-4))}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

const bundleFile = () => join(dir, 'certs', 'shop.pem');
function bundle(): { serial: string; names: string[]; notBefore: number; notAfter: number; pem: string } | undefined {
  if (!existsSync(bundleFile())) return undefined;
  const pem = readFileSync(bundleFile(), 'utf8');
  const leaf = splitBundle(pem).certs[0];
  if (new X509Certificate(leaf).issuer.includes(PLACEHOLDER_CN)) return undefined;
  return { ...certFacts(leaf), pem };
}

/** Serve a bundle with node:tls and connect with the CA's root trusted, as a client would. */
async function handshake(pem: string, root: string, servername: string): Promise<{ authorized: boolean; error?: string; san?: string }> {
  const b = splitBundle(pem);
  const srv = createTlsServer({ cert: b.certs.join(''), key: b.key }, (s) => s.end());
  await new Promise<void>((ok) => srv.listen(0, '127.0.0.1', ok));
  try {
    return await new Promise((ok) => {
      const s = connect({ host: '127.0.0.1', port: (srv.address() as { port: number }).port, servername, ca: root }, () => {
        ok({ authorized: s.authorized, san: s.getPeerCertificate().subjectaltname });
        s.destroy();
      });
      s.on('error', (e) => ok({ authorized: false, error: e.message }));
    });
  } finally { srv.close(); }
}

/** What pairlb's TLS bind serves for `servername`: serial, and whether a client trusting the CA accepts it. */
function served(servername: string, root: string): Promise<{ serial: string; authorized: boolean; issuer: string; error?: string }> {
  return new Promise((ok, fail) => {
    const s = connect({ host: '127.0.0.1', port: lb.port('shop'), servername, ca: root, rejectUnauthorized: false }, () => {
      const c = s.getPeerCertificate();
      ok({ serial: c.serialNumber, authorized: s.authorized, issuer: c.issuer?.CN ?? '', error: s.authorizationError ? String(s.authorizationError) : undefined });
      s.destroy();
    });
    s.on('error', fail);
  });
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'pairlb-acme-'));
  httpPort = await freePort();
  pebble = await startPebble({ httpPort, validitySeconds: 12 });
  be = await startBackend('site');
  lb = await startPairlb(`
global:
  log: { level: debug }
  # the data plane in worker threads: challenge tokens and certificates reach them by message
  workers: 2
listen:
  - name: web
    bind: 127.0.0.1:${httpPort}
    backends: [{ name: site, address: ${be.address}, check: false }]
  - name: shop
    bind: 127.0.0.1:0
    acme: [${NAMES.join(', ')}]
    tls: { directory: ${join(dir, 'certs')} }
    backends: [{ name: site, address: ${be.address}, check: false }]
acme:
  directory: ${pebble.directory}
  email: ops@shop.test
  terms_of_service_agreed: true
  ca_file: ${pebble.caFile}
  cert_dir: ${join(dir, 'certs')}
  retry_min: 2s
  retry_max: 4s
  order_timeout: 30s
admin:
  socket: ${join(dir, 'admin.sock')}
stats:
  bind: 127.0.0.1:0
`, { dir });
}, 60_000);

afterAll(async () => {
  await lb?.stop();
  await be?.close();
  await pebble?.stop();
  rmSync(dir, { recursive: true, force: true });
});

describe('ACME with pebble', () => {
  it('orders, renews at 2/3 of the lifetime, and keeps the old certificate when an order fails', async () => {
    // 1. First certificate: HTTP-01 answered by pairlb's :80-equivalent listener.
    const first = await until(() => bundle(), 30_000, 'the first certificate');
    expect(first.names.sort()).toEqual([...NAMES].sort());
    expect((statSync(bundleFile()).mode & 0o777).toString(8)).toBe('600');
    expect(first.notAfter - first.notBefore).toBeGreaterThanOrEqual(11_000);
    const root = await pebble.root();
    // pairlb's TLS bind serves it (it started on a self-signed placeholder: the directory was empty).
    expect(lb.logs.filter((l) => l.mod === 'acme').map((l) => l.msg)).toContain('acme: self-signed placeholder written until the first certificate is issued');
    const live = await until(async () => { const v = await served('www.shop.test', root); return v.serial === first.serial ? v : undefined; }, 10_000, 'pairlb serving the first certificate');
    expect(live.authorized).toBe(true);
    const hs = await handshake(first.pem, root, 'www.shop.test');
    expect(hs).toMatchObject({ authorized: true });
    expect(hs.san).toContain('DNS:www.shop.test');
    // The account is kept 0600 in state_dir.
    expect((statSync(join(dir, 'state', 'acme', 'account.json')).mode & 0o777).toString(8)).toBe('600');
    // The CA fetched the token from pairlb, not from the backend.
    expect(be.seen.filter((s) => s.url.startsWith('/.well-known/acme-challenge/'))).toEqual([]);
    // A token that is not pairlb's goes to the backend (a site with its own ACME client).
    const r = await fetch(`http://127.0.0.1:${httpPort}/.well-known/acme-challenge/not-ours`);
    expect(r.status).toBe(200);
    expect(be.seen.at(-1)?.url).toBe('/.well-known/acme-challenge/not-ours');

    // 2. Renewal at 2/3 of 12 s: a new certificate with a new serial and a later notBefore.
    const second = await until(() => { const b = bundle(); return b && b.serial !== first.serial ? b : undefined; }, 30_000, 'the renewed certificate');
    expect(second.notBefore).toBeGreaterThanOrEqual(first.notBefore);
    expect(second.notBefore - first.notBefore).toBeGreaterThanOrEqual(Math.floor((first.notAfter - first.notBefore) * 2 / 3) - 1000);
    const renewLog = lb.logs.find((l) => l.mod === 'acme' && typeof l.msg === 'string' && (l.msg as string).includes('(renewal due)'));
    expect(renewLog).toBeDefined();
    expect((await handshake(second.pem, root, 'shop.test')).authorized).toBe(true);
    await until(async () => (await served('shop.test', root)).serial === second.serial || undefined, 10_000, 'pairlb serving the renewed certificate');

    // 3. The challenge becomes unreachable: the name resolves where nothing listens.
    for (const n of NAMES) await pebble.setA(n, '127.0.0.2');
    const failed = await until(() => lb.logs.find((l) => l.mod === 'acme' && l.failures === 1), 30_000, 'a failed order');
    expect(String(failed.error)).toMatch(/127\.0\.0\.2|connection refused|Connection refused|invalid/i);
    expect(failed.keeps).toMatchObject({ serial: second.serial });
    // The installed certificate is untouched.
    expect(bundle()!.serial).toBe(second.serial);
    // Backoff: the second failure comes after retry_min (2 s), not at once.
    const f2 = await until(() => lb.logs.find((l) => l.mod === 'acme' && l.failures === 2), 30_000, 'a second failed order');
    expect(Date.parse(String(f2.time)) - Date.parse(String(failed.time))).toBeGreaterThanOrEqual(2000);
    expect(bundle()!.serial).toBe(second.serial);
    // Still the renewed certificate, trusted — or, on a loaded machine where the failures took past
    // its 12 s, refused only for having expired.
    const still = await served('shop.test', root);
    expect(still.serial).toBe(second.serial);
    if (!still.authorized) {
      expect(still.error).toBe('CERT_HAS_EXPIRED');
      expect(Date.now()).toBeGreaterThanOrEqual(second.notAfter);
    }

    // 4. The alarm: pairlb status WARNING naming the certificate; the admin status JSON has it.
    const st = await cli(['status', '--socket', join(dir, 'admin.sock')]);
    // WARNING from the alarm; CRITICAL when the TLS layer also sees the 12 s certificate within 3 days of expiry.
    expect([1, 2]).toContain(st.code);
    expect(st.stdout).toMatch(/^PAIRLB (WARNING|CRITICAL) - .*acme shop: \d+ failed order\(s\): .*serving the previous certificate until/);

    // The stats page shows the alarm in the ACME panel.
    const at = lb.logs.find((l) => typeof l.msg === 'string' && (l.msg as string).startsWith('stats page listening on '))!.address as { port: number };
    const page = await (await fetch(`http://127.0.0.1:${at.port}/`)).text();
    expect(page).toContain('<h2>ACME certificates</h2>');
    expect(page).toMatch(/<div class="panel acme warn">.*<ul class="bad"><li>shop: \d+ failed order\(s\)/s);
    // failing between attempts, ordering during the next one (retry_min is 2 s).
    expect(page).toMatch(/<tr class="(bad|warnt)"><td>shop<\/td><td>shop\.test, www\.shop\.test<\/td><td>(failing|ordering)<\/td>/);

    const metrics = await (await fetch(`http://127.0.0.1:${at.port}/metrics`)).text();
    expect(metrics).toMatch(/^pairlb_acme_order_failures\{cert="shop"\} [1-9]\d*$/m);
    expect(metrics).toMatch(/^pairlb_acme_orders_total\{cert="shop"\} [4-9]$/m);

    // 5. A new contact address (reload), and reachable again: the next attempt updates the account
    // and succeeds, replacing the certificate.
    writeFileSync(lb.cfgFile, readFileSync(lb.cfgFile, 'utf8').replace('email: ops@shop.test', 'email: certs@shop.test'));
    lb.child.kill('SIGHUP');
    await until(() => lb.logs.find((l) => l.msg === 'config reloaded'), 10_000, 'the reload');
    for (const n of NAMES) await pebble.clearA(n);
    const third = await until(() => { const b = bundle(); return b && b.serial !== second.serial ? b : undefined; }, 30_000, 'a certificate after the failures');
    expect((await handshake(third.pem, root, 'shop.test')).authorized).toBe(true);
    await until(async () => (await served('shop.test', root)).serial === third.serial || undefined, 10_000, 'pairlb serving the new certificate');
    expect(lb.logs.find((l) => l.msg === 'acme: account contact updated')).toMatchObject({ email: 'certs@shop.test' });
    expect(JSON.parse(readFileSync(join(dir, 'state', 'acme', 'account.json'), 'utf8')).email).toBe('certs@shop.test');
  }, 150_000);
});
