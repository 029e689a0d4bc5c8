import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startPairlb, type PairlbProc } from '../helpers/proc.js';
import { RawClient, rawBackend, type RawBackend, type RawRequest } from '../helpers/raw-http.js';
import { ensureBuilt } from '../daemon/daemon.js';
import { backendStates } from './harness.js';
import { waitUntil } from './stream-helpers.js';

/**
 * Regressions found by attacking the real daemon (dist/) with raw sockets after the issue 10 fixes
 * landed: each case sends the exact bytes, asserts what the backend received and what the client
 * got, then a second request on the same client connection and one from another client.
 */

/** Bodiless answers whose framing headers undici or a client could misread. */
function respond(r: RawRequest, n: number): { bytes: string } {
  // A 304 may carry the selected representation's Content-Length (RFC 9110 §8.6); no body follows.
  if (r.target === '/304') return { bytes: 'HTTP/1.1 304 Not Modified\r\nContent-Length: 6\r\nETag: "v1"\r\n\r\n' };
  // A 204 must not carry one; a client that believed it would eat the next response's first bytes.
  if (r.target === '/204') return { bytes: 'HTTP/1.1 204 No Content\r\nContent-Length: 6\r\n\r\n' };
  const body = `b ${n} ${r.target}`;
  return { bytes: `HTTP/1.1 200 OK\r\nContent-Length: ${body.length}\r\n\r\n${body}` };
}

const GET = (path: string) => `GET ${path} HTTP/1.1\r\nHost: app.example\r\n\r\n`;

describe.each(['undici', 'native'])('attack regressions (engine %s)', (engine) => {
  beforeAll(() => ensureBuilt());
  const cleanups: (() => Promise<unknown> | void)[] = [];
  afterEach(async () => { while (cleanups.length) await cleanups.pop()!(); });

  async function setup(): Promise<{ p: PairlbProc; b: RawBackend; sock: string }> {
    const b = await rawBackend('b', respond);
    cleanups.push(() => b.close());
    const sockDir = mkdtempSync(join(tmpdir(), 'pairlb-atk-'));
    const sock = join(sockDir, 'admin.sock');
    const p = await startPairlb(`listen:\n  - name: web\n    bind: 127.0.0.1:0\n    engine: ${engine}\n    forwardfor:\n      enabled: false\n`
      + `    check:\n      type: tcp\n      interval: 60s\n    backends:\n      - name: b\n        address: ${b.address}\n`
      + `admin:\n  socket: ${sock}\n`);
    cleanups.push(async () => { await p.stop(); rmSync(sockDir, { recursive: true, force: true }); });
    return { p, b, sock };
  }
  function client(p: PairlbProc): RawClient {
    const c = new RawClient(p.port('web'));
    cleanups.push(() => c.destroy());
    return c;
  }

  it('a 304 with Content-Length is delivered whole (undici dropped it: the client got nothing and a closed connection)', async () => {
    const { p, b, sock } = await setup();
    const c = client(p);
    c.send(GET('/304'));
    const r = await c.next();
    expect(r).not.toBeNull();
    expect(r!.status).toBe(304);
    expect(r!.headers['content-length']).toBe('6');
    expect(r!.headers.etag).toBe('"v1"');
    expect(b.requests.map((q) => q.target)).toEqual(['/304']);

    // Same connection: the next response is its own, nothing was left over or eaten.
    c.send(GET('/second'));
    const r2 = await c.next();
    expect([r2!.status, r2!.body]).toEqual([200, 'b 2 /second']);
    expect(c.pending()).toBe('');
    expect(c.closed).toBe(false);

    // Another client.
    const d = client(p);
    d.send(GET('/fresh'));
    const r3 = await d.next();
    expect([r3!.status, r3!.body]).toEqual([200, 'b 3 /fresh']);
    expect(b.garbage).toEqual([]);
    expect(await backendStates(sock)).toEqual({ 'web/b': 'UP' });
    // Access lines go out in batches (BATCH_MS): wait for it.
    await waitUntil(() => p.logs.some((l) => l.mod === 'access' && l.uri === '/304'), 5000, 'the access-log line');
    const access = p.logs.find((l) => l.mod === 'access' && l.uri === '/304');
    expect(access).toMatchObject({ status: 304, termination: '--' });
  });

  it('a 204 loses the Content-Length the backend wrongly sent, so the client cannot misframe what follows', async () => {
    const { p, b, sock } = await setup();
    const c = client(p);
    // Pipelined: a client that honoured `Content-Length: 6` on the 204 would read `HTTP/1` of the next one as its body.
    c.send(GET('/204') + GET('/after'));
    const r = await c.next();
    expect(r!.status).toBe(204);
    expect(r!.head).not.toMatch(/content-length/i);
    const r2 = await c.next();
    expect([r2!.status, r2!.body]).toEqual([200, 'b 2 /after']);
    expect(c.pending()).toBe('');
    expect(c.closed).toBe(false);

    const d = client(p);
    d.send(GET('/fresh'));
    const r3 = await d.next();
    expect([r3!.status, r3!.body]).toEqual([200, 'b 3 /fresh']);
    expect(b.requests.map((q) => q.target)).toEqual(['/204', '/after', '/fresh']);
    expect(b.garbage).toEqual([]);
    expect(await backendStates(sock)).toEqual({ 'web/b': 'UP' });
  });

  it('CONNECT is answered 501 and counted (node:http closed it unanswered, unlogged), after the requests before it, and what follows is never forwarded', async () => {
    const { p, b, sock } = await setup();
    const c = client(p);
    c.send(`CONNECT 127.0.0.1:${b.port} HTTP/1.1\r\nHost: 127.0.0.1:${b.port}\r\n\r\n` + GET('/smuggled'));
    const r = await c.next();
    expect([r!.status, r!.headers.connection]).toEqual([501, 'close']);
    expect(await c.waitClosed()).toBe('');
    expect(b.requests).toEqual([]);

    // Pipelined behind a request in flight: that request's answer first, then the 501, then nothing.
    const d = client(p);
    d.send(GET('/first') + 'CONNECT a.example:443 HTTP/1.1\r\nHost: a.example:443\r\n\r\n' + GET('/smuggled'));
    const r1 = await d.next();
    expect([r1!.status, r1!.body]).toEqual([200, 'b 1 /first']);
    const r2 = await d.next();
    expect(r2!.status).toBe(501);
    expect(await d.waitClosed()).toBe('');

    const e = client(p);
    e.send(GET('/fresh'));
    const r3 = await e.next();
    expect([r3!.status, r3!.body]).toEqual([200, 'b 2 /fresh']);
    expect(b.requests.map((q) => q.target)).toEqual(['/first', '/fresh']);
    expect(p.logs.filter((l) => l.msg === 'bad request refused' && l.code === 'CONNECT' && l.status === 501)).toHaveLength(2);
    expect(await backendStates(sock)).toEqual({ 'web/b': 'UP' });
  });
});
