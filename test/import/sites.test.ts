import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { copyFileSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseDocument } from 'yaml';
import { ROOT, cleanup, cli, ensureBuilt, freePort, startDaemon, tempDir, type Daemon } from '../daemon/daemon.js';
import { startBackend, type TestBackend } from '../helpers/backend.js';
import { makeCa, makeLeaf, type Ca } from '../helpers/certs.js';
import { ensurePackages } from '../helpers/sys.js';

/**
 * `pairlb import` of a multi-site haproxy.cfg (test/fixtures/import/sites/haproxy.cfg: a frontend
 * with a plain and an `ssl crt DIR` bind, acl with hdr(host) / hdr_end / hdr_beg / path_beg /
 * path_reg / path / method / src, if / unless / !, http-request return / redirect scheme /
 * redirect prefix / deny / set-header / del-header, http-response set-header (HSTS) and
 * del-header, use_backend, default_backend). The imported file passes the full `pairlb check`
 * (with the certificate directory the test makes), then the real HAProxy runs the original and
 * the real pairlb the import, and the same requests (curl --resolve, certificates verified) get
 * the same answers: status, backend, Location, what the backend saw of X-Site / X-Debug, HSTS and
 * Server headers.
 */

const FIX = join(ROOT, 'test/fixtures/import/sites/haproxy.cfg');
const POOLS = ['www1', 'www2', 'static1', 'shop1', 'shop2', 'api1', 'fb1'];
let dir: string;
let ca: Ca;
const backends: TestBackend[] = [];
let haproxy: ChildProcess | undefined;
let daemon: Daemon | undefined;
const ports = { hPlain: 0, hTls: 0, pPlain: 0, pTls: 0 };
let imported = '';

function fill(text: string, plain: number, tls: number, certs: string): string {
  let t = text.replace('@PLAIN@', String(plain)).replace('@TLS@', String(tls)).replace('@CERTS@', certs);
  for (const b of backends) t = t.replace(`@B_${b.name}@`, String(b.port));
  return t;
}

async function waitPort(port: number, what: string, ms = 15_000): Promise<void> {
  const end = Date.now() + ms;
  for (;;) {
    if ((await curl(['-s', '-o', '/dev/null', '--max-time', '2', `http://127.0.0.1:${port}/lb-health`])).code === 0) return;
    if (Date.now() > end) throw new Error(`${what}: nothing on ${port}`);
    await new Promise((ok) => setTimeout(ok, 100));
  }
}

beforeAll(async () => {
  ensureBuilt();
  ensurePackages(['haproxy']);
  dir = tempDir('stg-import-sites');
  ca = makeCa(join(dir, 'ca'));
  // The certificate directory both proxies load: one PEM bundle per site (cert + chain + key).
  const certs = join(dir, 'certs');
  mkdirSync(certs);
  for (const [id, names] of [['www', ['example.com', 'www.example.com', 'old.example.com']], ['shop', ['shop.example.com', '*.shop.example.com']], ['api', ['api.example.com']]] as const) {
    copyFileSync(makeLeaf(ca, id, [...names]).bundle, join(certs, `${id}.pem`));
  }
  for (const n of POOLS) {
    backends.push(await startBackend(n, (req, res) => {
      // What the backend saw, in the answer: the comparison reads responses only.
      res.writeHead(200, { 'content-type': 'text/plain', server: 'test-backend', 'x-seen-site': String(req.headers['x-site'] ?? '-'), 'x-seen-debug': String(req.headers['x-debug'] ?? '-') });
      res.end(n);
    }));
  }
  for (const k of Object.keys(ports) as (keyof typeof ports)[]) ports[k] = await freePort();
  const text = readFileSync(FIX, 'utf8');
  const hcfg = join(dir, 'haproxy.cfg');
  writeFileSync(hcfg, fill(text, ports.hPlain, ports.hTls, certs).replace(/^\s*log .*$/gm, ''));
  let herr = '';
  haproxy = spawn('/usr/sbin/haproxy', ['-db', '-f', hcfg], { stdio: ['ignore', 'pipe', 'pipe'] });
  haproxy.stdout!.on('data', (d) => { herr += d; });
  haproxy.stderr!.on('data', (d) => { herr += d; });
  await waitPort(ports.hPlain, `haproxy (${herr})`);
  // The import of the same file, pointed at pairlb's own ports.
  const pcfg = join(dir, 'for-pairlb.cfg');
  writeFileSync(pcfg, fill(text, ports.pPlain, ports.pTls, certs));
  const r = cli(['import', '--haproxy', pcfg]);
  expect(r.code, r.stderr).toBe(0);
  imported = r.stdout;
  writeFileSync(join(dir, 'imported.yaml'), imported);
}, 120_000);

afterAll(async () => {
  await daemon?.kill();
  if (haproxy && haproxy.exitCode === null) { haproxy.kill('SIGTERM'); await new Promise((ok) => haproxy!.once('exit', ok)); }
  for (const b of backends) await b.close();
  if (dir) cleanup(dir);
});

interface Answer { status: number; body: string; location: string; site: string; debug: string; hsts: boolean; server: string }

/** curl, asynchronously: the test backends run in this process and must keep answering meanwhile. */
function curl(args: string[]): Promise<{ code: number; stdout: string }> {
  return new Promise((ok) => execFile('curl', args, { encoding: 'utf8', timeout: 10_000 }, (e, stdout) => ok({ code: e ? (typeof e.code === 'number' ? e.code : -1) : 0, stdout })));
}

/** One request with curl: Host without a port (as a browser on 80/443 sends it), SNI = host, the test CA trusted. */
async function ask(port: number, tls: boolean, host: string, path: string, o: { method?: string; src?: string; headers?: string[]; insecure?: boolean } = {}): Promise<Answer> {
  const url = `${tls ? 'https' : 'http'}://${host}:${port}${path}`;
  const args = ['-s', '-D', '-', '-o', '-', '--max-time', '5', '--resolve', `${host}:${port}:127.0.0.1`, ...(o.insecure ? ['-k'] : ['--cacert', ca.rootCert]), '-H', `Host: ${host}`, '-X', o.method ?? 'GET', ...(o.src ? ['--interface', o.src] : []), ...(o.headers ?? []).flatMap((h) => ['-H', h]), url];
  const r = await curl(args);
  if (r.code !== 0) return { status: 0, body: `curl exit ${r.code}`, location: '', site: '', debug: '', hsts: false, server: '' };
  const [head, ...rest] = r.stdout.split('\r\n\r\n');
  const h = (n: string) => new RegExp(`^${n}: ?(.*)$`, 'im').exec(head)?.[1]?.trim() ?? '';
  return {
    status: Number(/^HTTP\/[\d.]+ (\d{3})/.exec(head)?.[1]),
    // Backend names without their number: round robin may pick www1 on one proxy and www2 on the other.
    body: rest.join('\r\n\r\n').replace(/^(www|shop)\d$/, '$1'),
    location: h('location'), site: h('x-seen-site'), debug: h('x-seen-debug'), hsts: /^strict-transport-security:/im.test(head), server: h('server'),
  };
}

describe('pairlb import: a multi-site haproxy.cfg (frontends, backends, rules, TLS)', () => {
  it('writes frontends (one per bind), backends and rules, and the result passes the full pairlb check', () => {
    const cfg = parseDocument(imported).toJS() as Record<string, any>;
    expect(cfg.listen).toBeUndefined();
    expect(cfg.frontends.map((f: any) => [f.name, f.bind, f.tls?.directory !== undefined, f.default_backend])).toEqual([
      [`fe_sites-${ports.pPlain}`, `127.0.0.1:${ports.pPlain}`, false, 'fallback'],
      [`fe_sites-${ports.pTls}`, `127.0.0.1:${ports.pTls}`, true, 'fallback'],
    ]);
    expect(cfg.frontends[1].tls).toMatchObject({ min_version: 'TLSv1.2', ciphers: expect.stringContaining('ECDHE-ECDSA-AES128-GCM-SHA256') });
    expect(cfg.backends.map((b: any) => [b.name, b.servers.map((s: any) => s.name)])).toEqual([
      ['www', ['www1', 'www2']], ['static', ['static1']], ['shop', ['shop1', 'shop2']], ['api', ['api1']], ['fallback', ['fb1']],
    ]);
    // On the plain bind the HTTPS redirect is a rule; on the TLS bind `!{ ssl_fc }` never holds.
    expect(cfg.frontends[0].rules.some((r: any) => r.redirect?.scheme === 'https')).toBe(true);
    expect(cfg.frontends[1].rules.some((r: any) => r.redirect?.scheme === 'https')).toBe(false);
    const file = join(dir, 'imported.yaml');
    const c = cli(['check', '-c', file]);
    expect([c.code, c.stderr]).toEqual([0, '']);
  });

  it('pairlb with the import answers every case as HAProxy with the original', async () => {
    const dd = join(dir, 'pairlb');
    mkdirSync(dd);
    daemon = await startDaemon(dd, imported);
    await waitPort(ports.pPlain, 'pairlb');
    // www is health-checked (GET /health, rise 1): wait until both proxies see it up.
    const end = Date.now() + 15_000;
    while ((await ask(ports.pTls, true, 'www.example.com', '/')).body !== 'www' || (await ask(ports.hTls, true, 'www.example.com', '/')).body !== 'www') {
      if (Date.now() > end) throw new Error(`www never came up on both proxies: pairlb ${JSON.stringify(await ask(ports.pTls, true, 'www.example.com', '/'))}, HAProxy ${JSON.stringify(await ask(ports.hTls, true, 'www.example.com', '/'))}`);
      await new Promise((ok) => setTimeout(ok, 100));
    }
    type Case = [string, boolean, string, string, { method?: string; src?: string; headers?: string[]; insecure?: boolean }, Partial<Answer>];
    const cases: Case[] = [
      // plain: the balancer's health, ACME paths pass, everything else goes to https
      ['health on plain', false, 'www.example.com', '/lb-health', {}, { status: 200, body: 'ok' }],
      ['plain → https', false, 'www.example.com', '/a?b=1', {}, { status: 301, location: 'https://www.example.com/a?b=1' }],
      ['plain → https (shop)', false, 'shop.example.com', '/', {}, { status: 301, location: 'https://shop.example.com/' }],
      ['ACME path stays plain', false, 'www.example.com', '/.well-known/acme-challenge/x', {}, { status: 200, body: 'www' }],
      // TLS: routing by Host, paths, methods, sources; header edits; HSTS
      ['www', true, 'www.example.com', '/', { headers: ['X-Debug: 1'] }, { status: 200, body: 'www', debug: '-', hsts: true }],
      ['bare domain', true, 'example.com', '/', {}, { status: 200, body: 'www' }],
      ['static by path_reg', true, 'example.com', '/static/app.css', {}, { status: 200, body: 'static1' }],
      ['not static: regex misses', true, 'www.example.com', '/static/app.txt', {}, { status: 200, body: 'www' }],
      ['admin from outside', true, 'www.example.com', '/admin/', {}, { status: 403 }],
      ['admin from the LAN', true, 'www.example.com', '/admin/', { src: '127.0.0.2' }, { status: 200, body: 'www' }],
      ['health on TLS', true, 'shop.example.com', '/lb-health', {}, { status: 200, body: 'ok' }],
      ['shop sets X-Site', true, 'shop.example.com', '/cart', {}, { status: 200, body: 'shop', site: 'shop' }],
      ['shop subdomain (hdr_end)', true, 'eu.shop.example.com', '/', {}, { status: 200, body: 'shop', site: 'shop' }],
      ['api GET (hdr_beg), Server removed', true, 'api.example.com', '/v1', {}, { status: 200, body: 'api1', server: '' }],
      ['api POST denied', true, 'api.example.com', '/v1', { method: 'POST' }, { status: 403 }],
      ['old → www', true, 'old.example.com', '/p?q=2', {}, { status: 301, location: 'https://www.example.com/p?q=2' }],
      ['no rule: default_backend (an unknown name gets the default certificate)', true, 'unknown.example.net', '/', { insecure: true }, { status: 200, body: 'fb1' }],
    ];
    for (const [what, tls, host, path, o, want] of cases) {
      const h = await ask(tls ? ports.hTls : ports.hPlain, tls, host, path, o);
      const p = await ask(tls ? ports.pTls : ports.pPlain, tls, host, path, o);
      // HAProxy's answer is the reference; the expectations make sure the case tests what it says.
      expect.soft(h, `${what}: HAProxy`).toMatchObject(want);
      const cmp = (a: Answer) => ({ status: a.status, body: a.status === 200 ? a.body : '', location: a.location, site: a.site, debug: a.debug, hsts: a.hsts, server: a.server });
      expect.soft(cmp(p), `${what}: pairlb as HAProxy`).toEqual(cmp(h));
    }
  }, 90_000);
});
