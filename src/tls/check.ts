import { resolve } from 'node:path';
import type { Config } from '../config/schema.js';
import type { TlsConfig } from './config.js';
import { CertStore, loadCertificates } from './store.js';
import type { CertError, LoadedCert } from './pem.js';

/**
 * What `pairlb check` (and `start`, before binding) says about the TLS binds of a config:
 * errors — an unreadable file, a key that does not match its certificate, a chain out of order,
 * settings OpenSSL refuses — and warnings — a certificate expiring within 30 days (or expired), a
 * host name the config routes that no certificate serves. Paths are config key paths.
 */
export interface TlsProblem { path: (string | number)[]; message: string }

export const EXPIRY_WARN_DAYS = 30;
const DAY = 86_400_000;

/** Every TLS bind of the config (listen sections and frontends): its key path and settings. */
export function tlsBinds(cfg: Config): { path: (string | number)[]; name: string; tls: TlsConfig }[] {
  const out: { path: (string | number)[]; name: string; tls: TlsConfig }[] = [];
  cfg.listen.forEach((l, i) => { if (l.tls) out.push({ path: ['listen', i, 'tls'], name: l.name, tls: l.tls }); });
  cfg.frontends.forEach((f, i) => { if (f.tls) out.push({ path: ['frontends', i, 'tls'], name: f.name, tls: f.tls }); });
  return out;
}

/**
 * Host names a TLS frontend's rules route (`when.host`, except rules that only match plain
 * connections, `tls: false`): each should be served by a certificate. `*.x` needs a `*.x`
 * certificate.
 */
export function routedHosts(cfg: Config, bind: string): { path: (string | number)[]; host: string }[] {
  const out: { path: (string | number)[]; host: string }[] = [];
  cfg.frontends.forEach((f, i) => {
    if (f.name !== bind) return;
    f.rules.forEach((r, j) => {
      const w = r.when;
      if (!w?.host || w.tls === false) return;
      for (const h of w.host) if (!h.startsWith('[')) out.push({ path: ['frontends', i, 'rules', j, 'when', 'host'], host: h.replace(/\.$/, '') });
    });
  });
  return out;
}

function pathOf(base: (string | number)[], t: TlsConfig, e: CertError): (string | number)[] {
  const src = e.source.split(' + ')[0];
  const i = t.certificates.findIndex((c) => resolve(typeof c === 'string' ? c : c.cert) === resolve(src) || (typeof c !== 'string' && c.key !== undefined && resolve(c.key) === resolve(src)));
  if (i >= 0) return [...base, 'certificates', i];
  return [...base, t.directory !== undefined ? 'directory' : 'certificates'];
}

/** Errors (start refuses them too) and warnings, with the certificates loaded (for warnings). */
export function checkTls(cfg: Config, now = Date.now()): { errors: TlsProblem[]; warnings: TlsProblem[] } {
  const errors: TlsProblem[] = [];
  const warnings: TlsProblem[] = [];
  for (const b of tlsBinds(cfg)) {
    const r = loadCertificates(b.tls);
    // A section with `acme:` names gets its certificate at start (a placeholder, then the CA's:
    // src/acme/placeholder.ts): before the first start its directory may be missing or empty.
    const acmeFed = b.tls.directory !== undefined && [...cfg.listen, ...cfg.frontends].some((l) => l.name === b.name && l.acme !== undefined);
    const errs = acmeFed ? r.errors.filter((e) => !/cannot read the directory: ENOENT/.test(e.message)) : r.errors;
    for (const e of errs) errors.push({ path: pathOf(b.path, b.tls, e), message: e.message });
    if (errs.length || (acmeFed && r.certs.length === 0)) continue;
    let store: CertStore;
    try { store = new CertStore(b.tls, r.certs, now); } catch (e) {
      errors.push({ path: settingPath(b.path, e as Error), message: (e as Error).message });
      continue;
    }
    if (r.certs.length === 0) warnings.push({ path: [...b.path, 'directory'], message: `${b.tls.directory} holds no certificate yet: TLS handshakes on ${b.name} fail until a bundle is written there (ACME does at its first order)` });
    for (const c of r.certs) {
      const w = expiryWarning(c, now);
      if (w) warnings.push({ path: pathOfCert(b.path, b.tls, c), message: w });
    }
    // The section's own ACME names are served once ordered (a placeholder until then): not a gap.
    const acme = new Set([...cfg.listen, ...cfg.frontends].find((l) => l.name === b.name)?.acme?.map((n) => n.toLowerCase()) ?? []);
    for (const h of routedHosts(cfg, b.name)) {
      // A prefix pattern (`www.*`) names no host a certificate could be checked against.
      if (acme.has(h.host.toLowerCase()) || h.host.endsWith('.*')) continue;
      const served = h.host.startsWith('*.') ? store.wildcardParents.has(h.host.slice(2).toLowerCase()) : store.serves(h.host);
      if (!served) warnings.push({ path: h.path, message: `no certificate of ${b.name} serves ${h.host}: clients get the default certificate (${store.info[0]?.names[0] ?? '?'}) and a name mismatch` });
    }
  }
  return { errors, warnings };
}

function pathOfCert(base: (string | number)[], t: TlsConfig, c: LoadedCert): (string | number)[] {
  return pathOf(base, t, { source: c.source } as CertError);
}

/** OpenSSL's refusal of a setting, at the key that holds it. */
function settingPath(base: (string | number)[], e: Error): (string | number)[] {
  const m = e.message.toLowerCase();
  if (m.includes('cipher')) return [...base, 'ciphers'];
  if (m.includes('curve') || m.includes('group')) return [...base, 'curves'];
  if (m.includes('default_name') || m.includes('no certificate serves')) return [...base, 'default_name'];
  return base;
}

export function expiryWarning(c: LoadedCert, now: number): string | undefined {
  const days = (c.notAfter - now) / DAY;
  const what = `certificate ${c.source} (${c.names.slice(0, 3).join(', ')}${c.names.length > 3 ? ', …' : ''})`;
  if (days <= 0) return `${what} EXPIRED on ${new Date(c.notAfter).toISOString()}`;
  if (days < EXPIRY_WARN_DAYS) return `${what} expires in ${Math.floor(days)} days (${new Date(c.notAfter).toISOString()})`;
  if (c.notBefore > now) return `${what} is not valid before ${new Date(c.notBefore).toISOString()}`;
  return undefined;
}
