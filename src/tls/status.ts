import type { App } from '../app.js';
import type { TlsStatus } from './terminator.js';

/**
 * The TLS state of every bind, for the stats page, /metrics, /stats.json and `pairlb status`
 * (one home: they all read this), and the expiry verdict of `status` (Nagios WARNING within 14
 * days, CRITICAL within 3 days or expired).
 */
export function tlsStatuses(app: App): TlsStatus[] {
  const out: TlsStatus[] = [];
  for (const l of app.proxy.listeners.values()) if (l.tls) out.push(l.tls.status());
  return out;
}

export const STATUS_WARN_DAYS = 14;
export const STATUS_CRIT_DAYS = 3;
const DAY = 86_400_000;

export interface CertSummary { listen: string; names: string[]; source: string; notAfter: number; daysLeft: number; inUse: boolean }

/** Certificates in use, soonest expiry first. */
export function certSummaries(ts: readonly TlsStatus[], now = Date.now()): CertSummary[] {
  const out: CertSummary[] = [];
  for (const t of ts) for (const c of t.certificates) {
    out.push({ listen: t.listen, names: [...c.names], source: c.source, notAfter: c.notAfter, daysLeft: (c.notAfter - now) / DAY, inUse: c.inUse });
  }
  return out.sort((a, b) => a.notAfter - b.notAfter);
}

/**
 * 0 OK, 1 WARNING, 2 CRITICAL for the certificates that serve (a certificate replaced by a newer
 * one for all its names does not alarm), and the text for the status line. Bundles left out of a
 * directory (unreadable) are a WARNING.
 */
export function certVerdict(ts: readonly TlsStatus[], now = Date.now()): { code: 0 | 1 | 2; text: string | undefined } {
  let code: 0 | 1 | 2 = 0;
  const notes: string[] = [];
  for (const c of certSummaries(ts, now)) {
    if (!c.inUse) continue;
    const d = c.daysLeft;
    if (d < STATUS_WARN_DAYS) {
      const n = c.names[0] ?? c.source;
      notes.push(d <= 0 ? `certificate ${n} EXPIRED` : `certificate ${n} expires in ${d < 1 ? `${Math.max(1, Math.round(d * 24))}h` : `${Math.floor(d)}d`}`);
      const cc = d < STATUS_CRIT_DAYS ? 2 : 1;
      if (cc > code) code = cc;
    }
  }
  const bad = ts.reduce((n, t) => n + t.errors.length, 0);
  if (bad) { notes.push(`${bad} certificate file(s) left out (unreadable)`); if (code < 1) code = 1; }
  return { code, text: notes.length ? notes.slice(0, 4).join(', ') + (notes.length > 4 ? ` +${notes.length - 4}` : '') : undefined };
}
