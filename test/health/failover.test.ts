import { afterAll, describe, expect, it } from 'vitest';
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { Writable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { App } from '../../src/app.js';
import type { StateChange } from '../../src/backends/backend-set.js';
import { configSchema } from '../../src/config/schema.js';
import { createLogger } from '../../src/log.js';
import '../../src/modules.js';

/**
 * Must-show of issue 3: two real backends (child processes, so SIGKILL is real) behind the real
 * proxy under a bounded load (32 connections x 10 s, from a load generator in its own process). One backend is SIGKILLed mid-run and
 * restarted. Measured figures are printed as one "FAILOVER {...}" line per run:
 *   npx vitest run test/health/failover.test.ts
 * HC_DEBUG=1 also prints every failed request: [start, end] relative to the kill (ms), whether the
 * killed backend had read its head, status (0 = client-side error) and error.
 */

const BACKEND = fileURLToPath(new URL('./fixtures/backend.mjs', import.meta.url));
const LOAD = fileURLToPath(new URL('./fixtures/load.mjs', import.meta.url));
const CONNS = 32;
const RUN_MS = 10_000;
const KILL_AT = 2_000;
const RESTART_AT = 4_000;
const CHECK = { path: '/health', interval: 500, timeout: 500, rise: 2, fall: 3 };
const SLOWSTART = 3_000;
/** Backends answer after this long, so requests are in flight when the kill lands. */
const DELAY_MS = 10;
/** How long after the kill the proxy may still write to a pooled connection of the dead process. */
// 50 ms on a quiet machine; at load 16 on 2 cores the proxy took up to ~120 ms to see the dead
// process's connections close (measured), so the stated slack is 250 ms.
const IN_FLIGHT_SLACK_MS = 250;

interface Child { proc: ChildProcess; port: number; log: string[] }

const children: ChildProcess[] = [];
afterAll(async () => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) { const e = once(c, 'exit'); c.kill('SIGKILL'); await e; }
});

async function startBackend(name: string, port = 0): Promise<Child> {
  const proc = spawn(process.execPath, [BACKEND, name, String(port), String(DELAY_MS)], { stdio: ['ignore', 'pipe', 'inherit'] });
  children.push(proc);
  const log: string[] = [];
  let rest = '';
  let onListen: (p: number) => void = () => {};
  const listening = new Promise<number>((ok) => { onListen = ok; });
  proc.stdout!.on('data', (d: Buffer) => {
    const lines = (rest + d.toString()).split('\n');
    rest = lines.pop()!;
    for (const l of lines) {
      if (l.startsWith('LISTEN ')) onListen(Number(l.slice(7)));
      else if (l.startsWith('REQ ')) log.push(l.split(' ')[1]);
    }
  });
  const p = await Promise.race([listening, once(proc, 'exit').then(() => { throw new Error(`backend ${name} exited at start`); })]);
  return { proc, port: p, log };
}

interface Rec { id: string; start: number; end: number; status: number; backend: string; error?: string }

interface RunResult {
  recs: Rec[];
  killAt: number; restartAt: number;
  /** when the restarted process was accepting connections */
  backAt: number;
  downAt: number; downReason: string; upAt: number; upReason: string;
  logs: { a: string[]; b1: string[]; b2: string[] };
  warn502: number;
  counters5xx: number;
}

async function run(engine: string, method: 'GET' | 'POST', passive: { connect_errors: number }): Promise<RunResult> {
  const a = await startBackend('a');
  const b1 = await startBackend('b');
  const cfg = configSchema.parse({
    global: { log: { level: 'warn', access: 'off' } },
    listen: [{
      name: 'web', bind: '127.0.0.1:0', engine, slowstart: SLOWSTART, retries: 2, passive, check: CHECK,
      backends: [{ name: 'a', address: `127.0.0.1:${a.port}` }, { name: 'b', address: `127.0.0.1:${b1.port}` }],
    }],
  });
  const logLines: string[] = [];
  const sink = new Writable({ write(chunk, _enc, cb) { logLines.push(...chunk.toString().split('\n').filter(Boolean)); cb(); } });
  const app = new App(cfg, createLogger('warn', sink), { stateDir: null });
  await app.start();
  const changes: (StateChange & { at: number })[] = [];
  app.backends.on('change', (ev: StateChange) => changes.push({ ...ev, at: Date.now() }));
  const addr = app.proxy.address('web')!;
  const load = spawn(process.execPath, [LOAD, `http://127.0.0.1:${addr.port}`, method, String(CONNS), String(RUN_MS)], { stdio: ['ignore', 'pipe', 'inherit'] });
  children.push(load);
  let out = '';
  load.stdout!.on('data', (d: Buffer) => { out += d.toString(); });
  await new Promise<void>((ok, fail) => {
    const onData = () => { if (out.startsWith('READY\n')) { load.stdout!.off('data', onData); ok(); } };
    load.stdout!.on('data', onData);
    load.once('exit', () => fail(new Error('load generator exited early')));
  });
  const t0 = Date.now();
  let b2: Child | undefined;
  let killAt = 0;
  let restartAt = 0;
  let backAt = 0;
  const chaos = (async () => {
    await new Promise((r) => setTimeout(r, KILL_AT));
    killAt = Date.now();
    b1.proc.kill('SIGKILL');
    await once(b1.proc, 'exit');
    await new Promise((r) => setTimeout(r, RESTART_AT - (Date.now() - t0)));
    restartAt = Date.now();
    b2 = await startBackend('b', b1.port);
    backAt = Date.now();
  })();
  await Promise.all([once(load, 'close'), chaos]);
  const recs: Rec[] = (JSON.parse(out.slice('READY\n'.length)) as [string, number, number, number, string, string][])
    .map(([id, start, end, status, backend, error]) => ({ id, start, end, status, backend, ...(error ? { error } : {}) }));
  const counters5xx = app.counters.listen('web').status[5];
  await app.stop(1000);
  for (const c of [a, b2]) if (c) { const e = once(c.proc, 'exit'); c.proc.kill('SIGKILL'); await e; }
  const down = changes.find((c) => c.backend === 'b' && c.to === 'DOWN');
  const up = changes.find((c) => c.backend === 'b' && c.from === 'DOWN' && c.to === 'UP');
  return {
    recs, killAt, restartAt, backAt,
    downAt: down?.at ?? 0, downReason: down?.reason ?? '', upAt: up?.at ?? 0, upReason: up?.reason ?? '',
    logs: { a: a.log, b1: b1.log, b2: b2?.log ?? [] },
    warn502: logLines.filter((l) => l.includes('"request failed: 502"')).length,
    counters5xx,
  };
}

/** Share of successful responses served by b among those that ended in [from, to). */
function shareB(recs: Rec[], from: number, to: number): { share: number; n: number } {
  const w = recs.filter((r) => r.status === 200 && r.end >= from && r.end < to);
  return { share: w.filter((r) => r.backend === 'b').length / Math.max(1, w.length), n: w.length };
}

function report(engine: string, method: string, r: RunResult): Record<string, unknown> {
  const failed = r.recs.filter((x) => x.status !== 200);
  const early = shareB(r.recs, r.upAt, r.upAt + 1000);
  const late = shareB(r.recs, r.upAt + SLOWSTART + 250, r.upAt + SLOWSTART + 10_000);
  const m = {
    engine, method, requests: r.recs.length, failed: failed.length,
    /** failures whose request head the killed process had already read (the rest sat in its socket buffer) */
    failedSeenByKilled: failed.filter((f) => r.logs.b1.includes(f.id)).length,
    failedStartedAfterKill: failed.filter((f) => f.start > r.killAt).length,
    latestFailedStartAfterKillMs: failed.length ? Math.max(...failed.map((f) => f.start - r.killAt)) : null,
    failedStatuses: [...new Set(failed.map((f) => f.status))],
    detectionMs: r.downAt - r.killAt, detectionBoundMs: CHECK.fall * CHECK.interval + CHECK.timeout, downReason: r.downReason,
    upAfterRestartMs: r.upAt - r.restartAt, upAfterListeningMs: r.upAt - r.backAt, upReason: r.upReason,
    shareBFirstSecondAfterUp: +early.share.toFixed(3), shareBAfterSlowstart: +late.share.toFixed(3),
    warn502: r.warn502, counters5xx: r.counters5xx,
  };
  console.log('FAILOVER ' + JSON.stringify(m));
  return m;
}

function commonAsserts(r: RunResult): void {
  expect(r.downAt, 'b marked DOWN').toBeGreaterThan(0);
  // DOWN within fall x interval + timeout of the kill
  expect(r.downAt - r.killAt).toBeLessThanOrEqual(CHECK.fall * CHECK.interval + CHECK.timeout);
  expect(r.upAt, 'b UP again').toBeGreaterThan(r.restartAt);
  expect(r.upReason).toBe('check: L7OK 200');
  // UP after `rise` checks once the new process listens: at most one interval to the first good
  // check, then rise-1 more (+ slack for a busy machine)
  expect(r.upAt - r.backAt).toBeLessThan(CHECK.rise * CHECK.interval + 1000);
  // takes traffic again, ramping: small share in the first second, about half once slow start is over
  const early = shareB(r.recs, r.upAt, r.upAt + 1000);
  const late = shareB(r.recs, r.upAt + SLOWSTART + 250, r.upAt + SLOWSTART + 10_000);
  expect(early.n).toBeGreaterThan(20);
  expect(late.n).toBeGreaterThan(20);
  expect(early.share).toBeGreaterThan(0);
  expect(early.share).toBeLessThan(0.3);
  expect(late.share).toBeGreaterThan(0.4);
  expect(late.share).toBeGreaterThan(early.share);
  // nothing reached b between its DOWN and its UP (the dead process cannot log; the new one must not)
  expect(r.recs.filter((x) => x.backend === 'b' && x.start > r.downAt && x.end < r.upAt)).toEqual([]);
}

// Both forwarding engines are held to the same behaviour (design.md).
describe.each(['undici', 'native'])('a backend killed under load (engine %s)', (engine) => {
  it('GETs: zero failed requests; DOWN within fall x interval + timeout; UP after rise, then slow start', async () => {
    const r = await run(engine, 'GET', { connect_errors: 3 });
    report(engine, 'GET', r);
    expect(r.recs.length).toBeGreaterThan(1000);
    expect(r.recs.filter((x) => x.status !== 200)).toEqual([]);
    commonAsserts(r);
  });

  it('POSTs (active checks only): only POSTs in flight on the killed backend fail, each a 502; no POST reaches a backend twice', async () => {
    const r = await run(engine, 'POST', { connect_errors: 0 });
    const m = report(engine, 'POST', r);
    if (process.env.HC_DEBUG) {
      const byId = new Map(r.recs.map((x) => [x.id, x]));
      const tail = r.logs.b1.slice(-40).map((id) => { const x = byId.get(id)!; return `${id} ${x?.status} ${x?.backend} ${x ? x.start - r.killAt : ''} ${x ? x.end - r.killAt : ''}`; });
      console.log('B1 TAIL\n' + tail.join('\n'));
      console.log('FAILED ' + JSON.stringify(r.recs.filter((x) => x.status !== 200).map((x) => [x.start - r.killAt, x.end - r.killAt, r.logs.b1.includes(x.id), x.status, x.error ?? '', r.logs.a.includes(x.id) ? 'seen by a' : ''])));
    }
    expect(r.recs.length).toBeGreaterThan(1000);
    const failed = r.recs.filter((x) => x.status !== 200);
    // each failure is a 502 (no socket error, no other status), counted and logged by the proxy
    expect(failed.filter((f) => f.status !== 502)).toEqual([]);
    expect(r.warn502).toBe(failed.length);
    expect(r.counters5xx).toBe(failed.length);
    // each failure was in flight on b when the kill landed: started before it, or so shortly after
    // that the proxy had not yet seen its keep-alive connections to b close (a POST written on such a
    // connection may have reached b as far as the proxy can tell, so it must not be replayed)
    expect(failed.filter((f) => !(f.start <= r.killAt + IN_FLIGHT_SLACK_MS && f.end >= r.killAt))).toEqual([]);
    expect(failed.length).toBeLessThanOrEqual(CONNS);
    // no POST reached a backend twice: every id appears at most once across all backend logs
    const all = [...r.logs.a, ...r.logs.b1, ...r.logs.b2];
    const dup = all.filter((id, i) => all.indexOf(id) !== i);
    expect(dup).toEqual([]);
    // every success was received exactly by the backend that answered it
    const logOf = { a: new Set(r.logs.a), b: new Set([...r.logs.b1, ...r.logs.b2]) };
    expect(r.recs.filter((x) => x.status === 200 && !logOf[x.backend as 'a' | 'b']?.has(x.id))).toEqual([]);
    // a failed POST never reached the surviving backend
    expect(failed.filter((f) => logOf.a.has(f.id) || r.logs.b2.includes(f.id))).toEqual([]);
    expect(r.downReason.startsWith('check: L4CON')).toBe(true);
    commonAsserts(r);
    void m;
  });
});
