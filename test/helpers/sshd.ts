import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createServer } from 'node:net';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ensurePackages } from './sys.js';
import { FIXTURES, DEFAULT_CREDS, credsEnv, writeLoad, type SnmpCreds } from './snmpd.js';

/**
 * A private OpenSSH sshd acting as a hypervisor (shared/testbed.md): own host key, the balancer's
 * key restricted by a forced command to test/fixtures/hypervisor/dispatch.sh, whose clone script
 * starts real backend processes and a real snmpd per clone.
 */

export async function freeTcpPort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', () => r()));
  const p = (s.address() as { port: number }).port;
  await new Promise<void>((r) => s.close(() => r()));
  return p;
}

/** OpenSSH fingerprint of a public key line: SHA256: + unpadded base64 of sha256(key blob). */
export function fingerprintOfPub(pubLine: string): string {
  const blob = Buffer.from(pubLine.trim().split(/\s+/)[1], 'base64');
  return 'SHA256:' + createHash('sha256').update(blob).digest('base64').replace(/=+$/, '');
}

export type CloneMode = 'ok' | 'fail' | 'garbage' | 'unhealthy' | 'hang';

export interface Hypervisor {
  name: string;
  port: number;
  dir: string;
  /** Pinned host key fingerprint (SHA256:…). */
  hostKey: string;
  /** The balancer's private key file. */
  keyFile: string;
  setMode(mode: CloneMode): void;
  /** Seconds the clone script waits after creating the VM's directory, before starting it (0 = none). */
  setCloneDelay(seconds: number): void;
  /** While held, clone.sh waits after creating the VM's directory (listed without an address). */
  holdClones(held: boolean): void;
  /** Make destroy fail (exit 3) until called with false. */
  setDestroyFail(fail: boolean): void;
  /** Load of new clones' snmpd until changed per clone. */
  setInitialLoad(load: number): void;
  setCloneLoad(name: string, load: number | null): void;
  clones(): string[];
  /** Commands received, in order (from the dispatch script's log). */
  commands(): string[];
  /** Destroy every clone with the fixture's own destroy script (test cleanup). */
  destroyAll(): void;
  stop(): Promise<void>;
}

export async function startHypervisor(name: string, opts: { creds?: SnmpCreds; keyFile?: string } = {}): Promise<Hypervisor> {
  ensurePackages(['openssh-server', 'openssh-client']);
  const dir = mkdtempSync(join(tmpdir(), `pairlb-hv-${name}-`));
  mkdirSync(join(dir, 'clones'));
  mkdirSync('/run/sshd', { recursive: true, mode: 0o755 });
  execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', join(dir, 'host_key')]);
  let keyFile = opts.keyFile;
  if (!keyFile) {
    keyFile = join(dir, 'client_key');
    execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', keyFile]);
  }
  const pub = readFileSync(keyFile + '.pub', 'utf8').trim();
  writeFileSync(join(dir, 'authorized_keys'), `restrict,command="/bin/sh ${FIXTURES}/dispatch.sh ${dir}" ${pub}\n`, { mode: 0o600 });
  const env = { NODE: process.execPath, ...credsEnv(opts.creds ?? DEFAULT_CREDS) };
  writeFileSync(join(dir, 'hv.env'), Object.entries(env).map(([k, v]) => `${k}='${v}'`).join('\n') + '\n');
  const port = await freeTcpPort();
  writeFileSync(join(dir, 'sshd_config'), [
    `Port ${port}`, 'ListenAddress 127.0.0.1', `HostKey ${join(dir, 'host_key')}`, `PidFile ${join(dir, 'sshd.pid')}`,
    `AuthorizedKeysFile ${join(dir, 'authorized_keys')}`, 'StrictModes no', 'PasswordAuthentication no',
    'KbdInteractiveAuthentication no', 'UsePAM no', 'PermitRootLogin prohibit-password', 'AllowTcpForwarding no',
    'SetEnv SHLVL=1', 'LogLevel INFO', '',
  ].join('\n'));
  const child: ChildProcess = spawn('/usr/sbin/sshd', ['-D', '-e', '-f', join(dir, 'sshd_config')], { stdio: ['ignore', 'ignore', 'pipe'] });
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  let err = '';
  await new Promise<void>((res, rej) => {
    const t = setTimeout(() => rej(new Error(`sshd did not start in 5s: ${err}`)), 5000);
    child.stderr!.on('data', (d: Buffer) => { err += d; if (err.includes(`Server listening on 127.0.0.1 port ${port}.`)) { clearTimeout(t); res(); } });
    child.once('exit', (code) => { clearTimeout(t); rej(new Error(`sshd exited ${code}: ${err}`)); });
  });
  const hostKey = fingerprintOfPub(readFileSync(join(dir, 'host_key.pub'), 'utf8'));
  const clones = () => readdirSync(join(dir, 'clones')).sort();
  const destroyAll = () => {
    rmSync(join(dir, 'destroy-fail'), { force: true });
    for (const c of clones()) {
      try { execFileSync('/bin/sh', [join(FIXTURES, 'destroy.sh'), dir, c], { stdio: 'ignore', timeout: 10_000 }); } catch { /* reported by the test */ }
    }
  };
  let stopped = false;
  return {
    name, port, dir, hostKey, keyFile,
    setMode: (m) => writeFileSync(join(dir, 'mode'), m + '\n'),
    setCloneDelay: (sec) => { if (sec > 0) writeFileSync(join(dir, 'clone-delay'), String(sec) + '\n'); else rmSync(join(dir, 'clone-delay'), { force: true }); },
    holdClones: (held) => { if (held) writeFileSync(join(dir, 'clone-gate'), '1\n'); else rmSync(join(dir, 'clone-gate'), { force: true }); },
    setDestroyFail: (f) => { if (f) writeFileSync(join(dir, 'destroy-fail'), '1\n'); else rmSync(join(dir, 'destroy-fail'), { force: true }); },
    setInitialLoad: (l) => writeFileSync(join(dir, 'initial-load'), l.toFixed(2) + '\n'),
    setCloneLoad: (n, l) => writeLoad(join(dir, 'clones', n, 'load'), l),
    clones,
    commands: () => existsSync(join(dir, 'commands.log'))
      ? readFileSync(join(dir, 'commands.log'), 'utf8').split('\n').filter(Boolean).map((l) => l.replace(/^\S+ /, ''))
      : [],
    destroyAll,
    async stop() {
      if (stopped) return;
      stopped = true;
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      await Promise.race([exited, new Promise((r) => setTimeout(r, 3000))]);
      // Never leave a clone's processes behind.
      destroyAll();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
