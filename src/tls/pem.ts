import { X509Certificate, createPrivateKey, type KeyObject } from 'node:crypto';
import { readFileSync } from 'node:fs';

/**
 * One certificate as pairlb serves it, read from PEM (a bundle or cert + key files) and checked:
 * the key matches the leaf, every chain certificate issued the one before it (leaf first, as
 * RFC 8446 §4.4.2 and OpenSSL send it). Pure apart from reading the files.
 */
export interface LoadedCert {
  /** Where it came from (the cert file; `cert + key` when apart). */
  readonly source: string;
  /** The leaf, then the chain, PEM. */
  readonly chainPem: string;
  readonly keyPem: string;
  readonly leaf: X509Certificate;
  /** DNS names it serves, lowercase: its SAN dNSNames, else its subject CN (as HAProxy). */
  readonly names: readonly string[];
  /** 'rsa' | 'ec' | 'ed25519' …: OpenSSL picks among several per name by the client's sigalgs. */
  readonly keyType: string;
  /** Unix ms. */
  readonly notBefore: number;
  readonly notAfter: number;
  /** SHA-256 fingerprint of the leaf (stable id for stats and logs). */
  readonly fingerprint: string;
  readonly subject: string;
  readonly issuer: string;
}

export class CertError extends Error {
  constructor(readonly source: string, message: string) { super(`${source}: ${message}`); this.name = 'CertError'; }
}

const BLOCK = /-----BEGIN ([A-Z0-9 ]+)-----\r?\n[\s\S]*?\r?\n-----END \1-----/g;
const KEY_LABELS = new Set(['PRIVATE KEY', 'RSA PRIVATE KEY', 'EC PRIVATE KEY']);

function readText(file: string): string {
  try { return readFileSync(file, 'utf8'); } catch (e) {
    throw new CertError(file, `cannot read: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
}

/** Splits PEM text into certificates and private keys; other blocks (EC PARAMETERS) are ignored. */
export function splitPem(text: string, source: string): { certs: string[]; keys: string[] } {
  const certs: string[] = [];
  const keys: string[] = [];
  for (const m of text.matchAll(BLOCK)) {
    if (m[1] === 'CERTIFICATE') certs.push(m[0]);
    else if (KEY_LABELS.has(m[1])) keys.push(m[0]);
    else if (m[1] === 'ENCRYPTED PRIVATE KEY') throw new CertError(source, 'the private key is encrypted (pairlb cannot ask for a passphrase): store it unencrypted, mode 600');
  }
  return { certs, keys };
}

/** Reads and checks one certificate. Throws CertError with the reason. */
export function loadCert(certFile: string, keyFile?: string): LoadedCert {
  const source = keyFile ? `${certFile} + ${keyFile}` : certFile;
  const a = splitPem(readText(certFile), certFile);
  const k = keyFile ? splitPem(readText(keyFile), keyFile) : a;
  if (a.certs.length === 0) throw new CertError(certFile, 'no certificate (no -----BEGIN CERTIFICATE----- block)');
  if (k.keys.length === 0) throw new CertError(keyFile ?? certFile, 'no private key' + (keyFile ? '' : ' (a bundle holds certificate, chain and key; or give `key:` apart)'));
  if (k.keys.length > 1) throw new CertError(keyFile ?? certFile, `${k.keys.length} private keys: expected one`);
  return checkCert(source, a.certs, k.keys[0]);
}

export function checkCert(source: string, certPems: string[], keyPem: string): LoadedCert {
  let chain: X509Certificate[];
  try { chain = certPems.map((p) => new X509Certificate(p)); } catch (e) { throw new CertError(source, `unreadable certificate: ${(e as Error).message}`); }
  let key: KeyObject;
  try { key = createPrivateKey(keyPem); } catch (e) { throw new CertError(source, `unreadable private key: ${(e as Error).message}`); }
  const leaf = chain[0];
  for (let i = 0; i + 1 < chain.length; i++) {
    const c = chain[i];
    const issuer = chain[i + 1];
    if (!c.checkIssued(issuer) || !c.verify(issuer.publicKey)) {
      const found = chain.findIndex((x, j) => j !== i && c.checkIssued(x));
      throw new CertError(source, `chain out of order: certificate ${i + 1} (${oneLine(c.subject)}) is not issued by certificate ${i + 2} (${oneLine(issuer.subject)})` +
        (found >= 0 ? `; its issuer is certificate ${found + 1}` : issuer.checkIssued(c) ? '; the order is reversed' : '') + ': put the leaf first, then each issuer');
    }
  }
  // After the order check: with the leaf second, the key would match 'the wrong certificate'.
  if (!leaf.checkPrivateKey(key)) throw new CertError(source, `the private key does not match the certificate (${leaf.subject.replace(/\n/g, ', ')})`);
  return {
    source,
    chainPem: certPems.join('\n') + '\n',
    keyPem,
    leaf,
    names: certNames(leaf),
    keyType: key.asymmetricKeyType ?? 'unknown',
    notBefore: Date.parse(leaf.validFrom),
    notAfter: Date.parse(leaf.validTo),
    fingerprint: leaf.fingerprint256,
    subject: oneLine(leaf.subject),
    issuer: oneLine(leaf.issuer),
  };
}

const oneLine = (s: string): string => s.replace(/\n/g, ', ');

/** SAN dNSNames (RFC 6125 §6.4.4: CN only when there is no SAN dNSName), lowercase, deduplicated. */
export function certNames(c: X509Certificate): string[] {
  const out = new Set<string>();
  for (const part of splitSan(c.subjectAltName ?? '')) {
    if (part.startsWith('DNS:')) out.add(part.slice(4).toLowerCase());
  }
  if (out.size === 0) {
    const cn = /(?:^|\n)CN=([^\n]+)/.exec(c.subject);
    if (cn) out.add(cn[1].toLowerCase());
  }
  return [...out];
}

/** Node quotes SAN entries holding a comma (`DNS:"a,b"`); plain ones are split on ", ". */
function splitSan(s: string): string[] {
  const out: string[] = [];
  let cur = '';
  let q = false;
  for (let i = 0; i < s.length; i++) {
    const ch = s[i];
    if (ch === '"') { q = !q; continue; }
    if (!q && ch === ',' && s[i + 1] === ' ') { out.push(cur); cur = ''; i++; continue; }
    cur += ch;
  }
  if (cur) out.push(cur);
  return out;
}
