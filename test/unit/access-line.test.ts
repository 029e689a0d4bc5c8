import { describe, expect, it, vi } from 'vitest';
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import pino from 'pino';
import { createLogger } from '../../src/log.js';
import { AccessLog, BATCH_CHARS, BATCH_MS, isoMs } from '../../src/proxy/access-log.js';
import type { Exchange, Listener } from '../../src/proxy/listener.js';

/**
 * The JSON access line is built by hand on the hot path (src/proxy/access-log.ts): it must be the
 * very bytes pino writes for the same record (same keys, order, encoding), so that every reader of
 * the logs sees no difference; and the lines of one loop turn go out together, none lost at close.
 */

function capture(): { stream: Writable; chunks: string[] } {
  const chunks: string[] = [];
  const stream = new Writable({ write(c, _e, cb) { chunks.push(String(c)); cb(); } });
  return { stream, chunks };
}

const listener = { s: { name: 'web "1"', logListen: ',"listen":' + JSON.stringify('web "1"') } } as unknown as Listener;

function exchange(over: Record<string, unknown> = {}): Exchange {
  return {
    req: { method: 'GET', url: '/a?b="c"\\\u00e9\u0001', headers: {}, httpVersion: '1.1' },
    socket: { remoteAddress: '::ffff:127.0.0.1', remotePort: 40123 },
    start: 1000, tConnect: 1000.123, tHeaders: 1002.5, tw: 0, status: 200, termination: '--', attempts: 2,
    srvQueue: 0, backendQueue: 1, route: { name: 'srv\t1' },
    ...over,
  } as unknown as Exchange;
}

/** What pino itself writes for the record (the slow path's object), `time` taken from `line`. */
function pinoLine(logger: pino.Logger, line: string, ex: Exchange, now: number, bin: number, bout: number): string {
  const { stream, chunks } = capture();
  const time = (JSON.parse(line) as { time: string }).time;
  const start = Date.parse((JSON.parse(line) as { start: string }).start);
  const ref = pino({ level: 'info', base: { pid: process.pid }, timestamp: () => `,"time":"${time}"` }, stream).child(logger.bindings()).child({ mod: 'access' });
  const ms = (t: number): number => (t ? Math.round((t - ex.start) * 100) / 100 : -1);
  ref.info({
    start: new Date(start).toISOString(), client: '127.0.0.1', client_port: 40123, listen: 'web "1"', server: ex.route?.name ?? '<NOSRV>',
    Tw: ex.tw, Tc: ms(ex.tConnect), Tr: ms(ex.tHeaders), Ta: ms(now), status: ex.status || 499, bytes_read: bout, bytes_in: bin,
    termination: ex.termination, retries: ex.attempts > 1 ? ex.attempts - 1 : 0, srv_queue: ex.srvQueue, backend_queue: ex.backendQueue,
    method: ex.req.method, uri: ex.req.url,
  });
  return chunks.join('');
}

const tick = (): Promise<void> => new Promise((ok) => setImmediate(ok));

describe('access log JSON lines (fast path)', () => {
  it('are byte for byte what pino writes for the same record, escaping included; one write per batch', async () => {
    const { stream, chunks } = capture();
    const root = createLogger('info', stream);
    const worker = root.child({ worker: 3 });
    const a = new AccessLog(worker, { level: 'info', access: 'json' } as never);
    const exs = [exchange(), exchange({ route: undefined, status: 0, termination: 'CH', tConnect: 0, tHeaders: 0, attempts: 1 })];
    for (const ex of exs) a.write(listener, ex, 1003.456, 77, 1234);
    await tick();
    expect(chunks).toEqual([]);
    // The batch goes out BATCH_MS after its first line (slack for a loaded machine).
    await vi.waitFor(() => expect(chunks.length).toBe(1), { timeout: BATCH_MS + 5000, interval: 5 });
    const lines = chunks[0].split('\n').filter(Boolean).map((l) => l + '\n');
    expect(lines.length).toBe(2);
    for (let i = 0; i < 2; i++) expect(lines[i]).toBe(pinoLine(worker, lines[i], exs[i], 1003.456, 77, 1234));
    const j = JSON.parse(lines[1]) as Record<string, unknown>;
    expect(j).toMatchObject({ mod: 'access', worker: 3, server: '<NOSRV>', status: 499, Tc: -1, Tr: -1, retries: 0 });
  });

  it('follow the logger level (reload), and what is pending is written at close', () => {
    const { stream, chunks } = capture();
    const root = createLogger('warn', stream);
    const a = new AccessLog(root, { level: 'warn', access: 'json' } as never);
    a.write(listener, exchange(), 1003, 1, 1);
    a.close();
    expect(chunks).toEqual([]);
    root.level = 'info';
    const b = new AccessLog(root, { level: 'info', access: 'json' } as never);
    b.write(listener, exchange(), 1003, 1, 1);
    b.close();
    expect(chunks.length).toBe(1);
    expect(JSON.parse(chunks[0])).toMatchObject({ level: 30, uri: '/a?b="c"\\\u00e9\u0001' });
  });

  it('a batch reaching BATCH_CHARS is written at once, whole lines, in order', () => {
    const { stream, chunks } = capture();
    const a = new AccessLog(createLogger('info', stream), { level: 'info', access: 'json' } as never);
    let n = 0;
    while (chunks.length === 0 && n < 10_000) a.write(listener, exchange({ srvQueue: n++ }), 1003, 1, 1);
    expect(chunks.length).toBe(1);
    expect(chunks[0].length).toBeGreaterThanOrEqual(BATCH_CHARS);
    expect(chunks[0].endsWith('}\n')).toBe(true);
    const qs = chunks[0].split('\n').filter(Boolean).map((l) => (JSON.parse(l) as { srv_queue: number }).srv_queue);
    expect(qs).toEqual([...Array(n).keys()]);
    a.close();
  });

  it('stdout on a file: the lines are written by the caller itself, none left at close (a worker that stops or exits)', () => {
    const dir = mkdtempSync(join(tmpdir(), 'alog-'));
    try {
      const file = join(dir, 'out.log');
      const fd = openSync(file, 'a');
      const root = createLogger('info', fd);
      const a = new AccessLog(root.child({ worker: 0 }), { level: 'info', access: 'json' } as never);
      for (let i = 0; i < 3; i++) a.write(listener, exchange({ srvQueue: i }), 1003, 1, 1);
      expect(readFileSync(file, 'utf8')).toBe('');
      a.flush();
      const lines = readFileSync(file, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>);
      expect(lines.map((l) => l.srv_queue)).toEqual([0, 1, 2]);
      expect(lines[0]).toMatchObject({ mod: 'access', worker: 0, status: 200 });
      a.write(listener, exchange({ srvQueue: 3 }), 1003, 1, 1);
      a.close();
      expect(readFileSync(file, 'utf8').split('\n').filter(Boolean).length).toBe(4);
      closeSync(fd);
    } finally { rmSync(dir, { recursive: true, force: true }); }
  });

  it('combined lines on a stdout that is a file: batched the same, written by the caller, in order', () => {
    const dir = mkdtempSync(join(tmpdir(), 'alog-'));
    try {
      const file = join(dir, 'out.log');
      const fd = openSync(file, 'a');
      const a = new AccessLog(createLogger('info', fd), { level: 'info', access: 'combined' } as never);
      a.write(listener, exchange({ req: { method: 'GET', url: '/one', headers: { 'user-agent': 'ua "x"' }, httpVersion: '1.1' } }), 1003, 1, 321);
      a.write(listener, exchange({ req: { method: 'POST', url: '/two', headers: {}, httpVersion: '1.0' } }), 1003, 1, 0);
      expect(readFileSync(file, 'utf8')).toBe('');
      a.close();
      const lines = readFileSync(file, 'utf8').split('\n');
      expect(lines.length).toBe(3);
      expect(lines[0]).toMatch(/^127\.0\.0\.1 - - \[\d{2}\/[A-Z][a-z]{2}\/\d{4}:\d{2}:\d{2}:\d{2} \+0000\] "GET \/one HTTP\/1\.1" 200 321 "-" "ua \\"x\\""$/);
      expect(lines[1]).toMatch(/^127\.0\.0\.1 - - \[.*\] "POST \/two HTTP\/1\.0" 200 - "-" "-"$/);
      closeSync(fd);
    } finally { rmSync(dir, { recursive: true, force: true }); }
  });

  it('a logger whose output the fast path cannot reproduce (a mixin) goes through pino', async () => {
    const { stream, chunks } = capture();
    const root = pino({ level: 'info', mixin: () => ({ extra: 1 }) }, stream);
    const a = new AccessLog(root, { level: 'info', access: 'json' } as never);
    a.write(listener, exchange(), 1003, 1, 1);
    await tick();
    expect(JSON.parse(chunks.join(''))).toMatchObject({ extra: 1, mod: 'access', uri: '/a?b="c"\\\u00e9\u0001' });
  });

  it('isoMs is Date.toISOString() (cached second, fractional ms truncated)', () => {
    const base = Date.UTC(2026, 11, 31, 23, 59, 58);
    for (const ms of [base, base + 0.7, base + 9, base + 10, base + 99, base + 100, base + 999.99, base + 1000, base + 2001, base - 86_400_000 * 400, base + 5]) {
      expect(isoMs(ms)).toBe(new Date(Math.floor(ms)).toISOString());
    }
  });
});
