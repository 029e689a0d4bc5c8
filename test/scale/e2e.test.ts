import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { startHypervisor, type Hypervisor } from '../helpers/sshd.js';
import { startSnmpd, type Snmpd } from '../helpers/snmpd.js';
import { hit, startHarness, until, type Harness } from './harness.js';

/**
 * End to end through the balancer: real snmpd (VDS load), real sshd hypervisor whose clone script
 * starts a real backend and a real snmpd for the clone, real proxy and health checks.
 * Load 2.5 → clone over SSH → UP → serves client traffic; clone load 0.4 → drained, removed,
 * destroyed, `list` empty. Prints the two latencies with the poll interval.
 */

const POLL_MS = Number(process.env.PAIRLB_SCALE_POLL_MS ?? 250);

// The pool as a listen section (scale.vds[].listen) and as a `backends` entry behind a frontend
// (scale.vds[].backend): the scaler works per pool either way.
describe.each(['listen', 'backends'] as const)('scaling end to end (real snmpd, sshd, backends, proxy), pool from %s', (model) => {
  let agent: Snmpd;
  let hv: Hypervisor;
  let h: Harness;

  beforeAll(async () => {
    agent = await startSnmpd({ load: 1.0 });
    hv = await startHypervisor('hv1');
    hv.setInitialLoad(1.5);
    h = await startHarness({ agent, hypervisors: [{ name: 'hv1', hv }], pollMs: POLL_MS, model });
  });
  afterAll(async () => {
    await h?.stop();
    await hv?.stop();
    await agent?.stop();
  });

  it('clones on load 2.5, serves traffic through the balancer, removes and destroys on 0.4', async () => {
    const { scaler, url } = h;
    // Steady: the VDS alone serves, and stays alone.
    await until('first samples', () => (scaler.samplesOf('vds:vds-01').length >= 3));
    expect(scaler.samplesOf('vds:vds-01').at(-1)).toMatchObject({ status: 'ok', load: 1 });
    expect((await hit(url)).body).toBe('vds-01');
    expect(scaler.status().clones).toEqual([]);

    // Load crosses the threshold.
    const tCross = Date.now();
    agent.setLoad(2.5);
    const rec = await until('clone record', () => scaler.status().clones[0], 10_000);
    expect(rec.hypervisor).toBe('hv1');
    expect(rec.name).toMatch(/^vds-01-clone-[0-9a-f]{6}$/);
    // Persisted before the external step completes: the state file names the clone.
    await until('state file has the clone', () => {
      try { return JSON.parse(readFileSync(join(h.stateDir, 'runtime.json'), 'utf8')).sections.scale.clones.some((c: { name: string }) => c.name === rec.name); } catch { return false; }
    }, 5000);
    // Serves client traffic through the balancer (after health UP, with slow start).
    let tServe = 0;
    let served = 0;
    await until('clone serves a client request', async () => {
      const r = await hit(url);
      expect(r.status).toBe(200);
      if (r.body === rec.name) { served++; if (!tServe) tServe = Date.now(); }
      return served >= 3;
    }, 15_000, 5);
    const serveMs = tServe - tCross;
    const c = scaler.status().clones.find((x) => x.name === rec.name)!;
    expect(c.state).toBe('active');
    expect(hv.clones()).toEqual([rec.name]);
    expect(hv.commands()).toContain(`clone vds-01 ${rec.name}`);
    const b = h.app.backends.get(h.pool, rec.name)!;
    expect(b).toMatchObject({ origin: 'clone', health: 'up', admin: 'ready', meta: { source: 'vds-01', hypervisor: 'hv1' } });
    // No second clone while max_clones_per_vds = 1, even with the load still high.
    await new Promise((r) => setTimeout(r, 4 * POLL_MS));
    expect(scaler.status().clones.length).toBe(1);
    // The clone's own snmpd is polled.
    await until('clone samples', () => scaler.samplesOf('clone:' + rec.name).some((s) => s.status === 'ok' && s.load === 1.5), 5000);

    // Load drops: the original back in the band, the clone idle.
    agent.setLoad(1.5);
    const tDrop = Date.now();
    hv.setCloneLoad(rec.name, 0.4);
    await until('clone draining or gone', () => scaler.status().clones.every((x) => x.state === 'removing' || x.state === 'destroying') || !h.app.backends.get(h.pool, rec.name), 10_000, 10);
    await until('clone destroyed and confirmed', () => scaler.status().clones.length === 0 && hv.clones().length === 0, 15_000, 10);
    const destroyMs = Date.now() - tDrop;
    expect(h.app.backends.get(h.pool, rec.name)).toBeUndefined();
    const cmds = hv.commands();
    expect(cmds.slice(cmds.indexOf(`destroy ${rec.name}`))).toEqual([`destroy ${rec.name}`, 'list']);
    const ev = scaler.status().events.map((e) => e.event);
    expect(ev).toEqual(expect.arrayContaining(['decision', 'clone-started', 'cloned', 'healthy', 'drain', 'removed', 'destroyed']));
    expect(ev.indexOf('drain')).toBeLessThan(ev.indexOf('removed'));
    expect(ev.indexOf('removed')).toBeLessThan(ev.indexOf('destroyed'));
    // Only the VDS serves again.
    for (let i = 0; i < 5; i++) expect((await hit(url)).body).toBe('vds-01');

    // The figures for the report (poll interval, N=2 up samples, M=3 down samples, rise 2 × 100 ms checks, slowstart 1 s).
    console.log(`[scale figures, pool from ${model}] poll=${POLL_MS}ms up_samples=2 down_samples=3 check=100ms rise=2 slowstart=1s: ` +
      `load>=2 -> clone serving traffic ${serveMs} ms; load<1 -> clone destroyed (list confirms) ${destroyMs} ms`);
    expect(serveMs).toBeLessThan(15_000);
    expect(destroyMs).toBeLessThan(15_000);
  });
});
