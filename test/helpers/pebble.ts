import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { request } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ensurePackages } from './sys.js';

/**
 * Let's Encrypt's test CA, Debian's `pebble` (shared/testbed.md "ACME against a real server"),
 * with `pebble-challtestsrv` as its DNS server: every name resolves to 127.0.0.1 unless the test
 * says otherwise (setA). Pebble validates HTTP-01 on 127.0.0.1:`httpPort` (the test's plain
 * listener). Both run in the foreground as children of the test and are stopped by PID.
 */
export interface Pebble {
  directory: string;
  /** Pebble's own HTTPS certificate: what the ACME client must trust (acme.ca_file). */
  caFile: string;
  /** The root that signs the issued certificates (fetched from the management API). */
  root(): Promise<string>;
  /** Answer A queries for `host` with `address` (127.0.0.2: nothing listens, the challenge fails). */
  setA(host: string, address: string): Promise<void>;
  clearA(host: string): Promise<void>;
  logs(): string;
  stop(): Promise<void>;
}

export async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((ok) => s.listen(0, '127.0.0.1', ok));
  const p = (s.address() as { port: number }).port;
  await new Promise((ok) => s.close(ok));
  return p;
}

function waitFor(child: ChildProcess, re: RegExp, what: string, out: { text: string }, ms = 20_000): Promise<void> {
  return new Promise((ok, fail) => {
    const t = setTimeout(() => fail(new Error(`${what} not ready in ${ms} ms: ${out.text.slice(-500)}`)), ms);
    const on = (d: Buffer) => { out.text += d; if (re.test(out.text)) { clearTimeout(t); ok(); } };
    child.stdout!.on('data', on);
    child.stderr!.on('data', on);
    child.once('exit', (c) => { clearTimeout(t); fail(new Error(`${what} exited ${c}: ${out.text.slice(-500)}`)); });
  });
}

function stopChild(c: ChildProcess): Promise<void> {
  if (c.exitCode !== null || c.signalCode !== null) return Promise.resolve();
  return new Promise((ok) => { c.once('exit', () => ok()); c.kill('SIGTERM'); });
}

export async function startPebble(o: { httpPort: number; validitySeconds?: number }): Promise<Pebble> {
  ensurePackages(['pebble']);
  const dir = mkdtempSync(join(tmpdir(), 'pairlb-pebble-'));
  const caFile = join(dir, 'pebble-https.pem');
  execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-days', '2',
    '-subj', '/CN=pebble', '-addext', 'subjectAltName=DNS:localhost,IP:127.0.0.1',
    '-keyout', join(dir, 'key.pem'), '-out', caFile], { stdio: 'ignore' });
  const [acmePort, mgmtPort, tlsPort, dnsPort, chMgmt] = [await freePort(), await freePort(), await freePort(), await freePort(), await freePort()];
  writeFileSync(join(dir, 'pebble.json'), JSON.stringify({ pebble: {
    listenAddress: `127.0.0.1:${acmePort}`, managementListenAddress: `127.0.0.1:${mgmtPort}`,
    certificate: caFile, privateKey: join(dir, 'key.pem'), httpPort: o.httpPort, tlsPort,
    ocspResponderURL: '', externalAccountBindingRequired: false,
    ...(o.validitySeconds ? { certificateValidityPeriod: o.validitySeconds } : {}),
  } }));
  const dnsOut = { text: '' };
  const dns = spawn('/usr/bin/pebble-challtestsrv', ['-dns01', `127.0.0.1:${dnsPort}`, '-http01', '', '-https01', '', '-tlsalpn01', '',
    '-management', `127.0.0.1:${chMgmt}`, '-defaultIPv6', '', '-defaultIPv4', '127.0.0.1'], { stdio: ['ignore', 'pipe', 'pipe'] });
  const pebOut = { text: '' };
  let peb: ChildProcess | undefined;
  try {
    await waitFor(dns, /Starting management server/, 'pebble-challtestsrv', dnsOut);
    // NOSLEEP: validate at once; NONCEREJECT 0: no random bad nonces; AUTHZREUSE 0: every order
    // proves control again (a renewal must meet a challenge, or "unreachable" could not fail).
    peb = spawn('/usr/bin/pebble', ['-config', join(dir, 'pebble.json'), '-dnsserver', `127.0.0.1:${dnsPort}`], {
      stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, PEBBLE_VA_NOSLEEP: '1', PEBBLE_WFE_NONCEREJECT: '0', PEBBLE_AUTHZREUSE: '0' },
    });
    await waitFor(peb, /ACME directory available at: https:/, "pebble", pebOut);
  } catch (e) {
    if (peb) await stopChild(peb);
    await stopChild(dns);
    rmSync(dir, { recursive: true, force: true });
    throw e;
  }
  const mgmt = (path: string): Promise<string> => new Promise((ok, fail) => {
    request({ host: '127.0.0.1', port: mgmtPort, path, ca: readFileSync(caFile, 'utf8'), servername: 'localhost' }, (res) => {
      let b = ''; res.on('data', (d) => { b += d; }); res.on('end', () => (res.statusCode === 200 ? ok(b) : fail(new Error(`${path}: ${res.statusCode}`))));
    }).on('error', fail).end();
  });
  const challtest = async (path: string, body: unknown): Promise<void> => {
    const r = await fetch(`http://127.0.0.1:${chMgmt}${path}`, { method: 'POST', body: JSON.stringify(body) });
    if (!r.ok) throw new Error(`challtestsrv ${path}: ${r.status}`);
  };
  const p = peb;
  return {
    directory: `https://127.0.0.1:${acmePort}/dir`,
    caFile,
    root: () => mgmt('/roots/0'),
    setA: (host, address) => challtest('/add-a', { host, addresses: [address] }),
    clearA: (host) => challtest('/clear-a', { host }),
    logs: () => pebOut.text,
    stop: async () => { await stopChild(p); await stopChild(dns); rmSync(dir, { recursive: true, force: true }); },
  };
}
