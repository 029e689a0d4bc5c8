import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { request } from 'node:http';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseDocument } from 'yaml';
import { ROOT, cleanup, cli, ensureBuilt, freePort, startDaemon, tempDir, type Daemon } from '../daemon/daemon.js';
import { startBackend, type TestBackend } from '../helpers/backend.js';

/**
 * `pairlb import` end to end through the real CLI (issue 15): the classic heartbeat + HAProxy
 * tutorial files, and a file with several frontends/backends + keepalived.conf. The output passes
 * `pairlb check --schema-only`, and then serves: the real daemon runs the imported file with only
 * the addresses rewritten to loopback test backends (port 0) and without the `ha:` section (a VIP
 * needs a namespace and CAP_NET_ADMIN; the HA import is checked by the schema here and in the unit
 * tests).
 */

const FIX = join(ROOT, 'test/fixtures/import');
let dir: string;
const daemons: Daemon[] = [];
const backends: TestBackend[] = [];
beforeAll(() => { ensureBuilt(); dir = tempDir('import'); });
afterAll(async () => {
  for (const d of daemons) await d.kill();
  for (const b of backends) await b.close();
  cleanup(dir);
});

interface Res { status: number; headers: Record<string, string | string[] | undefined>; body: string }
function get(port: number, path: string, headers: Record<string, string> = {}): Promise<Res> {
  return new Promise((ok, fail) => {
    const req = request({ host: '127.0.0.1', port, path, headers, agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8').on('data', (c: string) => { body += c; }).on('end', () => ok({ status: res.statusCode!, headers: res.headers, body }));
    });
    req.on('error', fail);
    req.setTimeout(5000, () => req.destroy(new Error('timeout')));
    req.end();
  });
}

/** Polls until pred holds, at most `ms` (a condition, not a sleep). */
async function until(pred: () => boolean | Promise<boolean>, what: string, ms = 15_000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await pred())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** A backend that answers with its name and sets the application's own session cookie. */
async function app(name: string, cookie?: string): Promise<TestBackend> {
  const b = await startBackend(name, (_req, res) => {
    res.writeHead(200, { 'content-type': 'text/plain', 'x-backend': name, ...(cookie ? { 'set-cookie': `${cookie}=sess-${name}; Path=/` } : {}) });
    res.end(name);
  });
  backends.push(b);
  return b;
}

function importTo(args: string[], file: string): { stderr: string; yaml: string } {
  const r = cli(['import', ...args]);
  expect(r.code, r.stderr).toBe(0);
  writeFileSync(file, r.stdout);
  const c = cli(['check', '-c', file, '--schema-only']);
  expect(c).toEqual({ code: 0, stdout: `Configuration file is valid: ${file}\n`, stderr: '' });
  return { stderr: r.stderr, yaml: r.stdout };
}

describe('pairlb import: the classic heartbeat + HAProxy tutorial', () => {
  let out: { stderr: string; yaml: string };
  const file = () => join(dir, 'classic.yaml');

  it('writes a config that passes pairlb check --schema-only, lists what it could not map, and never copies the secret', () => {
    out = importTo(['--haproxy', join(FIX, 'classic/haproxy.cfg'), '--heartbeat', join(FIX, 'classic/ha.d')], file());
    expect(out.yaml + out.stderr).not.toContain('SomeSecret');
    const cfg = parseDocument(out.yaml).toJS() as Record<string, any>;
    expect(cfg.listen).toEqual([{
      name: 'webfarm', bind: '0.0.0.0:80', mode: 'http', balance: 'roundrobin',
      // defaults: maxconn 2000 (a frontend's), option httpclose.
      maxconn: 2000, connection_mode: 'httpclose',
      cookie: { name: 'JSESSIONID', mode: 'prefix' },
      forwardfor: { enabled: true, proto: false },
      timeouts: { connect: '5s', server: '50s', client: '50s' }, retries: 3, redispatch: true,
      check: { type: 'http', method: 'HEAD', path: '/check.txt', interval: '2s', timeout: '2s', rise: 2, fall: 3 },
      backends: [{ name: 'webA', address: '192.168.0.102:80', cookie: 'A' }, { name: 'webB', address: '192.168.0.103:80', cookie: 'B' }],
    }]);
    expect(cfg.stats).toEqual({ bind: '127.0.0.1:8404', auth: [{ user: 'admin', password: 'pass' }] });
    expect(cfg.global).toEqual({ maxconn: 4096, node: 'lb1' });
    expect(cfg.ha).toEqual({
      enabled: true, key_file: '/etc/pairlb/ha.key', priority: 150,
      node: { dedicated: '192.0.2.1:694' }, peer: { name: 'lb2', dedicated: '192.0.2.2:694' },
      keepalive: '2s', warntime: '10s', deadtime: '30s', initdead: '2m', handover_timeout: '4s', auto_failback: true,
      vip: { address: '192.168.0.100/24', interface: 'eth0' },
    });
    const err = out.stderr.split('\n').filter(Boolean);
    expect(err.slice(0, 2)).toEqual([
      'pairlb import: FILL IN ha.node.dedicated: this node\'s address on the heartbeat link (eth1), port 694',
      'pairlb import: FILL IN ha.peer.dedicated: lb2\'s address on the heartbeat link (eth1), port 694',
    ]);
    const haproxy = join(FIX, 'classic/haproxy.cfg');
    // option httpclose (defaults, line 27) is mapped: connection_mode httpclose on every section.
    expect(err.filter((l) => l.includes(`${haproxy}:27:`))).toEqual([]);
    expect(err.filter((l) => l.includes('authkeys:2: 1 sha1 …'))).toHaveLength(1);
    expect(err.filter((l) => l.startsWith('pairlb import: not mapped: '))).toHaveLength(10);
    // The same list heads the file, as comments.
    expect(out.yaml).toContain('# Not mapped (10):\n');
    expect(out.yaml).toContain(`#   - ${haproxy}:`);
  });

  it('serves with the cookie prefix behaviour once the addresses point at real backends', async () => {
    const [webA, webB] = [await app('webA', 'JSESSIONID'), await app('webB', 'JSESSIONID')];
    const doc = parseDocument(readFileSync(file(), 'utf8'));
    const port = await freePort(), stats = await freePort();
    doc.setIn(['listen', 0, 'bind'], `127.0.0.1:${port}`);
    doc.setIn(['listen', 0, 'backends', 0, 'address'], webA.address);
    doc.setIn(['listen', 0, 'backends', 1, 'address'], webB.address);
    doc.setIn(['stats', 'bind'], `127.0.0.1:${stats}`);
    doc.deleteIn(['ha']);
    doc.deleteIn(['global', 'node']);
    const d = await startDaemon(dir, doc.toString());
    daemons.push(d);
    // The imported check (HEAD /check.txt, rise 2) reaches both backends.
    await until(() => [webA, webB].every((b) => b.seen.some((s) => s.method === 'HEAD' && s.url === '/check.txt')), 'health checks');

    const first = await get(port, '/');
    expect(first.status).toBe(200);
    const id = first.body === 'webA' ? 'A' : 'B';
    expect(first.headers['set-cookie']).toEqual([`JSESSIONID=${id}~sess-${first.body}; Path=/`]);
    // The client comes back with the prefixed cookie: same server, which sees its own value only.
    for (const [sid, b] of [['A', webA], ['B', webB]] as const) {
      for (let i = 0; i < 3; i++) {
        const n = b.seen.length;
        const r = await get(port, '/cart', { cookie: `JSESSIONID=${sid}~sess-${b.name}; lang=en` });
        expect([r.status, r.body]).toEqual([200, b.name]);
        const seen = b.seen.slice(n).find((s) => s.url === '/cart')!;
        expect(seen.headers.cookie).toBe(`JSESSIONID=sess-${b.name}; lang=en`);
        expect(seen.headers['x-forwarded-for']).toBe('127.0.0.1');
        expect(seen.headers['x-forwarded-proto']).toBeUndefined();
      }
    }
    // stats auth admin:pass still opens the page (on its own bind).
    expect((await get(stats, '/', { authorization: `Basic ${Buffer.from('admin:pass').toString('base64')}` })).status).toBe(200);
  });
});

describe('pairlb import: usage and exit codes', () => {
  it('--haproxy is required; heartbeat and keepalived exclude each other; no HTTP section is exit 1', () => {
    expect(cli(['import'])).toEqual({ code: 2, stdout: '', stderr: 'pairlb import: --haproxy FILE is required\n' });
    expect(cli(['import', '--haproxy', 'x', '--heartbeat', 'd', '--keepalived', 'k'])).toEqual({ code: 2, stdout: '', stderr: 'pairlb import: give --heartbeat or --keepalived, not both (pairlb runs one HA pair)\n' });
    const tcp = join(dir, 'tcp.cfg');
    writeFileSync(tcp, 'listen db :5432\n    server a 10.0.0.1:5432 check\n');
    const r = cli(['import', '--haproxy', tcp]);
    expect(r.code).toBe(1);
    expect(r.stderr).toBe(`pairlb import: not mapped: ${tcp}:1: listen db :5432 — mode tcp (HAProxy's default without \`mode http\`): pairlb proxies HTTP only; this section is not imported\npairlb import: no HTTP listen section or frontend could be imported (pairlb needs at least one)\n`);
    const h = cli(['import', '--help']);
    expect(h.code).toBe(0);
    expect(h.stdout).toContain('Usage: pairlb import --haproxy FILE [--heartbeat DIR | --keepalived FILE]');
  });
});

describe('pairlb import: several frontends/backends + keepalived', () => {
  const file = () => join(dir, 'multi.yaml');

  it('maps the frontends (the one with rules and TLS too) and backends, lists the tcp ones, and passes the schema', () => {
    const out = importTo(['--haproxy', join(FIX, 'multi/haproxy.cfg'), '--keepalived', join(FIX, 'multi/keepalived.conf'), '--peer', 'lb-02'], file());
    expect(out.yaml + out.stderr).not.toContain('1111');
    const cfg = parseDocument(out.yaml).toJS() as Record<string, any>;
    expect(cfg.listen).toBeUndefined();
    expect(cfg.frontends.map((f: any) => [f.name, f.bind, f.default_backend, f.tls])).toEqual([
      ['www', '0.0.0.0:80', 'app', undefined],
      ['api', '0.0.0.0:8080', 'api_servers', undefined],
      ['mixed', '0.0.0.0:8443', 'app', { certificates: ['/etc/haproxy/site.pem'] }],
    ]);
    expect(cfg.frontends[2].rules).toEqual([
      { when: { path_prefix: '/api' }, backend: 'api_servers' },
      { when: { host: 'static.example.com' }, backend: 'static' },
    ]);
    expect(cfg.backends.map((b: any) => [b.name, b.servers.map((x: any) => x.name), b.check?.type])).toEqual([
      ['app', ['app1', 'app2', 'app3'], 'http'],
      ['api_servers', ['api1', 'api2'], 'tcp'],
      ['static', ['s1'], undefined],
    ]);
    expect(cfg.ha).toMatchObject({ cluster: 'vrid-51', priority: 101, keepalive: '1s', deadtime: '3605ms', vip: { address: '192.168.0.100/24', interface: 'eth0', label: 'eth0:1' }, peer: { name: 'lb-02' } });
    const hp = join(FIX, 'multi/haproxy.cfg');
    const err = out.stderr.split('\n');
    expect(err.filter((l) => [24, 25, 26, 27, 28, 29, 30].some((n) => l.includes(`${hp}:${n}:`)))).toEqual([]); // frontend mixed: every line mapped
    expect(err).toContain(`pairlb import: not mapped: ${hp}:32: frontend raw — mode tcp (HAProxy's default without \`mode http\`): pairlb proxies HTTP only; this section is not imported`);
    expect(err).toContain(`pairlb import: not mapped: ${hp}:55: backend pg — mode tcp (HAProxy's default without \`mode http\`): pairlb proxies HTTP only; this section is not imported`);
    expect(err.filter((l) => l.includes(`${hp}:48:`))).toEqual([]); // balance leastconn is mapped
    expect(cfg.backends.find((b: any) => b.name === 'api_servers').balance).toBe('leastconn');
  });

  it('serves: insert cookie (indirect) on www, X-Real-IP on api', async () => {
    const apps = [await app('app1'), await app('app2'), await app('app3')];
    const apis = [await app('api1'), await app('api2')];
    const doc = parseDocument(readFileSync(file(), 'utf8'));
    const [pw, pa] = [await freePort(), await freePort()];
    doc.setIn(['frontends', 0, 'bind'], `127.0.0.1:${pw}`);
    doc.setIn(['frontends', 1, 'bind'], `127.0.0.1:${pa}`);
    // The TLS frontend names /etc/haproxy/site.pem of the target machine (its routing: test/import/sites.test.ts).
    doc.deleteIn(['frontends', 2]);
    doc.setIn(['backends', 2, 'servers', 0, 'address'], '127.0.0.1:9');
    apps.forEach((b, i) => doc.setIn(['backends', 0, 'servers', i, 'address'], b.address));
    apis.forEach((b, i) => doc.setIn(['backends', 1, 'servers', i, 'address'], b.address));
    doc.deleteIn(['ha']);
    doc.deleteIn(['global', 'node']);
    const d = await startDaemon(dir, doc.toString());
    daemons.push(d);
    await until(() => apps.every((b) => b.seen.some((s) => s.method === 'GET' && s.url === '/health')), 'health checks of www');

    const first = await get(pw, '/');
    expect(first.status).toBe(200);
    expect(['app1', 'app2']).toContain(first.body); // app3 is a backup
    const id = first.body === 'app1' ? 'a1' : 'a2';
    expect(first.headers['set-cookie']).toEqual([`SERVERID=${id}; Path=/`]);
    const n = apps[1].seen.length;
    const r = await get(pw, '/x', { cookie: 'SERVERID=a2; other=1' });
    expect([r.status, r.body, r.headers['set-cookie']]).toEqual([200, 'app2', undefined]);
    expect(apps[1].seen.slice(n).find((s) => s.url === '/x')!.headers.cookie).toBe('other=1');

    const a = await get(pa, '/v1');
    expect(a.status).toBe(200);
    const seen = apis.flatMap((b) => b.seen).find((s) => s.url === '/v1')!;
    expect(seen.headers['x-real-ip']).toBe('127.0.0.1');
    expect(seen.headers['x-forwarded-for']).toBeUndefined();
  });
});
