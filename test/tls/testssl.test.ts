import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawn, execFile, type ChildProcess } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import { Daemon, cleanup, ensureBuilt, freePort, startDaemon, tempDir } from '../daemon/daemon.js';
import { startBackend, type TestBackend } from '../helpers/backend.js';
import { makeCa, makeLeaf } from '../helpers/certs.js';
import { ensurePackages } from '../helpers/sys.js';

/**
 * testssl.sh (Debian) against pairlb's TLS bind and HAProxy's, same ECDSA P-256 certificate, both
 * with their defaults, in the same test: pairlb must have no finding of severity MEDIUM or worse
 * that HAProxy does not also have.
 *
 * Scope, to keep it to about a minute: `-p` protocols, `-s` standard cipher categories, `-f`
 * forward secrecy, `-U` every vulnerability check (Heartbleed, CCS, Ticketbleed, ROBOT,
 * renegotiation, CRIME, BREACH, POODLE, SWEET32, FREAK, DROWN, LOGJAM, BEAST, LUCKY13, RC4…).
 * Left out: `-S` server defaults / certificate checks (the test CA is untrusted for both, which
 * says nothing about either), `-h` HTTP headers (HSTS is a rules matter), `-E` per-protocol cipher
 * listing (slow, and `-s`/`-f` already judge the ciphers). Both scans run at the same time.
 */

let dir: string;
let backend: TestBackend;
let d: Daemon | undefined;
let haproxy: ChildProcess | undefined;
let pPort: number;
let hPort: number;

async function waitPort(port: number, ms = 15_000): Promise<void> {
  const end = Date.now() + ms;
  for (;;) {
    const ok = await new Promise<boolean>((r) => { const s = connect(port, '127.0.0.1', () => { s.destroy(); r(true); }); s.on('error', () => r(false)); });
    if (ok) return;
    if (Date.now() > end) throw new Error(`port ${port} not accepting`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

interface Finding { id: string; severity: string; finding: string }

function testssl(port: number, out: string): Promise<Finding[]> {
  return new Promise((ok, fail) => {
    execFile('testssl', ['--quiet', '--color', '0', '--warnings', 'off', '--jsonfile-pretty', out, '-p', '-s', '-f', '-U', `127.0.0.1:${port}`],
      { timeout: 300_000, maxBuffer: 16 << 20, encoding: 'utf8' }, (err, stdout, stderr) => {
        let doc: { scanResult?: Record<string, unknown>[] };
        try { doc = JSON.parse(readFileSync(out, 'utf8')); } catch (e) { fail(new Error(`testssl wrote no JSON (${(err as Error | null)?.message}): ${stdout.slice(-2000)}${stderr.slice(-1000)}`)); return; }
        const findings: Finding[] = [];
        for (const r of doc.scanResult ?? []) {
          for (const [section, v] of Object.entries(r)) {
            if (!Array.isArray(v)) continue;
            for (const f of v as Finding[]) if (f && typeof f.severity === 'string') findings.push({ id: `${section}/${f.id}`, severity: f.severity, finding: f.finding });
          }
        }
        ok(findings);
      });
  });
}

const BAD = new Set(['MEDIUM', 'HIGH', 'CRITICAL']);

beforeAll(async () => {
  ensurePackages(['testssl.sh', 'haproxy']);
  ensureBuilt();
  dir = tempDir('testssl');
  const ca = makeCa(join(dir, 'ca'));
  const www = makeLeaf(ca, 'www', ['www.example.test']);
  backend = await startBackend('web1');
  pPort = await freePort();
  hPort = await freePort();
  d = await startDaemon(dir, `
global: { node: testssl, log: { level: info, access: off } }
listen:
  - name: web
    bind: 127.0.0.1:${pPort}
    tls:
      certificates: [${www.bundle}]
    backends:
      - { name: web1, address: "${backend.address}", check: false }
`);
  const cfg = join(dir, 'haproxy.cfg');
  writeFileSync(cfg, `global
  maxconn 2000
defaults
  mode http
  timeout connect 5s
  timeout client 30s
  timeout server 30s
frontend fe
  bind 127.0.0.1:${hPort} ssl crt ${www.bundle} alpn http/1.1
  default_backend be
backend be
  server web1 ${backend.address}
`);
  haproxy = spawn('/usr/sbin/haproxy', ['-db', '-f', cfg], { stdio: ['ignore', 'ignore', 'pipe'] });
  await waitPort(hPort);
}, 600_000);

afterAll(async () => {
  if (haproxy && haproxy.exitCode === null) { haproxy.kill('SIGKILL'); await new Promise((r) => haproxy!.once('exit', r)); }
  await d?.kill();
  await backend?.close();
  if (dir) cleanup(dir);
});

describe('testssl.sh: pairlb vs HAProxy, same certificate', () => {
  it('pairlb has no MEDIUM-or-worse finding that HAProxy lacks', async () => {
    const [p, h] = await Promise.all([testssl(pPort, join(dir, 'pairlb.json')), testssl(hPort, join(dir, 'haproxy.json'))]);
    // The scans ran: both saw protocols and vulnerabilities.
    for (const f of [p, h]) {
      expect(f.some((x) => x.id.startsWith('protocols/'))).toBe(true);
      expect(f.some((x) => x.id.startsWith('vulnerabilities/'))).toBe(true);
    }
    const bad = (fs: Finding[]) => fs.filter((f) => BAD.has(f.severity));
    const hBad = new Set(bad(h).map((f) => f.id));
    const extra = bad(p).filter((f) => !hBad.has(f.id));
    expect(extra).toEqual([]);
    // Reported for the record (the final note quotes them).
    console.log(`testssl MEDIUM+: pairlb ${JSON.stringify(bad(p))} haproxy ${JSON.stringify(bad(h))}`);
  }, 400_000);
});
