#!/usr/bin/env node
// A/B of pairlb builds in one run: the same bench target (e.g. pairlb-w1-log) started from several
// checkouts' dist/ side by side, plus HAProxy, interleaved round by round, so that a change is
// judged against its own "before" under the same machine noise (requests per proxy CPU-second).
//
//   node bench/ab.mjs --target pairlb-w1-log --build base=/path/to/old/root --build new=. [--rounds 6 --duration 4]
//   node bench/ab.mjs --build undici=.@pairlb-undici-w1-log --build native=.@pairlb-w1-log
//   --stdout pipe: each build's stdout is a FIFO read by `cat > /dev/null` on the client CPU (as journald's
//   socket: a reader that is not a file), instead of a file; --stdout null: /dev/null (no file to write).
//   --threads: CPU per request of each thread kind (MainThread, WorkerThread, libuv-worker, V8Worker …),
//   user and system, summed over the rounds (from /proc/PID/task/TID/stat).
//
// A root is a directory with dist/cli/main.js whose node_modules resolve (e.g. a git worktree, or
// a copy of dist/ placed inside this checkout: `mkdir -p .ab/base && cp -r dist .ab/base/`).
import { parseArgs } from 'node:util';
import { mkdtempSync, mkdirSync, rmSync, symlinkSync } from 'node:fs';
import { execFileSync, spawn } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join, resolve, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { requireBinaries, cpuPlan, nofile } from './lib/env.mjs';
import { startBackends, startTarget } from './lib/targets.mjs';
import { runWrk } from './lib/wrk.mjs';
import { stopAll, killAllSync, treeCpu } from './lib/procs.mjs';
import { threadTimes, warmUntilSettled } from './lib/threads.mjs';
import { median } from './lib/report.mjs';

/** `--stdout pipe`: the FIFO readers. */
const readers = [];
process.on('exit', () => { for (const c of readers) { try { c.kill('SIGKILL'); } catch { /* gone */ } } });

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');

async function main() {
  const { values } = parseArgs({
    args: process.argv.slice(2),
    options: {
      target: { type: 'string', default: 'pairlb-w1-log' }, build: { type: 'string', multiple: true },
      rounds: { type: 'string', default: '6' }, duration: { type: 'string', default: '4' },
      path: { type: 'string', default: '/' }, threads: { type: 'boolean', default: false }, stdout: { type: 'string', default: 'file' }, peer: { type: 'string', default: 'haproxy' }, 'node-flags': { type: 'string' },
    },
  });
  // label=root[@target]: a build may run another target than --target (e.g. the native engine's).
  const builds = (values.build ?? [`new=${ROOT}`]).map((b) => {
    const i = b.indexOf('=');
    const [root, target] = b.slice(i + 1).split('@');
    return { label: b.slice(0, i), root: resolve(root), target: target ?? values.target };
  });
  const bins = requireBinaries();
  const plan = cpuPlan();
  const dir = mkdtempSync(join(tmpdir(), 'pairlb-ab-'));
  process.on('exit', killAllSync);
  const nodeFlags = values['node-flags'] ? values['node-flags'].split(/\s+/).filter(Boolean) : [];
  try {
    const backends = await startBackends(dir, bins, plan.client);
    const maxconn = Math.floor((nofile() - 200) / 2);
    const ts = [];
    for (const b of builds) {
      const d = join(dir, b.label);
      mkdirSync(d);
      // /dev/null: what writing the log file costs the kernel, left out.
      if (values.stdout === 'null') symlinkSync('/dev/null', join(d, `${b.target}.out`));
      if (values.stdout === 'pipe') {
        // startTarget opens `<dir>/<target>.out` for appending: a FIFO there, with its reader first.
        const fifo = join(d, `${b.target}.out`);
        execFileSync('mkfifo', [fifo]);
        // This process keeps a write end open (startTarget's log fd): the readers never see EOF, so
        // they are killed when the run ends, and never keep it alive.
        const cat = spawn('taskset', ['-c', String(plan.client ?? 0), 'sh', '-c', `exec cat "${fifo}" > /dev/null`], { stdio: 'ignore' });
        cat.unref();
        readers.push(cat);
      }
      ts.push({ label: b.label, t: await startTarget(b.target, { dir: d, bins, cpu: plan.proxy, backends, maxconn, root: b.root, nodeFlags }) });
    }
    // The reference peer (haproxy, or haproxy-2 beside two-worker targets; 'none' for none).
    const peer = values.peer === 'none' ? undefined : values.peer;
    if (peer) ts.push({ label: peer, t: await startTarget(peer, { dir, bins, cpu: plan.proxy, backends, maxconn, root: ROOT }) });
    const rows = new Map(ts.map((x) => [x.label, []]));
    const rps = new Map(ts.map((x) => [x.label, []]));
    // --threads: per build, thread name -> { user, sys } seconds and the requests they served.
    const thr = new Map(ts.map((x) => [x.label, { reqs: 0, by: new Map() }]));
    const secs = Number(values.duration);
    for (const x of ts) {
      await runWrk({ url: `http://127.0.0.1:${x.t.port}${values.path}`, secs: 1, headers: [], cpu: plan.client });
      // pairlb: until V8's background JIT/GC threads settle (a half-warm build loses the A/B).
      if (x.t.name.startsWith('pairlb')) {
        const { extra, share } = await warmUntilSettled(x.t.pids(), () => runWrk({ url: `http://127.0.0.1:${x.t.port}${values.path}`, secs: 1, headers: [], cpu: plan.client }));
        process.stdout.write(`warm-up: ${x.label} +${extra} s (V8 background ${(share * 100).toFixed(0)} % of its CPU)\n`);
      }
    }
    for (let r = 0; r < Number(values.rounds); r++) {
      // Rotate the order every round so no build always runs right after another.
      const order = ts.map((_, i) => ts[(i + r) % ts.length]);
      for (const x of order) {
        const pids = x.t.pids();
        const t0 = values.threads ? threadTimes(pids) : undefined;
        const c0 = treeCpu(pids);
        const w = await runWrk({ url: `http://127.0.0.1:${x.t.port}${values.path}`, secs, headers: [], cpu: plan.client });
        const cpu = treeCpu(pids) - c0;
        if (t0) {
          const acc = thr.get(x.label);
          acc.reqs += w.requests;
          for (const [k, v] of threadTimes(pids)) {
            const b = t0.get(k) ?? { user: 0, sys: 0 };
            const e = acc.by.get(v.name) ?? { user: 0, sys: 0, n: new Set() };
            e.user += v.user - b.user; e.sys += v.sys - b.sys; e.n.add(k);
            acc.by.set(v.name, e);
          }
        }
        const per = cpu > 0 ? w.requests / cpu : NaN;
        rows.get(x.label).push(per);
        rps.get(x.label).push(w.rps);
        process.stdout.write(`[${r + 1}] ${x.label.padEnd(10)} ${Math.round(w.rps).toString().padStart(7)} req/s  cpu ${cpu.toFixed(2)} s  req/CPU-s ${Math.round(per)}\n`);
      }
    }
    const base = rows.get(builds[0].label);
    process.stdout.write(`\n${values.target}, ${values.rounds} rounds x ${secs} s, req per proxy CPU-second (median; ratios: medians of per-round ratios)\n`);
    const hp = peer ? rows.get(peer) : undefined;
    const hpRps = peer ? rps.get(peer) : undefined;
    for (const [label, xs] of rows) {
      const vsBase = median(xs.map((x, i) => x / base[i]));
      const vsH = hp ? median(xs.map((x, i) => x / hp[i])) : NaN;
      const tH = hpRps ? median(rps.get(label).map((x, i) => x / hpRps[i])) : NaN;
      process.stdout.write(`  ${label.padEnd(10)} ${Math.round(median(xs)).toString().padStart(7)}   × ${builds[0].label} ${vsBase.toFixed(3)}   × ${peer ?? 'peer'} per CPU-s ${vsH.toFixed(3)}, req/s ${tH.toFixed(3)}\n`);
    }
    if (values.threads) {
      process.stdout.write('\nCPU per request by thread (µs, user+sys, summed over rounds; threads of that name)\n');
      for (const [label, acc] of thr) {
        const us = (s) => (s * 1e6 / acc.reqs).toFixed(1);
        let tu = 0, tsys = 0;
        const parts = [...acc.by].filter(([, e]) => e.user + e.sys > 0).sort((a, b) => (b[1].user + b[1].sys) - (a[1].user + a[1].sys))
          .map(([n, e]) => { tu += e.user; tsys += e.sys; return `${n}×${e.n.size} ${us(e.user)}+${us(e.sys)}`; });
        process.stdout.write(`  ${label.padEnd(10)} total ${us(tu)}+${us(tsys)} = ${us(tu + tsys)}   ${parts.join('   ')}\n`);
      }
    }
  } finally {
    await stopAll();
    for (const c of readers) { try { c.kill('SIGKILL'); } catch { /* gone */ } }
    rmSync(dir, { recursive: true, force: true });
  }
  return 0;
}

main().then((c) => { process.exitCode = c; }, async (e) => { process.stderr.write(`ab: ${e.stack ?? e}\n`); await stopAll(); process.exitCode = 1; });
