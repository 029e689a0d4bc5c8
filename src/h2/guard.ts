import { constants, type ServerHttp2Session, type ServerHttp2Stream, type ServerOptions } from 'node:http2';
import type { H2LimitsConfig } from './config.js';

/**
 * HTTP/2 limits and the known attacks, for every client session of an h2 frontend.
 *
 * How to call it (the h2 frontend, src/h2/):
 * ```ts
 * // config time (once per listen/frontend and reload):
 * const limits = compileH2Limits(section.h2_limits, section);   // section: ListenConfig or FrontendInput
 * const server = http2.createServer({ ...h2ServerOptions(limits) });   // or createSecureServer({ ...tls, ...h2ServerOptions(limits) })
 * // every new session, before anything else is attached to it:
 * server.on('session', (s) => guardSession(s, limits, counters));      // counters: the listen's Counters (src/stats/counters.ts)
 * ```
 * `guardSession` never touches a stream's request or response: the core keeps its own 'stream'
 * handler. It adds per session: 'stream', 'ping', 'remoteSettings', 'error' and 'close'
 * listeners; per stream: one 'close' listener, one 'timeout' listener (shared functions, no
 * closure per stream) and the stream idle timer. One process-wide 500 ms sweep over the guarded
 * sessions checks connection idle, window stalls and refused streams. Must not be called twice on one session, nor
 * with a session that is not a server session.
 *
 * It owns the streams' timeouts and the connection idle timeout: `stream_idle` is set with
 * stream.setTimeout (the caller must not set its own: a second setTimeout replaces the timer;
 * with guardStream, only on streams with a request body, see there);
 * `idle` (no open stream for that long, PINGs or not) is the sweep's, so session.setTimeout is
 * left alone. To close a session yourself
 * (graceful stop), use session.close()/destroy() as usual: nothing is counted for it.
 *
 * Before a client acknowledges our SETTINGS, nghttp2 still applies its defaults to what it
 * accepts: header lists up to 64 KiB (not max_header_list_size), streams over
 * max_concurrent_streams refused one by one (REFUSED_STREAM) rather than by GOAWAY.
 *
 * What it refuses, by reason (one counter each, `Counters.h2*`, `pairlb_h2_refused_total{reason}`):
 * - rapid_reset: more than max_resets_per_10s streams cancelled by the client before their
 *   response ended (CVE-2023-44487): GOAWAY ENHANCE_YOUR_CALM, connection closed.
 * - header_list: a stream Node/nghttp2 refused before it reached the proxy (header list over
 *   max_header_list_size, more than max_header_pairs fields: this is also where an HPACK bomb
 *   ends, decompression stops at the limit). Counted per stream, found by a 1 s sweep comparing
 *   the last stream id nghttp2 processed with the streams JS saw (no JS event exists for them).
 * - header_flood: more than max_rejected_per_10s such streams: GOAWAY ENHANCE_YOUR_CALM.
 * - continuation: nghttp2 (Node 24) refuses more than 8 CONTINUATION frames after a HEADERS
 *   frame (CVE-2024-27316 class) and closes the session; counted here.
 * - ping_flood / settings_flood: more than max_pings_per_10s PINGs or max_settings_per_10s
 *   SETTINGS, or nghttp2's own flood check (more than 1000 ACKs queued unread): closed.
 * - window_stall: a stream whose queued response bytes have not shrunk for stream_idle (the
 *   client keeps its flow-control window shut): RST_STREAM CANCEL, its buffers freed.
 * - stream_idle: a stream with no frame either way for stream_idle (Node's stream timer):
 *   RST_STREAM CANCEL.
 * - idle: no open stream for `idle` (a client that sends the preface and nothing else, or
 *   only PINGs): GOAWAY NO_ERROR, closed.
 * - protocol: nghttp2 closed the session for a protocol error (more streams than
 *   max_concurrent_streams after our SETTINGS were acknowledged, invalid frames, bad preface).
 *
 * Bounds are per connection over fixed 10 s windows (a burst straddling two windows may reach
 * twice the bound once): cheap, one Date.now() per counted frame.
 */

/** Refusal reasons, in the order the stats page and /metrics list them. */
export const H2_REFUSAL_REASONS = ['rapid_reset', 'header_list', 'header_flood', 'continuation', 'ping_flood', 'settings_flood',
  'stream_idle', 'window_stall', 'idle', 'protocol'] as const;
export type H2RefusalReason = (typeof H2_REFUSAL_REASONS)[number];

/** The Counters field (src/stats/counters.ts, summed over workers) of each reason. */
export const H2_COUNTER_FIELDS = {
  rapid_reset: 'h2RapidReset', header_list: 'h2HeaderList', header_flood: 'h2HeaderFlood', continuation: 'h2Continuation',
  ping_flood: 'h2PingFlood', settings_flood: 'h2SettingsFlood', stream_idle: 'h2StreamIdle', window_stall: 'h2WindowStall',
  idle: 'h2Idle', protocol: 'h2Protocol',
} as const satisfies Record<H2RefusalReason, string>;

/** What guardSession counts into: the listen's Counters satisfies it. */
export type H2GuardCounters = { [K in (typeof H2_COUNTER_FIELDS)[H2RefusalReason]]: number };

/** [reason, count] pairs of a counters object, for renderers. */
export function h2Refusals(c: H2GuardCounters): [H2RefusalReason, number][] {
  return H2_REFUSAL_REASONS.map((r) => [r, c[H2_COUNTER_FIELDS[r]]]);
}

/** Compiled limits: everything a session needs, computed once per config (re)load. */
export interface H2Limits {
  readonly maxConcurrentStreams: number;
  readonly maxHeaderListSize: number;
  readonly maxHeaderPairs: number;
  readonly headerTableSize: number;
  readonly initialWindowSize: number;
  readonly maxSessionMemoryMb: number;
  readonly streamIdleMs: number;
  readonly idleMs: number;
  readonly maxResets: number;
  readonly maxRejected: number;
  readonly maxPings: number;
  readonly maxSettings: number;
}

/**
 * Limits of one listen section or frontend: its `h2_limits`, with `max_header_pairs` defaulting
 * to the section's `max_headers` and `idle` to its `timeouts.client`.
 */
export function compileH2Limits(c: H2LimitsConfig, section: { max_headers: number; timeouts: { client: number } }): H2Limits {
  return Object.freeze({
    maxConcurrentStreams: c.max_concurrent_streams,
    maxHeaderListSize: c.max_header_list_size,
    maxHeaderPairs: c.max_header_pairs ?? section.max_headers,
    headerTableSize: c.header_table_size,
    initialWindowSize: c.initial_window_size,
    maxSessionMemoryMb: c.max_session_memory,
    streamIdleMs: c.stream_idle,
    idleMs: c.idle ?? (section.timeouts.client > 0 ? section.timeouts.client : 30_000),
    maxResets: c.max_resets_per_10s,
    maxRejected: c.max_rejected_per_10s,
    maxPings: c.max_pings_per_10s,
    maxSettings: c.max_settings_per_10s,
  });
}

/**
 * node:http2 server options for these limits; spread into createServer / createSecureServer
 * options (they are valid for both). Node's own bounds are kept as a second line behind the
 * guard's: nghttp2's stream-reset rate limit (burst, rate/s) at twice ours, its outbound ACK
 * flood check (1000, not configurable), CONTINUATION count (8, not configurable).
 */
export function h2ServerOptions(l: H2Limits): ServerOptions {
  return {
    maxSessionMemory: l.maxSessionMemoryMb,
    // Node counts pseudo-headers as pairs too (4 in a request).
    maxHeaderListPairs: l.maxHeaderPairs + 4,
    // Entries in one SETTINGS frame (RFC 9113 defines 7).
    maxSettings: 16,
    // PINGs *we* send unacknowledged; the core sends none today.
    maxOutstandingPings: 10,
    maxSessionInvalidFrames: 100,
    maxSessionRejectedStreams: 100,
    // A TLS client that negotiated no ALPN protocol Node's h2 server knows is closed after this.
    unknownProtocolTimeout: 10_000,
    streamResetBurst: 2 * l.maxResets,
    streamResetRate: Math.max(1, Math.ceil((2 * l.maxResets) / 10)),
    settings: {
      maxConcurrentStreams: l.maxConcurrentStreams,
      maxHeaderListSize: l.maxHeaderListSize,
      initialWindowSize: l.initialWindowSize,
      headerTableSize: l.headerTableSize,
      enablePush: false,
    },
  } as ServerOptions;
}

const WINDOW_MS = 10_000;
/**
 * The sweep's period: the precision of the connection idle timeout and of the window-stall check
 * (both cut within their bound + SWEEP_MS). Every second sweep also looks for refused streams.
 */
const SWEEP_MS = 500;

/** Per-session guard state (one object per connection). */
class SessionGuard {
  /** Client streams seen by JS ('stream' events), and open now. */
  seen = 0;
  open = 0;
  /** Streams refused before JS saw them, already counted. */
  rejected = 0;
  resetsAt = 0; resets = 0;
  rejectedAt = 0; rejectedInWindow = 0;
  pingsAt = 0; pings = 0;
  settingsAt = 0; settings = 0;
  /** ms since which no stream has been open (0 while one is). */
  idleSince = Date.now();
  /** Open streams (the sweep's window-stall check). */
  readonly streams = new Set<GuardedStream>();
  cut = false;
  constructor(readonly session: ServerHttp2Session, readonly limits: H2Limits, readonly counters: H2GuardCounters) {}
}

const kGuard = Symbol('pairlb.h2guard');
const kPending = Symbol('pairlb.h2pending');
const kPendingAt = Symbol('pairlb.h2pendingAt');
/** A stream without node's stream timer (guardStream): the sweep bounds its wait for a response head. */
const kNoTimer = Symbol('pairlb.h2noTimer');
const kHeadWaitFrom = Symbol('pairlb.h2headWaitFrom');
/** A stream's guard, and (set by the sweep) its queued response bytes when last seen and since when they have not shrunk. */
type GuardedStream = ServerHttp2Stream & { [kGuard]?: SessionGuard; [kPending]?: number; [kPendingAt]?: number; [kNoTimer]?: boolean; [kHeadWaitFrom]?: number };
/** Streams the guard itself reset (idle timeout): not a client's cancel. Rare, so a WeakSet. */
const ownResets = new WeakSet<ServerHttp2Stream>();

/** Sessions swept every second for streams refused out of JS's sight (header_list). */
const live = new Set<SessionGuard>();
let sweepTimer: NodeJS.Timeout | undefined;

/** True when now falls in a new window (counter restarted). */
function rolled(at: number, now: number): boolean { return now - at >= WINDOW_MS; }

/** Close the session for `reason` (once): counted, GOAWAY with `code`, then destroyed. */
function cut(g: SessionGuard, reason: H2RefusalReason, code: number = constants.NGHTTP2_ENHANCE_YOUR_CALM): void {
  if (g.cut) return;
  g.cut = true;
  g.counters[H2_COUNTER_FIELDS[reason]]++;
  // Deferred: this may run inside an nghttp2 callback (a frame being processed).
  process.nextTick(destroySession, g.session, code);
}

/**
 * How long a cut connection is still read (and what it sends discarded: nghttp2 ignores streams
 * above the GOAWAY's last id) before it is destroyed. Closing a socket with unread input makes
 * the kernel send a TCP reset, and a client that gets it may never read our GOAWAY; 250 ms of a
 * flood is cheap next to that (nghttp2's own flood checks still apply meanwhile).
 */
const LINGER_MS = 250;

function destroySession(s: ServerHttp2Session, code: number): void {
  if (s.destroyed) return;
  // Our GOAWAY first (destroy() alone sends NO_ERROR): the client learns why, and which streams were processed.
  try { s.goaway(code, s.state.lastProcStreamID ?? 0); } catch { /* already closing */ }
  if (!s.closed) s.close();
  const t = setTimeout(destroyNow, LINGER_MS, s);
  t.unref();
  s.once('close', () => clearTimeout(t));
}

function destroyNow(s: ServerHttp2Session): void { if (!s.destroyed) s.destroy(); }

let sweeps = 0;

function sweep(): void {
  const now = Date.now();
  const rejected = (++sweeps & 1) === 0;
  for (const g of live) {
    if (g.cut || g.session.destroyed) continue;
    if (rejected) checkRejected(g);
    if (g.open === 0) {
      // Idle: no stream for `idle` (whatever PINGs or SETTINGS the client sends meanwhile).
      if (now - g.idleSince >= g.limits.idleMs) { checkRejected(g); cut(g, 'idle', constants.NGHTTP2_NO_ERROR); }
      continue;
    }
    for (const st of g.streams) checkStall(g, st, now);
  }
}

/**
 * Window stall: response bytes queued on the stream that have not shrunk for stream_idle, i.e.
 * the client keeps its flow-control window shut. Node's own stream timer is no help here: it is
 * refreshed by anything the session sends (a PING ACK, another stream's frames).
 */
function checkStall(g: SessionGuard, st: GuardedStream, now: number): void {
  if (st[kNoTimer] === true && !st.headersSent) {
    // No response head yet, and no stream timer (guardStream): waited since the first sweep that saw it.
    const from = st[kHeadWaitFrom];
    if (from === undefined) st[kHeadWaitFrom] = now;
    else if (now - from >= g.limits.streamIdleMs && !st.closed && !st.destroyed) ownReset(g, st, 'h2StreamIdle');
    return;
  }
  const q = st.writableLength;
  const last = st[kPending];
  if (q === 0 || last === undefined || q < last) { st[kPending] = q; st[kPendingAt] = now; return; }
  st[kPending] = q;
  if (now - st[kPendingAt]! >= g.limits.streamIdleMs && !st.closed && !st.destroyed) ownReset(g, st, 'h2WindowStall');
}

/** Reset a stream for a timeout (not the client's cancel: not counted as a reset). */
function ownReset(g: SessionGuard, st: GuardedStream, field: 'h2WindowStall' | 'h2StreamIdle'): void {
  g.counters[field]++;
  ownResets.add(st);
  st.close(constants.NGHTTP2_CANCEL);
}

/**
 * Streams nghttp2 processed that never reached JS: it refused them (header limits, HPACK bomb,
 * session memory). Client stream ids are odd and increase (RFC 9113 §5.1.1): the last processed
 * id tells how many were opened.
 */
function checkRejected(g: SessionGuard): void {
  const s = g.session;
  if (s.destroyed || g.cut) return;
  rejectedUpTo(g, ((s.state.lastProcStreamID ?? 0) + 1) >>> 1);
}

/** `opened` client streams so far: those JS has not seen were refused. */
function rejectedUpTo(g: SessionGuard, opened: number): void {
  if (g.cut) return;
  const n = opened - g.seen - g.rejected;
  if (n <= 0) return;
  g.rejected += n;
  const now = Date.now();
  // While the client is cancelling streams, Node also refuses new ones (ENHANCE_YOUR_CALM) when
  // closed streams are not freed yet: those belong to the reset flood, not to header limits.
  if (g.resets > 0 && !rolled(g.resetsAt, now)) {
    g.resets += n;
    if (g.resets > g.limits.maxResets) cut(g, 'rapid_reset');
    return;
  }
  g.counters.h2HeaderList += n;
  if (rolled(g.rejectedAt, now)) { g.rejectedAt = now; g.rejectedInWindow = 0; }
  g.rejectedInWindow += n;
  if (g.rejectedInWindow > g.limits.maxRejected) cut(g, 'header_flood');
}

/** A client stream JS sees: counted open, watched by the sweep. */
function track(g: SessionGuard, stream: GuardedStream): void {
  g.seen++;
  g.open++;
  g.idleSince = 0;
  g.streams.add(stream);
  stream[kGuard] = g;
  // Client stream ids are odd and increase: an id beyond the next one means streams in between
  // were refused by nghttp2/Node (cheaper than the sweep's session.state).
  // (session.state's last id may already count streams whose 'stream' event is still queued.)
  const opened = ((stream.id ?? 0) + 1) >>> 1;
  if (opened > g.seen + g.rejected) rejectedUpTo(g, opened);
}


function onStream(this: ServerHttp2Session, stream: GuardedStream): void {
  track((this as ServerHttp2Session & { [kGuard]: SessionGuard })[kGuard], stream);
  stream.setTimeout((this as ServerHttp2Session & { [kGuard]: SessionGuard })[kGuard].limits.streamIdleMs);
  stream.on('timeout', onStreamTimeout);
  stream.on('close', onStreamClose);
}

/**
 * The proxy's own stream hook (a session guarded with `hookStreams: false`): called from its
 * 'stream' handler, before anything else; the caller calls guardStreamClosed from its own 'close'
 * listener. `body`: DATA frames follow the HEADERS. Only such a stream gets node's stream timer
 * (`stream_idle`: a request body that stops coming). A stream whose request is complete waits on
 * the proxy, whose phases all have their own bound: no response head after `stream_idle` is
 * reset by the sweep (within SWEEP_MS), a backend that stalls mid-body is cut by the pool's
 * server timeout, a client that does not read is a window stall. So its frames refresh no timer.
 */
export function guardStream(session: ServerHttp2Session, stream: ServerHttp2Stream, body: boolean): void {
  const g = (session as ServerHttp2Session & { [kGuard]?: SessionGuard })[kGuard];
  if (g === undefined) return;
  track(g, stream);
  if (body) {
    stream.setTimeout(g.limits.streamIdleMs);
    stream.on('timeout', onStreamTimeout);
  } else (stream as GuardedStream)[kNoTimer] = true;
}

/** A stream given to guardStream has closed. */
export function guardStreamClosed(stream: ServerHttp2Stream): void { onStreamClose.call(stream); }

function onStreamTimeout(this: GuardedStream): void {
  const g = this[kGuard];
  if (!g || this.closed || this.destroyed) return;
  // Bytes of the response still waiting: the client's flow-control window is what stops them.
  const stalled = this.writableLength > 0 || (g.session.destroyed ? false : g.session.state.remoteWindowSize === 0);
  ownReset(g, this, stalled ? 'h2WindowStall' : 'h2StreamIdle');
}

function onStreamClose(this: GuardedStream): void {
  const g = this[kGuard];
  if (!g) return;
  if (--g.open === 0) g.idleSince = Date.now();
  g.streams.delete(this);
  // A stream cancelled before its response ended (client RST_STREAM); the session ending or our
  // own idle reset is not the client cancelling.
  if (!this.aborted || g.cut || g.session.closed || g.session.destroyed || ownResets.has(this)) return;
  const now = Date.now();
  if (rolled(g.resetsAt, now)) { g.resetsAt = now; g.resets = 0; }
  if (++g.resets > g.limits.maxResets) cut(g, 'rapid_reset');
}

/**
 * Guard one server session (see the top of this file). Call it from the server's 'session'
 * event, before the session's first 'stream' event. `hookStreams: false`: the caller hands each
 * stream to guardStream / guardStreamClosed itself (one 'stream' and one 'close' listener for both).
 */
export function guardSession(session: ServerHttp2Session, limits: H2Limits, counters: H2GuardCounters, hookStreams = true): void {
  const g = new SessionGuard(session, limits, counters);
  (session as ServerHttp2Session & { [kGuard]: SessionGuard })[kGuard] = g;
  if (hookStreams) session.on('stream', onStream);
  session.on('ping', () => {
    const now = Date.now();
    if (rolled(g.pingsAt, now)) { g.pingsAt = now; g.pings = 0; }
    if (++g.pings > limits.maxPings) cut(g, 'ping_flood');
  });
  session.on('remoteSettings', () => {
    const now = Date.now();
    if (rolled(g.settingsAt, now)) { g.settingsAt = now; g.settings = 0; }
    if (++g.settings > limits.maxSettings) cut(g, 'settings_flood');
  });
  session.on('error', (err: Error & { code?: string }) => {
    if (g.cut || err.code !== 'ERR_HTTP2_ERROR') return;
    const m = err.message;
    if (m.includes('CONTINUATION')) cut(g, 'continuation');
    else if (m.includes('Flooding')) {
      // nghttp2's ACK-queue flood check; which flood it was, from what the guard counted so far.
      if (g.pings >= g.settings && g.pings > 0) cut(g, 'ping_flood');
      else if (g.settings > 0) cut(g, 'settings_flood');
      else cut(g, 'protocol');
    } else if (m.includes('callback function failed')) {
      // Node refused more than maxSessionRejectedStreams new streams in a row: streams opened
      // faster than closed ones are freed (a client cancelling them: rapid reset) or refused
      // for their headers.
      cut(g, g.resets > 0 ? 'rapid_reset' : 'header_flood');
    } else if (g.resets * 2 >= limits.maxResets) cut(g, 'rapid_reset'); // nghttp2's reset rate limit
    else cut(g, 'protocol');
  });
  session.once('close', () => {
    live.delete(g);
    if (live.size === 0 && sweepTimer) { clearInterval(sweepTimer); sweepTimer = undefined; }
  });
  live.add(g);
  if (!sweepTimer) { sweepTimer = setInterval(sweep, SWEEP_MS); sweepTimer.unref(); }
}
