#!/usr/bin/env node
// How long spawning a helper (`ip`, arping: what the HA loop does on a takeover) blocks the calling
// event loop, from a worker thread of a process with a large heap (ha.isolation: thread) and from
// a small process of its own (ha.isolation: process). fork/clone copies the caller's page tables:
// the whole process's, whichever thread calls it.
//
//   node bench/ha-spawn.mjs [--heap-mb 150] [--n 50]
import { spawn, fork } from 'node:child_process';
import { Worker, isMainThread, parentPort, workerData } from 'node:worker_threads';
import { fileURLToPath } from 'node:url';

const SELF = fileURLToPath(import.meta.url);
const arg = (k, d) => { const i = process.argv.indexOf(`--${k}`); return i > 0 ? Number(process.argv[i + 1]) : d; };

async function measure(n) {
  const ms = [];
  for (let i = 0; i < n; i++) {
    const t0 = performance.now();
    const c = spawn('/bin/true', [], { stdio: 'ignore' });
    ms.push(performance.now() - t0); // the synchronous part: what blocks this event loop
    await new Promise((r) => c.once('exit', r));
  }
  ms.sort((a, b) => a - b);
  return { p50: +ms[Math.floor(n / 2)].toFixed(2), p99: +ms[Math.min(n - 1, Math.floor(n * 0.99))].toFixed(2), max: +ms[n - 1].toFixed(2) };
}

if (!isMainThread && workerData?.probe) {
  parentPort.postMessage(await measure(workerData.n));
} else if (process.argv[2] === '--child') {
  process.send(await measure(Number(process.argv[3])));
  process.disconnect();
} else {
  const heapMb = arg('heap-mb', 150), n = arg('n', 50);
  // A data-plane-sized heap: live objects the fork has to map.
  const keep = [];
  for (let i = 0; i < heapMb; i++) keep.push(Buffer.alloc(1 << 20, i & 0xff), Array.from({ length: 2000 }, (_, j) => ({ i, j })));
  const thread = await new Promise((r) => new Worker(SELF, { workerData: { probe: true, n } }).once('message', r));
  const child = await new Promise((r) => fork(SELF, ['--child', String(n)], { execArgv: [] }).once('message', r));
  const rss = Math.round(process.memoryUsage().rss / 2 ** 20);
  console.log(JSON.stringify({ heap_mb: heapMb, main_rss_mb: rss, spawns: n, sync_spawn_ms: { worker_thread_of_big_process: thread, own_small_process: child } }, null, 1));
  keep.length = 0;
}
