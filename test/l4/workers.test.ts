import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { connect, type AddressInfo, type Server } from 'node:net';
import { createSocket, type RemoteInfo, type Socket as DgramSocket } from 'node:dgram';
import { writeFileSync } from 'node:fs';
import { startPairlb, type PairlbProc } from '../helpers/proc.js';
import { startApp } from '../helpers/app.js';
import { freePort } from '../daemon/daemon.js';
import { bulkServer, bulkUpload } from '../helpers/bulk.js';
import { tcpBackend, TcpClient, waitFor, type TcpBackend } from './helpers.js';
import type { WorkerPool } from '../../src/proxy/workers.js';

/**
 * mode tcp and mode udp with the data plane in two worker threads (global.workers: 2), through
 * the real `pairlb start` process: every worker binds the address with SO_REUSEPORT, and what the
 * control plane shows (stats JSON, /metrics) and does (drain, reload) is what one data plane
 * would show and do. The crash case uses an in-process App, whose WorkerPool can kill a worker.
 */
const cleanups: (() => Promise<unknown> | void)[] = [];
afterEach(async () => { for (const c of cleanups.splice(0).reverse()) await c(); });

async function backends(...names: string[]): Promise<TcpBackend[]> {
  const bs = await Promise.all(names.map((n) => tcpBackend(n)));
  for (const b of bs) cleanups.push(() => b.close());
  return bs;
}

function client(port: number): TcpClient {
  const c = new TcpClient(port);
  cleanups.push(() => c.destroy());
  return c;
}

const TOKEN = 'l4w-token-0123456789abcdef';
const MiB = 1024 * 1024;

interface Stats { listens: { name: string; total: Record<string, number>; backends: Record<string, number | string>[] }[]; workers: { requests: number }[] }
async function stats(): Promise<Stats> { return (await fetch(`http://127.0.0.1:${sp}/stats.json`)).json(); }
async function section(name: string): Promise<Stats['listens'][number]> { return (await stats()).listens.find((l) => l.name === name)!; }


/** A resolver: answers a query with its id echoed, QR set, RCODE 0 (the DNS check's SOA query too). */
let resolverGot = 0;
async function resolver(): Promise<DgramSocket> {
  const res = createSocket('udp4');
  res.on('message', (msg: Buffer, from: RemoteInfo) => {
    resolverGot++;
    if (msg.length < 12) return;
    const out = Buffer.from(msg);
    out.writeUInt16BE(msg.readUInt16BE(2) | 0x8000, 2);
    res.send(out, from.port, from.address);
  });
  await new Promise<void>((ok) => res.bind(0, '127.0.0.1', () => ok()));
  return res;
}

/** One process for every case below (each start loads every module in each worker: seconds on a loaded box). */
// mail and bulk both bind 127.0.0.1:0: every worker must bind each section's own port.
let sp = 0, ap = 0, dp = 0;
let p: PairlbProc;
let mailServers: TcpBackend[];
let extra: TcpBackend;
let bulk: Server;
let res: DgramSocket;

function config(mail: TcpBackend[]): string {
  return `global:
  workers: 2
  log:
    access: json
stats:
  bind: 127.0.0.1:${sp}
  auth: []
admin:
  bind: 127.0.0.1:${ap}
  token: ${TOKEN}
listen:
  - name: mail
    bind: 127.0.0.1:0
    mode: tcp
    backends:
${mail.map((s) => `      - name: ${s.name}\n        address: ${s.address}\n        check: false\n`).join('')}  - name: bulk
    bind: 127.0.0.1:0
    mode: tcp
    backends:
      - name: s
        address: 127.0.0.1:${(bulk.address() as AddressInfo).port}
        check: false
  - name: dns
    bind: 127.0.0.1:${dp}
    mode: udp
    udp:
      flow_idle: 60s
    check:
      interval: 100ms
    backends:
      - name: r
        address: 127.0.0.1:${res.address().port}
`;
}

beforeAll(async () => {
  mailServers = await Promise.all(['a', 'b'].map((n) => tcpBackend(n)));
  extra = await tcpBackend('c');
  bulk = bulkServer();
  await new Promise<void>((ok) => bulk.listen(0, '127.0.0.1', () => ok()));
  res = await resolver();
  [sp, ap, dp] = [await freePort(), await freePort(), await freePort()];
  p = await startPairlb(config(mailServers), { startMs: 60_000 });
}, 90_000);

afterAll(async () => {
  await p?.stop();
  for (const b of [...(mailServers ?? []), extra]) await b?.close();
  await new Promise<void>((ok) => (bulk ? bulk.close(() => ok()) : ok()));
  await new Promise<void>((ok) => (res ? res.close(() => ok()) : ok()));
});

/** One SMTP-like exchange on a new connection: greeting, one line, half-close, whole answer. */
async function exchange(port: number, line: string): Promise<string> {
  const c = new TcpClient(port);
  try {
    await c.until(() => c.text.includes('\r\n'), 10_000, 'greeting');
    c.write(line + '\r\n');
    c.sock.end();
    await c.until(() => c.closed, 10_000, 'close');
    return c.text;
  } finally { c.destroy(); }
}

describe('mode tcp and udp in two workers (real process)', () => {
  it('N connections over both workers: N on stats JSON and /metrics, in-flight counted while open; drain reaches every worker', async () => {
    const [a] = mailServers;
    const port = p.port('mail');
    const N = 24;
    const cs = Array.from({ length: N }, () => client(port));
    for (const c of cs) await c.until(() => c.text.includes('\r\n'), 10_000, 'greeting');
    // Open connections are in-flight sessions summed over both workers (stats waits for their report).
    expect((await section('mail')).total.cur).toBe(N);
    for (const c of cs) { c.write('quit\r\n'); c.sock.end(); }
    for (const c of cs) await c.until(() => c.closed, 10_000, 'close');
    await expect.poll(async () => (await section('mail')).total.cur, { timeout: 5000 }).toBe(0);
    const j = await stats();
    const m = j.listens.find((l) => l.name === 'mail')!;
    expect(m.total.total).toBe(N);
    expect(m.total.bytes_in).toBe(N * 6);
    expect(m.backends.reduce((n, r) => n + Number(r.total), 0)).toBe(N);
    // Both workers took connections (the kernel hashes 24 connections over 2 sockets: one alone is 2^-23).
    expect(j.workers).toHaveLength(2);
    for (const w of j.workers) expect(w.requests).toBeGreaterThan(0);
    const metrics = await (await fetch(`http://127.0.0.1:${sp}/metrics`)).text();
    expect(metrics).toMatch(new RegExp(`^pairlb_listen_sessions_total\\{[^}]*listen="mail"[^}]*\\} ${N}$`, 'm'));
    // One tcplog line per connection, from both workers.
    await waitFor(() => p.logs.filter((l) => l.mode === 'tcp' && l.listen === 'mail').length === N, 5000, `${N} tcplog lines`);
    const lines = p.logs.filter((l) => l.mode === 'tcp' && l.listen === 'mail');
    expect(new Set(lines.map((l) => l.worker))).toEqual(new Set([0, 1]));
    for (const l of lines) expect(l).toMatchObject({ termination: '--', bytes_in: 6, retries: 0 });
    // Drain a (admin API): every worker stops sending it new connections.
    const r = await fetch(`http://127.0.0.1:${ap}/v1/backends/mail/a/state`, { method: 'POST', headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' }, body: JSON.stringify({ state: 'drain' }) });
    expect(r.status).toBe(200);
    const before = a.received.length;
    for (let i = 0; i < 12; i++) expect(await exchange(port, 'ehlo')).toBe('220 b\r\nEHLO\r\n');
    expect(a.received.length).toBe(before);
  });

  it('64 MiB each way through a worker, byte for byte counted', async () => {
    const N = 64 * MiB;
    const port = p.port('bulk');
    const down = await new Promise<number>((ok, fail) => {
      const c = connect({ port, host: '127.0.0.1' });
      let got = 0;
      c.on('error', fail);
      c.write(`down ${N}\n`);
      c.on('data', (d: Buffer) => { got += d.length; });
      c.on('end', () => { c.end(); ok(got); });
    });
    expect(down).toBe(N);
    const up = await bulkUpload(port, N);
    expect(up).toBe(String(N));
    const head = `down ${N}\n`.length + `up ${N}\n`.length;
    await expect.poll(async () => (await section('bulk')).total.cur, { timeout: 5000 }).toBe(0);
    const t = (await section('bulk')).total;
    expect([t.total, t.bytes_in, t.bytes_out]).toEqual([2, N + head, N + String(N).length]);
  });

  it('UDP DNS: every client flow answered from the bound address, a flow stays on one worker, real DNS check UP, counted once per flow', async () => {
    await expect.poll(async () => (await section('dns')).backends[0].last_check, { timeout: 10_000 }).toBe('L7OK');
    const q = (id: number) => { const b = Buffer.alloc(17); b.writeUInt16BE(id, 0); b.writeUInt16BE(0x0100, 2); b.writeUInt16BE(1, 4); return b; };
    const C = 16;
    const Q = 4;
    const clients = await Promise.all(Array.from({ length: C }, async () => {
      const s = createSocket('udp4');
      const replies: { id: number; from: RemoteInfo }[] = [];
      s.on('message', (m: Buffer, from: RemoteInfo) => replies.push({ id: m.readUInt16BE(0), from }));
      await new Promise<void>((ok) => s.bind(0, '127.0.0.1', () => ok()));
      cleanups.push(() => new Promise<void>((ok) => s.close(() => ok())));
      return { s, replies };
    }));
    const before = (await stats()).workers.map((w) => w.requests);
    // Each client asks Q times from the same address:port, one query after the other's answer.
    for (let k = 0; k < Q; k++) {
      for (const [i, c] of clients.entries()) c.s.send(q(i * 16 + k), dp, '127.0.0.1');
      await waitFor(() => clients.every((c) => c.replies.length === k + 1), 5000, `answers ${k}`);
    }
    for (const [i, c] of clients.entries()) {
      expect(c.replies.map((r) => r.id)).toEqual([0, 1, 2, 3].map((k) => i * 16 + k));
      for (const r of c.replies) expect([r.from.address, r.from.port]).toEqual(['127.0.0.1', dp]);
    }
    // One flow per client: had a client's datagrams reached both workers, the second would have
    // opened a second flow (total counts flows).
    const j = await stats();
    const d = j.listens.find((l) => l.name === 'dns')!;
    expect(d.total.total).toBe(C);
    expect(d.total.bytes_in).toBe(C * Q * 17);
    expect(d.total.cur).toBe(C);
    // Both workers hold flows (16 flows hashed over 2 sockets: all on one is 2^-15).
    j.workers.forEach((w, i) => expect(w.requests).toBeGreaterThan(before[i]));
    expect(resolverGot).toBeGreaterThanOrEqual(C * Q);
  });

  it('reload under TCP load in both workers: established connections keep relaying, 0 new connections fail', async () => {
    const port = p.port('mail');
    // 12 established connections (both workers hold some), each used before and after the reload.
    const held = Array.from({ length: 12 }, () => client(port));
    for (const h of held) await h.until(() => h.text.includes('\r\n'), 10_000, 'greeting');
    // A load loop of new connections, bounded in count and time, while the reload happens.
    let stop = false;
    let ok = 0;
    const failed: string[] = [];
    const loops = Array.from({ length: 4 }, async () => {
      const end = Date.now() + 30_000;
      for (let i = 0; i < 300 && !stop && Date.now() < end; i++) {
        try {
          const t = await exchange(port, 'noop');
          if (/^220 [abc]\r\nNOOP\r\n$/.test(t)) ok++; else failed.push(t);
        } catch (e) { failed.push(String(e)); }
      }
    });
    await waitFor(() => ok >= 20, 20_000, 'load running');
    const from = p.logs.length;
    writeFileSync(p.cfgFile, config([...mailServers, extra]));
    p.child.kill('SIGHUP');
    await waitFor(() => p.logs.slice(from).some((l) => typeof l.msg === 'string' && l.msg.startsWith('config reloaded')), 15_000, 'reload');
    // c (added by the reload) gets new connections from every worker.
    await waitFor(() => extra.received.length >= 4, 20_000, 'c served');
    const atReload = ok;
    await waitFor(() => ok >= atReload + 20, 20_000, 'load after reload');
    stop = true;
    await Promise.all(loops);
    expect(failed).toEqual([]);
    for (const [i, h] of held.entries()) {
      h.write(`held ${i}\r\n`);
      await h.until(() => h.text.endsWith(`HELD ${i}\r\n`), 10_000, `held ${i} relays after reload`);
      expect(h.closed).toBe(false);
    }
  });
});

describe('mode tcp in two workers (in-process App): a crashed worker, passive checks', () => {
  it('loses only its own connections; the other worker\'s keep relaying; in-flight counts taken off; nothing marked down', async () => {
    const [a] = await backends('a');
    const p = await startApp(`listen:
  - name: mail
    bind: 127.0.0.1:0
    mode: tcp
    passive:
      connect_errors: 1
    backends:
      - name: a
        address: ${a.address}
`, { workers: 2 });
    cleanups.push(() => p.stop());
    const pool = p.app.proxy as WorkerPool;
    const cs = Array.from({ length: 16 }, () => client(p.port()));
    for (const c of cs) await c.until(() => c.text.includes('\r\n'), 10_000, 'greeting');
    await p.app.proxy.sync();
    expect(p.app.counters.listen('mail').cur).toBe(16);
    await pool.kill(0);
    await expect.poll(() => pool.workers()[0].restarts, { timeout: 5000 }).toBe(1);
    // What worker 0 had in flight was taken off when it died: the rest is worker 1's.
    await p.app.proxy.sync();
    const survivors = p.app.counters.listen('mail').cur;
    expect(survivors).toBeGreaterThan(0);
    expect(survivors).toBeLessThan(16);
    // Exactly the dead worker's connections end (its sockets close: a FIN, or a reset).
    await waitFor(() => cs.filter((c) => c.ended || c.closed).length === 16 - survivors, 10_000, 'worker 0 connections closed');
    const alive = cs.filter((c) => !c.ended && !c.closed);
    for (const [i, c] of alive.entries()) {
      c.write(`still ${i}\r\n`);
      await c.until(() => c.text.endsWith(`STILL ${i}\r\n`), 10_000, `survivor ${i}`);
    }
    await p.app.proxy.sync();
    expect(p.app.counters.listen('mail').cur).toBe(alive.length);
    expect(cs.filter((c) => c.ended || c.closed)).toHaveLength(16 - survivors);
    expect(p.app.backends.get('mail', 'a')!.health).toBe('up');
    // New connections are served (by the survivor, then the replacement too).
    expect(await exchange(p.port(), 'ehlo')).toBe('220 a\r\nEHLO\r\n');
  });

  it('server maxconn holds over both workers (the shared in-flight table): 12 connections, the server never holds more than 2, every one served in turn', async () => {
    const [a] = await backends('a');
    let open = 0, most = 0;
    a.server.on('connection', (sock) => { most = Math.max(most, ++open); sock.on('close', () => open--); });
    const p = await startApp(`listen:
  - name: mail
    bind: 127.0.0.1:0
    mode: tcp
    timeouts:
      queue: 30s
    backends:
      - name: a
        address: ${a.address}
        check: false
        maxconn: 2
`, { workers: 2 });
    cleanups.push(() => p.stop());
    const pool = p.app.proxy as WorkerPool;
    const cs = Array.from({ length: 12 }, () => client(p.port()));
    // Both workers took connections, and 2 are connected in all: 10 wait.
    await waitFor(() => cs.filter((c) => c.text === '220 a\r\n').length === 2, 10_000, 'two connected');
    await expect.poll(async () => { await p.app.proxy.sync(); return p.app.counters.listen('mail').qcur; }, { timeout: 10_000 }).toBe(10);
    expect(cs.filter((c) => c.text !== '')).toHaveLength(2);
    expect(pool.workers().every((w) => w.requests > 0)).toBe(true);
    // Each close frees a slot, wherever the next waiter is: all 12 are served, never more than 2 at once.
    for (let served = 0; served < 12; served++) {
      await waitFor(() => cs.some((c) => c.text === '220 a\r\n' && !c.ended), 10_000, `connection ${served + 1} served`);
      const c = cs.find((x) => x.text === '220 a\r\n' && !x.ended)!;
      c.write('q\r\n');
      c.sock.end();
      await c.until(() => c.ended, 10_000, 'answer');
      expect(c.text).toBe('220 a\r\nQ\r\n');
    }
    expect(most).toBe(2);
    expect(a.received).toHaveLength(12);
  });

  it('a passive verdict from a worker reaches the backend set: a refusing server goes DOWN for every worker', async () => {
    const [b] = await backends('b');
    const { closedPort } = await import('./helpers.js');
    const dead = await closedPort();
    // Active checks every 60 s, fall 3: only the passive check (1 connect error) can take it down in time.
    const p = await startApp(`listen:
  - name: mail
    bind: 127.0.0.1:0
    mode: tcp
    passive:
      connect_errors: 1
    check:
      interval: 60s
      fall: 3
    backends:
      - name: dead
        address: 127.0.0.1:${dead}
      - name: b
        address: ${b.address}
`, { workers: 2 });
    cleanups.push(() => p.stop());
    // Round robin in each worker starts at dead: the first connection of a worker is redispatched to b.
    for (let i = 0; i < 8 && p.app.backends.get('mail', 'dead')!.health !== 'down'; i++) expect(await exchange(p.port(), 'ehlo')).toBe('220 b\r\nEHLO\r\n');
    await waitFor(() => p.app.backends.get('mail', 'dead')!.health === 'down', 5000, 'dead DOWN');
    expect(p.app.backends.get('mail', 'dead')!.lastReason).toMatch(/^passive: 1 consecutive connection errors/);
    // The new snapshot reached both workers: no connection tries dead any more (no retries).
    await p.app.proxy.sync();
    const before = p.app.counters.listen('mail').retries;
    for (let i = 0; i < 8; i++) expect(await exchange(p.port(), 'ehlo')).toBe('220 b\r\nEHLO\r\n');
    await p.app.proxy.sync();
    expect(p.app.counters.listen('mail').retries).toBe(before);
  });
});
