// The bench's environment: required binaries, CPU pinning plan, versions, build of dist/.
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { availableParallelism, loadavg } from 'node:os';

const BINARIES = { haproxy: 'haproxy', nginx: 'nginx-light', wrk: 'wrk', taskset: 'util-linux' };

/** Absolute path of a binary on PATH (plus /usr/sbin, where Debian puts haproxy and nginx). */
export function which(bin) {
  for (const d of [...(process.env.PATH ?? '').split(':'), '/usr/sbin', '/sbin']) {
    if (d && existsSync(`${d}/${bin}`)) return `${d}/${bin}`;
  }
  return undefined;
}

/** Paths of the binaries, or an error naming the exact apt-get command that installs the missing ones. */
export function requireBinaries() {
  const found = {};
  const missing = [];
  for (const [bin, pkg] of Object.entries(BINARIES)) {
    const p = which(bin);
    if (p) found[bin] = p; else missing.push(pkg);
  }
  if (missing.length) {
    const cmd = `apt-get update && apt-get install -y ${[...new Set(missing)].join(' ')}`;
    throw new Error(`the bench needs ${missing.join(', ')} (Debian packages). Install with:\n  ${cmd}\n(as root; or sudo)`);
  }
  return found;
}

/**
 * Path of `bin`, installing Debian package `pkg` first when it is missing and we are root (the way
 * test/helpers/sys.ts does for tests); otherwise an error with the exact command.
 */
export function ensureBinary(bin, pkg) {
  const have = which(bin);
  if (have) return have;
  const cmd = `apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y ${pkg}`;
  if (process.getuid?.() !== 0) throw new Error(`the bench needs ${bin} (Debian ${pkg}); run as root: ${cmd}`);
  process.stderr.write(`installing ${pkg} for ${bin} …\n`);
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  const up = spawnSync('apt-get', ['update', '-qq'], { env, stdio: 'ignore', timeout: 300_000 });
  const r = up.status === 0 ? spawnSync('apt-get', ['install', '-y', '-qq', pkg], { env, encoding: 'utf8', timeout: 600_000 }) : up;
  const got = which(bin);
  if (!got) throw new Error(`could not install ${pkg} (${`${r.stderr ?? ''}`.slice(0, 300) || `exit ${r.status}`}); run: ${cmd}`);
  return got;
}

export function versions(bins) {
  const first = (cmd, args) => {
    const r = spawnSync(cmd, args, { encoding: 'utf8' });
    return `${r.stdout}${r.stderr}`.split('\n').find((l) => l.trim()) ?? '?';
  };
  return {
    node: process.version,
    haproxy: first(bins.haproxy, ['-v']).replace(/ - https.*$/, ''),
    nginx: first(bins.nginx, ['-v']).replace(/^nginx version: /, ''),
    wrk: first(bins.wrk, ['-v']).replace(/ \[.*$/, ''),
  };
}

/**
 * CPU plan: the proxy under test on CPU1, wrk + backends on CPU0 (bench.md). On a one-CPU machine
 * nothing is pinned and the figures say so.
 */
export function cpuPlan() {
  const n = availableParallelism();
  if (n < 2) return { proxy: undefined, client: undefined, note: `only ${n} CPU: nothing pinned, ratios are not comparable with the anchors` };
  return { proxy: 1, client: 0, note: `${n} CPUs: proxies pinned to CPU1, wrk + backends (+ this script) to CPU0` + (n > 2 ? ` (CPUs 2..${n - 1} unused)` : '') };
}

/** Soft RLIMIT_NOFILE of this process (children inherit it). */
export function nofile() {
  const m = /Max open files\s+(\d+|unlimited)/.exec(readFileSync('/proc/self/limits', 'utf8'));
  return !m || m[1] === 'unlimited' ? 1 << 20 : Number(m[1]);
}

export function loadAvg() { return loadavg().map((x) => x.toFixed(2)).join(' '); }

/** Compile src/ → dist/ so the bench never measures a stale build. Returns a warning or ''. */
export function build(root) {
  const tsc = `${root}/node_modules/typescript/bin/tsc`;
  if (!existsSync(tsc)) return 'typescript not installed (run `npm ci` at the top level); using dist/ as it is';
  try {
    execFileSync(process.execPath, [tsc, '-p', `${root}/tsconfig.json`], { cwd: root, stdio: 'pipe' });
    return '';
  } catch (e) {
    // tsc still emits on type errors (noEmitOnError is off), so dist/ is current even then.
    const out = `${e.stdout ?? ''}`.split('\n').slice(0, 5).join('\n');
    return `tsc reported errors (dist/ emitted anyway):\n${out}`;
  }
}
