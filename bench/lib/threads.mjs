// Per-thread CPU of a target's processes (/proc/PID/task/TID/stat), by thread name: what a
// multi-worker target pays beside its data-plane threads (V8's platform threads: GC helpers and
// concurrent JIT compiles; the libuv threadpool; the control plane's main thread). Linux only.
import { readdirSync, readFileSync } from 'node:fs';

const CLK_TCK = 100;

/** Map `pid/tid` → { name, cpu, user, sys (seconds), vcs, ics (context switches) }. */
export function threadTimes(pids) {
  const out = new Map();
  for (const pid of pids) {
    let tids = [];
    try { tids = readdirSync(`/proc/${pid}/task`); } catch { continue; }
    for (const tid of tids) {
      try {
        const st = readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8');
        const name = st.slice(st.indexOf('(') + 1, st.lastIndexOf(')'));
        const f = st.slice(st.lastIndexOf(')') + 2).split(' ');
        const status = readFileSync(`/proc/${pid}/task/${tid}/status`, 'utf8');
        const vcs = Number(/voluntary_ctxt_switches:\s+(\d+)/.exec(status)?.[1] ?? 0);
        const ics = Number(/nonvoluntary_ctxt_switches:\s+(\d+)/.exec(status)?.[1] ?? 0);
        out.set(`${pid}/${tid}`, { name, cpu: (Number(f[11]) + Number(f[12])) / CLK_TCK, user: Number(f[11]) / CLK_TCK, sys: Number(f[12]) / CLK_TCK, vcs, ics });
      } catch { /* raced with exit */ }
    }
  }
  return out;
}

/** CPU seconds between two threadTimes() snapshots, summed by thread kind (name without `-N`). */
export function cpuByKind(a, b) {
  const kinds = new Map();
  for (const [k, x] of b) {
    const d = x.cpu - (a.get(k)?.cpu ?? 0);
    const kind = x.name.replace(/-\d+$/, '');
    kinds.set(kind, (kinds.get(kind) ?? 0) + d);
  }
  return kinds;
}

/**
 * Share of the process's CPU taken by V8's platform threads (`V8Worker`: concurrent/parallel GC
 * and background JIT compiles) between two snapshots. Right after start a Node data plane spends
 * 10–20 % of its CPU there (compiling its hot code); once warm, 1–3 %.
 */
export function v8Share(a, b) {
  const k = cpuByKind(a, b);
  let all = 0;
  for (const v of k.values()) all += v;
  return all > 0 ? (k.get('V8Worker') ?? 0) / all : 0;
}

/**
 * Warm a pairlb target until V8's background threads take < `below` of its CPU in a 1 s run
 * (warm: 1–2 %; right after start 10–20 %), at most `max` runs. `run1s()` puts 1 s of load on it.
 * Each worker's isolate compiles on its own share of the load, so `workers: 2` needs about twice
 * the warm-up of `workers: 1`. Returns the extra seconds spent and the last share.
 */
export async function warmUntilSettled(pids, run1s, { below = 0.03, max = 15 } = {}) {
  let extra = 0, share = 1;
  for (; extra < max; extra++) {
    const a = threadTimes(pids);
    await run1s();
    if ((share = v8Share(a, threadTimes(pids))) < below) break;
  }
  return { extra, share };
}
