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
const daemons: Daemon[] = [];

beforeAll(async () => {
  ensureBuilt();
  [agent, hv, vds] = await Promise.all([startSnmpd({ load: 1.0 }), startHypervisor('hv1'), startBackend('vds-01')]);
  hv.setInitialLoad(1.5);
  dir = tempDir('scale-crash');
});
afterAll(async () => {
  for (const d of daemons) await d.kill();
  await vds?.close();
  await hv?.stop();
  await agent?.stop();
  if (dir) cleanup(dir);
});

const records = (): CloneRecord[] => {
  const f = join(dir, 'state', 'runtime.json');
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
});
