import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { Client as SshClient } from 'ssh2';
import { lazy } from '../lazy.js';

const ssh2 = lazy<{ Client: typeof SshClient; utils: { parseKey(data: Buffer): unknown } }>('ssh2');

/** The private key of a hypervisor login; throws with the file named. */
export function readHypervisorKey(file: string): Buffer {
  try { return readFileSync(file); } catch (e) {
    throw new Error(`cannot read key_file ${file}: ${(e as Error).message}`);
  }
}

/**
 * What `pairlb check` says about a hypervisor key: unreadable, or not a private key ssh2 can use
 * (a passphrase-protected key cannot be used either: the scaler has no passphrase).
 */
export function hypervisorKeyProblem(file: string): string | undefined {
  let key: Buffer;
  try { key = readHypervisorKey(file); } catch (e) { return (e as Error).message; }
  const parsed = ssh2().utils.parseKey(key);
  if (parsed instanceof Error) return `key_file ${file}: not a usable private key (${parsed.message})`;
  return undefined;
}
import type { HypervisorConfig } from './config.js';
import { parseHostPort } from '../config/types.js';

/**
 * Runs the configured clone / destroy / list commands on one hypervisor over SSH (ssh2), one
 * connection per command. Thin shell: every outcome is a value, never a throw.
 *
 * Security: key authentication only, and the host key must match the pinned SHA256 fingerprint
 * (ssh2 without hostVerifier accepts any key). A mismatch refuses the connection before
 * authentication, so the balancer's key is never offered to an impostor.
 *
 * Contract of the commands (docs/scaling.md):
 *   clone {source} {name}  exit 0 and print, as the last non-empty stdout line, one JSON object
 *                          {"name": "<name>", "address": "host:port"[, "snmp": "host[:port]"]};
 *                          earlier lines (progress) are ignored but logged.
 *   destroy {name}         exit 0 when the VM is gone.
 *   list                   exit 0; one line per VM: a JSON object {"name", "address"?, "snmp"?} or a bare name.
 *                          A VM whose clone is still running may be listed without an address, or not at all.
 * A non-zero exit, a signal, a timeout or unparsable output is a failure, logged with stderr.
 */

export type FailureKind = 'config' | 'connect' | 'hostkey' | 'auth' | 'timeout' | 'exit' | 'signal' | 'output';

export interface ExecResult {
  ok: boolean;
  /** Set when !ok. 'connect' | 'hostkey' | 'auth' | 'config' mean the command never ran. */
  kind?: FailureKind;
  reason?: string;
  code?: number | null;
  signal?: string;
  stdout: string;
  stderr: string;
  ms: number;
}

export interface ListedVm { name: string; address?: string; snmp?: string }
export interface CloneOutput { name: string; address: string; snmp?: string }

/** 'SHA256:' + unpadded base64 of sha256(host key blob): what `ssh-keygen -lf` prints. */
export function fingerprint(key: Buffer): string {
  return 'SHA256:' + createHash('sha256').update(key).digest('base64').replace(/=+$/, '');
}

const normFp = (s: string) => s.trim().replace(/=+$/, '');

/** Fill a command template; values are names already restricted to [A-Za-z0-9._-] by the schema. */
export function renderCommand(template: string, vars: Record<string, string>): string {
  return template.replace(/\{(\w+)\}/g, (m, k: string) => {
    const v = vars[k];
    if (v === undefined) return m;
    if (!/^[A-Za-z0-9][A-Za-z0-9._-]*$/.test(v)) throw new Error(`unsafe value for {${k}}: ${JSON.stringify(v)}`);
    return v;
  });
}

/** Parse the clone command's output; undefined if it does not honour the contract. */
export function parseCloneOutput(stdout: string, expectName: string): CloneOutput | { error: string } {
  const lines = stdout.split('\n').map((l) => l.trim()).filter(Boolean);
  const last = lines[lines.length - 1];
  if (!last) return { error: 'no output (expected one JSON line {"name", "address"})' };
  let o: unknown;
  try { o = JSON.parse(last); } catch { return { error: `last line is not JSON: ${JSON.stringify(last.slice(0, 120))}` }; }
  if (!o || typeof o !== 'object') return { error: 'last line is not a JSON object' };
  const r = o as Record<string, unknown>;
  if (r.name !== expectName) return { error: `name ${JSON.stringify(r.name)} differs from the requested ${JSON.stringify(expectName)}` };
  if (typeof r.address !== 'string' || !parseHostPort(r.address)) return { error: `address ${JSON.stringify(r.address)} is not host:port` };
  if (r.snmp !== undefined && typeof r.snmp !== 'string') return { error: 'snmp must be a string host[:port]' };
  return { name: r.name, address: r.address, snmp: r.snmp as string | undefined };
}

export function parseList(stdout: string): ListedVm[] {
  const out: ListedVm[] = [];
  for (const raw of stdout.split('\n')) {
    const l = raw.trim();
    if (!l) continue;
    if (l.startsWith('{')) {
      try {
        const o = JSON.parse(l) as Record<string, unknown>;
        if (typeof o.name === 'string') {
          out.push({ name: o.name, address: typeof o.address === 'string' ? o.address : undefined, snmp: typeof o.snmp === 'string' ? o.snmp : undefined });
          continue;
        }
      } catch { /* fall through: treat as a name */ }
    }
    if (/^[A-Za-z0-9][A-Za-z0-9._-]*$/.test(l)) out.push({ name: l });
  }
  return out;
}

export class HypervisorClient {
  constructor(readonly cfg: HypervisorConfig, private readonly connectTimeout: number) {}

  get name(): string { return this.cfg.name; }

  /** Run one command; resolves with its outcome, never rejects. */
  exec(command: string, timeoutMs: number): Promise<ExecResult> {
    const t0 = Date.now();
    const cfg = this.cfg;
    let privateKey: Buffer;
    try { privateKey = readHypervisorKey(cfg.key_file); } catch (e) {
      return Promise.resolve({ ok: false, kind: 'config', reason: (e as Error).message, stdout: '', stderr: '', ms: 0 });
    }
    const pin = normFp(cfg.host_key);
    return new Promise<ExecResult>((resolve) => {
      const c = new (ssh2().Client)();
      let stdout = '';
      let stderr = '';
      let done = false;
      let ready = false;
      let seenKey: string | undefined;
      let cmdTimer: NodeJS.Timeout | undefined;
      const finish = (r: Omit<ExecResult, 'stdout' | 'stderr' | 'ms'>) => {
        if (done) return;
        done = true;
        clearTimeout(connTimer);
        clearTimeout(cmdTimer);
        c.removeAllListeners('ready');
        c.on('error', () => { /* late errors after the verdict */ });
        c.end();
        // end() waits for the peer; a hung command must not keep the socket open.
        setTimeout(() => c.destroy(), 200).unref();
        resolve({ ...r, stdout, stderr, ms: Date.now() - t0 });
      };
      // ssh2's readyTimeout covers the handshake; this also covers a TCP connect that hangs.
      const connTimer = setTimeout(() => finish({ ok: false, kind: 'timeout', reason: `connect timeout after ${this.connectTimeout} ms` }), this.connectTimeout + 100);
      c.on('error', (err: Error & { level?: string; code?: string }) => {
        if (seenKey !== undefined && seenKey !== pin) {
          finish({ ok: false, kind: 'hostkey', reason: `host key mismatch: got ${seenKey}, pinned ${pin}` });
        } else if (err.level === 'client-authentication') {
          finish({ ok: false, kind: 'auth', reason: `authentication refused: ${err.message}` });
        } else if (!ready) {
          finish({ ok: false, kind: /timed out/i.test(err.message) ? 'timeout' : 'connect', reason: `${err.code ?? 'connect'}: ${err.message}` });
        } else {
          finish({ ok: false, kind: 'exit', reason: `ssh: ${err.message}` });
        }
      });
      c.on('ready', () => {
        ready = true;
        clearTimeout(connTimer);
        cmdTimer = setTimeout(() => finish({ ok: false, kind: 'timeout', reason: `command timeout after ${timeoutMs} ms` }), timeoutMs);
        c.exec(command, (err, stream) => {
          if (err) { finish({ ok: false, kind: 'exit', reason: `exec: ${err.message}` }); return; }
          stream.on('data', (d: Buffer) => { if (stdout.length < 1 << 20) stdout += d.toString('utf8'); });
          stream.stderr.on('data', (d: Buffer) => { if (stderr.length < 1 << 16) stderr += d.toString('utf8'); });
          stream.on('close', (code: number | null, signal?: string) => {
            if (signal) finish({ ok: false, kind: 'signal', reason: `killed by ${signal}`, code, signal });
            else if (code !== 0) finish({ ok: false, kind: 'exit', reason: `exit status ${code}`, code });
            else finish({ ok: true, code });
          });
        });
      });
      try {
        c.connect({
          host: cfg.host, port: cfg.port, username: cfg.user, privateKey,
          readyTimeout: this.connectTimeout,
          // No pin, no connection: the schema requires host_key; compare the key blob's SHA256.
          hostVerifier: (key: Buffer) => { seenKey = fingerprint(key); return seenKey === pin; },
          keepaliveInterval: 0,
        });
      } catch (e) {
        finish({ ok: false, kind: 'config', reason: `ssh: ${(e as Error).message}` });
      }
    });
  }

  async clone(template: string, source: string, name: string, timeoutMs: number): Promise<{ ok: true; out: CloneOutput; res: ExecResult } | { ok: false; res: ExecResult; started: boolean }> {
    const res = await this.exec(renderCommand(template, { source, name }), timeoutMs);
    const started = !['config', 'connect', 'hostkey', 'auth'].includes(res.kind ?? '') && !(res.kind === 'timeout' && res.reason?.startsWith('connect'));
    if (!res.ok) return { ok: false, res, started };
    const p = parseCloneOutput(res.stdout, name);
    if ('error' in p) return { ok: false, res: { ...res, ok: false, kind: 'output', reason: `unparsable clone output: ${p.error}` }, started: true };
    return { ok: true, out: p, res };
  }

  destroy(template: string, name: string, timeoutMs: number): Promise<ExecResult> {
    return this.exec(renderCommand(template, { name }), timeoutMs);
  }

  async list(template: string, timeoutMs: number): Promise<{ ok: true; vms: ListedVm[]; res: ExecResult } | { ok: false; res: ExecResult }> {
    const res = await this.exec(renderCommand(template, {}), timeoutMs);
    if (!res.ok) return { ok: false, res };
    return { ok: true, vms: parseList(res.stdout), res };
  }
}
