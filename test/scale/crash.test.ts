import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { startHypervisor, type Hypervisor } from '../helpers/sshd.js';
import { startSnmpd, type Snmpd } from '../helpers/snmpd.js';
import { startBackend, type TestBackend } from '../helpers/backend.js';
import { ensureBuilt, freePort, startDaemon, tempDir, cleanup, type Daemon } from '../daemon/daemon.js';
import type { CloneRecord } from '../../src/scale/scaler.js';
import { hit, until, yamlFor } from './harness.js';

/**
 * The real daemon (`pairlb start -c FILE`) is killed with SIGKILL while the hypervisor is still
 * cloning. The clone finishes on the hypervisor anyway; the record written before the command
 * lets the restarted daemon find it with `list`, join it through the health check, and later
 * destroy it: nothing leaked, nothing cloned twice.
 */

let agent: Snmpd;
let hv: Hypervisor;
let vds: TestBackend;
let dir: string;
let dir2: string;
const daemons: Daemon[] = [];

beforeAll(async () => {
  ensureBuilt();
  [agent, hv, vds] = await Promise.all([startSnmpd({ load: 1.0 }), startHypervisor('hv1'), startBackend('vds-01')]);
  hv.setInitialLoad(1.5);
  dir = tempDir('scale-crash');
  dir2 = tempDir('scale-crash-held');
});
afterAll(async () => {
  for (const d of daemons) await d.kill();
  await vds?.close();
  await hv?.stop();
  await agent?.stop();
  hv?.holdClones(false);
  if (dir) cleanup(dir);
  if (dir2) cleanup(dir2);
});

const records = (base = dir): CloneRecord[] => {
  const f = join(base, 'state', 'runtime.json');
  if (!existsSync(f)) return [];
  try { return JSON.parse(readFileSync(f, 'utf8')).sections.scale?.clones ?? []; } catch { return []; }
};

describe('crash between steps (real daemon, SIGKILL)', () => {
  it('a clone made while the balancer was dead is found, joined, and later destroyed', async () => {
    const port = await freePort();
    const yaml = yamlFor({ agent, hypervisors: [{ name: 'hv1', hv }], bind: `127.0.0.1:${port}` }, vds.address);
    hv.setCloneDelay(1.5);
    let d = await startDaemon(dir, yaml);
    daemons.push(d);
    agent.setLoad(2.5);
    // The record is on disk before the clone command runs.
    const rec = await until('creating record on disk', () => records().find((r) => r.state === 'creating'), 15_000);
    await until('clone command received', () => hv.commands().includes(`clone vds-01 ${rec.name}`), 10_000);
    await d.kill(); // SIGKILL: no chance to clean up
    agent.setLoad(1.5);
    // The hypervisor finishes the copy on its own.
    await until('VM exists on the hypervisor', () => existsSync(join(hv.dir, 'clones', rec.name, 'address')), 10_000);
    hv.setCloneDelay(0);

    d = await startDaemon(dir, yaml);
    daemons.push(d);
    await d.waitLog((l) => typeof l.msg === 'string' && l.msg.startsWith(`clone ${rec.name} is UP`), 15_000);
    await until('clone serves through the restarted balancer', async () => (await hit(`http://127.0.0.1:${port}`)).body === rec.name, 10_000, 5);
    expect(hv.clones()).toEqual([rec.name]);
    expect(hv.commands().filter((c) => c.startsWith('clone'))).toEqual([`clone vds-01 ${rec.name}`]);
    await until('active on disk', () => records().find((r) => r.name === rec.name && r.state === 'active'), 5000);

    hv.setCloneLoad(rec.name, 0.4);
    await until('destroyed', () => hv.clones().length === 0 && records().length === 0, 15_000);
    d.signal('SIGTERM');
    expect((await d.exited).code).toBe(0);
  });

  it('killed while the clone command still runs: the restart keeps the creating record, clones nothing more, and joins the VM once the command finishes (adopt and max_clones_per_vds: 1: joined once)', async () => {
    const port = await freePort();
    const yaml = yamlFor({ agent, hypervisors: [{ name: 'hv1', hv }], bind: `127.0.0.1:${port}`, scaleExtra: '  retry_interval: 300ms\n  unknown_clones: adopt' }, vds.address);
    hv.holdClones(true); // clone.sh creates the VM's directory, then waits until released
    const cmds0 = hv.commands().length;
    const clones = () => hv.commands().slice(cmds0).filter((c) => c.startsWith('clone'));
    let d = await startDaemon(dir2, yaml);
    daemons.push(d);
    agent.setLoad(2.5);
    const rec = await until('creating record on disk', () => records(dir2).find((r) => r.state === 'creating'), 15_000);
    expect(rec.deadline).toBeGreaterThanOrEqual(rec.createdAt + 2000 + 10_000);
    await until('clone command running on the hypervisor', () => clones().length === 1 && hv.clones().includes(rec.name), 10_000);
    await d.kill(); // SIGKILL while the clone command is still running there
    // The VDS stays hot: a restarted balancer that forgot the record would clone again.

    d = await startDaemon(dir2, yaml);
    daemons.push(d);
    const kept = (l: { msg?: string }) => typeof l.msg === 'string' && l.msg.startsWith(`${rec.name} (creating) listed without an address on hv1; kept until`);
    await d.waitLog(kept, 15_000);
    // Several reconciles (every retry_interval) and SNMP polls past the 1 s up_cooldown, load 2.5 all along.
    await until('three reconciles past the cooldown', () => d.logs.filter(kept).length >= 3 && Date.now() > rec.createdAt + 3000, 15_000);
    expect(clones()).toEqual([`clone vds-01 ${rec.name}`]);
    expect(records(dir2).map((r) => [r.name, r.state])).toEqual([[rec.name, 'creating']]);
    expect(d.logs.some((l) => l.code === 'PAIRLB_UNKNOWN_CLONE')).toBe(false);

    hv.holdClones(false); // the copy finishes on the hypervisor; list now gives the address
    await d.waitLog((l) => typeof l.msg === 'string' && l.msg.startsWith(`clone ${rec.name} is UP`), 15_000);
    await until('clone serves through the restarted balancer', async () => (await hit(`http://127.0.0.1:${port}`)).body === rec.name, 10_000, 5);
    expect(hv.clones()).toEqual([rec.name]);
    expect(clones()).toEqual([`clone vds-01 ${rec.name}`]);
    expect(records(dir2).map((r) => [r.name, r.state, r.adopted ?? false])).toEqual([[rec.name, 'active', false]]);
    expect(d.logs.some((l) => l.code === 'PAIRLB_UNKNOWN_CLONE')).toBe(false);

    agent.setLoad(1.5);
    hv.setCloneLoad(rec.name, 0.4);
    await until('destroyed', () => hv.clones().length === 0 && records(dir2).length === 0, 15_000);
    d.signal('SIGTERM');
    expect((await d.exited).code).toBe(0);
  });
});
