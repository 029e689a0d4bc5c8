import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connect as h2connect, type ClientHttp2Session } from 'node:http2';
import { connect as tlsConnect } from 'node:tls';
import { request as httpsRequest } from 'node:https';
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { rawBackend, rawOnce, type RawBackend, type RawRequest } from '../helpers/raw-http.js';
import { startPairlb, type PairlbProc } from '../helpers/proc.js';
import { makeCa, makeLeaf, type Ca, type Leaf } from '../helpers/certs.js';
import { ensurePackages } from '../helpers/sys.js';
import { H2Conn, fieldBlock, headers, data } from '../helpers/h2-frames.js';
import { h2Request as get, type H2Answer as Answer } from '../helpers/h2-request.js';
import { ensureBuilt } from '../daemon/daemon.js';

/**
 * HTTP/2 to clients, HTTP/1.1 to the backend (issue 16): the real `pairlb` process, real clients
 * (node:http2, curl, nghttp, raw frames for what those refuse to send), a raw recording backend
 * that keeps the exact request head it received.
 */

const run = promisify(execFile);
let dir: string;
let ca: Ca;
let leaf: Leaf;
let b1: RawBackend;
let lb: PairlbProc;
let tlsPort: number;
let plainPort: number;
const NAME = 'a.example.test';

/** The backend answers with two Set-Cookie fields and connection-specific fields that must not reach an h2 client. */
const respond = (r: RawRequest, n: number) => {
  const body = `b1 ${n} ${r.method} ${r.target}`;
  return { bytes: `HTTP/1.1 200 OK\r\nSet-Cookie: s=1\r\nSet-Cookie: t=2\r\nConnection: keep-alive, X-Hop\r\nKeep-Alive: timeout=5\r\nX-Hop: secret\r\nX-Kept: yes\r\nContent-Length: ${body.length}\r\n\r\n${body}` };
};

beforeAll(async () => {
  ensureBuilt();
  ensurePackages(['curl', 'nghttp2-client']);
  dir = mkdtempSync(join(tmpdir(), 'h2c-core-'));
  ca = makeCa(join(dir, 'ca'));
  leaf = makeLeaf(ca, 'a', [NAME]);
  b1 = await rawBackend('b1', respond);
  lb = await startPairlb(`listen:
  - name: web
    bind: 127.0.0.1:0
    h2: true
    tls: { certificates: [${leaf.bundle}] }
    forwardfor: { forwarded: true }
    backends: [ { name: b1, address: ${b1.address}, check: false } ]
  - name: plain
    bind: 127.0.0.1:0
    h2c: true
    backends: [ { name: b1, address: ${b1.address}, check: false } ]
`, { dir });
  tlsPort = lb.port('web');
  plainPort = lb.port('plain');
});

afterAll(async () => {
  await lb?.stop();
  await b1?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

function session(port = tlsPort): ClientHttp2Session {
  const s = port === tlsPort
    ? h2connect(`https://${NAME}:${port}`, { ca: readFileSync(ca.rootCert), host: '127.0.0.1', servername: NAME } as never)
    : h2connect(`http://127.0.0.1:${port}`);
  s.on('error', () => {});
  return s;
}


const field = (r: RawRequest, name: string) => r.headers.filter(([k]) => k.toLowerCase() === name).map(([, v]) => v);
const byTarget = (t: string) => b1.requests.find((r) => r.target === t);

describe('HTTP/2 over TLS (ALPN h2)', () => {
  it('ALPN picks h2 when offered, http/1.1 otherwise (and HTTP/1.1 is served as before)', async () => {
    const alpn = (protos: string[]) => new Promise<string | false>((ok, fail) => {
      const s = tlsConnect({ host: '127.0.0.1', port: tlsPort, servername: NAME, ca: readFileSync(ca.rootCert), ALPNProtocols: protos }, () => { const p = s.alpnProtocol; s.end(); ok(p); });
      s.on('error', fail);
    });
    expect(await alpn(['h2', 'http/1.1'])).toBe('h2');
    expect(await alpn(['http/1.1', 'h2'])).toBe('h2');
    expect(await alpn(['http/1.1'])).toBe('http/1.1');
    const h1 = await new Promise<{ status: number; body: string }>((ok, fail) => {
      const r = httpsRequest({ host: '127.0.0.1', port: tlsPort, servername: NAME, path: '/h1-over-tls', ca: readFileSync(ca.rootCert), headers: { host: NAME } }, (res) => {
        let b = ''; res.on('data', (d) => { b += d; }); res.on('end', () => ok({ status: res.statusCode!, body: b }));
      });
      r.on('error', fail); r.end();
    });
    expect(h1).toEqual({ status: 200, body: expect.stringContaining('GET /h1-over-tls') });
  });

  it('several streams on one connection: request line, Host from :authority, forwarding headers; the response translated back', async () => {
    const s = session();
    const [a, b, c] = await Promise.all([
      get(s, { ':method': 'GET', ':path': '/tls/a?x=1', 'x-client': 'one' }),
      get(s, { ':method': 'POST', ':path': '/tls/b', 'content-length': '5' }, 'hello'),
      // A body without content-length: the HTTP/1.1 request goes out chunked.
      get(s, { ':method': 'PUT', ':path': '/tls/c' }, 'streamed body'),
    ]);
    for (const x of [a, b, c]) {
      expect(x.status).toBe(200);
      // Set-Cookie stays two fields; connection-specific fields and those Connection names are gone.
      expect(x.headers['set-cookie']).toEqual(['s=1', 't=2']);
      expect(x.headers['x-kept']).toBe('yes');
      for (const k of ['connection', 'keep-alive', 'x-hop', 'transfer-encoding']) expect(x.headers[k]).toBeUndefined();
    }
    expect(a.body).toMatch(/^b1 \d+ GET \/tls\/a\?x=1$/);
    const ra = byTarget('/tls/a?x=1')!;
    expect(ra.raw.split('\r\n')[0]).toBe('GET /tls/a?x=1 HTTP/1.1');
    expect(field(ra, 'host')).toEqual([`${NAME}:${tlsPort}`]);
    expect(field(ra, 'x-forwarded-for')).toEqual(['127.0.0.1']);
    expect(field(ra, 'x-forwarded-proto')).toEqual(['https']);
    expect(field(ra, 'x-forwarded-port')).toEqual([String(tlsPort)]);
    expect(field(ra, 'forwarded')).toEqual([`for=127.0.0.1;proto=https;host="${NAME}:${tlsPort}"`]);
    expect(field(ra, 'x-client')).toEqual(['one']);
    expect(ra.headers.some(([k]) => k.startsWith(':'))).toBe(false);
    expect(byTarget('/tls/b')).toMatchObject({ method: 'POST', body: 'hello' });
    expect(field(byTarget('/tls/b')!, 'content-length')).toEqual(['5']);
    const rc = byTarget('/tls/c')!;
    expect(rc).toMatchObject({ method: 'PUT', body: 'streamed body' });
    expect(field(rc, 'transfer-encoding')).toEqual(['chunked']);
    // Another client on its own connection.
    const s2 = session();
    expect((await get(s2, { ':method': 'GET', ':path': '/tls/other' })).status).toBe(200);
    s.close(); s2.close();
  });

  it('a Host that differs from :authority is refused (RFC 9113 §8.3.1) before any backend; the connection goes on', async () => {
    const s = session();
    const before = b1.requests.length;
    const r = await get(s, { ':method': 'GET', ':path': '/tls/host-mismatch', ':authority': NAME, host: 'evil.example' });
    expect(r.status).toBe(400);
    const c = await get(s, { ':method': 'CONNECT', ':authority': 'x.example:443' }, null).catch((e: Error) => ({ status: -1, body: e.message, headers: {} }));
    expect(c.status).toBe(501);
    expect(b1.requests.length).toBe(before);
    expect((await get(s, { ':method': 'GET', ':path': '/tls/after-400' })).status).toBe(200);
    s.close();
  });

  it('curl --http2 negotiates h2 by ALPN and gets the backend answer', async () => {
    const { stdout, stderr } = await run('curl', ['-sS', '-v', '--http2', '--cacert', ca.rootCert, '--resolve', `${NAME}:${tlsPort}:127.0.0.1`, `https://${NAME}:${tlsPort}/curl/tls`, '-H', 'cookie: a=1', '-H', 'cookie: b=2'], { timeout: 20_000 });
    expect(stderr).toMatch(/ALPN: server accepted h2/);
    expect(stderr).toMatch(/< HTTP\/2 200/);
    expect(stdout).toMatch(/^b1 \d+ GET \/curl\/tls$/);
    expect(field(byTarget('/curl/tls')!, 'cookie')).toEqual(['a=1; b=2']);
  });

  it('nghttp over TLS: one connection, two streams', async () => {
    const { stdout } = await run('nghttp', ['-nv', `https://127.0.0.1:${tlsPort}/nghttp/1`, `https://127.0.0.1:${tlsPort}/nghttp/2`], { timeout: 20_000 });
    expect(stdout.match(/recv \(stream_id=\d+\) :status: 200/g)?.length).toBe(2);
    expect(byTarget('/nghttp/1')).toBeDefined();
    expect(byTarget('/nghttp/2')).toBeDefined();
  });
});

describe('h2c with prior knowledge on a plain bind', () => {
  it('curl --http2-prior-knowledge, nghttp, and HTTP/1.1 on the same bind', async () => {
    const { stdout, stderr } = await run('curl', ['-sS', '-v', '--http2-prior-knowledge', `http://127.0.0.1:${plainPort}/h2c/curl`], { timeout: 20_000 });
    expect(stderr).toMatch(/< HTTP\/2 200/);
    expect(stdout).toMatch(/GET \/h2c\/curl$/);
    expect(field(byTarget('/h2c/curl')!, 'x-forwarded-proto')).toEqual(['http']);
    const ng = await run('nghttp', ['-nv', `http://127.0.0.1:${plainPort}/h2c/nghttp`], { timeout: 20_000 });
    expect(ng.stdout).toMatch(/:status: 200/);
    const h1 = await rawOnce(plainPort, `GET /h2c/h1 HTTP/1.1\r\nHost: x\r\n\r\n`);
    expect(h1?.status).toBe(200);
    expect(byTarget('/h2c/h1')!.raw.split('\r\n')[0]).toBe('GET /h2c/h1 HTTP/1.1');
  });

  it('cookie fields split by the client reach the backend as one field joined with "; " (RFC 9113 §8.2.3)', async () => {
    const c = await H2Conn.h2c(plainPort);
    c.write(headers(1, fieldBlock([[':method', 'GET'], [':scheme', 'http'], [':path', '/h2c/cookies'], [':authority', 'x.test'], ['cookie', 'a=1'], ['accept', '*/*'], ['cookie', 'b=2; c=3']]), { endStream: true }));
    expect(await c.answer(1)).toEqual({ status: 200 });
    const r = byTarget('/h2c/cookies')!;
    expect(field(r, 'cookie')).toEqual(['a=1; b=2; c=3']);
    expect(field(r, 'host')).toEqual(['x.test']);
    c.destroy();
  });

  it.each([
    ['connection', [['connection', 'keep-alive']]],
    ['keep-alive', [['keep-alive', 'timeout=5']]],
    ['proxy-connection', [['proxy-connection', 'keep-alive']]],
    ['transfer-encoding', [['transfer-encoding', 'chunked']]],
    ['upgrade', [['upgrade', 'websocket']]],
    ['te other than trailers', [['te', 'gzip']]],
    ['no :authority and no host', 'no-authority'],
  ] as [string, [string, string][] | 'no-authority'][])('%s: refused, never forwarded; the next stream on the connection and another client are served', async (_n, extra) => {
    const before = b1.requests.length;
    const c = await H2Conn.h2c(plainPort);
    const base: [string, string][] = [[':method', 'GET'], [':scheme', 'http'], [':path', '/h2c/bad'], [':authority', 'x.test']];
    c.write(headers(1, fieldBlock(extra === 'no-authority' ? base.slice(0, 3) : [...base, ...extra]), { endStream: true }));
    const a = await c.answer(1);
    // nghttp2 resets such a stream itself (PROTOCOL_ERROR); what it lets through gets 400 from pairlb.
    expect(a.rst === 1 || a.status === 400).toBe(true);
    c.write(headers(3, fieldBlock([[':method', 'GET'], [':scheme', 'http'], [':path', '/h2c/after-bad'], [':authority', 'x.test']]), { endStream: true }));
    expect(await c.answer(3)).toEqual({ status: 200 });
    c.destroy();
    const c2 = await H2Conn.h2c(plainPort);
    c2.write(headers(1, fieldBlock([[':method', 'GET'], [':scheme', 'http'], [':path', '/h2c/other-client'], [':authority', 'x.test']]), { endStream: true }));
    expect(await c2.answer(1)).toEqual({ status: 200 });
    c2.destroy();
    expect(b1.requests.slice(before).map((r) => r.target)).toEqual(['/h2c/after-bad', '/h2c/other-client']);
  });

  it('a body shorter or longer than its content-length is refused; the backend never gets a complete request', async () => {
    const before = b1.requests.length;
    const c = await H2Conn.h2c(plainPort);
    c.write(headers(1, fieldBlock([[':method', 'POST'], [':scheme', 'http'], [':path', '/h2c/short'], [':authority', 'x.test'], ['content-length', '10']]), { endStream: false }), data(1, 'abc', true));
    // nghttp2 resets the stream (PROTOCOL_ERROR); an upstream request already under way is aborted.
    expect(await c.answer(1)).toEqual({ rst: 1 });
    c.write(headers(3, fieldBlock([[':method', 'GET'], [':scheme', 'http'], [':path', '/h2c/after-short'], [':authority', 'x.test']]), { endStream: true }));
    expect(await c.answer(3)).toEqual({ status: 200 });
    // DATA beyond content-length: nghttp2 makes it a connection error (GOAWAY); other connections go on.
    c.write(headers(5, fieldBlock([[':method', 'POST'], [':scheme', 'http'], [':path', '/h2c/long'], [':authority', 'x.test'], ['content-length', '2']]), { endStream: false }), data(5, 'abcdef', true));
    const b = await c.answer(5);
    expect(b.rst === 1 || b.goaway === true).toBe(true);
    c.destroy();
    const c2 = await H2Conn.h2c(plainPort);
    c2.write(headers(1, fieldBlock([[':method', 'GET'], [':scheme', 'http'], [':path', '/h2c/after-long'], [':authority', 'x.test']]), { endStream: true }));
    expect(await c2.answer(1)).toEqual({ status: 200 });
    c2.destroy();
    expect(b1.requests.slice(before).map((r) => r.target)).toEqual(['/h2c/after-short', '/h2c/after-long']);
  });

  it('access log: the request line says HTTP/2.0', async () => {
    const s = session(plainPort);
    expect((await get(s, { ':method': 'GET', ':path': '/h2c/logged' })).status).toBe(200);
    s.close();
    const deadline = Date.now() + 5000;
    let line: Record<string, unknown> | undefined;
    while (!(line = lb.logs.find((l) => l.mod === 'access' && l.uri === '/h2c/logged')) && Date.now() < deadline) await new Promise((ok) => setTimeout(ok, 20));
    expect(line).toMatchObject({ listen: 'plain', server: 'b1', status: 200, method: 'GET', proto: 'HTTP/2.0' });
  });
});
