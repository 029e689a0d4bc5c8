import { createHash, createHmac, randomBytes, scrypt as scryptCb, timingSafeEqual, type ScryptOptions } from 'node:crypto';
import { PairlbError } from '../errors.js';

/**
 * Passwords for the stats page: scrypt hashes in a PHC-like string
 *   $scrypt$ln=15,r=8,p=1$<salt base64>$<hash base64>
 * (ln = log2 N). Verification runs scrypt on the libuv thread pool (never blocks the event loop that
 * also carries traffic) and compares with timingSafeEqual. Plaintext passwords are accepted (with a
 * warning at start) and compared in constant time through HMAC digests of equal length.
 */

export const DEFAULT_LOG_N = 15;
const KEYLEN = 32;

function scrypt(password: string | Buffer, salt: Buffer, keylen: number, opts: ScryptOptions): Promise<Buffer> {
  return new Promise((ok, fail) => scryptCb(password, salt, keylen, opts, (e, k) => (e ? fail(e) : ok(k))));
}

function opts(ln: number, r: number, p: number): ScryptOptions {
  // Node's default maxmem (32 MiB) is exactly 128*N*r for ln=15, r=8: leave headroom.
  return { N: 2 ** ln, r, p, maxmem: 256 * 2 ** ln * r + 1024 * 1024 };
}

export async function hashPassword(password: string, ln = DEFAULT_LOG_N, r = 8, p = 1): Promise<string> {
  if (!password) throw new PairlbError('PAIRLB_BAD_PASSWORD', 'empty password');
  if (ln < 10 || ln > 20) throw new PairlbError('PAIRLB_BAD_PASSWORD', 'ln must be 10..20');
  const salt = randomBytes(16);
  const key = await scrypt(password.normalize('NFC'), salt, KEYLEN, opts(ln, r, p));
  return `$scrypt$ln=${ln},r=${r},p=${p}$${salt.toString('base64').replace(/=+$/, '')}$${key.toString('base64').replace(/=+$/, '')}`;
}

const HASH_RE = /^\$scrypt\$ln=(\d{1,2}),r=(\d{1,2}),p=(\d{1,2})\$([A-Za-z0-9+/]+)\$([A-Za-z0-9+/]+)$/;

export interface ParsedHash { ln: number; r: number; p: number; salt: Buffer; key: Buffer }

export function parseHash(s: string): ParsedHash | undefined {
  const m = HASH_RE.exec(s);
  if (!m) return undefined;
  const ln = Number(m[1]), r = Number(m[2]), p = Number(m[3]);
  if (ln < 10 || ln > 20 || r < 1 || p < 1) return undefined;
  const key = Buffer.from(m[5], 'base64');
  if (key.length < 16) return undefined;
  return { ln, r, p, salt: Buffer.from(m[4], 'base64'), key };
}

/** Looks like one of our hashes (a malformed "$scrypt$…" is an error, not a plaintext password). */
export function isHashed(s: string): boolean { return s.startsWith('$scrypt$'); }

export type UserRole = 'admin' | 'read-only';
export interface UserEntry { user: string; password: string; role?: UserRole }
export interface Identity { user: string; role: UserRole }

/**
 * Checks Basic credentials against the configured users. Successful checks are remembered for
 * `cacheMs` (keyed by an HMAC of the whole Authorization header under a per-process secret, never
 * the password itself: a wrong password is another header, so it can never hit the cache), at most
 * `cacheSize` entries, oldest first out. Limits on failures live in login-guard.ts.
 */
export class Authenticator {
  private readonly users = new Map<string, { plain?: Buffer; hash?: ParsedHash; role: UserRole }>();
  private readonly secret = randomBytes(32);
  private readonly cache = new Map<string, Identity & { until: number }>();
  private readonly dummy: ParsedHash;

  constructor(users: readonly UserEntry[], private readonly cacheMs = 5 * 60_000, private readonly cacheSize = 1024) {
    for (const u of users) {
      const role = u.role ?? 'admin';
      if (isHashed(u.password)) {
        const h = parseHash(u.password);
        if (!h) throw new PairlbError('PAIRLB_BAD_PASSWORD', `stats.auth user ${u.user}: malformed scrypt hash (make one with pairlb hash-password)`);
        this.users.set(u.user, { hash: h, role });
      } else this.users.set(u.user, { plain: this.mac(u.password), role });
    }
    // Unknown users still cost one scrypt of the usual strength: no user enumeration by timing.
    const first = [...this.users.values()].find((u) => u.hash)?.hash;
    this.dummy = first ? { ...first, salt: randomBytes(16) } : { ln: 10, r: 8, p: 1, salt: randomBytes(16), key: randomBytes(KEYLEN) };
  }

  get enabled(): boolean { return this.users.size > 0; }

  /** Users configured with a plaintext password (the caller logs a warning). */
  static plaintextUsers(users: readonly UserEntry[]): string[] { return users.filter((u) => !isHashed(u.password)).map((u) => u.user); }

  private mac(s: string): Buffer { return createHmac('sha256', this.secret).update(s.normalize('NFC')).digest(); }

  /** Cache key of an Authorization header. */
  key(header: string): string { return this.mac(header).toString('base64'); }

  /** The identity cached for this key, if still valid (no scrypt). */
  cached(key: string, now = Date.now()): Identity | undefined {
    const hit = this.cache.get(key);
    if (!hit) return undefined;
    if (hit.until > now) return hit;
    this.cache.delete(key);
    return undefined;
  }

  /**
   * Verifies an `Authorization: Basic …` header (scrypt for hashed users and unknown users).
   * `scrypt` tells whether one ran (the guard counts them).
   */
  async verify(header: string, key: string, now = Date.now()): Promise<{ id?: Identity; scrypt: boolean }> {
    if (!/^basic /i.test(header)) return { scrypt: false };
    const dec = Buffer.from(header.slice(6).trim(), 'base64').toString('utf8');
    const colon = dec.indexOf(':');
    if (colon < 0) return { scrypt: false };
    const user = dec.slice(0, colon), pass = dec.slice(colon + 1);
    const u = this.users.get(user);
    let ok = false;
    let ran = false;
    if (u?.plain) ok = timingSafeEqual(u.plain, this.mac(pass));
    else {
      const h = u?.hash ?? this.dummy;
      ran = true;
      const k = await scrypt(pass.normalize('NFC'), h.salt, h.key.length, opts(h.ln, h.r, h.p));
      ok = timingSafeEqual(k, h.key) && !!u;
    }
    if (!ok || !u) return { scrypt: ran };
    const id: Identity = { user, role: u.role };
    if (this.cacheMs > 0) {
      this.cache.delete(key);
      this.cache.set(key, { ...id, until: now + this.cacheMs });
      while (this.cache.size > this.cacheSize) this.cache.delete(this.cache.keys().next().value as string);
    }
    return { id, scrypt: ran };
  }

  /** Verify (cache first, no limits): for tests and callers without a guard. */
  async check(header: string | undefined, now = Date.now()): Promise<string | undefined> {
    if (!header) return undefined;
    const k = this.key(header);
    return (this.cached(k, now) ?? (await this.verify(header, k, now)).id)?.user;
  }
}

/**
 * Anti-CSRF tokens: stateless, bound to the user and time-limited:  <issued-at base36>.<HMAC>.
 * A forged cross-site POST carries the browser's Basic credentials but cannot read the page, so it
 * cannot know the token.
 */
export class CsrfTokens {
  private readonly secret = randomBytes(32);
  constructor(private readonly ttlMs = 12 * 3600_000) {}

  issue(user: string, now = Date.now()): string {
    const t = Math.floor(now / 1000).toString(36);
    return t + '.' + this.sign(user, t);
  }

  verify(user: string, token: unknown, now = Date.now()): boolean {
    if (typeof token !== 'string' || token.length > 200) return false;
    const dot = token.indexOf('.');
    if (dot <= 0) return false;
    const t = token.slice(0, dot);
    const issued = parseInt(t, 36) * 1000;
    if (!Number.isFinite(issued) || issued > now + 60_000 || now - issued > this.ttlMs) return false;
    const want = Buffer.from(this.sign(user, t));
    const got = Buffer.from(token.slice(dot + 1));
    return got.length === want.length && timingSafeEqual(got, want);
  }

  private sign(user: string, t: string): string {
    return createHmac('sha256', this.secret).update('csrf\0' + user + '\0' + t).digest('base64url');
  }
}

/** Constant-time comparison of two secrets of any length (bearer tokens). */
export function secretEquals(a: string, b: string): boolean {
  const ha = createHash('sha256').update(a).digest();
  const hb = createHash('sha256').update(b).digest();
  return timingSafeEqual(ha, hb) && a.length === b.length;
}
