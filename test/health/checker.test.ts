import { afterEach, describe, expect, it } from 'vitest';
import { BackendSet, type StateChange } from '../../src/backends/backend-set.js';
import { configSchema, type ListenConfig } from '../../src/config/schema.js';
import { HealthChecker } from '../../src/health/checker.js';
import { silentLogger } from '../../src/log.js';
import { closedPort, hangServer, httpServer, resetServer } from './servers.js';

/**
 * The checker module against real servers on port 0 and a real BackendSet (no proxy needed):
 * state changes, reasons, timing bounds, membership changes at runtime and on reload.
 */

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => { while (cleanups.length) await cleanups.pop()!(); });

function listens(check: Record<string, unknown>, backends: { name: string; port: number; check?: boolean }[]): ListenConfig[] {
  return configSchema.parse({
    listen: [{ name: 'web', bind: '127.0.0.1:0', check, backends: backends.map((b) => ({ name: b.name, address: `127.0.0.1:${b.port}`, check: b.check ?? true })) }],
  }).listen;
}

function setup(ls: ListenConfig[]): { set: BackendSet; checker: HealthChecker; changes: (StateChange & { at: number })[] } {
  const set = new BackendSet();
  set.applyConfig(ls);
  const changes: (StateChange & { at: number })[] = [];
  set.on('change', (ev: StateChange) => changes.push({ ...ev, at: Date.now() }));
  const checker = new HealthChecker(set, silentLogger);
  checker.start();
  cleanups.push(() => { checker.stop(); set.close(); });
  return { set, checker, changes };
}

/** Poll (bounded) until fn() is truthy. */
async function until<T>(fn: () => T, ms: number, what: string): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = fn();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out after ${ms}ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

const FAST = { interval: '100ms', timeout: '150ms', rise: 2, fall: 3 };

describe('health checker', () => {
  it('a backend that accepts and never answers goes DOWN on L7TOUT within fall x interval + timeout', async () => {
    const s = await hangServer();
    cleanups.push(s.close);
    const t0 = Date.now();
    const { set, changes } = setup(listens(FAST, [{ name: 'a', port: s.port }]));
    await until(() => set.get('web', 'a')!.health === 'down', 3000, 'DOWN');
    const down = changes.find((c) => c.to === 'DOWN')!;
    expect(down.reason).toBe('check: L7TOUT no response after 150ms');
    // bound 3 x 100 + 150 = 450 ms, plus slack for a busy 2-core machine
    expect(down.at - t0).toBeLessThan(450 + 500);
    expect(set.get('web', 'a')!.lastCheck).toMatchObject({ code: 'L7TOUT', ok: false });
  });

  it('a backend that answers 500 to the check path goes DOWN with reason L7STS 500; only the check path counts', async () => {
    const s = await httpServer({ status: 500 });
    cleanups.push(s.close);
    const { set, changes } = setup(listens({ ...FAST, path: '/health', host: 'www.example' }, [{ name: 'a', port: s.port }]));
    await until(() => set.get('web', 'a')!.health === 'down', 3000, 'DOWN');
    expect(changes.filter((c) => c.from !== c.to).map((c) => `${c.from}->${c.to} ${c.reason}`)).toEqual(['UP->DOWN check: L7STS 500']);
    expect(s.seen.length).toBe(3);
    expect(new Set(s.seen.map((r) => `${r.method} ${r.url} ${r.host}`))).toEqual(new Set(['GET /health www.example']));
    expect(set.get('web', 'a')!.lastCheck).toMatchObject({ code: 'L7STS', ok: false, status: 500 });
  });

  it('a backend that resets connections goes DOWN with L7RSP', async () => {
    const s = await resetServer();
    cleanups.push(s.close);
    const { set, changes } = setup(listens(FAST, [{ name: 'a', port: s.port }]));
    await until(() => set.get('web', 'a')!.health === 'down', 3000, 'DOWN');
    expect(changes.find((c) => c.to === 'DOWN')!.reason).toBe('check: L7RSP connection reset');
  });

  it('a backend that dies and comes back: DOWN after fall, progress labels, UP after exactly rise good checks', async () => {
    let s = await httpServer();
    const port = s.port;
    cleanups.push(() => s.close());
    const { set, checker, changes } = setup(listens({ interval: '100ms', fastinterval: '100ms', downinterval: '300ms', timeout: '200ms', rise: 3, fall: 2 }, [{ name: 'a', port }]));
    await until(() => checker.progress('web', 'a')!.checks >= 2, 3000, 'two checks');
    expect(checker.progress('web', 'a')).toMatchObject({ state: 'UP', label: 'UP', failed: 0, rise: { n: 0, of: 3 }, fall: { n: 0, of: 2 }, intervalMs: 100 });
    await s.close();
    await until(() => checker.progress('web', 'a')!.label === 'UP 1/2', 3000, 'UP 1/2');
    await until(() => set.get('web', 'a')!.health === 'down', 3000, 'DOWN');
    expect(changes.at(-1)!.reason).toBe('check: L4CON ECONNREFUSED');
    expect(checker.progress('web', 'a')).toMatchObject({ state: 'DOWN', label: 'DOWN', intervalMs: 300 });
    s = await httpServer({ port });
    const back = Date.now();
    await until(() => checker.progress('web', 'a')!.label === 'DOWN 1/3', 3000, 'DOWN 1/3');
    // the checks after a good one use fastinterval
    expect(checker.progress('web', 'a')!.intervalMs).toBe(100);
    await until(() => set.get('web', 'a')!.health === 'up', 3000, 'UP');
    expect(changes.at(-1)).toMatchObject({ from: 'DOWN', to: 'UP', reason: 'check: L7OK 200' });
    expect(s.seen.length).toBe(3); // exactly `rise` checks reached the restarted server
    // downinterval 300 + 2 x fastinterval 100, with slack
    expect(Date.now() - back).toBeLessThan(500 + 1000);
    expect(set.get('web', 'a')!.upSince).toBeGreaterThan(0); // slow start ramps from here
  });

  it('brings back a backend that passive checks marked DOWN', async () => {
    const s = await httpServer();
    cleanups.push(s.close);
    const { set, checker, changes } = setup(listens({ ...FAST, rise: 2 }, [{ name: 'a', port: s.port }]));
    await until(() => checker.progress('web', 'a')!.checks >= 1, 3000, 'first check');
    set.setHealth('web', 'a', 'down', 'passive: 3 consecutive connect errors');
    await until(() => set.get('web', 'a')!.health === 'up', 3000, 'UP again');
    expect(changes.filter((c) => c.from !== c.to).map((c) => c.reason)).toEqual(['passive: 3 consecutive connect errors', 'check: L7OK 200']);
  });

  it('does not check a backend with check: false', async () => {
    const a = await httpServer({ status: 500 });
    const b = await httpServer({ status: 500 });
    cleanups.push(a.close, b.close);
    const { set, checker } = setup(listens(FAST, [{ name: 'a', port: a.port }, { name: 'b', port: b.port, check: false }]));
    await until(() => set.get('web', 'a')!.health === 'down', 3000, 'a DOWN');
    expect(b.seen.length).toBe(0);
    expect(set.get('web', 'b')!.health).toBe('up');
    expect(checker.progress('web', 'b')).toBeUndefined();
  });

  it('follows backends added and removed at runtime (a clone added DOWN joins after rise checks)', async () => {
    const a = await httpServer();
    const c = await httpServer();
    cleanups.push(a.close, c.close);
    const { set, checker, changes } = setup(listens(FAST, [{ name: 'a', port: a.port }]));
    set.addBackend('web', { name: 'clone-1', address: `127.0.0.1:${c.port}`, health: 'down', origin: 'clone' }, 'scale: clone added');
    await until(() => set.get('web', 'clone-1')?.health === 'up', 3000, 'clone UP');
    expect(changes.filter((x) => x.backend === 'clone-1').map((x) => `${x.from}->${x.to} ${x.reason}`)).toEqual(['ABSENT->DOWN scale: clone added', 'DOWN->UP check: L7OK 200']);
    expect(c.seen.length).toBe(2);
    set.removeBackend('web', 'clone-1', 'scale: clone removed');
    await new Promise((r) => setTimeout(r, 0));
    expect(checker.progress('web', 'clone-1')).toBeUndefined();
    const n = c.seen.length;
    await new Promise((r) => setTimeout(r, 400));
    expect(c.seen.length).toBe(n);
    expect(checker.progress('web', 'a')!.checks).toBeGreaterThan(2);
  });

  it('applies new check settings and new backends on reload', async () => {
    const a = await httpServer();
    const b = await httpServer();
    cleanups.push(a.close, b.close);
    const { set, checker } = setup(listens(FAST, [{ name: 'a', port: a.port }]));
    await until(() => a.seen.length >= 1, 3000, 'first check');
    set.applyConfig(listens({ ...FAST, path: '/v2/health' }, [{ name: 'a', port: a.port }, { name: 'b', port: b.port }]));
    checker.reconcile(); // what the module's reload() does
    await until(() => a.seen.some((r) => r.url === '/v2/health') && b.seen.length >= 1, 3000, 'new path on a and b');
    expect(b.seen.every((r) => r.url === '/v2/health')).toBe(true);
    const n = a.seen.length;
    set.applyConfig(listens(FAST, [{ name: 'b', port: b.port }]));
    await new Promise((r) => setTimeout(r, 300));
    expect(a.seen.length - n).toBeLessThanOrEqual(1); // at most one check already in flight
    expect(checker.list().map((p) => p.backend)).toEqual(['b']);
  });

  it('turning checks off on reload releases a backend that checks had taken DOWN', async () => {
    const s = await httpServer({ status: 503 });
    cleanups.push(s.close);
    const { set, checker, changes } = setup(listens(FAST, [{ name: 'a', port: s.port }]));
    await until(() => set.get('web', 'a')!.health === 'down', 3000, 'DOWN');
    set.applyConfig(listens(FAST, [{ name: 'a', port: s.port, check: false }]));
    checker.reconcile();
    expect(set.get('web', 'a')!.health).toBe('up');
    expect(changes.at(-1)).toMatchObject({ from: 'DOWN', to: 'UP', reason: 'check: disabled' });
    expect(checker.progress('web', 'a')).toBeUndefined();
  });

  it('stop() aborts checks in flight and runs no more', async () => {
    const s = await hangServer();
    cleanups.push(s.close);
    const { checker } = setup(listens({ interval: '10ms', timeout: '5s' }, [{ name: 'a', port: s.port }]));
    await until(() => s.accepted >= 1, 3000, 'a check in flight');
    await new Promise((r) => setTimeout(r, 50));
    expect(s.open()).toBe(1);
    checker.stop();
    expect(checker.list()).toEqual([]);
    await until(() => s.open() === 0, 1000, 'the check in flight to be closed'); // not after 5 s
    const n = s.accepted;
    await new Promise((r) => setTimeout(r, 100));
    expect(s.accepted).toBe(n);
  });

  it('spreads the first checks of many backends over the interval', async () => {
    const port = await closedPort();
    const many = Array.from({ length: 40 }, (_, i) => ({ name: `b${i}`, port }));
    const t0 = Date.now();
    const { checker } = setup(listens({ interval: '1s', timeout: '200ms' }, many));
    const first = checker.list().map((p) => p.nextAt - t0);
    expect(first.length).toBe(40);
    expect(Math.min(...first)).toBeGreaterThanOrEqual(0);
    expect(Math.max(...first)).toBeLessThanOrEqual(1000 + 50);
    // 40 uniform draws over 1 s: the spread is far more than half the interval, and few share a ms
    expect(Math.max(...first) - Math.min(...first)).toBeGreaterThan(500);
    expect(new Set(first).size).toBeGreaterThan(30);
  });
});
