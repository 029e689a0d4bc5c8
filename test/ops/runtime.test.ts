import { afterAll, afterEach, beforeAll, describe, expect, test } from 'vitest';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startApp } from '../helpers/app.js';
import { startBackend, type TestBackend } from '../helpers/backend.js';
import { parseConfig } from '../../src/config/load.js';
import { call, type Target } from '../../src/cli/ops-client.js';
import type { AdminModule } from '../../src/admin/module.js';

/**
 * Runtime changes through the admin API (JSON over a unix socket, or TCP + token) on a real App with
 * the real proxy: an added backend takes traffic, a removed one gets no new request while its
 * in-flight request completes, and both survive a restart (new App over the same state dir) and a
 * reload; a later config change of the same backend wins.
 */

let dir: string;
const backends: TestBackend[] = [];
const running: { stop(): Promise<void> }[] = [];

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'pairlb-ops-rt-'));
  for (const n of ['web1', 'web2', 'web3']) {
    backends.push(await startBackend(n, (req, res) => {
      if (!req.url!.startsWith('/slow')) return false;
      setTimeout(() => { res.writeHead(200, { 'x-backend': n }); res.end('slow ' + n); }, 1500);
    }));
  }
});
afterEach(async () => { for (const r of running.splice(0)) await r.stop(); });
afterAll(async () => { for (const b of backends) await b.close(); rmSync(dir, { recursive: true, force: true }); });

const [B1, B2, B3] = [0, 1, 2].map((i) => () => backends[i]);
const sock = () => join(dir, 'admin.sock');
const yaml = (extra = '', w1 = 1) => `
global: { node: t1 }
listen:
  - name: web
    bind: 127.0.0.1:0
    check: { interval: 300ms, timeout: 3s }
    backends:
      - { name: web1, address: "${B1().address}", weight: ${w1} }
      - { name: web2, address: "${B2().address}" }
admin:
  socket: ${sock()}
  remove_timeout: 5s
${extra}`;

async function boot(text = yaml()) {
  const h = await startApp(text, { stateDir: join(dir, 'state') });
  running.push(h);
  return h;
}
const T: () => Target = () => ({ socketPath: sock(), timeoutMs: 15_000 });

/** n requests; returns how many each backend answered (by x-backend). */
async function spread(url: string, n: number, path = '/req'): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  for (let i = 0; i < n; i++) {
    const r = await fetch(url + path + i);
    await r.text();
    const b = r.headers.get('x-backend') ?? `status ${r.status}`;
    out[b] = (out[b] ?? 0) + 1;
  }
  return out;
}
const seenReq = (b: TestBackend) => b.seen.filter((s) => s.url.startsWith('/req') || s.url.startsWith('/slow')).length;

describe('runtime admin API', () => {
  test('add takes traffic; remove drains (in-flight completes, no new requests); both survive a restart', async () => {
    rmSync(join(dir, 'state'), { recursive: true, force: true });
    let h = await boot();
    let r = await call(T(), 'POST', '/v1/backends', { listen: 'web', name: 'web3', address: B3().address, weight: 1, check: false });
    expect(r.status).toBe(201);
    expect(r.body.backend).toMatchObject({ listen: 'web', name: 'web3', state: 'UP', origin: 'runtime' });
    expect(await spread(h.url(), 9)).toEqual({ web1: 3, web2: 3, web3: 3 });

    // A slow request is in flight on web1 when the removal starts.
    let slow: Promise<{ status: number; body: string; backend: string | null }> | undefined;
    for (let i = 0; i < 3 && !slow; i++) {
      const before = B1().seen.length;
      const p = fetch(h.url() + '/slow' + i).then(async (x) => ({ status: x.status, body: await x.text(), backend: x.headers.get('x-backend') }));
      await new Promise((ok) => setTimeout(ok, 150));
      if (B1().seen.length > before) slow = p; else await p;
    }
    expect(slow, 'a slow request reached web1').toBeDefined();
    const t0 = Date.now();
    const removal = call(T(), 'DELETE', '/v1/backends/web/web1');
    await new Promise((ok) => setTimeout(ok, 200));
    expect(h.app.backends.get('web', 'web1')!.admin).toBe('drain');
    const listed = await call(T(), 'GET', '/v1/backends?listen=web');
    expect((listed.body.backends as { name: string; removing: boolean }[]).find((b) => b.name === 'web1')!.removing).toBe(true);
    const n1 = seenReq(B1());
    expect(await spread(h.url(), 6, '/during')).toEqual({ web2: 3, web3: 3 });
    expect(seenReq(B1())).toBe(n1);
    const done = await removal;
    expect(done.status).toBe(200);
    expect(done.body).toMatchObject({ removed: true, forced: false });
    expect(Date.now() - t0).toBeGreaterThan(800); // it waited for the slow request
    expect(await slow).toEqual({ status: 200, body: 'slow web1', backend: 'web1' });
    expect(h.app.backends.get('web', 'web1')).toBeUndefined();
    expect(await spread(h.url(), 4)).toEqual({ web2: 2, web3: 2 });

    // Drain web2 too, then restart: a new App over the same state dir.
    r = await call(T(), 'POST', '/v1/backends/web/web2/state', { state: 'drain' });
    expect(r.body.backend).toMatchObject({ state: 'DRAIN' });
    r = await call(T(), 'POST', '/v1/backends/web/web3/weight', { weight: 5 });
    expect(r.body.backend).toMatchObject({ weight: 5 });
    await h.stop(); running.length = 0;
    const persisted = JSON.parse(readFileSync(join(dir, 'state', 'runtime.json'), 'utf8'));
    expect(persisted.sections.backends.entries.map((e: { name: string }) => e.name).sort()).toEqual(['web1', 'web2', 'web3']);

    h = await boot();
    const after = await call(T(), 'GET', '/v1/backends');
    expect((after.body.backends as { name: string; state: string; weight: number; origin: string }[]).map((b) => [b.name, b.state, b.weight, b.origin]))
      .toEqual([['web2', 'DRAIN', 1, 'config'], ['web3', 'UP', 5, 'runtime']]);
    expect(await spread(h.url(), 4)).toEqual({ web3: 4 });
  });

  test('reload: runtime changes survive; a later config change of the same backend wins', async () => {
    rmSync(join(dir, 'state'), { recursive: true, force: true });
    const h = await boot();
    await call(T(), 'POST', '/v1/backends/web/web1/weight', { weight: 9 });
    await call(T(), 'POST', '/v1/backends/web/web2/state', { state: 'maint' });
    await call(T(), 'POST', '/v1/backends', { listen: 'web', name: 'web3', address: B3().address, check: false });
    // Same config again: everything the operator did stays.
    await h.app.reload(parseConfig(yaml()));
    let list = (await call(T(), 'GET', '/v1/backends')).body.backends as { name: string; state: string; weight: number }[];
    expect(list.map((b) => [b.name, b.state, b.weight])).toEqual([['web1', 'UP', 9], ['web2', 'MAINT', 1], ['web3', 'UP', 1]]);
    // The config now sets web1's weight itself (the entry changed after the runtime change): config wins.
    await h.app.reload(parseConfig(yaml('', 3)));
    list = (await call(T(), 'GET', '/v1/backends')).body.backends as { name: string; state: string; weight: number }[];
    expect(list.map((b) => [b.name, b.state, b.weight])).toEqual([['web1', 'UP', 3], ['web2', 'MAINT', 1], ['web3', 'UP', 1]]);
    await h.stop(); running.length = 0;
    // And after a restart with that config, the same.
    const h2 = await boot(yaml('', 3));
    list = (await call(T(), 'GET', '/v1/backends')).body.backends as { name: string; state: string; weight: number }[];
    expect(list.map((b) => [b.name, b.state, b.weight])).toEqual([['web1', 'UP', 3], ['web2', 'MAINT', 1], ['web3', 'UP', 1]]);
    expect(await spread(h2.url(), 4)).toEqual({ web1: 3, web3: 1 });
  });

  test('errors are JSON with codes; status verdict', async () => {
    rmSync(join(dir, 'state'), { recursive: true, force: true });
    await boot();
    let r = await call(T(), 'POST', '/v1/backends/web/nope/state', { state: 'drain' });
    expect(r.status).toBe(404);
    expect(r.body.error).toMatchObject({ code: 'PAIRLB_NO_BACKEND' });
    r = await call(T(), 'POST', '/v1/backends/web/web1/state', { state: 'sleep' });
    expect(r.status).toBe(400);
    r = await call(T(), 'POST', '/v1/backends', { listen: 'web', name: 'web1', address: '127.0.0.1:1' });
    expect(r.status).toBe(409);
    r = await call(T(), 'POST', '/v1/backends', { listen: 'web', name: 'x', address: 'nohost' });
    expect(r.body.error).toMatchObject({ code: 'PAIRLB_BAD_ADDRESS' });
    r = await call(T(), 'GET', '/v1/status');
    expect(r.body.verdict).toMatchObject({ code: 0, label: 'OK' });
    await call(T(), 'POST', '/v1/backends/web/web1/state', { state: 'maint' });
    await call(T(), 'POST', '/v1/backends/web/web2/state', { state: 'maint' });
    r = await call(T(), 'GET', '/v1/status');
    expect(r.body.verdict).toMatchObject({ code: 2, label: 'CRITICAL' });
  });

  test('on the backup of a replicating pair, changes are refused with a pointer to the master', async () => {
    rmSync(join(dir, 'state'), { recursive: true, force: true });
    const h = await boot();
    // The role and ha section as the HA module would leave them on the backup (HA itself is tested in namespaces).
    h.app.cfg = { ...h.app.cfg, ha: { replicate: true } as unknown as typeof h.app.cfg.ha };
    h.app.setRole('backup', 'test');
    const r = await call(T(), 'POST', '/v1/backends/web/web1/state', { state: 'drain' });
    expect(r.status).toBe(409);
    expect(r.body.error).toMatchObject({ code: 'PAIRLB_NOT_MASTER' });
    expect(h.app.backends.get('web', 'web1')!.admin).toBe('ready');
    expect((await call(T(), 'GET', '/v1/backends')).status).toBe(200);
    h.app.setRole('master', 'test');
    expect((await call(T(), 'POST', '/v1/backends/web/web1/state', { state: 'drain' })).status).toBe(200);
  });

  test('TCP transport needs the bearer token', async () => {
    rmSync(join(dir, 'state'), { recursive: true, force: true });
    const tokenFile = join(dir, 'admin.token');
    writeFileSync(tokenFile, 'a-long-enough-test-token-0123456789\n', { mode: 0o600 });
    const h = await boot(yaml().replace(/admin:\n  socket: .*\n/, `admin:\n  bind: 127.0.0.1:0\n  token_file: ${tokenFile}\n`));
    const a = (h.app.modules.find((m) => m.name === 'admin') as AdminModule).address() as { port: number };
    let r = await call({ host: '127.0.0.1', port: a.port, timeoutMs: 5000 }, 'GET', '/v1/backends');
    expect(r.status).toBe(401);
    r = await call({ host: '127.0.0.1', port: a.port, token: 'a-long-enough-test-token-0123456789X', timeoutMs: 5000 }, 'GET', '/v1/backends');
    expect(r.status).toBe(401);
    r = await call({ host: '127.0.0.1', port: a.port, token: 'a-long-enough-test-token-0123456789', timeoutMs: 5000 }, 'GET', '/v1/backends');
    expect(r.status).toBe(200);
    expect((r.body.backends as unknown[]).length).toBe(2);
  });
});
