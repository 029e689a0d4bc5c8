#!/usr/bin/env node
// npm run bench:failover [-- --rounds 5] [--json FILE] [--targets pairlb,keepalived-1s,keepalived-100ms]
//                             [--scenarios node-dies,failback,crash,hang,graceful,link-cut,split-heal,heartbeat]
//                             [--hb-seconds 20] [--hb-connections 32] [--isolation process|thread|inline]
//
// Failover of the HA pair in network namespaces (topology in bench/failover-lib.mjs): pairlb with
// its default HA config against keepalived 2.2.7 (Debian) with advert_int 1 and 0.1, in the same
// topology and the same run. For keepalived the data plane on each balancer is pairlb standalone
// (no `ha:` section), so only the VIP handling differs. The client opens a new connection for
// each request, one every 20 ms, each with a 1 s timeout (shared/testbed.md).
//
// Scenarios (each round starts with lb1 master and the client served by lb1):
//   node-dies   t0 = every process of lb1 SIGKILLed and lb1's public link set down
//   failback    t0 = lb1 (link up again) restarted after node-dies; includes pairlb's failback_delay
//               (2 s by default) and keepalived's preemption
//   graceful    t0 = SIGTERM to lb1's pairlb (pairlb) or keepalived (keepalived targets)
//   link-cut    t0 = the dedicated link loses carrier (ip link set eth1 down) for 2 s
//   split-heal  the dedicated link silently drops everything (tc pfifo limit 0) for 5 s; t0 = heal
//   crash       t0 = SIGKILL of lb1's HA daemon alone, its interface up (pairlb: its main process; keepalived: its main
//               process, as `kill -9 $MAINPID`); then the daemon is started again (not measured)
//   hang        t0 = SIGSTOP of lb1's HA daemon for 5 s (pairlb: main and HA loop processes;
//               keepalived: all its processes), then SIGCONT
//   heartbeat   pairlb only: the intervals between lb1's heartbeats as lb2's HA loop handled them
//               (p50/p99/max), late heartbeats and role changes on both nodes, for --hb-seconds idle
//               and then --hb-seconds with wrk in the client namespace fetching 1 MiB responses
//               through the VIP (--hb-connections connections, 2 threads: the master's data plane
//               saturated, its GC driven by the responses); default HA timings (50/120/200 ms).
// crash/hang also report both_ms: the longest time both lb1 and lb2 held the VIP at once
// (`ip monitor address` in both namespaces) before the daemon was restarted (crash) or continued
// (hang), and what happened (outcome).
// Figures per round: first_reply_ms (t0 → earliest answer from the node that should serve: lb2 for
// node-dies/graceful, lb1 otherwise), outage_ms (longest gap between answers), failed (requests sent
// after t0 that got no answer within 1 s). Printed as min/median/max over the rounds.
import { mkdtempSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import * as L from './failover-lib.mjs';

const { values } = parseArgs({
  options: {
    rounds: { type: 'string', default: '5' },
    json: { type: 'string' },
    targets: { type: 'string', default: 'pairlb,keepalived-1s,keepalived-100ms' },
    scenarios: { type: 'string', default: 'node-dies,failback,crash,hang,graceful,link-cut,split-heal,heartbeat' },
    'hb-seconds': { type: 'string', default: '20' },
    'hb-connections': { type: 'string', default: '32' },
    isolation: { type: 'string' },
    verbose: { type: 'boolean', default: false },
  },
});
const ROUNDS = Number(values.rounds);
const TARGETS = values.targets.split(',');
const SCENARIOS = values.scenarios.split(',');
const SPLIT_MAX_MS = 60_000; // keepalived's blackhole after a split lasts ~26-33 s (keepalived#166)
const HANG_MS = 5000;
const HB_S = Number(values['hb-seconds']);
const HB_C = Number(values['hb-connections']);

if (process.getuid?.() !== 0) { console.error('bench:failover needs root (network namespaces)'); process.exit(2); }
for (const [bin, pkg] of [['/usr/sbin/keepalived', 'keepalived'], ['/usr/bin/arping', 'iputils-arping'], ['/usr/sbin/ip', 'iproute2']]) {
  if (!existsSync(bin)) { console.error(`missing ${bin}: apt-get install -y ${pkg}`); process.exit(2); }
}
if (!existsSync(L.MAIN)) { console.error('dist/ missing: run npx tsc -p . first'); process.exit(2); }

const log = (...a) => { if (values.verbose) console.error(new Date().toISOString().slice(11, 23), ...a); };
const sleep = L.sleep;

async function until(f, ms, what) {
  const end = Date.now() + ms;
  while (Date.now() < end) { if (await f()) return true; await sleep(20); }
  throw new Error(`timeout after ${ms} ms: ${what}`);
}

class Rig {
  constructor(target, topo, dir) {
    this.target = target; this.t = topo; this.dir = dir;
    this.ka = target.startsWith('keepalived') ? (target === 'keepalived-1s' ? 1 : 0.1) : undefined;
    this.procs = { lb1: [], lb2: [] };
  }

  async setup() {
    writeFileSync(join(this.dir, 'ha.key'), 'bench-key-' + 'x'.repeat(32), { mode: 0o600 });
    for (const n of ['lb1', 'lb2']) {
      writeFileSync(join(this.dir, `${n}.yaml`), L.pairlbConfig(n, { dir: this.dir, ha: this.ka === undefined, admin: true, haExtra: values.isolation ? `  isolation: ${values.isolation}\n` : '' }));
      if (this.ka !== undefined) writeFileSync(join(this.dir, `${n}-ka.conf`), L.keepalivedConfig(n, { advertInt: this.ka, dir: this.dir }));
    }
    await this.startNode('lb1');
    await this.startNode('lb2');
    this.poll = L.startPoller(this.t, { interval: 20, timeout: 1000, maxMs: 3_600_000 });
    this.mon = await L.vipMonitor(this.t);
    await this.steady('lb1', 30_000);
  }

  async startNode(n) {
    const p = L.startPairlb(this.t, n, join(this.dir, `${n}.yaml`), join(this.dir, `state-${n}`));
    this.procs[n] = [p];
    await p.waitFor((j) => typeof j === 'object' && j.msg === 'pairlb started', 10_000, `${n} started`);
    if (this.ka !== undefined) this.procs[n].push(L.startKeepalived(this.t, n, join(this.dir, `${n}-ka.conf`), this.dir));
  }

  /** The HA process of a node: pairlb itself, or keepalived. */
  haProc(n) { return this.procs[n][this.procs[n].length - 1]; }

  /** lb serves steadily: the last 25 requests (0.5 s) all answered by it. */
  steady(lb, ms = 20_000) {
    return until(() => {
      // The newest answer must be fresh too: requests hanging on a dead MAC are not in the samples yet.
      const s = this.poll.samples.slice(-25);
      return s.length === 25 && s.every((x) => x.ok && x.lb === lb) && Date.now() - s[24].s < 150;
    }, ms, `${lb} steadily serving (${this.target})`);
  }

  servedBy(lb, since, n = 5, ms = 15_000) {
    return until(() => this.poll.samples.filter((x) => x.ok && x.lb === lb && x.s >= since).length >= n, ms, `${n} answers from ${lb} (${this.target})`);
  }

  /** Every process of the node (pairlb, keepalived, their children): our own, in our namespace. */
  async pids(n) {
    const ns = this.t.ns(n === 'lb1' ? 'l1' : 'l2');
    const ours = new Set(this.mon?.pids ?? []); // the VIP monitor runs there too
    return (await L.run('ip', ['netns', 'pids', ns], { allowFail: true })).split('\n').filter(Boolean).map(Number).filter((p) => !ours.has(p));
  }

  async killNode(n, pids) {
    for (const pid of pids ?? await this.pids(n)) { try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ } }
    await Promise.all(this.procs[n].map((p) => p.exited));
  }

  /** Wait until the answers in flight have finished, then measure. */
  async measure(t0, to, tEnd) {
    await sleep(1200);
    return L.analyse(this.poll.samples, t0, to, tEnd);
  }

  async nodeDiesThenFailback() {
    await this.steady('lb1', 60_000);
    const pids = await this.pids('lb1');
    const t0 = Date.now();
    await Promise.all([this.killNode('lb1', pids), this.t.ip('l1', ['link', 'set', 'eth0', 'down'])]);
    await this.servedBy('lb2', t0, 10, 15_000);
    const dies = await this.measure(t0, 'lb2', Date.now());
    if (values.verbose) {
      const tl = this.haProc('lb2').logs.filter((j) => j.time && Date.parse(j.time) >= t0 - 100)
        .map((j) => `${Date.parse(j.time) - t0}ms ${j.msg}${j.ms !== undefined ? ` (${j.ms} ms)` : ''}`);
      log('lb2 timeline after kill:', tl.slice(0, 8).join(' | '));
    }
    await this.t.ip('l1', ['addr', 'flush', 'dev', 'eth0', 'to', `${L.NET.vip}/32`]); // a rebooted box has no VIP
    await this.t.ip('l1', ['link', 'set', 'eth0', 'up']);
    await sleep(300);
    const t1 = Date.now();
    await this.startNode('lb1');
    await this.servedBy('lb1', t1, 10, 20_000);
    await this.steady('lb1');
    const back = await this.measure(t1, 'lb1', Date.now());
    return { 'node-dies': dies, failback: back };
  }

  async graceful() {
    await this.steady('lb1', 60_000);
    const t0 = Date.now();
    const p = this.haProc('lb1');
    p.kill('SIGTERM');
    await this.servedBy('lb2', t0, 10, 15_000);
    await p.exited;
    const r = await this.measure(t0, 'lb2', Date.now());
    // Restore lb1 as master (not measured).
    if (this.ka !== undefined) this.procs.lb1.push(L.startKeepalived(this.t, 'lb1', join(this.dir, 'lb1-ka.conf'), this.dir));
    else await this.startNode('lb1');
    const t1 = Date.now();
    await this.servedBy('lb1', t1, 10, 20_000);
    await this.steady('lb1');
    return r;
  }

  async linkCut() {
    await this.steady('lb1', 60_000);
    const t0 = Date.now();
    await this.t.ip('l1', ['link', 'set', 'eth1', 'down']);
    await sleep(2000);
    await this.t.ip('l1', ['link', 'set', 'eth1', 'up']);
    const tUp = Date.now();
    await this.servedBy('lb1', tUp, 10, 20_000);
    await this.steady('lb1');
    return this.measure(t0, 'lb1', Date.now());
  }

  async splitHeal() {
    await this.steady('lb1', 60_000);
    const cut = Date.now();
    for (const n of ['l1', 'l2']) await this.t.exec(n, 'tc', ['qdisc', 'replace', 'dev', 'eth1', 'root', 'pfifo', 'limit', '0']);
    // Longer than keepalived's master-down interval at advert_int 1 (3 × 1 s + skew ≈ 3.6 s).
    await sleep(5000);
    const t0 = Date.now();
    for (const n of ['l1', 'l2']) await this.t.exec(n, 'tc', ['qdisc', 'del', 'dev', 'eth1', 'root']);
    // Settled when lb1 serves steadily again (keepalived: once the client's neighbour entry expires).
    await until(() => {
      const s = this.poll.samples.filter((x) => x.s >= t0).slice(-25);
      return s.length >= 25 && s.every((x) => x.ok && x.lb === 'lb1');
    }, SPLIT_MAX_MS, `lb1 steadily serving after the split (${this.target})`).catch((e) => log(String(e)));
    const r = await this.measure(t0, 'lb1', Date.now());
    r.split_ms = t0 - cut;
    return r;
  }

  /** pids of keepalived (main and VRRP child) in lb1's namespace. */
  async keepalivedPids(n) {
    const { readFileSync } = await import('node:fs');
    return (await this.pids(n)).filter((p) => { try { return readFileSync(`/proc/${p}/cmdline`, 'utf8').startsWith('/usr/sbin/keepalived'); } catch { return false; } });
  }

  /** Back to normal after crash/hang: lb1 master and serving steadily. */
  async restoreLb1(since) {
    await this.servedBy('lb1', since, 10, 30_000);
    await this.steady('lb1', 30_000);
  }

  /**
   * SIGKILL of the HA daemon alone, interface up. pairlb: its main process (its HA loop, a process
   * of its own, gives the VIP up and says FAULT). keepalived: its main process only (`systemctl
   * kill -s KILL` would hit all).
   */
  async crash() {
    await this.steady('lb1', 60_000);
    const p = this.haProc('lb1');
    const t0 = Date.now();
    p.kill('SIGKILL');
    await p.exited;
    // Up to 10 s for lb2 to answer; a keepalived whose VRRP child lives on may keep serving from lb1.
    const took = await this.servedBy('lb2', t0, 10, 10_000).then(() => true, () => false);
    const tEnd = Date.now();
    const r = await this.measure(t0, 'lb2', tEnd);
    r.both_ms = this.mon.bothHeldMs(t0, tEnd);
    r.outcome = took ? 'lb2 took over' : (r.by.lb1 ? 'lb1 kept serving' : 'no takeover');
    // Restart the daemon (systemd would): pairlb removes a stale VIP itself; keepalived's leftovers go.
    const t1 = Date.now();
    if (this.ka !== undefined) {
      for (const pid of await this.keepalivedPids('lb1')) { try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ } }
      await L.sleep(200);
      this.procs.lb1.pop();
      this.procs.lb1.push(L.startKeepalived(this.t, 'lb1', join(this.dir, 'lb1-ka.conf'), this.dir));
    } else await this.startNode('lb1');
    await this.restoreLb1(t1);
    return r;
  }

  /** SIGSTOP of the HA daemon (keepalived: every process of it) for HANG_MS, then SIGCONT. */
  async hang() {
    await this.steady('lb1', 60_000);
    const pids = this.ka !== undefined ? await this.keepalivedPids('lb1') : this.haProc('lb1').daemonPids();
    const t0 = Date.now();
    for (const pid of pids) process.kill(pid, 'SIGSTOP');
    try { await L.sleep(HANG_MS); } finally { for (const pid of pids) { try { process.kill(pid, 'SIGCONT'); } catch { /* gone */ } } }
    const tCont = Date.now();
    await L.sleep(1500);
    const r = await this.measure(t0, 'lb2', tCont);
    // Up to the SIGCONT: afterwards the failback's make-before-break overlaps on purpose (~250 ms).
    r.both_ms = this.mon.bothHeldMs(t0, tCont);
    r.outcome = r.by.lb2 ? 'lb2 took over' : (r.by.lb1 ? 'lb1 kept serving' : 'no takeover');
    if (values.verbose && this.ka === undefined) log('lb2 roles after SIGSTOP:', this.haProc('lb2').roles().filter((x) => x.at >= t0).map((x) => `${x.at - t0}ms ${x.to}: ${x.reason}`).join(' | '));
    await this.restoreLb1(tCont);
    return r;
  }

  /** The HA status of a node from its admin API (undefined when it does not answer). */
  status(n) { return L.adminStatus(join(this.dir, `${n}-admin.sock`)).then((s) => s?.ha); }

  /** Heartbeat intervals seen by lb2 for `seconds`, with or without wrk through the VIP. */
  async hbWindow(seconds, load) {
    const before = { lb1: await this.status('lb1'), lb2: await this.status('lb2') };
    const t0 = Date.now();
    let wrk;
    if (load) {
      const p = this.t.spawn('c', 'wrk', ['-t2', `-c${HB_C}`, `-d${seconds}s`, '--timeout', '5s', `http://${L.NET.vip}/big`], { name: 'wrk' });
      await p.exited;
      const txt = p.lines.join('\n');
      wrk = { rps: Number(/Requests\/sec:\s+([\d.]+)/.exec(txt)?.[1] ?? NaN), transfer: /Transfer\/sec:\s+(\S+)/.exec(txt)?.[1], errors: /Socket errors:.*|Non-2xx.*/.exec(txt)?.[0] ?? '' };
    } else await sleep(seconds * 1000);
    const after = { lb1: await this.status('lb1'), lb2: await this.status('lb2') };
    const bins = L.diffBins(before.lb2?.peerIntervals?.bins, after.lb2?.peerIntervals?.bins ?? {});
    const keys = Object.keys(bins).map(Number);
    const pc = L.percentilesOf(bins);
    const d = (n, k) => (after[n]?.[k] ?? NaN) - (before[n]?.[k] ?? NaN);
    return {
      seconds, load: load ? `wrk -t2 -c${HB_C} GET /big (1 MiB)` : 'idle',
      intervals: keys.reduce((s, k) => s + bins[k], 0), p50_ms: pc.p50Ms, p99_ms: pc.p99Ms, max_ms: keys.length ? Math.max(...keys) : null,
      late_at_lb2: d('lb2', 'lateHeartbeats'), late_at_lb1: d('lb1', 'lateHeartbeats'),
      role_changes: this.haProc('lb1').roles().filter((r) => r.at >= t0).length + this.haProc('lb2').roles().filter((r) => r.at >= t0).length,
      role_reasons: Object.entries(['lb1', 'lb2'].flatMap((n) => this.haProc(n).roles().filter((r) => r.at >= t0).map((r) => `${n} ${r.to}: ${String(r.reason).replace(/\d+ ms/g, 'N ms')}`)).reduce((m, k) => { m[k] = (m[k] ?? 0) + 1; return m; }, {})).map(([k, v]) => `${k} ×${v}`),
      peer_deaths: d('lb2', 'peerDeaths') + d('lb1', 'peerDeaths'),
      lb1_ha_loop_lag_max_ms: after.lb1?.loopLag?.maxMs, lb1_main_loop_lag_max_ms: after.lb1?.controlLoopLag?.maxMs,
      wrk,
    };
  }

  async heartbeat() {
    await this.steady('lb1', 60_000);
    const idle = await this.hbWindow(HB_S, false);
    const load = await this.hbWindow(HB_S, true);
    await this.steady('lb1', 30_000).catch((e) => log(String(e)));
    return { idle, load };
  }

  async teardown() {
    this.mon?.stop();
    await this.poll?.stop();
    for (const n of ['lb1', 'lb2']) await this.killNode(n).catch(() => {});
  }
}

const stats = (xs) => {
  const v = xs.filter((x) => x !== null && x !== undefined).sort((a, b) => a - b);
  if (!v.length) return null;
  return [v[0], v[Math.floor((v.length - 1) / 2)], v[v.length - 1]];
};

const results = {}; // scenario -> target -> [round figures]
const add = (sc, tg, f) => { ((results[sc] ??= {})[tg] ??= []).push(f); };

const started = Date.now();
let current;
for (const sig of ['SIGINT', 'SIGTERM']) {
  process.on(sig, () => {
    console.error(`${sig}: cleaning up namespaces`);
    (current ? current.destroy() : Promise.resolve()).finally(() => process.exit(130));
  });
}
for (const target of TARGETS) {
  const dir = mkdtempSync(join(tmpdir(), `pairlb-failover-${target}-`));
  const topo = await L.Topology.create();
  current = topo;
  const webs = [topo.startWeb('w1'), topo.startWeb('w2')];
  const rig = new Rig(target, topo, dir);
  try {
    await Promise.all(webs.map((w) => w.waitFor((l) => l === 'listening', 5000, 'web listening')));
    await rig.setup();
    for (let r = 0; r < ROUNDS; r++) {
      if (SCENARIOS.includes('node-dies') || SCENARIOS.includes('failback')) {
        const x = await rig.nodeDiesThenFailback();
        for (const [k, v] of Object.entries(x)) if (SCENARIOS.includes(k)) { add(k, target, v); log(target, k, JSON.stringify(v)); }
      }
      if (SCENARIOS.includes('crash')) { const v = await rig.crash(); add('crash', target, v); log(target, 'crash', JSON.stringify(v)); }
      if (SCENARIOS.includes('hang')) { const v = await rig.hang(); add('hang', target, v); log(target, 'hang', JSON.stringify(v)); }
      if (SCENARIOS.includes('graceful')) { const v = await rig.graceful(); add('graceful', target, v); log(target, 'graceful', JSON.stringify(v)); }
      if (SCENARIOS.includes('link-cut')) { const v = await rig.linkCut(); add('link-cut', target, v); log(target, 'link-cut', JSON.stringify(v)); }
      if (SCENARIOS.includes('split-heal')) { const v = await rig.splitHeal(); add('split-heal', target, v); log(target, 'split-heal', JSON.stringify(v)); }
      if (SCENARIOS.includes('heartbeat') && rig.ka === undefined) { const v = await rig.heartbeat(); add('heartbeat', target, v); log(target, 'heartbeat', JSON.stringify(v)); }
      process.stderr.write(`${target}: round ${r + 1}/${ROUNDS} done (${((Date.now() - started) / 1000).toFixed(0)} s)\n`);
    }
  } catch (e) {
    console.error(`${target}: ${e.stack ?? e}`);
    process.exitCode = 1;
  } finally {
    await rig.teardown().catch(() => {});
    await topo.destroy();
    rmSync(dir, { recursive: true, force: true });
  }
}

const fmt = (s) => (s ? `${s[0]} / ${s[1]} / ${s[2]}` : 'n/a');
const out = {};
console.log(`\nfailover: ${ROUNDS} rounds per scenario; client: new connection every 20 ms, 1 s timeout; min / median / max`);
for (const sc of SCENARIOS) {
  if (sc === 'heartbeat') {
    const rs = results.heartbeat?.pairlb ?? [];
    console.log(`\nheartbeat: lb1's adverts on the dedicated link as lb2's HA loop handled them (keepalive 50 ms, warntime 120, deadtime 200; isolation ${values.isolation ?? 'process (default)'})`);
    console.log(`  ${'window'.padEnd(34)} ${'intervals'.padEnd(10)} ${'p50 ms'.padEnd(7)} ${'p99 ms'.padEnd(7)} ${'max ms'.padEnd(7)} ${'late'.padEnd(5)} ${'role chg'.padEnd(9)} ${'lb1 loop lag max ms (ha/main)'.padEnd(30)} wrk req/s`);
    for (const r of rs) {
      for (const w of [r.idle, r.load]) {
        console.log(`  ${`${w.load}, ${w.seconds} s`.padEnd(34)} ${String(w.intervals).padEnd(10)} ${String(w.p50_ms).padEnd(7)} ${String(w.p99_ms).padEnd(7)} ${String(w.max_ms).padEnd(7)} ${String(w.late_at_lb2 + w.late_at_lb1).padEnd(5)} ${String(w.role_changes).padEnd(9)} ${`${w.lb1_ha_loop_lag_max_ms} / ${w.lb1_main_loop_lag_max_ms}`.padEnd(30)} ${w.wrk ? `${w.wrk.rps} (${w.wrk.transfer}/s) ${w.wrk.errors}` : ''}`);
      }
    }
    for (const r of rs) for (const w of [r.idle, r.load]) if (w.role_reasons.length) console.log(`  role changes (${w.load}): ${w.role_reasons.join('; ')}`);
    out.heartbeat = rs;
    continue;
  }
  console.log(`\n${sc}`);
  const extra = sc === 'crash' || sc === 'hang';
  console.log(`  ${'target'.padEnd(18)} ${'first reply ms'.padEnd(22)} ${'outage ms'.padEnd(22)} ${'failed requests'.padEnd(18)}${extra ? ` ${'both held VIP ms'.padEnd(20)} outcome` : ''}`);
  for (const tg of TARGETS) {
    const rs = results[sc]?.[tg] ?? [];
    const fr = stats(rs.map((x) => x.first_reply_ms)), ou = stats(rs.map((x) => x.outage_ms)), fa = stats(rs.map((x) => x.failed));
    (out[sc] ??= {})[tg] = { first_reply_ms: fr, outage_ms: ou, failed: fa, rounds: rs.length };
    let tail = '';
    if (extra) {
      const bo = stats(rs.map((x) => x.both_ms));
      const outcomes = rs.reduce((m, x) => { m[x.outcome] = (m[x.outcome] ?? 0) + 1; return m; }, {});
      Object.assign(out[sc][tg], { both_ms: bo, outcomes });
      tail = ` ${fmt(bo).padEnd(20)} ${Object.entries(outcomes).map(([k, v]) => `${k} ×${v}`).join(', ')}`;
    }
    console.log(`  ${tg.padEnd(18)} ${fmt(fr).padEnd(22)} ${fmt(ou).padEnd(22)} ${fmt(fa).padEnd(18)}${tail}`);
  }
}
if (values.json) { writeFileSync(values.json, JSON.stringify(out, null, 2) + '\n'); console.log(`\nwrote ${values.json}`); }
