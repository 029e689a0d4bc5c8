import { z } from 'zod';
import { bool, durationAtLeast } from '../config/types.js';

/**
 * TLS termination on a bind (docs/tls.md). Today the key sits on a `listen` section next to its
 * `bind`; with frontends it is the same object on each frontend bind (export: `tlsSchema`).
 *
 * Defaults are Mozilla's "intermediate" profile (ssl-config.mozilla.org, guidelines 5.7): TLS 1.2
 * and 1.3, ECDHE with AEAD ciphers only, curves X25519, P-256, P-384, no server cipher preference.
 * The DHE-RSA suites of that profile are left out: they need a dhparam file and no client that
 * supports TLS 1.2 lacks ECDHE.
 */

/** Mozilla intermediate, TLS 1.2 cipher list (OpenSSL names). */
export const INTERMEDIATE_CIPHERS = [
  'ECDHE-ECDSA-AES128-GCM-SHA256', 'ECDHE-RSA-AES128-GCM-SHA256',
  'ECDHE-ECDSA-AES256-GCM-SHA384', 'ECDHE-RSA-AES256-GCM-SHA384',
  'ECDHE-ECDSA-CHACHA20-POLY1305', 'ECDHE-RSA-CHACHA20-POLY1305',
].join(':');
/** Mozilla intermediate, TLS 1.3 suites (the OpenSSL default set). */
export const INTERMEDIATE_SUITES = 'TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256';
export const INTERMEDIATE_CURVES = 'X25519:prime256v1:secp384r1';

/** One certificate given as files: a PEM bundle, or the certificate (+ chain) and its key apart. */
export const certFileSchema = z.union([
  z.string().min(1),
  z.object({
    /** PEM file: the certificate, then its chain (leaf first). It may hold the key too. */
    cert: z.string().min(1),
    /** PEM file with the private key, when it is not in `cert`. */
    key: z.string().min(1).optional(),
  }).strict(),
]);

const token = (what: string) => z.string().regex(/^[A-Za-z0-9_:+\-.@!=]+$/, `expected an OpenSSL ${what} list separated by ':'`);

export const tlsSchema = z.object({
  /**
   * Certificate files: each entry a PEM bundle (certificate, chain, private key in one file) or
   * `{cert, key}`. Several certificates may serve the same name (RSA and ECDSA: the client's
   * signature algorithms pick one, as HAProxy does).
   */
  certificates: z.array(certFileSchema).default([]),
  /**
   * A directory of PEM bundles (`*.pem`, one certificate + chain + key per file; other files and
   * names starting with a dot are ignored), e.g. where ACME writes. Read at start and on reload;
   * changes on disk are picked up (see `watch`).
   */
  directory: z.string().min(1).optional(),
  /**
   * The certificate for clients without SNI or with a name no certificate serves: the one(s)
   * serving this name. Default: the first certificate of `certificates`, else of `directory`.
   */
  default_name: z.string().regex(/^(\*\.)?[A-Za-z0-9.-]+$/, 'expected a DNS name').optional(),
  /** Lowest protocol version accepted. */
  min_version: z.enum(['TLSv1.2', 'TLSv1.3']).default('TLSv1.2'),
  /** TLS 1.2 cipher list (OpenSSL syntax). */
  ciphers: token('cipher').default(INTERMEDIATE_CIPHERS),
  /** TLS 1.3 cipher suites (OpenSSL syntax). */
  ciphersuites: token('ciphersuite').default(INTERMEDIATE_SUITES),
  /** Key exchange groups (ECDHE curves), in preference order. */
  curves: token('curve').default(INTERMEDIATE_CURVES),
  /** Prefer the server's cipher order over the client's (Mozilla intermediate: off). */
  prefer_server_ciphers: bool.default(false),
  /** ALPN protocols offered, in preference order (only `http/1.1` is served today). */
  alpn: z.array(z.literal('http/1.1')).min(1).default(['http/1.1']),
  /**
   * Max time from TCP accept to a finished handshake; a connection still handshaking then is
   * closed and counted (reason `timeout`).
   */
  handshake_timeout: durationAtLeast(100).default('10s'),
  /** Reload the certificates when a file or the directory changes on disk (SIGHUP always reloads). */
  watch: bool.default(true),
}).strict().superRefine((t, ctx) => {
  if (t.certificates.length === 0 && t.directory === undefined) {
    ctx.addIssue({ code: z.ZodIssueCode.custom, path: ['certificates'], message: 'a tls bind needs certificates or a directory' });
  }
});

export type TlsConfig = z.output<typeof tlsSchema>;
