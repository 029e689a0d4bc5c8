import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connect as h2connect, type ClientHttp2Session } from 'node:http2';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createNetServer, type AddressInfo } from 'node:net';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startPairlb, type PairlbProc } from '../helpers/proc.js';
import { makeCa, makeLeaf, type Ca, type Leaf } from '../helpers/certs.js';
import { ensureBuilt } from '../daemon/daemon.js';
import { zeros } from '../helpers/bulk.js';
import { h2Request as req, type H2Answer as Answer } from '../helpers/h2-request.js';

/**
 * HTTP/2 through the real `pairlb` process across its lifecycle: a reload under HTTP/2 load drops
 * no stream, a stop sends GOAWAY and lets the streams in flight finish, a 1 GiB upload streams
 * under flow control with bounded RSS, and all of it with global.workers: 2 for the TLS bind.
 */

const GiB = 1024 ** 3;

interface Backend { server: Server; port: number; name: string; seen: number; held: ServerResponse[] }
async function backend(name: string): Promise<Backend> {
  const b: Backend = { server: undefined as unknown as Server, port: 0, name, seen: 0, held: [] };
  b.server = createServer((req: IncomingMessage, res: ServerResponse) => {
    b.seen++;
    if (req.url === '/upload') {
      let n = 0;
      req.on('data', (c: Buffer) => { n += c.length; });
      req.on('end', () => res.end(String(n)));
      return;
    }
    if (req.url?.startsWith('/hold')) { res.writeHead(200, { 'content-length': '4' }); res.write('he'); b.held.push(res); return; }
    req.resume();
    req.on('end', () => res.end(name));
  });
  await new Promise<void>((ok) => b.server.listen(0, '127.0.0.1', () => ok()));
  b.port = (b.server.address() as AddressInfo).port;
  return b;
}


let dir: string;
let ca: Ca;
let leaf: Leaf;
let b1: Backend; let b2: Backend;
let lb: PairlbProc;
const NAME = 'a.example.test';

let webPort = 0;
let plainPort = 0;
async function freePort(): Promise<number> {
  const s = createNetServer();
  await new Promise<void>((ok) => s.listen(0, '127.0.0.1', () => ok()));
  const port = (s.address() as AddressInfo).port;
  await new Promise<void>((ok) => s.close(() => ok()));
  return port;
}

// Fixed ports: a reload with the same binds updates the listeners in place (a changed bind makes a new one).
const config = (backends: Backend[]) => `global:
  workers: 2
  log: { level: info, access: off }
listen:
  - name: web
    bind: 127.0.0.1:${webPort}
    h2: true
    tls: { certificates: [${leaf.bundle}] }
    backends:
${backends.map((b) => `      - { name: ${b.name}, address: 127.0.0.1:${b.port}, check: false }`).join('\n')}
  - name: plain
    bind: 127.0.0.1:${plainPort}
    h2c: true
    backends:
${backends.map((b) => `      - { name: ${b.name}, address: 127.0.0.1:${b.port}, check: false }`).join('\n')}
`;

beforeAll(async () => {
  ensureBuilt();
  dir = mkdtempSync(join(tmpdir(), 'h2c-life-'));
  ca = makeCa(join(dir, 'ca'));
  leaf = makeLeaf(ca, 'a', [NAME]);
  b1 = await backend('b1');
  b2 = await backend('b2');
  webPort = await freePort();
  plainPort = await freePort();
  lb = await startPairlb(config([b1]), { dir });
});

afterAll(async () => {
  await lb?.stop('SIGKILL');
  for (const b of [b1, b2]) { b?.server.closeAllConnections(); b?.server.close(); }
  if (dir) rmSync(dir, { recursive: true, force: true });
});

function tlsSession(): ClientHttp2Session {
  const s = h2connect(`https://${NAME}:${lb.port('web')}`, { ca: readFileSync(ca.rootCert), host: '127.0.0.1', servername: NAME } as never);
  s.on('error', () => {});
  return s;
}

async function reloaded(n: number): Promise<void> {
  const deadline = Date.now() + 15_000;
  while (lb.logs.filter((l) => typeof l.msg === 'string' && l.msg.startsWith('config reloaded')).length < n) {
    if (Date.now() > deadline) throw new Error('no "config reloaded" in 15 s');
    await new Promise((ok) => setTimeout(ok, 20));
  }
}

describe('HTTP/2 through the pairlb process (workers: 2)', () => {
  it('a reload under HTTP/2 load drops no stream; a stream in flight across it completes', async () => {
    const sessions = Array.from({ length: 4 }, () => tlsSession());
    const held = req(sessions[0], { ':method': 'GET', ':path': '/hold/reload' });
    await expect.poll(() => b1.held.length, { timeout: 5000 }).toBe(1);
    const failures: string[] = [];
    const bodies = new Map<string, number>();
    let done = 0;
    let stop = false;
    // Each session runs 8 streams at a time until stopped; bounded by count and time.
    const deadline = Date.now() + 30_000;
    const loops = sessions.flatMap((s, i) => Array.from({ length: 8 }, async (_, j) => {
      while (!stop && done < 20_000 && Date.now() < deadline) {
        try {
          const r = await req(s, { ':method': 'GET', ':path': `/load/${i}/${j}` });
          if (r.status !== 200) failures.push(`status ${r.status}`);
          bodies.set(r.body, (bodies.get(r.body) ?? 0) + 1);
        } catch (e) { failures.push((e as Error).message); }
        done++;
      }
    }));
    await expect.poll(() => done, { timeout: 10_000 }).toBeGreaterThan(100);
    writeFileSync(lb.cfgFile, config([b1, b2]));
    lb.child.kill('SIGHUP');
    await reloaded(1);
    // Streams keep flowing after the reload, now to both servers.
    await expect.poll(() => bodies.get('b2') ?? 0, { timeout: 10_000 }).toBeGreaterThan(20);
    writeFileSync(lb.cfgFile, config([b2, b1]));
    lb.child.kill('SIGHUP');
    await reloaded(2);
    const at = done;
    await expect.poll(() => done, { timeout: 10_000 }).toBeGreaterThan(at + 100);
    stop = true;
    await Promise.all(loops);
    for (const r of b1.held.splice(0)) r.end('ld');
    expect(await held).toMatchObject({ status: 200, body: 'held' });
    console.log(`h2 reload under load: ${done} streams over 4 TLS sessions, ${failures.length} failed, per backend ${JSON.stringify(Object.fromEntries(bodies))}`);
    expect(failures).toEqual([]);
    expect(done).toBeGreaterThan(200);
    for (const s of sessions) s.close();
  }, 60_000);

  it('a 1 GiB upload over h2c streams under flow control with bounded RSS', async () => {
    const s = h2connect(`http://127.0.0.1:${lb.port('plain')}`);
    s.on('error', () => {});
    const up = (n: number) => req(s, { ':method': 'POST', ':path': '/upload', 'content-length': String(n) }, zeros(n));
    // Warm the process to its young-generation plateau first (test/proxy/streaming.test.ts).
    expect((await up(256 * 1024 ** 2)).body).toBe(String(256 * 1024 ** 2));
    const rss0 = lb.rssKb();
    let peak = rss0;
    const sampler = setInterval(() => { try { peak = Math.max(peak, lb.rssKb()); } catch { /* exited */ } }, 100);
    try {
      expect(await up(GiB)).toMatchObject({ status: 200, body: String(GiB) });
    } finally { clearInterval(sampler); }
    console.log(`h2c 1 GiB upload: pairlb RSS ${Math.round(rss0 / 1024)} MB, peak ${Math.round(peak / 1024)} MB`);
    // RSS is the whole process (main thread + 2 workers); a buffered body would be 1 GiB.
    expect((peak - rss0) / 1024).toBeLessThan(128);
    s.close();
  }, 120_000);

  it('stop: GOAWAY to every session, streams in flight finish, then the process exits 0', async () => {
    const s = tlsSession();
    const goaway = new Promise<number>((ok) => s.on('goaway', (code: number) => ok(code)));
    const inflight = [req(s, { ':method': 'GET', ':path': '/hold/stop1' }), req(s, { ':method': 'GET', ':path': '/hold/stop2' })];
    const holders = () => b1.held.length + b2.held.length;
    await expect.poll(holders, { timeout: 5000 }).toBe(2);
    const exited = lb.stop('SIGTERM');
    expect(await goaway).toBe(0 /* NO_ERROR */);
    for (const r of [...b1.held.splice(0), ...b2.held.splice(0)]) r.end('ld');
    expect(await Promise.all(inflight)).toMatchObject([{ status: 200, body: 'held' }, { status: 200, body: 'held' }]);
    expect(await exited).toBe(0);
  }, 60_000);
});
