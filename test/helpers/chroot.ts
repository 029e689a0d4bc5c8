import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, renameSync, rmSync } from 'node:fs';
import { dirname } from 'node:path';
import { ensurePackages } from './sys.js';

/**
 * A throwaway Debian 12 root for install tests (a .deb installed with dpkg, never into this
 * machine's own system). Made once with debootstrap (minbase + what the package depends on) from
 * deb.debian.org and cached as a tar, so later runs unpack it in seconds instead of minutes.
 */
export const SUITE = 'bookworm';
const INCLUDE = ['systemd', 'iproute2', 'iputils-arping', 'procps', 'ca-certificates'];
/** The cache key names what is in it: change INCLUDE, get a new tarball. */
export const CACHE = `/var/cache/pairlb-test/debian-${SUITE}-minbase-${INCLUDE.join('+')}.tar`;
const MIRROR = 'http://deb.debian.org/debian';

function ensureCache(): void {
  if (existsSync(CACHE)) return;
  ensurePackages(['debootstrap']);
  const cmd = `debootstrap --variant=minbase --include=${INCLUDE.join(',')} ${SUITE} DIR ${MIRROR}`;
  const probe = spawnSync('curl', ['-sfI', '--max-time', '20', `${MIRROR}/dists/${SUITE}/Release`]);
  if (probe.status !== 0) throw new Error(`${MIRROR} is not reachable and ${CACHE} is not cached: make it once on a machine with access (${cmd}; tar -C DIR -cf ${CACHE} .)`);
  mkdirSync(dirname(CACHE), { recursive: true });
  const dir = `${CACHE}.build`;
  rmSync(dir, { recursive: true, force: true });
  const r = spawnSync('debootstrap', ['--variant=minbase', `--include=${INCLUDE.join(',')}`, SUITE, dir, MIRROR], { encoding: 'utf8', timeout: 900_000 });
  if (r.status !== 0) throw new Error(`debootstrap failed (${cmd}): ${(r.stderr || r.stdout).slice(-500)}`);
  execFileSync('tar', ['-C', dir, '-cf', `${CACHE}.tmp`, '.'], { timeout: 300_000 });
  renameSync(`${CACHE}.tmp`, CACHE);
  rmSync(dir, { recursive: true, force: true });
}

/** Unpacks a fresh Debian root into `dir` (which must not exist yet or be empty). */
export function debianRoot(dir: string): void {
  if (process.getuid?.() !== 0) throw new Error('a chroot needs root');
  ensureCache();
  mkdirSync(dir, { recursive: true });
  execFileSync('tar', ['-C', dir, '-xf', CACHE], { timeout: 300_000 });
}

/** Runs argv inside the root, in its own mount and pid namespaces with its own /proc (nothing mounted on the host). */
export function inRoot(root: string, argv: string[], opts: { user?: string; timeout?: number; input?: string } = {}): { code: number | null; stdout: string; stderr: string } {
  const r = spawnSync('unshare', chrootArgs(root, argv, opts.user), { encoding: 'utf8', timeout: opts.timeout ?? 120_000, input: opts.input, env: { PATH: '/usr/sbin:/usr/bin:/sbin:/bin', LANG: 'C' } });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** unshare arguments for a long-running command in the root (spawn them yourself). */
export function chrootArgs(root: string, argv: string[], user?: string): string[] {
  return ['--mount', '--pid', '--fork', `--mount-proc=${root}/proc`, 'chroot', ...(user ? [`--userspec=${user}`] : []), root, ...argv];
}
