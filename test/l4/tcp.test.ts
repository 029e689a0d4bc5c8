import { afterEach, describe, expect, it } from 'vitest';
import { startAppLogged } from '../edge/stream-helpers.js';
import { closedPort, tcpBackend, TcpClient, waitFor, type TcpBackend } from './helpers.js';

/**
 * mode: tcp with a real App in-process and real TCP servers: round robin, half-close, retries and
 * redispatch, no server, idle timeout, drain and runtime changes, reload keeping connections,
 * counters and the access-log line of each connection.
 */
const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => { for (const c of cleanups.splice(0).reverse()) await c(); });

async function backends(...names: string[]): Promise<TcpBackend[]> {
  const bs = await Promise.all(names.map((n) => tcpBackend(n)));
  for (const b of bs) cleanups.push(() => b.close());
  return bs;
}

function yaml(servers: { name: string; address: string; extra?: string }[], extra = ''): string {
  return `listen:
  - name: mail
    bind: 127.0.0.1:0
    mode: tcp
${extra}    backends:
${servers.map((s) => `      - name: ${s.name}\n        address: ${s.address}\n        check: false\n${s.extra ?? ''}`).join('')}`;
}

async function app(text: string) {
  const p = await startAppLogged(text);
  cleanups.push(() => p.stop());
  return p;
}

function client(port: number): TcpClient {
  const c = new TcpClient(port);
  cleanups.push(() => c.destroy());
  return c;
}

describe('mode tcp', () => {
  it('relays bytes both ways in round robin; a half-closed client gets the whole answer; one access-log line per connection', async () => {
    const [a, b] = await backends('a', 'b');
    const p = await app(yaml([{ name: 'a', address: a.address }, { name: 'b', address: b.address }]));
    const names: string[] = [];
    for (let i = 0; i < 4; i++) {
      const c = client(p.port());
      await c.until(() => c.text.includes('\r\n'), 5000, 'greeting');
      names.push(c.text.slice(4, 5));
      c.write('ehlo client\r\n');
      c.sock.end(); // half-close: the answer must still come back
      await c.until(() => c.closed, 5000, 'close');
      expect(c.text).toBe(`220 ${names[i]}\r\nEHLO CLIENT\r\n`);
    }
    expect(names).toEqual(['a', 'b', 'a', 'b']);
    // The servers received exactly the client's bytes, nothing added.
    expect(a.received.map((x) => x.toString())).toEqual(['ehlo client\r\n', 'ehlo client\r\n']);
    await waitFor(() => p.access().length === 4, 5000, '4 access lines');
    const l = p.access()[0];
    expect(l).toMatchObject({ mode: 'tcp', client: '127.0.0.1', listen: 'mail', server: 'a', Tw: 0, bytes_in: 13, bytes_read: 20, termination: '--', retries: 0 });
    expect(l.Tc as number).toBeGreaterThanOrEqual(0);
    expect(l.Tt as number).toBeGreaterThanOrEqual(l.Tc as number);
    const lc = p.app.counters.listen('mail');
    expect({ total: lc.total, cur: lc.cur, bytesIn: lc.bytesIn, bytesOut: lc.bytesOut }).toEqual({ total: 4, cur: 0, bytesIn: 52, bytesOut: 80 });
    const ac = p.app.counters.backend(p.app.backends.get('mail', 'a')!.id);
    expect({ total: ac.total, cur: ac.cur, bytesIn: ac.bytesIn }).toEqual({ total: 2, cur: 0, bytesIn: 26 });
  });

  it('a refused connect is retried on the next server (redispatch), counted as a connection error, and logged with retries', async () => {
    const [b] = await backends('b');
    const dead = await closedPort();
    const p = await app(yaml([{ name: 'dead', address: `127.0.0.1:${dead}` }, { name: 'b', address: b.address }]));
    for (let i = 0; i < 2; i++) {
      const c = client(p.port());
      await c.until(() => c.text === '220 b\r\n', 5000, 'greeting from b');
      c.destroy();
    }
    await waitFor(() => p.access().length === 2, 5000, 'access lines');
    // Round robin starts at dead: the first connection retried on b, the second went to b directly.
    // The client's close is a FIN: a normal end (--).
    expect(p.access().map((l) => [l.server, l.retries, l.termination])).toEqual([['b', 1, '--'], ['b', 0, '--']]);
    const dc = p.app.counters.backend(p.app.backends.get('mail', 'dead')!.id);
    expect(dc.errConn).toBe(1);
    expect(p.app.counters.listen('mail').redispatches).toBe(1);
  });

  it('every server refusing: the client is closed after 1 + retries attempts (SC); no server UP: closed at once (SC, <NOSRV>)', async () => {
    const dead = await closedPort();
    const p = await app(yaml([{ name: 'dead', address: `127.0.0.1:${dead}` }], '    retries: 2\n'));
    const c = client(p.port());
    await c.until(() => c.ended, 5000, 'close');
    expect(c.text).toBe('');
    await waitFor(() => p.access().length === 1);
    expect(p.access()[0]).toMatchObject({ server: 'dead', retries: 2, termination: 'SC', Tc: -1, bytes_in: 0, bytes_read: 0 });
    expect(p.app.counters.backend(p.app.backends.get('mail', 'dead')!.id).errConn).toBe(3);
    p.app.backends.setAdmin('mail', 'dead', 'maint', 'test');
    const c2 = client(p.port());
    await c2.until(() => c2.ended, 5000, 'close');
    await waitFor(() => p.access().length === 2);
    expect(p.access()[1]).toMatchObject({ server: '<NOSRV>', termination: 'SC' });
  });

  it('a connection idle both ways for timeouts.tunnel is closed (cD); one with traffic is not', async () => {
    const [a] = await backends('a');
    const p = await app(yaml([{ name: 'a', address: a.address }], '    timeouts:\n      tunnel: 400ms\n'));
    const idle = client(p.port());
    const busy = client(p.port());
    await idle.until(() => idle.text === '220 a\r\n');
    await busy.until(() => busy.text === '220 a\r\n');
    const t0 = Date.now();
    // busy writes every 100 ms (4 times the rate the timeout allows), bounded to 12 writes.
    let n = 0;
    const tick = setInterval(() => { if (++n <= 12) busy.write('x\r\n'); }, 100);
    cleanups.push(() => clearInterval(tick));
    await idle.until(() => idle.ended, 5000, 'idle close');
    expect(Date.now() - t0).toBeGreaterThanOrEqual(350);
    expect(busy.ended).toBe(false);
    await waitFor(() => p.access().length >= 1);
    expect(p.access()[0]).toMatchObject({ termination: 'cD' });
  });

  it('drain: new connections avoid the drained server, the established one keeps working; runtime add takes traffic', async () => {
    const [a, b, c3] = await backends('a', 'b', 'c');
    const p = await app(yaml([{ name: 'a', address: a.address }, { name: 'b', address: b.address }]));
    const first = client(p.port());
    await first.until(() => first.text === '220 a\r\n');
    p.app.backends.setAdmin('mail', 'a', 'drain', 'test');
    const got: string[] = [];
    for (let i = 0; i < 2; i++) {
      const c = client(p.port());
      await c.until(() => c.text.endsWith('\r\n'));
      got.push(c.text.slice(4, 5));
    }
    expect(got).toEqual(['b', 'b']);
    first.write('still\r\n');
    await first.until(() => first.text === '220 a\r\nSTILL\r\n');
    p.app.backends.addBackend('mail', { name: 'c', address: c3.address, check: false, origin: 'runtime' }, 'test');
    const seen = new Set<string>();
    for (let i = 0; i < 4; i++) {
      const c = client(p.port());
      await c.until(() => c.text.endsWith('\r\n'));
      seen.add(c.text.slice(4, 5));
    }
    expect([...seen].sort()).toEqual(['b', 'c']);
  });

  it('reload (new server list, same bind) keeps an established connection relaying', async () => {
    const [a, b] = await backends('a', 'b');
    const p = await app(yaml([{ name: 'a', address: a.address }]));
    const c = client(p.port());
    await c.until(() => c.text === '220 a\r\n');
    const { parseConfig } = await import('../../src/config/load.js');
    await p.app.reload(parseConfig(yaml([{ name: 'b', address: b.address }])));
    c.write('after reload\r\n');
    await c.until(() => c.text === '220 a\r\nAFTER RELOAD\r\n', 5000, 'echo after reload');
    const c2 = client(p.port());
    await c2.until(() => c2.text === '220 b\r\n', 5000, 'new connection to b');
  });

  it('limits.conn_per_source refuses a second connection of the same client (closed, counted); deny refuses a source at once', async () => {
    const [a] = await backends('a');
    const p = await app(yaml([{ name: 'a', address: a.address }], '    limits:\n      conn_per_source: 1\n'));
    const first = client(p.port());
    await first.until(() => first.text === '220 a\r\n');
    const second = client(p.port());
    await second.until(() => second.ended || second.closed, 5000, 'refusal');
    expect(second.text).toBe('');
    expect(p.app.counters.listen('mail').limited).toBe(1);
    first.sock.end();
    await first.until(() => first.closed);
    await waitFor(() => p.app.counters.listen('mail').cur === 0);
    const third = client(p.port());
    await third.until(() => third.text === '220 a\r\n', 5000, 'served once the first is gone');
    const q = await app(yaml([{ name: 'a', address: a.address }], '    deny: [127.0.0.0/8]\n').replace('name: mail', 'name: denied'));
    const d = client(q.port());
    await d.until(() => d.ended || d.closed, 5000, 'denied');
    expect(q.app.counters.listen('denied').deniedConn).toBe(1);
  });

  it('balance: source sends every connection of a client to one server; leastconn avoids the server holding a connection', async () => {
    const [a, b] = await backends('a', 'b');
    const p = await app(yaml([{ name: 'a', address: a.address }, { name: 'b', address: b.address }], '    balance: source\n'));
    const got: string[] = [];
    for (let i = 0; i < 4; i++) {
      const c = client(p.port());
      await c.until(() => c.text.endsWith('\r\n'));
      got.push(c.text.slice(4, 5));
      c.destroy();
    }
    expect(new Set(got).size).toBe(1);
    const q = await app(yaml([{ name: 'a', address: a.address }, { name: 'b', address: b.address }], '    balance: leastconn\n').replace('name: mail', 'name: lc'));
    const held = client(q.port());
    await held.until(() => held.text.endsWith('\r\n'));
    const first = held.text.slice(4, 5);
    const other = first === 'a' ? 'b' : 'a';
    for (let i = 0; i < 3; i++) {
      const c = client(q.port());
      await c.until(() => c.text.endsWith('\r\n'));
      expect(c.text.slice(4, 5)).toBe(other);
      c.sock.end();
      await c.until(() => c.closed);
      await waitFor(() => q.app.counters.backend(q.app.backends.get('lc', other)!.id).cur === 0, 5000, 'connection gone');
    }
  });
});

describe('mode tcp: server maxconn and the backend queue (src/proxy/queue.ts, as HTTP\'s)', () => {
  /** A greeting backend that records how many connections it holds at once. */
  async function counted(name: string): Promise<TcpBackend & { open(): number; maxAtOnce(): number }> {
    const [b] = await backends(name);
    let open = 0, max = 0;
    b.server.on('connection', (s) => { max = Math.max(max, ++open); s.on('close', () => open--); });
    return Object.assign(b, { open: () => open, maxAtOnce: () => max });
  }

  it('maxconn 2: connections beyond it wait (qcur), each gets a slot as one closes, in order; the server never holds more than 2; Tw in the tcplog line', async () => {
    const a = await counted('a');
    const p = await app(yaml([{ name: 'a', address: a.address, extra: '        maxconn: 2\n' }], '    timeouts:\n      queue: 30s\n'));
    const lc = p.app.counters.listen('mail');
    const held = [client(p.port()), client(p.port())];
    for (const h of held) await h.until(() => h.text === '220 a\r\n', 5000, 'greeting');
    const waiting = Array.from({ length: 6 }, () => client(p.port()));
    await waitFor(() => lc.qcur === 6, 5000, '6 queued');
    expect(waiting.map((w) => w.text)).toEqual(Array(6).fill(''));
    expect(a.open()).toBe(2);
    // The first waiter sends its line and half-closes while queued: held, sent once connected.
    waiting[0].write('n2\r\n');
    waiting[0].sock.end();
    // Each close frees one slot: the oldest waiter connects.
    const all = [...held, ...waiting];
    for (let i = 0; i < all.length; i++) {
      const c = all[i];
      if (i === 2) {
        await c.until(() => c.closed, 5000, 'the half-closed waiter\'s whole answer');
        expect(c.text).toBe('220 a\r\nN2\r\n');
        continue;
      }
      await c.until(() => c.text === '220 a\r\n', 5000, `greeting ${i}`);
      c.write(`n${i}\r\n`);
      c.sock.end();
      await c.until(() => c.closed, 5000, `close ${i}`);
      if (i + 3 < all.length) expect(all[i + 3].text).toBe(''); // later waiters still wait
    }
    expect(a.maxAtOnce()).toBe(2);
    expect(a.received.map((x) => x.toString())).toEqual(all.map((_c, i) => `n${i}\r\n`));
    expect([lc.qcur, lc.qmax, lc.queued, lc.queueTimeouts]).toEqual([0, 6, 6, 0]);
    await waitFor(() => p.access().length === 8, 5000, '8 tcplog lines');
    const lines = p.access();
    expect(lines.every((l) => l.termination === '--')).toBe(true);
    // The waiters' lines carry the time they waited (HAProxy Tw); the first two did not wait.
    expect(lines.filter((l) => (l.Tw as number) > 0).length).toBe(6);
  });

  it('timeouts.queue: a waiter is closed (sQ) and never reaches the server; maxqueue: beyond it closed at once (sQ, queue_full); a client gone while queued: CQ', async () => {
    const a = await counted('a');
    const p = await app(yaml([{ name: 'a', address: a.address, extra: '        maxconn: 1\n' }], '    maxqueue: 1\n    timeouts:\n      queue: 300ms\n') + 'stats:\n  bind: 127.0.0.1:0\n  auth: []\n');
    const lc = p.app.counters.listen('mail');
    const h = client(p.port());
    await h.until(() => h.text === '220 a\r\n', 5000, 'greeting');
    const w = client(p.port());
    await waitFor(() => lc.qcur === 1, 5000, 'one queued');
    const full = client(p.port()); // the queue holds 1 (maxqueue): closed at once
    await full.until(() => full.ended || full.closed, 5000, 'refused: queue full');
    expect(lc.queueFull).toBe(1);
    await w.until(() => w.ended || w.closed, 5000, 'queue timeout');
    expect(w.text).toBe('');
    expect(lc.queueTimeouts).toBe(1);
    const gone = client(p.port());
    await waitFor(() => lc.qcur === 1, 5000, 'queued again');
    // A reset: the client is gone (a FIN alone is a half-close: it keeps its place, as HAProxy
    // without abortonclose, and is sent on once connected).
    gone.sock.resetAndDestroy();
    await waitFor(() => lc.qcur === 0, 5000, 'left the queue');
    expect(a.received.length).toBe(1);
    await waitFor(() => p.access().length === 3, 5000, '3 tcplog lines');
    const tq = p.access().find((l) => l.termination === 'sQ' && (l.Tw as number) > 0)!;
    // The wait lasted timeouts.queue (300 ms; the timer's ms clock and performance.now() differ by
    // under a millisecond, seen 299.84).
    expect(tq.Tw as number).toBeGreaterThanOrEqual(295);
    expect(p.access().map((l) => l.termination).sort()).toEqual(['CQ', 'sQ', 'sQ']);
    // The one holding the slot is unharmed.
    h.write('ok\r\n');
    await h.until(() => h.text === '220 a\r\nOK\r\n', 5000, 'holder still relays');
    // The same counts on /metrics (the listen's TOTAL row holds the backend queue).
    const stats = p.app.modules.find((m) => m.name === 'stats') as unknown as { address(): { port: number } };
    const metrics = await (await fetch(`http://127.0.0.1:${stats.address().port}/metrics`)).text();
    for (const [m, v] of [['queue_full_total', 1], ['queue_timeouts_total', 1], ['queue_max', 1], ['queue_current', 0], ['queued_total', 2]] as const) {
      expect(metrics).toMatch(new RegExp(`^pairlb_listen_${m}\\{listen="mail"\\} ${v}$`, 'm'));
    }
  });
});

describe('mode tcp: half-close and cuts', () => {
  it('the server half-closes first: the client gets its bytes and EOF, can still send, and the server reads it; both closed: one -- line', async () => {
    // A server that says goodbye at once (FIN after "bye") and keeps reading until the client's FIN.
    const got: Buffer[] = [];
    const [s] = await backends('s');
    s.server.removeAllListeners('connection');
    s.server.on('connection', (sock) => {
      sock.on('error', () => {});
      sock.end('bye\r\n');
      sock.on('data', (d: Buffer) => got.push(d));
    });
    const p = await app(yaml([{ name: 's', address: s.address }]));
    const c = client(p.port());
    await c.until(() => c.ended, 5000, 'server FIN relayed');
    expect(c.text).toBe('bye\r\n');
    c.write('late words\r\n');
    await waitFor(() => Buffer.concat(got).toString() === 'late words\r\n', 5000, 'server reads after its own FIN');
    c.sock.end();
    await c.until(() => c.closed, 5000, 'closed');
    await waitFor(() => p.access().length === 1, 5000, 'tcplog line');
    expect(p.access()[0]).toMatchObject({ termination: '--', bytes_in: 12, bytes_read: 5 });
  });

  it('a client reset mid-data closes the server side (CD); a server reset closes the client (SD); the next client is served', async () => {
    const [a] = await backends('a');
    const p = await app(yaml([{ name: 'a', address: a.address }]));
    const c = client(p.port());
    await c.until(() => c.text === '220 a\r\n', 5000, 'greeting');
    c.write('half a line');
    await waitFor(() => a.received[0]?.toString() === 'half a line', 5000, 'bytes at the server');
    c.sock.resetAndDestroy();
    await waitFor(() => a.sockets[0].destroyed, 5000, 'server side closed');
    const d = client(p.port());
    await d.until(() => d.text === '220 a\r\n', 5000, 'greeting 2');
    a.sockets[1].resetAndDestroy();
    await d.until(() => d.ended || d.closed, 5000, 'client closed after the server reset');
    await waitFor(() => p.access().length === 2, 5000, 'two tcplog lines');
    expect(p.access().map((l) => l.termination)).toEqual(['CD', 'SD']);
    const e = client(p.port());
    await e.until(() => e.text === '220 a\r\n', 5000, 'next client');
    expect(p.app.counters.backend(p.app.backends.get('mail', 'a')!.id).cur).toBe(1);
  });
});
