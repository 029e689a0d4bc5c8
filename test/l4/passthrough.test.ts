import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFile, execFileSync } from 'node:child_process';
import { promisify } from 'node:util';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createServer as createNetServer, type AddressInfo } from 'node:net';
import { connect as tlsConnect, createServer as createTlsServer, type Server as TlsServer } from 'node:tls';
import { startAppLogged } from '../edge/stream-helpers.js';
import { TcpClient, waitFor } from './helpers.js';

/**
 * TLS passthrough routed by SNI on one port: real TLS servers (node:tls, each with its own
 * self-signed certificate made by openssl), real TLS clients through pairlb in mode tcp, which
 * never terminates: the client sees the chosen server's certificate. Garbage and a truncated
 * ClientHello (the first bytes of a real one) are closed and counted; a good client follows.
 */
let dir: string;
const servers: { name: string; port: number; srv: TlsServer }[] = [];
let p: Awaited<ReturnType<typeof startAppLogged>>;
/** The same servers behind a mode tcp frontend whose sni rules name mode tcp backends pools. */
let f: Awaited<ReturnType<typeof startAppLogged>>;
let hello: Buffer;

function cert(cn: string): { key: Buffer; cert: Buffer } {
  const key = join(dir, `${cn}.key`);
  const crt = join(dir, `${cn}.crt`);
  execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', key, '-out', crt, '-days', '2', '-subj', `/CN=${cn}`], { stdio: 'ignore' });
  return { key: readFileSync(key), cert: readFileSync(crt) };
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'pairlb-sni-'));
  for (const name of ['www', 'org', 'dflt']) {
    const srv = createTlsServer(cert(`${name}.test`), (s) => { s.on('error', () => {}); s.end(`hello from ${name}\n`); });
    await new Promise<void>((ok) => srv.listen(0, '127.0.0.1', () => ok()));
    servers.push({ name, port: (srv.address() as AddressInfo).port, srv });
  }
  p = await startAppLogged(`listen:
  - name: tls
    bind: 127.0.0.1:0
    mode: tcp
    passthrough:
      timeout: 300ms
      routes:
        - sni: [www.example.com]
          servers: [www]
        - sni: ['*.example.org', WWW.EXAMPLE.NET]
          servers: [org]
    backends:
${servers.map((s) => `      - name: ${s.name}\n        address: 127.0.0.1:${s.port}\n        check: false\n`).join('')}`);
  const srv = (n: string) => servers.find((x) => x.name === n)!.port;
  f = await startAppLogged(`listen:
  - name: plain
    bind: 127.0.0.1:0
    mode: tcp
    backends: []
frontends:
  - name: tlsfe
    bind: 127.0.0.1:0
    mode: tcp
    timeouts: { hello: 300ms }
    rules:
      - { when: { sni: www.example.com }, backend: p-www }
      - { when: { sni: ['*.example.org', WWW.EXAMPLE.NET], not: { sni: deny.example.org } }, backend: p-org }
    default_backend: p-dflt
backends:
  - name: p-www
    mode: tcp
    check: { interval: 200ms, rise: 1 }
    servers: [{ name: www, address: '127.0.0.1:${srv('www')}' }]
  - { name: p-org, mode: tcp, servers: [{ name: org, address: '127.0.0.1:${srv('org')}', check: false }] }
  - { name: p-dflt, mode: tcp, servers: [{ name: dflt, address: '127.0.0.1:${srv('dflt')}', check: false }] }
`);
  // A real ClientHello, as a TLS client sends it.
  const cap = createNetServer((s) => s.once('data', (d: Buffer) => { hello = d; s.destroy(); }));
  await new Promise<void>((ok) => cap.listen(0, '127.0.0.1', () => ok()));
  const t = tlsConnect({ port: (cap.address() as AddressInfo).port, host: '127.0.0.1', servername: 'www.example.com', rejectUnauthorized: false });
  t.on('error', () => {});
  await waitFor(() => hello !== undefined, 5000, 'ClientHello captured');
  t.destroy();
  cap.close();
}, 30_000);

afterAll(async () => {
  await f?.stop();
  await p?.stop();
  for (const s of servers) s.srv.close();
  rmSync(dir, { recursive: true, force: true });
});

function via(servername: string | undefined): Promise<{ cn: string; text: string }> {
  return new Promise((ok, fail) => {
    const t = tlsConnect({ port: p.port(), host: '127.0.0.1', servername, rejectUnauthorized: false });
    let text = '';
    t.on('error', fail);
    t.on('data', (d: Buffer) => { text += d.toString(); });
    t.on('end', () => { const cn = String(t.getPeerCertificate().subject?.CN ?? ''); t.destroy(); ok({ cn, text }); });
  });
}

describe('TLS passthrough by SNI (mode tcp)', () => {
  it('exact, wildcard (any depth, any case) and unknown or absent names reach their servers, TLS end to end', async () => {
    expect(await via('www.example.com')).toEqual({ cn: 'www.test', text: 'hello from www\n' });
    expect(await via('Mail.Example.ORG')).toEqual({ cn: 'org.test', text: 'hello from org\n' });
    expect(await via('a.b.example.org')).toEqual({ cn: 'org.test', text: 'hello from org\n' });
    expect(await via('www.example.net')).toEqual({ cn: 'org.test', text: 'hello from org\n' });
    // example.org itself is not below example.org: default.
    expect(await via('example.org')).toEqual({ cn: 'dflt.test', text: 'hello from dflt\n' });
    expect(await via('other.test')).toEqual({ cn: 'dflt.test', text: 'hello from dflt\n' });
    // node:tls sends no SNI for an IP address.
    expect(await via(undefined)).toEqual({ cn: 'dflt.test', text: 'hello from dflt\n' });
    await waitFor(() => p.access().length >= 7, 5000, 'access lines');
    expect(p.access().slice(0, 7).map((l) => l.server)).toEqual(['www', 'org', 'org', 'org', 'dflt', 'dflt', 'dflt']);
  });

  it('garbage is closed at once, a truncated ClientHello after passthrough.timeout; both counted, neither reaches a server; the next client is served', async () => {
    const lc = p.app.counters.listen('tls');
    const before = p.access().length;
    const g = new TcpClient(p.port());
    g.write('GET / HTTP/1.1\r\nHost: x\r\n\r\n');
    await g.until(() => g.ended || g.closed, 5000, 'garbage closed');
    expect(g.text).toBe('');
    expect(lc.helloRefused).toBe(1);
    const t = new TcpClient(p.port());
    t.write(hello.subarray(0, 40));
    const t0 = Date.now();
    await t.until(() => t.ended || t.closed, 5000, 'truncated closed');
    expect(Date.now() - t0).toBeGreaterThanOrEqual(250);
    expect(lc.helloRefused).toBe(2);
    await waitFor(() => p.access().length === before + 2, 5000, 'access lines');
    expect(p.access().slice(before).map((l) => [l.server, l.termination])).toEqual([['<NOSRV>', 'PR'], ['<NOSRV>', 'cR']]);
    expect(await via('www.example.com')).toEqual({ cn: 'www.test', text: 'hello from www\n' });
    g.destroy(); t.destroy();
  });
});

describe('passthrough config', () => {
  it('implies mode tcp; an unknown server name is refused by preflight (pairlb check and start) with its key path', async () => {
    const { parseConfig } = await import('../../src/config/load.js');
    const { preflight } = await import('../../src/config/preflight.js');
    const cfg = parseConfig(`listen:\n  - name: t\n    bind: 127.0.0.1:0\n    passthrough:\n      routes:\n        - sni: [a.example.com]\n          servers: [a, nope]\n      default: [gone]\n    backends:\n      - name: a\n        address: 127.0.0.1:1\n`);
    expect(cfg.listen[0].mode).toBe('tcp');
    expect(cfg.listen[0].check.type).toBe('tcp');
    expect(preflight(cfg, { interfaces: false })).toEqual([
      { path: ['listen', 0, 'passthrough', 'routes', 0, 'servers', 1], message: 'no server "nope" in this listen\'s backends' },
      { path: ['listen', 0, 'passthrough', 'default', 0], message: 'no server "gone" in this listen\'s backends' },
    ]);
  });
});

describe('a mode tcp frontend: sni rules name mode tcp backends pools', () => {
  const port = () => f.app.proxy.address('tlsfe')!.port;
  /** `openssl s_client -servername` (none: -noservername): the certificate's CN and what the server sent. */
  async function sClient(name: string | undefined): Promise<{ cn: string; text: string }> {
    const args = ['s_client', '-connect', `127.0.0.1:${port()}`, '-ign_eof', ...(name === undefined ? ['-noservername'] : ['-servername', name])];
    const { stdout } = await promisify(execFile)('timeout', ['10', 'openssl', ...args], { input: '' } as never).catch((e: { stdout: string }) => ({ stdout: e.stdout }));
    return { cn: /subject=\s*CN\s*=\s*(\S+)/.exec(stdout)?.[1] ?? `? ${stdout.slice(0, 200)}`, text: /hello from \w+/.exec(stdout)?.[0] ?? '' };
  }

  it('exact, wildcard, negated and unknown names and no SNI reach the exact pool (openssl s_client); TLS end to end; tcp checks by default', async () => {
    // No check type written: mode tcp pools check with a connect (an HTTP check would fail on TLS).
    await waitFor(() => f.app.backends.get('p-www', 'www')?.lastCheck?.code === 'L4OK', 10_000, 'p-www checked L4OK');
    const cases: [string | undefined, string][] = [
      ['www.example.com', 'www'], ['Mail.Example.ORG', 'org'], ['a.b.example.org', 'org'], ['www.example.net', 'org'],
      ['deny.example.org', 'dflt'], ['example.org', 'dflt'], ['other.test', 'dflt'], [undefined, 'dflt'],
    ];
    const got: string[] = [];
    for (const [name] of cases) { const r = await sClient(name); got.push(`${r.cn} ${r.text}`); }
    expect(got).toEqual(cases.map(([, n]) => `${n}.test hello from ${n}`));
    await waitFor(() => f.access().filter((l) => l.listen === 'tlsfe').length >= cases.length, 5000, 'access lines');
    expect(f.access().filter((l) => l.listen === 'tlsfe').slice(0, cases.length).map((l) => l.server)).toEqual(cases.map(([, n]) => n));
    // Each pool counts its own sessions on its TOTAL row, the frontend all of them.
    expect(['p-www', 'p-org', 'p-dflt'].map((n) => f.app.counters.pool(n).total)).toEqual([1, 3, 4]);
    expect(f.app.counters.listen('tlsfe').total).toBe(cases.length);
  });

  it('garbage closed at once, a truncated ClientHello after timeouts.hello: counted, no pool reached; the next client is served', async () => {
    const lc = f.app.counters.listen('tlsfe');
    const before = lc.helloRefused;
    const g = new TcpClient(port());
    g.write('GET / HTTP/1.1\r\nHost: x\r\n\r\n');
    await g.until(() => g.ended || g.closed, 5000, 'garbage closed');
    expect(g.text).toBe('');
    const t = new TcpClient(port());
    t.write(hello.subarray(0, 40));
    const t0 = Date.now();
    await t.until(() => t.ended || t.closed, 5000, 'truncated closed');
    expect(Date.now() - t0).toBeGreaterThanOrEqual(250);
    expect(lc.helloRefused - before).toBe(2);
    expect((await sClient('www.example.com')).text).toBe('hello from www');
    g.destroy(); t.destroy();
  });

  it('a frontend without default_backend closes what no rule matches (PR); reload moves a name to another pool', async () => {
    const { parseConfig } = await import('../../src/config/load.js');
    const srv = (n: string) => servers.find((x) => x.name === n)!.port;
    const text = (www: string) => `listen:\n  - { name: plain, bind: 127.0.0.1:0, mode: tcp, backends: [] }\nfrontends:\n  - name: tlsfe\n    bind: 127.0.0.1:0\n    mode: tcp\n    rules:\n      - { when: { sni: www.example.com }, backend: ${www} }\nbackends:\n  - { name: p-www, mode: tcp, servers: [{ name: www, address: '127.0.0.1:${srv('www')}', check: false }] }\n  - { name: p-org, mode: tcp, servers: [{ name: org, address: '127.0.0.1:${srv('org')}', check: false }] }\n`;
    await f.app.reload(parseConfig(text('p-org')));
    expect(await sClient('www.example.com')).toEqual({ cn: 'org.test', text: 'hello from org' });
    const r = await sClient('other.test');
    expect(r.text).toBe('');
    await waitFor(() => f.access().some((l) => l.listen === 'tlsfe' && l.termination === 'PR' && l.server === '<NOSRV>'), 5000, 'PR line');
  });
});

describe('a mode tcp frontend in data-plane workers', () => {
  it('workers: 2 route each name to its pool too (the rules and pools reach every worker)', async () => {
    const { startApp } = await import('../helpers/app.js');
    const srv = (n: string) => servers.find((x) => x.name === n)!.port;
    const w = await startApp(`global: { log: { access: off } }
listen:
  - { name: plain, bind: 127.0.0.1:0, mode: tcp, backends: [] }
frontends:
  - name: tlsw
    bind: 127.0.0.1:0
    mode: tcp
    rules:
      - { when: { sni: www.example.com }, backend: p-www }
    default_backend: p-dflt
backends:
  - { name: p-www, mode: tcp, servers: [{ name: www, address: '127.0.0.1:${srv('www')}', check: false }] }
  - { name: p-dflt, mode: tcp, servers: [{ name: dflt, address: '127.0.0.1:${srv('dflt')}', check: false }] }
`, { workers: 2 });
    try {
      const port = w.port('tlsw');
      const one = (servername: string) => new Promise<string>((ok, fail) => {
        const t = tlsConnect({ port, host: '127.0.0.1', servername, rejectUnauthorized: false });
        let text = '';
        t.on('error', fail);
        t.on('data', (d: Buffer) => { text += d.toString(); });
        t.on('end', () => { t.destroy(); ok(text.trim()); });
      });
      const got: string[] = [];
      for (let i = 0; i < 6; i++) got.push(await one(i % 2 === 0 ? 'www.example.com' : 'other.test'));
      expect(got).toEqual(['hello from www', 'hello from dflt', 'hello from www', 'hello from dflt', 'hello from www', 'hello from dflt']);
    } finally { await w.stop(); }
  });
});

describe('mode tcp frontends: config checks', () => {
  it('refuses HTTP conditions and actions in its rules, TLS termination, pools of the other mode, unknown pools, unreachable rules', async () => {
    const { parseConfig } = await import('../../src/config/load.js');
    let msg = '';
    try {
      parseConfig(`frontends:
  - name: t
    bind: 127.0.0.1:0
    mode: tcp
    rules:
      - { when: { host: a.example }, backend: tp }
      - { when: { sni: a.example }, deny: {} }
      - { when: { sni: b.example }, backend: hp }
      - { backend: tp }
      - { when: { sni: c.example }, backend: nope }
    default_backend: hp
  - name: h
    bind: 127.0.0.1:0
    default_backend: tp
backends:
  - { name: tp, mode: tcp, servers: [] }
  - { name: hp, servers: [] }
`);
    } catch (e) { msg = (e as Error).message; }
    for (const want of [
      'frontends[0].rules[0]: a mode tcp frontend\'s rules have sni and src conditions and a backend action (not when.host)',
      'frontends[0].rules[1]: a mode tcp frontend\'s rules have sni and src conditions and a backend action (not deny)',
      'frontends[0].rules[2].backend: "hp" is a mode http pool: a mode tcp frontend routes to backends entries with mode: tcp',
      'frontends[0].rules[4]: this rule can never match',
      'frontends[0].rules[4].backend: no backend named "nope"',
      'frontends[0].default_backend: "hp" is a mode http pool',
      'frontends[1].default_backend: "tp" is a mode tcp pool: a mode http frontend routes to mode http pools',
    ]) expect(msg).toContain(want);
  });
});
