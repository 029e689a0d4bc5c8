import { watch, type FSWatcher } from 'node:fs';
import { dirname, basename, resolve } from 'node:path';
import type { Server as HttpsServer } from 'node:https';
import type { Socket } from 'node:net';
import type { SecureContext, TLSSocket, TlsOptions } from 'node:tls';
import { acceptsEcdsa, firstRecordLength, parseClientHello } from './client-hello.js';
import type { Logger } from '../log.js';
import type { TlsConfig } from './config.js';
import { CertStore, loadCertificates } from './store.js';
import type { CertError, LoadedCert } from './pem.js';
import { expiryWarning } from './check.js';
import { inheritClient } from '../l4/accept-proxy.js';

/**
 * TLS termination of one bind: its CertStore (swapped whole on reload), SNI selection, handshake
 * counters by outcome, and the watch on its certificate files.
 *
 * Reload (SIGHUP, or a file changed on disk): every file is read and checked again; if any named
 * file is bad the running certificates stay (logged, counted); a bad file in `directory` is left
 * out and logged, the others load. The swap is one reference assignment plus the server's default
 * context: handshakes already past SNI keep what they got, established connections are untouched.
 */

/** Handshake failures by reason: the values of `pairlb_tls_handshake_failures_total{reason}`. */
export const FAILURE_REASONS = ['timeout', 'plain_http', 'version', 'no_shared_cipher', 'bad_record', 'alpn', 'aborted', 'other'] as const;
export type FailureReason = typeof FAILURE_REASONS[number];

const MALFORMED = /LENGTH|DECODE|PARSE|BAD_|UNEXPECTED|MESSAGE|RECORD|EXTENSION|ILLEGAL/;

/** Node error code of a failed server handshake → reason (OpenSSL's reason, as ERR_SSL_<REASON>). */
export function failureReason(code: string | undefined): FailureReason {
  switch (code) {
    case 'ERR_TLS_HANDSHAKE_TIMEOUT': return 'timeout';
    case 'ERR_SSL_HTTP_REQUEST': case 'ERR_SSL_HTTPS_PROXY_REQUEST': return 'plain_http';
    case 'ERR_SSL_UNSUPPORTED_PROTOCOL': case 'ERR_SSL_VERSION_TOO_LOW': case 'ERR_SSL_TLSV1_ALERT_PROTOCOL_VERSION': return 'version';
    case 'ERR_SSL_NO_SHARED_CIPHER': case 'ERR_SSL_NO_SUITABLE_KEY_SHARE': case 'ERR_SSL_NO_SHARED_GROUPS': case 'ERR_SSL_NO_SUITABLE_SIGNATURE_ALGORITHM': return 'no_shared_cipher';
    case 'ERR_SSL_WRONG_VERSION_NUMBER': case 'ERR_SSL_PACKET_LENGTH_TOO_LONG': case 'ERR_SSL_UNKNOWN_PROTOCOL': case 'ERR_SSL_RECORD_LENGTH_MISMATCH':
    case 'ERR_SSL_BAD_PACKET_LENGTH': case 'ERR_SSL_UNEXPECTED_MESSAGE': case 'ERR_SSL_LENGTH_MISMATCH': case 'ERR_SSL_BAD_EXTENSION':
    case 'ERR_SSL_DECODE_ERROR': case 'ERR_SSL_UNEXPECTED_RECORD': case 'ERR_SSL_RECORD_LAYER_FAILURE':
      return 'bad_record';
    case 'ERR_SSL_NO_APPLICATION_PROTOCOL': return 'alpn';
    case 'ECONNRESET': case 'EPIPE': case 'ERR_SSL_UNEXPECTED_EOF_WHILE_READING': return 'aborted';
    // Malformed handshake messages (length too short, excessive message size, parse errors…).
    default: return code !== undefined && code.startsWith('ERR_SSL_') && MALFORMED.test(code) ? 'bad_record' : 'other';
  }
}

const kCounted = Symbol('pairlb.tlsCounted');
/** Set on the raw socket by the peek: the client can verify an ECDSA certificate. */
const kEcdsa = Symbol('pairlb.ecdsa');
type RawSocket = Socket & { [kEcdsa]?: boolean };

/**
 * Reads a raw connection's first TLS record (the ClientHello) before node:tls does, so the SNI
 * context can be chosen by key type; then puts the bytes back and hands the socket on. Anything
 * that is not a TLS record (plain HTTP, garbage) is handed on at once: node:tls refuses it with
 * its reason. Bounded: one record (16 KiB), `handshake_timeout` for the bytes to arrive.
 */
class Peek {
  private buf: Buffer | null = null;
  constructor(private readonly sock: RawSocket, private readonly t: TlsTerminator, private readonly hand: (s: Socket) => void) {
    sock.on('data', this.onData);
    sock.on('timeout', this.onTimeout);
    sock.on('close', this.onClose);
    sock.on('error', this.onError);
    sock.setTimeout(t.handshakeMs);
  }
  private readonly onData = (d: Buffer): void => {
    const b = this.buf = this.buf === null ? d : Buffer.concat([this.buf, d]);
    const need = firstRecordLength(b);
    if (need === -1 || (need !== undefined && b.length < need)) return;
    this.finish();
  };
  private readonly onTimeout = (): void => { this.off(); this.t.counters.failures.timeout++; this.sock.destroy(); };
  private readonly onClose = (): void => { this.off(); this.t.counters.failures.aborted++; };
  private readonly onError = (): void => { /* 'close' follows and counts it */ };
  private off(): void {
    const s = this.sock;
    s.off('data', this.onData); s.off('timeout', this.onTimeout); s.off('close', this.onClose); s.off('error', this.onError);
    s.setTimeout(0);
  }
  private finish(): void {
    this.off();
    const s = this.sock;
    s.pause();
    const b = this.buf!;
    const h = parseClientHello(b);
    s[kEcdsa] = h === undefined || acceptsEcdsa(h);
    s.unshift(b);
    this.hand(s);
  }
}

export class TlsCounters {
  /** Finished handshakes: full and resumed (session ticket or id). */
  full = 0;
  resumed = 0;
  /** How the certificate was chosen: SNI exact name, SNI wildcard, SNI unknown (default), no SNI (default). */
  sniExact = 0;
  sniWildcard = 0;
  sniUnknown = 0;
  noSni = 0;
  readonly failures: Record<FailureReason, number> = Object.fromEntries(FAILURE_REASONS.map((r) => [r, 0])) as Record<FailureReason, number>;
  reloads = 0;
  reloadFailures = 0;
}

/** What this bind reports to the stats page, /metrics and `status`. */
export interface TlsStatus {
  listen: string;
  certificates: CertStore['info'];
  /** Files in `directory` that could not be loaded at the last (re)load, with why. */
  errors: { source: string; message: string }[];
  counters: TlsCounters;
  loadedAt: number;
}

export class TlsTerminator {
  store: CertStore;
  readonly counters = new TlsCounters();
  private errors: CertError[] = [];
  private loadedAt = Date.now();
  private server: HttpsServer | undefined;
  private watchers: FSWatcher[] = [];
  private debounce: NodeJS.Timeout | undefined;
  /** Certificate files are read again at most this often after a change event (writers rename several files). */
  static DEBOUNCE_MS = 150;

  /** Throws CertError when the certificates cannot be served (start fails; `check` said why first). */
  constructor(readonly listen: string, private cfg: TlsConfig, private readonly log: Logger) {
    const r = loadCertificates(cfg);
    const fatal = r.errors.filter((e) => !this.inDirectory(e.source));
    if (fatal.length) throw fatal[0];
    this.errors = r.errors;
    for (const e of r.errors) log.error({ mod: 'tls', listen, err: e.message }, 'certificate left out');
    this.store = new CertStore(cfg, r.certs);
    this.warnExpiry(r.certs);
  }

  private warnExpiry(certs: readonly LoadedCert[]): void {
    const now = Date.now();
    for (const c of certs) {
      const w = expiryWarning(c, now);
      if (w) this.log.warn({ mod: 'tls', listen: this.listen, source: c.source, notAfter: new Date(c.notAfter).toISOString() }, w);
    }
  }

  private inDirectory(source: string): boolean {
    return this.cfg.directory !== undefined && dirname(resolve(source)) === resolve(this.cfg.directory);
  }

  get handshakeMs(): number { return this.cfg.handshake_timeout; }

  /**
   * A raw TCP connection accepted on the bind: peek its ClientHello, then `hand` it to the https
   * server (server.emit('connection')). Connections that never send a full ClientHello are cut
   * after handshake_timeout and counted.
   */
  accept(sock: Socket, hand: (s: Socket) => void): void { new Peek(sock, this, hand); }

  /** Options for https.createServer (merged with the HTTP options by the listener). */
  serverOptions(): TlsOptions {
    const counters = this.counters;
    const self = this;
    return {
      ...this.store.defaultOptions,
      handshakeTimeout: this.cfg.handshake_timeout,
      // Called only when the client sent SNI (this: the TLSSocket, _parent: the raw socket the
      // peek marked); without SNI the server's own context serves, holding both key pairs.
      SNICallback(this: TLSSocket, name: string, cb: (err: Error | null, ctx?: SecureContext) => void) {
        const s = self.store;
        const ctx = s.lookup(name, (this as TLSSocket & { _parent?: RawSocket })._parent?.[kEcdsa] !== false);
        const o = s.lastOutcome;
        if (o === 0) counters.sniExact++; else if (o === 1) counters.sniWildcard++; else counters.sniUnknown++;
        cb(null, ctx);
      },
    };
  }

  /** Hooks the counters and the file watch onto the bound server. */
  attach(server: HttpsServer): void {
    this.server = server;
    const c = this.counters;
    server.on('secureConnection', (s: TLSSocket & { [kCounted]?: true }) => {
      // An Upgrade that did not switch hands the socket back through this event (proxy/upgrade.ts).
      if (s[kCounted]) return;
      s[kCounted] = true;
      // accept_proxy: the PROXY header's client was read off the raw socket; requests see this one.
      const raw = (s as TLSSocket & { _parent?: Socket })._parent;
      if (raw) inheritClient(raw, s);
      if (s.isSessionReused()) c.resumed++; else c.full++;
      if (!(s as TLSSocket & { servername?: string | false }).servername) c.noSni++;
    });
    server.on('tlsClientError', (err: Error & { code?: string }, s: TLSSocket) => {
      const r = failureReason(err.code);
      c.failures[r]++;
      if (this.log.isLevelEnabled('debug')) this.log.debug({ mod: 'tls', listen: this.listen, client: s.remoteAddress, code: err.code, reason: r }, 'TLS handshake failed');
      s.destroy();
    });
    this.watch();
  }

  /**
   * Read every certificate again (SIGHUP, file change, or a new config for the same bind) and swap
   * if anything changed. Returns false when the new material was refused (the old one serves on).
   */
  reload(cfg: TlsConfig = this.cfg, why = 'reload'): boolean {
    const prevCfg = this.cfg;
    this.cfg = cfg;
    const r = loadCertificates(cfg);
    const fatal = r.errors.filter((e) => !this.inDirectory(e.source));
    let next: CertStore;
    try {
      if (fatal.length) throw fatal[0];
      next = new CertStore(cfg, r.certs);
    } catch (e) {
      this.cfg = prevCfg;
      this.counters.reloadFailures++;
      this.log.error({ mod: 'tls', listen: this.listen, why, err: (e as Error).message }, 'certificates not reloaded: the running ones stay');
      return false;
    }
    for (const e of r.errors) this.log.error({ mod: 'tls', listen: this.listen, err: e.message }, 'certificate left out');
    this.errors = r.errors;
    if (next.key !== this.store.key) {
      this.swap(next);
      this.warnExpiry(r.certs);
      this.counters.reloads++;
      this.log.info({ mod: 'tls', listen: this.listen, why, certificates: next.info.map((i) => ({ source: i.source, names: i.names, notAfter: new Date(i.notAfter).toISOString() })) }, 'certificates reloaded');
    }
    if (watchKey(prevCfg) !== watchKey(cfg)) this.watch();
    return true;
  }

  private swap(next: CertStore): void {
    this.store = next;
    this.loadedAt = Date.now();
    const srv = this.server;
    if (srv) {
      // setSecureContext builds a new default context, which would get fresh random ticket keys:
      // carry the current ones over, so sessions (and keys set by the pair) keep resuming.
      const keys = srv.getTicketKeys();
      srv.setSecureContext({ ...next.defaultOptions, ticketKeys: keys });
      const hs = Object.getOwnPropertySymbols(srv).find((s) => s.description === 'handshake-timeout');
      if (hs) (srv as unknown as Record<symbol, number>)[hs] = this.cfg.handshake_timeout;
    }
  }

  /** Session-ticket keys (48 bytes) for this bind's server (HA sharing: src/tls ticket module). */
  setTicketKeys(keys: Buffer): void { this.server?.setTicketKeys(keys); }
  getTicketKeys(): Buffer | undefined { return this.server?.getTicketKeys(); }

  status(): TlsStatus {
    return {
      listen: this.listen,
      certificates: this.store.info,
      errors: this.errors.map((e) => ({ source: e.source, message: e.message })),
      counters: this.counters,
      loadedAt: this.loadedAt,
    };
  }

  /**
   * Watches the directories holding the files (a file replaced by rename is a new inode: watching
   * the file itself would go deaf after the first rotation) and `directory`.
   */
  private watch(): void {
    this.unwatch();
    if (!this.cfg.watch) return;
    const dirs = new Map<string, Set<string> | null>();
    const add = (file: string) => {
      const d = dirname(resolve(file));
      const cur = dirs.get(d);
      if (cur === null) return;
      if (cur) cur.add(basename(file)); else dirs.set(d, new Set([basename(file)]));
    };
    for (const c of this.cfg.certificates) {
      if (typeof c === 'string') add(c); else { add(c.cert); if (c.key) add(c.key); }
    }
    if (this.cfg.directory !== undefined) dirs.set(resolve(this.cfg.directory), null);
    for (const [d, files] of dirs) {
      try {
        const w = watch(d, { persistent: false }, (_ev, f) => {
          if (files === null ? f !== null && (f.startsWith('.') || !f.endsWith('.pem')) : f !== null && !files.has(f)) return;
          this.changed();
        });
        w.on('error', (e) => this.log.warn({ mod: 'tls', listen: this.listen, dir: d, err: e.message }, 'certificate watch failed: SIGHUP still reloads'));
        this.watchers.push(w);
      } catch (e) {
        this.log.warn({ mod: 'tls', listen: this.listen, dir: d, err: (e as Error).message }, 'cannot watch certificate files: SIGHUP still reloads');
      }
    }
  }

  private changed(): void {
    if (this.debounce) clearTimeout(this.debounce);
    this.debounce = setTimeout(() => { this.debounce = undefined; this.reload(this.cfg, 'file changed'); }, TlsTerminator.DEBOUNCE_MS);
    this.debounce.unref();
  }

  private unwatch(): void {
    for (const w of this.watchers) w.close();
    this.watchers = [];
  }

  close(): void {
    this.unwatch();
    if (this.debounce) clearTimeout(this.debounce);
    this.server = undefined;
  }
}

function watchKey(c: TlsConfig): string { return JSON.stringify([c.watch, c.certificates, c.directory]); }
