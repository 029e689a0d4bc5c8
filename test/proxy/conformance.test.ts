import { afterEach, describe, expect, it } from 'vitest';
import { connect, createServer as createTcpServer } from 'node:net';
import { request } from 'node:http';
import type { AddressInfo } from 'node:net';
import { startBackend, type TestBackend } from '../helpers/backend.js';
import { startApp } from '../helpers/app.js';

/**
 * One conformance suite, run against both forwarding engines, with the data plane in the App's
 * thread and (undici, the default engine) in one worker thread (global.workers: 1, through the
 * snapshot/counter contract of src/proxy/contract.ts):
 * real backends on port 0, a real pairlb App in-process, real HTTP clients and raw sockets.
 */

type Running = Awaited<ReturnType<typeof startApp>>;

function listenYaml(engine: string, backends: TestBackend[] | string[], extra = '', backendExtra: Record<string, string> = {}): string {
  const list = backends.map((b, i) => {
    const name = typeof b === 'string' ? `s${i}` : b.name;
    const addr = typeof b === 'string' ? b : b.address;
    return `      - name: ${name}\n        address: ${addr}\n        check: false\n${backendExtra[name] ?? ''}`;
  }).join('');
  return `listen:\n  - name: web\n    bind: 127.0.0.1:0\n    engine: ${engine}\n${extra}    backends:\n${list}`;
}

async function get(url: string, headers: Record<string, string> = {}, method = 'GET', body?: string): Promise<{ status: number; headers: Record<string, string | string[] | undefined>; body: string }> {
  return new Promise((ok, fail) => {
    const r = request(url, { method, headers, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => ok({ status: res.statusCode!, headers: res.headers, body: Buffer.concat(chunks).toString() }));
      res.on('error', fail);
    });
    r.on('error', fail);
    r.end(body);
  });
}

/** Send raw bytes, return everything the proxy answers until it closes (or 2 s). */
function raw(port: number, bytes: string): Promise<string> {
  return new Promise((ok) => {
    const s = connect(port, '127.0.0.1');
    let out = '';
    s.on('data', (d) => { out += d.toString(); });
    s.on('error', () => ok(out));
    s.on('close', () => ok(out));
    s.write(bytes);
    setTimeout(() => { s.destroy(); ok(out); }, 2000).unref();
  });
}

async function closedPort(): Promise<string> {
  const srv = createTcpServer();
  await new Promise<void>((ok) => srv.listen(0, '127.0.0.1', () => ok()));
  const port = (srv.address() as AddressInfo).port;
  await new Promise<void>((ok) => srv.close(() => ok()));
  return `127.0.0.1:${port}`;
}

describe.each([['undici', 0], ['native', 0], ['undici', 1]] as const)('proxy conformance (engine %s, workers %d)', (engine, workers) => {
  const cleanups: (() => Promise<void>)[] = [];
  afterEach(async () => { while (cleanups.length) await cleanups.pop()!(); });
  async function app(yaml: string): Promise<Running> {
    const a = await startApp(yaml, { workers });
    cleanups.push(() => a.stop());
    return a;
  }
  async function backends(...names: string[]): Promise<TestBackend[]> {
    const bs = await Promise.all(names.map((n) => startBackend(n)));
    for (const b of bs) cleanups.push(() => b.close());
    return bs;
  }

  it('weighted round robin is smooth: weights 5,1,1 give a,a,b,a,c,a,a', async () => {
    const [a, b, c] = await backends('a', 'b', 'c');
    const p = await app(listenYaml(engine, [a, b, c], '', { a: '        weight: 5\n' }));
    const seq: string[] = [];
    for (let i = 0; i < 14; i++) seq.push((await get(p.url() + '/')).body);
    expect(seq).toEqual(['a', 'a', 'b', 'a', 'c', 'a', 'a', 'a', 'a', 'b', 'a', 'c', 'a', 'a']);
  });

  it('equal weights alternate exactly; keep-alive on both sides', async () => {
    const [a, b] = await backends('a', 'b');
    const p = await app(listenYaml(engine, [a, b]));
    const seq: string[] = [];
    for (let i = 0; i < 4; i++) seq.push(await (await fetch(p.url() + '/')).text());
    expect(seq).toEqual(['a', 'b', 'a', 'b']);
    // 4 requests over keep-alive upstream connections: far fewer than 4 connections per backend.
    const conns = await new Promise<number>((ok) => a.server.getConnections((_e, n) => ok(n)));
    expect(conns).toBeLessThanOrEqual(2);
  });

  it('cookie insert: Set-Cookie with server id (never the address), sticky, indirect strips it, nocache', async () => {
    const [a, b] = await backends('a', 'b');
    const p = await app(listenYaml(engine, [a, b], '    cookie:\n      name: SRV\n      mode: insert\n      indirect: true\n      nocache: true\n      samesite: Lax\n', { a: '        cookie: ca\n' }));
    const r1 = await get(p.url() + '/');
    expect(r1.body).toBe('a');
    expect(r1.headers['set-cookie']).toEqual(['SRV=ca; Path=/; HttpOnly; SameSite=Lax']);
    expect(r1.headers['cache-control']).toBe('private');
    const r2 = await get(p.url() + '/');
    expect(r2.body).toBe('b');
    const bCookie = (r2.headers['set-cookie'] as string[])[0].split(';')[0];
    expect(bCookie).toMatch(/^SRV=[A-Za-z0-9_-]{8}$/);
    expect(bCookie).not.toContain(String(b.port));
    // Sticky: 4 requests with b's cookie all go to b, and the right cookie is not re-set.
    for (let i = 0; i < 4; i++) {
      const r = await get(p.url() + '/', { cookie: `x=1; ${bCookie}; y=2` });
      expect(r.body).toBe('b');
      expect(r.headers['set-cookie']).toBeUndefined();
    }
    // indirect: the backend never sees our cookie, other cookies pass untouched.
    expect(b.seen.at(-1)!.headers.cookie).toBe('x=1; y=2');
    // An unknown server id falls back to balancing and is re-issued.
    const r3 = await get(p.url() + '/', { cookie: 'SRV=nosuch' });
    expect(r3.headers['set-cookie']).toBeDefined();
    expect(['a', 'b']).toContain(r3.body);
  });

  it('cookie insert without indirect: the backend sees the cookie', async () => {
    const [a] = await backends('a');
    const p = await app(listenYaml(engine, [a], '    cookie:\n      name: SRV\n', { a: '        cookie: ca\n' }));
    await get(p.url() + '/', { cookie: 'SRV=ca' });
    expect(a.seen.at(-1)!.headers.cookie).toBe('SRV=ca');
  });

  it('cookie prefix (JSESSIONID): prefixed towards the client, stripped towards the app', async () => {
    const mk = (n: string) => startBackend(n, (req, res) => {
      res.writeHead(200, { 'set-cookie': [`JSESSIONID=${n}-sess; Path=/app`, 'other=1'], 'content-length': n.length });
      res.end(n);
    });
    const a = await mk('a'); const b = await mk('b');
    cleanups.push(() => a.close(), () => b.close());
    const p = await app(listenYaml(engine, [a, b], '    cookie:\n      name: JSESSIONID\n      mode: prefix\n', { a: '        cookie: pa\n', b: '        cookie: pb\n' }));
    const r1 = await get(p.url() + '/');
    expect(r1.body).toBe('a');
    expect(r1.headers['set-cookie']).toEqual(['JSESSIONID=pa~a-sess; Path=/app', 'other=1']);
    for (let i = 0; i < 3; i++) {
      const r = await get(p.url() + '/', { cookie: 'JSESSIONID=pb~b-sess; z=9' });
      expect(r.body).toBe('b');
    }
    expect(b.seen.at(-1)!.headers.cookie).toBe('JSESSIONID=b-sess; z=9');
  });

  it('a cookie naming a DOWN server is rebalanced and re-issued', async () => {
    const [a, b] = await backends('a', 'b');
    const p = await app(listenYaml(engine, [a, b], '    cookie:\n      name: SRV\n', { a: '        cookie: ca\n', b: '        cookie: cb\n' }));
    p.app.backends.setHealth('web', 'a', 'down', 'test');
    // Workers: the new snapshot has reached every worker once sync() resolves.
    await p.app.proxy.sync();
    const r = await get(p.url() + '/', { cookie: 'SRV=ca' });
    expect(r.body).toBe('b');
    expect(r.headers['set-cookie']).toEqual(['SRV=cb; Path=/; HttpOnly']);
  });

  it('X-Forwarded-For is appended to an existing chain; X-Forwarded-Proto/Host/Port; Forwarded', async () => {
    const [a] = await backends('a');
    const p = await app(listenYaml(engine, [a], '    forwardfor:\n      forwarded: true\n'));
    await get(p.url() + '/x', { 'x-forwarded-for': '203.0.113.7, 198.51.100.1', 'x-forwarded-proto': 'https', forwarded: 'for=203.0.113.7' });
    const h = a.seen.at(-1)!.headers;
    expect(h['x-forwarded-for']).toBe('203.0.113.7, 198.51.100.1, 127.0.0.1');
    expect(h['x-forwarded-proto']).toBe('http');
    expect(h['x-forwarded-port']).toBe(String(p.port()));
    expect(h['x-forwarded-host']).toBe(`127.0.0.1:${p.port()}`);
    expect(h.forwarded).toBe(`for=203.0.113.7, for=127.0.0.1;proto=http;host="127.0.0.1:${p.port()}"`);
  });

  it('hop-by-hop headers are not forwarded (RFC 9110 §7.6.1), either way', async () => {
    const a = await startBackend('a', (_req, res) => {
      res.writeHead(200, { 'keep-alive': 'timeout=99', 'x-hop': 'secret', connection: 'x-hop', 'x-end': 'ok', 'content-length': 1 });
      res.end('a');
    });
    cleanups.push(() => a.close());
    const p = await app(listenYaml(engine, [a]));
    const r = await get(p.url() + '/', { connection: 'keep-alive, x-private', 'x-private': 'p', 'keep-alive': 'timeout=5', 'proxy-connection': 'keep-alive', te: 'trailers', 'x-keep': 'k' });
    const h = a.seen.at(-1)!.headers;
    expect(h['x-private']).toBeUndefined();
    expect(h['proxy-connection']).toBeUndefined();
    expect(h.te).toBeUndefined();
    expect(h['x-keep']).toBe('k');
    expect(r.headers['x-hop']).toBeUndefined();
    expect(r.headers['keep-alive']).not.toBe('timeout=99');
    expect(r.headers['x-end']).toBe('ok');
  });

  it('bodies are streamed both ways (POST echo, chunked upload)', async () => {
    const a = await startBackend('a', (req, res, body) => {
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.end(`${req.method}:${body.length}:${body.slice(0, 5)}`);
    });
    cleanups.push(() => a.close());
    const p = await app(listenYaml(engine, [a]));
    const big = 'x'.repeat(300_000);
    const r = await get(p.url() + '/up', { 'content-type': 'text/plain' }, 'POST', big);
    expect(r.body).toBe('POST:300000:xxxxx');
    const chunked = await raw(p.port(), 'POST /c HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n');
    expect(chunked).toMatch(/^HTTP\/1.1 200/);
    expect(chunked).toContain('POST:11:hello');
  });

  it('an upstream connection reused after a backpressured response still reads the next response', async () => {
    const big = Buffer.alloc(4 << 20, 120);
    const a = await startBackend('a', (req, res) => {
      if (req.url === '/big') { res.writeHead(200, { 'content-length': big.length }); res.end(big); }
      else { res.writeHead(200, { 'content-length': 2 }); res.end('ok'); }
    });
    cleanups.push(() => a.close());
    const p = await app(listenYaml(engine, [a], '    retries: 0\n    timeouts:\n      server: 1500ms\n'));
    // A slow reader: the proxy must pause the backend, then finish the response.
    const n = await new Promise<number>((ok, fail) => {
      request(p.url() + '/big', { agent: false }, (res) => {
        let got = 0;
        res.pause();
        setTimeout(() => { res.on('data', (c: Buffer) => { got += c.length; }); res.on('end', () => ok(got)); res.resume(); }, 300);
      }).on('error', fail).end();
    });
    expect(n).toBe(big.length);
    for (let i = 0; i < 3; i++) expect((await get(p.url() + '/small')).body).toBe('ok');
  });

  it('WebSocket / Upgrade requests are tunnelled', async () => {
    const [a] = await backends('a');
    a.server.on('upgrade', (req, sock) => {
      sock.write(`HTTP/1.1 101 Switching Protocols\r\nUpgrade: echo\r\nConnection: Upgrade\r\nX-Seen-XFF: ${req.headers['x-forwarded-for']}\r\nX-Seen-Proto: ${req.headers['x-forwarded-proto']}\r\nX-Seen-Upgrade: ${req.headers.connection}/${req.headers.upgrade}/${req.headers['x-private']}\r\n\r\n`);
      sock.on('data', (d) => sock.write(Buffer.from(d.toString().toUpperCase())));
      // Upgraded sockets are half-open capable: close our side when the proxy closes its side.
      sock.on('end', () => sock.end());
    });
    const p = await app(listenYaml(engine, [a]));
    const out = await new Promise<string>((ok) => {
      const s = connect(p.port(), '127.0.0.1');
      let buf = '';
      s.on('data', (d) => {
        buf += d.toString();
        if (buf.includes('\r\n\r\n') && !buf.includes('PING')) s.write('ping');
        if (buf.includes('PING')) { s.destroy(); ok(buf); }
      });
      s.write('GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade, X-Private\r\nX-Private: p\r\nUpgrade: echo\r\nX-Forwarded-For: 203.0.113.7\r\n\r\n');
    });
    expect(out).toMatch(/^HTTP\/1.1 101/);
    // Rewritten as any proxied request: XFF appended, X-Forwarded-Proto set, Connection-listed headers dropped.
    expect(out).toContain('X-Seen-XFF: 203.0.113.7, 127.0.0.1');
    expect(out).toContain('X-Seen-Proto: http');
    expect(out).toMatch(/X-Seen-Upgrade: upgrade\/echo\/undefined/i);
    expect(out).toContain('PING');
  });

  it('502 when no connection to the backend, 503 when none is available, 504 on backend timeout', async () => {
    const dead = await closedPort();
    const p1 = await app(listenYaml(engine, [dead], '    retries: 1\n'));
    const r1 = await get(p1.url() + '/');
    expect(r1.status).toBe(502);
    expect(r1.body).toContain('502 Bad Gateway');

    const [a] = await backends('a');
    const p2 = await app(listenYaml(engine, [a]));
    p2.app.backends.setAdmin('web', 'a', 'maint', 'test');
    await p2.app.proxy.sync();
    const t0 = Date.now();
    const r2 = await get(p2.url() + '/');
    expect(r2.status).toBe(503);
    expect(Date.now() - t0).toBeLessThan(1000);

    const hang = await startBackend('hang', () => true /* never answers */);
    cleanups.push(() => hang.close());
    const p3 = await app(listenYaml(engine, [hang], '    retries: 0\n    timeouts:\n      server: 300ms\n'));
    const r3 = await get(p3.url() + '/');
    expect(r3.status).toBe(504);
  });

  it('slowloris: an incomplete request head gets 408 after timeouts.http_request', async () => {
    const [a] = await backends('a');
    const p = await app(listenYaml(engine, [a], '    timeouts:\n      http_request: 300ms\n'));
    const t0 = Date.now();
    const out = await raw(p.port(), 'GET / HTTP/1.1\r\nHost: x\r\nX-Slow: ');
    expect(out).toMatch(/^HTTP\/1.1 408/);
    expect(Date.now() - t0).toBeLessThan(1900);
    expect(a.seen).toHaveLength(0);
  });

  describe('bad input is refused with 4xx and never forwarded', () => {
    const cases: [string, string, number][] = [
      ['Content-Length and Transfer-Encoding', 'POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n', 400],
      ['two different Content-Length values', 'POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!', 400],
      ['obs-fold', 'GET / HTTP/1.1\r\nHost: x\r\nX-Folded: a\r\n b\r\n\r\n', 400],
      ['invalid header name', 'GET / HTTP/1.1\r\nHost: x\r\nBad Header: 1\r\n\r\n', 400],
      ['invalid request line', 'GET /a b c HTTP/1.1\r\nHost: x\r\n\r\n', 400],
      ['oversized header block', `GET / HTTP/1.1\r\nHost: x\r\n${'X-Big: ' + 'a'.repeat(8000) + '\r\n'}${'X-Big2: ' + 'a'.repeat(9000) + '\r\n'}\r\n`, 431],
      ['request line too long', `GET /${'a'.repeat(20000)} HTTP/1.1\r\nHost: x\r\n\r\n`, 414],
      ['request line over max_request_line', `GET /${'a'.repeat(9000)} HTTP/1.1\r\nHost: x\r\n\r\n`, 414],
    ];
    it.each(cases)('%s', async (_n, bytes, status) => {
      const [a] = await backends('a');
      const p = await app(listenYaml(engine, [a]));
      const out = await raw(p.port(), bytes);
      expect(out.slice(0, 12)).toBe(`HTTP/1.1 ${status}`);
      expect(a.seen).toHaveLength(0);
      await p.app.proxy.sync();
      expect(p.app.counters.listen('web').errReq).toBe(1);
    });

    it('invalid chunk size: 400 and the backend never gets a complete request', async () => {
      const [a] = await backends('a');
      const p = await app(listenYaml(engine, [a]));
      const out = await raw(p.port(), 'POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n');
      expect(out.slice(0, 12)).toBe('HTTP/1.1 400');
      await new Promise((r) => setTimeout(r, 100));
      expect(a.seen.filter((s) => s.complete)).toHaveLength(0);
    });
  });
});

describe('access log', () => {
  it('writes one JSON line per request with httplog fields', async () => {
    const { Writable } = await import('node:stream');
    const lines: string[] = [];
    const sink = new Writable({ write(c, _e, cb) { lines.push(c.toString()); cb(); } });
    const { createLogger } = await import('../../src/log.js');
    const { parseConfig } = await import('../../src/config/load.js');
    const { App } = await import('../../src/app.js');
    const a = await startBackend('a');
    const cfg = parseConfig(listenYaml('undici', [a]));
    const app = new App(cfg, createLogger('info', sink), { stateDir: null });
    await app.start();
    try {
      const port = app.proxy.address('web')!.port;
      await get(`http://127.0.0.1:${port}/hello?x=1`, { 'user-agent': 't' });
      // Access lines go out in batches (BATCH_MS after the first): wait for it, bounded.
      const deadline = Date.now() + 5000;
      while (!lines.some((l) => l.includes('"mod":"access"')) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
      const entry = lines.map((l) => JSON.parse(l)).find((j) => j.mod === 'access');
      expect(entry).toMatchObject({ listen: 'web', server: 'a', status: 200, termination: '--', retries: 0, method: 'GET', uri: '/hello?x=1', client: '127.0.0.1', Tw: 0 });
      for (const k of ['client_port', 'Tc', 'Tr', 'Ta', 'bytes_read', 'bytes_in']) expect(typeof entry[k]).toBe('number');
    } finally { await app.stop(100); await a.close(); }
  });
});


describe('listen sections and client timeouts', () => {
  it('several listen sections in one process, each with its own pool', async () => {
    const a = await startBackend('a');
    const b = await startBackend('b');
    const p = await startApp(`listen:\n  - name: one\n    bind: 127.0.0.1:0\n    backends:\n      - name: a\n        address: ${a.address}\n        check: false\n  - name: two\n    bind: 127.0.0.1:0\n    backends:\n      - name: b\n        address: ${b.address}\n        check: false\n`);
    try {
      expect((await get(p.url('one') + '/')).body).toBe('a');
      expect((await get(p.url('two') + '/')).body).toBe('b');
      expect(p.app.counters.listen('one').total).toBe(1);
      expect(p.app.counters.listen('two').total).toBe(1);
    } finally { await p.stop(); await a.close(); await b.close(); }
  });

  it('an idle client keep-alive connection is closed after timeouts.client', async () => {
    const a = await startBackend('a');
    const p = await startApp(listenYaml('undici', [a], '    timeouts:\n      client: 300ms\n'));
    try {
      const t0 = Date.now();
      const closedAfter = await new Promise<number>((ok) => {
        const s = connect(p.port(), '127.0.0.1');
        s.on('data', () => {});
        s.on('close', () => ok(Date.now() - t0));
        s.write('GET / HTTP/1.1\r\nHost: x\r\n\r\n');
      });
      expect(closedAfter).toBeGreaterThanOrEqual(250);
      expect(closedAfter).toBeLessThan(3000);
    } finally { await p.stop(); await a.close(); }
  });

  it('access log in Apache combined format', async () => {
    const a = await startBackend('a');
    const cfg = `global:\n  log:\n    access: combined\n` + listenYaml('undici', [a]);
    const writes: string[] = [];
    const orig = process.stdout.write.bind(process.stdout);
    const p = await startApp(cfg);
    (process.stdout as unknown as { write: (s: string) => boolean }).write = (s: string) => { writes.push(String(s)); return true; };
    try {
      await get(p.url() + '/page?q=1', { referer: 'http://ref/', 'user-agent': 'ua "x"' });
      // Access lines go out in batches (BATCH_MS after the first): wait for it, bounded.
      const deadline = Date.now() + 5000;
      while (!writes.some((w) => w.includes('/page?q=1')) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    } finally { (process.stdout as unknown as { write: typeof orig }).write = orig; await p.stop(); await a.close(); }
    const line = writes.find((w) => w.includes('/page?q=1'))!;
    expect(line).toMatch(/^127\.0\.0\.1 - - \[\d{2}\/[A-Z][a-z]{2}\/\d{4}:\d{2}:\d{2}:\d{2} \+0000\] "GET \/page\?q=1 HTTP\/1\.1" 200 (\d+) "http:\/\/ref\/" "ua \\"x\\""\n$/);
    // The size counts the head pairlb wrote, not only the one-byte body.
    expect(Number(/" 200 (\d+) "/.exec(line)![1])).toBeGreaterThan(40);
  });
});
