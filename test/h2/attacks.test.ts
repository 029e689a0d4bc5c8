import http2 from 'node:http2';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startBackend, type TestBackend } from '../helpers/backend.js';
import { makeCa, makeLeaf, type Leaf } from '../helpers/certs.js';
import { startPairlb, type PairlbProc } from '../helpers/proc.js';
import { ensureBuilt } from '../daemon/daemon.js';
import { ErrorCode, FrameType } from '../helpers/h2-frames.js';
import {
  continuationFlood, hpackBomb, oversizedHeaders, pingFlood, prefaceOnly, rapidReset, settingsBurst, settingsFlood, tooManyStreams, zeroWindow,
  type Attack, type AttackResult, type AttackTarget,
} from '../helpers/h2-attacks.js';

/**
 * The known HTTP/2 attacks (issue 16) against the real `pairlb` process, h2c and h2 over TLS,
 * with one data-plane worker (the counters cross from the worker like real traffic's). For each:
 * the attacker is cut (or its stream refused) within a bound, pairlb's RSS and CPU time during
 * the attack stay bounded, `pairlb_h2_refused_total{reason}` grows by the attack's reason, a
 * canary client on another connection is served throughout, and the backend keeps no trace of
 * it (no error, no check failure, still UP).
 *
 * Bounds carry slack for a loaded 2-core machine: they catch an unbounded attack (minutes, hundreds
 * of MB, seconds of CPU), not a slow run. Measured figures: bench/h2-attacks.ts, docs/http2.md.
 */

const LIMITS = {
  max_concurrent_streams: 20, max_resets_per_10s: 100, max_rejected_per_10s: 20, max_pings_per_10s: 50, max_settings_per_10s: 30,
  max_header_list_size: 8192, stream_idle: '1500ms', idle: '2s',
};
/** Time to cut bound for the floods (the timers' cases add their timer). */
const CUT_MS = 5000;
const RSS_MB = 64;
const CPU_S = 2;

let dir: string;
let leaf: Leaf;
let be: TestBackend;
let lb: PairlbProc;
let statsPort: number;
let h2c: AttackTarget;
let h2tls: AttackTarget;

beforeAll(async () => {
  ensureBuilt();
  dir = mkdtempSync(join(tmpdir(), 'h2g-attacks-'));
  const ca = makeCa(join(dir, 'ca'));
  leaf = makeLeaf(ca, 'a', ['a.h2g.test']);
  be = await startBackend('b1', (req, res) => {
    if (req.url === '/big') { res.writeHead(200, { 'content-length': String(1 << 20) }); res.end(Buffer.alloc(1 << 20, 'x')); return true; }
    if (req.url === '/hang') return true; // never answered
    if (req.url === '/slow') { setTimeout(() => { res.writeHead(200, { 'content-length': '4' }); res.end('slow'); }, 300); return true; }
    return false;
  });
  const limits = JSON.stringify(LIMITS);
  lb = await startPairlb(`global: { workers: 1 }
listen:
  - name: h2c
    bind: 127.0.0.1:0
    h2c: true
    h2_limits: ${limits}
    check: { interval: 300ms }
    backends: [ { name: b1, address: ${be.address} } ]
  - name: tls
    bind: 127.0.0.1:0
    h2: true
    tls: { certificates: [${leaf.bundle}] }
    h2_limits: ${limits}
    check: { interval: 300ms }
    backends: [ { name: b1, address: ${be.address} } ]
stats: { bind: 127.0.0.1:0 }
`, { dir });
  const at = lb.logs.find((l) => typeof l.msg === 'string' && l.msg.startsWith('stats page listening')) as { address?: { port: number } } | undefined;
  statsPort = at!.address!.port;
  h2c = { port: lb.port('h2c'), path: '/', bigPath: '/big', slowPath: '/slow' };
  h2tls = { port: lb.port('tls'), tls: { servername: 'a.h2g.test', ca: readFileSync(ca.rootCert) }, authority: 'a.h2g.test', path: '/', bigPath: '/big', slowPath: '/slow' };
  await waitFor(async () => (await metric('pairlb_backend_up', { listen: 'h2c', backend: 'b1' })) === 1, 10_000, 'b1 UP');
});

afterAll(async () => {
  await lb?.stop();
  await be?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

async function metrics(): Promise<string> {
  const r = await fetch(`http://127.0.0.1:${statsPort}/metrics`);
  return r.text();
}

/** The value of one series (labels must all match), 0 when absent. */
async function metric(name: string, labels: Record<string, string>): Promise<number> {
  const want = Object.entries(labels).map(([k, v]) => `${k}="${v}"`);
  for (const line of (await metrics()).split('\n')) {
    if (!line.startsWith(name + '{')) continue;
    const lbl = line.slice(name.length + 1, line.indexOf('}'));
    if (want.every((w) => lbl.split(',').includes(w))) return Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return 0;
}

/** What the backend's rows say: nothing here may change because of a client's attack. */
async function backendTrace(listen: string): Promise<Record<string, number>> {
  const text = await metrics();
  const out: Record<string, number> = {};
  for (const line of text.split('\n')) {
    if (!line.startsWith('pairlb_backend_') || !line.includes(`listen="${listen}"`)) continue;
    const name = line.slice(0, line.indexOf('{'));
    if (!/errors_total|check_failures_total|downs_total|pairlb_backend_up\b|retries_total|redispatches_total/.test(name)) continue;
    out[line.slice(0, line.lastIndexOf(' '))] = Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return out;
}

function cpuSeconds(pid: number): number {
  // /proc/<pid>/stat: utime and stime are fields 14 and 15, in clock ticks (100 per second).
  const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  return (Number(f[11]) + Number(f[12])) / 100;
}

async function waitFor(pred: () => Promise<boolean> | boolean, ms: number, what: string): Promise<void> {
  const end = Date.now() + ms;
  while (!(await pred())) {
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

interface Run { r: AttackResult; rssMb: number; cpuS: number; canaryOk: number; canaryFailed: string[] }

/**
 * Run `attack` while a canary (node:http2, its own connection) requests `/` in a loop: one request
 * before (warm), during, one after. Returns the attack's result, pairlb's RSS growth (peak
 * sampled every 20 ms) and CPU seconds over the attack.
 */
async function underAttack(t: AttackTarget, attack: Attack): Promise<Run> {
  const url = t.tls ? `https://127.0.0.1:${t.port}` : `http://127.0.0.1:${t.port}`;
  const client = http2.connect(url, t.tls ? { ca: t.tls.ca, servername: t.tls.servername } : {});
  client.on('error', () => {});
  let canaryOk = 0;
  const canaryFailed: string[] = [];
  const get = () => new Promise<void>((resolve) => {
    const r = client.request({ ':path': '/', ':authority': t.authority ?? 'localhost' });
    r.setTimeout(5000, () => { canaryFailed.push('timeout'); r.close(); });
    r.on('response', (h) => { if (h[':status'] === 200) canaryOk++; else canaryFailed.push(String(h[':status'])); });
    r.on('error', (e) => canaryFailed.push(e.message));
    r.on('close', () => resolve());
    r.resume();
  });
  await get();
  const rss0 = lb.rssKb();
  let rssPeak = rss0;
  const sampler = setInterval(() => { try { rssPeak = Math.max(rssPeak, lb.rssKb()); } catch { /* exited */ } }, 20);
  const cpu0 = cpuSeconds(lb.pid);
  let stop = false;
  // Paced (50 requests/s at most): the canary's own cost stays small next to the CPU bound.
  const loop = (async () => { for (let i = 0; i < 5000 && !stop; i++) { await get(); await new Promise((r) => setTimeout(r, 20)); } })();
  try {
    const r = await attack(t);
    const cpuS = cpuSeconds(lb.pid) - cpu0;
    stop = true;
    await loop;
    await get();
    return { r, rssMb: (rssPeak - rss0) / 1024, cpuS, canaryOk, canaryFailed };
  } finally {
    stop = true;
    clearInterval(sampler);
    await loop;
    client.close();
  }
}

/** Runs an attack and checks the common bounds; `reason` must grow by at least `min`. */
async function check(t: AttackTarget, listen: string, attack: Attack, reason: string, o: { cutMs?: number; min?: number } = {}): Promise<Run> {
  const before = await metric('pairlb_h2_refused_total', { listen, reason });
  const trace = await backendTrace(listen);
  const run = await underAttack(t, attack);
  expect(run.canaryFailed).toEqual([]);
  expect(run.canaryOk).toBeGreaterThanOrEqual(2);
  expect(run.r.cutMs).toBeLessThan(o.cutMs ?? CUT_MS);
  expect(run.rssMb).toBeLessThan(RSS_MB);
  expect(run.cpuS).toBeLessThan(CPU_S);
  await waitFor(async () => (await metric('pairlb_h2_refused_total', { listen, reason })) >= before + (o.min ?? 1), 3000, `pairlb_h2_refused_total{reason="${reason}"} to grow`)
    .catch(async (e: Error) => { throw new Error(`${e.message}; now: ${(await metrics()).split('\n').filter((l) => l.startsWith('pairlb_h2_refused_total') && !l.endsWith(' 0')).join(', ')}`); });
  expect(await backendTrace(listen)).toEqual(trace);
  return run;
}

describe('HTTP/2 attacks against the real pairlb (h2c)', () => {
  it('rapid reset: cut with GOAWAY ENHANCE_YOUR_CALM after about max_resets_per_10s streams', async () => {
    const run = await check(h2c, 'h2c', rapidReset, 'rapid_reset');
    expect(run.r.closed).toBe(true);
    // pairlb's GOAWAY, or Node's own cut (INTERNAL_ERROR), or none (a TCP reset: the attacker was still writing).
    expect([ErrorCode.ENHANCE_YOUR_CALM, ErrorCode.INTERNAL_ERROR, undefined]).toContain(run.r.goaway);
    // The GOAWAY names the last stream pairlb processed: far below the 5000 the attacker sent.
    if (run.r.goaway !== undefined) expect(run.r.conn.goaway()!.lastStreamId).toBeLessThan(2 * 1000);
  });

  it('CONTINUATION flood: cut after a few frames', async () => {
    const run = await check(h2c, 'h2c', continuationFlood, 'continuation');
    expect(run.r.closed).toBe(true);
    expect(run.r.sent).toBeLessThan(10_000);
  });

  it('HPACK bomb: each stream refused before the backend, then the connection cut', async () => {
    const seen = be.seen.length;
    const run = await check(h2c, 'h2c', hpackBomb, 'header_flood');
    expect(run.r.closed).toBe(true);
    // An attacker still writing when pairlb closes may get a TCP reset instead of the GOAWAY (its unread bytes).
    expect([ErrorCode.ENHANCE_YOUR_CALM, undefined]).toContain(run.r.goaway);
    expect(await metric('pairlb_h2_refused_total', { listen: 'h2c', reason: 'header_list' })).toBeGreaterThan(LIMITS.max_rejected_per_10s);
    // None of the bomb's requests reached the backend (the canary's and health checks did).
    expect(be.seen.slice(seen).filter((s) => s.headers['x-bomb'] !== undefined)).toEqual([]);
  });

  it('SETTINGS flood: a client acknowledging everything is cut by the rate bound, a burst by nghttp2', async () => {
    const run = await check(h2c, 'h2c', settingsFlood, 'settings_flood');
    expect(run.r.goaway).toBe(ErrorCode.ENHANCE_YOUR_CALM);
    // SETTINGS frames answered before the GOAWAY: our SETTINGS, then one ACK per frame up to the bound.
    expect(run.r.conn.countBeforeGoaway(FrameType.SETTINGS)).toBeLessThanOrEqual(LIMITS.max_settings_per_10s + 3);
    const burst = await check(h2c, 'h2c', settingsBurst, 'settings_flood');
    expect(burst.r.closed).toBe(true);
  });

  it('PING flood: cut by the rate bound', async () => {
    const run = await check(h2c, 'h2c', pingFlood, 'ping_flood');
    expect(run.r.goaway).toBe(ErrorCode.ENHANCE_YOUR_CALM);
    // PINGs answered before the GOAWAY (the connection is still read for 250 ms after it).
    expect(run.r.conn.countBeforeGoaway(FrameType.PING)).toBeLessThanOrEqual(LIMITS.max_pings_per_10s + 1);
  });

  it('zero-window stall: 10 streams of 1 MiB never read are reset after stream_idle, then the connection idles out; memory freed', async () => {
    const run = await check(h2c, 'h2c', zeroWindow(10), 'window_stall', { cutMs: 1500 + 2000 + CUT_MS, min: 10 });
    expect(run.r.resets.get(ErrorCode.CANCEL)).toBe(10);
    expect(run.r.closed).toBe(true);
    expect(run.r.goaway).toBe(ErrorCode.NO_ERROR);
  });

  it('more streams than max_concurrent_streams: refused, the connection closed (PROTOCOL_ERROR)', async () => {
    const run = await check(h2c, 'h2c', tooManyStreams(60), 'protocol');
    expect(run.r.closed).toBe(true);
    // nghttp2 closes this one itself, at once: the client may get a TCP reset of its unread
    // streams instead of the GOAWAY.
    expect([ErrorCode.PROTOCOL_ERROR, undefined]).toContain(run.r.goaway);
  });

  it('oversized header list: RST_STREAM for that stream, the next request on the connection served', async () => {
    const seen = be.seen.length;
    const run = await check(h2c, 'h2c', oversizedHeaders(LIMITS.max_header_list_size), 'header_list');
    const rst = run.r.conn.frames.find((f) => f.streamId === 1);
    expect(rst?.type).toBe(3);
    expect(run.r.conn.frames.some((f) => f.streamId === 3 && f.type === 1)).toBe(true);
    expect(be.seen.slice(seen).filter((s) => s.headers['x-big0'] !== undefined)).toEqual([]);
    run.r.conn.destroy();
  });

  it('slowloris: the preface and nothing else is closed after idle', async () => {
    const run = await check(h2c, 'h2c', prefaceOnly, 'idle', { cutMs: 2000 + CUT_MS });
    expect(run.r.closed).toBe(true);
    expect(run.r.cutMs).toBeGreaterThanOrEqual(2000 - 100);
  });

  it('a complete request whose backend never answers: reset (CANCEL) after stream_idle, counted; the connection goes on', async () => {
    // (timeouts.server, 30 s by default, is longer: the guard's sweep bounds the wait for a response head.)
    const before = await metric('pairlb_h2_refused_total', { listen: 'h2c', reason: 'stream_idle' });
    const s = http2.connect(`http://127.0.0.1:${h2c.port}`);
    s.on('error', () => {});
    try {
      const t0 = Date.now();
      const st = s.request({ ':path': '/hang' }, { endStream: true });
      st.on('error', () => {});
      const code = await new Promise<number>((ok) => st.on('close', () => ok(st.rstCode ?? -1)));
      const ms = Date.now() - t0;
      expect(code).toBe(ErrorCode.CANCEL);
      expect(ms).toBeGreaterThanOrEqual(1500 - 100);
      expect(ms).toBeLessThan(1500 + 500 + CUT_MS);
      const next = s.request({ ':path': '/' }, { endStream: true });
      const status = await new Promise<number>((ok, fail) => { next.on('response', (h) => ok(Number(h[':status']))); next.on('error', fail); next.resume(); });
      expect(status).toBe(200);
      await waitFor(async () => (await metric('pairlb_h2_refused_total', { listen: 'h2c', reason: 'stream_idle' })) === before + 1, 3000, 'stream_idle counted');
    } finally { s.close(); }
  });
});

describe('HTTP/2 attacks over TLS (ALPN h2)', () => {
  it('rapid reset over TLS', async () => {
    const run = await check(h2tls, 'tls', rapidReset, 'rapid_reset');
    expect(run.r.closed).toBe(true);
  });

  it('slowloris over TLS: handshake, preface, nothing else', async () => {
    const run = await check(h2tls, 'tls', prefaceOnly, 'idle', { cutMs: 2000 + CUT_MS });
    expect(run.r.closed).toBe(true);
  });

  it('the backend stayed UP through every attack', async () => {
    expect(await metric('pairlb_backend_up', { listen: 'h2c', backend: 'b1' })).toBe(1);
    expect(await metric('pairlb_backend_up', { listen: 'tls', backend: 'b1' })).toBe(1);
  });
});
