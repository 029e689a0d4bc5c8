import { spawn, type ChildProcess } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { mkdtempSync, renameSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { ensurePackages } from './sys.js';

/**
 * A private net-snmp snmpd (shared/testbed.md) whose laLoad the test sets: v2c community and a v3
 * authPriv SHA/AES user, served by test/fixtures/hypervisor/laload-handler.sh from a load file.
 */
export const FIXTURES = resolve(import.meta.dirname, '../fixtures/hypervisor');

export interface SnmpCreds { community: string; user: string; auth: string; priv: string }
export const DEFAULT_CREDS: SnmpCreds = { community: 'pairlb-test', user: 'pairlb', auth: 'auth-pass-123', priv: 'priv-pass-456' };

export function credsEnv(c: SnmpCreds): Record<string, string> {
  return { SNMP_COMMUNITY: c.community, SNMP_USER: c.user, SNMP_AUTH: c.auth, SNMP_PRIV: c.priv };
}

export async function freeUdpPort(): Promise<number> {
  const s = createSocket('udp4');
  await new Promise<void>((r) => s.bind(0, '127.0.0.1', () => r()));
  const p = s.address().port;
  await new Promise<void>((r) => s.close(() => r()));
  return p;
}

/** Replace the load file atomically (write + rename) so the handler never reads half a value. */
export function writeLoad(file: string, load: number | null): void {
  if (load === null) { try { unlinkSync(file); } catch { /* absent */ } return; }
  writeFileSync(file + '.tmp', load.toFixed(2) + '\n');
  renameSync(file + '.tmp', file);
}

export interface Snmpd {
  port: number;
  dir: string;
  loadFile: string;
  creds: SnmpCreds;
  /** null removes the load file: the agent then answers noSuchInstance. */
  setLoad(load: number | null): void;
  stop(): Promise<void>;
}

export async function startSnmpd(opts: { load?: number; creds?: SnmpCreds } = {}): Promise<Snmpd> {
  ensurePackages(['snmpd']);
  const creds = opts.creds ?? DEFAULT_CREDS;
  const dir = mkdtempSync(join(tmpdir(), 'pairlb-snmpd-'));
  const loadFile = join(dir, 'load');
  writeLoad(loadFile, opts.load ?? 0.5);
  const port = await freeUdpPort();
  const child: ChildProcess = spawn('/bin/sh', [join(FIXTURES, 'start-snmpd.sh'), join(dir, 'agent'), String(port), loadFile], {
    env: { ...process.env, ...credsEnv(creds) }, stdio: ['ignore', 'pipe', 'pipe'],
  });
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  let out = '';
  await new Promise<void>((res, rej) => {
    const t = setTimeout(() => rej(new Error(`snmpd did not start in 5s: ${out}`)), 5000);
    const on = (d: Buffer) => { out += d; if (out.includes('NET-SNMP version')) { clearTimeout(t); res(); } };
    child.stdout!.on('data', on);
    child.stderr!.on('data', on);
    child.once('exit', (code) => { clearTimeout(t); rej(new Error(`snmpd exited ${code}: ${out}`)); });
  });
  child.stdout!.resume();
  child.stderr!.resume();
  let stopped = false;
  return {
    port, dir, loadFile, creds,
    setLoad: (l) => writeLoad(loadFile, l),
    async stop() {
      if (stopped) return;
      stopped = true;
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      // snmpd writes persist/ on exit: remove the dir only after it has exited.
      await Promise.race([exited, new Promise((r) => setTimeout(r, 3000))]);
      if (child.exitCode === null && child.signalCode === null) { child.kill('SIGKILL'); await exited; }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
