import http2 from 'node:http2';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { h2LimitsSchema } from '../../src/h2/config.js';
import { compileH2Limits, guardSession, h2Refusals, h2ServerOptions, type H2Limits } from '../../src/h2/guard.js';
import { Counters } from '../../src/stats/counters.js';
import {
  ErrorCode, FrameType, H2Conn, PREFACE, Setting, continuation, errorCodeOf, headers, hpack, ping, requestBlock, rstStream, settings,
} from '../helpers/h2-frames.js';

/**
 * src/h2/guard.ts on a bare node:http2 server (the options and guardSession exactly as the h2
 * frontend applies them), attacked with raw frames (test/helpers/h2-frames.ts). The handler
 * stands in for the proxy: `/slow` answers after 20 ms (a backend round trip), `/hang` never,
 * `/big` writes 256 KiB. Every attack: the attacker is cut (or its stream refused) with the
 * expected frame and reason counted; a canary on another connection is served meanwhile.
 * test/h2/attacks.test.ts runs the same sequences against the real pairlb process.
 */

const limitsOf = (o: Record<string, unknown>): H2Limits => compileH2Limits(h2LimitsSchema.parse({
  max_concurrent_streams: 20, max_resets_per_10s: 50, max_rejected_per_10s: 10, max_pings_per_10s: 30, max_settings_per_10s: 20,
  max_header_list_size: 8192, ...o,
}), { max_headers: 50, timeouts: { client: 30_000 } });
/** The flood tests' server: timers long enough that a stalled, loaded machine never fires them mid-attack. */
const limits = limitsOf({ stream_idle: '20s', idle: '20s' });
/** The timer tests' server: short stream and connection idle timeouts. */
const timed = limitsOf({ stream_idle: '400ms', idle: '500ms' });

let server: http2.Http2Server;
let timedServer: http2.Http2Server;
let port = 0;
let timedPort = 0;
let counters: Counters;
let handled = 0;

async function start(l: H2Limits): Promise<[http2.Http2Server, number]> {
  const srv = http2.createServer(h2ServerOptions(l));
  srv.on('session', (s) => guardSession(s, l, counters));
  srv.on('stream', (st, h) => {
    handled++;
    st.on('error', () => {});
    const p = h[':path'];
    if (p === '/hang') return;
    if (p === '/big') { st.respond({ ':status': 200 }); st.end(Buffer.alloc(256 * 1024, 'x')); return; }
    const t = setTimeout(() => { if (!st.closed) { st.respond({ ':status': 200 }); st.end('ok'); } }, p === '/slow' ? 20 : 0);
    st.on('close', () => clearTimeout(t));
  });
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  return [srv, (srv.address() as { port: number }).port];
}

beforeAll(async () => {
  [server, port] = await start(limits);
  [timedServer, timedPort] = await start(timed);
});

afterAll(async () => { await Promise.all([server, timedServer].map((s) => new Promise((r) => s.close(r)))); });

/**
 * A well-behaved client on another connection: one request before the attack (connected and
 * warm), requests in a loop while it runs, one after; every one must get 200.
 */
async function withCanary<T>(attack: () => Promise<T>): Promise<{ result: T; ok: number; failed: string[] }> {
  const client = http2.connect(`http://127.0.0.1:${port}`);
  client.on('error', () => {});
  let ok = 0;
  const failed: string[] = [];
  const get = () => new Promise<void>((resolve) => {
    const r = client.request({ ':path': '/slow' });
    r.on('response', (h) => { if (h[':status'] === 200) ok++; else failed.push(String(h[':status'])); });
    r.on('error', (e) => { failed.push(e.message); resolve(); });
    r.resume();
    r.on('end', () => resolve());
  });
  await get();
  let stop = false;
  const loop = (async () => { for (let i = 0; i < 2000 && !stop; i++) await get(); })();
  try {
    const result = await attack();
    stop = true;
    await loop;
    await get();
    return { result, ok, failed };
  } finally {
    stop = true;
    await loop;
    client.close();
  }
}

async function attacker(p = port): Promise<H2Conn> {
  const c = await H2Conn.open({ port: p, keep: 64 });
  c.write(PREFACE, settings([]));
  return c;
}

const totals = () => Object.fromEntries(h2Refusals(counters).filter(([, v]) => v > 0));

describe('h2 guard on a bare node:http2 server', () => {
  it('server options carry the limits as SETTINGS and Node options', async () => {
    const o = h2ServerOptions(limits) as Record<string, unknown> & { settings: Record<string, unknown> };
    expect(o.settings).toEqual({ maxConcurrentStreams: 20, maxHeaderListSize: 8192, initialWindowSize: 65535, headerTableSize: 4096, enablePush: false });
    expect(o.maxHeaderListPairs).toBe(54);
    counters = new Counters();
    const c = await attacker();
    const s = await c.waitFor((f) => f.type === FrameType.SETTINGS && !(f.flags & 1), 2000);
    const got = new Map<number, number>();
    for (let i = 0; i + 6 <= s!.payload.length; i += 6) got.set(s!.payload.readUInt16BE(i), s!.payload.readUInt32BE(i + 2));
    expect(got.get(Setting.MAX_CONCURRENT_STREAMS)).toBe(20);
    expect(got.get(Setting.MAX_HEADER_LIST_SIZE)).toBe(8192);
    expect(got.get(Setting.ENABLE_PUSH)).toBe(0);
    c.destroy();
  });

  it('rapid reset: streams opened and cancelled in a loop are cut with GOAWAY ENHANCE_YOUR_CALM', async () => {
    counters = new Counters();
    handled = 0;
    const { ok, failed } = await withCanary(async () => {
      const c = await attacker();
      for (let i = 0; i < 5000 && !c.isClosed; i++) {
        const id = 1 + 2 * i;
        c.write(headers(id, requestBlock('GET', '/hang', 'localhost'), { endStream: true }), rstStream(id, ErrorCode.CANCEL));
        if (i % 20 === 19) await c.drain();
        if (i % 100 === 99) await new Promise((r) => setImmediate(r));
      }
      expect(await c.waitClosed(5000)).toBe(true);
      expect(c.goaway()?.code).toBe(ErrorCode.ENHANCE_YOUR_CALM);
    });
    expect(totals()).toEqual({ rapid_reset: 1 });
    // Cut after the bound, long before the 5000 streams: the guard's or nghttp2's (2×) bound.
    expect(handled).toBeLessThanOrEqual(2 * limits.maxResets + 200);
    expect(failed).toEqual([]);
    expect(ok).toBeGreaterThanOrEqual(2);
  });

  it('CONTINUATION flood: a header block never ended is cut by nghttp2 and counted', async () => {
    counters = new Counters();
    const { ok, failed } = await withCanary(async () => {
      const c = await attacker();
      c.write(headers(1, requestBlock('GET', '/', 'localhost'), { endStream: true, endHeaders: false }));
      for (let i = 0; i < 10_000 && !c.isClosed; i++) {
        c.write(continuation(1, hpack.literal(`x-c${i}`, 'v')));
        if (i % 50 === 49) await c.drain();
      }
      expect(await c.waitClosed(5000)).toBe(true);
    });
    expect(totals()).toEqual({ continuation: 1 });
    expect(failed).toEqual([]);
    expect(ok).toBeGreaterThanOrEqual(2);
  });

  it('oversized header list: that stream is refused (RST_STREAM), the next request on the same connection is served', async () => {
    counters = new Counters();
    const c = await attacker();
    // Node applies max_header_list_size once the client acknowledged our SETTINGS (nghttp2's local
    // settings); before that its default (64 KiB) bounds the list.
    await c.waitFor((f) => f.type === FrameType.SETTINGS && (f.flags & 1) === 1, 2000);
    const block = requestBlock('GET', '/', 'localhost', Array.from({ length: 6 }, (_, i) => [`x-big${i}`, 'b'.repeat(2000)] as const));
    c.write(headers(1, block.subarray(0, 6000), { endStream: true, endHeaders: false }), continuation(1, block.subarray(6000), true));
    const rst = await c.waitFor((f) => f.streamId === 1, 3000);
    expect(rst?.type).toBe(FrameType.RST_STREAM);
    expect([ErrorCode.ENHANCE_YOUR_CALM, ErrorCode.REFUSED_STREAM]).toContain(errorCodeOf(rst!));
    c.write(headers(3, requestBlock('GET', '/', 'localhost'), { endStream: true }));
    const h = await c.waitFor((f) => f.streamId === 3 && f.type === FrameType.HEADERS, 3000);
    expect(h).toBeDefined();
    // Counted when stream 3 arrived (id 1 never reached JS).
    expect(totals()).toEqual({ header_list: 1 });
    c.destroy();
  });

  it('HPACK bomb: one large table entry referenced thousands of times is refused per stream, then the connection is cut', async () => {
    counters = new Counters();
    const { ok, failed } = await withCanary(async () => {
      const c = await attacker();
      for (let s = 0; s < 200 && !c.isClosed; s++) {
        const parts = [requestBlock('GET', '/', 'localhost')];
        if (s === 0) parts.push(hpack.incremental('x-bomb', 'a'.repeat(4000)));
        for (let i = 0; i < 1000; i++) parts.push(hpack.indexed(62));
        c.write(headers(1 + 2 * s, Buffer.concat(parts), { endStream: true }));
        await c.drain();
        // Paced (an attacker holding back between waves): the 1 s sweep finds the refusals.
        if (s % 10 === 9) await new Promise((r) => setTimeout(r, 100));
      }
      expect(await c.waitClosed(5000)).toBe(true);
      expect(c.goaway()?.code).toBe(ErrorCode.ENHANCE_YOUR_CALM);
    });
    const t = totals();
    expect(t.header_flood).toBe(1);
    expect(t.header_list).toBeGreaterThan(limits.maxRejected);
    expect(failed).toEqual([]);
    expect(ok).toBeGreaterThanOrEqual(2);
  });

  it('PING flood: more PINGs than max_pings_per_10s is cut (read or not)', async () => {
    counters = new Counters();
    const { ok, failed } = await withCanary(async () => {
      const c = await attacker();
      for (let i = 0; i < 200 && !c.isClosed; i++) { c.write(ping(i)); await c.waitFor((f) => f.type === FrameType.PING && f.payload.readUInt32BE(4) === i, 1000); }
      expect(await c.waitClosed(3000)).toBe(true);
      expect(c.goaway()?.code).toBe(ErrorCode.ENHANCE_YOUR_CALM);
      expect(c.countBeforeGoaway(FrameType.PING)).toBeLessThanOrEqual(limits.maxPings + 1);
    });
    expect(totals()).toEqual({ ping_flood: 1 });
    expect(failed).toEqual([]);
    expect(ok).toBeGreaterThanOrEqual(2);
  });

  it('SETTINGS flood: more SETTINGS than max_settings_per_10s is cut; a burst nghttp2 sees unacked is cut too', async () => {
    counters = new Counters();
    const c = await attacker();
    for (let i = 0; i < 200 && !c.isClosed; i++) { c.write(settings([[Setting.INITIAL_WINDOW_SIZE, 65535]])); await new Promise((r) => setImmediate(r)); }
    expect(await c.waitClosed(3000)).toBe(true);
    expect(c.goaway()?.code).toBe(ErrorCode.ENHANCE_YOUR_CALM);
    const burst = await attacker();
    const all = Buffer.concat(Array.from({ length: 5000 }, () => settings([[Setting.INITIAL_WINDOW_SIZE, 65535]])));
    burst.write(all);
    expect(await burst.waitClosed(3000)).toBe(true);
    expect(totals()).toEqual({ settings_flood: 2 });
  });

  it('zero-window stall: a client that never opens its window has the stream reset after stream_idle and the memory freed', async () => {
    counters = new Counters();
    const c = await H2Conn.open({ port: timedPort, keep: 64 });
    c.write(PREFACE, settings([[Setting.INITIAL_WINDOW_SIZE, 0]]));
    c.write(headers(1, requestBlock('GET', '/big', 'localhost'), { endStream: true }));
    const rst = await c.waitFor((f) => f.type === FrameType.RST_STREAM && f.streamId === 1, 3000);
    expect(rst && errorCodeOf(rst)).toBe(ErrorCode.CANCEL);
    expect(c.count(FrameType.DATA)).toBe(0);
    expect(totals()).toEqual({ window_stall: 1 });
    // Then, no stream open: the connection idles out.
    expect(await c.waitClosed(3000)).toBe(true);
    expect(totals()).toEqual({ window_stall: 1, idle: 1 });
  });

  it('zero-window stall kept alive with PINGs (each ACK refreshes Node\'s stream timer): still reset, after stream_idle + the 500 ms sweep', async () => {
    counters = new Counters();
    const c = await H2Conn.open({ port: timedPort, keep: 64 });
    c.write(PREFACE, settings([[Setting.INITIAL_WINDOW_SIZE, 0]]));
    for (let s = 0; s < 4; s++) c.write(headers(1 + 2 * s, requestBlock('GET', '/big', 'localhost'), { endStream: true }));
    const t0 = c.now();
    let n = 0;
    const pinger = setInterval(() => c.write(ping(n++)), 100);
    try {
      await c.waitFor(() => c.count(FrameType.RST_STREAM) === 4, 5000);
    } finally { clearInterval(pinger); }
    expect(c.count(FrameType.RST_STREAM)).toBe(4);
    expect(c.now() - t0).toBeLessThan(5000);
    expect(totals()).toEqual({ window_stall: 4 });
    c.destroy();
  });

  it('idle: a connection with no stream that only sends PINGs is still closed after idle', async () => {
    counters = new Counters();
    const c = await attacker(timedPort);
    let n = 0;
    const pinger = setInterval(() => c.write(ping(n++)), 100);
    try { expect(await c.waitClosed(5000)).toBe(true); } finally { clearInterval(pinger); }
    expect(c.goaway()?.code).toBe(ErrorCode.NO_ERROR);
    expect(totals()).toEqual({ idle: 1 });
  });

  it('stream idle: a request whose body never comes is reset after stream_idle', async () => {
    counters = new Counters();
    const c = await attacker(timedPort);
    c.write(headers(1, requestBlock('POST', '/hang', 'localhost'), { endStream: false }));
    const rst = await c.waitFor((f) => f.type === FrameType.RST_STREAM && f.streamId === 1, 3000);
    expect(rst && errorCodeOf(rst)).toBe(ErrorCode.CANCEL);
    expect(totals()).toEqual({ stream_idle: 1 });
    c.destroy();
  });

  it('slowloris: the preface and nothing else is closed after idle with GOAWAY NO_ERROR', async () => {
    counters = new Counters();
    const c = await H2Conn.open({ port: timedPort, ackSettings: false });
    c.write(PREFACE);
    expect(await c.waitClosed(3000)).toBe(true);
    expect(c.goaway()?.code).toBe(ErrorCode.NO_ERROR);
    expect(c.closedAt).toBeGreaterThanOrEqual(timed.idleMs - 50);
    expect(totals()).toEqual({ idle: 1 });
  });

  it('more streams than max_concurrent_streams after SETTINGS are acknowledged: refused, the attacker cut, the canary served', async () => {
    counters = new Counters();
    const { ok, failed } = await withCanary(async () => {
      const c = await attacker();
      await c.waitFor((f) => f.type === FrameType.SETTINGS && (f.flags & 1) === 1, 2000);
      for (let s = 0; s < 60; s++) c.write(headers(1 + 2 * s, requestBlock('GET', '/hang', 'localhost'), { endStream: true }));
      expect(await c.waitClosed(3000)).toBe(true);
      // nghttp2 closes it itself, at once: a TCP reset may overtake the GOAWAY.
      expect([ErrorCode.PROTOCOL_ERROR, undefined]).toContain(c.goaway()?.code);
    });
    expect(totals()).toEqual({ protocol: 1 });
    expect(failed).toEqual([]);
    expect(ok).toBeGreaterThanOrEqual(2);
  });

  it('an open stream keeps the connection past idle (slow response), then idle applies', async () => {
    counters = new Counters();
    const c = await attacker(timedPort);
    c.write(headers(1, requestBlock('GET', '/hang', 'localhost'), { endStream: true }));
    // The stream idles out at 400 ms (stream_idle), the connection only 500 ms after that.
    const rst = await c.waitFor((f) => f.type === FrameType.RST_STREAM && f.streamId === 1, 3000);
    expect(rst).toBeDefined();
    expect(c.isClosed).toBe(false);
    expect(await c.waitClosed(3000)).toBe(true);
    expect(totals()).toEqual({ stream_idle: 1, idle: 1 });
  });
});

async function waitFor(pred: () => boolean, ms: number): Promise<void> {
  const end = Date.now() + ms;
  while (!pred()) {
    if (Date.now() > end) throw new Error('condition not met in ' + ms + ' ms');
    await new Promise((r) => setTimeout(r, 10));
  }
}
