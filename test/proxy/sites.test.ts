import { afterEach, describe, expect, it } from 'vitest';
import { rawBackend, RawClient, type RawBackend } from '../helpers/raw-http.js';
import { startApp } from '../helpers/app.js';
import { sitesOf } from '../../src/config/sites.js';
import { parseConfig } from '../../src/config/load.js';
import { statsJson } from '../../src/stats/model.js';
import { adminActions } from '../../src/admin/api.js';
import { renderCsv } from '../../src/stats/csv.js';
import { buildTables } from '../../src/stats/model.js';
import { connect as tlsConnect } from 'node:tls';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { makeCa, makeLeaf } from '../helpers/certs.js';
import { tempDir } from '../daemon/daemon.js';

/**
 * Frontends and backends (docs/sites.md) with the real App in-process, real raw backends on port 0
 * and a raw client: exact bytes the backend received and the client got, then a second request on
 * the same connection.
 */

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => { while (cleanups.length) await cleanups.pop()!(); });

async function backends(...names: string[]): Promise<RawBackend[]> {
  const out = await Promise.all(names.map((n) => rawBackend(n)));
  for (const b of out) cleanups.push(() => b.close());
  return out;
}

const srv = (b: RawBackend, extra = ''): string => `{ name: ${b.name}, address: "${b.address}", check: false${extra} }`;

function client(port: number): RawClient {
  const c = new RawClient(port);
  cleanups.push(() => c.destroy());
  return c;
}

/** Names of the backends that got requests other than health checks, in order. */
const servedBy = (bs: RawBackend[], from = 0): string[] => bs.flatMap((b) => b.requests.slice(from).map((r) => ({ b: b.name, r })))
  .map((x) => x.b);

describe.each(['undici', 'native'] as const)('frontends and backends (engine %s)', (engine) => {
  it('two frontends share one pool (servers once in the backend set), a rule by host picks another; listen keeps working beside them', async () => {
    const [a, b, c, d] = await backends('a', 'b', 'c', 'd');
    const app = await startApp(`
listen:
  - { name: old, bind: "127.0.0.1:0", engine: ${engine}, backends: [${srv(d)}] }
frontends:
  - name: plain
    bind: "127.0.0.1:0"
    rules:
      - { when: { host: api.example.com }, backend: api }
    default_backend: web
  - { name: other, bind: "127.0.0.1:0", default_backend: web }
backends:
  - { name: web, engine: ${engine}, servers: [${srv(a)}, ${srv(b)}] }
  - { name: api, engine: ${engine}, servers: [${srv(c)}] }
`);
    cleanups.push(() => app.stop());
    expect(app.app.backends.all().map((x) => `${x.listen}/${x.name}`).sort()).toEqual(['api/c', 'old/d', 'web/a', 'web/b']);

    const p1 = client(app.port('plain'));
    const seq: string[] = [];
    for (const host of ['www.example.com', 'API.example.com:8080', 'www.example.com', 'api.example.com']) {
      p1.send(`GET /x HTTP/1.1\r\nHost: ${host}\r\n\r\n`);
      const r = (await p1.next())!;
      expect(r.status).toBe(200);
      seq.push(r.body.split(' ')[0]);
    }
    expect(seq).toEqual(['a', 'c', 'b', 'c']);
    const p2 = client(app.port('other'));
    p2.send('GET /y HTTP/1.1\r\nHost: api.example.com\r\n\r\n');
    expect((await p2.next())!.body).toBe('a 2');
    const p3 = client(app.port('old'));
    p3.send('GET /z HTTP/1.1\r\nHost: old.example.com\r\n\r\n');
    expect((await p3.next())!.body).toBe('d 1');
    // The API pool got exactly the client's request, X-Forwarded-Port of the frontend it came in on.
    expect(c.requests.map((r) => r.target)).toEqual(['/x', '/x']);
    expect(c.requests[0].headers.find(([k]) => k === 'X-Forwarded-Port')?.[1]).toBe(String(app.port('plain')));
    expect(servedBy([a, b, c, d])).toEqual(['a', 'a', 'b', 'c', 'c', 'd']);
    // Stats: one table per pool (backends pools name their frontends, totals are the pool's own),
    // the listen section as before, and the frontends with their own counters.
    const j = statsJson(app.app) as { listens: { name: string; frontends?: string[]; total: Record<string, unknown>; backends: { name: string }[] }[]; frontends: { name: string; rules: number; default_backend: string; total: Record<string, unknown> }[] };
    expect(j.listens.map((t) => [t.name, t.frontends ?? null, t.backends.map((x) => x.name), t.total.total])).toEqual([
      ['old', null, ['d'], 1], ['web', ['plain', 'other'], ['a', 'b'], 3], ['api', ['plain'], ['c'], 2],
    ]);
    expect(j.frontends.map((f) => [f.name, f.rules, f.default_backend, f.total.total])).toEqual([['plain', 1, 'web', 4], ['other', 0, 'web', 1]]);
    expect(renderCsv(buildTables(app.app)).split('\n').filter((l) => /^(web|api),/.test(l)).length).toBe(5);
  });
});

describe.each(['undici', 'native'] as const)('rule actions, raw bytes (engine %s)', (engine) => {
  async function setup(): Promise<{ port: number; w: RawBackend; api: RawBackend; app: Awaited<ReturnType<typeof startApp>> }> {
    const [w, api] = await backends('w', 'api');
    const app = await startApp(`
frontends:
  - name: fe
    bind: "127.0.0.1:0"
    rules:
      - when: { host: old.example.com }
        redirect: { prefix: "https://new.example.com", code: 301 }
      - when: { host: www.example.com, tls: false, path_prefix: /secure/ }
        redirect: { scheme: https, code: 308 }
      - when: { path_prefix: /admin/, not: { src: [10.0.0.0/8] } }
        deny: {}
      - when: { path_regex: "^/health$", method: [GET, HEAD] }
        return: { status: 200, body: "ok\\n" }
      - when: { host: api.example.com, header: { name: X-Key, equals: s3cret } }
        backend: api
        set_header: { X-Site: api, X-Key: redacted }
        del_header: [X-Debug]
        response_set_header: { X-Served-By: pairlb, Strict-Transport-Security: "max-age=600" }
        response_del_header: [X-Internal]
      - when: { host: api.example.com }
        deny: { status: 401 }
      - when: { host: nowhere.example.com }
        set_header: { X-Default: "1" }
    default_backend: www
backends:
  - { name: www, engine: ${engine}, servers: [${srv(w)}] }
  - { name: api, engine: ${engine}, servers: [${srv(api)}] }
`);
    cleanups.push(() => app.stop());
    return { port: app.port('fe'), w, api, app };
  }

  it('redirect, deny, return: exact answers, keep-alive kept, nothing reaches a backend; then a proxied request on the same connection', async () => {
    const { port, w, api } = await setup();
    const c = client(port);
    c.send('GET /a/b?x=1&y=2 HTTP/1.1\r\nHost: OLD.example.com:8080\r\n\r\n');
    let r = (await c.next())!;
    expect(r.head).toMatch(/^HTTP\/1\.1 301 /);
    expect(r.headers.location).toBe('https://new.example.com/a/b?x=1&y=2');
    expect(r.headers['content-length']).toBe('0');
    expect(r.headers.connection).not.toBe('close');
    c.send('GET /secure/p?q HTTP/1.1\r\nHost: www.example.com:8080\r\n\r\n');
    r = (await c.next())!;
    expect(r.status).toBe(308);
    expect(r.headers.location).toBe('https://www.example.com/secure/p?q');
    c.send('GET /admin/x HTTP/1.1\r\nHost: www.example.com\r\n\r\n');
    r = (await c.next())!;
    expect(r.status).toBe(403);
    expect(r.body).toContain('403 Forbidden');
    c.send('GET /health HTTP/1.1\r\nHost: a\r\n\r\nHEAD /health HTTP/1.1\r\nHost: a\r\n\r\n');
    r = (await c.next())!;
    expect([r.status, r.headers['content-type'], r.body]).toEqual([200, 'text/plain; charset=utf-8', 'ok\n']);
    r = (await c.next({ head: true }))!;
    expect([r.status, r.headers['content-length']]).toEqual([200, '3']);
    expect(w.requests.length + api.requests.length).toBe(0);
    // The same connection is still good for a proxied request.
    c.send('GET /after HTTP/1.1\r\nHost: www.example.com\r\n\r\n');
    r = (await c.next())!;
    expect([r.status, r.body]).toEqual([200, 'w 1']);
    expect(w.requests.map((x) => x.target)).toEqual(['/after']);
    expect(c.closed).toBe(false);
  });

  it('header edits: what the backend received and what the client got; HSTS never on a plain connection; a second request without the header is refused', async () => {
    const { port, api } = await setup();
    const c = client(port);
    c.send('GET /v1 HTTP/1.1\r\nHost: api.example.com\r\nX-Key: s3cret\r\nX-Debug: 1\r\nX-Site: forged\r\n\r\n');
    const r = (await c.next())!;
    expect([r.status, r.body]).toEqual([200, 'api 1']);
    expect(r.headers['x-served-by']).toBe('pairlb');
    expect(r.headers['strict-transport-security']).toBeUndefined();
    const got = api.requests[0].headers;
    const names = got.map(([k]) => k.toLowerCase());
    expect(names).not.toContain('x-debug');
    expect(got.filter(([k]) => k.toLowerCase() === 'x-site')).toEqual([['X-Site', 'api']]);
    expect(got.filter(([k]) => k.toLowerCase() === 'x-key')).toEqual([['X-Key', 'redacted']]);
    c.send('GET /v1 HTTP/1.1\r\nHost: api.example.com\r\n\r\n');
    const r2 = (await c.next())!;
    expect(r2.status).toBe(401);
    expect(r2.headers['x-served-by']).toBeUndefined();
    expect(api.requests).toHaveLength(1);
  });

  it('a rule with only header edits goes to default_backend; a deny of a request with a body closes its connection, another client is served', async () => {
    const { port, w } = await setup();
    const c = client(port);
    c.send('GET /d HTTP/1.1\r\nHost: nowhere.example.com\r\n\r\n');
    const r = (await c.next())!;
    expect(r.body).toBe('w 1');
    expect(w.requests[0].headers.find(([k]) => k === 'X-Default')).toEqual(['X-Default', '1']);
    c.send('POST /admin/x HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhelloGET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n');
    const d = (await c.next())!;
    expect(d.status).toBe(403);
    expect(d.headers.connection).toBe('close');
    expect(await c.waitClosed()).toBe('');
    expect(w.requests.map((x) => x.target)).toEqual(['/d']);
    const c2 = client(port);
    c2.send('GET /other HTTP/1.1\r\nHost: www.example.com\r\n\r\n');
    expect((await c2.next())!.body).toBe('w 2');
  });

  it('no rule and no default_backend: 404 page, counted on the frontend, the connection kept', async () => {
    const [b] = await backends('b');
    const app = await startApp(`
frontends:
  - name: fe
    bind: "127.0.0.1:0"
    rules: [{ when: { host: b.example.com }, backend: b }]
backends:
  - { name: b, engine: ${engine}, servers: [${srv(b)}] }
`);
    cleanups.push(() => app.stop());
    const c = client(app.port('fe'));
    c.send('GET / HTTP/1.1\r\nHost: unknown.example.com\r\n\r\n');
    const r = (await c.next())!;
    expect(r.status).toBe(404);
    expect(r.body).toContain('No site is configured');
    c.send('GET / HTTP/1.1\r\nHost: b.example.com\r\n\r\n');
    expect((await c.next())!.body).toBe('b 1');
    const fe = app.app.counters.listen('fe');
    expect([fe.total, fe.status[4], fe.status[2]]).toEqual([2, 1, 1]);
    const pool = app.app.counters.pool('b');
    expect([pool.total, pool.status[2], pool.cur]).toEqual([1, 1, 0]);
  });
});

describe('admin actions per pool', () => {
  it('draining a server of a pool shared by two frontends takes it out of both; the runtime state names the pool', async () => {
    const [a, b] = await backends('a', 'b');
    const app = await startApp(`
frontends:
  - { name: f1, bind: "127.0.0.1:0", default_backend: web }
  - { name: f2, bind: "127.0.0.1:0", default_backend: web }
backends:
  - { name: web, servers: [${srv(a)}, ${srv(b)}] }
`);
    cleanups.push(() => app.stop());
    adminActions(app.app).setState('web', 'a', 'drain', { user: 'test', via: 'api' } as Parameters<ReturnType<typeof adminActions>['setState']>[3]);
    const got: string[] = [];
    for (const fe of ['f1', 'f2', 'f1', 'f2']) {
      const c = client(app.port(fe));
      c.send('GET / HTTP/1.1\r\nHost: x\r\n\r\n');
      got.push((await c.next())!.body.split(' ')[0]);
    }
    expect(got).toEqual(['b', 'b', 'b', 'b']);
    expect(app.app.backends.exportRuntime().entries.map((e) => [e.listen, e.name, e.admin])).toEqual([['web', 'a', 'drain']]);
    expect(() => adminActions(app.app).list('f1')).toThrow(/no listen section named "f1"/);
  });
});

describe('a plain and a TLS frontend sharing a pool and a rule', () => {
  it('plain: `tls: false` redirects to https; TLS: proxied with X-Forwarded-Proto https and the rule\'s HSTS; one server set', async () => {
    const dir = tempDir('sites-tls');
    const ca = makeCa(join(dir, 'ca'));
    const leaf = makeLeaf(ca, 'shop', ['shop.example.test']);
    const [b] = await backends('s');
    const rules = `
    rules:
      - when: { tls: false }
        redirect: { scheme: https, code: 301 }
      - when: { host: shop.example.test }
        backend: shop
        response_set_header: { Strict-Transport-Security: "max-age=31536000" }`;
    const app = await startApp(`
frontends:
  - name: http
    bind: "127.0.0.1:0"${rules}
  - name: https
    bind: "127.0.0.1:0"
    tls: { certificates: [${leaf.bundle}] }${rules}
backends:
  - { name: shop, servers: [${srv(b)}] }
`);
    cleanups.push(() => app.stop());
    expect(app.app.backends.all().map((x) => `${x.listen}/${x.name}`)).toEqual(['shop/s']);
    const c = client(app.port('http'));
    c.send('GET /cart?id=7 HTTP/1.1\r\nHost: shop.example.test\r\n\r\n');
    const r = (await c.next())!;
    expect([r.status, r.headers.location, r.headers['strict-transport-security']]).toEqual([301, 'https://shop.example.test/cart?id=7', undefined]);
    expect(b.requests).toHaveLength(0);
    const sock = tlsConnect({ host: '127.0.0.1', port: app.port('https'), servername: 'shop.example.test', ca: readFileSync(ca.rootCert) });
    cleanups.push(() => sock.destroy());
    await new Promise<void>((ok, fail) => { sock.once('secureConnect', () => ok()); sock.once('error', fail); });
    let buf = '';
    sock.on('data', (d) => { buf += d.toString('latin1'); });
    sock.write('GET /cart?id=7 HTTP/1.1\r\nHost: shop.example.test\r\n\r\n');
    const end = Date.now() + 10_000;
    while (!/\r\n\r\ns 1$/.test(buf) && Date.now() < end) await new Promise((ok) => setTimeout(ok, 20));
    expect(buf).toMatch(/^HTTP\/1\.1 200 /);
    expect(buf).toMatch(/\r\nStrict-Transport-Security: max-age=31536000\r\n/i);
    expect(b.requests.map((x) => x.target)).toEqual(['/cart?id=7']);
    expect(b.requests[0].headers.find(([k]) => k === 'X-Forwarded-Proto')?.[1]).toBe('https');
  });
});

describe('normalized model', () => {
  it('a listen section is one frontend and one pool of its name, with every key carried over', () => {
    const cfg = parseConfig(`
listen:
  - name: web
    bind: "127.0.0.1:8080"
    engine: native
    retries: 4
    max_headers: 50
    timeouts: { connect: 1s, client: 7s }
    cookie: { name: SRV }
    backends: [{ name: a, address: "127.0.0.1:1" }]
`);
    const s = sitesOf(cfg);
    expect(s.frontends).toHaveLength(1);
    expect(s.frontends[0]).toMatchObject({ name: 'web', bind: '127.0.0.1:8080', max_headers: 50, rules: [], default_backend: 'web', from: 'listen' });
    expect(s.frontends[0].timeouts).toEqual({ client: 7000, http_request: 10000, client_body: 10000, tunnel: 3_600_000, drain: 30000 });
    expect(s.pools[0]).toMatchObject({ name: 'web', engine: 'native', retries: 4, cookie: { name: 'SRV' }, from: 'listen', frontends: ['web'] });
    expect(s.pools[0].timeouts).toEqual({ connect: 1000, server: 30000 });
    expect(s.pools[0].servers.map((x) => x.name)).toEqual(['a']);
    expect(sitesOf(cfg)).toBe(s);
  });
});
