import { afterEach, describe, expect, it } from 'vitest';
import { startBackend } from '../helpers/backend.js';
import { startApp } from '../helpers/app.js';
import { RawClient } from '../helpers/raw-http.js';

/**
 * global.turn_budget through the real App (src/proxy/turn-budget.ts): 64 keep-alive connections
 * send at once, so one loop turn carries far more than 1 ms of requests and the rest are parked
 * for later turns. Every parked request must still be served exactly once, in order on its
 * connection, with the counters back to zero, and the parking is visible on the stats JSON.
 * The ordering itself is the unit test's (test/unit/turn-budget.test.ts); nothing here is timed.
 */
const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => { while (cleanups.length) await cleanups.pop()!(); });

describe('turn budget (global.turn_budget) with real connections', () => {
  it.each([0, 1])('workers %i: parked keep-alive requests are all served, in order, once', async (workers) => {
    const b = await startBackend('b', (req, res) => { res.writeHead(200, { 'content-length': req.url!.length }); res.end(req.url); return true; });
    cleanups.push(() => b.close());
    const p = await startApp(`global:\n  turn_budget: 1ms\nlisten:\n  - name: web\n    bind: 127.0.0.1:0\n    backends:\n      - name: b\n        address: ${b.address}\n        check: false\nstats:\n  bind: 127.0.0.1:0\n  auth: []\n`, { workers });
    cleanups.push(() => p.stop());
    const C = 64;
    const R = 6;
    const clients = Array.from({ length: C }, () => new RawClient(p.port()));
    cleanups.push(async () => { for (const c of clients) c.destroy(); });
    await Promise.all(clients.map((c) => c.ready));
    // Round r: every connection sends its r-th request at once; the next round starts when all answered.
    for (let r = 0; r < R; r++) {
      for (let i = 0; i < C; i++) clients[i].send(`GET /c${i}/r${r} HTTP/1.1\r\nHost: t\r\n\r\n`);
      const got = await Promise.all(clients.map((c) => c.next()));
      got.forEach((g, i) => { expect(g?.status).toBe(200); expect(g?.body).toBe(`/c${i}/r${r}`); });
    }
    expect(b.seen.length).toBe(C * R);
    const m = p.app.modules.find((x) => x.name === 'stats') as unknown as { address(): { port: number } };
    const base = `http://127.0.0.1:${m.address().port}`;
    const total = async () => (await (await fetch(base + '/stats.json')).json()).listens[0].total;
    await expect.poll(async () => (await total()).total, { timeout: 5000 }).toBe(C * R);
    const t = await total();
    expect(t.cur).toBe(0);
    // 64 requests read in one turn take well over 1 ms of work (≈ 30–150 µs each): some waited.
    expect(t.parked).toBeGreaterThan(0);
  });
});
