import { afterEach, describe, expect, it } from 'vitest';
import { request, type ServerResponse } from 'node:http';
import { connect } from 'node:net';
import { startBackend, type TestBackend } from '../helpers/backend.js';
import { startApp } from '../helpers/app.js';
import { startPairlb } from '../helpers/proc.js';
import type { WorkerPool } from '../../src/proxy/workers.js';

/**
 * Limits shared by every data-plane worker (src/proxy/shared-inflight.ts): a server's maxconn and
 * a frontend's maxconn hold over the whole process with `workers: 2`, not per worker, and a
 * worker that dies gives back what it held. The real `pairlb` process for the limits, the real
 * App with real worker threads for the crash (WorkerPool.kill).
 */
const cleanups: (() => Promise<unknown> | void)[] = [];
afterEach(async () => { while (cleanups.length) await cleanups.pop()!(); });

function get(port: number, path = '/'): Promise<{ status: number; body: string }> {
  return new Promise((ok, fail) => {
    const r = request({ host: '127.0.0.1', port, path, agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c) => (body += c));
      res.on('end', () => ok({ status: res.statusCode!, body }));
    });
    r.on('error', fail);
    r.end();
  });
}

async function backend(name: string, handler: Parameters<typeof startBackend>[1]): Promise<TestBackend> {
  const b = await startBackend(name, handler);
  cleanups.push(() => b.close());
  return b;
}

describe('limits shared by every worker (workers: 2)', () => {
  it('server maxconn 2, 50 concurrent slow requests over both workers: never more than 2 at the backend, none lost; frontend maxconn 3 admits exactly 3', async () => {
    let inFlight = 0, maxInFlight = 0;
    const be = await backend('a', (_req, res) => {
      maxInFlight = Math.max(maxInFlight, ++inFlight);
      // Slow: the answer leaves 20 ms later (the backend's behaviour, not a wait of the test).
      setTimeout(() => { inFlight--; res.end('a'); }, 20);
      return true;
    });
    const idle = await backend('i', () => false);
    const p = await startPairlb(`global:\n  workers: 2\n  log:\n    access: 'off'\nlisten:\n  - name: web\n    bind: 127.0.0.1:0\n    timeouts:\n      queue: 60s\n    backends:\n      - name: a\n        address: ${be.address}\n        check: false\n        maxconn: 2\n  - name: few\n    bind: 127.0.0.2:0\n    maxconn: 3\n    backends:\n      - name: i\n        address: ${idle.address}\n        check: false\nstats:\n  bind: 127.0.0.1:0\n  auth: []\n`, { startMs: 30_000 });
    cleanups.push(() => p.stop());
    const t0 = performance.now();
    const rs = await Promise.all(Array.from({ length: 50 }, (_, i) => get(p.port('web'), `/r${i}`)));
    const ms = performance.now() - t0;
    expect(rs.map((r) => r.status)).toEqual(Array(50).fill(200));
    expect(be.seen.map((s) => s.url).sort()).toEqual(Array.from({ length: 50 }, (_, i) => `/r${i}`).sort());
    expect(maxInFlight).toBe(2);
    // Both workers served some (50 connections spread by the kernel: all on one has odds 2^-49).
    const statsPort = (p.logs.find((l) => String(l.msg).startsWith('stats page listening')) as { address: { port: number } }).address.port;
    const js = await (await fetch(`http://127.0.0.1:${statsPort}/stats.json`)).json() as { workers: { requests: number }[] };
    expect(js.workers.filter((w) => w.requests > 0).length).toBe(2);
    console.log(`SHARED maxconn 2 over 2 workers: 50 × 20 ms requests in ${ms.toFixed(0)} ms (serial bound ${50 * 20 / 2} ms), backend max ${maxInFlight} at once, per worker ${js.workers.map((w) => w.requests).join('/')}`);

    // Frontend maxconn 3 over both workers (its own bind text: port-0 binds are matched across
    // workers by their text): 6 connections, exactly 3 answered, 3 closed unanswered.
    const socks = Array.from({ length: 6 }, () => connect(p.port('few'), '127.0.0.2'));
    cleanups.push(() => { for (const s of socks) s.destroy(); });
    const outcome = await Promise.all(socks.map((s) => new Promise<string>((ok) => {
      let got = '';
      s.on('connect', () => s.write('GET / HTTP/1.1\r\nHost: t\r\n\r\n'));
      s.on('data', (d) => { got += d; if (got.includes('\r\n\r\n')) ok('answered'); });
      s.on('error', () => {});
      s.on('close', () => ok(got ? 'answered' : 'closed'));
    })));
    expect(outcome.filter((o) => o === 'answered')).toHaveLength(3);
    expect(outcome.filter((o) => o === 'closed')).toHaveLength(3);
  });

  it('a worker that dies gives its slots back: after both workers are killed while holding the 2 slots, 2 new requests reach the backend', async () => {
    const held: ServerResponse[] = [];
    const h = await backend('h', (_req, res) => { held.push(res); return true; });
    const p = await startApp(`listen:\n  - name: web\n    bind: 127.0.0.1:0\n    timeouts:\n      queue: 60s\n    backends:\n      - name: h\n        address: ${h.address}\n        check: false\n        maxconn: 2\n`, { workers: 2 });
    cleanups.push(() => p.stop());
    const pool = p.app.proxy as WorkerPool;
    const slotOf = () => pool.inflight.inflight((pool as unknown as { alloc: { slotOf(k: string): number } }).alloc.slotOf('s:' + p.app.backends.get('web', 'h')!.id));
    // Two requests hold both slots (on whichever workers the kernel chose); a third waits.
    const first = Array.from({ length: 3 }, () => get(p.port()).then((r) => r.status, () => 'failed' as const));
    await expect.poll(() => held.length, { timeout: 5000 }).toBe(2);
    expect(slotOf()).toBe(2);
    for (const i of [0, 1]) {
      const before = pool.workers()[i].restarts;
      await pool.kill(i);
      await expect.poll(() => pool.workers()[i].restarts, { timeout: 5000 }).toBe(before + 1);
      await expect.poll(() => pool.workers()[i].state, { timeout: 10_000 }).toBe('ready');
    }
    // Every request of the first batch died with its worker; nothing is held any more.
    expect(await Promise.all(first)).toEqual(['failed', 'failed', 'failed']);
    expect(slotOf()).toBe(0);
    for (const r of held.splice(0)) r.destroy();
    // Both slots are free: two new requests reach the backend at once, a third waits for one.
    const second = Array.from({ length: 3 }, () => get(p.port()));
    await expect.poll(() => held.length, { timeout: 5000 }).toBe(2);
    expect(slotOf()).toBe(2);
    held.shift()!.end('h');
    await expect.poll(() => held.length, { timeout: 5000 }).toBe(2);
    for (const r of held.splice(0)) r.end('h');
    expect((await Promise.all(second)).map((r) => r.status)).toEqual([200, 200, 200]);
    await expect.poll(() => slotOf(), { timeout: 5000 }).toBe(0);
  });
});
