/**
 * When to order a certificate (pure; table-tested in test/acme/schedule.test.ts).
 *
 *   no certificate, or its names differ from the config      → order now (unless backing off)
 *   renewal time reached: notBefore + renew_at × lifetime    → order (unless backing off)
 *   a failed order                                           → wait retry_min × 2^(failures−1), ≤ retry_max
 *
 * The certificate in use is never removed by a failure: it serves until a new one is installed.
 */

export interface HeldCert { names: readonly string[]; notBefore: number; notAfter: number }
export interface Attempts { failures: number; lastFailureAt?: number }
export interface Policy { renewAt: number; retryMin: number; retryMax: number }

export type Plan =
  | { action: 'order'; reason: 'missing' | 'names changed' | 'renewal due' | 'expired' }
  | { action: 'wait'; until: number; reason: 'valid' | 'backoff' };

export function renewalTime(c: Pick<HeldCert, 'notBefore' | 'notAfter'>, fraction: number): number {
  return c.notBefore + Math.floor((c.notAfter - c.notBefore) * fraction);
}

export function backoff(failures: number, p: Pick<Policy, 'retryMin' | 'retryMax'>): number {
  if (failures <= 0) return 0;
  return Math.min(p.retryMax, p.retryMin * 2 ** Math.min(failures - 1, 30));
}

function sameNames(a: readonly string[], b: readonly string[]): boolean {
  if (a.length !== b.length) return false;
  const s = new Set(a);
  return b.every((n) => s.has(n));
}

export function plan(want: readonly string[], held: HeldCert | undefined, att: Attempts, now: number, p: Policy): Plan {
  let reason: 'missing' | 'names changed' | 'renewal due' | 'expired' | undefined;
  let validUntil = 0;
  if (!held) reason = 'missing';
  else if (!sameNames(want, held.names)) reason = 'names changed';
  else if (now >= held.notAfter) reason = 'expired';
  else {
    validUntil = renewalTime(held, p.renewAt);
    if (now >= validUntil) reason = 'renewal due';
  }
  if (reason === undefined) return { action: 'wait', until: validUntil, reason: 'valid' };
  if (att.failures > 0 && att.lastFailureAt !== undefined) {
    const next = att.lastFailureAt + backoff(att.failures, p);
    if (now < next) return { action: 'wait', until: next, reason: 'backoff' };
  }
  return { action: 'order', reason };
}
