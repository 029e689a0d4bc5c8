import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync, writeFileSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startHypervisor, type Hypervisor } from '../helpers/sshd.js';
import { startSnmpd, type Snmpd } from '../helpers/snmpd.js';
import { HypervisorClient } from '../../src/scale/hypervisor.js';
import { hypervisorSchema } from '../../src/scale/config.js';
import type { CloneRecord } from '../../src/scale/scaler.js';
import { hit, startHarness, until, type Harness } from './harness.js';

/**
 * Crash between steps and restart: the persisted records are reconciled with `list` on the real
 * hypervisor. Also: only the active node (master/standalone) scales.
 */

let agent: Snmpd;
let hv: Hypervisor;
let client: HypervisorClient;
const stateDir = mkdtempSync(join(tmpdir(), 'pairlb-scale-reconcile-'));

beforeAll(async () => {
  [agent, hv] = await Promise.all([startSnmpd({ load: 1.5 }), startHypervisor('hv1')]);
  hv.setInitialLoad(1.5);
  client = new HypervisorClient(hypervisorSchema.parse({ name: 'hv1', host: '127.0.0.1', port: hv.port, key_file: hv.keyFile, host_key: hv.hostKey }), 3000);
});
afterAll(async () => {
  await hv?.stop();
  await agent?.stop();
  rmSync(stateDir, { recursive: true, force: true });
});

async function makeClone(name: string): Promise<string> {
  const r = await client.clone('clone {source} {name}', 'vds-01', name, 10_000);
  if (!r.ok) throw new Error(`fixture clone failed: ${r.res.reason} ${r.res.stderr}`);
  return r.out.address;
}

const rec = (name: string, state: CloneRecord['state'], extra: Partial<CloneRecord> = {}): CloneRecord =>
  ({ name, source: 'vds-01', listen: 'web', hypervisor: 'hv1', state, createdAt: Date.now() - 60_000, since: Date.now() - 60_000, ...extra });

const A = 'vds-01-clone-aaaaa1'; // record 'active', VM gone from the hypervisor, still in the pool
const B = 'vds-01-clone-bbbbb2'; // record 'creating' (crash right after the clone command), VM exists
const C = 'vds-01-clone-ccccc3'; // record 'destroying' (crash before destroy), VM exists
const D = 'vds-01-clone-ddddd4'; // VM exists, no record: unknown
const E = 'vds-01-clone-eeeee5'; // clone backend in the pool, no record, no VM: stale
const F = 'vds-01-clone-fffff6'; // unknown, for unknown_clones: destroy

describe('reconcile at start (real sshd hypervisor)', () => {
  let h: Harness | undefined;

  it('repairs every half-done step and reports an unknown clone', async () => {
    const [addrB, addrC] = [await makeClone(B), await makeClone(C)];
    await makeClone(D);
    expect(addrC).toMatch(/^127\.0\.0\.1:\d+$/);
    const added = (address: string) => ({ address, backup: false, check: true, origin: 'clone' });
    writeFileSync(join(stateDir, 'runtime.json'), JSON.stringify({
      version: 5, node: 'scale-test', savedAt: new Date().toISOString(),
      sections: {
        backends: { version: 3, entries: [
          { listen: 'web', name: A, admin: 'ready', weight: 1, added: added('127.0.0.1:9') },
          { listen: 'web', name: E, admin: 'ready', weight: 1, added: added('127.0.0.1:9') },
        ] },
        scale: { version: 1, groups: {}, clones: [rec(A, 'active', { address: '127.0.0.1:9' }), rec(B, 'creating'), rec(C, 'destroying', { address: addrC })] },
      },
    }));
    h = await startHarness({ agent, hypervisors: [{ name: 'hv1', hv }], stateDir });
    const x = h;
    await until('reconciled', () => x.scaler.status().lastReconcile);
    // A: vanished → out of the pool, alarmed.
    expect(x.app.backends.get('web', A)).toBeUndefined();
    expect(x.scaler.status().alarms.find((a) => a.code === 'PAIRLB_CLONE_VANISHED')?.clone).toBe(A);
    // E: stale clone backend without record or VM → out of the pool.
    expect(x.app.backends.get('web', E)).toBeUndefined();
    // B: the clone command had run → adopted with the address from `list`, health-gated, serving.
    const b = await until('B active', () => x.scaler.status().clones.find((c) => c.name === B && c.state === 'active'), 10_000);
    expect(b.address).toBe(addrB);
    await until('B serves through the balancer', async () => (await hit(x.url)).body === B, 10_000, 5);
    // C: destroyed, confirmed by list.
    await until('C destroyed', () => !hv.clones().includes(C) && !x.scaler.status().clones.some((c) => c.name === C), 10_000);
    // D: reported only (default), left alone.
    expect(x.scaler.status().unknownClones).toEqual([{ hypervisor: 'hv1', name: D, address: expect.stringMatching(/^127\.0\.0\.1:/) }]);
    expect(x.scaler.status().alarms.find((a) => a.code === 'PAIRLB_UNKNOWN_CLONE')?.message).toContain('reported only');
    expect(hv.clones()).toEqual([B, D]);
    await h.stop();
    h = undefined;
    // Persisted: B is active in the file the next start reads.
    const doc = JSON.parse(readFileSync(join(stateDir, 'runtime.json'), 'utf8'));
    expect(doc.sections.scale.clones.map((c: CloneRecord) => [c.name, c.state])).toEqual([[B, 'active']]);
  });

  it('unknown_clones: adopt honours max_clones_per_vds, joins it once a slot is free; destroy removes it; known clones survive restarts', async () => {
    h = await startHarness({ agent, hypervisors: [{ name: 'hv1', hv }], stateDir, scaleExtra: '  unknown_clones: adopt' });
    const x = h;
    // B (active, vds-01) holds the one slot of max_clones_per_vds: 1, so D is reported, not joined.
    await until('reconciled', () => x.scaler.status().lastReconcile);
    expect(x.scaler.status().alarms.find((a) => a.code === 'PAIRLB_UNKNOWN_CLONE' && a.clone === D)?.message)
      .toBe(`clone ${D} on hv1 is not known to the scaler: not adopting it: max_clones_per_vds 1 reached for vds-01; reported only`);
    expect(x.scaler.status().unknownClones.map((u) => u.name)).toEqual([D]);
    expect(x.app.backends.get('web', D)).toBeUndefined();
    expect(x.scaler.status().clones.map((c) => c.name)).toEqual([B]);
    // B disappears from the hypervisor: the next reconcile frees its slot and adopts D.
    const gone = await client.destroy('destroy {name}', B, 10_000);
    expect(gone.ok).toBe(true);
    await x.scaler.reconcile();
    const d = await until('D adopted', () => x.scaler.status().clones.find((c) => c.name === D && c.state === 'active'), 10_000);
    expect(d.adopted).toBe(true);
    expect(x.app.backends.get('web', D)?.meta).toMatchObject({ adopted: true, hypervisor: 'hv1' });
    expect(x.scaler.status().clones.map((c) => c.name)).toEqual([D]);
    await h.stop();
    h = undefined;

    await makeClone(F);
    h = await startHarness({ agent, hypervisors: [{ name: 'hv1', hv }], stateDir, scaleExtra: '  unknown_clones: destroy' });
    const y = h;
    await until('F destroyed', () => !hv.clones().includes(F) && y.scaler.status().events.some((e) => e.event === 'destroyed' && e.clone === F), 10_000);
    expect(hv.clones()).toEqual([D]);
    await until('D active', () => y.scaler.status().clones.filter((c) => c.state === 'active').map((c) => c.name).join() === D, 10_000);
    await h.stop();
    h = undefined;
    hv.destroyAll();
  });

  it('only the active node scales: a backup polls nothing and clones nothing; becoming master resumes', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'pairlb-scale-role-'));
    agent.setLoad(2.5);
    try {
      h = await startHarness({ agent, hypervisors: [{ name: 'hv1', hv }], stateDir: dir });
      const x = h;
      x.app.setRole('backup', 'test: peer is master');
      expect(x.scaler.status().active).toBe(false);
      const n = x.scaler.samplesOf('vds:vds-01').length;
      const cmds = hv.commands().length;
      await new Promise((r) => setTimeout(r, 1500));
      expect(x.scaler.samplesOf('vds:vds-01').length).toBe(n);
      expect(hv.commands().slice(cmds).filter((c) => c.startsWith('clone'))).toEqual([]);
      expect(x.scaler.status().clones).toEqual([]);

      x.app.setRole('master', 'test: takeover');
      const c = await until('clone active after takeover', () => x.scaler.status().clones.find((y) => y.state === 'active'), 15_000);
      // What HA replicates to the backup: the scale section of the state snapshot.
      expect((x.app.state.snapshot().sections.scale as { clones: CloneRecord[] }).clones.map((y) => y.name)).toEqual([c.name]);
      // Losing the role mid-life leaves the clone in place (the new master reconciles it).
      x.app.setRole('backup', 'test: peer took over');
      expect(x.scaler.status().active).toBe(false);
      expect(hv.clones()).toEqual([c.name]);
    } finally {
      await h?.stop();
      h = undefined;
      agent.setLoad(1.5);
      hv.destroyAll();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
