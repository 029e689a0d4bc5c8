import { afterEach, describe, expect, it } from 'vitest';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { FRONT_OF, startApp } from '../helpers/app.js';
import { RawClient, waitUntil } from './stream-helpers.js';

/**
 * Issue 10 item 6: pipelining amplification. One client connection's requests are served one at a
 * time, in order (as HAProxy does): 500 pipelined GETs in one write must never become 500
 * concurrent backend requests on 500 backend connections.
 */

const N = 500;

describe.each(['undici', 'native'])('pipelined requests (engine %s)', (engine) => {
  const cleanups: (() => Promise<void>)[] = [];
  afterEach(async () => { while (cleanups.length) await cleanups.pop()!(); });

  it('500 pipelined GETs in one write: one at a time on one backend connection, all answered in order; another client is served meanwhile', async () => {
    let inflight = 0;
    let maxInflight = 0;
    let connections = 0;
    const order: string[] = [];
    // /250 of the pipelined client is held until the other client's request has been answered:
    // the other client must not wait behind the pipeline.
    let releaseHeld!: () => void;
    const otherServed = new Promise<void>((ok) => { releaseHeld = ok; });
    const backend = createServer((req: IncomingMessage, res: ServerResponse) => {
      inflight++;
      maxInflight = Math.max(maxInflight, req.url === '/other' ? 0 : inflight);
      order.push(req.url!);
      const answer = () => {
        const body = `answer ${req.url}`;
        inflight--;
        res.writeHead(200, { 'content-type': 'text/plain', 'content-length': Buffer.byteLength(body) });
        res.end(body);
      };
      if (req.url === '/p250') void otherServed.then(answer);
      // Answer on a later turn so that concurrent requests, were there any, would overlap.
      else setImmediate(answer);
    });
    backend.on('connection', () => { connections++; });
    await new Promise<void>((ok) => backend.listen(0, '127.0.0.1', () => ok()));
    cleanups.push(() => new Promise<void>((ok) => { backend.close(() => ok()); backend.closeAllConnections(); }));
    const bport = (backend.address() as AddressInfo).port;

    const p = await startApp(`listen:\n  - name: web\n    bind: 127.0.0.1:0\n    engine: ${engine}\n    backends:\n      - name: a\n        address: 127.0.0.1:${bport}\n        check: false\n`, { front: FRONT_OF[engine] });
    cleanups.push(() => p.stop());

    const c = new RawClient(p.port());
    cleanups.push(async () => c.destroy());
    let burst = '';
    for (let i = 0; i < N; i++) burst += `GET /p${i} HTTP/1.1\r\nHost: x\r\n\r\n`;
    await c.write(burst);

    // The pipeline reaches /p250 (held); another client on another connection is served at once.
    await waitUntil(() => order.includes('/p250'), 20_000, 'the backend to get /p250');
    const before = c.responses().length;
    expect(before).toBe(250);
    const other = new RawClient(p.port());
    cleanups.push(async () => other.destroy());
    await other.write('GET /other HTTP/1.1\r\nHost: x\r\n\r\n');
    const [o] = await other.waitResponses(1);
    expect(o.status).toBe(200);
    expect(o.body).toBe('answer /other');
    releaseHeld();

    const rs = await c.waitResponses(N, 30_000);
    expect(rs).toHaveLength(N);
    for (let i = 0; i < N; i++) {
      expect(rs[i].status).toBe(200);
      expect(rs[i].body).toBe(`answer /p${i}`);
    }
    // What the backend saw from the pipelined client: one request at a time, in order, one connection.
    expect(maxInflight).toBe(1);
    expect(order.filter((u) => u !== '/other')).toEqual(Array.from({ length: N }, (_, i) => `/p${i}`));
    // The pipelined client's requests went over one keep-alive connection, the other client's
    // concurrent request over a second one.
    expect(connections).toBe(2);

    // The same connection still works afterwards.
    await c.write('GET /after HTTP/1.1\r\nHost: x\r\n\r\n');
    const all = await c.waitResponses(N + 1);
    expect(all[N].body).toBe('answer /after');
    expect(c.closed).toBe(false);
  });

  it('the queue is bounded: with the first request held, pairlb stops reading a 20 MB pipeline, then answers every request in order', async () => {
    let releaseHeld!: () => void;
    const held = new Promise<void>((ok) => { releaseHeld = ok; });
    const order: string[] = [];
    const backend = createServer((req, res) => {
      order.push(req.url!);
      const answer = () => { const b = `answer ${req.url}`; res.writeHead(200, { 'content-length': b.length }); res.end(b); };
      if (req.url === '/q0') void held.then(answer); else answer();
    });
    await new Promise<void>((ok) => backend.listen(0, '127.0.0.1', () => ok()));
    cleanups.push(() => new Promise<void>((ok) => { backend.close(() => ok()); backend.closeAllConnections(); }));
    const bport = (backend.address() as AddressInfo).port;
    const p = await startApp(`listen:\n  - name: web\n    bind: 127.0.0.1:0\n    engine: ${engine}\n    backends:\n      - name: a\n        address: 127.0.0.1:${bport}\n        check: false\n`, { front: FRONT_OF[engine] });
    cleanups.push(() => p.stop());
    let parsed = 0;
    p.app.proxy.listeners.get('web')!.server!.on('request', () => { parsed++; });

    const M = 2000;
    const pad = 'x'.repeat(10_000);
    let burst = '';
    for (let i = 0; i < M; i++) burst += `GET /q${i} HTTP/1.1\r\nHost: x\r\nX-Pad: ${pad}\r\n\r\n`;
    const c = new RawClient(p.port());
    cleanups.push(async () => c.destroy());
    await c.write('GET /q0 HTTP/1.1\r\nHost: x\r\n\r\n');
    c.sock.write(burst.slice(burst.indexOf('GET /q1 ')));
    await waitUntil(() => order.includes('/q0'), 10_000, 'the backend to get /q0');
    // While /q0 is held the queue fills (64 entries = 32 requests) and reading stops: what node:http
    // parsed stays within the queue plus one read chunk (64 KiB = 6 of these requests), through a
    // bounded observation window; the client is left with most of its 20 MB unsent.
    for (let i = 0; i < 20; i++) {
      expect(parsed).toBeLessThanOrEqual(2 * 32 + 20);
      await new Promise((r) => setTimeout(r, 50));
    }
    expect(c.sock.writableLength).toBeGreaterThan(1 << 20);
    expect(order).toEqual(['/q0']);
    releaseHeld();
    const rs = await c.waitResponses(M, 60_000);
    expect(rs).toHaveLength(M);
    for (let i = 0; i < M; i++) expect(rs[i].body).toBe(`answer /q${i}`);
    expect(order).toEqual(Array.from({ length: M }, (_, i) => `/q${i}`));
  });

  it('a pipelined request behind a slow one waits for it: the backend never has two of them at once', async () => {
    // Bodies included: the second request's body is parsed while the first is in flight.
    const seen: { url: string; body: string; at: number }[] = [];
    let inflight = 0;
    let maxInflight = 0;
    const backend = createServer((req, res) => {
      inflight++;
      maxInflight = Math.max(maxInflight, inflight);
      const chunks: Buffer[] = [];
      req.on('data', (d: Buffer) => chunks.push(d));
      req.on('end', () => {
        seen.push({ url: req.url!, body: Buffer.concat(chunks).toString(), at: inflight });
        const done = () => { inflight--; const b = `got ${req.url}`; res.writeHead(200, { 'content-length': b.length }); res.end(b); };
        if (req.url === '/slow') setTimeout(done, 200); else done();
      });
    });
    await new Promise<void>((ok) => backend.listen(0, '127.0.0.1', () => ok()));
    cleanups.push(() => new Promise<void>((ok) => { backend.close(() => ok()); backend.closeAllConnections(); }));
    const bport = (backend.address() as AddressInfo).port;
    const p = await startApp(`listen:\n  - name: web\n    bind: 127.0.0.1:0\n    engine: ${engine}\n    backends:\n      - name: a\n        address: 127.0.0.1:${bport}\n        check: false\n`, { front: FRONT_OF[engine] });
    cleanups.push(() => p.stop());

    const c = new RawClient(p.port());
    cleanups.push(async () => c.destroy());
    await c.write('POST /slow HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nonePOST /fast HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\ntwo\r\n0\r\n\r\nGET /last HTTP/1.1\r\nHost: x\r\n\r\n');
    const rs = await c.waitResponses(3);
    expect(rs.map((r) => r.body)).toEqual(['got /slow', 'got /fast', 'got /last']);
    expect(seen.map((s) => `${s.url}:${s.body}`)).toEqual(['/slow:one', '/fast:two', '/last:']);
    expect(maxInflight).toBe(1);
  });
});
