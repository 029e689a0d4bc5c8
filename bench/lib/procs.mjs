// Process plumbing for the bench: spawn pinned daemons, wait until they answer, read their CPU and
// RSS from /proc, and stop exactly the processes this run started (by PID, never by name).
import { spawn } from 'node:child_process';
import { readFileSync, readdirSync, readlinkSync } from 'node:fs';
import { createServer, connect } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';

const CLK_TCK = 100; // USER_HZ on Linux; /proc times are in these ticks.
const PAGE_KB = 4;

/** Every process this run started, so cleanup can stop them all (and only them). */
const started = new Set();

/** A free TCP port on 127.0.0.1 (bind 0, read, close; the short race is acceptable for a bench). */
export async function freePort() {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

/**
 * Start `cmd args` pinned to `cpu` (taskset -c) with stdout/stderr to `logFile`'s fd.
 * The returned handle remembers the PID; `stop()` signals that PID only.
 */
export function startPinned(name, cpu, cmd, args, { logFd, env } = {}) {
  const argv = cpu === undefined ? [cmd, ...args] : ['taskset', ['-c', String(cpu), cmd, ...args]];
  const child = cpu === undefined
    ? spawn(cmd, args, { stdio: ['ignore', logFd ?? 'ignore', logFd ?? 'ignore'], env: env ?? process.env })
    : spawn('taskset', ['-c', String(cpu), cmd, ...args], { stdio: ['ignore', logFd ?? 'ignore', logFd ?? 'ignore'], env: env ?? process.env });
  const h = {
    name,
    pid: child.pid,
    child,
    argv,
    exited: false,
    exitCode: null,
    async stop(graceMs = 3000) {
      if (h.exited) return;
      try { process.kill(h.pid, 'SIGTERM'); } catch { return; }
      const until = Date.now() + graceMs;
      while (!h.exited && Date.now() < until) await sleep(50);
      if (!h.exited) { try { process.kill(h.pid, 'SIGKILL'); } catch { /* gone */ } }
      const until2 = Date.now() + 2000;
      while (!h.exited && Date.now() < until2) await sleep(50);
    },
  };
  child.on('exit', (code, sig) => { h.exited = true; h.exitCode = code ?? sig; started.delete(h); });
  child.on('error', (e) => { h.exited = true; h.exitCode = String(e); started.delete(h); });
  started.add(h);
  return h;
}

/** Stop everything this run started, newest first. */
export async function stopAll() {
  const all = [...started].reverse();
  await Promise.all(all.map((h) => h.stop()));
}

/** Synchronous last resort for process 'exit': SIGKILL what is still alive. */
export function killAllSync() {
  for (const h of started) { try { process.kill(h.pid, 'SIGKILL'); } catch { /* gone */ } }
}

/** PIDs of `pid` and all its descendants (nginx master + workers; taskset execs in place). */
export function processTree(pid) {
  const children = new Map();
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const st = readFileSync(`/proc/${d}/stat`, 'utf8');
      const ppid = Number(st.slice(st.lastIndexOf(')') + 2).split(' ')[1]);
      if (!children.has(ppid)) children.set(ppid, []);
      children.get(ppid).push(Number(d));
    } catch { /* raced with exit */ }
  }
  const out = [];
  const stack = [pid];
  while (stack.length) {
    const p = stack.pop();
    out.push(p);
    for (const c of children.get(p) ?? []) stack.push(c);
  }
  return out;
}

/** utime+stime of one PID in seconds (0 if it is gone). */
export function cpuSeconds(pid) {
  try {
    const st = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = st.slice(st.lastIndexOf(')') + 2).split(' ');
    // fields after ")" start at index 0 = state (field 3); utime is field 14, stime 15.
    return (Number(f[11]) + Number(f[12])) / CLK_TCK;
  } catch { return 0; }
}

/** Summed CPU seconds of a set of PIDs. */
export function treeCpu(pids) {
  let s = 0;
  for (const p of pids) s += cpuSeconds(p);
  return s;
}

/** Summed RSS in MB of a set of PIDs (from /proc/PID/statm, resident pages). */
export function treeRssMb(pids) {
  let kb = 0;
  for (const p of pids) {
    try { kb += Number(readFileSync(`/proc/${p}/statm`, 'utf8').split(' ')[1]) * PAGE_KB; } catch { /* gone */ }
  }
  return kb / 1024;
}

/** Busy and total jiffies per CPU from /proc/stat, to see which core saturated during a run. */
export function cpuTimes() {
  const out = [];
  for (const line of readFileSync('/proc/stat', 'utf8').split('\n')) {
    const m = /^cpu(\d+) (.*)$/.exec(line);
    if (!m) continue;
    const v = m[2].trim().split(/\s+/).map(Number);
    const idle = v[3] + (v[4] ?? 0); // idle + iowait
    const total = v.slice(0, 8).reduce((a, b) => a + b, 0); // exclude guest (already in user)
    // irq + softirq: loopback packet processing mostly lands here and is charged to no process.
    out[Number(m[1])] = { busy: total - idle, total, irq: v[5] + v[6] };
  }
  return out;
}

/** Percent busy (and in irq/softirq) per CPU between two cpuTimes() snapshots. */
export function cpuBusyPct(a, b) {
  return b.map((x, i) => {
    const dt = x.total - (a[i]?.total ?? 0);
    return dt > 0 ? { busy: (100 * (x.busy - a[i].busy)) / dt, irq: (100 * (x.irq - a[i].irq)) / dt } : { busy: 0, irq: 0 };
  });
}

/** Resolve once GET http://host:port<path> answers with `status` (bounded by timeoutMs). */
export async function waitHttp(port, { path = '/', status = 200, timeoutMs = 15000, handle } = {}) {
  const until = Date.now() + timeoutMs;
  let last = 'no answer';
  while (Date.now() < until) {
    if (handle?.exited) throw new Error(`${handle.name} exited (${handle.exitCode}) before answering on port ${port}`);
    try {
      const got = await httpStatus(port, path);
      if (got === status) return;
      last = `status ${got}`;
    } catch (e) { last = e.code ?? String(e); }
    await sleep(100);
  }
  throw new Error(`nothing answered ${status} on 127.0.0.1:${port}${path} within ${timeoutMs} ms (last: ${last})`);
}

/** One raw HTTP/1.1 GET with Connection: close; resolves with the status code. */
export function httpStatus(port, path = '/') {
  return new Promise((resolve, reject) => {
    const s = connect(port, '127.0.0.1');
    let buf = '';
    s.setTimeout(2000, () => { s.destroy(); reject(Object.assign(new Error('timeout'), { code: 'ETIMEDOUT' })); });
    s.on('connect', () => s.write(`GET ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n`));
    s.on('data', (d) => {
      buf += d.toString('latin1');
      const m = /^HTTP\/1\.[01] (\d{3})/.exec(buf);
      if (m) { s.destroy(); resolve(Number(m[1])); }
    });
    s.on('error', reject);
    s.on('close', () => reject(Object.assign(new Error('closed'), { code: 'ECLOSED' })));
  });
}

/** Fetch the full response (head + body) of one GET, for sanity checks (headers, body length). */
export function httpGet(port, path = '/', headers = {}) {
  return new Promise((resolve, reject) => {
    const s = connect(port, '127.0.0.1');
    const chunks = [];
    s.setTimeout(3000, () => { s.destroy(); reject(new Error('timeout')); });
    const extra = Object.entries(headers).map(([k, v]) => `${k}: ${v}\r\n`).join('');
    s.on('connect', () => s.write(`GET ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\n${extra}Connection: close\r\n\r\n`));
    s.on('data', (d) => chunks.push(d));
    s.on('error', reject);
    s.on('close', () => {
      const raw = Buffer.concat(chunks);
      const sep = raw.indexOf('\r\n\r\n');
      if (sep < 0) { reject(new Error('no response head')); return; }
      const head = raw.subarray(0, sep).toString('latin1').split('\r\n');
      const status = Number(head[0].split(' ')[1]);
      const hdrs = {};
      for (const l of head.slice(1)) {
        const i = l.indexOf(':');
        const k = l.slice(0, i).trim().toLowerCase();
        hdrs[k] = hdrs[k] === undefined ? l.slice(i + 1).trim() : `${hdrs[k]}, ${l.slice(i + 1).trim()}`;
      }
      resolve({ status, headers: hdrs, body: raw.subarray(sep + 4) });
    });
  });
}

/** Socket inodes held open by a set of PIDs (from /proc/PID/fd). */
function socketInodes(pids) {
  const out = new Set();
  for (const p of pids) {
    let fds = [];
    try { fds = readdirSync(`/proc/${p}/fd`); } catch { continue; }
    for (const fd of fds) {
      try {
        const m = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/${p}/fd/${fd}`));
        if (m) out.add(m[1]);
      } catch { /* closed meanwhile */ }
    }
  }
  return out;
}

/**
 * Established TCP connections (IPv4) held by `pids` whose remote port is one of `ports`: how many
 * upstream connections a proxy keeps open to the backends at this moment.
 */
export function tcpConnsTo(pids, ports) {
  const inodes = socketInodes(pids);
  const want = new Set(ports);
  let n = 0;
  for (const line of readFileSync('/proc/net/tcp', 'utf8').split('\n').slice(1)) {
    const f = line.trim().split(/\s+/);
    if (f.length < 10 || f[3] !== '01') continue; // 01 = ESTABLISHED
    if (want.has(parseInt(f[2].split(':')[1], 16)) && inodes.has(f[9])) n++;
  }
  return n;
}
