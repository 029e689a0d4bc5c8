import { FRONT_OF } from '../helpers/app.js';
import { afterEach, describe, expect, it } from 'vitest';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { RawClient, startAppLogged, waitUntil } from './stream-helpers.js';

/**
 * Issue 10 item 5: a request body that stalls (`Content-Length: 100000` then nothing) or drips (one
 * byte at a time) must not hold the client and a backend connection for ever. Test config:
 * `timeouts.client_body: 1s`, `min_body_rate` at its default (500 B/s). The backend is checked and
 * one passive error would take it DOWN: a client's timeout must never count against it.
 */

interface Rec { url: string; bytes: number; complete: boolean; aborted: boolean }

describe.each(['undici', 'native'])('request body timeout (engine %s)', (engine) => {
  const cleanups: (() => Promise<void>)[] = [];
  afterEach(async () => { while (cleanups.length) await cleanups.pop()!(); });

  async function setup() {
    const recs: Rec[] = [];
    const backend = createServer((req: IncomingMessage, res: ServerResponse) => {
      const rec: Rec = { url: req.url!, bytes: 0, complete: false, aborted: false };
      if (req.url !== '/') recs.push(rec);
      req.on('close', () => { if (!rec.complete) rec.aborted = true; });
      if (req.url === '/early') {
        // The response starts before the body is complete.
        res.writeHead(200, { 'content-type': 'text/plain' });
        res.write('started\n');
      }
      const read = () => {
        req.on('data', (d: Buffer) => { rec.bytes += d.length; });
        req.on('end', () => {
          rec.complete = true;
          if (req.url === '/early') { res.end('done\n'); return; }
          const body = `got ${rec.bytes}`;
          res.writeHead(200, { 'content-type': 'text/plain', 'content-length': body.length });
          res.end(body);
        });
        req.resume();
      };
      // /slowread: the backend does not read the body for 2.5 s (backpressure, not the client's fault).
      if (req.url === '/slowread') { req.pause(); setTimeout(read, 2500); } else read();
    });
    await new Promise<void>((ok) => backend.listen(0, '127.0.0.1', () => ok()));
    cleanups.push(() => new Promise<void>((ok) => { backend.close(() => ok()); backend.closeAllConnections(); }));
    const bport = (backend.address() as AddressInfo).port;
    const p = await startAppLogged(`listen:
  - name: web
    bind: 127.0.0.1:0
    engine: ${engine}
    timeouts:
      client_body: 1s
    passive:
      connect_errors: 1
      http_5xx: 1
    check:
      interval: 200ms
    backends:
      - name: a
        address: 127.0.0.1:${bport}
`, FRONT_OF[engine]);
    cleanups.push(() => p.stop());
    const b = p.app.backends.backends('web')[0];
    const lc = p.app.counters.listen('web');
    const bc = p.app.counters.backend(b.id);
    /** The backend is UP, nothing was counted against it, another client is served. */
    const healthy = async () => {
      expect(p.app.backends.backends('web')[0].health).toBe('up');
      expect(bc.errResp).toBe(0);
      expect(bc.errConn).toBe(0);
      const o = new RawClient(p.port());
      cleanups.push(async () => o.destroy());
      await o.write('POST /other HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nok');
      const [r] = await o.waitResponses(1);
      expect(r.status).toBe(200);
      expect(r.body).toBe('got 2');
    };
    return { recs, p, lc, bc, healthy };
  }

  it('a stalled body (Content-Length: 100000, 10 bytes, then nothing) gets 408 and a close within the timeout; the backend request is aborted', async () => {
    const { recs, p, lc, healthy } = await setup();
    const c = new RawClient(p.port());
    cleanups.push(async () => c.destroy());
    await c.write('POST /up HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n0123456789');
    const t0 = performance.now();
    const [r] = await c.waitResponses(1, 15_000);
    const waited = performance.now() - t0;
    expect(r.status).toBe(408);
    expect(r.headers.connection).toBe('close');
    await c.waitClosed();
    // Never before the timeout (1 s; the check ticks every 250 ms).
    expect(waited).toBeGreaterThanOrEqual(950);
    // The backend got the request and saw it aborted: its connection is not held.
    await waitUntil(() => recs.length === 1 && recs[0].aborted, 10_000, 'the backend to see its request aborted');
    expect(recs[0]).toMatchObject({ url: '/up', complete: false });
    expect(recs[0].bytes).toBeLessThanOrEqual(10);
    expect(lc.errReq).toBe(1);
    await waitUntil(() => p.access().some((j) => j.uri === '/up'), 5000, 'the access-log line');
    expect(p.access().find((j) => j.uri === '/up')).toMatchObject({ status: 408, termination: 'cR', server: 'a' });
    await healthy();
  });

  it('a dripping body (one byte every 200 ms: never idle for 1 s) is cut by the minimum rate', async () => {
    const { recs, p, healthy } = await setup();
    const c = new RawClient(p.port());
    cleanups.push(async () => c.destroy());
    await c.write('POST /up HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n');
    let sent = 0;
    // Bounded: 75 bytes = 15 s at most.
    while (!c.closed && c.responses().length === 0 && sent < 75) {
      await c.write('x');
      sent++;
      await new Promise((r) => setTimeout(r, 200));
    }
    const [r] = await c.waitResponses(1, 5000);
    expect(r.status).toBe(408);
    await c.waitClosed();
    // 1 s grace + 2 ms per byte received: cut after about 5 bytes, long before the 75-byte bound.
    expect(sent).toBeLessThan(50);
    await waitUntil(() => recs.length === 1 && recs[0].aborted, 10_000, 'the backend to see its request aborted');
    expect(recs[0].complete).toBe(false);
    await waitUntil(() => p.access().some((j) => j.uri === '/up'), 5000, 'the access-log line');
    expect(p.access().find((j) => j.uri === '/up')).toMatchObject({ status: 408, termination: 'cR' });
    await healthy();
  });

  it('a slow but steady body (1000 bytes every 100 ms for 2 s, longer than the idle timeout) completes', async () => {
    const { recs, p, lc, healthy } = await setup();
    const c = new RawClient(p.port());
    cleanups.push(async () => c.destroy());
    await c.write('POST /up HTTP/1.1\r\nHost: x\r\nContent-Length: 20000\r\n\r\n');
    for (let i = 0; i < 20; i++) {
      await new Promise((r) => setTimeout(r, 100));
      await c.write('y'.repeat(1000));
    }
    const [r] = await c.waitResponses(1, 15_000);
    expect(r.status).toBe(200);
    expect(r.body).toBe('got 20000');
    expect(recs[0]).toMatchObject({ url: '/up', bytes: 20000, complete: true, aborted: false });
    expect(lc.errReq).toBe(0);
    // The connection goes on.
    await c.write('POST /up HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc');
    const rs = await c.waitResponses(2);
    expect(rs[1].body).toBe('got 3');
    await healthy();
  });

  it('a body that stalls after the response started: the connection is closed (cD), the backend request aborted', async () => {
    const { recs, p, healthy } = await setup();
    const c = new RawClient(p.port());
    cleanups.push(async () => c.destroy());
    await c.write('POST /early HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n0123456789');
    await waitUntil(() => c.text().includes('started'), 10_000, 'the start of the response');
    await c.waitClosed();
    expect(c.text()).toMatch(/^HTTP\/1.1 200/);
    // Cut: the chunked response never got its last chunk.
    expect(c.text()).not.toContain('0\r\n\r\n');
    expect(c.text()).not.toContain('done');
    await waitUntil(() => recs.length === 1 && recs[0].aborted, 10_000, 'the backend to see its request aborted');
    await waitUntil(() => p.access().some((j) => j.uri === '/early'), 5000, 'the access-log line');
    expect(p.access().find((j) => j.uri === '/early')).toMatchObject({ status: 200, termination: 'cD' });
    await healthy();
  });

  it('a backend that does not read the body for 2.5 s is not blamed on the client: a 48 MiB upload stalled by it completes', async () => {
    const { recs, p, lc, healthy } = await setup();
    const c = new RawClient(p.port());
    cleanups.push(async () => c.destroy());
    const total = 48 << 20;
    const chunk = Buffer.alloc(64 << 10, 'z');
    await c.write(`POST /slowread HTTP/1.1\r\nHost: x\r\nContent-Length: ${total}\r\n\r\n`);
    let longestStall = 0;
    for (let sent = 0; sent < total; sent += chunk.length) {
      if (c.closed) break;
      if (!c.sock.write(chunk)) {
        const t = performance.now();
        // Bounded: a stall longer than 20 s fails the test below.
        await new Promise<void>((ok) => { c.sock.once('drain', ok); c.sock.once('close', ok); setTimeout(ok, 20_000).unref(); });
        longestStall = Math.max(longestStall, performance.now() - t);
      }
    }
    const [r] = await c.waitResponses(1, 30_000);
    expect(r.status).toBe(200);
    expect(r.body).toBe(`got ${total}`);
    expect(recs[0]).toMatchObject({ url: '/slowread', bytes: total, complete: true });
    // The client really was held up for longer than client_body, by the backend.
    expect(longestStall).toBeGreaterThan(1200);
    expect(lc.errReq).toBe(0);
    await healthy();
  });
});
