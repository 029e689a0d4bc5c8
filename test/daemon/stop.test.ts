import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { existsSync, readFileSync } from 'node:fs';
import { Agent, request } from 'node:http';
import { connect, type Socket } from 'node:net';
import { startBackend, type TestBackend } from '../helpers/backend.js';
import { cleanup, ensureBuilt, freePort, startDaemon, tempDir, type Daemon } from './daemon.js';

/**
 * Graceful stop of the real daemon: SIGTERM stops accepting, lets in-flight requests finish and exits
 * 0; timeouts.drain bounds the wait; a second SIGTERM ends it at once. The pid file lives exactly as
 * long as the process serves.
 */

function yaml(port: number, backend: TestBackend, drain: string, workers: number): string {
  return [
    'global:', '  node: stop-test', `  workers: ${workers}`, '  log:', '    access: "off"',
    'listen:', '  - name: web', `    bind: 127.0.0.1:${port}`,
    '    timeouts:', `      drain: ${drain}`, '      server: 30s',
    '    check:', '      interval: 500ms',
    '    backends:', `      - name: slow`, `        address: ${backend.address}`,
  ].join('\n') + '\n';
}

function get(port: number, path: string, agent: Agent | false = false): Promise<{ status: number; body: string; ms: number }> {
  const t0 = performance.now();
  return new Promise((ok, fail) => {
    const req = request({ host: '127.0.0.1', port, path, agent }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => { body += c; });
      res.on('end', () => ok({ status: res.statusCode!, body, ms: performance.now() - t0 }));
      res.on('error', fail);
    });
    req.on('error', fail);
    req.end();
  });
}

/** Resolves when a new TCP connection to port is refused (bounded). */
async function refusedWithin(port: number, ms: number): Promise<boolean> {
  const end = performance.now() + ms;
  while (performance.now() < end) {
    const refused = await new Promise<boolean>((ok) => {
      const s = connect(port, '127.0.0.1');
      s.once('connect', () => { s.destroy(); ok(false); });
      s.once('error', (e: NodeJS.ErrnoException) => ok(e.code === 'ECONNREFUSED'));
    });
    if (refused) return true;
    await new Promise((r) => setTimeout(r, 25));
  }
  return false;
}

// workers 2: the same stop through two data-plane worker threads (each drains its own connections).
describe.each([0, 2])('pairlb daemon: graceful stop (workers %d)', (workers) => {
  let backend: TestBackend;
  let dir: string;
  let d: Daemon | undefined;

  beforeAll(async () => {
    ensureBuilt();
    // /slow/<ms> answers after <ms>; anything else at once.
    backend = await startBackend('slow', (req, res) => {
      const m = /^\/slow\/(\d+)$/.exec(req.url ?? '');
      const delay = m ? Number(m[1]) : 0;
      const t = setTimeout(() => { res.writeHead(200, { 'content-length': 4 }); res.end('done'); }, delay);
      res.on('close', () => clearTimeout(t));
    });
    return async () => { await backend.close(); };
  });

  afterEach(async () => {
    await d?.kill();
    d = undefined;
    if (dir) cleanup(dir);
  });

  it('SIGTERM: stops accepting, lets the in-flight request finish, closes idle keep-alive cleanly, exits 0', async () => {
    dir = tempDir('stop');
    const port = await freePort();
    d = await startDaemon(dir, yaml(port, backend, '10s', workers));
    expect(readFileSync(d.pidfile, 'utf8').trim()).toBe(String(d.pid));

    // An idle keep-alive connection: it must be closed with a FIN, not a reset.
    const idle: Socket = connect(port, '127.0.0.1');
    await new Promise<void>((ok) => idle.once('connect', () => ok()));
    idle.write('GET / HTTP/1.1\r\nHost: x\r\n\r\n');
    await new Promise<void>((ok) => idle.once('data', () => ok()));
    const idleEnd = new Promise<string>((ok) => { idle.once('end', () => ok('end')); idle.once('error', (e: NodeJS.ErrnoException) => ok(e.code ?? 'error')); });

    const seen = backend.seen.length;
    const inflight = get(port, '/slow/1500');
    while (backend.seen.length === seen) await new Promise((r) => setTimeout(r, 10));
    const t0 = performance.now();
    d.signal('SIGTERM');

    expect(await refusedWithin(port, 3000)).toBe(true);
    expect(await idleEnd).toBe('end');
    const r = await inflight;
    expect(r).toMatchObject({ status: 200, body: 'done' });
    const exit = await d.exited;
    expect(exit).toEqual({ code: 0, signal: null });
    // It waited for the request (≈1.5 s), not for the whole drain timeout (10 s).
    expect(d.exitedAt - t0).toBeLessThan(8000);
    expect(existsSync(d.pidfile)).toBe(false);
    expect(d.logs.some((l) => l.msg === 'pairlb stopped')).toBe(true);
  });

  it('timeouts.drain bounds the wait: a request slower than it is cut, and the exit is still 0', async () => {
    dir = tempDir('stop-drain');
    const port = await freePort();
    d = await startDaemon(dir, yaml(port, backend, '500ms', workers));
    const seen = backend.seen.length;
    const inflight = get(port, '/slow/20000').then(() => 'answered', () => 'cut');
    while (backend.seen.length === seen) await new Promise((r) => setTimeout(r, 10));
    const t0 = performance.now();
    d.signal('SIGTERM');
    const exit = await d.exited;
    expect(exit).toEqual({ code: 0, signal: null });
    expect(d.exitedAt - t0).toBeLessThan(6000);
    expect(await inflight).toBe('cut');
  });

  it('a second SIGTERM ends it at once', async () => {
    dir = tempDir('stop-twice');
    const port = await freePort();
    d = await startDaemon(dir, yaml(port, backend, '30s', workers));
    const seen = backend.seen.length;
    const inflight = get(port, '/slow/20000').catch(() => 'cut');
    while (backend.seen.length === seen) await new Promise((r) => setTimeout(r, 10));
    d.signal('SIGTERM');
    await d.waitLog((l) => l.msg === 'stopping', 5000);
    const t0 = performance.now();
    d.signal('SIGTERM');
    const exit = await d.exited;
    expect(exit.code).toBe(1);
    expect(d.exitedAt - t0).toBeLessThan(3000);
    expect(d.logs.some((l) => /second stop signal/.test(String(l.msg)))).toBe(true);
    expect(await inflight).toBe('cut');
  });
});
