import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { startHypervisor, type Hypervisor } from '../helpers/sshd.js';
import { startBackend, type TestBackend } from '../helpers/backend.js';
import { HypervisorClient } from '../../src/scale/hypervisor.js';
import { hypervisorSchema } from '../../src/scale/config.js';
import { execFile } from 'node:child_process';
import { MAIN, cleanup, ensureBuilt, freePort, startDaemon, tempDir, type Daemon } from '../daemon/daemon.js';

/**
 * `pairlb status` (the real CLI against the real daemon) is not OK while every backend is UP but
 * the scaler is not healthy: a VM on the hypervisor that looks like one of our clones and has no
 * record (unknown clone), then a reconcile that fails because the hypervisor is gone, with its
 * alarm. The verdict table itself is unit-tested in test/ops/unit.test.ts.
 */

describe('pairlb status folds the scaler health into the Nagios verdict', () => {
  let hv: Hypervisor;
  let hvStopped = false;
  let be: TestBackend;
  let d: Daemon;
  let dir: string;
  const sock = () => join(dir, 'admin.sock');
  /** Not spawnSync: the backend lives in this process and must keep answering its checks. */
  const status = () => new Promise<{ code: number | null; stdout: string }>((ok) => {
    execFile(process.execPath, [MAIN, 'status', '--socket', sock()], { timeout: 20_000, encoding: 'utf8' }, (err, stdout) => {
      ok({ code: err ? (typeof err.code === 'number' ? err.code : null) : 0, stdout });
    });
  });

  beforeAll(async () => {
    ensureBuilt();
    dir = tempDir('scale-status');
    [hv, be] = await Promise.all([startHypervisor('hvs'), startBackend('vds-01')]);
    // A VM named like our clones, made before pairlb knows it: unknown at the first reconcile.
    const client = new HypervisorClient(hypervisorSchema.parse({ name: 'hv1', host: '127.0.0.1', port: hv.port, key_file: hv.keyFile, host_key: hv.hostKey }), 3000);
    const r = await client.clone('clone {source} {name}', 'vds-01', 'vds-01-clone-abc123', 10_000);
    expect(r.ok).toBe(true);
    const snmpPort = await freePort();
    d = await startDaemon(dir, `
global:
  node: lb-s
listen:
  - name: web
    bind: 127.0.0.1:${await freePort()}
    check: { type: http, path: /, interval: 100ms, timeout: 500ms, rise: 1, fall: 2 }
    backends:
      - name: vds-01
        address: ${be.address}
admin:
  socket: ${sock()}
scale:
  snmp: { version: "2c", community: public, port: ${snmpPort}, interval: 1s, timeout: 200ms, retries: 0 }
  vds:
    - name: vds-01
      listen: web
  hypervisors:
    - name: hv1
      host: 127.0.0.1
      port: ${hv.port}
      key_file: ${hv.keyFile}
      host_key: "${hv.hostKey}"
  timeouts: { connect: 1s, list: 3s }
  unknown_clones: report
  reconcile_interval: 1s
  retry_interval: 1s
`);
  });
  afterAll(async () => {
    await d?.kill();
    // The test stops the hypervisor itself (its dir is gone then); after a failure it may not have.
    if (!hvStopped) { hv?.destroyAll(); await hv?.stop(); }
    await be?.close();
    cleanup(dir);
  });

  it('WARNING for an unknown clone, then for the failed reconcile and its alarm; the backends stay UP', async () => {
    let r = await status();
    // The backend is UP once its first check passes; the unknown clone is found by the first reconcile.
    await expect.poll(async () => { r = await status(); return r.stdout.includes('web: 1/1 up') && r.stdout.includes('unknown clone'); }, { timeout: 15_000, interval: 200 }).toBe(true);
    expect(r.code, r.stdout).toBe(1);
    expect(r.stdout).toMatch(/^PAIRLB WARNING - web: 1\/1 up; role standalone; scale: /);
    expect(r.stdout).toContain('scale: 1 unknown clone(s) not in the pool (hv1/vds-01-clone-abc123; unknown_clones: report)');
    expect(r.stdout).toContain('latest PAIRLB_UNKNOWN_CLONE: clone vds-01-clone-abc123 on hv1 is not known to the scaler');

    hv.destroyAll();
    await hv.stop();
    hvStopped = true;
    await expect.poll(async () => { r = await status(); return r.stdout; }, { timeout: 15_000, interval: 200 }).toContain('last reconcile failed');
    expect(r.code, r.stdout).toBe(1);
    expect(r.stdout).toContain('web: 1/1 up');
    expect(r.stdout, r.stdout).toMatch(/scale: \d+ alarm\(s\) in the last 15 min, latest PAIRLB_(HV_UNREACHABLE|LIST_FAILED): list on hv1 failed/);
    expect(r.stdout).not.toContain('\n' + 'x');
    expect(r.stdout.trim().split('\n')).toHaveLength(1);
  });
});
