import { sitesOf } from '../config/sites.js';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Config } from '../config/schema.js';
import type { Logger } from '../log.js';
import { writeAtomic } from './store.js';

/**
 * Before the first order has succeeded there is nothing to serve, and a TLS bind that reads the
 * ACME directory refuses to start on an empty one (docs/tls.md). So each wanted certificate that has
 * no bundle yet gets a self-signed placeholder with its names (issuer CN below, 7 days), written
 * where the real one will go: clients see an untrusted certificate for the minutes until the CA
 * issues, instead of a balancer that does not start. The ACME module treats a placeholder as no
 * certificate and orders at once. Made with the openssl CLI (Node has no X.509 writer).
 */
export const PLACEHOLDER_CN = 'pairlb ACME placeholder';

export function certDirFor(cfg: Config, stateDir: string | undefined): string | undefined {
  if (!cfg.acme) return undefined;
  return cfg.acme.cert_dir ?? join(stateDir ?? cfg.global.state_dir, 'acme', 'certs');
}

export function writePlaceholders(cfg: Config, stateDir: string | undefined, log: Logger): void {
  const dir = certDirFor(cfg, stateDir);
  if (!dir) return;
  for (const l of sitesOf(cfg).frontends) {
    if (!l.acme) continue;
    const file = join(dir, `${l.name}.pem`);
    if (existsSync(file)) continue;
    const tmp = mkdtempSync(join(tmpdir(), 'pairlb-acme-ph-'));
    try {
      execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-days', '7',
        '-subj', `/CN=${PLACEHOLDER_CN}`, '-addext', `subjectAltName=${l.acme.map((n) => `DNS:${n}`).join(',')}`,
        '-keyout', join(tmp, 'k'), '-out', join(tmp, 'c')], { stdio: 'ignore', timeout: 10_000 });
      mkdirSync(dir, { recursive: true, mode: 0o750 });
      writeAtomic(file, readFileSync(join(tmp, 'c'), 'utf8') + readFileSync(join(tmp, 'k'), 'utf8'), 0o600);
      log.info({ mod: 'acme', file, names: l.acme }, 'acme: self-signed placeholder written until the first certificate is issued');
    } catch (e) {
      log.error({ mod: 'acme', file, err: e }, 'acme: could not make a placeholder certificate (openssl missing?)');
    } finally {
      rmSync(tmp, { recursive: true, force: true });
    }
  }
}
