import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFile } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { copyFileSync, mkdirSync, readFileSync, renameSync } from 'node:fs';
import { request as httpsRequest, Agent } from 'node:https';
import { join } from 'node:path';
import { Daemon, MAIN, ROOT, cleanup, ensureBuilt, freePort, startDaemon, tempDir } from '../daemon/daemon.js';
import { startBackend, type TestBackend } from '../helpers/backend.js';
import { makeCa, makeLeaf, type Ca } from '../helpers/certs.js';

/**
 * TLS with the real daemon: certificate expiry on /metrics, the stats page and `pairlb status`
 * (Nagios WARNING within 14 days, CRITICAL within 3), a bundle dropped into the directory picked
 * up without a signal, and certificate rotation under load (files renamed over, SIGHUP) with no
 * failed request, established connections untouched, new handshakes on the new certificate.
 */

let dir: string;
let ca: Ca;
let backend: TestBackend;
let d: Daemon | undefined;
let port: number;
let statsPort: number;
const sock = () => join(dir, 'admin.sock');

function cli(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((ok) => {
    execFile(process.execPath, [MAIN, ...args], { cwd: ROOT, timeout: 20_000, encoding: 'utf8' }, (err, stdout, stderr) => {
      ok({ code: err ? (typeof err.code === 'number' ? err.code : null) : 0, stdout, stderr });
    });
  });
}

/** One request on a new TLS connection; resolves with status, body and the leaf's serial. */
function get(servername: string, agent: Agent | false = false): Promise<{ status: number; body: string; serial: string }> {
  return new Promise((ok, fail) => {
    const req = httpsRequest({ host: '127.0.0.1', port, path: '/', servername, headers: { host: servername }, ca: readFileSync(ca.rootCert), agent }, (res) => {
      let body = '';
      const serial = (res.socket as import('node:tls').TLSSocket).getPeerCertificate().serialNumber;
      res.on('data', (c) => { body += c; });
      res.on('end', () => ok({ status: res.statusCode!, body, serial }));
      res.on('error', fail);
    });
    req.on('error', fail);
    req.end();
  });
}

async function waitFor<T>(fn: () => Promise<T | undefined> | T | undefined, ms = 10_000, what = 'condition'): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v !== undefined && v !== false) return v as T;
    if (Date.now() > end) throw new Error(`${what} not met within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

const serialOf = (file: string) => new X509Certificate(readFileSync(file)).serialNumber;

beforeAll(async () => {
  ensureBuilt();
  dir = tempDir('tls-daemon');
  ca = makeCa(join(dir, 'ca'));
  mkdirSync(join(dir, 'certs'));
  mkdirSync(join(dir, 'acme'));
  copyFileSync(makeLeaf(ca, 'www1', ['www.example.test']).bundle, join(dir, 'certs', 'www.pem'));
  copyFileSync(makeLeaf(ca, 'soon', ['soon.example.test'], { days: 10 }).bundle, join(dir, 'acme', 'soon.pem'));
  backend = await startBackend('web1');
  port = await freePort();
  statsPort = await freePort();
  d = await startDaemon(dir, `
global: { node: tls-test, log: { level: info, access: off } }
listen:
  - name: web
    bind: 127.0.0.1:${port}
    tls:
      certificates: [${join(dir, 'certs', 'www.pem')}]
      directory: ${join(dir, 'acme')}
    backends:
      - { name: web1, address: "${backend.address}", check: false }
stats:
  bind: 127.0.0.1:${statsPort}
admin:
  socket: ${sock()}
`);
});

afterAll(async () => {
  await d?.kill();
  await backend?.close();
  if (dir) cleanup(dir);
});

describe('certificate expiry: metrics, stats page, status', () => {
  it('shows names and expiry; status WARNING within 14 days, CRITICAL within 3 once a bundle appears in the directory', async () => {
    const metrics = await (await fetch(`http://127.0.0.1:${statsPort}/metrics`)).text();
    const soonAfter = Math.floor(Date.parse(new X509Certificate(readFileSync(join(dir, 'acme', 'soon.pem'))).validTo) / 1000);
    expect(metrics).toContain(`pairlb_tls_cert_not_after_seconds{listen="web",names="soon.example.test",source="${join(dir, 'acme', 'soon.pem')}",key_type="ec",in_use="1"} ${soonAfter}`);
    expect(metrics).toMatch(/pairlb_tls_cert_not_after_seconds\{listen="web",names="www\.example\.test",.*\} \d{10}/);
    const page = await (await fetch(`http://127.0.0.1:${statsPort}/`)).text();
    expect(page).toContain('<h2>TLS certificates</h2>');
    expect(page).toMatch(/<tr class="warnt"><td>web<\/td><td>soon\.example\.test<\/td><td>ec<\/td><td>\d{4}-\d\d-\d\d<\/td><td>(9|10)d<\/td>/);

    let r = await cli(['status', '--socket', sock()]);
    expect(r.stdout).toMatch(/^PAIRLB WARNING - web: 1\/1 up; role standalone; certificate soon\.example\.test expires in (9|10)d \|/);
    expect(r.code).toBe(1);

    // ACME-style: written next to the directory under a dot name, renamed in. No signal.
    const crit = makeLeaf(ca, 'crit', ['crit.example.test'], { days: 2 });
    copyFileSync(crit.bundle, join(dir, 'acme', '.crit.pem.tmp'));
    renameSync(join(dir, 'acme', '.crit.pem.tmp'), join(dir, 'acme', 'crit.pem'));
    r = await waitFor(async () => { const x = await cli(['status', '--socket', sock()]); return x.code === 2 ? x : undefined; }, 15_000, 'status CRITICAL');
    expect(r.stdout).toMatch(/^PAIRLB CRITICAL - .*certificate crit\.example\.test expires in (1d|\d+h), certificate soon\.example\.test expires in (9|10)d/);
    expect((await get('crit.example.test')).serial).toBe(serialOf(crit.cert));
  });
});

describe('rotation under load', () => {
  it('no failed request while the certificate file is replaced 4 times and SIGHUP is sent; old connections keep theirs', async () => {
    const file = join(dir, 'certs', 'www.pem');
    const first = serialOf(file);
    // An established keep-alive connection from before the rotation.
    const keep = new Agent({ keepAlive: true, maxSockets: 1 });
    const before = await get('www.example.test', keep);
    expect(before).toEqual({ status: 200, body: 'web1', serial: first });

    let stop = false;
    const results = { ok: 0, failed: [] as string[] };
    const serialsSeen = new Set<string>();
    const worker = async () => {
      // Bounded: stops with the rotation, at most 3000 requests per worker.
      for (let i = 0; i < 3000 && !stop; i++) {
        try {
          const r = await get('www.example.test');
          if (r.status === 200 && r.body === 'web1') { results.ok++; serialsSeen.add(r.serial); } else results.failed.push(`${r.status} ${r.body}`);
        } catch (e) { results.failed.push((e as Error).message); }
      }
    };
    const load = Promise.all([worker(), worker(), worker(), worker()]);
    const serials = [first];
    try {
      for (let i = 0; i < 4; i++) {
        const leaf = makeLeaf(ca, `www-r${i}`, ['www.example.test']);
        copyFileSync(leaf.bundle, join(dir, 'certs', '.www.pem.tmp'));
        renameSync(join(dir, 'certs', '.www.pem.tmp'), file);
        const s = serialOf(leaf.cert);
        serials.push(s);
        await waitFor(async () => (await get('www.example.test')).serial === s || undefined, 15_000, `rotation ${i} served`);
      }
      // SIGHUP with unchanged files: nothing to swap, nothing fails.
      d!.signal('SIGHUP');
      await d!.waitLog((l) => l.msg === 'config reloaded', 10_000);
      const n = results.ok;
      await waitFor(() => (results.ok >= n + 20 ? true : undefined), 15_000, 'requests after SIGHUP');
    } finally {
      stop = true;
      await load;
    }
    expect(results.failed).toEqual([]);
    expect(results.ok).toBeGreaterThan(40);
    // Every served certificate was one of the rotation's, the last one now.
    for (const s of serialsSeen) expect(serials).toContain(s);
    expect((await get('www.example.test')).serial).toBe(serials[serials.length - 1]);
    // The connection from before still works and still has its certificate.
    const after = await get('www.example.test', keep);
    expect(after).toEqual({ status: 200, body: 'web1', serial: first });
    keep.destroy();
    const reloads = d!.logs.filter((l) => l.msg === 'certificates reloaded' && l.why === 'file changed');
    expect(reloads.length).toBeGreaterThanOrEqual(4);
  });
});

