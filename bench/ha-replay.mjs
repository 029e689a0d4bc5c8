#!/usr/bin/env node
// Replayed heartbeats at a restart of the backup (issue 11 item 3), as the issue measured it: lb1's
// real HANDOVER packets (captured during a graceful stop of a previous run of lb1) and FAULT
// adverts (captured from lb1's current run) are sent at lb2 from the client namespace, every 20 ms
// for 2 s, while lb2 restarts; lb1's own heartbeats flow normally. Per round: did lb2 become
// master, did it add the VIP, how long the client saw no answer (black hole), and how lb2 counted
// the replays.
//
//   npm run bench:ha-replay -- [--rounds 6] [--main dist/cli/main.js] [--json FILE]
//
// As root, after `npx tsc -p .`. Compare builds with --main (e.g. an older build's main.js).
import { mkdtempSync, rmSync, writeFileSync, chmodSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import http from 'node:http';
import { Topology, pairlbConfig, sleep, startPoller, startCapture, sendUdpLoop, NET, MAIN as DEFAULT_MAIN } from './failover-lib.mjs';

const arg = (name, dflt) => { const i = process.argv.indexOf(`--${name}`); return i > 0 ? process.argv[i + 1] : dflt; };
const rounds = Number(arg('rounds', '6'));
const main = resolve(arg('main', DEFAULT_MAIN));
const jsonOut = arg('json', '');

/** Header fields common to protocol versions 1 and 2 (advert.ts). */
function peek(b) {
  if (b.length < 60 || b.readUInt32BE(0) !== 0x504c4842) return undefined;
  const cl = b[10], nl = b[11 + cl];
  return { role: b[6], flags: b[8], incarnation: b.readBigUInt64BE(12 + cl + nl).toString() };
}

function status(dir, node) {
  return new Promise((res) => {
    const req = http.request({ socketPath: join(dir, `${node}-admin.sock`), path: '/v1/status' }, (r) => {
      let s = ''; r.on('data', (d) => { s += d; }); r.on('end', () => { try { res(JSON.parse(s).ha); } catch { res(undefined); } });
    });
    req.on('error', () => res(undefined));
    req.end();
  });
}

const dir = mkdtempSync(join(tmpdir(), 'pairlb-replay-bench-'));
chmodSync(dir, 0o755);
writeFileSync(join(dir, 'ha.key'), Buffer.from(Array.from({ length: 32 }, (_, i) => (i * 53 + 7) & 0xff)), { mode: 0o600 });
const t = await Topology.create();
const procs = new Set();
const spawnLb = (node) => {
  const p = t.spawn(node === 'lb1' ? 'l1' : 'l2', process.execPath, [main, 'start', '-c', join(dir, `${node}.yaml`), '--state-dir', join(dir, `state-${node}`)], { name: node });
  procs.add(p);
  return p;
};
const lbs = {};
let poll;
try {
  const webs = [t.startWeb('w1'), t.startWeb('w2')];
  await Promise.all(webs.map((w) => w.waitFor((l) => l === 'listening', 10_000, 'web')));
  for (const node of ['lb1', 'lb2']) writeFileSync(join(dir, `${node}.yaml`), pairlbConfig(node, { dir, haExtra: '  failback_delay: 1s\n' }));
  lbs.lb1 = spawnLb('lb1'); lbs.lb2 = spawnLb('lb2');
  await lbs.lb1.waitRole('master', 30_000);
  await lbs.lb2.waitRole('backup', 30_000);
  poll = startPoller(t, { interval: 20, timeout: 1000, maxMs: 30 * 60_000 });

  // HANDOVER packets of a run of lb1 that then ends (graceful stop).
  let cap = startCapture(t, 'l2', 'eth1', `udp and dst port 694 and src host ${NET.lb1.ded}`, join(dir, 'h.pcap'));
  await cap.ready();
  let t0 = Date.now();
  lbs.lb1.kill('SIGTERM');
  await lbs.lb2.waitRole('master', 10_000, t0);
  await lbs.lb1.exited;
  const handovers = (await cap.until((bs) => bs.some((b) => (peek(b)?.flags ?? 0) & 1), 10_000, 'HANDOVER')).filter((b) => (peek(b)?.flags ?? 0) & 1);
  await cap.stop();
  t0 = Date.now();
  lbs.lb1 = spawnLb('lb1');
  await lbs.lb1.waitRole('master', 30_000, t0);
  await lbs.lb2.waitRole('backup', 10_000, t0);
  const inc1 = String(lbs.lb1.logs.filter((j) => j.msg === 'ha started').at(-1)?.incarnation);

  // FAULT adverts of lb1's current run.
  cap = startCapture(t, 'l2', 'eth1', `udp and dst port 694 and src host ${NET.lb1.ded}`, join(dir, 'f.pcap'));
  await cap.ready();
  t0 = Date.now();
  await t.ip('l1', ['link', 'set', 'eth0', 'down']);
  await lbs.lb1.waitRole('fault', 10_000, t0);
  const isFault = (b) => { const p = peek(b); return !!p && p.role === 3 && p.incarnation === inc1; };
  const faults = (await cap.until((bs) => bs.filter(isFault).length >= 3, 10_000, 'FAULT')).filter(isFault);
  await cap.stop();
  await t.ip('l1', ['link', 'set', 'eth0', 'up']);
  await lbs.lb1.waitRole('master', 30_000, t0);
  await sleep(2000);

  const results = [];
  for (const [kind, bufs] of [['handover (previous run of lb1)', handovers], ['fault (current run of lb1)', faults]]) {
    for (let r = 0; r < rounds; r++) {
      lbs.lb2.kill('SIGTERM');
      await lbs.lb2.exited;
      procs.delete(lbs.lb2);
      const s0 = Date.now();
      const replay = sendUdpLoop(t, 'c', NET.lb2.pub, 694, bufs, { everyMs: 20, forMs: 2500 });
      lbs.lb2 = spawnLb('lb2');
      await replay.exited;
      await lbs.lb2.waitRole('backup', 30_000, s0).catch(() => {});
      await sleep(3000); // what a GARP burst and its repeat would do to the client has happened
      const h = await status(dir, 'lb2');
      const samples = poll.samples.filter((x) => x.s >= s0 && x.s < Date.now() - 1000);
      let gap = 0, lastOk = s0;
      for (const x of samples) { if (x.ok) { gap = Math.max(gap, x.s - lastOk); lastOk = x.s; } }
      results.push({
        kind, round: r + 1,
        lb2_master: lbs.lb2.roles().some((x) => x.at >= s0 && x.to === 'master'),
        lb2_vip_added: lbs.lb2.logs.some((j) => j._at >= s0 && j.msg === 'VIP added and announced (gratuitous ARP)'),
        failed: samples.filter((x) => !x.ok).length,
        longest_gap_ms: gap,
        rejected: h?.rejected,
      });
      console.log(JSON.stringify(results.at(-1)));
    }
  }
  const summary = {};
  for (const x of results) {
    const s = summary[x.kind] ??= { rounds: 0, lb2_master: 0, lb2_vip_added: 0, failed_total: 0, worst_gap_ms: 0 };
    s.rounds++; s.lb2_master += +x.lb2_master; s.lb2_vip_added += +x.lb2_vip_added; s.failed_total += x.failed; s.worst_gap_ms = Math.max(s.worst_gap_ms, x.longest_gap_ms);
  }
  const out = { main, rounds, handovers: handovers.length, faults: faults.length, summary, results };
  console.log(JSON.stringify({ main, summary }, null, 2));
  if (jsonOut) writeFileSync(jsonOut, JSON.stringify(out, null, 2) + '\n');
} finally {
  await poll?.stop().catch(() => {});
  for (const p of procs) p.kill('SIGKILL');
  await t.destroy();
  rmSync(dir, { recursive: true, force: true });
}
