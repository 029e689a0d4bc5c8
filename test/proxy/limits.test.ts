import { afterEach, describe, expect, it } from 'vitest';
import { startApp } from '../helpers/app.js';
import { RawClient, rawBackend, type RawBackend } from '../helpers/raw-http.js';
import { untilTrue } from '../helpers/netns.js';
import { connect as tlsConnect } from 'node:tls';
import { join } from 'node:path';
import { readFileSync, rmSync } from 'node:fs';
import { makeCa, makeLeaf } from '../helpers/certs.js';
import { tempDir } from '../daemon/daemon.js';
import { ClientTable } from '../../src/proxy/client-limits.js';
import { SourceFilter, cidrList } from '../../src/config/cidr.js';

/**
 * Per-client limits, allow/deny lists and connection modes (issue 14). Pure parts with a fake
 * clock; the rest against the real App with raw clients from several loopback sources
 * (127.0.0.1, 127.0.0.2…: distinct clients to the proxy) and a raw recording backend.
 * Figures printed with `LIMITS` are quoted in the issue note.
 */

const GET = (path: string) => `GET ${path} HTTP/1.1\r\nHost: app\r\n\r\n`;

describe('ClientTable (pure, fake clock)', () => {
  const policy = { conn: 2, rate: 10, period: 1000, size: 16, expire: 5000 };

  it('sliding window: 10 per second, the previous second weighs by what is left of it', () => {
    const t = new ClientTable({ ...policy });
    const e = t.connect('10.0.0.1', 0)!;
    const admitted = (now: number, n: number) => { let k = 0; for (let i = 0; i < n; i++) if (t.request(e, now)) k++; return k; };
    expect(admitted(0, 15)).toBe(10);
    expect(admitted(999, 5)).toBe(0);
    // Half of the previous second still in the window: 10 * 0.5 = 5 counted, 5 more admitted.
    expect(admitted(1500, 10)).toBe(5);
    // 2.0 s: previous period (1-2 s) had 5, fully weighted at its end: 5 more.
    expect(admitted(2000, 10)).toBe(5);
    // Two idle periods later the window is empty.
    expect(admitted(5000, 20)).toBe(10);
    t.clear();
  });

  it.each([
    // [requests admitted at 0 ms, refused at (ms), Retry-After s]: 10 per 1000 ms window.
    [10, 0, 2], // full at 0: at 1000 ms the window still counts 10 (refused), just after it admits → 2 s
    [10, 400, 1], // 600 ms left → 1 s (rounded up)
  ])('Retry-After: %i admitted at 0, refused at %i ms → %i s', (n, at, want) => {
    const t = new ClientTable({ ...policy });
    const e = t.connect('10.0.0.1', 0)!;
    for (let i = 0; i < n; i++) t.request(e, 0);
    expect(t.request(e, at)).toBe(false);
    expect(t.retryAfter(e, at)).toBe(want);
    t.clear();
  });

  it('Retry-After is the time until the sliding window admits one more request (10 per 10 s)', () => {
    const t = new ClientTable({ ...policy, period: 10_000 });
    const e = t.connect('10.0.0.1', 0)!;
    // 10 at 0 s; at 10 s the previous period weighs 10·(10−0)/10 = 10: full. Each second of the
    // next period takes 1 off, so the 11th fits just after 11 s: from 10.0 s, wait 1 s.
    for (let i = 0; i < 10; i++) t.request(e, 0);
    expect(t.retryAfter(e, 3000)).toBe(8); // 7 s to the period's end, then 1 s of sliding
    expect(t.retryAfter(e, 10_000)).toBe(1);
    // Now 5 admitted in the new period at 15 s (prev 10 weighs 5): rate 10, full.
    for (let i = 0; i < 5; i++) expect(t.request(e, 15_000)).toBe(true);
    expect(t.request(e, 15_000)).toBe(false);
    // rate(t) = 5 + 10·(10−t)/10 < 10 ⇔ t > 5 s into the period, which is now: just after → 1 s.
    expect(t.retryAfter(e, 15_000)).toBe(1);
    // Checked against request(): waiting what it says admits, one second less does not.
    for (let i = 0; i < 4; i++) t.request(e, 16_000);
    const ra = t.retryAfter(e, 16_000);
    expect(t.request(e, 16_000 + (ra - 1) * 1000)).toBe(false);
    expect(t.request(e, 16_000 + ra * 1000)).toBe(true);
    // Over the connection count: 1.
    expect(t.retryAfter(undefined, 16_000)).toBe(1);
    t.clear();
  });

  it('concurrent connections per source; another source and a closed connection make room', () => {
    const t = new ClientTable({ ...policy });
    const a1 = t.connect('10.0.0.1', 0)!, a2 = t.connect('10.0.0.1', 0);
    expect(a2).not.toBeNull();
    expect(t.connect('10.0.0.1', 0)).toBeNull();
    expect(t.connect('::ffff:10.0.0.1', 0)).toBeNull(); // the same client over IPv4-mapped IPv6
    expect(t.connect('10.0.0.2', 0)).not.toBeNull();
    t.disconnect(a1, 1);
    expect(t.connect('10.0.0.1', 1)).not.toBeNull();
    // IPv6 sources are tracked by /64.
    t.connect('2001:db8:1:2::1', 0); t.connect('2001:db8:1:2::ffff', 0);
    expect(t.connect('2001:db8:1:2:abcd::1', 0)).toBeNull();
    t.clear();
  });

  it('bounded: beyond table_size the least recently connected source is evicted; idle sources expire', () => {
    const t = new ClientTable({ ...policy, conn: 0 });
    const es = Array.from({ length: 20 }, (_, i) => t.connect(`10.0.1.${i}`, i)!);
    expect([t.size, t.evictions]).toEqual([16, 4]);
    expect(t.get('10.0.1.0')).toBeUndefined();
    expect(t.get('10.0.1.19')).toBeDefined();
    for (const e of es.slice(4, 19)) t.disconnect(e, 100);
    t.sweep(100 + 4999);
    expect(t.size).toBe(16);
    t.sweep(100 + 5000);
    expect(t.size).toBe(1); // 10.0.1.19 still has its connection open
    t.clear();
  });
});

describe('SourceFilter', () => {
  it.each([
    [[], [], '10.1.2.3', true],
    [['10.0.0.0/8'], [], '10.1.2.3', true],
    [['10.0.0.0/8'], [], '192.0.2.1', false],
    [['10.0.0.0/8'], ['10.9.0.0/16'], '10.9.1.1', false],
    [[], ['192.0.2.7'], '192.0.2.7', false],
    [[], ['192.0.2.7'], '::ffff:192.0.2.7', false],
    [['2001:db8::/32'], [], '2001:db8::1', true],
    [['2001:db8::/32'], [], '2001:db9::1', false],
  ])('allow %j deny %j: %s → %s', (allow, deny, addr, ok) => {
    expect(new SourceFilter(cidrList.parse(allow), cidrList.parse(deny)).admits(addr)).toBe(ok);
  });

  it('refuses what is not an address or CIDR', () => {
    for (const bad of ['10.0.0.0/33', 'example.com', '10.0.0/8', '2001:db8::/129', '10.0.0.1/x']) expect(cidrList.safeParse([bad]).success, bad).toBe(false);
  });
});

type Running = Awaited<ReturnType<typeof startApp>>;

describe('per-client limits, allow/deny, connection modes (real App)', () => {
  const cleanups: (() => Promise<void> | void)[] = [];
  afterEach(async () => { while (cleanups.length) await cleanups.pop()!(); });

  async function setup(extra: string, engine = 'undici'): Promise<{ lb: Running; be: RawBackend }> {
    const be = await rawBackend('a');
    cleanups.push(() => be.close());
    const lb = await startApp(`global:\n  log:\n    access: off\nlisten:\n  - name: web\n    bind: 127.0.0.1:0\n    engine: ${engine}\n    check:\n      type: tcp\n      interval: 60s\n${extra}    backends:\n      - name: a\n        address: ${be.address}\n        check: false\n`);
    cleanups.push(() => lb.stop());
    return { lb, be };
  }
  const client = (lb: Running, from?: string) => { const c = new RawClient(lb.port(), from); cleanups.push(() => c.destroy()); return c; };

  it('rate_per_source 5 per 10 s: the 6th request gets 429 and a close; another source is served; none of the refused reach the backend', async () => {
    const { lb, be } = await setup('    limits:\n      rate_per_source: 5\n      rate_period: 10s\n');
    const c = client(lb);
    const got: number[] = [];
    for (let i = 0; i < 5; i++) { c.send(GET(`/${i}`)); got.push((await c.next())!.status); }
    c.send(GET('/over'));
    const over = (await c.next())!;
    expect(got).toEqual([200, 200, 200, 200, 200]);
    expect([over.status, over.headers.connection]).toEqual([429, 'close']);
    // Five at once, refused at once after: the window frees as the burst slides out, ≤ 10 s.
    const ra = Number(over.headers['retry-after']);
    expect(ra).toBeGreaterThanOrEqual(1);
    expect(ra).toBeLessThanOrEqual(10);
    await c.waitClosed();
    // A new connection of the same source is still over the rate; another source is not.
    const c2 = client(lb);
    c2.send(GET('/again'));
    expect((await c2.next())!.status).toBe(429);
    const d = client(lb, '127.0.0.2');
    d.send(GET('/other'));
    expect((await d.next())!.status).toBe(200);
    expect(be.requests.map((r) => r.target)).toEqual(['/0', '/1', '/2', '/3', '/4', '/other']);
    const l = lb.app.counters.listen('web');
    expect([l.limited, l.errReq, lb.app.counters.backend(lb.app.backends.get('web', 'a')!.id).errResp]).toEqual([2, 0, 0]);
    console.log(`LIMITS rate 5/10s: 5 x 200 then 429 (connection: close), new connection same source 429, other source 200; limited=${l.limited}, backend saw ${be.requests.length}`);
  });

  it('conn_per_source 2: a third connection of the source gets 429; closing one makes room; HA role change clears the table', async () => {
    const { lb, be } = await setup('    limits:\n      conn_per_source: 2\n      rate_per_source: 3\n');
    const a = client(lb), b = client(lb);
    await Promise.all([a.ready, b.ready]);
    a.send(GET('/a')); b.send(GET('/b'));
    expect([(await a.next())!.status, (await b.next())!.status]).toEqual([200, 200]);
    const c = client(lb);
    c.send(GET('/c'));
    expect((await c.next())!.status).toBe(429);
    await c.waitClosed();
    const li = lb.app.proxy.listeners.get('web')!;
    a.destroy();
    await untilTrue(() => li.clients.get('127.0.0.1')?.conns === 1, 5000, 'a closed');
    const d = client(lb);
    d.send(GET('/d'));
    expect((await d.next())!.status).toBe(200);
    // 3 of 3 requests used: over the rate now.
    b.send(GET('/b2'));
    expect((await b.next())!.status).toBe(429);
    // What HA does on a role change (App 'role' event): the table starts afresh, no stale ban.
    lb.app.emit('role', 'backup', 'test');
    expect(li.clients.size).toBe(0);
    const e = client(lb);
    e.send(GET('/e'));
    expect((await e.next())!.status).toBe(200);
    // /a and /b are sent at once on two connections: either may reach the backend first.
    expect(be.requests.map((r) => r.target).sort()).toEqual(['/a', '/b', '/d', '/e']);
    expect(lb.app.counters.listen('web').limited).toBe(2);
  });

  it('allow/deny on a listen section: refused sources are closed at accept and counted', async () => {
    const { lb, be } = await setup('    allow:\n      - 127.0.0.0/8\n    deny:\n      - 127.0.0.3\n');
    const ok = client(lb, '127.0.0.2');
    ok.send(GET('/ok'));
    expect((await ok.next())!.status).toBe(200);
    const no = client(lb, '127.0.0.3');
    no.send(GET('/no'));
    expect(await no.next()).toBeNull();
    expect(lb.app.counters.listen('web').deniedConn).toBe(1);
    expect(be.requests.map((r) => r.target)).toEqual(['/ok']);
  });

  it('allow/deny on the stats and admin binds', async () => {
    const be = await rawBackend('a');
    cleanups.push(() => be.close());
    const lb = await startApp(`listen:\n  - name: web\n    bind: 127.0.0.1:0\n    backends:\n      - name: a\n        address: ${be.address}\n        check: false\nstats:\n  bind: 127.0.0.1:0\n  allow:\n    - 127.0.0.2\nadmin:\n  bind: 127.0.0.1:0\n  token: 0123456789abcdef0123\n  deny:\n    - 127.0.0.1\n`);
    cleanups.push(() => lb.stop());
    const mod = (n: string) => lb.app.modules.find((m) => m.name === n) as unknown as { address(): { port: number } };
    const statsPort = mod('stats').address().port;
    const adminPort = mod('admin').address().port;
    const ask = async (port: number, from: string, path: string, auth = '') => {
      const c = new RawClient(port, from);
      cleanups.push(() => c.destroy());
      c.send(`GET ${path} HTTP/1.1\r\nHost: x\r\n${auth}\r\n`);
      return (await c.next())?.status ?? null;
    };
    expect(await ask(statsPort, '127.0.0.1', '/')).toBeNull();
    expect(await ask(statsPort, '127.0.0.2', '/')).toBe(200);
    const bearer = 'Authorization: Bearer 0123456789abcdef0123\r\n';
    expect(await ask(adminPort, '127.0.0.1', '/v1/status', bearer)).toBeNull();
    expect(await ask(adminPort, '127.0.0.2', '/v1/status', bearer)).toBe(200);
  });

  it('on a TLS bind the limits apply to the connection that was admitted (rate 2: third request 429)', async () => {
    const dir = tempDir('limits-tls');
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    const ca = makeCa(join(dir, 'ca'));
    const leaf = makeLeaf(ca, 'a', ['a.example.test']);
    const { lb, be } = await setup(`    tls:\n      certificates:\n        - ${leaf.bundle}\n    limits:\n      rate_per_source: 2\n`);
    const statuses: number[] = [];
    const s = tlsConnect({ host: '127.0.0.1', port: lb.port(), servername: 'a.example.test', ca: [readFileSync(ca.rootCert)] });
    cleanups.push(() => s.destroy());
    let buf = '';
    s.on('data', (d) => { buf += d.toString('latin1'); });
    s.on('error', () => {});
    await new Promise((ok) => s.once('secureConnect', ok));
    // One complete response (head + Content-Length body) off the front of buf.
    const full = (): number => {
      const e = buf.indexOf('\r\n\r\n');
      if (e < 0) return -1;
      const n = Number(/content-length: *(\d+)/i.exec(buf.slice(0, e))?.[1] ?? 0);
      return buf.length >= e + 4 + n ? e + 4 + n : -1;
    };
    for (let i = 0; i < 3; i++) {
      s.write(GET(`/t${i}`));
      await untilTrue(() => full() > 0, 5000, `response ${i}`);
      statuses.push(Number(/^HTTP\/1\.1 (\d{3})/.exec(buf)![1]));
      buf = buf.slice(full());
    }
    expect(statuses).toEqual([200, 200, 429]);
    expect(be.requests.map((r) => r.target)).toEqual(['/t0', '/t1']);
  });

  describe.each(['undici', 'native'])('connection_mode (engine %s)', (engine) => {
    it('http-server-close: one client connection, a new backend connection per request', async () => {
      const { lb, be } = await setup('    connection_mode: http-server-close\n', engine);
      const c = client(lb);
      for (let i = 0; i < 3; i++) { c.send(GET(`/${i}`)); const r = (await c.next())!; expect(r.status).toBe(200); expect(r.headers.connection).not.toBe('close'); }
      expect(c.closed).toBe(false);
      expect(be.requests.map((r) => r.conn)).toEqual([1, 2, 3]);
      for (const r of be.requests) expect(r.headers.find(([k]) => k.toLowerCase() === 'connection')?.[1].toLowerCase()).toBe('close');
    });

    it('httpclose: the client connection is closed after the response too', async () => {
      const { lb, be } = await setup('    connection_mode: httpclose\n', engine);
      const c = client(lb);
      c.send(GET('/1'));
      const r = (await c.next())!;
      expect([r.status, r.headers.connection]).toEqual([200, 'close']);
      await c.waitClosed();
      const c2 = client(lb);
      c2.send(GET('/2'));
      expect((await c2.next())!.status).toBe(200);
      expect(be.requests.map((x) => x.conn)).toEqual([1, 2]);
    });

    it('http-keep-alive (default): both sides reuse their connections', async () => {
      const { lb, be } = await setup('', engine);
      const c = client(lb);
      for (let i = 0; i < 3; i++) { c.send(GET(`/${i}`)); expect((await c.next())!.status).toBe(200); }
      expect(be.requests.map((r) => r.conn)).toEqual([1, 1, 1]);
    });
  });
});

