import { afterEach, describe, expect, it } from 'vitest';
import { startApp, type Front } from '../helpers/app.js';
import { RawClient, rawBackend, type RawBackend, type Responder } from '../helpers/raw-http.js';

/**
 * What the lean HTTP/1 front (src/proxy/front/h1.ts) does itself, on both fronts: the exact bytes
 * each side gets, a second request on the same connection, another client. (The raw-byte edge
 * suites in test/edge run on both fronts too: FRONT_OF in test/helpers/app.ts.)
 */
describe.each(['lean', 'node'] as Front[])('HTTP/1 front %s', (front) => {
  const cleanups: (() => Promise<void> | void)[] = [];
  afterEach(async () => { while (cleanups.length) await cleanups.pop()!(); });

  async function setup(respond?: Responder): Promise<{ b: RawBackend; port: number }> {
    const b = await rawBackend('a', respond);
    cleanups.push(() => b.close());
    const p = await startApp(`listen:\n  - name: web\n    bind: 127.0.0.1:0\n    engine: native\n    forwardfor:\n      enabled: false\n    backends:\n      - name: a\n        address: ${b.address}\n        check: false\n`, { front });
    cleanups.push(() => p.stop());
    return { b, port: p.port() };
  }
  function client(port: number): RawClient {
    const c = new RawClient(port);
    cleanups.push(() => c.destroy());
    return c;
  }
  const GET = (path: string) => `GET ${path} HTTP/1.1\r\nHost: app.example\r\n\r\n`;

  it('Expect: 100-continue: the 100 comes before the body is sent, the backend gets the body without Expect; then the same connection and another client', async () => {
    const { b, port } = await setup();
    const c = client(port);
    c.send('POST /up HTTP/1.1\r\nHost: app.example\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n');
    // The client waits for the 100 (as curl does) before it sends a byte of the body.
    await c.ready;
    const deadline = Date.now() + 10_000;
    while (!c.pending().includes('\r\n\r\n') && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
    expect(c.pending()).toBe('HTTP/1.1 100 Continue\r\n\r\n');
    expect(b.requests).toHaveLength(0);
    c.send('hello');
    const r = await c.next();
    expect([r?.status, r?.body, r?.informational]).toEqual([200, 'a 1', ['HTTP/1.1 100 Continue']]);
    expect(b.requests.map((x) => x.raw)).toEqual(['POST /up HTTP/1.1\r\nHost: app.example\r\nContent-Length: 5\r\n\r\nhello']);
    c.send(GET('/next'));
    expect((await c.next())?.body).toBe('a 2');
    const d = client(port);
    d.send(GET('/other'));
    expect((await d.next())?.body).toBe('a 3');
  });

  it('a 100-continue pipelined behind another request gets its 100 after the first response (never inside it)', async () => {
    const { b, port } = await setup((r, n) => ({ bytes: `HTTP/1.1 200 OK\r\nContent-Length: ${`${r.target} ${n}`.length}\r\n\r\n${r.target} ${n}` }));
    const c = client(port);
    c.send(GET('/slow') + 'POST /up HTTP/1.1\r\nHost: app.example\r\nContent-Length: 2\r\nExpect: 100-continue\r\n\r\n');
    const first = await c.next();
    expect(first?.body).toBe('/slow 1');
    expect(first?.informational).toEqual([]);
    c.send('hi');
    const second = await c.next();
    expect([second?.status, second?.body, second?.informational]).toEqual([200, '/up 2', ['HTTP/1.1 100 Continue']]);
    expect(b.requests.map((x) => x.body)).toEqual(['', 'hi']);
  });

  it('an Expect other than 100-continue gets 417 and reaches no backend; the connection serves the next request', async () => {
    const { b, port } = await setup();
    const c = client(port);
    c.send('GET /x HTTP/1.1\r\nHost: app.example\r\nExpect: 200-ok\r\n\r\n');
    const r = await c.next();
    expect(r?.status).toBe(417);
    expect(b.requests).toHaveLength(0);
    c.send(GET('/after'));
    expect((await c.next())?.body).toBe('a 1');
    expect(b.requests.map((x) => x.target)).toEqual(['/after']);
  });

  it('a head of 60 header lines sent one byte at a time arrives exactly, target included (llhttp flushes lines before the end)', async () => {
    const { b, port } = await setup();
    const c = client(port);
    const lines = Array.from({ length: 60 }, (_, i) => `X-Line-${i}: v${i}`);
    const head = `GET /many?q=${'z'.repeat(300)} HTTP/1.1\r\nHost: app.example\r\n${lines.map((l) => l + '\r\n').join('')}\r\n`;
    await c.ready;
    for (const ch of head) c.send(ch);
    const r = await c.next();
    expect(r?.status).toBe(200);
    expect(b.requests.map((x) => x.raw)).toEqual([head]);
    c.send(GET('/two'));
    expect((await c.next())?.body).toBe('a 2');
    expect(b.requests[1].raw).toBe(GET('/two'));
  });

  it('a chunked upload with trailers: the body arrives re-framed, the trailers go nowhere (not into the next request)', async () => {
    const { b, port } = await setup();
    const c = client(port);
    c.send('POST /t HTTP/1.1\r\nHost: app.example\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\nX-Trailer: 1\r\n\r\n' + GET('/next'));
    expect((await c.next())?.body).toBe('a 1');
    expect((await c.next())?.body).toBe('a 2');
    expect(b.requests.map((x) => [x.target, x.body, x.headers.map(([k]) => k.toLowerCase())])).toEqual([
      ['/t', 'hello', ['host', 'transfer-encoding']],
      ['/next', '', ['host']],
    ]);
  });

  it('a response without a length goes out chunked to HTTP/1.1 and close-delimited to HTTP/1.0; HEAD gets the head only', async () => {
    const { port } = await setup((r) => ({ bytes: 'HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nstream ' + r.target, close: true }));
    const c = client(port);
    c.send(GET('/a'));
    const r = await c.next();
    expect([r?.status, r?.headers['transfer-encoding'], r?.headers.connection, r?.body]).toEqual([200, 'chunked', 'keep-alive', 'stream /a']);
    c.send(GET('/b'));
    expect((await c.next())?.body).toBe('stream /b');
    const old = client(port);
    old.send('GET /c HTTP/1.0\r\nHost: app.example\r\n\r\n');
    const r0 = await old.next();
    expect([r0?.headers['transfer-encoding'], r0?.headers.connection, r0?.body]).toEqual([undefined, 'close', 'stream /c']);
    await old.waitClosed();
    const h = client(port);
    h.send('HEAD /d HTTP/1.1\r\nHost: app.example\r\n\r\n');
    const rh = await h.next({ head: true });
    expect(rh?.status).toBe(200);
    h.send(GET('/e'));
    expect((await h.next())?.body).toBe('stream /e');
  });
});
