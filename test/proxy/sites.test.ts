import { afterEach, describe, expect, it } from 'vitest';
import { rawBackend, RawClient, type RawBackend } from '../helpers/raw-http.js';
import { startApp } from '../helpers/app.js';
import { sitesOf } from '../../src/config/sites.js';
import { parseConfig } from '../../src/config/load.js';

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
