import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connect as h2connect, type ClientHttp2Session, type OutgoingHttpHeaders } from 'node:http2';
import { startApp } from '../helpers/app.js';
import { startBackend, type TestBackend } from '../helpers/backend.js';
import { h2Request } from '../helpers/h2-request.js';

/**
 * The two HTTP/1.1 behaviours parity.test.ts does not cover, over HTTP/2 streams (issue 16):
 * cookie stickiness in prefix mode (`cookie JSESSIONID prefix`: the server id prefixed towards the
 * client, stripped towards the app) and health-driven routing (a server its active check takes
 * DOWN gets no stream; back UP, it gets streams again). In-process App, h2c on a plain bind, the
 * data plane in this thread and in two workers.
 */
describe.each([0, 2])('HTTP/2: sticky prefix and health-driven routing (workers %d)', (workers) => {
  let pa: TestBackend; let pb: TestBackend; let h1: TestBackend; let h2: TestBackend;
  let sick = false;
  let p: Awaited<ReturnType<typeof startApp>>;
  let s: ClientHttp2Session;

  beforeAll(async () => {
    const app = (n: string) => startBackend(n, (req, res) => {
      res.writeHead(200, { 'set-cookie': [`JSESSIONID=${n}-sess; Path=/app`, 'other=1'], 'content-length': n.length });
      res.end(n);
    });
    pa = await app('pa'); pb = await app('pb');
    h1 = await startBackend('h1');
    h2 = await startBackend('h2', (req, res) => {
      if (req.url !== '/health' || !sick) return false;
      res.writeHead(503, { 'content-length': '4' }).end('sick');
      return true;
    });
    p = await startApp(`frontends:
  - name: fe
    bind: 127.0.0.1:0
    h2c: true
    rules:
      - when: { host: [pre.test] }
        backend: pre
    default_backend: hc
backends:
  - name: pre
    cookie: { name: JSESSIONID, mode: prefix }
    servers:
      - { name: pa, address: ${pa.address}, cookie: ka, check: false }
      - { name: pb, address: ${pb.address}, cookie: kb, check: false }
  - name: hc
    check: { type: http, path: /health, interval: 100ms, timeout: 500ms, rise: 1, fall: 1 }
    servers:
      - { name: h1, address: ${h1.address} }
      - { name: h2, address: ${h2.address} }
`, { workers });
    s = h2connect(`http://127.0.0.1:${p.port('fe')}`);
    s.on('error', () => {});
  });

  afterAll(async () => {
    s?.close();
    await p?.stop();
    for (const b of [pa, pb, h1, h2]) await b?.close();
  });

  const get = (path: string, host: string, extra: OutgoingHttpHeaders = {}) => h2Request(s, { ':method': 'GET', ':path': path, ':authority': host, ...extra });

  it('cookie prefix: the app cookie is prefixed with the server id towards the client and stripped towards the app', async () => {
    const first = await get('/app', 'pre.test');
    const id = first.body === 'pa' ? 'ka' : 'kb';
    expect(first.headers['set-cookie']).toEqual([`JSESSIONID=${id}~${first.body}-sess; Path=/app`, 'other=1']);
    // A client holding pb's session stays on pb, whatever round robin would say; pb sees its own cookie.
    const rs = await Promise.all(Array.from({ length: 6 }, () => get('/app', 'pre.test', { cookie: 'JSESSIONID=kb~pb-sess; z=9' })));
    expect(rs.map((r) => r.body)).toEqual(Array(6).fill('pb'));
    expect(pb.seen.at(-1)!.headers.cookie).toBe('JSESSIONID=pb-sess; z=9');
    expect(rs[0].headers['set-cookie']).toEqual(['JSESSIONID=kb~pb-sess; Path=/app', 'other=1']);
  });

  it('a server its check takes DOWN gets no stream; back UP, it gets streams again', async () => {
    const state = (n: string) => p.app.backends.get('hc', n)!.health;
    await expect.poll(() => [state('h1'), state('h2')], { timeout: 10_000 }).toEqual(['up', 'up']);
    const both = await Promise.all(Array.from({ length: 8 }, (_, i) => get(`/up/${i}`, 'a.test')));
    expect(new Set(both.map((r) => r.body))).toEqual(new Set(['h1', 'h2']));

    sick = true;
    await expect.poll(() => state('h2'), { timeout: 10_000 }).toBe('down');
    await p.app.proxy.sync(); // the snapshot without h2 has reached every worker
    const before = h2.seen.filter((r) => r.url !== '/health').length;
    const down = await Promise.all(Array.from({ length: 12 }, (_, i) => get(`/down/${i}`, 'a.test')));
    expect(down.map((r) => [r.status, r.body])).toEqual(Array(12).fill([200, 'h1']));
    expect(h2.seen.filter((r) => r.url !== '/health').length).toBe(before);

    sick = false;
    await expect.poll(() => state('h2'), { timeout: 10_000 }).toBe('up');
    await p.app.proxy.sync();
    const again = await Promise.all(Array.from({ length: 8 }, (_, i) => get(`/again/${i}`, 'a.test')));
    expect(again.some((r) => r.body === 'h2')).toBe(true);
  });
});
