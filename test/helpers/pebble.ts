import { spawn, execFile, execFileSync, type ChildProcess } from 'node:child_process';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
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

/**
 * `netns`: run both inside that network namespace (created by the test), pebble listening on
 * `host`:14000, every name answered with `defaultA`; the management calls run in it too.
 */
export async function startPebble(o: { httpPort: number; validitySeconds?: number; netns?: string; host?: string; defaultA?: string }): Promise<Pebble> {
  ensurePackages(['pebble']);
  const host = o.host ?? '127.0.0.1';
  const inNs = (cmd: string, args: string[]): [string, string[]] => (o.netns ? ['ip', ['netns', 'exec', o.netns, cmd, ...args]] : [cmd, args]);
  const dir = mkdtempSync(join(tmpdir(), 'pairlb-pebble-'));
  chmodSync(dir, 0o755);
  const caFile = join(dir, 'pebble-https.pem');
  execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-days', '2',
    '-subj', '/CN=pebble', '-addext', `subjectAltName=DNS:localhost,IP:127.0.0.1${host !== '127.0.0.1' ? `,IP:${host}` : ''}`,
    '-keyout', join(dir, 'key.pem'), '-out', caFile], { stdio: 'ignore' });
  // In a namespace of its own nothing else listens: fixed ports.
  const [acmePort, mgmtPort, tlsPort, dnsPort, chMgmt] = o.netns ? [14000, 15000, 5001, 8053, 8055] : [await freePort(), await freePort(), await freePort(), await freePort(), await freePort()];
  writeFileSync(join(dir, 'pebble.json'), JSON.stringify({ pebble: {
    listenAddress: `${host}:${acmePort}`, managementListenAddress: `127.0.0.1:${mgmtPort}`,
    certificate: caFile, privateKey: join(dir, 'key.pem'), httpPort: o.httpPort, tlsPort,
    ocspResponderURL: '', externalAccountBindingRequired: false,
    ...(o.validitySeconds ? { certificateValidityPeriod: o.validitySeconds } : {}),
  } }));
  const dnsOut = { text: '' };
  const dns = spawn(...inNs('/usr/bin/pebble-challtestsrv', ['-dns01', `127.0.0.1:${dnsPort}`, '-http01', '', '-https01', '', '-tlsalpn01', '',
    '-management', `127.0.0.1:${chMgmt}`, '-defaultIPv6', '', '-defaultIPv4', o.defaultA ?? '127.0.0.1']), { stdio: ['ignore', 'pipe', 'pipe'] });
  const pebOut = { text: '' };
  let peb: ChildProcess | undefined;
  try {
    await waitFor(dns, /Starting management server/, 'pebble-challtestsrv', dnsOut);
    // NOSLEEP: validate at once; NONCEREJECT 0: no random bad nonces; AUTHZREUSE 0: every order
    // proves control again (a renewal must meet a challenge, or "unreachable" could not fail).
    peb = spawn(...inNs('/usr/bin/pebble', ['-config', join(dir, 'pebble.json'), '-dnsserver', `127.0.0.1:${dnsPort}`]), {
      stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, PEBBLE_VA_NOSLEEP: '1', PEBBLE_WFE_NONCEREJECT: '0', PEBBLE_AUTHZREUSE: '0' },
    });
    await waitFor(peb, /ACME directory available at: https:/, "pebble", pebOut);
  } catch (e) {
    if (peb) await stopChild(peb);
    await stopChild(dns);
    rmSync(dir, { recursive: true, force: true });
    throw e;
  }
  // Management calls from where pebble runs (a namespace is not reachable from the test's).
  const call = (url: string, body?: unknown): Promise<string> => new Promise((ok, fail) => {
    const code = `const u=new URL(process.argv[1]);const m=u.protocol==='https:'?require('node:https'):require('node:http');` +
      `const b=process.argv[3];const r=m.request(u,{method:b?'POST':'GET',ca:require('node:fs').readFileSync(process.argv[2]),servername:'localhost'},(res)=>{let t='';res.on('data',(d)=>{t+=d});` +
      `res.on('end',()=>{if(res.statusCode!==200){console.error(res.statusCode);process.exit(1)}process.stdout.write(t)})});r.on('error',(e)=>{console.error(e.message);process.exit(1)});r.end(b)`;
    execFile(...inNs(process.execPath, ['-e', code, url, caFile, body === undefined ? '' : JSON.stringify(body)]), { encoding: 'utf8', timeout: 10_000 }, (err, out, errOut) => (err ? fail(new Error(`${url}: ${errOut || err.message}`)) : ok(out)));
  });
  const mgmt = (path: string) => call(`https://127.0.0.1:${mgmtPort}${path}`);
  const challtest = async (path: string, body: unknown): Promise<void> => { await call(`http://127.0.0.1:${chMgmt}${path}`, body); };
  const p = peb;
  return {
    directory: `https://${host}:${acmePort}/dir`,
    caFile,
    root: () => mgmt('/roots/0'),
    setA: (host, address) => challtest('/add-a', { host, addresses: [address] }),
    clearA: (host) => challtest('/clear-a', { host }),
    logs: () => pebOut.text,
    stop: async () => { await stopChild(p); await stopChild(dns); rmSync(dir, { recursive: true, force: true }); },
  };
}
