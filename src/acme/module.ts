import { sitesOf } from '../config/sites.js';
import { readFileSync } from 'node:fs';
import { Agent } from 'node:https';
import { rootCertificates } from 'node:tls';
import { join } from 'node:path';
import { App, moduleFactories, type Module } from '../app.js';
import type { Config } from '../config/schema.js';
import { haStatus } from '../ha/module.js';
import { readKeyFile } from '../ha/advert.js';
import { lazy } from '../lazy.js';
import type { Logger } from '../log.js';
import { Sealer } from '../state/sealed.js';
import type { AcmeConfig } from './config.js';
import { plan, renewalTime, type Plan } from './schedule.js';
import { certDirFor } from './placeholder.js';
import { AcmeStore, certFacts, splitBundle, type StoredCert } from './store.js';

/**
 * Certificates from ACME (RFC 8555) through acme-client (npm), HTTP-01 answered by pairlb's own
 * plain listeners (http01.ts). Only the active node (master, or a node without HA) orders; the
 * backup holds the same account, certificates and challenge tokens through the replicated state
 * (store.ts) and takes over the schedule after a failover.
 *
 * One certificate per section with `acme: [names]`, id = section name, bundle `<cert_dir>/<id>.pem`.
 * Orders run one at a time. A failed order leaves the installed certificate in place (it keeps
 * serving) and is retried with backoff (schedule.ts); `alarm_after` failures in a row raise an
 * alarm on the stats page and in `pairlb status`.
 */

/** The part of acme-client this module uses (loaded on first use: it is only needed with `acme:`). */
interface AcmeChallenge { type: string; token: string; url: string; status: string }
interface AcmeAuthz { identifier: { type: string; value: string } }
interface AcmeClientLike {
  getAccountUrl(): string;
  updateAccount(d: { contact: string[] }): Promise<unknown>;
  auto(o: {
    csr: Buffer; email?: string; termsOfServiceAgreed?: boolean; skipChallengeVerification?: boolean; challengePriority?: string[];
    challengeCreateFn(a: AcmeAuthz, c: AcmeChallenge, keyAuthorization: string): Promise<unknown>;
    challengeRemoveFn(a: AcmeAuthz, c: AcmeChallenge, keyAuthorization: string): Promise<unknown>;
  }): Promise<string>;
}
interface AcmeLib {
  Client: new (o: { directoryUrl: string; accountKey: string | Buffer; accountUrl?: string; backoffAttempts?: number; backoffMin?: number; backoffMax?: number }) => AcmeClientLike;
  crypto: {
    createPrivateEcdsaKey(curve?: 'P-256' | 'P-384' | 'P-521'): Promise<Buffer>;
    createPrivateRsaKey(size?: number): Promise<Buffer>;
    createCsr(d: { commonName?: string; altNames?: string[] }, key?: Buffer | string): Promise<[Buffer, Buffer]>;
  };
  axios: { defaults: { httpsAgent?: unknown } };
  setLogger(fn: (m: string) => void): void;
}
const acmeLib = lazy<AcmeLib>('acme-client');

export interface AcmeCertStatus {
  id: string;
  names: string[];
  state: 'valid' | 'ordering' | 'missing' | 'failing' | 'standby';
  file: string;
  notAfter?: string;
  renewAt?: string;
  serial?: string;
  failures: number;
  lastError?: string;
  lastAttempt?: string;
  nextAttempt?: string;
  orders: number;
}
export interface AcmeAlarm { cert: string; code: string; message: string; at: string }
export interface AcmeStatus { directory: string; account?: string; active: boolean; certDir: string; certs: AcmeCertStatus[]; alarms: AcmeAlarm[] }

interface Attempt { failures: number; lastFailureAt?: number; lastError?: string; lastAttemptAt?: number; orders: number }

/** Sections that want a certificate: id → names. */
export function wantedCerts(cfg: Config): Map<string, string[]> {
  const m = new Map<string, string[]>();
  for (const l of sitesOf(cfg).frontends) if (l.acme) m.set(l.name, [...l.acme]);
  return m;
}

export class AcmeModule implements Module {
  readonly name = 'acme';
  private cfg: AcmeConfig;
  private want: Map<string, string[]>;
  readonly store: AcmeStore;
  private readonly log: Logger;
  private readonly attempts = new Map<string, Attempt>();
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private ordering: string | undefined;
  private stopped = false;
  private libError: string | undefined;
  private readonly onRole = (): void => { this.schedule(0); };
  private dropNotes: (() => void) | undefined;

  constructor(private readonly app: App, cfg: AcmeConfig) {
    this.cfg = cfg;
    this.want = wantedCerts(app.cfg);
    this.log = app.log.child({ mod: 'acme' });
    const stateDir = app.state.file ? join(app.state.file, '..') : undefined;
    const ha = app.cfg.ha;
    const sealer = ha?.enabled && ha.replicate ? new Sealer(readKeyFile(ha.key_file), 'acme') : undefined;
    this.store = new AcmeStore({
      log: this.log, dir: stateDir ? join(stateDir, 'acme') : undefined, certDir: certDirFor(app.cfg, stateDir)!,
      tokens: app.http01, store: app.state, sealer,
      onImport: () => this.schedule(0),
    });
  }

  start(): void {
    this.store.load([...this.want.keys()]);
    this.app.on('role', this.onRole);
    // Failed orders are a WARNING of `pairlb status` (the installed certificate still serves).
    this.dropNotes = this.app.addStatusNotes(() => this.status().alarms.map((a) => ({ source: 'acme', level: 1 as const, text: `acme ${a.message}` })));
    this.schedule(0);
  }

  reload(cfg: Config): void {
    if (!cfg.acme) return;
    this.cfg = cfg.acme;
    this.want = wantedCerts(cfg);
    this.schedule(0);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.app.off('role', this.onRole);
    this.dropNotes?.();
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    // An order in flight is abandoned (its tokens expire); waiting for it could take order_timeout.
  }

  private schedule(ms: number): void {
    if (this.stopped) return;
    if (this.timer) clearTimeout(this.timer);
    this.timer = setTimeout(() => { this.timer = undefined; this.tick(); }, Math.max(0, Math.min(ms, 3_600_000)));
    this.timer.unref();
  }

  private policy() { return { renewAt: this.cfg.renew_at, retryMin: this.cfg.retry_min, retryMax: this.cfg.retry_max }; }

  private plans(now: number): [string, string[], Plan][] {
    return [...this.want].map(([id, names]) => [id, names, plan(names, this.store.certs.get(id), this.attempts.get(id) ?? { failures: 0 }, now, this.policy())]);
  }

  /** Check every certificate; order the first that needs it; come back when the next is due. */
  private tick(): void {
    if (this.stopped || this.running) return;
    if (!this.app.isActive()) return; // the master orders; 'role' brings us back
    const now = Date.now();
    this.store.expireTokens(now);
    const plans = this.plans(now);
    const todo = plans.find(([, , p]) => p.action === 'order');
    if (todo) {
      const [id, names, p] = todo;
      this.running = this.order(id, names, p.action === 'order' ? p.reason : '').finally(() => { this.running = undefined; this.schedule(0); });
      return;
    }
    const next = Math.min(...plans.map(([, , p]) => (p.action === 'wait' ? p.until : now)), now + 3_600_000);
    this.schedule(Math.max(1000, next - now));
  }

  private lib(): AcmeLib {
    const lib = acmeLib();
    if (this.cfg.ca_file) lib.axios.defaults.httpsAgent = new Agent({ ca: [...rootCertificates, readFileSync(this.cfg.ca_file, 'utf8')], keepAlive: true });
    lib.setLogger((m) => this.log.trace({ acme: m }, 'acme-client'));
    return lib;
  }

  private async order(id: string, names: string[], reason: string): Promise<void> {
    const att = this.attempts.get(id) ?? { failures: 0, orders: 0 };
    this.attempts.set(id, att);
    att.lastAttemptAt = Date.now();
    att.orders++;
    this.ordering = id;
    const t0 = Date.now();
    this.log.info({ cert: id, names, reason, directory: this.cfg.directory }, `acme: ordering a certificate for ${id} (${reason})`);
    let timer: NodeJS.Timeout | undefined;
    const tokens: string[] = [];
    try {
      let lib: AcmeLib;
      try { lib = this.lib(); this.libError = undefined; } catch (e) { this.libError = (e as Error).message; throw new Error(`acme-client could not be loaded: ${(e as Error).message}`); }
      const timeout = new Promise<never>((_ok, fail) => { timer = setTimeout(() => fail(new Error(`order timed out after ${this.cfg.order_timeout} ms`)), this.cfg.order_timeout); });
      const cert = await Promise.race([this.runOrder(lib, id, names, tokens), timeout]);
      this.store.install(id, cert);
      att.failures = 0;
      att.lastError = undefined;
      this.log.info({ cert: id, names, serial: cert.serial, notAfter: new Date(cert.notAfter).toISOString(), renewAt: new Date(renewalTime(cert, this.cfg.renew_at)).toISOString(), ms: Date.now() - t0, file: this.store.bundleFile(id) }, `acme: certificate for ${id} installed`);
    } catch (e) {
      att.failures++;
      att.lastFailureAt = Date.now();
      att.lastError = (e as Error).message.slice(0, 500);
      const held = this.store.certs.get(id);
      this.log.warn({ cert: id, names, failures: att.failures, error: att.lastError, ms: Date.now() - t0, keeps: held ? { serial: held.serial, notAfter: new Date(held.notAfter).toISOString() } : null },
        `acme: order for ${id} failed (${att.failures} in a row)${held ? '; the installed certificate keeps serving' : ''}`);
    } finally {
      if (timer) clearTimeout(timer);
      for (const t of tokens) this.store.removeToken(t);
      this.ordering = undefined;
    }
  }

  private async runOrder(lib: AcmeLib, id: string, names: string[], tokens: string[]): Promise<StoredCert> {
    let acct = this.store.account;
    if (!acct || acct.directory !== this.cfg.directory) {
      const key = (await lib.crypto.createPrivateEcdsaKey('P-256')).toString();
      acct = { key, directory: this.cfg.directory, email: this.cfg.email };
      this.store.setAccount(acct);
      this.log.info({ directory: this.cfg.directory }, 'acme: new account key');
    }
    const client = new lib.Client({ directoryUrl: this.cfg.directory, accountKey: acct.key, accountUrl: acct.url, backoffAttempts: 12, backoffMin: 500, backoffMax: 10_000 });
    if (acct.url && acct.email !== this.cfg.email) {
      // acme.email changed: the CA must write to the new address (RFC 8555 §7.3.2).
      await client.updateAccount({ contact: [`mailto:${this.cfg.email}`] });
      acct = { ...acct, email: this.cfg.email };
      this.store.setAccount(acct);
      this.log.info({ email: this.cfg.email, account: acct.url }, 'acme: account contact updated');
    }
    const key = this.cfg.key_type === 'rsa' ? await lib.crypto.createPrivateRsaKey(2048) : await lib.crypto.createPrivateEcdsaKey('P-256');
    const [, csr] = await lib.crypto.createCsr({ commonName: names[0], altNames: names }, key);
    const chain = await client.auto({
      csr, email: this.cfg.email, termsOfServiceAgreed: this.cfg.terms_of_service_agreed,
      challengePriority: ['http-01'],
      // acme-client's own pre-check fetches the token through the system resolver, which need not
      // resolve the names to us (split DNS, the VIP not yet announced): the CA's check decides.
      skipChallengeVerification: true,
      challengeCreateFn: async (_a, c, ka) => {
        if (c.type !== 'http-01') throw new Error(`challenge ${c.type} not supported (HTTP-01 only)`);
        tokens.push(c.token);
        this.store.addToken(c.token, ka, Date.now() + this.cfg.order_timeout + 60_000);
        await this.peerHolds();
      },
      challengeRemoveFn: async (_a, c) => { this.store.removeToken(c.token); },
    });
    if (!acct.url) this.store.setAccount({ ...acct, url: client.getAccountUrl() });
    const b = splitBundle(chain);
    if (!b.certs.length) throw new Error('the CA returned no certificate');
    const f = certFacts(b.certs[0]);
    const missing = names.filter((n) => !f.names.includes(n));
    if (missing.length) throw new Error(`the certificate lacks ${missing.join(', ')}`);
    return { names: [...names], chain: b.certs.join(''), key: key.toString(), notBefore: f.notBefore, notAfter: f.notAfter, serial: f.serial, issuedAt: Date.now() };
  }

  /**
   * With a live peer: wait (at most peer_wait) until it holds our state, tokens included, so that
   * the CA's request is answered whichever node holds the VIP when it comes.
   */
  private async peerHolds(): Promise<void> {
    const t0 = Date.now();
    for (;;) {
      const h = haStatus(this.app);
      if (!h || !h.replication.enabled || !h.peer.alive || h.replication.sync === 'same') return;
      if (Date.now() - t0 >= this.cfg.peer_wait) {
        this.log.warn({ sync: h.replication.sync, waitedMs: Date.now() - t0 }, 'acme: the peer has not acknowledged the challenge token: asking the CA anyway');
        return;
      }
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  status(): AcmeStatus {
    const now = Date.now();
    const active = this.app.isActive();
    const alarms: AcmeAlarm[] = [];
    const certs = this.plans(now).map(([id, names, p]): AcmeCertStatus => {
      const c = this.store.certs.get(id);
      const a = this.attempts.get(id);
      const failing = (a?.failures ?? 0) > 0;
      if (active && failing && a!.failures >= this.cfg.alarm_after) {
        alarms.push({ cert: id, code: 'PAIRLB_ACME_ORDER_FAILED', message: `${id}: ${a!.failures} failed order(s): ${a!.lastError ?? ''}${c ? `; serving the previous certificate until ${new Date(c.notAfter).toISOString()}` : '; no certificate'}`, at: new Date(a!.lastFailureAt ?? now).toISOString() });
      }
      return {
        id, names, file: this.store.bundleFile(id),
        state: this.ordering === id ? 'ordering' : !active ? 'standby' : failing ? 'failing' : c ? 'valid' : 'missing',
        notAfter: c ? new Date(c.notAfter).toISOString() : undefined,
        renewAt: c ? new Date(renewalTime(c, this.cfg.renew_at)).toISOString() : undefined,
        serial: c?.serial,
        failures: a?.failures ?? 0,
        lastError: a?.lastError,
        lastAttempt: a?.lastAttemptAt ? new Date(a.lastAttemptAt).toISOString() : undefined,
        nextAttempt: p.action === 'wait' ? new Date(p.until).toISOString() : new Date(now).toISOString(),
        orders: a?.orders ?? 0,
      };
    });
    if (this.libError) alarms.push({ cert: '', code: 'PAIRLB_ACME_LIBRARY', message: this.libError, at: new Date(now).toISOString() });
    return { directory: this.cfg.directory, account: this.store.account?.url, active, certDir: this.store.certDir, certs, alarms };
  }
}

/** The ACME module of an App, if configured (stats page, status, tests). */
export function acmeOf(app: App): AcmeModule | undefined {
  return app.modules.find((m): m is AcmeModule => m instanceof AcmeModule);
}

moduleFactories.push((app) => (app.cfg.acme ? new AcmeModule(app, app.cfg.acme) : undefined));
