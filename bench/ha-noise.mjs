#!/usr/bin/env node
// HA alarm noise under GC load (issue 11 item 6): the pair in namespaces, a GC-heavy preload
// (bench/lib/gc-load.mjs) in the pairlb processes, no failure injected; for `--seconds` we count,
// per node and per minute, the warning lines and the HA status counters. Every "peer dead" here is
// a false alarm in the sense that both processes are alive; some are unavoidable (a node whose own
// loop is stopped by GC for more than deadtime sends nothing: its peer truly hears silence).
//
//   npm run bench:ha-noise -- [--seconds 60] [--gc lb1,lb2] [--flaps N] [--main dist/cli/main.js] [--json FILE]
//
// --flaps N [--flap-ms 3000]: also flap the dedicated link N times during the window (lb2's eth1
// down for flap-ms, then up;
// `--gc ''` for flaps alone). lb1's side of the veth loses carrier but stays up, so its qdisc
// holds lb1's heartbeats meanwhile and flushes them when the carrier returns: a backlog at lb2,
// not replays.
//
// As root, after `npx tsc -p .`. Compare builds with --main (e.g. an older build's main.js).
import { mkdtempSync, rmSync, writeFileSync, chmodSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import http from 'node:http';
import { Topology, pairlbConfig, sleep, MAIN as DEFAULT_MAIN } from './failover-lib.mjs';

const HERE = dirname(fileURLToPath(import.meta.url));
const arg = (name, dflt) => { const i = process.argv.indexOf(`--${name}`); return i > 0 ? process.argv[i + 1] : dflt; };
const seconds = Number(arg('seconds', '60'));
const gcNodes = String(arg('gc', 'lb1,lb2')).split(',').filter(Boolean);
const flaps = Number(arg('flaps', '0'));
const flapMs = Number(arg('flap-ms', '3000'));
const main = resolve(arg('main', DEFAULT_MAIN));
const jsonOut = arg('json', '');

function status(dir, node) {
  return new Promise((res) => {
    const req = http.request({ socketPath: join(dir, `${node}-admin.sock`), path: '/v1/status' }, (r) => {
      let s = ''; r.on('data', (d) => { s += d; }); r.on('end', () => { try { res(JSON.parse(s).ha); } catch { res(undefined); } });
    });
    req.on('error', () => res(undefined));
    req.end();
  });
}

const LINES = {
  peer_dead: /^peer dead/,
  late: /^late heartbeat/,
  reannounce: /^re-announced the VIP/,
  probe_answered: /^RFC 5227 probe: the VIP answers/,
  replayed: /^heartbeat rejected: replayed/,
  role_changes: /^role /,
};
const COUNTERS = ['peerDeaths', 'deadAverted', 'lateHeartbeats', 'reannounces', 'loopStalls', 'maxLoopLagMs', 'backlog', 'logsSuppressed', 'transitions'];

const dir = mkdtempSync(join(tmpdir(), 'pairlb-noise-'));
chmodSync(dir, 0o755);
writeFileSync(join(dir, 'ha.key'), Buffer.from(Array.from({ length: 32 }, (_, i) => (i * 97 + 13) & 0xff)), { mode: 0o600 });
const t = await Topology.create();
const procs = [];
try {
  const webs = [t.startWeb('w1'), t.startWeb('w2')];
  await Promise.all(webs.map((w) => w.waitFor((l) => l === 'listening', 10_000, 'web')));
  const lbs = {};
  for (const node of ['lb1', 'lb2']) {
    writeFileSync(join(dir, `${node}.yaml`), pairlbConfig(node, { dir }));
    const pre = gcNodes.includes(node) ? ['--import', join(HERE, 'lib/gc-load.mjs')] : [];
    lbs[node] = t.spawn(node === 'lb1' ? 'l1' : 'l2', process.execPath, [...pre, main, 'start', '-c', join(dir, `${node}.yaml`), '--state-dir', join(dir, `state-${node}`)], { name: node });
    procs.push(lbs[node]);
  }
  await lbs.lb1.waitRole('master', 30_000);
  await lbs.lb2.waitRole('backup', 30_000);
  await sleep(2000); // settle
  const t0 = Date.now();
  const before = { lb1: await status(dir, 'lb1'), lb2: await status(dir, 'lb2') };
  const end = t0 + seconds * 1000;
  for (let i = 0; i < flaps && Date.now() + flapMs + 1000 < end; i++) {
    await t.ip('l2', ['link', 'set', 'eth1', 'down']);
    await sleep(flapMs);
    await t.ip('l2', ['link', 'set', 'eth1', 'up']);
    await sleep(Math.max(0, Math.min(3000, (end - Date.now()) / Math.max(1, flaps - i))));
  }
  await sleep(Math.max(0, end - Date.now()));
  const after = { lb1: await status(dir, 'lb1'), lb2: await status(dir, 'lb2') };
  const perMin = (n) => +(n * 60 / seconds).toFixed(1);
  const out = { main, seconds, gc: gcNodes, flaps, flapMs, nodes: {} };
  for (const node of ['lb1', 'lb2']) {
    const logs = lbs[node].logs.filter((j) => j._at >= t0 && j.mod === 'ha');
    const lines = Object.fromEntries(Object.entries(LINES).map(([k, re]) => [k, perMin(logs.filter((j) => re.test(String(j.msg))).length)]));
    const counters = {};
    for (const c of COUNTERS) {
      const a = after[node]?.[c], b = before[node]?.[c];
      if (typeof a === 'number') counters[c] = c === 'maxLoopLagMs' ? a : perMin(a - (b ?? 0));
    }
    const roles = {};
    for (const j of logs) if (j.to && j.from !== undefined) { const k = `${j.from}->${j.to}: ${j.reason}`; roles[k] = (roles[k] ?? 0) + 1; }
    const rr = after[node]?.rejected?.replayed, rb = before[node]?.rejected?.replayed;
    if (typeof rr === 'number') counters.rejected_replayed = perMin(rr - (rb ?? 0));
    out.nodes[node] = { lines_per_min: lines, counters_per_min: counters, role_changes: roles };
  }
  console.log(JSON.stringify(out, null, 2));
  if (jsonOut) writeFileSync(jsonOut, JSON.stringify(out, null, 2) + '\n');
} finally {
  for (const p of procs) p.kill('SIGKILL');
  await t.destroy();
  rmSync(dir, { recursive: true, force: true });
}
