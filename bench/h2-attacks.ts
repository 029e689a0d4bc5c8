/**
 * HTTP/2 attacks against pairlb and HAProxy, same backends, same raw frame sequences
 * (test/helpers/h2-attacks.ts), h2c prior knowledge on a plain bind (pairlb `h2c: true`,
 * HAProxy `bind … proto h2`). Per attack and target, medians over --rounds:
 *   - cut ms: first attack frame → the server closed the connection (or refused the stream);
 *   - RSS +MB: peak (sampled every 20 ms) minus before, over the proxy's processes;
 *   - CPU s: the proxy's CPU time (every thread) during the attack;
 *   - canary p50 ms during the attack vs alone: a well-behaved node:http2 client in its own
 *     process (bench/lib/h2-canary.mjs), its own connection, one GET / every 10 ms.
 *
 *   npm run bench:h2-attacks                 # 3 rounds, pairlb (1 worker) and HAProxy 2.6 (nbthread 1)
 *   npm run bench:h2-attacks -- --rounds 1 --attacks rapid_reset,ping_flood --targets pairlb-w1
 *
 * Timers are shortened on both so the slow cases take seconds: pairlb `h2_limits: { stream_idle:
 * 2s, idle: 3s }`, HAProxy `timeout client 3s` (its HTTP/2 idle bound); every other bound is each
 * proxy's default. Proxies on CPU1, backends and this script on CPU0.
 */
import http2 from 'node:http2';
import { execFileSync, fork } from 'node:child_process';
import { mkdtempSync, openSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
// @ts-expect-error plain .mjs helpers of the bench
import { requireBinaries, versions, cpuPlan, loadAvg, build } from './lib/env.mjs';
// @ts-expect-error plain .mjs helpers of the bench
import { startBackends, startTarget } from './lib/targets.mjs';
// @ts-expect-error plain .mjs helpers of the bench
import { haproxyConfig, pairlbH2Extra } from './lib/configs.mjs';
// @ts-expect-error plain .mjs helpers of the bench
import { freePort, startPinned, stopAll, killAllSync, treeCpu, treeRssMb } from './lib/procs.mjs';
// @ts-expect-error plain .mjs helpers of the bench
import { h2Get, waitFor } from './lib/tls.mjs';
import {
  continuationFlood, hpackBomb, oversizedHeaders, pingFlood, prefaceOnly, rapidReset, settingsBurst, settingsFlood, tooManyStreams, zeroWindow,
  type Attack, type AttackResult,
} from '../test/helpers/h2-attacks.js';
import { ERROR_NAMES } from '../test/helpers/h2-frames.js';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const ATTACKS: Record<string, Attack> = {
  rapid_reset: rapidReset, continuation: continuationFlood, hpack_bomb: hpackBomb, settings_flood: settingsFlood,
  settings_burst: settingsBurst, ping_flood: pingFlood, zero_window: zeroWindow(10), too_many_streams: tooManyStreams(200),
  oversized_headers: oversizedHeaders(20_000), preface_only: prefaceOnly,
};
const { values } = parseArgs({
  options: {
    rounds: { type: 'string', default: '3' },
    targets: { type: 'string', default: 'pairlb-w1,haproxy' },
    attacks: { type: 'string', default: Object.keys(ATTACKS).join(',') },
    json: { type: 'string' },
    keep: { type: 'boolean', default: false },
  },
});
const ROUNDS = Number(values.rounds);
const TARGETS = values.targets!.split(',');
const NAMES = values.attacks!.split(',');
for (const n of NAMES) if (!ATTACKS[n]) throw new Error(`unknown attack ${n}; known: ${Object.keys(ATTACKS).join(', ')}`);

interface Target { name: string; port: number; pids(): number[] }
interface Row { target: string; attack: string; cutMs: number; closed: boolean; what: string; rssMb: number; cpuS: number; canaryP50: number; canaryN: number; canaryFail: number }

const median = (xs: number[]): number => { const s = [...xs].sort((a, b) => a - b); return s.length ? (s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2) : NaN; };

/** What the server did, in words: GOAWAY code, RST_STREAM codes, or a bare close. */
function what(r: AttackResult): string {
  const parts: string[] = [];
  if (r.goaway !== undefined) parts.push(`GOAWAY ${ERROR_NAMES[r.goaway] ?? r.goaway}`);
  for (const [code, n] of r.resets) parts.push(`RST ${ERROR_NAMES[code] ?? code}×${n}`);
  if (!parts.length) parts.push(r.closed ? 'closed' : 'open');
  return parts.join(', ');
}

/** A paced canary in its own process (bench/lib/h2-canary.mjs, on this script's CPU): GET / every 10 ms on its own connection. */
async function canary(port: number): Promise<{ stop(): Promise<{ lat: number[]; fail: number }> }> {
  const child = fork(join(ROOT, 'bench', 'lib', 'h2-canary.mjs'), [String(port)], { stdio: ['ignore', 'ignore', 'inherit', 'ipc'] });
  await new Promise<void>((resolve, reject) => { child.once('message', () => resolve()); child.once('exit', (c) => reject(new Error(`canary exited ${c}`))); });
  return {
    stop: () => new Promise((resolve) => { child.once('message', (m) => resolve(m as { lat: number[]; fail: number })); child.send('stop'); }),
  };
}

async function measure(t: Target, attack: Attack): Promise<Omit<Row, 'target' | 'attack'>> {
  const pids = t.pids();
  const rss0 = treeRssMb(pids);
  let peak = rss0;
  const sampler = setInterval(() => { peak = Math.max(peak, treeRssMb(pids)); }, 20);
  const c = await canary(t.port);
  await new Promise((r) => setTimeout(r, 100));
  const cpu0 = treeCpu(pids);
  const r = await attack({ port: t.port, path: '/', bigPath: '/large', slowPath: '/' }, { maxMs: 15_000 });
  const cpuS = treeCpu(pids) - cpu0;
  const can = await c.stop();
  clearInterval(sampler);
  r.conn.destroy();
  return { cutMs: r.cutMs, closed: r.closed, what: what(r), rssMb: peak - rss0, cpuS, canaryP50: median(can.lat), canaryN: can.lat.length, canaryFail: can.fail };
}

async function baseline(t: Target): Promise<number> {
  const c = await canary(t.port);
  await new Promise((r) => setTimeout(r, 2000));
  return median((await c.stop()).lat);
}

async function main(): Promise<void> {
  const bins = requireBinaries();
  const plan = cpuPlan();
  if (plan.client !== undefined) { try { execFileSync('taskset', ['-p', '-c', String(plan.client), String(process.pid)], { stdio: 'ignore' }); } catch { /* not fatal */ } }
  build(ROOT);
  const dir = mkdtempSync(join(tmpdir(), 'h2g-bench-'));
  console.log(`# bench:h2-attacks ${new Date().toISOString()} — ${plan.note}; load ${loadAvg()}`);
  const v = versions(bins);
  console.log(`# ${v.haproxy}; pairlb ${process.version} (node); rounds ${ROUNDS}`);
  const backends = await startBackends(dir, bins, plan.client);
  const rows: Row[] = [];
  const base: Record<string, number> = {};
  try {
    for (const name of TARGETS) {
      let t: Target;
      if (name === 'haproxy') {
        const port = await freePort();
        const conf = (haproxyConfig({ fronts: [{ name: 'h2c', port, proto: 'h2' }], backends: backends.map((b: { port: number }) => b.port), maxconn: 4096, threads: 1 }) as string)
          .replace('timeout client 30s', 'timeout client 3s').replace('timeout http-keep-alive 30s', 'timeout http-keep-alive 3s');
        writeFileSync(join(dir, 'haproxy.cfg'), conf);
        const handle = startPinned('haproxy', plan.proxy, bins.haproxy, ['-db', '-f', join(dir, 'haproxy.cfg')], { logFd: openSync(join(dir, 'haproxy.out'), 'a') });
        await waitFor(() => h2Get(port, { tls: false }), handle, `HTTP/2 on ${port}`);
        t = { name, port, pids: () => [handle.pid] };
      } else {
        const s = await startTarget(name, { dir, bins, cpu: plan.proxy, backends, maxconn: 4096, root: ROOT,
          fronts: [{ name: 'h2c', h2: true, extra: pairlbH2Extra('plain', '    h2_limits: { stream_idle: 2s, idle: 3s }\n') }] });
        t = { name, port: s.ports.h2c, pids: s.pids };
      }
      base[name] = await baseline(t);
      for (const attack of NAMES) {
        const runs: Omit<Row, 'target' | 'attack'>[] = [];
        for (let i = 0; i < ROUNDS; i++) runs.push(await measure(t, ATTACKS[attack]));
        const m = (k: 'cutMs' | 'rssMb' | 'cpuS' | 'canaryP50') => median(runs.map((x) => x[k]));
        const row: Row = { target: name, attack, cutMs: m('cutMs'), closed: runs.every((x) => x.closed), what: runs[runs.length - 1].what, rssMb: m('rssMb'), cpuS: m('cpuS'), canaryP50: m('canaryP50'),
          canaryN: runs.reduce((n, x) => n + x.canaryN, 0), canaryFail: runs.reduce((n, x) => n + x.canaryFail, 0) };
        rows.push(row);
        console.log(`${name.padEnd(10)} ${attack.padEnd(18)} cut ${row.cutMs.toFixed(0).padStart(5)} ms  RSS +${row.rssMb.toFixed(1).padStart(5)} MB  CPU ${row.cpuS.toFixed(2)} s  canary p50 ${row.canaryP50.toFixed(2)} ms (alone ${base[name].toFixed(2)}; ${row.canaryN} ok, ${row.canaryFail} failed)  ${row.closed ? '' : '[not closed] '}${row.what}`);
      }
    }
  } finally {
    await stopAll();
    if (!values.keep) rmSync(dir, { recursive: true, force: true }); else console.log(`# kept ${dir}`);
  }
  console.log('\n| attack | target | time to cut, ms | RSS growth, MB | proxy CPU, s | canary p50 during / alone, ms | what the client saw |');
  console.log('|---|---|---|---|---|---|---|');
  for (const r of rows) console.log(`| ${r.attack} | ${r.target} | ${r.cutMs.toFixed(0)} | ${r.rssMb.toFixed(1)} | ${r.cpuS.toFixed(2)} | ${r.canaryP50.toFixed(2)} / ${base[r.target].toFixed(2)}${r.canaryFail ? ` (${r.canaryFail} failed)` : ''} | ${r.closed ? '' : 'not closed; '}${r.what} |`);
  if (values.json) writeFileSync(values.json, JSON.stringify({ at: new Date().toISOString(), rounds: ROUNDS, baseline: base, rows }, null, 2));
}

process.on('SIGINT', () => { killAllSync(); process.exit(130); });
main().catch((e) => { killAllSync(); console.error(e); process.exit(1); });
