import type { Config } from './schema.js';
import { readKeyFile } from '../ha/advert.js';
import { interfaceProblem, interfaceState } from '../ha/vip.js';
import { readReadOnlyToken, readToken } from '../admin/module.js';
import { hypervisorKeyProblem } from '../scale/hypervisor.js';
import { checkAppendable } from '../log-sinks.js';
import { checkTls } from '../tls/check.js';

/**
 * What `start` reads besides the YAML, checked without starting: the HA key file (missing,
 * group/other-readable, too short), the admin token files, the scaler's SSH keys and, for `check`
 * only, that the VIP interface exists. Each check is the very function the module calls at start, so
 * `ExecStartPre=pairlb check` refuses what `start` would die on. Paths are config key paths; the
 * loader adds the line.
 *
 * `interfaces: false` for `start`: a missing or down VIP interface is not fatal there (the node runs
 * in FAULT and says why, and takes part once the interface appears).
 */
export interface PreflightProblem { path: (string | number)[]; message: string }

export function preflight(cfg: Config, opts: { interfaces: boolean }): PreflightProblem[] {
  const out: PreflightProblem[] = [];
  const attempt = (path: (string | number)[], fn: () => unknown): void => {
    try { fn(); } catch (e) { out.push({ path, message: stripKey((e as Error).message, path) }); }
  };
  const ha = cfg.ha;
  if (ha?.enabled) {
    attempt(['ha', 'key_file'], () => readKeyFile(ha.key_file));
    // Only a name that does not exist is a config error (eth0 in a file for a Debian 12 box with
    // ens18). A link that is down is a runtime state: refusing it here would make ExecStartPre
    // keep pairlb from starting at all while a cable is out, and systemd gives up after
    // StartLimitBurst; `start` runs in FAULT with the reason and joins when the link comes up.
    if (opts.interfaces && interfaceState(ha.vip.interface) === 'missing') {
      out.push({ path: ['ha', 'vip', 'interface'], message: interfaceProblem(ha.vip.interface)! });
    }
  }
  cfg.listen.forEach((l, li) => {
    const pt = l.passthrough;
    if (!pt) return;
    const names = new Set(l.backends.map((b) => b.name));
    pt.routes.forEach((r, i) => r.servers.forEach((n, j) => {
      if (!names.has(n)) out.push({ path: ['listen', li, 'passthrough', 'routes', i, 'servers', j], message: `no server ${JSON.stringify(n)} in this listen's backends` });
    }));
    (pt.default ?? []).forEach((n, j) => {
      if (!names.has(n)) out.push({ path: ['listen', li, 'passthrough', 'default', j], message: `no server ${JSON.stringify(n)} in this listen's backends` });
    });
  });
  const a = cfg.admin;
  if (a?.bind) {
    attempt(['admin', a.token ? 'token' : 'token_file'], () => readToken(a));
    if (a.read_only_token || a.read_only_token_file) attempt(['admin', a.read_only_token ? 'read_only_token' : 'read_only_token_file'], () => readReadOnlyToken(a));
  }
  const file = cfg.global.log.access_file;
  if (file !== undefined && cfg.global.log.access !== 'off') {
    const p = checkAppendable(file);
    if (p) out.push({ path: ['global', 'log', 'access_file'], message: p });
  }
  const s = cfg.scale;
  if (s?.enabled) {
    s.hypervisors.forEach((h, i) => {
      const p = hypervisorKeyProblem(h.key_file);
      if (p) out.push({ path: ['scale', 'hypervisors', i, 'key_file'], message: p });
    });
  }
  // Certificates: unreadable, key not matching, chain out of order, settings OpenSSL refuses.
  out.push(...checkTls(cfg).errors);
  return out;
}

/** `ha.key_file /x: …` under the path `ha.key_file` reads `ha.key_file: /x: …`, not the key twice. */
function stripKey(msg: string, path: (string | number)[]): string {
  const k = path.join('.') + ' ';
  return msg.startsWith(k) ? msg.slice(k.length) : msg;
}
