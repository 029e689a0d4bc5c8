import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensurePackages } from '../helpers/sys.js';
import { NET, pairlbConfig, startPair, sleep, type Pair } from '../helpers/netns.js';

/**
 * "With HA the backup keeps no stale bans" (issue 14), on two real pairlb processes in network
 * namespaces. The per-client table is per node and in memory; every HA role change empties it.
 * The window here is 10 minutes, so without that a ban would outlive the whole test:
 * - the client is banned (429) on the master lb1, and on lb2 too (through lb2's own address,
 *   which its 0.0.0.0 bind serves while it is backup);
 * - lb1's public link goes down (FAULT; lb1 keeps running, with its table): lb2 takes the VIP
 *   and serves the client (200), its own ban gone;
 * - the link comes back, lb1 fails back (auto_failback): lb1 serves the client (200), its ban
 *   from before gone; the limit itself still holds afterwards (429 after `rate` more requests).
 */

ensurePackages(['iproute2', 'iputils-arping']);

const RATE = 4;
const TIMING = '  keepalive: 150ms\n  warntime: 360ms\n  deadtime: 600ms\n  garp: { probe_timeout: 400ms }\n';
let pair: Pair;

interface Answer { status: number; retryAfter?: string; peer?: string }

/** One GET from the client namespace on a new connection; null when nothing answered (1 s). */
async function get(host: string): Promise<Answer | null> {
  const js = `const h=require('node:http');const r=h.get({host:${JSON.stringify(host)},port:80,path:'/',agent:false,timeout:1000},(s)=>{let b='';s.on('data',(d)=>b+=d);s.on('end',()=>{let p;try{p=JSON.parse(b).peer}catch{}console.log(JSON.stringify({status:s.statusCode,retryAfter:s.headers['retry-after'],peer:p}))})});r.on('timeout',()=>r.destroy());r.on('error',()=>console.log('null'));`;
  const out = await pair.t.exec('c', process.execPath, ['-e', js], { allowFail: true });
  return JSON.parse(out.trim() || 'null');
}

/** Requests until one is answered at all (the client follows the GARP); bounded. */
async function firstAnswer(host: string, ms: number): Promise<Answer> {
  const end = Date.now() + ms;
  for (;;) {
    const a = await get(host);
    if (a !== null) return a;
    if (Date.now() > end) throw new Error(`no answer from ${host} within ${ms} ms`);
    await sleep(50);
  }
}

/** Bans the client on `host`: RATE answers 200, the next 429 with Retry-After. */
async function ban(host: string): Promise<Answer[]> {
  const got: Answer[] = [];
  for (let i = 0; i <= RATE; i++) got.push((await get(host))!);
  return got;
}

beforeAll(async () => {
  pair = await startPair({
    tag: 'htg', key: 'htg-limits-ha-key-0123456789abcdef',
    config: (node, dir) => pairlbConfig(node, { dir, haExtra: TIMING }).replace('    timeouts: { drain: 5s }\n',
      `    timeouts: { drain: 5s }\n    limits: { rate_per_source: ${RATE}, rate_period: 10m }\n`),
  });
}, 90_000);

afterAll(async () => { await pair?.destroy(); }, 30_000);

describe('per-client limits across HA role changes', () => {
  it('a client banned on the master and on the backup is served by the new master after a failover, and by the old one after failback', async () => {
    const { t, lb1, lb2 } = pair;
    // Banned on the master (through the VIP) and on the backup (its own address).
    const onMaster = await ban(NET.vip);
    expect(onMaster.map((a) => a.status)).toEqual([...Array(RATE).fill(200), 429]);
    expect(onMaster.slice(0, RATE).map((a) => a.peer)).toEqual(Array(RATE).fill(NET.lb1.pub));
    expect(Number(onMaster[RATE].retryAfter)).toBeGreaterThan(0);
    const onBackup = await ban(NET.lb2.pub);
    expect(onBackup.map((a) => a.status)).toEqual([...Array(RATE).fill(200), 429]);
    expect((await get(NET.vip))!.status).toBe(429); // still banned on lb1

    // Failover: lb1's public link goes down (FAULT), lb1 keeps running with its table.
    const t0 = Date.now();
    await t.ip('l1', ['link', 'set', 'eth0', 'down']);
    await lb1.waitRole('fault', 5000, t0);
    await lb2.waitRole('master', 5000, t0);
    const after = await firstAnswer(NET.vip, 10_000);
    expect(after).toMatchObject({ status: 200, peer: NET.lb2.pub });

    // Failback: the link comes back, lb1 (preferred, auto_failback) takes the VIP again.
    const t1 = Date.now();
    await t.ip('l1', ['link', 'set', 'eth0', 'up']);
    await lb1.waitRole('master', 15_000, t1);
    await lb2.waitRole('backup', 10_000, t1);
    // Until the client's ARP entry follows, answers may still come from lb2 (its table emptied
    // again when it went back to backup); none is a 429, and lb1's first answer is a 200.
    const seen: Answer[] = [];
    const end = Date.now() + 10_000;
    while (seen.at(-1)?.peer !== NET.lb1.pub) {
      if (Date.now() > end) throw new Error(`lb1 never answered after failback: ${JSON.stringify(seen)}`);
      const a = await get(NET.vip);
      if (a !== null) seen.push(a);
      else await sleep(50);
    }
    expect(seen.map((a) => a.status)).toEqual(Array(seen.length).fill(200));
    // The limit still holds on the new table: RATE in the window, then 429.
    const fromLb1 = seen.filter((a) => a.peer === NET.lb1.pub).length;
    const more: number[] = [];
    for (let i = fromLb1; i <= RATE; i++) more.push((await get(NET.vip))!.status);
    expect(more).toEqual([...Array(RATE - fromLb1).fill(200), 429]);
  }, 90_000);
});
