import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { request } from 'node:http';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { startBackend, type TestBackend } from '../helpers/backend.js';
import { cleanup, cli, ensureBuilt, freePort, startDaemon, tempDir, type Daemon } from '../daemon/daemon.js';
import { hashPassword } from '../../src/stats/auth.js';

/**
 * Issue 10 item 9, against the real daemon over real HTTP: failed logins limited per source, a
 * bounded table of sources, a credential cache, Origin checked against the bind (never Host), and
 * a read-only role on the page, the admin API and the CLI.
 */

const basic = (u: string, p: string) => 'Basic ' + Buffer.from(`${u}:${p}`).toString('base64');
const OPS = basic('ops', 'correct horse');
const VIEWER = basic('viewer', 'battery staple');
const ADMIN_TOKEN = 'admin-token-0123456789abcdef';
const RO_TOKEN = 'readonly-token-0123456789abcdef';

interface Res { status: number; headers: Record<string, string | string[] | undefined>; body: string }

/** One HTTP request from a chosen loopback source address (127.0.0.0/8 is all local). */
function http(port: number, path: string, o: { method?: string; headers?: Record<string, string>; body?: string; from?: string } = {}): Promise<Res> {
  return new Promise((ok, fail) => {
    const req = request({ host: '127.0.0.1', port, path, method: o.method ?? 'GET', headers: o.headers, localAddress: o.from, agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8').on('data', (d) => { body += d; }).on('end', () => ok({ status: res.statusCode!, headers: res.headers, body }));
    });
    req.on('error', fail);
    req.end(o.body);
  });
}

let backend: TestBackend;
let d: Daemon;
let dir: string;
let SP: number, AP: number;

async function metric(name: string, labels: string): Promise<number> {
  const r = await http(SP, '/metrics');
  const line = r.body.split('\n').find((l) => l.startsWith(`${name}{${labels}} `));
  if (!line) throw new Error(`no ${name}{${labels}} in /metrics`);
  return Number(line.split(' ').pop());
}

beforeAll(async () => {
  ensureBuilt();
  backend = await startBackend('b1');
  dir = tempDir('auth');
  SP = await freePort(); AP = await freePort();
  writeFileSync(join(dir, 'admin.token'), ADMIN_TOKEN + '\n', { mode: 0o600 });
  writeFileSync(join(dir, 'ro.token'), RO_TOKEN + '\n', { mode: 0o600 });
  // ln=12: the limits, not the hash cost, are under test.
  const [hOps, hViewer] = await Promise.all([hashPassword('correct horse', 12), hashPassword('battery staple', 12)]);
  d = await startDaemon(dir, `
global: { log: { access: "off" } }
listen:
  - name: web
    bind: 127.0.0.1:0
    check: { interval: 30s }
    backends:
      - { name: b1, address: "${backend.address}" }
stats:
  bind: 127.0.0.1:${SP}
  refresh: 0s
  admin: true
  metrics_auth: false
  origins: [ "https://lb-01.example.com" ]
  login: { max_failures: 5, lockout: 60s, sources: 64 }
  auth:
    - { user: ops, password: "${hOps}" }
    - { user: viewer, password: "${hViewer}", role: read-only }
admin:
  bind: 127.0.0.1:${AP}
  token_file: ${join(dir, 'admin.token')}
  read_only_token_file: ${join(dir, 'ro.token')}
  read_only_socket: ${join(dir, 'ro.sock')}
`);
}, 60_000);
afterAll(async () => { await d?.kill(); await backend?.close(); if (dir) cleanup(dir); });

describe('failed logins are limited per source', () => {
  test('200 wrong passwords from one source (127.0.0.5), 20 at a time: 5 scrypt checks, then 429 without any; another source logs in meanwhile and after, one scrypt each', async () => {
    const scrypt0 = await metric('pairlb_login_scrypt_total', 'server="stats"');
    const statuses: number[] = [];
    let retryAfter: string | undefined;
    let during: Res | undefined;
    for (let batch = 0; batch < 10; batch++) {
      const flood = Promise.all(Array.from({ length: 20 }, (_, i) => http(SP, '/', { from: '127.0.0.5', headers: { authorization: basic('ops', `guess-${batch}-${i}`) } })));
      // In the middle of the first burst, another source logs in: the flood holds one check slot
      // at most, so this login is checked at once (neither queued behind it nor refused 503).
      if (batch === 0) during = await http(SP, '/', { from: '127.0.0.2', headers: { authorization: VIEWER } });
      for (const r of await flood) { statuses.push(r.status); if (r.status === 429) retryAfter = r.headers['retry-after'] as string; }
    }
    expect(during!.status).toBe(200);
    expect(statuses.filter((s) => s === 401).length).toBe(5);
    expect(statuses.filter((s) => s === 429).length).toBe(195);
    expect(Number(retryAfter)).toBeGreaterThan(0);
    expect(await metric('pairlb_login_scrypt_total', 'server="stats"')).toBe(scrypt0 + 6);
    expect(await metric('pairlb_login_failures_total', 'server="stats"')).toBe(5);
    expect(await metric('pairlb_login_refused_total', 'server="stats",reason="busy"')).toBe(0);
    expect(await metric('pairlb_login_refused_total', 'server="stats",reason="locked"')).toBe(195);
    expect(await metric('pairlb_login_lockouts_total', 'server="stats"')).toBe(1);
    // At most one line per 10 s for the burst (the rest comes in one later line).
    expect(d.logs.filter((l) => typeof l.msg === 'string' && l.msg.includes('failed login')).length).toBe(1);

    // Another source: its login runs scrypt once, then rides on the cache.
    let r = await http(SP, '/', { from: '127.0.0.2', headers: { authorization: OPS } });
    expect(r.status).toBe(200);
    expect(await metric('pairlb_login_scrypt_total', 'server="stats"')).toBe(scrypt0 + 7);
    for (let i = 0; i < 5; i++) expect((await http(SP, '/stats.json', { from: '127.0.0.2', headers: { authorization: OPS } })).status).toBe(200);
    expect(await metric('pairlb_login_scrypt_total', 'server="stats"')).toBe(scrypt0 + 7);

    // The locked source: a verified (cached) credential still works, a new guess still gets 429.
    expect((await http(SP, '/', { from: '127.0.0.5', headers: { authorization: OPS } })).status).toBe(200);
    r = await http(SP, '/', { from: '127.0.0.5', headers: { authorization: basic('ops', 'one more guess') } });
    expect(r.status).toBe(429);
    expect(await metric('pairlb_login_scrypt_total', 'server="stats"')).toBe(scrypt0 + 7);
    const page = await http(SP, '/', { from: '127.0.0.2', headers: { authorization: OPS } });
    expect(page.body).toContain('failed logins 5, <span class="bad">196 refused</span> (196 locked out, 0 busy)');
  });

  test('a flood of sources: the table stays bounded (login.sources)', async () => {
    const f0 = await metric('pairlb_login_failures_total', 'server="stats"');
    for (let batch = 0; batch < 10; batch++) {
      // Distinct guesses: identical headers in flight share one check (and count once).
      const rs = await Promise.all(Array.from({ length: 10 }, (_, i) => http(SP, '/', { from: `127.0.1.${batch * 10 + i + 1}`, headers: { authorization: basic('ops', `wrong-${batch}-${i}`) } })));
      for (const r of rs) expect(r.status).toBe(401);
    }
    expect(await metric('pairlb_login_failures_total', 'server="stats"')).toBe(f0 + 100);
    expect(await metric('pairlb_login_sources', 'server="stats"')).toBe(64);
  });
});

describe('admin actions: Origin against the bind, never Host', () => {
  async function token(auth = OPS): Promise<string> {
    const html = (await http(SP, '/', { headers: { authorization: auth } })).body;
    return /name="csrf" value="([^"]+)"/.exec(html)![1];
  }
  const post = async (headers: Record<string, string>, auth = OPS, action = 'drain') => http(SP, '/action', {
    method: 'POST',
    headers: { authorization: auth, 'content-type': 'application/x-www-form-urlencoded', ...headers },
    body: new URLSearchParams({ listen: 'web', backend: 'b1', action, csrf: await token() }).toString(),
  });
  const state = async () => (JSON.parse((await http(AP, '/v1/backends/web/b1', { headers: { authorization: 'Bearer ' + RO_TOKEN } })).body) as { backend: { state: string } }).backend.state;

  test('Host and Origin both evil.example: 403; Referer evil: 403; the bind origin or an allow-listed one: done', async () => {
    let r = await post({ host: 'evil.example', origin: 'http://evil.example' });
    expect(r.status).toBe(403);
    expect(r.body).toContain('cross-site request');
    r = await post({ host: 'evil.example', referer: 'http://evil.example/x' });
    expect(r.status).toBe(403);
    r = await post({ origin: 'null' });
    expect(r.status).toBe(403);
    expect(await state()).toBe('UP');
    r = await post({ origin: `http://127.0.0.1:${SP}` });
    expect(r.status).toBe(303);
    expect(await state()).toBe('DRAIN');
    r = await post({ host: 'lb-01.example.com', origin: 'https://lb-01.example.com' }, OPS, 'ready');
    expect(r.status).toBe(303);
    expect(await state()).toBe('UP');
    r = await post({ origin: `http://localhost:${SP}` }, OPS, 'ready');
    expect(r.status).toBe(303);
  });

  test('read-only user: page, CSV, JSON, metrics; no actions (403), and the page offers none', async () => {
    const page = await http(SP, '/', { headers: { authorization: VIEWER } });
    expect(page.status).toBe(200);
    expect(page.body).toContain('signed in as viewer (read-only)');
    expect(page.body).not.toContain('name="csrf"');
    for (const p of ['/stats.csv', '/stats.json', '/metrics']) expect((await http(SP, p, { headers: { authorization: VIEWER } })).status, p).toBe(200);
    const r = await http(SP, '/action', {
      method: 'POST', headers: { authorization: VIEWER, 'content-type': 'application/x-www-form-urlencoded', origin: `http://127.0.0.1:${SP}` },
      body: new URLSearchParams({ listen: 'web', backend: 'b1', action: 'drain', csrf: 'x' }).toString(),
    });
    expect(r.status).toBe(403);
    expect(r.body).toContain('user viewer is read-only');
    expect(await state()).toBe('UP');
  });

  test('admin API and CLI: the read-only token reads, every write is 403; the admin token writes', async () => {
    const ro = { authorization: 'Bearer ' + RO_TOKEN, 'content-type': 'application/json' };
    expect((await http(AP, '/v1/backends', { headers: ro })).status).toBe(200);
    expect((await http(AP, '/v1/status', { headers: ro })).status).toBe(200);
    for (const [method, path, body] of [
      ['POST', '/v1/backends/web/b1/state', '{"state":"drain"}'],
      ['POST', '/v1/backends/web/b1/weight', '{"weight":3}'],
      ['POST', '/v1/backends', '{"listen":"web","name":"b9","address":"127.0.0.1:9"}'],
      ['DELETE', '/v1/backends/web/b1', undefined],
    ] as const) {
      const r = await http(AP, path, { method, headers: ro, body });
      expect(r.status, `${method} ${path}`).toBe(403);
      expect(JSON.parse(r.body).error.code).toBe('PAIRLB_FORBIDDEN');
    }
    let c = cli(['backend', 'drain', 'web', 'b1', '--url', `http://127.0.0.1:${AP}`, '--token-file', join(dir, 'ro.token')]);
    expect(c.code).toBe(1);
    expect(c.stderr).toContain('read-only');
    expect(await state()).toBe('UP');
    c = cli(['backend', 'drain', 'web', 'b1', '--url', `http://127.0.0.1:${AP}`, '--token-file', join(dir, 'admin.token')]);
    expect(c.code, c.stderr).toBe(0);
    expect(await state()).toBe('DRAIN');
    c = cli(['backend', 'ready', 'web', 'b1', '--url', `http://127.0.0.1:${AP}`, '--token-file', join(dir, 'admin.token')]);
    expect(c.code, c.stderr).toBe(0);
    expect(await state()).toBe('UP');
  });

  test('admin API: wrong tokens from one source are locked out after 5; the right token still works from there', async () => {
    const statuses: number[] = [];
    for (let i = 0; i < 8; i++) statuses.push((await http(AP, '/v1/status', { from: '127.0.0.3', headers: { authorization: `Bearer wrong-token-${i}-0123456789` } })).status);
    expect(statuses).toEqual([401, 401, 401, 401, 401, 429, 429, 429]);
    expect((await http(AP, '/v1/status', { from: '127.0.0.3', headers: { authorization: 'Bearer ' + ADMIN_TOKEN } })).status).toBe(200);
    expect(await metric('pairlb_login_failures_total', 'server="admin"')).toBe(5);
    expect(await metric('pairlb_login_refused_total', 'server="admin",reason="locked"')).toBe(3);
  });

  test('read-only unix socket: reads, 403 on writes; the CLI drains nothing through it', async () => {
    const sock = join(dir, 'ro.sock');
    const unix = (method: string, path: string, body?: string) => new Promise<{ status: number; body: string }>((ok, fail) => {
      const q = request({ socketPath: sock, path, method, headers: body ? { 'content-type': 'application/json' } : {} }, (r) => {
        let b = ''; r.setEncoding('utf8').on('data', (d) => { b += d; }).on('end', () => ok({ status: r.statusCode!, body: b }));
      });
      q.on('error', fail); q.end(body);
    });
    expect((await unix('GET', '/v1/backends')).status).toBe(200);
    const w = await unix('POST', '/v1/backends/web/b1/state', '{"state":"maint"}');
    expect(w.status).toBe(403);
    expect(JSON.parse(w.body).error.code).toBe('PAIRLB_FORBIDDEN');
    const c = cli(['backend', 'drain', 'web', 'b1', '--socket', sock]);
    expect(c.code).toBe(1);
    expect(c.stderr).toContain('read-only');
    expect(cli(['status', '--socket', sock]).code).toBe(0);
    expect(await state()).toBe('UP');
  });
});
