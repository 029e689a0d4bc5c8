import { createHash } from 'node:crypto';
import { createSecureContext, type SecureContext, type SecureContextOptions } from 'node:tls';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import type { TlsConfig } from './config.js';
import { CertError, loadCert, type LoadedCert } from './pem.js';

/**
 * The certificates of one TLS bind, compiled once per (re)load into what a handshake needs: a
 * SecureContext per server name, looked up by exact name, then by wildcard (`*.example.com`
 * serves `a.example.com`, not `a.b.example.com`: RFC 6125 §6.4.3), then the default.
 *
 * Several certificates for one name: one per key type is kept (the latest notAfter among those
 * already valid). node:tls gives an SNI context one key pair only (it copies the context's last
 * certificate into the connection), so each name gets one context per key type and the bind picks
 * by the ClientHello it peeked (client-hello.ts acceptsEcdsa): ECDSA when the client can verify
 * it, else RSA — what HAProxy does with both loaded. The default context (no SNI) holds both
 * pairs and OpenSSL picks by the client's signature_algorithms itself.
 *
 * Immutable: a reload builds a new CertStore and the bind swaps its reference.
 */

export interface CertInfo {
  source: string;
  names: readonly string[];
  keyType: string;
  notBefore: number;
  notAfter: number;
  fingerprint: string;
  subject: string;
  issuer: string;
  /** Served for at least one name (false: another certificate of the same type won every name). */
  inUse: boolean;
}

export interface LoadResult { certs: LoadedCert[]; errors: CertError[] }

/**
 * Every certificate of a tls config: `certificates` in order, then `directory` (`*.pem`, sorted by
 * name; dot-files and other names ignored: a writer renames `.x.pem.tmp` → `x.pem` atomically).
 */
export function loadCertificates(cfg: TlsConfig): LoadResult {
  const certs: LoadedCert[] = [];
  const errors: CertError[] = [];
  const one = (cert: string, key?: string) => {
    try { certs.push(loadCert(cert, key)); } catch (e) { errors.push(e instanceof CertError ? e : new CertError(cert, (e as Error).message)); }
  };
  for (const c of cfg.certificates) {
    if (typeof c === 'string') one(c); else one(c.cert, c.key);
  }
  if (cfg.directory !== undefined) {
    for (const f of directoryBundles(cfg.directory, errors)) one(join(cfg.directory, f));
  }
  return { certs, errors };
}

export function directoryBundles(dir: string, errors?: CertError[]): string[] {
  try {
    return readdirSync(dir, { withFileTypes: true })
      .filter((d) => !d.name.startsWith('.') && d.name.endsWith('.pem') && (d.isFile() || d.isSymbolicLink()))
      .map((d) => d.name).sort();
  } catch (e) {
    errors?.push(new CertError(dir, `cannot read the directory: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`));
    return [];
  }
}

/** Options every context of a bind shares (protocol versions, ciphers, curves). */
export function contextOptions(cfg: TlsConfig): SecureContextOptions {
  return {
    minVersion: cfg.min_version,
    // Node hands the TLS_* names to SSL_CTX_set_ciphersuites and the rest to set_cipher_list.
    ciphers: `${cfg.ciphersuites}:${cfg.ciphers}`,
    ecdhCurve: cfg.curves,
    honorCipherOrder: cfg.prefer_server_ciphers,
    // OpenSSL resumes a session only in the session id context it was made in. Node's default is a
    // hash of process.argv, which differs between the two HA nodes (their -c files): a ticket from the
    // old master would get a full handshake on the new one. Same bind config → same context on both
    // nodes; another bind's certificates → another context (no resumption across sites).
    sessionIdContext: createHash('sha256').update(JSON.stringify(['pairlb', cfg.certificates, cfg.directory ?? null])).digest('hex').slice(0, 32),
  };
}

export type SniOutcome = 0 | 1 | 2; // exact, wildcard, default

/** The contexts serving one name: ECDSA, and another key type (RSA) for clients without ECDSA. */
interface Choice { readonly ec: SecureContext | undefined; readonly other: SecureContext | undefined }

export class CertStore {
  private readonly exact = new Map<string, Choice>();
  private readonly wildcard = new Map<string, Choice>();
  private readonly defaultChoice: Choice;
  /** The options of the default certificate(s), for the server's own context (no SNI). */
  readonly defaultOptions: SecureContextOptions;
  readonly defaultContext: SecureContext;
  readonly info: readonly CertInfo[];
  /** Names in SNI lookup order, for `check` (a name no certificate serves). */
  readonly exactNames: ReadonlySet<string>;
  readonly wildcardParents: ReadonlySet<string>;
  /** Identity of the loaded material: equal keys = nothing to swap on a reload. */
  readonly key: string;
  /** Outcome of the last lookup (read right after lookup(), same tick: single-threaded). */
  lastOutcome: SniOutcome = 2;

  /** Throws CertError when there is no certificate at all or `default_name` is served by none. */
  constructor(readonly cfg: TlsConfig, certs: readonly LoadedCert[], now = Date.now()) {
    const opts = contextOptions(cfg);
    if (certs.length === 0) {
      // A directory that ACME has not written to yet: the bind starts, handshakes fail (counted
      // no_shared_cipher) until a bundle appears and the watch loads it.
      if (cfg.directory === undefined) throw new CertError('(tls)', 'no certificate to serve');
      this.defaultOptions = opts;
      this.defaultContext = createSecureContext(opts);
      this.defaultChoice = { ec: this.defaultContext, other: this.defaultContext };
      this.exactNames = new Set();
      this.wildcardParents = new Set();
      this.info = [];
      this.key = JSON.stringify([opts, cfg.default_name ?? '', []]);
      return;
    }
    const byName = new Map<string, LoadedCert[]>();
    for (const c of certs) for (const n of c.names) {
      const l = byName.get(n);
      if (l) l.push(c); else byName.set(n, [c]);
    }
    const contexts = new Map<string, { ctx: SecureContext; opts: SecureContextOptions }>();
    const used = new Set<LoadedCert>();
    const contextOf = (chosen: LoadedCert[]) => {
      const id = chosen.map((c) => c.fingerprint).join('|');
      let e = contexts.get(id);
      if (!e) {
        const o: SecureContextOptions = { ...opts, key: chosen.map((c) => c.keyPem), cert: chosen.map((c) => c.chainPem) };
        e = { ctx: createSecureContext(o), opts: o };
        contexts.set(id, e);
      }
      return e;
    };
    const choiceFor = (cands: LoadedCert[]): Choice => {
      const chosen = pickPerKeyType(cands, now);
      for (const c of chosen) used.add(c);
      const ec = chosen.find((c) => c.keyType === 'ec');
      const other = chosen.find((c) => c.keyType === 'rsa') ?? chosen.find((c) => c !== ec);
      return { ec: ec && contextOf([ec]).ctx, other: other && contextOf([other]).ctx };
    };
    for (const [n, cands] of byName) {
      if (n.startsWith('*.')) this.wildcard.set(n.slice(2), choiceFor(cands));
      else this.exact.set(n, choiceFor(cands));
    }
    const defName = cfg.default_name?.toLowerCase() ?? certs[0].names[0];
    const defCands = defName !== undefined ? byName.get(defName) ?? (cfg.default_name === undefined ? undefined : wildcardCands(byName, defName)) : undefined;
    if (cfg.default_name !== undefined && defCands === undefined) throw new CertError('tls.default_name', `no certificate serves ${cfg.default_name}`);
    const defChosen = pickPerKeyType(defCands ?? [certs[0]], now);
    for (const c of defChosen) used.add(c);
    const def = contextOf(defChosen);
    this.defaultOptions = def.opts;
    this.defaultContext = def.ctx;
    this.defaultChoice = choiceFor(defCands ?? [certs[0]]);
    this.exactNames = new Set(this.exact.keys());
    this.wildcardParents = new Set(this.wildcard.keys());
    this.info = certs.map((c) => ({
      source: c.source, names: c.names, keyType: c.keyType, notBefore: c.notBefore, notAfter: c.notAfter,
      fingerprint: c.fingerprint, subject: c.subject, issuer: c.issuer, inUse: used.has(c),
    }));
    this.key = JSON.stringify([opts, cfg.default_name ?? '', certs.map((c) => [c.source, c.fingerprint, c.keyPem])]);
  }

  /**
   * SecureContext for an SNI name (as sent: any case), ECDSA when `ecdsa` (the client can verify
   * it) and the name has one. Hot path (one per handshake with SNI): two or three Map lookups.
   * Sets lastOutcome.
   */
  lookup(servername: string, ecdsa: boolean): SecureContext {
    let n = servername;
    // RFC 6066 §3 forbids a trailing dot; a lowercase name is the common case.
    if (n.charCodeAt(n.length - 1) === 46) n = n.slice(0, -1);
    let c = this.exact.get(n) ?? this.exact.get(n = n.toLowerCase());
    if (c !== undefined) this.lastOutcome = 0;
    else {
      const dot = n.indexOf('.');
      if (dot > 0) c = this.wildcard.get(n.slice(dot + 1));
      if (c !== undefined) this.lastOutcome = 1;
      else { this.lastOutcome = 2; c = this.defaultChoice; }
    }
    return (ecdsa ? c.ec ?? c.other : c.other ?? c.ec)!;
  }

  /** Does some certificate serve this host name (exact or wildcard)? */
  serves(host: string): boolean {
    const n = host.toLowerCase().replace(/\.$/, '');
    if (this.exactNames.has(n)) return true;
    const dot = n.indexOf('.');
    return dot > 0 && this.wildcardParents.has(n.slice(dot + 1));
  }
}

function wildcardCands(byName: Map<string, LoadedCert[]>, name: string): LoadedCert[] | undefined {
  const dot = name.indexOf('.');
  return dot > 0 ? byName.get('*.' + name.slice(dot + 1)) : undefined;
}

/**
 * One certificate per key type: among those valid now the one that expires last (a renewed
 * certificate next to the old one wins as soon as it is valid), else the one that expires last.
 */
export function pickPerKeyType(cands: readonly LoadedCert[], now: number): LoadedCert[] {
  const best = new Map<string, LoadedCert>();
  const score = (c: LoadedCert) => (c.notBefore <= now && now < c.notAfter ? 1 : 0);
  for (const c of cands) {
    const b = best.get(c.keyType);
    if (!b || score(c) > score(b) || (score(c) === score(b) && c.notAfter > b.notAfter)) best.set(c.keyType, c);
  }
  // ECDSA first: with both, OpenSSL still decides by the client's sigalgs; the order only fixes the id.
  return [...best.values()].sort((a, b) => (a.keyType < b.keyType ? -1 : a.keyType > b.keyType ? 1 : 0));
}
