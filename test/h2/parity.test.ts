import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connect as h2connect, type ClientHttp2Session, type OutgoingHttpHeaders } from 'node:http2';
import { startApp } from '../helpers/app.js';
import { startBackend, type TestBackend } from '../helpers/backend.js';
import type { App } from '../../src/app.js';
import { H2Conn, fieldBlock, headers } from '../helpers/h2-frames.js';
import { h2Request as req, type H2Answer as Answer } from '../helpers/h2-request.js';
import { connect as tlsConnect } from 'node:tls';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { makeCa, makeLeaf } from '../helpers/certs.js';
import { parseConfig } from '../../src/config/load.js';

/**
 * What HTTP/1.1 has works the same over HTTP/2 (issue 16), each stream through the one request
 * pipeline: rules, stickiness, retries and redispatch with a server killed mid-test, counters
 * (a stream is a request), a refused stream never counting against a server, HA connection
 * closing, a server dying mid-body. In-process App (h2c on a plain bind: the TLS dispatch is
 * test/h2/core.test.ts's), with the data plane in this thread and in two workers.
 */

/**
 * A port nothing listens on: 1 (tcpmux) needs root to bind, so no other test's server takes it
 * (a port freed by a test may be bound by a parallel test's process before we connect).
 */
const REFUSED = 1;


function statsPort(a: App): number {
  const m = a.modules.find((x) => x.name === 'stats') as unknown as { address(): { port: number } };
  return m.address().port;
}

describe.each([0, 2])('HTTP/2 parity with HTTP/1.1 (workers %d)', (workers) => {
  let a1: TestBackend; let a2: TestBackend; let b1: TestBackend; let r1: TestBackend; let slow: TestBackend;
  let p: Awaited<ReturnType<typeof startApp>>;
  let s: ClientHttp2Session;
  let releaseSlow: (() => void)[] = [];

  beforeAll(async () => {
    a1 = await startBackend('a1'); a2 = await startBackend('a2'); b1 = await startBackend('b1'); r1 = await startBackend('r1');
    // Headers and half a body, then (on release) the connection dies: a failure mid-body.
    slow = await startBackend('slow', (req, res) => {
      // /mid-chunked: no length (chunked), so only a reset tells the client the body is cut.
      res.writeHead(200, req.url === '/mid-chunked' ? {} : { 'content-length': '100' });
      res.write('x'.repeat(50));
      releaseSlow.push(() => res.destroy());
      return true;
    });
    p = await startApp(`frontends:
  - name: fe
    bind: 127.0.0.1:0
    h2c: true
    rules:
      - when: { host: [b.test] }
        backend: poolb
      - when: { host: [retry.test] }
        backend: retry
      - when: { host: [slow.test] }
        backend: slow
    default_backend: poola
backends:
  - name: poola
    cookie: { name: SRV }
    servers:
      - { name: a1, address: ${a1.address}, check: false }
      - { name: a2, address: ${a2.address}, check: false }
  - name: poolb
    servers: [ { name: b1, address: ${b1.address}, check: false } ]
  - name: retry
    servers:
      - { name: dead, address: 127.0.0.1:${REFUSED}, check: false }
      - { name: r1, address: ${r1.address}, check: false }
  - name: slow
    retries: 0
    servers: [ { name: slow, address: ${slow.address}, check: false } ]
stats:
  bind: 127.0.0.1:0
  auth: []
`, { workers });
    s = h2connect(`http://127.0.0.1:${p.port('fe')}`);
    s.on('error', () => {});
  });

  afterAll(async () => {
    s?.close();
    for (const r of releaseSlow) r();
    await p?.stop();
    for (const b of [a1, a2, b1, r1, slow]) await b?.close();
  });

  const get = (path: string, host = 'a.test', extra: OutgoingHttpHeaders = {}) => req(s, { ':method': 'GET', ':path': path, ':authority': host, ...extra });

  it('rules route by :authority', async () => {
    const [x, y] = await Promise.all([get('/rule', 'b.test'), get('/rule', 'a.test')]);
    expect(x.body).toBe('b1');
    expect(['a1', 'a2']).toContain(y.body);
    expect(b1.seen.at(-1)!.headers.host).toBe('b.test');
  });

  it('sticky cookie (insert): the first answer sets it, streams that send it stay on its server', async () => {
    const first = await get('/sticky');
    const set = first.headers['set-cookie'] as string[];
    expect(set).toHaveLength(1);
    const cookie = set[0].split(';')[0];
    expect(cookie).toMatch(/^SRV=/);
    const rs = await Promise.all(Array.from({ length: 10 }, () => get('/sticky', 'a.test', { cookie: [cookie, 'other=1'] as unknown as string })));
    expect(new Set(rs.map((r) => r.body))).toEqual(new Set([first.body]));
    // The client presented the right cookie: not set again.
    expect(rs.every((r) => r.headers['set-cookie'] === undefined)).toBe(true);
    // Without a cookie: both servers (round robin).
    const free = await Promise.all(Array.from({ length: 6 }, () => get('/free')));
    expect(new Set(free.map((r) => r.body))).toEqual(new Set(['a1', 'a2']));
  });

  it('a server that refuses connections: every stream redispatched to the other one; one killed mid-test: no stream fails', async () => {
    const rs = await Promise.all(Array.from({ length: 8 }, (_, i) => get(`/retry/${i}`, 'retry.test')));
    expect(rs.map((r) => [r.status, r.body])).toEqual(Array.from({ length: 8 }, () => [200, 'r1']));
    // a2 dies while streams are spread over a1 and a2 (keep-alive pools): none of them fails.
    const before = a2.seen.length;
    const wave = Array.from({ length: 20 }, (_, i) => get(`/kill/${i}`));
    await expect.poll(() => a2.seen.length, { timeout: 5000 }).toBeGreaterThan(before);
    await a2.close();
    const more = Array.from({ length: 20 }, (_, i) => get(`/after-kill/${i}`));
    const all = await Promise.all([...wave, ...more]);
    expect(all.filter((r) => r.status !== 200)).toEqual([]);
    expect(all.slice(20).every((r) => r.body === 'a1')).toBe(true);
  });

  // With a length (the client never takes the half body for a whole one) and without (a chunked
  // upstream): RST_STREAM INTERNAL_ERROR, never END_STREAM; the session goes on.
  it.each([['/mid-body', 'with a length'], ['/mid-chunked', 'chunked upstream']])('a server dying mid-body (%s, %s) resets the stream', async (path) => {
    const st = s.request({ ':method': 'GET', ':path': path, ':authority': 'slow.test' });
    let got = 0;
    st.on('data', (d: Buffer) => { got += d.length; });
    const end = new Promise<string>((ok) => { st.on('end', () => ok('end')); st.on('error', (e: Error & { code?: string }) => ok(e.code ?? e.message)); st.on('close', () => ok(`close ${st.rstCode}`)); });
    await expect.poll(() => got, { timeout: 5000 }).toBe(50);
    for (const r of releaseSlow.splice(0)) r();
    expect(await end).toBe('ERR_HTTP2_STREAM_ERROR');
    expect(st.rstCode).toBe(2 /* INTERNAL_ERROR */);
    expect((await get(`/after${path}`, 'b.test')).body).toBe('b1');
  });

  it('counters: each stream is a request of the frontend, the pool and the server; refused streams count against none of the servers', async () => {
    const base = `http://127.0.0.1:${statsPort(p.app)}`;
    type Row = { name: string; total: number; err_req: number; status: string };
    const read = async () => (await (await fetch(base + '/stats.json')).json()) as { listens: { name: string; total: Row; backends: Row[] }[]; frontends: { name: string; total: Row }[] };
    const pool = async (n: string) => (await read()).listens.find((l) => l.name === n)!;
    const b0 = (await pool('poolb')).total.total;
    await Promise.all(Array.from({ length: 12 }, (_, i) => get(`/count/${i}`, 'b.test')));
    await expect.poll(async () => (await pool('poolb')).total.total, { timeout: 5000 }).toBe(b0 + 12);
    const srv = (await pool('poolb')).backends.find((b) => b.name === 'b1')!;
    expect(srv.total).toBe(b1.seen.length);
    // Bad streams (Host ≠ :authority, CONNECT, a fragment): refused before any pool; the next stream on the connection is served.
    const seen = b1.seen.length;
    const bad = await Promise.all([
      get('/bad', 'b.test', { host: 'evil.test' }),
      req(s, { ':method': 'CONNECT', ':authority': 'b.test:443' }).catch(() => ({ status: -1 })),
    ]);
    expect(bad.map((r) => r.status)).toEqual([400, 501]);
    const c = await H2Conn.h2c(p.port('fe'));
    c.write(headers(1, fieldBlock([[':method', 'GET'], [':scheme', 'http'], [':path', '/a#frag'], [':authority', 'b.test']]), { endStream: true }));
    expect(await c.answer(1)).toEqual({ status: 400 });
    c.destroy();
    expect(b1.seen.length).toBe(seen);
    expect((await get('/after-bad', 'b.test')).body).toBe('b1');
    const after = await read();
    // The frontend counted the streams and the three refusals; the server none of the refusals.
    await expect.poll(async () => (await read()).frontends.find((f) => f.name === 'fe')!.total.err_req, { timeout: 5000 }).toBeGreaterThanOrEqual(3);
    const pb = (await read()).listens.find((l) => l.name === 'poolb')!;
    expect(pb.backends.map((b) => [b.status, b.err_req, b.total])).toEqual([['UP', 0, b1.seen.length]]);
  });

  it('a released VIP closes HTTP/2 connections to it as HTTP/1.1 ones (destroyConnectionsTo)', async () => {
    const s2 = h2connect(`http://127.0.0.1:${p.port('fe')}`);
    s2.on('error', () => {});
    expect((await req(s2, { ':method': 'GET', ':path': '/vip', ':authority': 'b.test' })).body).toBe('b1');
    const closed = new Promise<void>((ok) => s2.on('close', () => ok()));
    expect(await p.app.proxy.destroyConnectionsTo('127.0.0.2')).toBe(0);
    // Both sessions (s and s2) are connections to 127.0.0.1.
    expect(await p.app.proxy.destroyConnectionsTo('127.0.0.1')).toBeGreaterThanOrEqual(1);
    await closed;
    s = h2connect(`http://127.0.0.1:${p.port('fe')}`);
    s.on('error', () => {});
    expect((await get('/after-vip', 'b.test')).body).toBe('b1');
  });
});

describe('HTTP/2 streams under limits and queues', () => {
  let slow: TestBackend;
  let p: Awaited<ReturnType<typeof startApp>>;
  let inFlight = 0;
  let maxInFlight = 0;

  beforeAll(async () => {
    slow = await startBackend('q1', (_req, res) => {
      inFlight++;
      maxInFlight = Math.max(maxInFlight, inFlight);
      setTimeout(() => { inFlight--; res.end('q1'); }, 20);
      return true;
    });
    p = await startApp(`frontends:
  - name: queued
    bind: 127.0.0.1:0
    h2c: true
    default_backend: q
  - name: rated
    bind: 127.0.0.1:0
    h2c: true
    limits: { rate_per_source: 3, rate_period: 10s }
    default_backend: q
  - name: conns
    bind: 127.0.0.1:0
    h2c: true
    limits: { conn_per_source: 1 }
    default_backend: q
backends:
  - name: q
    servers: [ { name: q1, address: ${slow.address}, check: false, maxconn: 1 } ]
`);
  });
  afterAll(async () => { await p?.stop(); await slow?.close(); });

  const open = (fe: string) => { const s = h2connect(`http://127.0.0.1:${p.port(fe)}`); s.on('error', () => {}); return s; };
  const get = (s: ClientHttp2Session, path: string) => req(s, { ':method': 'GET', ':path': path, ':authority': 'q.test' });

  it('server maxconn 1: ten concurrent streams of one connection wait in the queue, one at a time at the server, all served', async () => {
    const s = open('queued');
    const rs = await Promise.all(Array.from({ length: 10 }, (_, i) => get(s, `/q/${i}`)));
    expect(rs.map((r) => r.status)).toEqual(Array(10).fill(200));
    expect(maxInFlight).toBe(1);
    s.close();
  });

  it('rate_per_source: the stream over the rate gets 429 with Retry-After, then GOAWAY (as an HTTP/1.1 connection is closed)', async () => {
    const s = open('rated');
    const goaway = new Promise<void>((ok) => s.on('goaway', () => ok()));
    for (let i = 0; i < 3; i++) expect((await get(s, `/r/${i}`)).status).toBe(200);
    const over = await get(s, '/r/over');
    expect(over.status).toBe(429);
    expect(Number(over.headers['retry-after'])).toBeGreaterThan(0);
    await goaway;
    s.close();
  });

  it('conn_per_source 1: a second connection\'s streams get 429 and it is closed; the first goes on', async () => {
    const a = open('conns');
    expect((await get(a, '/c/1')).status).toBe(200);
    const b = open('conns');
    const closed = new Promise<void>((ok) => b.on('close', () => ok()));
    expect((await get(b, '/c/2')).status).toBe(429);
    await closed;
    expect((await get(a, '/c/3')).status).toBe(200);
    a.close();
  });
});

describe('h2 turned off and on by a reload (TLS bind)', () => {
  it('new handshakes follow the ALPN list of the running config; an open session gets GOAWAY when h2 goes off', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'h2c-alpn-'));
    const ca = makeCa(join(dir, 'ca'));
    const leaf = makeLeaf(ca, 'a', ['a.example.test']);
    const b = await startBackend('b');
    const yaml = (h2: boolean) => `listen:\n  - name: web\n    bind: 127.0.0.1:0\n    h2: ${h2}\n    tls: { certificates: [${leaf.bundle}] }\n    backends: [ { name: b, address: ${b.address}, check: false } ]\n`;
    const p = await startApp(yaml(true));
    const alpn = () => new Promise<string | false>((ok, fail) => {
      const t = tlsConnect({ host: '127.0.0.1', port: p.port(), servername: 'a.example.test', ca: readFileSync(ca.rootCert), ALPNProtocols: ['h2', 'http/1.1'] }, () => { const x = t.alpnProtocol; t.end(); ok(x); });
      t.on('error', fail);
    });
    try {
      expect(await alpn()).toBe('h2');
      const s = h2connect(`https://a.example.test:${p.port()}`, { ca: readFileSync(ca.rootCert), host: '127.0.0.1', servername: 'a.example.test' } as never);
      s.on('error', () => {});
      expect((await req(s, { ':method': 'GET', ':path': '/' })).body).toBe('b');
      const goaway = new Promise<void>((ok) => s.on('goaway', () => ok()));
      await p.app.reload(parseConfig(yaml(false)));
      await goaway;
      expect(await alpn()).toBe('http/1.1');
      await p.app.reload(parseConfig(yaml(true)));
      expect(await alpn()).toBe('h2');
    } finally { await p.stop(); await b.close(); rmSync(dir, { recursive: true, force: true }); }
  });
});
