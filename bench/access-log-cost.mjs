#!/usr/bin/env node
// What the access log itself costs per line, without a proxy around it: the real AccessLog of a
// build's dist/ (JSON, the default) writing K lines per event-loop turn to a file on a descriptor,
// as a bench target's stdout. Under load pairlb finishes about one request per turn, so K=1 is
// the case that matters. CPU per line of the whole process (the libuv threadpool included) and of
// the calling thread, minus the same loop with no access log (the harness). Builds run one after
// the other, each in its own process, pinned to CPU1 when there are two; repeat with --repeat.
//
//   node bench/access-log-cost.mjs --build base=/path/to/old/root --build new=. [--per-turn 1,2,8] [--lines 200000] [--repeat 3]
//
// (take the bench lock like any bench: it is CPU-bound on one core)
import { parseArgs } from 'node:util';
import { spawnSync } from 'node:child_process';
import { availableParallelism } from 'node:os';
import { resolve, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { openSync, readFileSync, unlinkSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');

if (process.env.ALOG_CHILD) {
  // One measurement: ALOG_CHILD = JSON { root, k, n, noop, file }.
  const { root, k, n, noop, file } = JSON.parse(process.env.ALOG_CHILD);
  const { createLogger } = await import(`${root}/dist/log.js`);
  const { AccessLog } = await import(`${root}/dist/proxy/access-log.js`);
  const fd = openSync(file, 'a');
  const a = new AccessLog(createLogger('info', fd).child({ worker: 0 }), { level: 'info', access: 'json' });
  const l = { s: { name: 'plain', logListen: ',"listen":"plain"' } };
  const sock = { remoteAddress: '127.0.0.1', remotePort: 40123 };
  const route = { name: 'w1' };
  const ex = () => {
    const t = performance.now();
    return { req: { method: 'GET', url: '/', headers: {}, httpVersion: '1.1' }, socket: sock, start: t - 0.3, tConnect: t - 0.25, tHeaders: t - 0.1, tw: 0, status: 200, termination: '--', attempts: 1, srvQueue: 0, backendQueue: 0, route };
  };
  const threadCpu = () => {
    const st = readFileSync('/proc/thread-self/stat', 'utf8');
    const f = st.slice(st.lastIndexOf(')') + 2).split(' ');
    return (Number(f[11]) + Number(f[12])) * 10_000; // µs (100 ticks/s)
  };
  const c0 = process.cpuUsage(); const t0 = threadCpu();
  let i = 0;
  await new Promise((done) => {
    const turn = () => {
      for (let j = 0; j < k; j++) { const e = ex(); if (!noop) a.write(l, e, performance.now(), 41, 200); }
      i += k;
      if (i < n) setImmediate(turn); else done();
    };
    setImmediate(turn);
  });
  a.close();
  // Let an asynchronous write (the SonicBoom path) complete and be counted.
  await new Promise((ok) => setTimeout(ok, 200));
  const c = process.cpuUsage(c0); const t = threadCpu() - t0;
  const lines = noop ? 0 : readFileSync(file, 'latin1').split('\n').length - 1;
  process.stdout.write(JSON.stringify({ proc: (c.user + c.system) / n, thread: t / n, lines }) + '\n');
  process.exit(0);
}

const { values } = parseArgs({
  args: process.argv.slice(2),
  options: { build: { type: 'string', multiple: true }, 'per-turn': { type: 'string', default: '1,2,8' }, lines: { type: 'string', default: '200000' }, repeat: { type: 'string', default: '3' } },
});
const builds = (values.build ?? [`new=${ROOT}`]).map((b) => { const i = b.indexOf('='); return { label: b.slice(0, i), root: resolve(b.slice(i + 1)) }; });
const n = Number(values.lines);
const pin = availableParallelism() >= 2 ? ['taskset', '-c', '1'] : [];
const dir = mkdtempSync(join(tmpdir(), 'pairlb-alog-cost-'));
const median = (xs) => { const s = [...xs].sort((a, b) => a - b); return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2; };
function once(root, k, noop) {
  const file = join(dir, `out-${process.pid}.log`);
  const cmd = [...pin, process.execPath, fileURLToPath(import.meta.url)];
  const r = spawnSync(cmd[0], cmd.slice(1), { env: { ...process.env, ALOG_CHILD: JSON.stringify({ root, k, n, noop, file }) }, encoding: 'utf8' });
  try { unlinkSync(file); } catch { /* none */ }
  if (r.status !== 0) throw new Error(`child failed: ${r.stderr}`);
  const m = JSON.parse(r.stdout.trim().split('\n').pop());
  if (!noop && m.lines !== n) throw new Error(`${root}: ${m.lines} lines in the file, expected ${n}`);
  return m;
}
try {
  process.stdout.write(`access log JSON lines to a file, ${n} lines per run, median of ${values.repeat}; µs of CPU per line net of the harness (process incl. threadpool / calling thread)\n`);
  for (const k of values['per-turn'].split(',').map(Number)) {
    const row = [];
    for (const b of builds) {
      const proc = []; const thread = [];
      for (let r = 0; r < Number(values.repeat); r++) {
        const base = once(b.root, k, true);
        const m = once(b.root, k, false);
        proc.push(m.proc - base.proc); thread.push(m.thread - base.thread);
      }
      row.push(`${b.label} ${median(proc).toFixed(2)} / ${median(thread).toFixed(2)}`);
    }
    process.stdout.write(`  ${String(k).padStart(2)} line(s) per turn: ${row.join('   ')}\n`);
  }
} finally { rmSync(dir, { recursive: true, force: true }); }
