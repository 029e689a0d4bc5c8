import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { writeFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { cli, ensureBuilt, tempDir } from '../daemon/daemon.js';
import { FRONT_OF, startApp } from '../helpers/app.js';
import { RawClient, rawBackend, rawOnce, type RawBackend, type Responder } from '../helpers/raw-http.js';
import { effectiveState } from '../../src/backends/backend-set.js';
import { parseConfig } from '../../src/config/load.js';

/**
 * The edge, core request path (issue 10): what pairlb refuses before any backend is chosen and what
 * it forwards, on every engine, with raw bytes on both sides.
 */

describe('config refusals', () => {
  beforeAll(() => ensureBuilt());

  it('pairlb check and pairlb start refuse `engine: http-proxy`, naming undici and native', () => {
    const dir = tempDir('edge-hp');
    try {
      const f = join(dir, 'hp.yaml');
      writeFileSync(f, 'listen:\n  - name: web\n    bind: 127.0.0.1:0\n    engine: http-proxy\n    backends:\n      - name: a\n        address: 127.0.0.1:9\n');
      for (const args of [['check', '-c', f], ['start', '-c', f, '--state-dir', join(dir, 'state')]]) {
        const r = cli(args);
        expect(r.code).toBe(1);
        expect(r.stderr).toContain('listen[0].engine: engine http-proxy was removed');
        expect(r.stderr).toContain('use native (the default) or undici (line 4)');
      }
      // A forwarding header name that is not a token would be refused by the engine on every request.
      writeFileSync(f, 'listen:\n  - name: web\n    bind: 127.0.0.1:0\n    forwardfor:\n      header: X Client\n    backends: []\n');
      const r = cli(['check', '-c', f]);
      expect([r.code, r.stderr]).toEqual([1, expect.stringContaining('listen[0].forwardfor.header: expected a header name (RFC 9110 token) (line 5)')]);
    } finally { rmSync(dir, { recursive: true, force: true }); }
  });
});

type Running = Awaited<ReturnType<typeof startApp>>;

/** One listen section in front of raw backends; forwarding headers off so bytes can be compared exactly. */
function yaml(engine: string, backends: RawBackend[], extra = ''): string {
  return `listen:\n  - name: web\n    bind: 127.0.0.1:0\n    engine: ${engine}\n    forwardfor:\n      enabled: false\n`
    + `    check:\n      type: tcp\n      interval: 60s\n${extra}    backends:\n`
    + backends.map((b) => `      - name: ${b.name}\n        address: ${b.address}\n`).join('');
}

/**
 * The exact request head a backend receives for a bodiless request, per engine: undici writes
 * `host` first (lowercased) and `connection: keep-alive`; native writes the rewritten list in order.
 */
function upstreamHead(engine: string, line: string, host: string, rest: string[] = []): string {
  return engine === 'undici'
    ? `${line}\r\nhost: ${host}\r\nconnection: keep-alive\r\n${rest.map((l) => l + '\r\n').join('')}\r\n`
    : `${line}\r\nHost: ${host}\r\n${rest.map((l) => l + '\r\n').join('')}\r\n`;
}

const GET = (path: string, host = 'app.example') => `GET ${path} HTTP/1.1\r\nHost: ${host}\r\n\r\n`;

// Workers 2 (undici): the same raw-byte assertions through two data-plane worker threads; the
// "another client" connections may land on either worker.
describe.each([['undici', 0], ['native', 0], ['undici', 2]] as const)('the edge, core request path (engine %s on its front, FRONT_OF; workers %d)', (engine, workers) => {
  const cleanups: (() => Promise<void> | void)[] = [];
  afterEach(async () => { while (cleanups.length) await cleanups.pop()!(); });
  async function app(y: string): Promise<Running> {
    const a = await startApp(y, { workers, front: FRONT_OF[engine] });
    cleanups.push(() => a.stop());
    return a;
  }
  async function backend(name: string, respond?: Responder): Promise<RawBackend> {
    const b = await rawBackend(name, respond);
    cleanups.push(() => b.close());
    return b;
  }
  function client(p: Running): RawClient {
    const c = new RawClient(p.port());
    cleanups.push(() => c.destroy());
    return c;
  }
  /** A normal request on a fresh connection is served by `b` and arrives exactly as sent. */
  async function freshOk(p: Running, b: RawBackend, path = '/fresh'): Promise<void> {
    const before = b.requests.length;
    const c = client(p);
    c.send(GET(path));
    const r = await c.next();
    expect(r?.status).toBe(200);
    expect(r?.body).toBe(`${b.name} ${before + 1}`);
    expect(b.requests.slice(before).map((x) => x.raw)).toEqual([upstreamHead(engine, `GET ${path} HTTP/1.1`, 'app.example')]);
  }
  const states = (p: Running) => p.app.backends.backends('web').map((b) => `${b.name}:${effectiveState(b)}`);

  it('a plain GET arrives as exactly one request; then the same connection and a fresh one', async () => {
    const b = await backend('a');
    const p = await app(yaml(engine, [b]));
    const c = client(p);
    c.send('GET /one?x=1 HTTP/1.1\r\nHost: app.example\r\nX-Test: 1\r\n\r\n');
    const r1 = await c.next();
    expect(r1?.status).toBe(200);
    expect(r1?.body).toBe('a 1');
    expect(b.requests.map((x) => x.raw)).toEqual([upstreamHead(engine, 'GET /one?x=1 HTTP/1.1', 'app.example', ['X-Test: 1'])]);
    c.send(GET('/two'));
    expect((await c.next())?.body).toBe('a 2');
    await freshOk(p, b);
    expect(b.garbage).toEqual([]);
  });

  it('two Host header lines: 400 before any backend is chosen (RFC 9112 §3.2), connection closed', async () => {
    const b = await backend('a');
    const p = await app(yaml(engine, [b]));
    for (const second of ['Host: app.example', 'host: other.example']) {
      const c = client(p);
      c.send(`GET /dup HTTP/1.1\r\nHost: app.example\r\n${second}\r\n\r\n` + GET('/after'));
      const r = await c.next();
      expect(r?.status).toBe(400);
      expect(r?.headers.connection).toBe('close');
      // The pipelined second request is never read: the connection is closed after the 400.
      expect(await c.waitClosed()).toBe('');
    }
    // The same on the Upgrade (WebSocket) path.
    const ws = client(p);
    ws.send('GET /ws HTTP/1.1\r\nHost: app.example\r\nHost: evil.example\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n');
    expect((await ws.next())?.status).toBe(400);
    expect(await ws.waitClosed()).toBe('');
    expect(b.requests).toEqual([]);
    await p.app.proxy.sync(); // workers: their counters up to now
    expect(p.app.counters.backend(p.app.backends.backends('web')[0].id).total).toBe(0);
    expect(p.app.counters.listen('web').errReq).toBe(3);
    await freshOk(p, b);
  });

  it('a client\'s mistakes never count against a backend: 10 bad requests, default passive check, all backends stay UP', async () => {
    const a = await backend('a');
    const b = await backend('b');
    const p = await app(yaml(engine, [a, b]));
    const bad = [
      'GET /x HTTP/1.1\r\nHost: app.example\r\nHost: app.example\r\n\r\n',
      'GET /x HTTP/1.1\r\nHost: app.example\r\nhost: evil.example\r\n\r\n',
      'GET * HTTP/1.1\r\nHost: app.example\r\n\r\n',
      'GET http://user@app.example/x HTTP/1.1\r\nHost: app.example\r\n\r\n',
      'GET http:///x HTTP/1.1\r\nHost: app.example\r\n\r\n',
      `GET /x HTTP/1.1\r\nHost: app.example\r\n${'X-N: 1\r\n'.repeat(100)}\r\n`,
      'GET /x HTTP/1.1\r\nHost: app.example\r\nHost: app.example\r\n\r\n',
      'GET /x HTTP/1.1\r\nHost: a\r\nHost: b\r\nHost: c\r\n\r\n',
      `POST /x HTTP/1.1\r\nHost: app.example\r\n${'X-N: 1\r\n'.repeat(2001)}Content-Length: 5\r\n\r\nhello`,
      'OPTIONS * HTTP/1.1\r\nHost: app.example\r\nHost: app.example\r\n\r\n',
    ];
    const statuses: number[] = [];
    for (const req of bad) {
      const c = client(p);
      c.send(req);
      statuses.push((await c.next())?.status ?? 0);
      await c.waitClosed();
    }
    expect(statuses).toEqual([400, 400, 400, 400, 400, 431, 400, 400, 431, 400]);
    expect(a.requests.concat(b.requests)).toEqual([]);
    expect(states(p)).toEqual(['a:UP', 'b:UP']);
    await p.app.proxy.sync(); // workers: their counters up to now (passive streaks stay in the workers)
    for (const be of p.app.backends.backends('web')) {
      const rc = p.app.counters.backend(be.id);
      expect([rc.errConn, rc.connectFailStreak, rc.total]).toEqual([0, 0, 0]);
    }
    expect(p.app.counters.listen('web').errReq).toBe(10);
    // A normal request, and one from another client, are served (by either backend: with workers,
    // each worker keeps its own round-robin position and the kernel picks the worker).
    for (const path of ['/n1', '/n2']) {
      const before = a.requests.length + b.requests.length;
      const c = client(p);
      c.send(GET(path));
      const r = await c.next();
      expect(r?.status).toBe(200);
      const got = a.requests.concat(b.requests).filter((x) => x.raw.startsWith(`GET ${path} `));
      expect(got.map((x) => x.raw)).toEqual([upstreamHead(engine, `GET ${path} HTTP/1.1`, 'app.example')]);
      expect(a.requests.length + b.requests.length).toBe(before + 1);
    }
    expect(states(p)).toEqual(['a:UP', 'b:UP']);
  });

  it('OPTIONS * is forwarded with request-target * (RFC 9112 §3.2.4), as HAProxy does', async () => {
    const b = await backend('a');
    const p = await app(yaml(engine, [b]));
    const c = client(p);
    c.send('OPTIONS * HTTP/1.1\r\nHost: app.example\r\n\r\n');
    const r = await c.next();
    expect(r?.status).toBe(200);
    expect(r?.body).toBe('a 1');
    // undici cannot send asterisk-form: that engine sends it through a native connection.
    expect(b.requests.map((x) => x.raw)).toEqual([upstreamHead('native', 'OPTIONS * HTTP/1.1', 'app.example')]);
    c.send(GET('/next'));
    expect((await c.next())?.body).toBe('a 2');
    await freshOk(p, b);
    expect(states(p)).toEqual(['a:UP']);
  });

  it('more header lines than max_headers: 431 and nothing forwarded (never forwarded with lines dropped)', async () => {
    const b = await backend('a');
    const p = await app(yaml(engine, [b]));
    // 100 lines (Host + 99) pass with every line; 101 and 2,001 (fits in 16 KiB) are refused.
    const ok = client(p);
    const lines = Array.from({ length: 99 }, (_, i) => `X-H${i}: ${i}`);
    ok.send(`GET /hundred HTTP/1.1\r\nHost: app.example\r\n${lines.map((l) => l + '\r\n').join('')}\r\n`);
    expect((await ok.next())?.status).toBe(200);
    expect(b.requests.map((x) => x.raw)).toEqual([upstreamHead(engine, 'GET /hundred HTTP/1.1', 'app.example', lines)]);
    for (const n of [100, 2000]) {
      const c = client(p);
      c.send(`POST /many HTTP/1.1\r\nHost: app.example\r\n${'X-M: m\r\n'.repeat(n)}Content-Length: 24\r\n\r\nGET /smuggled HTTP/1.1\r\n\r\n`);
      const r = await c.next();
      expect(r?.status).toBe(431);
      expect(r?.headers.connection).toBe('close');
      await c.waitClosed();
    }
    expect(b.requests.length).toBe(1);
    ok.send(GET('/again'));
    expect((await ok.next())?.body).toBe('a 2');
    await freshOk(p, b);
    expect(b.garbage).toEqual([]);
  });

  it('max_headers is configurable and follows a reload (new connections)', async () => {
    const b = await backend('a');
    const y = (n: number) => yaml(engine, [b]).replace('    check:\n', `    max_headers: ${n}\n    check:\n`);
    const p = await app(y(10));
    const req = (n: number) => `GET /n${n} HTTP/1.1\r\nHost: app.example\r\n${Array.from({ length: n - 1 }, (_, i) => `X-${i}: v\r\n`).join('')}\r\n`;
    expect((await rawOnce(p.port(), req(10)))?.status).toBe(200);
    expect((await rawOnce(p.port(), req(11)))?.status).toBe(431);
    await p.app.reload(parseConfig(y(20)));
    expect((await rawOnce(p.port(), req(15)))?.status).toBe(200);
    expect((await rawOnce(p.port(), req(21)))?.status).toBe(431);
    expect(b.requests.map((x) => [x.target, x.headers.length])).toEqual([['/n10', engine === 'undici' ? 11 : 10], ['/n15', engine === 'undici' ? 16 : 15]]);
  });

  it('absolute-form: forwarded in origin-form with the authority as Host; a different Host is refused (RFC 9112 §3.2.2, as HAProxy)', async () => {
    const b = await backend('a');
    const p = await app(yaml(engine, [b]).replace('    forwardfor:\n      enabled: false\n', ''));
    const c = client(p);
    c.send('GET http://Auth.example:8080/p?q=1 HTTP/1.1\r\nHost: auth.EXAMPLE:8080\r\n\r\n');
    expect((await c.next())?.status).toBe(200);
    c.send('GET http://auth2.example HTTP/1.1\r\nHost: auth2.example\r\n\r\n');
    expect((await c.next())?.status).toBe(200);
    // HTTP/1.0 without Host: the authority becomes the Host header.
    const old = await rawOnce(p.port(), 'GET http://auth3.example/x HTTP/1.0\r\n\r\n');
    expect(old?.status).toBe(200);
    const fwd = (host: string) => ['X-Forwarded-For: 127.0.0.1', 'X-Forwarded-Proto: http', `X-Forwarded-Port: ${p.port()}`, `X-Forwarded-Host: ${host}`];
    expect(b.requests.map((x) => x.raw)).toEqual([
      upstreamHead(engine, 'GET /p?q=1 HTTP/1.1', 'Auth.example:8080', fwd('Auth.example:8080')),
      upstreamHead(engine, 'GET / HTTP/1.1', 'auth2.example', fwd('auth2.example')),
      upstreamHead(engine, 'GET /x HTTP/1.1', 'auth3.example', fwd('auth3.example')),
    ]);
    c.send(GET('/same'));
    expect((await c.next())?.body).toBe('a 4');
    // Refused: Host differs from the authority, userinfo, empty authority (RFC 9110 §4.2.1, §4.2.4),
    // a query without a path (HAProxy refuses it), another scheme, GET *.
    for (const [t, host] of [['http://auth.example/p', 'other.example'], ['http://auth.example:80/p', 'auth.example'],
      ['http://user:pw@auth.example/', 'auth.example'], ['http:///x', 'auth.example'], ['http://', 'auth.example'],
      ['http://:80/', 'auth.example'], ['http://auth.example?only=query', 'auth.example'], ['ftp://auth.example/', 'auth.example']]) {
      const r = await rawOnce(p.port(), `GET ${t} HTTP/1.1\r\nHost: ${host}\r\n\r\n`);
      expect([t, host, r?.status, r?.headers.connection]).toEqual([t, host, 400, 'close']);
    }
    expect(b.requests.length).toBe(4);
    expect((await rawOnce(p.port(), GET('/fresh')))?.body).toBe('a 5');
    expect(b.requests.length).toBe(5);
  });

  it('103 Early Hints then the final response: both reach the client', async () => {
    const b = await backend('a', (r, n) => r.target === '/hints'
      ? { bytes: 'HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload; as=style\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nfinal' }
      : { bytes: `HTTP/1.1 200 OK\r\nContent-Length: ${`a ${n}`.length}\r\n\r\na ${n}` });
    const p = await app(yaml(engine, [b]));
    const c = client(p);
    c.send(GET('/hints'));
    const r = await c.next();
    expect(r?.status).toBe(200);
    expect(r?.body).toBe('final');
    expect(r?.informational.map((h) => h.toLowerCase())).toEqual(['http/1.1 103 early hints\r\nlink: </style.css>; rel=preload; as=style']);
    expect(b.requests.map((x) => x.raw)).toEqual([upstreamHead(engine, 'GET /hints HTTP/1.1', 'app.example')]);
    c.send(GET('/next'));
    const r2 = await c.next();
    expect([r2?.body, r2?.informational]).toEqual(['a 2', []]);
    await freshOk(p, b);
    // HTTP/1.0 clients never get a 1xx (RFC 9110 §15.2).
    const old = await rawOnce(p.port(), 'GET /hints HTTP/1.0\r\nHost: app.example\r\n\r\n');
    expect([old?.status, old?.body, old?.informational]).toEqual([200, 'final', []]);
  });

  it('an unsolicited 100 Continue: dropped by native; undici refuses it (502, not retried)', async () => {
    const respond: Responder = (r, n) => r.target === '/continue'
      ? { bytes: 'HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 102 Processing\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nfinal' }
      : { bytes: `HTTP/1.1 200 OK\r\nContent-Length: ${`x ${n}`.length}\r\n\r\nx ${n}` };
    const a = await backend('a', respond);
    const b = await backend('b', respond);
    const p = await app(yaml(engine, [a, b]));
    const c = client(p);
    c.send(GET('/continue'));
    const r = await c.next();
    if (engine === 'native') {
      expect([r?.status, r?.body, r?.informational]).toEqual([200, 'final', ['HTTP/1.1 102 Processing']]);
    } else {
      expect(r?.status).toBe(502);
    }
    expect(a.requests.concat(b.requests).map((x) => x.target)).toEqual(['/continue']);
    c.send(GET('/after'));
    expect((await c.next())?.status).toBe(200);
    expect((await rawOnce(p.port(), GET('/fresh')))?.status).toBe(200);
    expect(states(p)).toEqual(['a:UP', 'b:UP']);
  });

  it('a backend answering 101 to a plain GET: 502, no tunnel, no retry; the connection goes on', async () => {
    const respond: Responder = (r, n) => r.target === '/switch'
      ? { bytes: 'HTTP/1.1 101 Switching Protocols\r\nConnection: upgrade\r\nUpgrade: h2c\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\nsmuggled' }
      : { bytes: `HTTP/1.1 200 OK\r\nContent-Length: ${`x ${n}`.length}\r\n\r\nx ${n}` };
    const a = await backend('a', respond);
    const b = await backend('b', respond);
    const p = await app(yaml(engine, [a, b]));
    const c = client(p);
    c.send(GET('/switch'));
    const r = await c.next();
    expect(r?.status).toBe(502);
    expect(r?.body).not.toContain('smuggled');
    expect(a.requests.concat(b.requests).map((x) => x.target)).toEqual(['/switch']);
    c.send(GET('/after'));
    const r2 = await c.next();
    expect(r2?.status).toBe(200);
    expect(r2?.body).not.toContain('smuggled');
    expect(c.pending()).toBe('');
    const r3 = await rawOnce(p.port(), GET('/fresh'));
    expect(r3?.status).toBe(200);
    expect(states(p)).toEqual(['a:UP', 'b:UP']);
  });
});
