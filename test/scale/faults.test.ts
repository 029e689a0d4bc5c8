import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { startHypervisor, freeTcpPort, type Hypervisor } from '../helpers/sshd.js';
import { startSnmpd, freeUdpPort, type Snmpd } from '../helpers/snmpd.js';
import { scaleRandom } from '../../src/scale/scaler.js';
import { hit, startHarness, until, type Harness, type ScaleHarnessOpts } from './harness.js';

/**
 * Each fault of issue 6 against real components: sshd down, host key mismatch, clone command
 * failing, clone printing garbage, clone never healthy, SNMP agent down or wrong credentials.
 * The invariant checked every time: no clone left on any hypervisor that the scaler does not
 * track, and nothing but healthy backends ever takes client traffic.
 */

let agent: Snmpd;
let hv1: Hypervisor;
let hv2: Hypervisor;
let h: Harness | undefined;

beforeAll(async () => {
  [agent, hv1, hv2] = await Promise.all([startSnmpd({ load: 1.0 }), startHypervisor('hv1'), startHypervisor('hv2')]);
  hv1.setInitialLoad(1.5);
  hv2.setInitialLoad(1.5);
});
afterEach(async () => {
  await h?.stop();
  h = undefined;
  scaleRandom.next = Math.random;
  agent.setLoad(1.0);
  for (const hv of [hv1, hv2]) { hv.setMode('ok'); hv.destroyAll(); }
});
afterAll(async () => {
  await Promise.all([hv1?.stop(), hv2?.stop(), agent?.stop()]);
});

/** With two hypervisors, next() = 0.99 keeps the configured order: the first is tried first. */
const configuredOrder = () => { scaleRandom.next = () => 0.99; };

async function start(o: Omit<ScaleHarnessOpts, 'agent'>): Promise<Harness> {
  h = await startHarness({ agent, ...o });
  await until('first sample', () => h!.scaler.samplesOf('vds:vds-01').length > 0 || h!.scaler.status().targets.length > 0);
  return h;
}
const alarms = (x: Harness, code: string) => x.scaler.status().alarms.filter((a) => a.code === code);
const clonesIn = (x: Harness) => x.app.backends.backends('web').filter((b) => b.origin === 'clone');

describe('scaler faults', () => {
  it('sshd down: refused at once, alarmed, the clone is made on the other hypervisor', async () => {
    configuredOrder();
    const x = await start({ hypervisors: [{ name: 'hv-down', port: await freeTcpPort(), hostKey: hv1.hostKey, keyFile: hv1.keyFile }, { name: 'hv1', hv: hv1 }] });
    agent.setLoad(2.5);
    const rec = await until('clone active', () => x.scaler.status().clones.find((c) => c.state === 'active'), 15_000);
    expect(rec.hypervisor).toBe('hv1');
    const a = alarms(x, 'PAIRLB_HV_UNREACHABLE');
    expect(a[0]).toMatchObject({ hypervisor: 'hv-down', message: expect.stringContaining('ECONNREFUSED') });
    expect(hv1.clones()).toEqual([rec.name]);
  });

  it('every hypervisor down: no record, no backend, alarmed; retried after the cooldown', async () => {
    const x = await start({ hypervisors: [{ name: 'hv-down', port: await freeTcpPort(), hostKey: hv1.hostKey, keyFile: hv1.keyFile }] });
    agent.setLoad(2.5);
    await until('two failed attempts', () => alarms(x, 'PAIRLB_HV_UNREACHABLE').length >= 2, 10_000);
    expect(x.scaler.status().clones).toEqual([]);
    expect(clonesIn(x)).toEqual([]);
    expect(x.scaler.status().events.filter((e) => e.event === 'clone-failed').length).toBeGreaterThanOrEqual(2);
  });

  it('host key mismatch: refused before authenticating, alarmed, tried on the other hypervisor', async () => {
    configuredOrder();
    // hv2 is pinned to hv1's key: an impostor from the balancer's point of view.
    const x = await start({ hypervisors: [{ name: 'hv2', port: hv2.port, hostKey: hv1.hostKey, keyFile: hv2.keyFile }, { name: 'hv1', hv: hv1 }] });
    agent.setLoad(2.5);
    const rec = await until('clone active', () => x.scaler.status().clones.find((c) => c.state === 'active'), 15_000);
    expect(rec.hypervisor).toBe('hv1');
    // Refused by the reconcile `list` at start and by the clone attempt: always hv2, never hv1.
    const a = alarms(x, 'PAIRLB_SSH_HOSTKEY');
    expect(a.length).toBeGreaterThanOrEqual(1);
    expect(new Set(a.map((y) => y.hypervisor))).toEqual(new Set(['hv2']));
    expect(x.scaler.status().events.some((e) => e.event === 'clone-failed' && e.message.includes('on hv2 failed: host key mismatch'))).toBe(true);
    expect(a[0].message).toContain(`got ${hv2.hostKey}, pinned ${hv1.hostKey}`);
    expect(hv2.commands()).toEqual([]); // nothing ran there
    expect(hv2.clones()).toEqual([]);
  });

  it('clone command failing: logged with stderr, tried once on the other, nothing left anywhere', async () => {
    configuredOrder();
    hv1.setMode('fail');
    hv2.setMode('fail');
    const before = [hv1.commands().length, hv2.commands().length];
    const x = await start({ hypervisors: [{ name: 'hv1', hv: hv1 }, { name: 'hv2', hv: hv2 }], scaleExtra: '' });
    agent.setLoad(2.5);
    await until('failure on both', () => x.scaler.status().events.some((e) => e.event === 'clone-failed' && !e.clone), 10_000);
    agent.setLoad(1.0);
    const a = alarms(x, 'PAIRLB_CLONE_FAILED');
    expect(a.map((y) => y.hypervisor).slice(0, 2)).toEqual(['hv1', 'hv2']);
    expect(a[0].message).toMatch(/exit status 3.*no space left on storage pool/);
    // A failed clone may have left something: destroy is tried and `list` confirms.
    const c1 = hv1.commands().slice(before[0]).filter((c, i, all) => i >= all.findIndex((y) => y.startsWith('clone')));
    expect(c1[0]).toMatch(/^clone vds-01 vds-01-clone-[0-9a-f]{6}$/);
    expect(c1.slice(1, 3)).toEqual([c1[0].replace(/^clone vds-01/, 'destroy'), 'list']);
    await until('records gone', () => x.scaler.status().clones.length === 0, 10_000);
    expect(clonesIn(x)).toEqual([]);
    expect([hv1.clones(), hv2.clones()]).toEqual([[], []]);
  });

  it('clone printing garbage: a failed clone; the VM it made is destroyed and never joins', async () => {
    hv1.setMode('garbage');
    const x = await start({ hypervisors: [{ name: 'hv1', hv: hv1 }] });
    const joined: string[] = [];
    x.app.backends.on('change', (ev) => { if (ev.from === 'ABSENT') joined.push(ev.backend); });
    agent.setLoad(2.5);
    await until('destroyed after garbage', () => x.scaler.status().events.some((e) => e.event === 'destroyed'), 10_000);
    agent.setLoad(1.0);
    const a = alarms(x, 'PAIRLB_CLONE_FAILED');
    expect(a[0].message).toMatch(/unparsable clone output: last line is not JSON: "Cloning vds-01 to vds-01-clone-[0-9a-f]{6} \.\.\. done/);
    await until('nothing tracked', () => x.scaler.status().clones.length === 0, 10_000);
    expect(hv1.clones()).toEqual([]);
    expect(joined).toEqual([]);
  });

  it('clone never healthy: in the pool DOWN, never serves, removed and destroyed after clone_health', async () => {
    hv1.setMode('unhealthy');
    const x = await start({ hypervisors: [{ name: 'hv1', hv: hv1 }], cloneHealth: '1500ms' });
    agent.setLoad(2.5);
    const rec = await until('clone joining', () => x.scaler.status().clones.find((c) => c.state === 'joining'), 10_000);
    expect(x.app.backends.get('web', rec.name)?.health).toBe('down');
    // Clients only ever see the healthy VDS while the clone fails its checks.
    const seen = new Set<string>();
    const t0 = Date.now();
    while (Date.now() - t0 < 1000) { const r = await hit(x.url); seen.add(`${r.status} ${r.body}`); }
    expect([...seen]).toEqual(['200 vds-01']);
    await until('unhealthy alarm', () => alarms(x, 'PAIRLB_CLONE_UNHEALTHY').length > 0, 10_000);
    agent.setLoad(1.0);
    expect(alarms(x, 'PAIRLB_CLONE_UNHEALTHY')[0].message).toMatch(/not healthy after 1500 ms \(L7STS/);
    await until('destroyed', () => x.scaler.status().clones.length === 0 && hv1.clones().length === 0, 10_000);
    expect(x.app.backends.get('web', rec.name)).toBeUndefined();
  });

  it('destroy failing: out of the pool, record kept as destroying and alarmed, retried until list confirms', async () => {
    const x = await start({ hypervisors: [{ name: 'hv1', hv: hv1 }], scaleExtra: '  retry_interval: 1s' });
    agent.setLoad(2.5);
    const rec = await until('clone active', () => x.scaler.status().clones.find((c) => c.state === 'active'), 15_000);
    agent.setLoad(1.5);
    hv1.setDestroyFail(true);
    hv1.setCloneLoad(rec.name, 0.4);
    await until('destroy alarm', () => alarms(x, 'PAIRLB_DESTROY_FAILED').length > 0, 15_000);
    expect(alarms(x, 'PAIRLB_DESTROY_FAILED')[0].message).toMatch(/still listed after destroy \(exit status 3: destroy vds-01-clone-[0-9a-f]{6}: storage busy\)/);
    expect(x.app.backends.get('web', rec.name)).toBeUndefined();
    expect(x.scaler.status().clones).toMatchObject([{ name: rec.name, state: 'destroying' }]);
    expect(hv1.clones()).toEqual([rec.name]);
    hv1.setDestroyFail(false);
    await until('destroyed on retry', () => x.scaler.status().clones.length === 0 && hv1.clones().length === 0, 10_000);
  });

  it.each([
    ['agent down', async () => `    port: ${await freeUdpPort()}`, /timeout/],
    ['wrong v2c community', async () => '    version: "2c"\n    community: not-the-community', /timeout/],
    ['wrong v3 auth key', async () => '    auth_password: wrong-auth-pass', /invalid response|timeout/],
    ['wrong v3 privacy key', async () => '    priv_password: wrong-priv-pass', /timeout/],
  ])('SNMP %s: samples are unknown with a reason, load 2.5 never clones', async (_n, override, re) => {
    const before = hv1.commands().length;
    agent.setLoad(2.5);
    const x = await start({ hypervisors: [{ name: 'hv1', hv: hv1 }], pollMs: 150, vdsSnmp: await override() });
    await until('6 samples', () => x.scaler.samplesOf('vds:vds-01').length >= 6, 15_000);
    const s = x.scaler.samplesOf('vds:vds-01');
    expect(s.every((y) => y.status === 'unknown' && y.load === undefined)).toBe(true);
    expect(s[0].reason).toMatch(re);
    const d = x.scaler.status().decisions.find((y) => y.source === 'vds-01');
    expect(d).toMatchObject({ action: 'none', reason: expect.stringMatching(/load unknown/) });
    expect(x.scaler.status().clones).toEqual([]);
    expect(hv1.commands().slice(before).filter((c) => c.startsWith('clone'))).toEqual([]);
  });
});
