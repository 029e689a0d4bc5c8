import type { IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';
import pino from 'pino';
import { loggerFd, type Logger } from '../log.js';
import type { Config } from '../config/schema.js';
import { FileSink, SyslogSink, directLines, type LineSink } from '../log-sinks.js';
import type { Exchange, Listener } from './listener.js';
import { clientAddress, clientPort } from '../l4/accept-proxy.js';
import type { TcpSession } from '../l4/tcp.js';

/**
 * One line per request, refused requests (400, 414, 431, 408 …) and client aborts included.
 * `json`: the fields of HAProxy's httplog (client, listen/backend/server, timers Tw/Tc/Tr/Ta in ms,
 * status, bytes, termination state, retries) as a pino JSON line. `combined`: the Apache combined
 * format that Awstats and GoAccess read.
 *
 * Time: `start` (JSON) and the combined date are when the request started (its head was parsed;
 * for a head refused by the parser, when the connection became ready for it: accept or the end of
 * the previous response), not when the line is written: a 10-minute download is logged at its
 * start, as Apache and HAProxy do. The pino `time` of a JSON line is when it ended.
 * Bytes: both directions count everything on the wire, heads included (HAProxy's bytes_read and
 * bytes_uploaded; Apache's %I/%O): `bytes_read` is what was sent to the client, `bytes_in` what
 * was read from it. The combined line's size field is bytes_read.
 * Status: what the client got; a client that went away before any response is logged 499 (as
 * nginx; GoAccess and Awstats know it), with termination CH/CR/CD.
 * Timers: Tw is the time waited for a server slot (server maxconn; 0 when not queued), Tc the
 * time until the request was handed to a connection (-1 if never), Tr until response headers
 * (-1 if none), Ta total. srv_queue / backend_queue: waiters ahead of it in the server's and the
 * backend's queue when it was queued (HAProxy's fields of the same name).
 *
 * Destination (global.log): stdout by default (JSON lines through the process logger, so they
 * carry `mod: "access"`); `access_file` and/or `access_syslog` instead. configure() applies a
 * reload: the listeners share this one object.
 */
const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];
const pad = (n: number) => (n < 10 ? '0' + n : String(n));

export function clfDate(d: Date): string {
  return `${pad(d.getUTCDate())}/${MONTHS[d.getUTCMonth()]}/${d.getUTCFullYear()}:${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}:${pad(d.getUTCSeconds())} +0000`;
}

const ESCAPE = /["\\\x00-\x1f\x7f-\uffff]/g;
const hex = (c: string): string => (c === '"' || c === '\\' ? '\\' + c : '\\x' + c.charCodeAt(0).toString(16).padStart(2, '0'));
/** A field of a combined line: quotes, backslashes, control and non-ASCII bytes escaped as Apache does (\", \\, \xhh). */
export function clfField(s: string | undefined): string {
  return s === undefined || s === '' ? '-' : s.replace(ESCAPE, hex);
}

/**
 * Access lines are written in batches of up to BATCH_CHARS characters, at most BATCH_MS after the
 * first line of a batch (nginx's `access_log … buffer=… flush=…`): a SonicBoom write per loop
 * turn cost more than building the line (4–13 µs per line against ~2.5: bench/access-log-cost.mjs,
 * bench/RESULTS.md 2026-12-01 "access log cost"). What a SIGKILL loses is that one batch.
 */
export const BATCH_CHARS = 32 * 1024;
export const BATCH_MS = 50;

/** Status logged for a request whose client left before any response (nginx's 499). */
export const CLIENT_GONE = 499;

type LogConfig = Config['global']['log'];

/** Fans whole lines (a batch, or one pino line) out to the configured sinks. */
class Fanout {
  constructor(private readonly sinks: LineSink[]) {}
  write(line: string): boolean { for (const s of this.sinks) s.write(line); return true; }
}

/** Where a JSON access line goes: the process logger's stream (stdout) or the Fanout of sinks. */
interface LineOut { write(line: string): unknown }

/**
 * Whether a JSON line built by AccessLog.write is exactly what `logger.info(obj)` would write:
 * pino's iso timestamp, no mixin, log formatter, stream hook or metadata-reading stream. Otherwise
 * the access log goes through pino (the slow path). Public pino symbols only (pino.symbols).
 */
function plainPino(logger: Logger): boolean {
  const S = pino.symbols;
  const l = logger as unknown as Record<symbol, unknown>;
  const fm = l[S.formattersSym] as { log?: unknown } | undefined;
  const hooks = l[S.hooksSym] as { streamWrite?: unknown; logMethod?: unknown } | undefined;
  const stream = l[S.streamSym] as (LineOut & Record<symbol, unknown>) | undefined;
  return l[S.timeSym] === pino.stdTimeFunctions.isoTime && !l[S.mixinSym] && !fm?.log && !hooks?.streamWrite && !hooks?.logMethod
    && typeof l[S.chindingsSym] === 'string' && typeof stream?.write === 'function' && stream[Symbol.for('pino.metadata')] !== true;
}

/** Per client connection: its `"client":…,"client_port":…` fragment (the same for every request on it). */
const kClientJson = Symbol('pairlb.accessClient');

/**
 * Date.toISOString() of a ms timestamp, from a cached `YYYY-MM-DDTHH:MM:SS.` of the current second:
 * an access line carries two of them (time, start), and most lines of a second share the prefix.
 */
let isoSec = -1;
let isoPrefix = '';
export function isoMs(ms: number): string {
  const t = Math.floor(ms);
  const sec = Math.floor(t / 1000);
  if (sec !== isoSec) { isoSec = sec; isoPrefix = new Date(sec * 1000).toISOString().slice(0, 20); }
  const m = t - sec * 1000;
  return isoPrefix + (m < 10 ? '00' + m : m < 100 ? '0' + m : m) + 'Z';
}

/** A timer of the access line: ms since the request started, 2 decimals, -1 when it never happened. */
function since(t: number, start: number): number { return t ? Math.round((t - start) * 100) / 100 : -1; }

/**
 * Every AccessLog not closed yet in this thread: a thread that exits (process.exit, an uncaught
 * exception in a data-plane worker) hands their batches over from its 'exit' handler — written
 * there when stdout is a file or a terminal (FdLines); an asynchronous stream (a pipe, a sink's
 * file) may not get to write it before the thread is gone.
 */
const live = new Set<AccessLog>();
let exitHook = false;
function flushAll(): void { for (const a of live) a.flush(); }

export class AccessLog {
  enabled = false;
  private mode: LogConfig['access'] = 'off';
  private sinks: LineSink[] = [];
  private json: Logger;
  private key = '';
  /**
   * The JSON fast path: lines are built here (the same bytes pino writes for `json.info(obj)`),
   * not by pino's generic serializer, and the lines of one event-loop turn go out in one write.
   * Measured (bench/ab.mjs, pairlb-w1-log, small keep-alive): see bench/RESULTS.md 2026-12-01.
   * null: a logger whose output this cannot reproduce (the slow path through pino).
   */
  private out: LineOut | null = null;
  /** `,"pid":…,"worker":…,"mod":"access"`: the logger's bindings as pino writes them. */
  private bindings = '';
  /** The stdout logger's level may change on reload: checked per line (a field read). */
  private levelled = false;
  /** Where combined (and tcplog) lines go without sinks: stdout, batched like the JSON ones. */
  private text: LineOut | undefined;
  /** The sinks (global.log.access_file / access_syslog), when there are. */
  private fanout: LineOut | undefined;
  private pending = '';
  private pendingTo: LineOut | null = null;
  private flushQueued = false;
  private readonly flushFn = (): void => { this.flushQueued = false; this.flush(); };

  constructor(private readonly appLog: Logger, cfg: LogConfig) {
    this.json = appLog.child({ mod: 'access' });
    this.configure(cfg);
    live.add(this);
    if (!exitHook) { exitHook = true; process.on('exit', flushAll); }
  }

  /**
   * Apply global.log's access keys (at start and on reload). A file that cannot be opened throws
   * at start; on reload it is logged and the previous destination is kept.
   * Returns a short description when something changed.
   */
  configure(cfg: LogConfig): string | undefined {
    const key = JSON.stringify([cfg.access, cfg.access_file ?? null, cfg.access_syslog ?? null]);
    if (key === this.key) return undefined;
    const log = this.appLog.child({ mod: 'access-log' });
    const sinks: LineSink[] = [];
    if (cfg.access !== 'off') {
      try {
        if (cfg.access_file !== undefined) sinks.push(new FileSink(cfg.access_file, log));
      } catch (e) {
        if (this.key === '') throw e;
        log.error({ err: e, file: cfg.access_file }, 'access log: cannot open the new file; the previous destination stays');
        return undefined;
      }
      if (cfg.access_syslog !== undefined) sinks.push(new SyslogSink(cfg.access_syslog, log));
    }
    this.flush();
    const old = this.sinks;
    this.key = key;
    this.mode = cfg.access;
    this.enabled = cfg.access !== 'off';
    this.sinks = sinks;
    const fanout = sinks.length === 0 ? undefined : new Fanout(sinks);
    this.fanout = fanout;
    this.json = fanout === undefined
      ? this.appLog.child({ mod: 'access' })
      : pino({ level: 'info', base: { mod: 'access' }, timestamp: pino.stdTimeFunctions.isoTime }, fanout);
    const fast = plainPino(this.json);
    const S = pino.symbols;
    // Batches (see batch()) go to the sinks, or to stdout: written by this thread itself when
    // stdout is a file or a terminal (FdLines), else through the logger's stream (SonicBoom: a
    // pipe or journald's socket, whose reader may stall).
    const d = fanout === undefined ? loggerFd(this.appLog) : undefined;
    const direct = d === undefined ? undefined : directLines(d.dest, d.fd, log);
    this.out = !fast ? null : fanout ?? direct ?? (this.json as unknown as Record<symbol, LineOut>)[S.streamSym];
    this.text = direct;
    this.bindings = fast ? (this.json as unknown as Record<symbol, string>)[S.chindingsSym] : '';
    this.levelled = fanout === undefined;
    for (const s of old) s.close();
    const where = [cfg.access_file, cfg.access_syslog && (cfg.access_syslog.server ?? cfg.access_syslog.socket)].filter(Boolean).join(' + ') || 'stdout';
    return cfg.access === 'off' ? 'access log off' : `access log ${cfg.access} to ${where}`;
  }

  /** SIGUSR1: reopen files (logrotate). */
  reopen(): void { this.flush(); for (const s of this.sinks) s.reopen(); }

  close(): void { live.delete(this); this.flush(); for (const s of this.sinks) s.close(); this.sinks = []; }

  /** Write the pending batch now. */
  flush(): void {
    const p = this.pending;
    if (p === '') return;
    this.pending = '';
    this.pendingTo?.write(p);
  }

  /**
   * Queue a line for `to`: batches go out at BATCH_CHARS, or BATCH_MS after their first line, or
   * before anything else is written to the same place (reload, reopen, close, a slow-path line).
   */
  private batch(line: string, to: LineOut): void {
    if (to !== this.pendingTo) { this.flush(); this.pendingTo = to; }
    const p = (this.pending += line);
    if (p.length >= BATCH_CHARS) { this.flush(); return; }
    if (!this.flushQueued) { this.flushQueued = true; setTimeout(this.flushFn, BATCH_MS).unref(); }
  }

  /** A finished request. `now` is performance.now() at the end; bytes are wire bytes, heads included. */
  write(l: Listener, ex: Exchange, now: number, bytesIn: number, bytesOut: number): void {
    const req = ex.req;
    const t0 = ex.start;
    const status = ex.status === 0 && ex.termination.charCodeAt(0) === 67 /* C: client side */ ? CLIENT_GONE : ex.status;
    const wall = Date.now();
    const start = wall - (now - t0);
    if (this.mode !== 'json') {
      const h = req.headers;
      this.line(clientAddress(ex.socket) || undefined, start, `${req.method} ${req.url} HTTP/${req.httpVersion}`, status, bytesOut, h.referer, h['user-agent']);
      return;
    }
    const out = this.out;
    if (out === null) {
      this.json.info({
        start: new Date(start).toISOString(),
        client: clientAddress(ex.socket) || undefined, client_port: clientPort(ex.socket),
        listen: l.s.name, server: ex.route?.name ?? '<NOSRV>',
        Tw: Math.round(ex.tw * 100) / 100, Tc: since(ex.tConnect, t0), Tr: since(ex.tHeaders, t0), Ta: since(now, t0),
        status, bytes_read: bytesOut, bytes_in: bytesIn,
        termination: ex.termination, retries: ex.attempts > 1 ? ex.attempts - 1 : 0,
        srv_queue: ex.srvQueue, backend_queue: ex.backendQueue,
        // HTTP/2 streams only (absent: HTTP/1.x), as the combined line's request line says it.
        method: req.method, uri: req.url, proto: ex.h2 ? 'HTTP/2.0' : undefined,
      });
      return;
    }
    if (this.levelled && !this.json.isLevelEnabled('info')) return;
    // The fields, their order and their encoding are pino's for the object above (test/unit/access-line.test.ts).
    const sock = ex.socket as Socket & { [kClientJson]?: string };
    let client = sock[kClientJson];
    if (client === undefined) {
      const a = clientAddress(sock);
      const port = clientPort(sock);
      client = sock[kClientJson] = (a ? ',"client":' + JSON.stringify(a) : '') + (port !== undefined ? ',"client_port":' + port : '');
    }
    const r = ex.route;
    const line = '{"level":30,"time":"' + isoMs(wall) + '"' + this.bindings
      + ',"start":"' + isoMs(start) + '"' + client + l.s.logListen
      + ',"server":' + (r === undefined ? '"<NOSRV>"' : JSON.stringify(r.name))
      + ',"Tw":' + Math.round(ex.tw * 100) / 100 + ',"Tc":' + since(ex.tConnect, t0) + ',"Tr":' + since(ex.tHeaders, t0) + ',"Ta":' + since(now, t0)
      + ',"status":' + status + ',"bytes_read":' + bytesOut + ',"bytes_in":' + bytesIn
      + ',"termination":"' + ex.termination + '","retries":' + (ex.attempts > 1 ? ex.attempts - 1 : 0)
      + ',"srv_queue":' + ex.srvQueue + ',"backend_queue":' + ex.backendQueue
      + (req.method !== undefined ? ',"method":' + JSON.stringify(req.method) : '') + (req.url !== undefined ? ',"uri":' + JSON.stringify(req.url) : '') + (ex.h2 ? ',"proto":"HTTP/2.0"' : '') + '}\n';
    this.batch(line, out);
  }

  /** A request refused after parsing, before routing (414, 505, 400 …). */
  reject(l: Listener, req: IncomingMessage, status: number, bytesIn: number, bytesOut: number): void {
    if (!this.enabled) return;
    const url = req.url?.slice(0, 256);
    const start = Date.now();
    if (this.mode === 'json') {
      this.flush();
      this.json.info({ start: new Date(start).toISOString(), client: req.socket ? clientAddress(req.socket) || undefined : undefined, client_port: req.socket ? clientPort(req.socket) : undefined, listen: l.s.name, server: '<NOSRV>', status, bytes_read: bytesOut, bytes_in: bytesIn, termination: 'PR', method: req.method, uri: url });
    } else {
      const h = req.headers;
      this.line(req.socket ? clientAddress(req.socket) || undefined : undefined, start, `${req.method} ${url} HTTP/${req.httpVersion}`, status, bytesOut, h.referer, h['user-agent']);
    }
  }

  /**
   * A request head the parser refused (400, 431, 414, 408, 501 CONNECT): no request object, so the
   * request line is the first line of what was read, escaped (as Apache logs a bad request line).
   */
  refused(l: Listener, socket: Socket, status: number, start: number, raw: Buffer | undefined, bytesIn: number, bytesOut: number): void {
    if (!this.enabled) return;
    let first = '';
    if (raw !== undefined && raw.length) {
      const eol = raw.indexOf(10);
      first = raw.subarray(0, Math.min(eol < 0 ? raw.length : eol, 256)).toString('latin1').replace(/\r$/, '');
    }
    if (this.mode === 'json') {
      this.flush();
      this.json.info({ start: new Date(start).toISOString(), client: clientAddress(socket) || undefined, client_port: clientPort(socket), listen: l.s.name, server: '<NOSRV>', status, bytes_read: bytesOut, bytes_in: bytesIn, termination: 'PR', request: first });
    } else {
      this.line(clientAddress(socket) || undefined, start, first, status, bytesOut, undefined, undefined);
    }
  }

  /**
   * A finished TCP connection (mode tcp), HAProxy tcplog's fields: client (the PROXY header's
   * with accept_proxy), listen, server, Tw (ms in the backend queue), Tc (ms until the server connection was
   * up, -1 if never), Tt (total ms), bytes each way, termination state, retries. `combined`
   * writes HAProxy's tcplog text instead, since the Apache format has no meaning for TCP.
   */
  tcp(listen: string, ss: TcpSession, now: number): void {
    // Tw: ms waited in the backend queue (server maxconn); Tc: ms from then until the server connection was up.
    const tw = Math.round(ss.tw * 100) / 100;
    const tc = ss.tConnect > 0 ? Math.round((ss.tConnect - ss.start - ss.tw) * 100) / 100 : -1;
    const tt = Math.round((now - ss.start) * 100) / 100;
    const server = ss.route?.name ?? '<NOSRV>';
    const retries = ss.attempts > 1 ? ss.attempts - 1 : 0;
    const start = Date.now() - (now - ss.start);
    if (this.mode === 'json') {
      this.flush();
      this.json.info({
        start: new Date(start).toISOString(), mode: 'tcp', client: ss.clientAddr, client_port: ss.clientPort, listen, server,
        Tw: tw, Tc: tc, Tt: tt, bytes_read: ss.bytesOut, bytes_in: ss.bytesIn, termination: ss.termination, retries,
      });
      return;
    }
    const s = `${ss.clientAddr}:${ss.clientPort} [${clfDate(new Date(start))}] ${listen} ${listen}/${server} ${tw}/${tc}/${tt} ${ss.bytesOut} ${ss.termination} ${retries}\n`;
    this.batch(s, this.fanout ?? this.text ?? process.stdout);
  }

  private line(client: string | undefined, start: number, request: string, status: number, bytes: number, referer: string | undefined, ua: string | undefined): void {
    const s = `${client ?? '-'} - - [${clfDate(new Date(start))}] "${clfField(request)}" ${status} ${bytes || '-'} "${clfField(referer)}" "${clfField(ua)}"\n`;
    this.batch(s, this.fanout ?? this.text ?? process.stdout);
  }
}
