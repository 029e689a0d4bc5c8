import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startPairlb, type PairlbProc } from '../helpers/proc.js';
import { ensureBuilt } from '../daemon/daemon.js';
import { BASES, Rng, handwritten, mutate } from './corpus.js';
import { RawConn, RecordingBackend, backendStates, esc, freshGet } from './harness.js';
import { pendingFor } from './pending.js';

/**
 * Bounded fuzz run (issue 10) against the real `pairlb start` process, both engines: seeded random
 * mutations of valid requests and of the differential corpus, each followed by a canary request
 * on the same connection (when it is still open after the mutation's answer) and one on a fresh
 * connection. Each canary has a unique path that the recording backend echoes, so a response
 * meant for someone else is seen at once. Asserted throughout:
 *   - the process never exits;
 *   - no desynchronisation: every canary gets its own response (never another one's);
 *   - what pairlb forwards always passes the strict parser (strict.ts);
 *   - backends stay UP (admin API) — a client's garbage never counts against a backend;
 *   - memory stays bounded: JS heap capped (a leak is an OOM exit), RSS under RSS_BOUND_MB.
 *
 * Mutations that match a known-pending item (pending.ts) are generated but not sent.
 *
 * PAIRLB_FUZZ_SECONDS (default 180 with CI=true, 20 otherwise), PAIRLB_FUZZ_SEED (default: from
 * the clock, printed). Loop bounded by time and by MAX_ITERATIONS.
 */

const SECONDS = Number(process.env.PAIRLB_FUZZ_SECONDS ?? (process.env.CI === 'true' ? 180 : 20));
const SEED = Number(process.env.PAIRLB_FUZZ_SEED ?? (Date.now() % 1_000_000_007));
const MAX_ITERATIONS = 200_000;
/**
 * Concurrent fuzzing clients, so that canaries of one meet the garbage of the other in the pools.
 * Two, not more: the CI run lasts 180 s beside other test files on 2 cores (HA timing tests).
 */
const CLIENTS = 2;
/**
 * Memory: pairlb runs here with its old generation capped at OLD_SPACE_MB, so that a leak of JS
 * objects (requests, sockets, parsers held after their exchange) ends in a heap OOM, i.e. the
 * process exits and the test fails; and its RSS must stay under RSS_BOUND_MB, which catches what
 * lives outside the JS heap (buffers, native handles). Without the cap, Node 24 lets the heap grow
 * to ~220 MiB under this load before a major GC brings it back to ~105 (measured: 22,000 mutations
 * in 180 s); with it RSS rises to ~157 MiB in the first 30 s, then creeps to 165-172 MiB as the old
 * space fills towards the cap (measured with CI=true: 28,840 mutations in 180 s, 186 MiB at most),
 * leaving ~70 MiB of headroom.
 */
const OLD_SPACE_MB = 96;
const RSS_BOUND_MB = 256;
/** Checks (process, RSS, backend states) every this many mutations per client. */
const CHECK_EVERY = 50;

describe('fuzz: random mutations against the running pairlb', () => {
  let dir: string;
  let pairlb: PairlbProc | undefined;
  const backends = { undici: new RecordingBackend('undici'), native: new RecordingBackend('native') };
  const sock = (): string => join(dir, 'admin.sock');

  beforeAll(async () => {
    ensureBuilt();
    dir = mkdtempSync(join(tmpdir(), 'pairlb-fuzz-'));
    for (const b of Object.values(backends)) await b.start();
    const listen = (engine: 'undici' | 'native') => `  - name: ${engine}
    bind: 127.0.0.1:0
    engine: ${engine}
    timeouts: { http_request: 500ms, server: 5s, client: 10s }
    check: { path: /__health, interval: 1s }
    backends:
      - { name: b, address: "${backends[engine].address}" }
`;
    pairlb = await startPairlb(`global:\n  node: fuzz\n  log: { level: info, access: off }\nadmin:\n  socket: ${sock()}\nlisten:\n${listen('undici')}${listen('native')}`,
      { dir, env: { NODE_OPTIONS: `${process.env.NODE_OPTIONS ?? ''} --max-old-space-size=${OLD_SPACE_MB}`.trim() } });
    const end = Date.now() + 15_000;
    for (;;) {
      const st = await backendStates(sock());
      if (Object.values(st).every((s) => s === 'UP')) break;
      if (Date.now() > end) throw new Error(`backends not UP at start: ${JSON.stringify(st)}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  });

  afterAll(async () => {
    await pairlb?.stop();
    for (const b of Object.values(backends)) await b.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it(`survives ${SECONDS} s of mutated requests: no exit, no desync, backends UP, RSS bounded`, async () => {
    console.log(`fuzz: seed ${SEED} (replay with PAIRLB_FUZZ_SEED=${SEED}), ${SECONDS} s, ${CLIENTS} clients`);
    const p = pairlb!;
    let exited: string | null = null;
    p.child.once('exit', (code, sig) => { exited = `pairlb exited (code ${code}, signal ${sig})`; });
    const ports = { undici: p.port('undici'), native: p.port('native') };
    const pool = [...BASES, ...handwritten().map((c) => c.bytes.toString('latin1'))];
    const failures: string[] = [];
    const pending = new Map<string, number>();
    const stats = { mutations: 0, sameConnCanaries: 0, sameConnClosed: 0, inconclusive: 0, fresh: 0 };
    const until = Date.now() + SECONDS * 1000;

    // Warm-up: a few rounds of everything, then take the RSS reference.
    for (const port of Object.values(ports)) for (let i = 0; i < 20; i++) await freshGet(port, `/__warm/${i}`);
    const rssRef = p.rssKb();
    let rssMax = rssRef;
    const rssSamples: number[] = [];
    let lastSample = 0;

    const fail = (what: string, engine: string, bytes: Buffer, ops: string): void => {
      failures.push(`[${engine}] ${what}\n    mutation: ${ops}\n    input: '${esc(bytes)}'`);
    };

    async function check(where: string): Promise<void> {
      if (exited) throw new Error(`${exited} (${where})`);
      const rss = p.rssKb();
      rssMax = Math.max(rssMax, rss);
      if (Date.now() - lastSample > 5000) { lastSample = Date.now(); rssSamples.push(Math.round(rss / 1024)); }
      if (rss > RSS_BOUND_MB * 1024) throw new Error(`RSS ${Math.round(rss / 1024)} MiB > ${RSS_BOUND_MB} MiB (${where}; ${Math.round(rssRef / 1024)} MiB after warm-up)`);
      const st = await backendStates(sock());
      if (st['undici/b'] !== 'UP' || st['native/b'] !== 'UP') throw new Error(`backends not UP (${where}): ${JSON.stringify(st)}; last failures:\n${failures.slice(-3).join('\n')}`);
    }

    // What each client is sending now, to attribute the backend's strict-parser errors: client k
    // connects from 127.0.0.(10+k), which pairlb puts last in X-Forwarded-For.
    const current: { engine: string; bytes: Buffer; ops: string; reported: boolean }[] = [];
    for (const b of Object.values(backends)) {
      b.onError = (e) => {
        const k = e.xff?.startsWith('127.0.0.') ? Number(e.xff.slice(8)) - 10 : -1;
        const c = current[k];
        if (!c) { failures.push(`[${b.name}] the strict parser refused what pairlb forwarded, from no fuzzing client: ${e.reason} in ${e.bytes}`); return; }
        if (!c.reported) { c.reported = true; fail(`the strict parser refused what pairlb forwarded: ${e.reason} in ${e.bytes}`, c.engine, c.bytes, c.ops); }
      };
    }

    async function client(k: number): Promise<void> {
      const rng = new Rng(SEED + k);
      const from = `127.0.0.${10 + k}`;
      for (let i = 0; i < MAX_ITERATIONS && Date.now() < until && failures.length < 20; i++) {
        const engine = rng.int(2) ? 'native' : 'undici';
        const port = ports[engine];
        const base = rng.pick(pool);
        const m = mutate(rng, base);
        const ops = `client ${k} #${i}: ${m.ops.join(', ')}`;
        // Inputs of a known-pending item are not sent: until its fix lands they would take the
        // backend DOWN (a client error counted against it) and every later canary would fail.
        const pend = pendingFor(m.bytes);
        if (pend) { pending.set(`${pend.owner}: ${pend.item}`, (pending.get(`${pend.owner}: ${pend.item}`) ?? 0) + 1); continue; }
        current[k] = { engine, bytes: m.bytes, ops, reported: false };
        stats.mutations++;
        const conn = new RawConn(port, m.bytes.subarray(0, 5).toString('latin1') === 'HEAD ', from);
        conn.write(m.bytes);
        await conn.until(() => conn.reader.responses.length > 0 || conn.reader.tunnel, 1500);
        const canary = `/__c/${k}-${i}`;
        if (!conn.closed && conn.reader.responses.length > 0 && !conn.reader.tunnel) {
          const n = conn.reader.responses.length;
          conn.write(`GET ${canary} HTTP/1.1\r\nHost: canary.test\r\n\r\n`);
          await conn.until(() => conn.reader.responses.some((r) => r.body === canary), 2000);
          const mine = conn.reader.responses.some((r) => r.body === canary);
          const foreign = conn.reader.responses.slice(n).find((r) => r.body.startsWith('/__c/') && r.body !== canary);
          if (foreign) fail(`desync: the canary on the same connection got ${JSON.stringify(foreign.body)}`, engine, m.bytes, ops);
          else if (mine) stats.sameConnCanaries++;
          else if (conn.closed && conn.reader.responses.length === n) stats.sameConnClosed++;
          else stats.inconclusive++; // the mutation left a body open: the canary is its body
        } else stats.inconclusive++;
        conn.destroy();
        const fresh = await freshGet(port, `${canary}-fresh`, 5000, from);
        if (!fresh || fresh.body !== `${canary}-fresh`) fail(`the canary on a fresh connection got ${fresh ? `${fresh.status} ${JSON.stringify(fresh.body.slice(0, 80))}` : 'no response'}`, engine, m.bytes, ops);
        else stats.fresh++;
        if (i % CHECK_EVERY === CHECK_EVERY - 1) await check(`client ${k} after #${i}`);
      }
    }

    await Promise.all(Array.from({ length: CLIENTS }, (_x, k) => client(k)));
    await check('end');
    console.log(`fuzz: ${stats.mutations} mutations; same-connection canaries answered ${stats.sameConnCanaries}, connection closed by pairlb ${stats.sameConnClosed}, inconclusive (body left open) ${stats.inconclusive}; fresh canaries ${stats.fresh}; RSS ${Math.round(rssRef / 1024)} → max ${Math.round(rssMax / 1024)} MiB (every ~5 s: ${rssSamples.join(' ')})`);
    if (pending.size) console.log(`fuzz: mutations not sent, known pending (other items of issue 10): ${JSON.stringify(Object.fromEntries(pending))}`);
    expect(failures, `seed ${SEED}:\n${failures.join('\n\n')}`).toEqual([]);
    expect(exited).toBeNull();
  }, SECONDS * 1000 + 120_000);
});
