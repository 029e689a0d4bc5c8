import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { join } from 'node:path';
import { rawBackend, type RawBackend } from '../helpers/raw-http.js';
import { ensurePackages } from '../helpers/sys.js';
import { cleanup, cli, ensureBuilt, freePort, startDaemon, tempDir, type Daemon } from './daemon.js';

/**
 * The access log in its own file, read by real GoAccess; rotated as logrotate does (mv + SIGUSR1);
 * 400s and client aborts logged with real statuses and the request's start; bytes both ways are
 * wire bytes, heads included; a reload switches format and level, and `pairlb reload` prints what
 * was applied and what needs a restart. The real `pairlb` process, raw bytes on both sides.
 */

/** A client connection that keeps every byte it received. */
class Wire {
  readonly sock: Socket;
  got = Buffer.alloc(0);
  closed = false;
  constructor(port: number) {
    this.sock = connect(port, '127.0.0.1');
    this.sock.on('data', (d: Buffer) => { this.got = Buffer.concat([this.got, d]); });
    this.sock.on('error', () => {});
    this.sock.on('close', () => { this.closed = true; });
  }
  async until(pred: (s: string) => boolean, what: string, ms = 10_000): Promise<void> {
    const end = Date.now() + ms;
    while (!pred(this.got.toString('latin1'))) {
      if (Date.now() > end) throw new Error(`${what}: not within ${ms} ms; got ${JSON.stringify(this.got.toString('latin1').slice(0, 300))}`);
      await new Promise((ok) => setTimeout(ok, 10));
    }
  }
}

async function waitFor<T>(fn: () => T | undefined | false, what: string, ms = 10_000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = fn();
    if (v) return v;
    if (Date.now() > end) throw new Error(`${what}: not within ${ms} ms`);
    await new Promise((ok) => setTimeout(ok, 20));
  }
}

const lines = (f: string): string[] => (existsSync(f) ? readFileSync(f, 'utf8').split('\n').filter(Boolean) : []);
const COMBINED = /^(\S+) - - \[(\d{2}\/[A-Z][a-z]{2}\/\d{4}:\d{2}:\d{2}:\d{2} \+0000)\] "(.*)" (\d{3}) (\d+|-) "(.*)" "(.*)"$/;

describe('access log: own file, rotation, refused requests, aborts, reload', () => {
  let dir: string;
  let d: Daemon;
  let be: RawBackend;
  let port: number;
  let file: string;
  let yaml: (extra: string) => string;
  /** Requests to /hold get no answer until released (their client aborts first). */
  const held: string[] = [];

  beforeAll(async () => {
    ensureBuilt();
    ensurePackages(['goaccess']);
    dir = tempDir('access');
    file = join(dir, 'access.log');
    be = await rawBackend('a', (r, n) => {
      if (r.target === '/hold') { held.push(r.target); return { bytes: '' }; }
      const body = `a ${n}`;
      return { bytes: `HTTP/1.1 200 OK\r\nContent-Length: ${body.length}\r\nX-Pad: ${'p'.repeat(40)}\r\n\r\n${body}` };
    });
    port = await freePort();
    yaml = (extra) => `global:\n  node: lb-a\n${extra}listen:\n  - name: web\n    bind: 127.0.0.1:${port}\n    backends:\n      - name: a\n        address: ${be.address}\n        check: false\n`;
    d = await startDaemon(dir, yaml(`  log:\n    access: combined\n    access_file: ${file}\n`));
  });
  afterAll(async () => { await d?.kill(); await be?.close(); cleanup(dir); });

  it('combined lines in the file, none on stdout; sizes are the bytes the client got; a second request on the connection and another client', async () => {
    const c = new Wire(port);
    const req1 = 'GET /one?x=1 HTTP/1.1\r\nHost: site\r\nUser-Agent: ua "q"\r\nReferer: http://ref/\r\n\r\n';
    c.sock.write(req1);
    await c.until((s) => s.includes('a 1'), 'first response');
    const first = c.got.length;
    const req2 = 'GET /two HTTP/1.1\r\nHost: site\r\n\r\n';
    c.sock.write(req2);
    await c.until((s) => s.includes('a 2'), 'second response');
    const second = c.got.length - first;
    const other = new Wire(port);
    other.sock.write('GET /three HTTP/1.1\r\nHost: site\r\nConnection: close\r\n\r\n');
    await waitFor(() => other.closed, 'the other client to be closed');
    c.sock.destroy();

    const got = await waitFor(() => { const l = lines(file); return l.length >= 3 && l; }, 'three lines in the access file');
    const m = got.map((l) => COMBINED.exec(l));
    expect(m.every(Boolean), got.join('\n')).toBe(true);
    expect(m.map((x) => x![3])).toEqual(['GET /one?x=1 HTTP/1.1', 'GET /two HTTP/1.1', 'GET /three HTTP/1.1']);
    expect(m[0]![1]).toBe('127.0.0.1');
    expect(m[0]![6]).toBe('http://ref/');
    expect(m[0]![7]).toBe('ua \\"q\\"');
    // Heads included: the status line and headers pairlb wrote, not only "a 1".
    expect(Number(m[0]![5])).toBe(first);
    expect(Number(m[1]![5])).toBe(second);
    expect(Number(m[2]![5])).toBe(other.got.length);
    expect(first).toBeGreaterThan(60);
    // stdout has the JSON logs only.
    expect(d.rawLines.some((l) => l.includes('GET /one'))).toBe(false);
  });

  it('a bad request head (400) and a client abort (499) are logged; GoAccess reads every line', async () => {
    const before = lines(file).length;
    const bad = new Wire(port);
    const t0 = Date.now();
    bad.sock.write('GET /bad HTTP/1.1\r\nHost: site\r\nNo Colon Here\r\n\r\n');
    await bad.until((s) => s.startsWith('HTTP/1.1 400 '), 'the 400');
    await waitFor(() => bad.closed, 'the 400 connection to close');

    const ab = new Wire(port);
    ab.sock.write('GET /hold HTTP/1.1\r\nHost: site\r\n\r\n');
    await waitFor(() => held.length === 1, 'the backend to get /hold');
    ab.sock.destroy();

    const got = await waitFor(() => { const l = lines(file).slice(before); return l.length >= 2 && l; }, 'two more lines');
    const badLine = got.find((l) => l.includes('/bad'))!;
    expect(badLine).toMatch(COMBINED);
    expect(COMBINED.exec(badLine)![3]).toBe('GET /bad HTTP/1.1');
    expect(COMBINED.exec(badLine)![4]).toBe('400');
    expect(Number(COMBINED.exec(badLine)![5])).toBe(bad.got.length);
    const abort = got.find((l) => l.includes('/hold'))!;
    expect(COMBINED.exec(abort)![4]).toBe('499');
    // Dates are the requests' starts: not before the test sent them (one second of CLF resolution).
    const clf = (s: string) => Date.parse(s.replace(/^(\d{2})\/(\w{3})\/(\d{4}):(\d{2}:\d{2}:\d{2}) \+0000$/, '$2 $1 $3 $4 UTC'));
    expect(clf(COMBINED.exec(badLine)![2])).toBeGreaterThanOrEqual(Math.floor(t0 / 1000) * 1000);

    const all = lines(file);
    const r = spawnSync('goaccess', [file, '--log-format=COMBINED', '--no-global-config', '-o', 'json'], { encoding: 'utf8', timeout: 30_000 });
    expect(r.status, r.stderr).toBe(0);
    const g = JSON.parse(r.stdout) as { general: { total_requests: number; valid_requests: number; failed_requests: number } };
    expect(g.general).toMatchObject({ total_requests: all.length, valid_requests: all.length, failed_requests: 0 });
    const codes = JSON.parse(r.stdout).status_codes.data.flatMap((x: { items: { data: string }[] }) => x.items.map((i) => i.data.slice(0, 3)));
    expect(codes).toEqual(expect.arrayContaining(['200', '400', '499']));
  });

  it('logrotate: mv the file, SIGUSR1, new lines in a new file, none lost or split', async () => {
    const c = new Wire(port);
    c.sock.write('GET /before-rotate HTTP/1.1\r\nHost: site\r\nConnection: close\r\n\r\n');
    await waitFor(() => lines(file).some((l) => l.includes('/before-rotate')), 'the line before rotation');
    const n = lines(file).length;
    renameSync(file, file + '.1');
    const from = d.logs.length;
    d.signal('SIGUSR1');
    await d.waitLog((l) => l.msg === 'SIGUSR1: reopening log files', 10_000, from);
    const c2 = new Wire(port);
    c2.sock.write('GET /after-rotate HTTP/1.1\r\nHost: site\r\nConnection: close\r\n\r\n');
    await waitFor(() => lines(file).some((l) => l.includes('/after-rotate')), 'the line after rotation, in the new file');
    expect(lines(file)).toHaveLength(1);
    expect(lines(file + '.1')).toHaveLength(n);
    expect(lines(file + '.1').every((l) => COMBINED.test(l))).toBe(true);
  });

  it('reload applies format and level; `pairlb reload` prints them and the keys that need a restart', async () => {
    const cfgFile = join(dir, 'pairlb.yaml');
    writeFileSync(cfgFile, yaml(`  log:\n    level: warn\n    access: json\n    access_file: ${file}\n`).replace('node: lb-a', 'node: lb-b'));
    const from = d.logs.length;
    const r = cli(['reload', '--pidfile', join(dir, 'pairlb.pid')]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toContain(`Reloaded (pid ${d.pid})`);
    expect(r.stdout).toContain('applied: log level info -> warn');
    expect(r.stdout).toContain(`applied: access log json to ${file}`);
    expect(r.stdout).toMatch(/needs a restart: global\.node \(.+\)/);
    expect(r.stdout).not.toContain('needs a restart: global.log');

    const c = new Wire(port);
    const t0 = Date.now();
    c.sock.write('GET /json HTTP/1.1\r\nHost: site\r\nConnection: close\r\n\r\n');
    await waitFor(() => c.closed, 'the response');
    const t1 = Date.now();
    const j = await waitFor(() => lines(file).map((l) => { try { return JSON.parse(l) as Record<string, unknown>; } catch { return undefined; } }).find((x) => x?.uri === '/json'), 'a JSON line');
    expect(j).toMatchObject({ mod: 'access', method: 'GET', uri: '/json', status: 200, server: 'a', listen: 'web', bytes_read: c.got.length });
    const start = Date.parse(j.start as string);
    expect(start).toBeGreaterThanOrEqual(t0 - 5);
    expect(start).toBeLessThanOrEqual(t1 + 5);

    // Level warn, in every module: a refused request's info line is no longer written; the warn stays.
    const bad = new Wire(port);
    bad.sock.write('GET /x HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n');
    await waitFor(() => bad.closed, 'the refused request to be closed');
    await waitFor(() => lines(file).some((l) => l.includes('"uri":"/x"')), 'its access line');
    const after = d.logs.slice(from);
    expect(after.some((l) => l.level === 40 && String(l.msg).includes('global.node changed: needs a restart'))).toBe(true);
    expect(after.filter((l) => (l.level ?? 0) < 40)).toEqual([]);
  });
});
