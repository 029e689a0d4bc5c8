import { z } from 'zod';
import { bool, duration, durationAtLeast } from '../config/types.js';

/**
 * `acme:` certificates from an ACME CA (Let's Encrypt by default), ordered, renewed and installed
 * by pairlb (src/acme/module.ts, docs/acme.md). The names are given per frontend or listen
 * section: `frontends[].acme` / `listen[].acme: [example.com, www.example.com]`, one certificate
 * per section.
 *
 *   acme:
 *     email: ops@example.com
 *     terms_of_service_agreed: true
 *   listen:
 *     - name: shop
 *       bind: 0.0.0.0:443
 *       acme: [shop.example, www.shop.example]
 */

export const LETS_ENCRYPT = 'https://acme-v02.api.letsencrypt.org/directory';

/**
 * A DNS name a CA may issue for through HTTP-01: lowercase letters, digits, hyphens, dots; no
 * wildcard (HTTP-01 cannot prove one: RFC 8555 §8.3), no IP address, no trailing dot.
 */
export const acmeName = z.string().max(253).regex(
  /^(?=.{1,253}$)(?!\d+\.\d+\.\d+\.\d+$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/,
  'expected a lowercase DNS name with at least one dot (no wildcard: HTTP-01 cannot validate one, no IP address)',
);

/** The names of one section's certificate (Let's Encrypt takes at most 100 per certificate). */
export const acmeNamesSchema = z.array(acmeName).min(1).max(100).superRefine((names, ctx) => {
  const seen = new Set<string>();
  names.forEach((n, i) => {
    if (seen.has(n)) ctx.addIssue({ code: z.ZodIssueCode.custom, path: [i], message: `duplicate name ${n}` });
    seen.add(n);
  });
});

export const acmeSchema = z.object({
  /** The CA's ACME directory URL (RFC 8555 §7.1.1). Let's Encrypt staging: https://acme-staging-v02.api.letsencrypt.org/directory. */
  directory: z.string().url().refine((u) => u.startsWith('https://'), 'expected an https:// URL').default(LETS_ENCRYPT),
  /** Contact address registered with the account (the CA writes about expiry and incidents). */
  email: z.string().regex(/^[^\s@:<>]+@[^\s@:<>]+\.[^\s@:<>]+$/, 'expected an email address'),
  /** You agree to the CA's terms of service (Let's Encrypt's Subscriber Agreement); required to order. */
  terms_of_service_agreed: bool.refine((v) => v, 'must be true: the CA refuses accounts that do not agree to its terms of service'),
  /** Extra CA certificates (PEM) trusted for the ACME server's own HTTPS (a private CA, pebble in tests). */
  ca_file: z.string().optional(),
  /** Where the PEM bundles (certificate + chain + key) are written, one per section: `<dir>/<section>.pem`. Default: `<state_dir>/acme/certs`. */
  cert_dir: z.string().optional(),
  /** Key type of the certificates: ECDSA P-256 (default) or RSA 2048. */
  key_type: z.enum(['ecdsa', 'rsa']).default('ecdsa'),
  /** Renew once this fraction of the certificate's lifetime has passed (2/3: a 90-day certificate 30 days before expiry). */
  renew_at: z.number().gt(0).lt(1).default(2 / 3),
  /** First retry after a failed order; each further failure doubles it up to `retry_max`. */
  retry_min: durationAtLeast(1000).default('5m'),
  /** Longest wait between two attempts after failures. */
  retry_max: durationAtLeast(1000).default('6h'),
  /** Longest an order may take (account, challenges, finalize, download) before it counts as failed. */
  order_timeout: durationAtLeast(1000).default('5m'),
  /** With HA: longest the master waits for the backup to hold a challenge token before asking the CA to validate. */
  peer_wait: duration.default('5s'),
  /** Raise an alarm (stats page, `pairlb status` WARNING) after this many failed orders in a row for a certificate. */
  alarm_after: z.number().int().min(1).default(1),
}).strict().superRefine((a, ctx) => {
  if (a.retry_max < a.retry_min) ctx.addIssue({ code: z.ZodIssueCode.custom, path: ['retry_max'], message: 'must be at least retry_min' });
});

export type AcmeConfig = z.output<typeof acmeSchema>;
