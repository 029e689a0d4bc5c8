import { ensurePackages } from './sys.js';

/**
 * Installs the system packages every integration test needs, once, before the workers start
 * (parallel apt-get runs would fight over the dpkg lock).
 */
export default function setup(): void {
  ensurePackages(['iproute2', 'iputils-arping', 'tcpdump', 'snmpd', 'snmp', 'openssh-server', 'openssh-client', 'chromium', 'systemd', 'haproxy']);
}
