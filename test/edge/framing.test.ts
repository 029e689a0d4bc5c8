import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startBackend, type TestBackend } from '../helpers/backend.js';
import { FRONT_OF, startApp } from '../helpers/app.js';
import { RawConn, freshGet } from './harness.js';

/**
 * Requests that llhttp accepts but that another parser could read another way, found by the
 * differential test against HAProxy (differential.test.ts): pairlb refuses them before choosing a
 * backend. Raw bytes in; asserted: the client's status, nothing reached the backend, the
 * connection is closed (a second request on it gets nothing), another client is served, and the
 * refusal counts as the listen section's request error, never against the backend.
 */

const H = 'Host: diff.test\r\n';
const cases: [string, string, number][] = [
  ['Transfer-Encoding: gzip, chunked (unknown coding, RFC 9112 §6.1)', `POST /te HTTP/1.1\r\n${H}Transfer-Encoding: gzip, chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n`, 501],
  ['Transfer-Encoding: identity, chunked', `POST /te HTTP/1.1\r\n${H}Transfer-Encoding: identity, chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n`, 501],
  ['Transfer-Encoding: ,chunked', `POST /te HTTP/1.1\r\n${H}Transfer-Encoding: ,chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n`, 400],
  ['empty Transfer-Encoding', `POST /te HTTP/1.1\r\n${H}Transfer-Encoding: \r\n\r\n5\r\nhello\r\n0\r\n\r\n`, 400],
  ['two Transfer-Encoding lines identity + chunked', `POST /te HTTP/1.1\r\n${H}Transfer-Encoding: identity\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n`, 501],
  ['two Transfer-Encoding lines chunked + chunked', `POST /te HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n`, 400],
  ['414 then garbage: one answer only', `GET /${'a'.repeat(9000)} HTTP/1.1\r\n${H}\r\n\x00garbage\r\n\r\n`, 414],
  ['Transfer-Encoding on HTTP/1.0', `POST /te HTTP/1.0\r\n${H}Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n`, 400],
  ['Host with a space', 'GET /h HTTP/1.1\r\nHost: a b\r\n\r\n', 400],
  ['Host with a path', 'GET /h HTTP/1.1\r\nHost: a.test/x\r\n\r\n', 400],
  ['Host with a non-numeric port', 'GET /h HTTP/1.1\r\nHost: a.test:abc\r\n\r\n', 400],
  ['Host with userinfo', 'GET /h HTTP/1.1\r\nHost: user@a.test\r\n\r\n', 400],
  ['HTTP/1.1 without Host', 'GET /h HTTP/1.1\r\nX-A: 1\r\n\r\n', 400],
  ['HTTP/1.1 absolute-form without Host (RFC 9112 §3.2)', 'GET http://abs.test/p HTTP/1.1\r\n\r\n', 400],
  ['request line without version (HTTP/0.9)', `GET /\r\n${H}\r\n`, 505],
  ['HTTP/0.9', `GET / HTTP/0.9\r\n${H}\r\n`, 505],
  ['fragment in the target', `GET /a#frag HTTP/1.1\r\n${H}\r\n`, 400],
  ['Content-Length 9999999999999999999 (a double would send 10000000000000000000)', `POST /cl HTTP/1.1\r\n${H}Content-Length: 9999999999999999999\r\n\r\nhello`, 413],
];

describe.each(['undici', 'native'])('ambiguous framing is refused before any backend (engine %s)', (engine) => {
  let backend: TestBackend;
  /** What reached the backend since `from`, health checks left out. */
  const urls = (from: number): string[] => backend.seen.slice(from).map((s) => s.url).filter((u) => u !== '/__health');
  let p: Awaited<ReturnType<typeof startApp>>;
  beforeAll(async () => {
    backend = await startBackend('a');
    // check: true, so that a refusal counted against the backend would mark it DOWN (3 in a row).
    p = await startApp(`listen:\n  - name: web\n    bind: 127.0.0.1:0\n    engine: ${engine}\n    check: { interval: 10s, path: /__health }\n    backends:\n      - { name: a, address: "${backend.address}" }\n`, { front: FRONT_OF[engine] });
  });
  afterAll(async () => { await p.stop(); await backend.close(); });

  it.each(cases)('%s', async (_name, bytes, status) => {
    const before = backend.seen.length;
    const errReq = p.app.counters.listen('web').errReq;
    const c = new RawConn(p.port());
    c.write(bytes);
    expect(await c.until(() => c.reader.responses.length > 0, 3000)).toBe(true);
    expect(c.reader.responses[0].status).toBe(status);
    // The same connection: closed after the refusal, a second request gets nothing.
    c.write(`GET /second HTTP/1.1\r\n${H}\r\n`);
    await c.until(() => c.closed, 3000);
    expect(c.closed).toBe(true);
    expect(c.reader.responses).toHaveLength(1);
    expect(urls(before)).toEqual([]);
    expect(p.app.counters.listen('web').errReq).toBe(errReq + 1);
    // Another client: served by the backend, still UP.
    expect((await freshGet(p.port(), '/other'))?.body).toBe('a');
    expect(urls(0).at(-1)).toBe('/other');
    expect(p.app.backends.backends('web')[0].health).not.toBe('down');
  });

  it.each([
    ['an unknown transfer coding', `POST /te HTTP/1.1\r\n${H}Transfer-Encoding: gzip, chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n`, 501],
    // node:http's own 400 for this served the requests behind it after its Connection: close.
    ['HTTP/1.1 without Host', 'GET /nohost HTTP/1.1\r\nX-A: 1\r\n\r\n', 400],
  ])('a request pipelined behind a refused one (%s) is not forwarded', async (_n, first, status) => {
    const before = backend.seen.length;
    const c = new RawConn(p.port());
    c.write(`${first}GET /smuggled HTTP/1.1\r\n${H}\r\n`);
    await c.until(() => c.closed, 3000);
    expect(c.reader.responses.map((r) => r.status)).toEqual([status]);
    expect((await freshGet(p.port(), '/other'))?.body).toBe('a');
    expect(urls(before)).toEqual(['/other']);
  });

  it('a request followed by bytes that do not parse: its own response first, then 400, in order', async () => {
    const before = backend.seen.length;
    const c = new RawConn(p.port());
    c.write(`GET /first HTTP/1.1\r\n${H}\r\n\x00garbage\r\n\r\n`);
    await c.until(() => c.closed, 3000);
    expect(c.reader.responses.map((r) => [r.status, r.status === 200 ? r.body : ''])).toEqual([[200, 'a'], [400, '']]);
    expect(urls(before)).toEqual(['/first']);
  });

  it('Connection: host does not drop Host (the backend would get its own address instead)', async () => {
    const c = new RawConn(p.port());
    c.write(`GET /ch HTTP/1.1\r\n${H}Connection: host, x-drop\r\nX-Drop: 1\r\n\r\n`);
    expect(await c.until(() => c.reader.responses.length > 0, 3000)).toBe(true);
    c.destroy();
    const seen = backend.seen.filter((x) => x.url !== '/__health').at(-1)!;
    expect(seen.url).toBe('/ch');
    expect(seen.headers.host).toBe('diff.test');
    expect(seen.headers['x-drop']).toBeUndefined();
  });

  it('Content-Length with 15 digits is forwarded as sent (the request waits for its body)', async () => {
    const before = backend.seen.length;
    const c = new RawConn(p.port());
    c.write(`POST /cl15 HTTP/1.1\r\n${H}Content-Length: 999999999999999\r\n\r\nhello`);
    const end = Date.now() + 3000;
    while (urls(before).length === 0 && Date.now() < end) await new Promise((r) => setTimeout(r, 20));
    c.destroy();
    expect(backend.seen.slice(before).filter((s) => s.url !== '/__health').map((s) => [s.url, s.headers['content-length']])).toEqual([['/cl15', '999999999999999']]);
  });
});
