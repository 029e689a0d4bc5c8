import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';

/**
 * Tests that need system packages install them when missing (root, apt-get), or fail with the
 * exact command to run. Never skip silently.
 */
const BIN_OF: Record<string, string> = {
  iproute2: '/usr/sbin/ip',
  'iputils-arping': '/usr/bin/arping',
  tcpdump: '/usr/bin/tcpdump',
  snmpd: '/usr/sbin/snmpd',
  snmp: '/usr/bin/snmpget',
  'openssh-server': '/usr/sbin/sshd',
  'openssh-client': '/usr/bin/ssh-keygen',
  chromium: '/usr/bin/chromium',
  haproxy: '/usr/sbin/haproxy',
  'nginx-light': '/usr/sbin/nginx',
  wrk: '/usr/bin/wrk',
  keepalived: '/usr/sbin/keepalived',
  systemd: '/usr/bin/systemd-analyze',
  procps: '/usr/sbin/sysctl',
  nftables: '/usr/sbin/nft',
  'testssl.sh': '/usr/bin/testssl',
  'nghttp2-client': '/usr/bin/h2load',
  pebble: '/usr/bin/pebble',
  'python3-minimal': '/usr/bin/python3',
  goaccess: '/usr/bin/goaccess',
  curl: '/usr/bin/curl',
  rsyslog: '/usr/sbin/rsyslogd',
  debootstrap: '/usr/sbin/debootstrap',
};

let updated = false;

export function ensurePackages(pkgs: string[]): void {
  const missing = pkgs.filter((p) => !existsSync(BIN_OF[p] ?? `/nonexistent/${p}`));
  if (!missing.length) return;
  const cmd = `apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y ${missing.join(' ')}`;
  if (process.getuid?.() !== 0) throw new Error(`missing system packages: ${missing.join(' ')}; run as root: ${cmd}`);
  try {
    if (!updated) { execFileSync('apt-get', ['update', '-qq'], { stdio: 'ignore', timeout: 300_000 }); updated = true; }
    const r = spawnSync('apt-get', ['install', '-y', '-qq', ...missing], { env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' }, encoding: 'utf8', timeout: 600_000 });
    if (r.status !== 0) throw new Error(r.stderr);
  } catch (e) {
    throw new Error(`could not install ${missing.join(' ')} (${(e as Error).message.slice(0, 300)}); run: ${cmd}`);
  }
  const still = missing.filter((p) => !existsSync(BIN_OF[p]));
  if (still.length) throw new Error(`packages installed but binaries missing: ${still.join(' ')}; run: ${cmd}`);
}
