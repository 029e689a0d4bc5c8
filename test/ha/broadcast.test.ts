import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensurePackages } from '../helpers/sys.js';
import { createTopology, pairlbConfig, startPairlb, vipOn, type Proc, type Topology } from '../helpers/netns.js';

/**
 * `node.broadcast` (ha.cf `bcast eth1`): heartbeats on the dedicated link go to its broadcast
 * address; the public path stays unicast. Both nodes must hear each other (the dedicated socket
 * binds 0.0.0.0 since Linux does not deliver broadcasts to a socket bound to a unicast address)
 * and ignore their own looped-back packets.
 */
ensurePackages(['iproute2', 'iputils-arping']);

let t: Topology, dir: string;
let lb1: Proc, lb2: Proc;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'pairlb-ha-bcast-'));
  writeFileSync(join(dir, 'ha.key'), 'broadcast-test-key-0123456789', { mode: 0o600 });
  t = await createTopology();
  for (const n of ['lb1', 'lb2'] as const) {
    writeFileSync(join(dir, `${n}.yaml`), pairlbConfig(n, { dir, admin: false })
      .replace(/node: \{ dedicated: "([^"]+)", /, 'node: { dedicated: "$1", broadcast: 198.19.0.3, '));
  }
  lb1 = startPairlb(t, 'lb1', join(dir, 'lb1.yaml'), join(dir, 's1'));
  lb2 = startPairlb(t, 'lb2', join(dir, 'lb2.yaml'), join(dir, 's2'));
}, 30_000);

afterAll(async () => {
  for (const p of [lb1, lb2]) p?.kill('SIGKILL');
  await t?.destroy();
  rmSync(dir, { recursive: true, force: true });
}, 30_000);

describe('ha heartbeats by broadcast on the dedicated link', () => {
  it('the pair forms over broadcast, survives the loss of the public path; the master\'s process killed alone loses its VIP to the backup', async () => {
    expect(lb1.lines.join('\n') + (await lb1.waitFor((j) => j.msg === 'ha started', 10_000, 'ha started')).paths).toMatch(/dedicated->198\.19\.0\.3:694/);
    await lb1.waitRole('master', 10_000);
    await lb2.waitRole('backup', 10_000);
    // Public side silently dropping everything: the broadcast heartbeats alone keep the pair.
    const t0 = Date.now();
    await t.exec('l2', 'tc', ['qdisc', 'replace', 'dev', 'eth0', 'root', 'pfifo', 'limit', '0']);
    await new Promise((r) => setTimeout(r, 1000));
    expect(lb2.roles().filter((r) => r.at >= t0)).toEqual([]);
    await t.exec('l2', 'tc', ['qdisc', 'del', 'dev', 'eth0', 'root']);
    expect(lb1.logs.some((j) => j.reject)).toBe(false); // own broadcasts are dropped silently, not counted
    const t1 = Date.now();
    lb1.kill('SIGKILL');
    // Only lb1's process died, its interface is up: its VIP watchdog removes the VIP at once (it
    // used to stay there, answer ARP and block lb2's probe forever: issue 11), so lb2's RFC 5227
    // probe goes unanswered and lb2 claims. The other direction — a VIP that answers and serves is
    // never claimed — is tested in failover.test.ts (heartbeats cut while both serve).
    const m = await lb2.waitRole('master', 5000, t1);
    // Its HA loop (a process of its own) gives the VIP up and says FAULT; or, its advert lost, the probe finds the VIP free.
    expect(m.reason).toMatch(/^peer lb1 is in fault|^VIP (free|released meanwhile) \(RFC 5227 probe unanswered\)$/);
    await lb2.waitFor((j) => j.msg === 'VIP added and announced (gratuitous ARP)' && j._at >= t1, 3000, 'VIP added');
    expect(await vipOn(t, 'l1')).toBe(false);
    expect(await vipOn(t, 'l2')).toBe(true);
  });
});
