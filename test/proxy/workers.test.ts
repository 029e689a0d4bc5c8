import { afterEach, describe, expect, it } from 'vitest';
import { request, Agent, type ServerResponse } from 'node:http';
import { connect } from 'node:net';
import { startBackend, type TestBackend } from '../helpers/backend.js';
import { startApp } from '../helpers/app.js';
import { parseConfig } from '../../src/config/load.js';
import { adminActions } from '../../src/admin/api.js';
import type { WorkerPool } from '../../src/proxy/workers.js';
import type { App } from '../../src/app.js';

/**
 * The data plane in worker threads (global.workers: 2): real backends, a real App whose workers
 * accept on the same port with SO_REUSEPORT, real clients. What the control plane shows and does
 * must be the same as with one data plane: exact totals, admin actions on every worker, crash,
 * reload and stop.
 */

type Running = Awaited<ReturnType<typeof startApp>>;
const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => { while (cleanups.length) await cleanups.pop()!(); });

async function backend(name: string, handler?: Parameters<typeof startBackend>[1]): Promise<TestBackend> {
  const b = await startBackend(name, handler);
  cleanups.push(() => b.close());
  return b;
}

async function app(yaml: string, workers = 2): Promise<Running> {
  const a = await startApp(yaml, { workers });
  cleanups.push(() => a.stop());
  return a;
}

const listen = (bs: TestBackend[], extra = '') => `listen:\n  - name: web\n    bind: 127.0.0.1:0\n${extra}    backends:\n${bs.map((b) => `      - name: ${b.name}\n        address: ${b.address}\n        check: false\n`).join('')}`;

/** One request; `agent` false: a new connection each time (the kernel spreads those over workers). */
function get(url: string, agent: Agent | false = false, headers: Record<string, string> = {}): Promise<{ status: number; body: string }> {
  return new Promise((ok, fail) => {
    const r = request(url, { agent, headers }, (res) => {
      let body = '';
      res.on('data', (c) => { body += c; });
      res.on('end', () => ok({ status: res.statusCode!, body }));
      res.on('error', fail);
    });
    r.on('error', fail);
    r.end();
  });
}

function statsPort(a: App): number {
  const m = a.modules.find((x) => x.name === 'stats') as unknown as { address(): { port: number } };
  return m.address().port;
}

/** A backend that holds every request until release() (answers with its name then), until pass(). */
async function holding(name: string): Promise<TestBackend & { held: ServerResponse[]; release(): void; pass(): void }> {
  const held: ServerResponse[] = [];
  let passing = false;
  const b = await backend(name, (_req, res) => { if (passing) res.end(name); else held.push(res); return true; });
  return Object.assign(b, { held, release: () => { for (const r of held.splice(0)) r.end(name); }, pass: () => { passing = true; } });
}

/** Resolves once nothing accepts on the port any more. */
async function refused(port: number): Promise<void> {
  await expect.poll(() => new Promise((ok) => { const s = connect(port, '127.0.0.1'); s.on('connect', () => { s.destroy(); ok('open'); }); s.on('error', (e: NodeJS.ErrnoException) => ok(e.code)); }), { timeout: 10_000 }).toBe('ECONNREFUSED');
}

describe('data plane in worker threads (workers: 2)', () => {
  it('N requests spread over both workers are counted exactly N on the stats page, CSV, JSON and /metrics', async () => {
    const [a, b] = [await backend('a'), await backend('b')];
    const p = await app(listen([a, b]) + 'stats:\n  bind: 127.0.0.1:0\n  auth: []\n');
    const N = 60;
    for (let i = 0; i < N; i += 6) {
      const rs = await Promise.all(Array.from({ length: 6 }, () => get(p.url() + '/')));
      for (const r of rs) expect(r.status).toBe(200);
    }
    expect(a.seen.length + b.seen.length).toBe(N);
    const base = `http://127.0.0.1:${statsPort(p.app)}`;
    // Every request's counters reach the control plane (the stats request waits for the workers' report).
    await expect.poll(async () => (await (await fetch(base + '/stats.json')).json()).listens[0].total.total, { timeout: 5000 }).toBe(N);
    const json = await (await fetch(base + '/stats.json')).json();
    expect(json.listens[0].total.total).toBe(N);
    // Per backend: exactly what each backend received; each worker's own round robin alternates,
    // so the split is even within one request per worker.
    expect(json.listens[0].backends.map((r: { name: string; total: number }) => [r.name, r.total])).toEqual([['a', a.seen.length], ['b', b.seen.length]]);
    expect(Math.abs(a.seen.length - b.seen.length)).toBeLessThanOrEqual(2);
    expect(json.listens[0].total.cur).toBe(0);
    // Both workers served (the kernel hashes 60 new connections over 2 sockets: one alone is 2^-59).
    expect(json.workers).toHaveLength(2);
    for (const w of json.workers) expect(w.requests).toBeGreaterThan(0);
    expect(json.workers.reduce((n: number, w: { requests: number }) => n + w.requests, 0)).toBe(N);
    // Event-loop lag per thread: main and each worker (reported with the workers' flush answers).
    for (const t of ['main', 'worker-0', 'worker-1']) expect(typeof json.threads[t]?.maxMs).toBe('number');
    const csv = (await (await fetch(base + '/stats.csv')).text()).trim().split('\n').map((l) => l.split(','));
    const col = csv[0].indexOf('total');
    const totalRow = csv.find((r) => r[csv[0].indexOf('name')] === 'TOTAL')!;
    expect(Number(totalRow[col])).toBe(N);
    const metrics = await (await fetch(base + '/metrics')).text();
    expect(metrics).toMatch(new RegExp(`^pairlb_listen_sessions_total\\{[^}]*listen="web"[^}]*\\} ${N}$`, 'm'));
    expect(metrics).toMatch(/^pairlb_worker_requests_total\{worker="1"\} [1-9]\d*$/m);
    const html = await (await fetch(base + '/')).text();
    expect(html).toContain('pairlb');
  });

  it('a worker that dies is replaced at once: only its own in-flight requests fail, the others finish, nothing is marked down', async () => {
    const h = await holding('h');
    const p = await app(listen([h], '    passive:\n      connect_errors: 1\n      http_5xx: 1\n'));
    const pool = p.app.proxy as WorkerPool;
    // 12 requests in flight on 12 connections, spread over both workers.
    const results = Array.from({ length: 12 }, () => get(p.url() + '/').then((r) => r.status, () => 'failed' as const));
    await expect.poll(() => h.held.length, { timeout: 5000 }).toBe(12);
    await p.app.proxy.sync();
    const onWorker0 = pool.workers()[0].requests; // started, not finished: counted at begin
    expect(p.app.counters.listen('web').cur).toBe(12);
    await pool.kill(0);
    // Served meanwhile by worker 1 (the kernel sends new connections to the live socket).
    await expect.poll(() => pool.workers()[0].restarts, { timeout: 5000 }).toBe(1);
    h.release();
    const statuses = await Promise.all(results);
    const failed = statuses.filter((s) => s === 'failed').length;
    expect(failed).toBe(onWorker0);
    expect(statuses.filter((s) => s === 200)).toHaveLength(12 - onWorker0);
    expect(failed).toBeGreaterThan(0);
    expect(failed).toBeLessThan(12);
    // Replaced and serving; what the dead worker had in flight is no longer counted.
    await expect.poll(() => pool.workers()[0].state, { timeout: 10_000 }).toBe('ready');
    h.pass();
    const again = await Promise.all(Array.from({ length: 8 }, () => get(p.url() + '/')));
    for (const r of again) expect(r).toEqual({ status: 200, body: 'h' });
    await p.app.proxy.sync();
    expect(p.app.counters.listen('web').cur).toBe(0);
    expect(p.app.backends.get('web', 'h')!.health).toBe('up');
    expect(p.app.proxy.isServing()).toBe(true);
  });

  it('reload reaches every worker without dropping keep-alive connections; graceful stop drains every worker', async () => {
    const a = await backend('a');
    const h = await holding('h');
    const yaml = (xff: boolean) => `listen:\n  - name: web\n    bind: 127.0.0.1:0\n    forwardfor:\n      enabled: ${xff}\n    backends:\n      - name: a\n        address: ${a.address}\n        check: false\n`;
    const p = await app(yaml(true));
    const port = p.port();
    // 8 keep-alive connections (one request each so far), over both workers.
    const agents = Array.from({ length: 8 }, () => new Agent({ keepAlive: true, maxSockets: 1 }));
    for (const ag of agents) expect((await get(p.url() + '/', ag)).status).toBe(200);
    expect(a.seen.every((s) => s.headers['x-forwarded-for'] === '127.0.0.1')).toBe(true);
    // The same bind (port 0 resolved once): settings swapped in place in every worker.
    await p.app.reload(parseConfig(yaml(false)));
    expect(p.port()).toBe(port);
    const before = a.seen.length;
    let reused = 0;
    for (const ag of agents) {
      const r = await new Promise<{ status: number; reused: boolean }>((ok, fail) => {
        const q = request(p.url() + '/', { agent: ag }, (res) => { res.resume(); res.on('end', () => ok({ status: res.statusCode!, reused: q.reusedSocket })); });
        q.on('error', fail);
        q.end();
      });
      expect(r.status).toBe(200);
      if (r.reused) reused++;
    }
    // Same connections, new settings in every worker.
    expect(reused).toBe(8);
    expect(a.seen.slice(before).map((s) => s.headers['x-forwarded-for'])).toEqual(Array(8).fill(undefined));
    for (const ag of agents) ag.destroy();

    // Graceful stop: requests in flight on both workers finish; the port is closed afterwards.
    await p.app.reload(parseConfig(`listen:\n  - name: web\n    bind: 127.0.0.1:0\n    backends:\n      - name: h\n        address: ${h.address}\n        check: false\n`));
    const inflight = Array.from({ length: 8 }, () => get(p.url() + '/'));
    await expect.poll(() => h.held.length, { timeout: 5000 }).toBe(8);
    await p.app.proxy.sync();
    expect((p.app.proxy as WorkerPool).workers().every((w) => w.requests > 0)).toBe(true);
    const stopped = p.app.stop(5000);
    await refused(port); // every worker has closed its listening socket: stopping, draining
    h.release();
    for (const r of await Promise.all(inflight)) expect(r).toEqual({ status: 200, body: 'h' });
    await stopped;
    cleanups.pop(); // stopped here
  });

  it('admin drain and drain-then-remove act on every worker; global.maxconn is one budget over the workers', async () => {
    const [a, b] = [await backend('a'), await backend('b')];
    const h = await holding('h');
    const p = await app(`global:\n  maxconn: 6\n` + listen([a, b, h]));
    const actions = adminActions(p.app);
    const who = { user: 't', via: 'api' as const };
    actions.setState('web', 'a', 'drain', who);
    actions.setState('web', 'h', 'drain', who);
    await p.app.proxy.sync();
    for (let i = 0; i < 12; i++) expect((await get(p.url() + '/')).body).toBe('b');
    // Drain-then-remove waits for a request in flight on h (on whichever worker has it).
    actions.setState('web', 'h', 'ready', who);
    actions.setState('web', 'b', 'drain', who);
    await p.app.proxy.sync();
    const held = get(p.url() + '/');
    await expect.poll(() => h.held.length, { timeout: 5000 }).toBe(1);
    let removed = false;
    const removal = actions.remove('web', 'h', 10_000, who).then((r) => { removed = true; return r; });
    await p.app.proxy.sync();
    // The control plane sees the worker's in-flight request: the removal waits for it.
    expect(p.app.counters.backend(p.app.backends.get('web', 'h')!.id).cur).toBe(1);
    expect(removed).toBe(false);
    h.release();
    expect(await held).toEqual({ status: 200, body: 'h' });
    const r = await removal;
    expect(r.forced).toBe(false);
    expect(p.app.backends.get('web', 'h')).toBeUndefined();

    // maxconn 6 over two workers: the 7th open connection is refused, whichever worker accepts it.
    const socks = await Promise.all(Array.from({ length: 6 }, () => new Promise<import('node:net').Socket>((ok) => { const s = connect(p.port(), '127.0.0.1', () => ok(s)); s.on('error', () => {}); })));
    await expect.poll(() => p.app.proxy.guard.open, { timeout: 5000 }).toBe(6);
    const seventh = await new Promise<string>((ok) => { const s = connect(p.port(), '127.0.0.1'); s.on('close', () => ok('closed')); s.on('error', () => {}); s.write('GET / HTTP/1.1\r\nHost: x\r\n\r\n'); });
    expect(seventh).toBe('closed');
    await p.app.proxy.sync();
    expect(p.app.counters.listen('web').refusedConn).toBe(1);
    for (const s of socks) s.destroy();
    await expect.poll(() => p.app.proxy.guard.open, { timeout: 5000 }).toBe(0);
  });
});
