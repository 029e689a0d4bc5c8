import { describe, expect, it } from 'vitest';
import { backoff, plan, renewalTime } from '../../src/acme/schedule.js';
import { configSchema } from '../../src/config/schema.js';

const P = { renewAt: 2 / 3, retryMin: 1000, retryMax: 8000 };
const held = (names: string[], notBefore: number, notAfter: number) => ({ names, notBefore, notAfter });
const N = ['a.test', 'b.test'];

describe('acme schedule (pure)', () => {
  it.each([
    // [case, held, attempts, now, expected]
    ['no certificate', undefined, { failures: 0 }, 0, { action: 'order', reason: 'missing' }],
    ['valid, before 2/3', held(N, 0, 90_000), { failures: 0 }, 59_999, { action: 'wait', until: 60_000, reason: 'valid' }],
    ['at 2/3 of the lifetime', held(N, 0, 90_000), { failures: 0 }, 60_000, { action: 'order', reason: 'renewal due' }],
    ['expired', held(N, 0, 90_000), { failures: 0 }, 90_000, { action: 'order', reason: 'expired' }],
    ['names in another order are the same names', held(['b.test', 'a.test'], 0, 90_000), { failures: 0 }, 1, { action: 'wait', until: 60_000, reason: 'valid' }],
    ['a name added', held(['a.test'], 0, 90_000), { failures: 0 }, 1, { action: 'order', reason: 'names changed' }],
    ['1 failure: wait retry_min', held(N, 0, 90_000), { failures: 1, lastFailureAt: 60_000 }, 60_999, { action: 'wait', until: 61_000, reason: 'backoff' }],
    ['1 failure, retry_min passed', held(N, 0, 90_000), { failures: 1, lastFailureAt: 60_000 }, 61_000, { action: 'order', reason: 'renewal due' }],
    ['3 failures: 4 × retry_min', undefined, { failures: 3, lastFailureAt: 0 }, 3999, { action: 'wait', until: 4000, reason: 'backoff' }],
    ['10 failures: capped at retry_max', undefined, { failures: 10, lastFailureAt: 0 }, 7999, { action: 'wait', until: 8000, reason: 'backoff' }],
    ['failures do not delay a valid certificate\'s wait', held(N, 0, 90_000), { failures: 2, lastFailureAt: 0 }, 10, { action: 'wait', until: 60_000, reason: 'valid' }],
  ] as const)('%s', (_n, h, att, now, want) => {
    expect(plan(N, h, att, now, P)).toEqual(want);
  });

  it('renewal time and backoff', () => {
    expect(renewalTime({ notBefore: 0, notAfter: 90 * 86_400_000 }, 2 / 3)).toBe(60 * 86_400_000);
    expect([0, 1, 2, 3, 4, 5, 100].map((f) => backoff(f, P))).toEqual([0, 1000, 2000, 4000, 8000, 8000, 8000]);
  });
});

describe('acme config', () => {
  const base = { listen: [{ name: 'a', bind: '127.0.0.1:0', acme: ['a.test'] }] };
  const issues = (c: unknown) => { const r = configSchema.safeParse(c); return r.success ? [] : r.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`); };
  it.each([
    ['names without the acme section', base, ['listen.0.acme: needs the top-level acme: section (email, terms_of_service_agreed)']],
    ['terms not agreed', { ...base, acme: { email: 'a@b.test', terms_of_service_agreed: false } }, ['acme.terms_of_service_agreed: must be true: the CA refuses accounts that do not agree to its terms of service']],
    ['a wildcard', { listen: [{ name: 'a', bind: '127.0.0.1:0', acme: ['*.a.test'] }], acme: { email: 'a@b.test', terms_of_service_agreed: true } }, [expect.stringMatching(/^listen\.0\.acme\.0: expected a lowercase DNS name .*no wildcard/)]],
    ['a name in two sections', { listen: [{ name: 'a', bind: '127.0.0.1:0', acme: ['x.test'] }, { name: 'b', bind: '127.0.0.1:0', acme: ['x.test'] }], acme: { email: 'a@b.test', terms_of_service_agreed: true } }, ['listen.1.acme.0: x.test is already ordered by listen a']],
    ['a plain http directory', { ...base, acme: { email: 'a@b.test', terms_of_service_agreed: true, directory: 'http://ca.test/dir' } }, ['acme.directory: expected an https:// URL']],
  ])('%s', (_n, c, want) => {
    expect(issues(c)).toEqual(want);
  });

  it('defaults: Let\'s Encrypt, ECDSA, renew at 2/3', () => {
    const c = configSchema.parse({ ...base, acme: { email: 'a@b.test', terms_of_service_agreed: 'yes' } });
    expect(c.acme).toMatchObject({ directory: 'https://acme-v02.api.letsencrypt.org/directory', key_type: 'ecdsa', renew_at: 2 / 3, retry_min: 300_000, retry_max: 21_600_000 });
  });
});

describe('pairlb check on a TLS bind fed by ACME', () => {
  it('a missing directory is fine for a section with acme: names (filled at start), an error otherwise', async () => {
    const { checkTls } = await import('../../src/tls/check.js');
    const mk = (acme: boolean) => configSchema.parse({
      listen: [{ name: 's', bind: '127.0.0.1:0', ...(acme ? { acme: ['s.test'] } : {}), tls: { directory: '/nonexistent/pairlb-acme-certs' } }],
      ...(acme ? { acme: { email: 'a@b.test', terms_of_service_agreed: true } } : {}),
    });
    expect(checkTls(mk(true)).errors).toEqual([]);
    expect(checkTls(mk(false)).errors.map((e) => e.message)).toEqual([expect.stringMatching(/cannot read the directory: ENOENT/)]);
  });
});
