import { X509Certificate, createHash } from 'node:crypto';
import { closeSync, fsyncSync, mkdirSync, openSync, readFileSync, readdirSync, renameSync, writeFileSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { z } from 'zod';
import type { Logger } from '../log.js';
import type { StateStore } from '../state/store.js';
import type { Sealer } from '../state/sealed.js';
import type { Http01Tokens } from './http01.js';
import { PLACEHOLDER_CN } from './placeholder.js';

/**
 * What ACME leaves behind, on disk and in the replicated state:
 *
 *   state_dir/acme/account.json   account key (PEM) + URL, mode 0600
 *   <cert_dir>/<section>.pem      certificate + chain + private key, mode 0600, written atomically
 *                                 (temp file, fsync, rename): the TLS layer's directory of PEM bundles
 *   state section `acme`          the same, secrets sealed with the HA key (state/sealed.ts), plus the
 *                                 HTTP-01 tokens of orders in progress
 *
 * The section exists only with HA (a sealer): the master's changes reach the backup, which writes
 * the same files, so it serves the certificates at once after a failover and answers the challenges
 * of an order the master started.
 */

export interface StoredCert {
  names: string[];
  /** Leaf certificate first, then the chain (PEM). */
  chain: string;
  /** Private key (PEM). */
  key: string;
  notBefore: number;
  notAfter: number;
  serial: string;
  issuedAt: number;
}

export interface Account { key: string; url?: string; directory: string; email: string }

const certEntry = z.object({
  names: z.array(z.string()), chain: z.string(), key: z.string(),
  notBefore: z.number(), notAfter: z.number(), serial: z.string(), issuedAt: z.number(),
}).passthrough();
const sectionSchema = z.object({
  v: z.literal(1),
  account: z.object({ key: z.string(), url: z.string().optional(), directory: z.string(), email: z.string() }).passthrough().nullable(),
  certs: z.record(certEntry),
  tokens: z.record(z.object({ keyAuthorization: z.string(), expires: z.number() }).passthrough()),
}).passthrough();

const SECTION = 'acme';
const PEM_RE = /-----BEGIN ([A-Z ]+)-----[\s\S]+?-----END \1-----\n?/g;

/** Split a PEM bundle into its certificates (in order) and its private key. */
export function splitBundle(pem: string): { certs: string[]; key: string | undefined } {
  const certs: string[] = [];
  let key: string | undefined;
  for (const m of pem.matchAll(PEM_RE)) {
    const block = m[0].endsWith('\n') ? m[0] : m[0] + '\n';
    if (m[1] === 'CERTIFICATE') certs.push(block);
    else if (m[1].endsWith('PRIVATE KEY')) key = block;
  }
  return { certs, key };
}

/** Names (SAN DNS entries), validity and serial of a leaf certificate. */
export function certFacts(pem: string): { names: string[]; notBefore: number; notAfter: number; serial: string } {
  const x = new X509Certificate(pem);
  const names = (x.subjectAltName ?? '').split(/,\s*/).filter((s) => s.startsWith('DNS:')).map((s) => s.slice(4));
  return { names, notBefore: Date.parse(x.validFrom), notAfter: Date.parse(x.validTo), serial: x.serialNumber };
}

/** Temp file `.<name>.tmp` beside the target (ignored by the TLS directory reader: leading dot), fsync, rename. */
export function writeAtomic(file: string, data: string, mode: number): void {
  const tmp = join(dirname(file), `.${basename(file)}.tmp`);
  writeFileSync(tmp, data, { mode });
  const fd = openSync(tmp, 'r'); fsyncSync(fd); closeSync(fd);
  renameSync(tmp, file);
}

export interface AcmeStoreOptions {
  log: Logger;
  /** state_dir/acme (account.json), or undefined (tests without a state dir keep it in memory). */
  dir: string | undefined;
  certDir: string;
  tokens: Http01Tokens;
  store?: StateStore;
  sealer?: Sealer;
  /** Called after the replicated state changed certificates or the account (backup side). */
  onImport?: (changed: string[]) => void;
}

export class AcmeStore {
  account: Account | undefined;
  readonly certs = new Map<string, StoredCert>();
  private readonly tokenExpiry = new Map<string, number>();
  /** Sealed strings by plaintext hash: the same secret exports the same string (stable state hash). */
  private readonly sealed = new Map<string, string>();
  /** Importing this node's own runtime.json at start: a bundle file written after it wins. */
  private fromDisk = false;

  constructor(private readonly o: AcmeStoreOptions) {}

  /** Read account.json and the bundles of `ids`; then join the replicated state. */
  load(ids: readonly string[]): void {
    if (this.o.dir) {
      try {
        const a = JSON.parse(readFileSync(join(this.o.dir, 'account.json'), 'utf8')) as Account;
        if (typeof a.key === 'string' && typeof a.directory === 'string') this.account = a;
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'ENOENT') this.o.log.error({ err: e }, 'acme account file unreadable: a new account will be made');
      }
    }
    for (const id of ids) {
      const file = this.bundleFile(id);
      let text: string;
      try { text = readFileSync(file, 'utf8'); } catch { continue; }
      const b = splitBundle(text);
      if (!b.certs.length || !b.key) { this.o.log.error({ file }, 'acme bundle without certificate or key: ignored (it will be ordered again)'); continue; }
      try {
        if (new X509Certificate(b.certs[0]).issuer.includes(PLACEHOLDER_CN)) continue;
        const f = certFacts(b.certs[0]);
        this.certs.set(id, { ...f, chain: b.certs.join(''), key: b.key, issuedAt: f.notBefore });
      } catch (e) { this.o.log.error({ file, err: e }, 'acme bundle unreadable: ignored'); }
    }
    if (this.o.store && this.o.sealer) {
      this.fromDisk = true;
      try { this.o.store.register(SECTION, { export: () => this.exportSection(), import: (v) => this.importSection(v) }); } finally { this.fromDisk = false; }
    }
  }

  get certDir(): string { return this.o.certDir; }
  bundleFile(id: string): string { return join(this.o.certDir, `${id}.pem`); }

  setAccount(a: Account): void {
    this.account = a;
    if (this.o.dir) this.writeAccount();
    this.changed();
  }

  /** Install a new certificate: the bundle file first (the TLS layer picks it up), then the state. */
  install(id: string, c: StoredCert): void {
    this.writeBundle(id, c);
    this.certs.set(id, c);
    this.changed();
  }

  addToken(token: string, keyAuthorization: string, expires: number): void {
    this.o.tokens.set(token, keyAuthorization);
    this.tokenExpiry.set(token, expires);
    this.changed();
  }

  removeToken(token: string): void {
    this.o.tokens.delete(token);
    if (this.tokenExpiry.delete(token)) this.changed();
  }

  /** Drop tokens of orders that died without cleaning up (a master killed mid-order). */
  expireTokens(now: number): void {
    let n = 0;
    for (const [t, exp] of this.tokenExpiry) if (exp <= now) { this.tokenExpiry.delete(t); this.o.tokens.delete(t); n++; }
    if (n) this.changed();
  }

  private changed(): void { this.o.store?.changed(SECTION); }

  private writeAccount(): void {
    try {
      mkdirSync(this.o.dir!, { recursive: true, mode: 0o700 });
      writeAtomic(join(this.o.dir!, 'account.json'), JSON.stringify(this.account, null, 1) + '\n', 0o600);
    } catch (e) { this.o.log.error({ err: e }, 'could not write the acme account file'); }
  }

  private writeBundle(id: string, c: StoredCert): void {
    mkdirSync(this.o.certDir, { recursive: true, mode: 0o750 });
    writeAtomic(this.bundleFile(id), c.chain + c.key, 0o600);
  }

  private seal(plain: string): string {
    const h = createHash('sha256').update(plain).digest('hex');
    let s = this.sealed.get(h);
    if (!s) { s = this.o.sealer!.seal(Buffer.from(plain, 'utf8')); this.sealed.set(h, s); }
    return s;
  }

  private open(sealed: string): string | undefined {
    const p = this.o.sealer!.open(sealed);
    if (!p) return undefined;
    const plain = p.toString('utf8');
    this.sealed.set(createHash('sha256').update(plain).digest('hex'), sealed);
    return plain;
  }

  private exportSection(): unknown {
    const certs: Record<string, unknown> = {};
    for (const [id, c] of [...this.certs].sort(([a], [b]) => (a < b ? -1 : 1))) certs[id] = { ...c, key: this.seal(c.key) };
    const tokens: Record<string, unknown> = {};
    for (const [t, ka] of this.o.tokens.entries().sort(([a], [b]) => (a < b ? -1 : 1))) tokens[t] = { keyAuthorization: ka, expires: this.tokenExpiry.get(t) ?? 0 };
    return { v: 1, account: this.account ? { ...this.account, key: this.seal(this.account.key) } : null, certs, tokens };
  }

  /** From runtime.json at start or from the master: files follow, so the TLS layer serves them. */
  private importSection(v: unknown): void {
    if (v === null || v === undefined) return;
    const r = sectionSchema.safeParse(v);
    if (!r.success) { this.o.log.error({ error: r.error.issues[0]?.message }, 'replicated acme state invalid: not applied'); return; }
    const d = r.data;
    const changed: string[] = [];
    if (d.account) {
      const key = this.open(d.account.key);
      if (key === undefined) { this.o.log.error('replicated acme account key could not be opened (a different ha.key_file on the two nodes?): not applied'); return; }
      const a: Account = { key, url: d.account.url, directory: d.account.directory, email: d.account.email };
      if (!this.account || this.account.key !== a.key || this.account.url !== a.url) {
        this.account = a;
        if (this.o.dir) this.writeAccount();
        changed.push('account');
      }
    }
    for (const [id, e] of Object.entries(d.certs)) {
      const key = this.open(e.key);
      if (key === undefined) { this.o.log.error({ cert: id }, 'replicated acme certificate key could not be opened: not applied'); continue; }
      const cur = this.certs.get(id);
      if (cur && cur.serial === e.serial && cur.key === key) continue;
      if (cur && this.fromDisk && cur.notBefore > e.notBefore) continue;
      const c: StoredCert = { names: e.names, chain: e.chain, key, notBefore: e.notBefore, notAfter: e.notAfter, serial: e.serial, issuedAt: e.issuedAt };
      try { this.writeBundle(id, c); } catch (err) { this.o.log.error({ err, cert: id }, 'could not write the replicated certificate'); continue; }
      this.certs.set(id, c);
      changed.push(id);
    }
    this.o.tokens.replace(Object.entries(d.tokens).map(([t, x]) => [t, x.keyAuthorization]));
    this.tokenExpiry.clear();
    for (const [t, x] of Object.entries(d.tokens)) this.tokenExpiry.set(t, x.expires);
    if (changed.length) this.o.log.info({ changed }, 'acme certificates applied from the replicated state');
    this.o.onImport?.(changed);
  }

  /** Ids of bundles present in the directory (status and tests). */
  bundles(): string[] {
    try { return readdirSync(this.o.certDir).filter((f) => f.endsWith('.pem')).map((f) => f.slice(0, -4)); } catch { return []; }
  }
}
