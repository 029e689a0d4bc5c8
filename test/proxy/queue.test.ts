import { afterEach, describe, expect, it } from 'vitest';
import { request, type IncomingMessage, type ServerResponse } from 'node:http';
import { connect } from 'node:net';
import { startApp } from '../helpers/app.js';
import { startBackend, type TestBackend } from '../helpers/backend.js';
import { untilTrue } from '../helpers/netns.js';
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { tempDir } from '../daemon/daemon.js';

/**
 * Server maxconn and its queues (issue 14): real backends on port 0, the real App in-process.
 * Figures printed with `QUEUE` are quoted in the issue note.
 */

type Running = Awaited<ReturnType<typeof startApp>>;

function get(port: number, path = '/', headers: Record<string, string> = {}): Promise<{ status: number; body: string; headers: IncomingMessage['headers'] }> {
  return new Promise((ok, fail) => {
    const r = request({ host: '127.0.0.1', port, path, headers, agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c) => (body += c));
      res.on('end', () => ok({ status: res.statusCode!, body, headers: res.headers }));
    });
    r.on('error', fail);
    r.end();
  });
}

/** A backend that holds every request until `release()`; counts how many it holds at once. */
async function holdingBackend(name: string): Promise<TestBackend & { held: ServerResponse[]; maxAtOnce: number; release(n?: number): void }> {
  const held: ServerResponse[] = [];
  const o = { held, maxAtOnce: 0, release: (n = held.length) => { for (const r of held.splice(0, n)) r.end(name); } };
  const b = await startBackend(name, (_req, res) => {
    held.push(res);
    res.writeHead(200, { 'content-type': 'text/plain', 'x-backend': name });
    o.maxAtOnce = Math.max(o.maxAtOnce, held.length);
    return true;
  });
  return Object.assign(b, o);
}

const cfg = (backends: string, extra = '') => `global:\n  log:\n    access: off\nlisten:\n  - name: web\n    bind: 127.0.0.1:0\n    check:\n      type: tcp\n      interval: 60s\n${extra}    backends:\n${backends}`;

describe('server maxconn and the queue', () => {
  const cleanups: (() => Promise<void> | void)[] = [];
  afterEach(async () => { while (cleanups.length) await cleanups.pop()!(); });

  it('maxconn 2, 50 concurrent slow requests: the backend never holds more than 2, none is lost', async () => {
    let inFlight = 0, maxInFlight = 0;
    const be = await startBackend('a', (_req, res) => {
      maxInFlight = Math.max(maxInFlight, ++inFlight);
      // Slow: the answer leaves 20 ms later (the backend's behaviour, not a wait of the test).
      setTimeout(() => { inFlight--; res.end('a'); }, 20);
      return true;
    });
    cleanups.push(() => be.close());
    const lb: Running = await startApp(cfg(`      - name: a\n        address: ${be.address}\n        maxconn: 2\n`, '    timeouts:\n      queue: 60s\n'));
    cleanups.push(() => lb.stop());
    const t0 = performance.now();
    const res = await Promise.all(Array.from({ length: 50 }, (_, i) => get(lb.port(), `/r${i}`)));
    const ms = performance.now() - t0;
    expect(res.map((r) => r.status)).toEqual(Array(50).fill(200));
    expect(be.seen.map((s) => s.url).sort()).toEqual(Array.from({ length: 50 }, (_, i) => `/r${i}`).sort());
    expect(maxInFlight).toBe(2);
    const b = lb.app.counters.backend(lb.app.backends.get('web', 'a')!.id);
    const l = lb.app.counters.listen('web');
    expect(l.qcur + b.qcur).toBe(0);
    expect(l.queueTimeouts).toBe(0);
    // Most of the 50 waited (how many arrive before the first two finish depends on the machine).
    expect(l.qmax).toBeGreaterThan(10);
    expect(l.queued).toBeGreaterThanOrEqual(l.qmax);
    console.log(`QUEUE maxconn=2 requests=50: backend max in flight ${maxInFlight}, answered ${res.length}/50, qmax ${l.qmax}, queued ${l.queued}, mean Tw ${(l.queueMs / l.queued).toFixed(0)} ms, total ${ms.toFixed(0)} ms`);
  });

  it('timeouts.queue: a waiter gets 503 (sQ) and never reaches the backend; the one holding the slot is unharmed', async () => {
    const be = await holdingBackend('a');
    cleanups.push(() => be.close());
    const lb: Running = await startApp(cfg(`      - name: a\n        address: ${be.address}\n        maxconn: 1\n`, '    timeouts:\n      queue: 200ms\n'));
    cleanups.push(() => lb.stop());
    const first = get(lb.port(), '/first');
    await untilTrue(() => be.held.length === 1, 5000, 'first request at the backend');
    const t0 = performance.now();
    const second = await get(lb.port(), '/second');
    const waited = performance.now() - t0;
    expect(second.status).toBe(503);
    expect(second.headers['retry-after']).toBeUndefined(); // retry_after unset: none
    expect(waited).toBeGreaterThanOrEqual(190);
    const l = lb.app.counters.listen('web');
    expect([l.queueTimeouts, l.qcur, l.qmax]).toEqual([1, 0, 1]);
    be.release();
    expect((await first).status).toBe(200);
    expect(be.seen.map((s) => s.url)).toEqual(['/first']);
    console.log(`QUEUE timeout 200ms: 503 after ${waited.toFixed(0)} ms`);
  });

  it('retry_after: the queue timeout\'s 503 carries Retry-After in whole seconds (rounded up); a 503 for no server UP does not', async () => {
    const be = await holdingBackend('a');
    cleanups.push(() => be.close());
    const lb: Running = await startApp(`global:\n  log:\n    access: off\nfrontends:\n  - name: fe\n    bind: 127.0.0.1:0\n    rules:\n      - { when: { path_prefix: /none }, backend: empty }\n    default_backend: web\nbackends:\n  - name: web\n    retry_after: 2500ms\n    timeouts:\n      queue: 100ms\n    check:\n      type: tcp\n      interval: 60s\n    servers:\n      - { name: a, address: '${be.address}', maxconn: 1 }\n  - name: empty\n    retry_after: 7s\n`);
    cleanups.push(() => lb.stop());
    const first = get(lb.port('fe'), '/first');
    await untilTrue(() => be.held.length === 1, 5000, 'first request at the backend');
    const second = await get(lb.port('fe'), '/second');
    expect([second.status, second.headers['retry-after']]).toEqual([503, '3']);
    const none = await get(lb.port('fe'), '/none');
    expect([none.status, none.headers['retry-after']]).toEqual([503, undefined]);
    be.release();
    expect((await first).status).toBe(200);
    expect(be.seen.map((s) => s.url)).toEqual(['/first']);
  });

  it('a sticky request to a full server waits in that server\'s queue; others go to a server with room', async () => {
    const a = await holdingBackend('a');
    const b = await holdingBackend('b');
    cleanups.push(() => a.close(), () => b.close());
    const lb: Running = await startApp(cfg(
      `      - name: a\n        address: ${a.address}\n        cookie: A\n        maxconn: 1\n      - name: b\n        address: ${b.address}\n        cookie: B\n        maxconn: 2\n`,
      '    cookie:\n      name: SRV\n    timeouts:\n      queue: 30s\n'));
    cleanups.push(() => lb.stop());
    const p1 = get(lb.port(), '/1', { cookie: 'SRV=A' });
    await untilTrue(() => a.held.length === 1, 5000, 'a holds /1');
    const p2 = get(lb.port(), '/2', { cookie: 'SRV=A' }); // a is full: waits for a
    const idA = lb.app.backends.get('web', 'a')!.id;
    await untilTrue(() => lb.app.counters.backend(idA).qcur === 1, 5000, '/2 in a\'s queue');
    const p3 = get(lb.port(), '/3'); // not sticky: b has room
    await untilTrue(() => b.held.length === 1, 5000, 'b holds /3');
    expect(lb.app.counters.listen('web').qcur).toBe(0);
    a.release();
    await untilTrue(() => a.held.length === 1, 5000, 'a holds /2');
    a.release(); b.release();
    const [r1, r2, r3] = await Promise.all([p1, p2, p3]);
    expect([r1.body, r2.body, r3.body]).toEqual(['a', 'a', 'b']);
    expect(a.seen.map((s) => s.url)).toEqual(['/1', '/2']);
    expect(b.seen.map((s) => s.url)).toEqual(['/3']);
  });

  it('server maxqueue: a sticky request beyond it is balanced again (persistence broken, as HAProxy); pool maxqueue: beyond it 503 at once (sQ), counted queue_full', async () => {
    const a = await holdingBackend('a');
    const b = await holdingBackend('b');
    cleanups.push(() => a.close(), () => b.close());
    const lb: Running = await startApp(cfg(
      `      - name: a\n        address: ${a.address}\n        cookie: A\n        maxconn: 1\n        maxqueue: 1\n      - name: b\n        address: ${b.address}\n        cookie: B\n        maxconn: 1\n`,
      '    cookie:\n      name: SRV\n    maxqueue: 1\n    timeouts:\n      queue: 30s\n'));
    cleanups.push(() => lb.stop());
    const idA = lb.app.backends.get('web', 'a')!.id;
    const l = lb.app.counters.listen('web');
    const p1 = get(lb.port(), '/1', { cookie: 'SRV=A' });
    await untilTrue(() => a.held.length === 1, 5000, 'a holds /1');
    const p2 = get(lb.port(), '/2', { cookie: 'SRV=A' }); // a full: waits in a's queue (1 of maxqueue 1)
    await untilTrue(() => lb.app.counters.backend(idA).qcur === 1, 5000, '/2 in a\'s queue');
    const p3 = get(lb.port(), '/3', { cookie: 'SRV=A' }); // a's queue full: balanced again → b has room
    await untilTrue(() => b.held.length === 1, 5000, 'b holds /3');
    expect(lb.app.counters.backend(idA).queueFull).toBe(1);
    const p4 = get(lb.port(), '/4'); // every server full: the backend queue (1 of maxqueue 1)
    await untilTrue(() => l.qcur === 1, 5000, '/4 in the backend queue');
    const r5 = await get(lb.port(), '/5'); // the backend queue full: 503 at once
    expect(r5.status).toBe(503);
    expect(l.queueFull).toBe(1);
    a.release(); b.release();
    await untilTrue(() => a.held.length + b.held.length === 2, 5000, '/2 and /4 served');
    a.release(); b.release();
    const rs = await Promise.all([p1, p2, p3, p4]);
    expect(rs.map((r) => r.status)).toEqual([200, 200, 200, 200]);
    // /3 was served by b: it carries b's cookie (its persistence to a broken).
    expect(rs[2].body).toBe('b');
    expect(String(rs[2].headers['set-cookie'])).toContain('SRV=B');
    expect([...a.seen, ...b.seen].map((s) => s.url).sort()).toEqual(['/1', '/2', '/3', '/4']);
  });

  it('a client that goes away while queued leaves the queue (CQ) and never reaches the backend', async () => {
    const be = await holdingBackend('a');
    cleanups.push(() => be.close());
    const lb: Running = await startApp(cfg(`      - name: a\n        address: ${be.address}\n        maxconn: 1\n`, '    timeouts:\n      queue: 30s\n'));
    cleanups.push(() => lb.stop());
    const first = get(lb.port(), '/first');
    await untilTrue(() => be.held.length === 1, 5000, 'first at the backend');
    const s = connect(lb.port(), '127.0.0.1');
    s.on('error', () => {});
    s.write('GET /gone HTTP/1.1\r\nHost: x\r\n\r\n');
    const l = lb.app.counters.listen('web');
    await untilTrue(() => l.qcur === 1, 5000, '/gone queued');
    s.destroy();
    await untilTrue(() => l.qcur === 0 && l.cur === 1, 5000, '/gone left the queue');
    be.release();
    expect((await first).status).toBe(200);
    const after = get(lb.port(), '/after');
    await untilTrue(() => be.held.length === 1, 5000, '/after at the backend');
    be.release();
    expect((await after).status).toBe(200);
    expect(be.seen.map((x) => x.url)).toEqual(['/first', '/after']);
  });

  it('a request whose server refuses the connection while the others are full waits for them (not the failed one), then succeeds', async () => {
    const b = await holdingBackend('b');
    cleanups.push(() => b.close());
    // A port nothing listens on: connect refused at once.
    const closed = await startBackend('x');
    const deadAddr = closed.address;
    await closed.close();
    const lb: Running = await startApp(cfg(
      `      - name: a\n        address: ${deadAddr}\n        maxconn: 1\n        check: false\n      - name: b\n        address: ${b.address}\n        maxconn: 1\n        check: false\n`,
      '    passive:\n      connect_errors: 0\n    timeouts:\n      queue: 30s\n'));
    cleanups.push(() => lb.stop());
    const p1 = get(lb.port(), '/1'); // a first (round robin), refused, retried on b
    await untilTrue(() => b.held.length === 1, 5000, 'b holds /1');
    const p2 = get(lb.port(), '/2'); // a refused again; b is full: waits in the backend queue
    const l = lb.app.counters.listen('web');
    await untilTrue(() => l.qcur === 1, 5000, '/2 queued after its failed attempt');
    b.release();
    await untilTrue(() => b.held.length === 1, 5000, 'b holds /2');
    b.release();
    const [r1, r2] = await Promise.all([p1, p2]);
    expect([r1.status, r1.body, r2.status, r2.body]).toEqual([200, 'b', 200, 'b']);
    expect(b.seen.map((x) => x.url)).toEqual(['/1', '/2']);
    const a = lb.app.counters.backend(lb.app.backends.get('web', 'a')!.id);
    expect([a.errConn, a.cur, l.qcur]).toEqual([2, 0, 0]);
  });

  it('waiters of a server that goes DOWN are redispatched; a server coming back takes the backend queue', async () => {
    const a = await holdingBackend('a');
    const b = await holdingBackend('b');
    cleanups.push(() => a.close(), () => b.close());
    const lb: Running = await startApp(cfg(
      `      - name: a\n        address: ${a.address}\n        cookie: A\n        maxconn: 1\n      - name: b\n        address: ${b.address}\n        cookie: B\n        maxconn: 1\n        state: maint\n`,
      '    cookie:\n      name: SRV\n    timeouts:\n      queue: 30s\n'));
    cleanups.push(() => lb.stop());
    const p1 = get(lb.port(), '/1');
    await untilTrue(() => a.held.length === 1, 5000, 'a holds /1');
    const p2 = get(lb.port(), '/2', { cookie: 'SRV=A' });
    const p3 = get(lb.port(), '/3');
    const l = lb.app.counters.listen('web');
    const idA = lb.app.backends.get('web', 'a')!.id;
    await untilTrue(() => lb.app.counters.backend(idA).qcur === 1 && l.qcur === 1, 5000, '/2 and /3 queued');
    lb.app.backends.setAdmin('web', 'b', 'ready', 'test'); // b has one slot: the backend queue's /3
    await untilTrue(() => b.held.length === 1, 5000, 'b holds /3');
    expect(b.seen.map((s) => s.url)).toEqual(['/3']);
    lb.app.backends.setAdmin('web', 'a', 'maint', 'test'); // /2 can no longer reach a: backend queue
    await untilTrue(() => lb.app.counters.backend(idA).qcur === 0 && l.qcur === 1, 5000, '/2 moved to the backend queue');
    b.release();
    await untilTrue(() => b.held.length === 1, 5000, 'b holds /2');
    b.release(); a.release();
    const rs = await Promise.all([p1, p2, p3]);
    expect(rs.map((r) => r.body)).toEqual(['a', 'b', 'b']);
  });
});

describe('queue figures in the access log and /metrics', () => {
  it('Tw, srv_queue/backend_queue and sQ in the access log; queue gauges and counters in /metrics', async () => {
    const dir = tempDir('queue-log');
    const be = await holdingBackend('a');
    const log = join(dir, 'access.log');
    const lb: Running = await startApp(`global:\n  log:\n    access: json\n    access_file: ${log}\nstats:\n  bind: 127.0.0.1:0\nlisten:\n  - name: web\n    bind: 127.0.0.1:0\n    timeouts:\n      queue: 300ms\n    backends:\n      - { name: a, address: '${be.address}', maxconn: 1, check: false }\n`);
    try {
      const p1 = get(lb.port(), '/1');
      await untilTrue(() => be.held.length === 1, 5000, '/1 at the backend');
      const l = lb.app.counters.listen('web');
      expect((await get(lb.port(), '/3')).status).toBe(503); // times out in the queue
      const p2 = get(lb.port(), '/2');
      await untilTrue(() => l.qcur === 1, 5000, '/2 queued');
      const p4 = get(lb.port(), '/4');
      await untilTrue(() => l.qcur === 2, 5000, '/4 queued behind /2');
      be.release();
      await untilTrue(() => be.held.length === 1, 5000, '/2 at the backend');
      be.release();
      await untilTrue(() => be.held.length === 1, 5000, '/4 at the backend');
      be.release();
      expect([(await p1).status, (await p2).status, (await p4).status]).toEqual([200, 200, 200]);
      const statsPort = (lb.app.modules.find((m) => m.name === 'stats') as unknown as { address(): { port: number } }).address().port;
      const t = await (await fetch(`http://127.0.0.1:${statsPort}/metrics`)).text();
      expect(t).toMatch(/^pairlb_listen_queue_max\{listen="web"\} 2$/m);
      expect(t).toMatch(/^pairlb_backend_queue_current\{listen="web",backend="a"\} 0$/m);
      expect(t).toMatch(/^pairlb_listen_queue_current\{listen="web"\} 0$/m);
      expect(t).toMatch(/^pairlb_listen_queued_total\{listen="web"\} 3$/m);
      expect(t).toMatch(/^pairlb_listen_queue_timeouts_total\{listen="web"\} 1$/m);
      expect(t).toMatch(/^pairlb_listen_queue_seconds_total\{listen="web"\} [0-9.]+$/m);
      await untilTrue(() => existsSync(log) && readFileSync(log, 'utf8').trim().split('\n').length >= 4, 5000, 'four access lines');
      const lines = readFileSync(log, 'utf8').trim().split('\n').map((x) => JSON.parse(x));
      const by = (u: string) => lines.find((x) => x.uri === u);
      expect(by('/1')).toMatchObject({ status: 200, Tw: 0, srv_queue: 0, backend_queue: 0, termination: '--' });
      expect(by('/2')).toMatchObject({ status: 200, srv_queue: 0, backend_queue: 0, termination: '--' });
      expect(by('/2').Tw).toBeGreaterThan(0);
      expect(by('/4')).toMatchObject({ status: 200, srv_queue: 0, backend_queue: 1, termination: '--' });
      expect(by('/4').Tw).toBeGreaterThan(0);
      expect(by('/3')).toMatchObject({ status: 503, server: '<NOSRV>', backend_queue: 0, termination: 'sQ' });
      expect(by('/3').Tw).toBeGreaterThanOrEqual(290);
    } finally { await lb.stop(); await be.close(); rmSync(dir, { recursive: true, force: true }); }
  });
});

describe('frontend (listen) maxconn', () => {
  it('connections beyond it are closed at accept and counted', async () => {
    const be = await startBackend('a');
    const lb: Running = await startApp(cfg(`      - name: a\n        address: ${be.address}\n`, '    maxconn: 2\n'));
    try {
      const socks = [connect(lb.port(), '127.0.0.1'), connect(lb.port(), '127.0.0.1')];
      const l = lb.app.counters.listen('web');
      await Promise.all(socks.map((s) => new Promise((ok) => s.once('connect', ok))));
      await untilTrue(() => (lb.app.proxy.listeners.get('web') as unknown as { sockets: Set<unknown> }).sockets.size === 2, 5000, 'two connections accepted');
      const third = connect(lb.port(), '127.0.0.1');
      third.on('error', () => {});
      await new Promise((ok) => third.once('close', ok));
      expect(l.refusedConn).toBe(1);
      socks[0].destroy();
      await untilTrue(() => (lb.app.proxy.listeners.get('web') as unknown as { sockets: Set<unknown> }).sockets.size === 1, 5000, 'one closed');
      expect((await get(lb.port())).status).toBe(200);
      socks[1].destroy();
    } finally { await lb.stop(); await be.close(); }
  });
});
