import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import http from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensurePackages } from '../helpers/sys.js';
import {
  MAIN, analyse, blockEventLoop, cleanupStale, createTopology, nftClear, nftDrop, pairlbConfig, run, sleep, startPairlb, startPoller, vipMonitor, vipOn,
  type Poller, type Proc, type Topology, type VipMonitor,
} from '../helpers/netns.js';

/**
 * A master that cannot serve loses the VIP; a master that serves keeps it (issue 11). Two real pairlb
 * processes in network namespaces (HA timing: TIMING below), the interface of the master staying
 * up in every case: its main process SIGKILLed alone (its HA loop, a process of its own since
 * issue 12, gives the VIP up and says FAULT), every process of it SIGKILLed at once (the VIP stays
 * on the interface until ExecStopPost's `pairlb vip-release`), the whole daemon (main + HA loop)
 * SIGSTOPped for 1 s and 10 s, its HA loop stuck (a busy loop run through Node's inspector: no
 * hook in the product), its data plane not answering while its heartbeats go on, and — the
 * opposite case — both heartbeat paths cut while both nodes serve.
 *
 * "No two masters" is measured on the wire side: `ip monitor address` in both namespaces; both held
 * the VIP at once for at most BOTH_MS (stated bound: the old master's watchdog and the new master's
 * claim race by a few ms on an idle machine; a loaded one delays either by up to a few hundred).
 * No timing is asserted otherwise; `npm run bench:failover` measures it.
 */

ensurePackages(['iproute2', 'iputils-arping', 'nftables']);

const BOTH_MS = 1500;
const KEY = 'failover-test-key-0123456789abcdef';
let t: Topology;
let dir: string;
let lb1: Proc, lb2: Proc;
let poll: Poller;
let mon: VipMonitor;

/**
 * The default timing ×3 (the watchdog follows: 1.5 × deadtime = 900 ms): the machine running the
 * suite is loaded to 10-25 on 2 cores, where pairlb sees event-loop stalls of up to ~0.6 s, and at
 * the defaults such a stall is a hang (see STALL_TOLERANT_HA). The behaviour is the same at any
 * scale; the bench runs the defaults. The RFC 5227 probe waits 400 ms for an answer (60 ms by
 * default): arping itself can take longer than 60 ms to see the reply under that load, and an
 * answer missed is a VIP taken for free.
 */
const TIMING = '  keepalive: 150ms\n  warntime: 360ms\n  deadtime: 600ms\n  failback_delay: 1s\n  garp: { probe_timeout: 400ms }\n';
const start = (node: 'lb1' | 'lb2', haExtra = ''): Proc => {
  writeFileSync(join(dir, `${node}.yaml`), pairlbConfig(node, { dir, haExtra: TIMING + haExtra }));
  return startPairlb(t, node, join(dir, `${node}.yaml`), join(dir, `state-${node}`));
};
const roleChangesSince = (p: Proc, at: number) => p.roles().filter((r) => r.at >= at);
const logsSince = (p: Proc, at: number, msg: string) => p.logs.filter((j) => j._at >= at && j.msg === msg);

async function untilTrue(f: () => Promise<boolean> | boolean, ms: number, what: string): Promise<void> {
  const end = Date.now() + ms;
  while (Date.now() < end) { if (await f()) return; await sleep(25); }
  throw new Error(`timeout after ${ms} ms: ${what}`);
}
const servedBy = (lb: string, since: number, n = 5, ms = 15_000) => untilTrue(() => poll.samples.filter((x) => x.ok && x.lb === lb && x.s >= since).length >= n, ms, `${n} answers from ${lb}`);
const holders = async () => [await vipOn(t, 'l1'), await vipOn(t, 'l2')];

function admin(node: string, path: string): Promise<any> {
  return new Promise((resolve, reject) => {
    http.get({ socketPath: join(dir, `${node}-admin.sock`), path }, (res) => {
      let s = ''; res.on('data', (d) => { s += d; }); res.on('end', () => resolve(JSON.parse(s)));
    }).on('error', reject);
  });
}

/** Processes of ours in a namespace whose command line contains `what`. */
async function procsIn(n: string, what: string): Promise<number[]> {
  const pids = (await run('ip', ['netns', 'pids', t.ns(n)], { allowFail: true })).split('\n').filter(Boolean).map(Number);
  return pids.filter((p) => { try { return readFileSync(`/proc/${p}/cmdline`, 'utf8').includes(what); } catch { return false; } });
}

/** The pair is back to normal: lb1 master (failback), lb2 backup, the VIP on lb1 only, lb1 serving. */
async function failsBack(since: number): Promise<void> {
  const m = await lb1.waitRole('master', 20_000, since);
  await servedBy('lb1', m._at, 5);
  await lb2.waitRole('backup', 10_000, since);
  await untilTrue(async () => (await holders()).join() === 'true,false', 5000, 'VIP on lb1 only');
}

beforeAll(async () => {
  await cleanupStale();
  dir = mkdtempSync(join(tmpdir(), 'pairlb-failover-'));
  chmodSync(dir, 0o755);
  writeFileSync(join(dir, 'ha.key'), KEY + '\n', { mode: 0o600 });
  t = await createTopology();
  const webs = [t.startWeb('w1'), t.startWeb('w2')];
  await Promise.all(webs.map((w) => w.waitFor((l) => l === 'listening', 5000, 'web listening')));
  lb1 = start('lb1'); lb2 = start('lb2');
  await lb1.waitRole('master', 15_000);
  await lb2.waitRole('backup', 15_000);
  mon = await vipMonitor(t);
  poll = startPoller(t, { interval: 20, timeout: 1000, maxMs: 400_000 });
  await servedBy('lb1', 0, 5);
}, 60_000);

afterAll(async () => {
  mon?.stop();
  await poll?.stop().catch(() => {});
  for (const p of [lb1, lb2]) p?.kill('SIGKILL');
  await t?.destroy();
  if (dir) rmSync(dir, { recursive: true, force: true });
}, 30_000);

describe('a master that cannot serve loses the VIP, and only then', () => {
  it('both heartbeat paths cut while both serve: the backup asks the VIP, finds it serving, never claims; nothing fails', async () => {
    const t0 = Date.now();
    for (const n of ['l1', 'l2']) await nftDrop(t, n, 'udp dport 694');
    await lb2.waitFor((j) => j._at >= t0 && j.msg === 'peer dead: no heartbeat on any path for deadtime', 10_000, 'lb2 declares lb1 dead');
    // It asked the VIP (logged once: the warning is throttled) and found a live master behind it,
    // and again every deadtime (counted).
    const ans = await lb2.waitFor((j) => j._at >= t0 && j.msg === 'RFC 5227 probe: the VIP answers on the network; not claiming it', 10_000, 'lb2 asked the VIP');
    expect(ans.why).toMatch(/^answers ARP and serves \(HTTP in \d+ ms\)$/);
    const base = (await admin('lb2', '/v1/status')).ha.probeAnswered as number;
    await untilTrue(async () => (await admin('lb2', '/v1/status')).ha.probeAnswered >= base + 3, 15_000, 'lb2 found the VIP in use 3 more times');
    expect(roleChangesSince(lb2, t0)).toEqual([]);
    expect(roleChangesSince(lb1, t0)).toEqual([]);
    expect(await holders()).toEqual([true, false]);
    expect(mon.bothHeldMs(t0)).toBe(0);
    const tHeal = Date.now();
    for (const n of ['l1', 'l2']) await nftClear(t, n);
    await untilTrue(async () => (await admin('lb2', '/v1/status')).ha.peer.alive === true, 10_000, 'lb2 hears lb1 again');
    expect(roleChangesSince(lb2, t0)).toEqual([]);
    expect(roleChangesSince(lb1, t0)).toEqual([]);
    expect(analyse(poll.samples, t0, 'lb1', tHeal).failed).toBe(0);
  }, 60_000);

  it('SIGKILL of the master\'s main process alone, interface up: its HA loop gives the VIP up and says FAULT, lb2 takes over at once, the client follows', async () => {
    expect((await procsIn('l1', 'pairlb-watchdog')).length).toBe(1);
    const loop = lb1.haLoopPid()!;
    expect((await procsIn('l1', 'ha/runtime.js'))).toEqual([loop]);
    const t0 = Date.now();
    lb1.kill('SIGKILL');
    await lb1.exited;
    await untilTrue(async () => !(await vipOn(t, 'l1')), 5000, 'VIP gone from lb1');
    const m = await lb2.waitRole('master', 10_000, t0);
    // The loop's FAULT advert usually arrives first; if it was lost, the watchdog removed the VIP
    // as the loop exited and the probe finds it free.
    expect(m.reason).toMatch(/^peer lb1 is in fault|^VIP (free|released meanwhile) \(RFC 5227 probe unanswered\)$/);
    await servedBy('lb2', t0, 10);
    // Nothing of lb1 is left: its HA loop exits once the VIP is gone, and the watchdog with it.
    await untilTrue(async () => (await procsIn('l1', 'ha/runtime.js')).length === 0, 5000, 'HA loop exited');
    await untilTrue(async () => (await procsIn('l1', 'pairlb-watchdog')).length === 0, 5000, 'watchdog exited');
    expect(mon.bothHeldMs(t0)).toBeLessThanOrEqual(BOTH_MS);
    const t1 = Date.now();
    lb1 = start('lb1');
    await lb1.waitRole('backup', 15_000, t1);
    await failsBack(t1);
    expect(mon.bothHeldMs(t0)).toBeLessThanOrEqual(BOTH_MS);
  }, 90_000);

  for (const stopMs of [1000, 10_000]) {
    it(`SIGSTOP of the master for ${stopMs / 1000} s, then SIGCONT: lb1 comes back as backup${stopMs > 5000 ? ' (lb2 served meanwhile)' : ''}, never a second master`, async () => {
      const t0 = Date.now();
      // The whole daemon: main and HA loop (its VIP watchdog is in a session of its own and runs on).
      const pids = lb1.daemonPids();
      expect(pids).toHaveLength(2);
      for (const p of pids) process.kill(p, 'SIGSTOP');
      try {
        if (stopMs > 5000) {
          // While it is stopped: its watchdog took the VIP away, lb2 holds it and serves.
          await lb2.waitRole('master', 8000, t0);
          await servedBy('lb2', t0, 10);
          expect(await holders()).toEqual([false, true]);
        }
        await sleep(t0 + stopMs - Date.now()); // the fault lasts stopMs (the stimulus, not a wait for a condition)
      } finally {
        for (const p of pids) process.kill(p, 'SIGCONT');
      }
      const tCont = Date.now();
      if (stopMs > 5000) await servedBy('lb2', t0, 10);
      // (1 s is about the watchdog's 0.9 s: lb2 may or may not have claimed before lb1 resumed; if it
      // had not, its question to the VIP is answered by the resumed lb1 and it stays backup.)
      // Resumed, lb1 first notices its own stall (before sending any advert) and steps down.
      const down = await lb1.waitRole('backup', 10_000, t0);
      expect(down.reason).toMatch(/event loop stalled \d+ ms|VIP watchdog/);
      expect(down._at).toBeGreaterThanOrEqual(tCont);
      // Then lb1 is master again (failback, or a claim through the probe), lb2 backup, one VIP.
      const m = await lb1.waitRole('master', 20_000, down._at);
      await servedBy('lb1', m._at, 5);
      await untilTrue(async () => lb2.role() === 'backup' && (await holders()).join() === 'true,false', 10_000, 'lb2 backup, VIP on lb1 only');
      expect(mon.bothHeldMs(t0)).toBeLessThanOrEqual(BOTH_MS);
    }, 90_000);
  }

  it('stuck HA loop (a 3 s busy loop through the inspector in its process): the same as a hang', async () => {
    const { at: t0, released } = await blockEventLoop(t, 'l1', lb1.haLoopPid()!, 3000);
    await lb2.waitRole('master', 10_000, t0);
    await servedBy('lb2', t0, 10);
    await released;
    const down = await lb1.waitRole('backup', 10_000, t0);
    expect(down.reason).toMatch(/event loop stalled \d+ ms|VIP watchdog/);
    await failsBack(down._at);
    expect(mon.bothHeldMs(t0)).toBeLessThanOrEqual(BOTH_MS);
  }, 90_000);

  it('data plane not answering while the heartbeats go on (TCP to port 80 dropped on lb1): FAULT, lb2 claims at once', async () => {
    const t0 = Date.now();
    await nftDrop(t, 'l1', 'tcp dport 80');
    let cleared = false;
    try {
      const f = await lb1.waitRole('fault', 20_000, t0);
      expect(f.reason).toMatch(/^data plane not answering \(self-check: listen web \(127\.0\.0\.1:80\): timeout\)$/);
      const m = await lb2.waitRole('master', 5000, t0);
      expect(m.reason).toMatch(/peer lb1 is in fault/);
      await servedBy('lb2', t0, 10);
      expect(await holders()).toEqual([false, true]);
      expect(logsSince(lb2, t0, 'peer dead: no heartbeat on any path for deadtime')).toEqual([]); // heartbeats went on
      const t1 = Date.now();
      await nftClear(t, 'l1');
      cleared = true;
      await lb1.waitRole('backup', 20_000, t1);
      await failsBack(t1);
    } finally {
      if (!cleared) await nftClear(t, 'l1');
    }
    expect(mon.bothHeldMs(t0)).toBeLessThanOrEqual(BOTH_MS);
  }, 90_000);

  it('SIGKILL of every process of the daemon at once (systemd at the stop timeout): the VIP answers ARP on lb1 but does not serve, so lb2 claims it; ExecStopPost removes it', async () => {
    // A normal stop ends the HA loop and the watchdog too, leaving nothing behind.
    const tr = Date.now();
    lb1.kill('SIGTERM');
    expect((await lb1.exited).code).toBe(0);
    await untilTrue(async () => (await procsIn('l1', 'pairlb-watchdog')).length + (await procsIn('l1', 'ha/runtime.js')).length === 0, 5000, 'HA loop and watchdog gone after a graceful stop');
    expect(await vipOn(t, 'l1')).toBe(false);
    lb1 = start('lb1');
    await failsBack(tr);
    const all = [...lb1.daemonPids(), ...(await procsIn('l1', 'pairlb-watchdog'))];
    expect(all).toHaveLength(3);
    const t0 = Date.now();
    for (const p of all) process.kill(p, 'SIGKILL');
    await lb1.exited;
    const m = await lb2.waitRole('master', 10_000, t0);
    expect(m.reason).toMatch(/^VIP answers ARP but does not serve \((ECONNREFUSED|timeout) after \d+ ms\)$/);
    await servedBy('lb2', t0, 10); // lb2's gratuitous ARP moved the client
    expect(await vipOn(t, 'l1')).toBe(true); // nothing of lb1 was left to remove it: the kernel keeps it
    // systemd's ExecStopPost: the unit's own command removes it.
    await t.exec('l1', process.execPath, [MAIN, 'vip-release', '-c', join(dir, 'lb1.yaml')]);
    expect(await vipOn(t, 'l1')).toBe(false);
    // Restarted, lb1 fails back.
    const t1 = Date.now();
    lb1 = start('lb1');
    await lb1.waitRole('backup', 15_000, t1);
    await failsBack(t1);
  }, 120_000);
});
