import { afterEach, describe, expect, it } from 'vitest';
import { buildRequest, compileExpect, probe, type ProbeSpec } from '../../src/health/probes.js';
import { blackholePort, closedPort, garbageServer, hangServer, httpServer, resetServer } from './servers.js';

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => { while (cleanups.length) await cleanups.pop()!(); });

function http(port: number, opts: { expect?: (number | string)[]; timeoutMs?: number; method?: string; path?: string; host?: string } = {}): ProbeSpec {
  return {
    type: 'http', host: '127.0.0.1', port, timeoutMs: opts.timeoutMs ?? 500,
    request: buildRequest(opts.method ?? 'GET', opts.path ?? '/', opts.host ?? `127.0.0.1:${port}`),
    expect: compileExpect(opts.expect ?? ['200-399']),
  };
}

describe('expected status sets', () => {
  it.each([
    { list: ['200-399'], yes: [200, 204, 301, 399], no: [199, 400, 500] },
    { list: [200], yes: [200], no: [201, 204] },
    { list: ['200', '404', '500-503'], yes: [200, 404, 500, 503], no: [201, 403, 504] },
  ])('$list', ({ list, yes, no }) => {
    const t = compileExpect(list);
    expect(yes.map((s) => t[s])).toEqual(yes.map(() => 1));
    expect(no.map((s) => t[s])).toEqual(no.map(() => 0));
  });

  it('refuses a reversed range', () => {
    expect(() => compileExpect(['500-200'])).toThrow(RangeError);
  });
});

describe('probes against real servers', () => {
  it('L7OK: sends the configured method, path and Host header', async () => {
    const s = await httpServer();
    cleanups.push(s.close);
    const r = await probe(http(s.port, { method: 'HEAD', path: '/healthz?x=1', host: 'app.example' }));
    expect(r).toMatchObject({ code: 'L7OK', ok: true, status: 200 });
    expect(s.seen).toEqual([expect.objectContaining({ method: 'HEAD', url: '/healthz?x=1', host: 'app.example' })]);
  });

  it('L7STS: a 500 is a failure, unless listed in expect', async () => {
    const s = await httpServer({ status: 500 });
    cleanups.push(s.close);
    expect(await probe(http(s.port))).toMatchObject({ code: 'L7STS', ok: false, status: 500 });
    expect(await probe(http(s.port, { expect: ['200', '500-503'] }))).toMatchObject({ code: 'L7OK', ok: true, status: 500 });
    s.status = 404;
    expect(await probe(http(s.port, { expect: [200] }))).toMatchObject({ code: 'L7STS', ok: false, status: 404 });
  });

  it('L7TOUT: a server that accepts and never answers', async () => {
    const s = await hangServer();
    cleanups.push(s.close);
    const r = await probe(http(s.port, { timeoutMs: 300 }));
    expect(r).toMatchObject({ code: 'L7TOUT', ok: false });
    expect(r.durationMs).toBeGreaterThanOrEqual(290);
    expect(r.durationMs).toBeLessThan(2000);
    // A TCP check only needs the handshake: the same server is L4OK.
    expect(await probe({ type: 'tcp', host: '127.0.0.1', port: s.port, timeoutMs: 300 })).toMatchObject({ code: 'L4OK', ok: true });
  });

  it('L7RSP: a server that resets the connection', async () => {
    const s = await resetServer();
    cleanups.push(s.close);
    expect(await probe(http(s.port))).toMatchObject({ code: 'L7RSP', ok: false, detail: 'connection reset' });
    expect(s.resets).toBe(1);
  });

  it('L7RSP: a server that does not speak HTTP', async () => {
    const s = await garbageServer();
    cleanups.push(s.close);
    expect(await probe(http(s.port))).toMatchObject({ code: 'L7RSP', ok: false, detail: 'invalid status line' });
  });

  it('L4CON: nothing listens', async () => {
    const port = await closedPort();
    expect(await probe(http(port))).toMatchObject({ code: 'L4CON', ok: false, detail: 'ECONNREFUSED' });
    expect(await probe({ type: 'tcp', host: '127.0.0.1', port, timeoutMs: 300 })).toMatchObject({ code: 'L4CON', ok: false });
  });

  it('L4TOUT: the handshake never completes', async () => {
    const b = await blackholePort();
    cleanups.push(b.close);
    const r = await probe(http(b.port, { timeoutMs: 300 }));
    expect(r).toMatchObject({ code: 'L4TOUT', ok: false });
    expect(await probe({ type: 'tcp', host: '127.0.0.1', port: b.port, timeoutMs: 300 })).toMatchObject({ code: 'L4TOUT', ok: false });
  });
});
