import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { nativeEngine } from '../../src/proxy/engines/native.js';
import type { AttemptSink, Upstream } from '../../src/proxy/engine.js';

/**
 * The native engine's keep-alive pool: a connection is reused while fresh, and one idle for 4 s
 * (IDLE_MS) is closed by the pool's sweep and never handed out (the socket timeout stays
 * timeouts.server; src/proxy/engines/native.ts). A real TCP backend counts connections.
 */

let server: Server;
let port: number;
const conns: Socket[] = [];
const closedAt: number[] = [];

beforeAll(async () => {
  server = createServer((s) => {
    conns.push(s);
    s.on('data', () => s.write('HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok'));
    s.on('close', () => closedAt.push(performance.now()));
    s.on('error', () => {});
  });
  await new Promise<void>((ok) => server.listen(0, '127.0.0.1', ok));
  port = (server.address() as AddressInfo).port;
});
afterAll(async () => { for (const s of conns) s.destroy(); await new Promise((ok) => server.close(ok)); });

function get(up: Upstream): Promise<string> {
  return new Promise((ok, fail) => {
    let body = '';
    const sink: AttemptSink = {
      onConnect() {}, onHeaders() { return true; }, onData(b) { body += b.toString(); return true; },
      onComplete() { ok(body); }, onError: fail, onUpgrade() { fail(new Error('upgrade')); },
    };
    nativeEngine.send(up, { method: 'GET', path: '/', headers: ['Host', 'x'], body: null, upgrade: null, close: false, req: null as never, res: null as never }, sink);
  });
}

async function until(pred: () => boolean, what: string, ms: number): Promise<void> {
  const end = Date.now() + ms;
  while (!pred()) {
    if (Date.now() > end) throw new Error(`${what}: not within ${ms} ms`);
    await new Promise((ok) => setTimeout(ok, 20));
  }
}

describe('native engine pool', () => {
  it('reuses a fresh connection; closes one idle for 4 s (sweep) and opens a new one after', async () => {
    const up = nativeEngine.createUpstream('127.0.0.1', port, { timeouts: { connect: 2000, server: 30_000 }, max_header_size: 16384 });
    try {
      expect(await get(up)).toBe('ok');
      expect(await get(up)).toBe('ok');
      expect(conns.length).toBe(1);
      const idleFrom = performance.now();
      // IDLE_MS 4 s + SWEEP_MS 0.5 s; 6 s more of slack for a loaded machine.
      await until(() => closedAt.length === 1, 'the idle connection closed by the pool', 10_500);
      expect(closedAt[0] - idleFrom).toBeGreaterThanOrEqual(3_900);
      expect(await get(up)).toBe('ok');
      expect(conns.length).toBe(2);
    } finally { up.destroy(); }
  }, 20_000);
});
