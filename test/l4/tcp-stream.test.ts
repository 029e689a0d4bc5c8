import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connect, type AddressInfo, type Server } from 'node:net';
import { startPairlb, type PairlbProc } from '../helpers/proc.js';
import { bulkServer, bulkUpload } from '../helpers/bulk.js';

/**
 * mode tcp through the real `pairlb start` process: 1 GiB each way with backpressure, RSS bounded.
 * The server side sends (download) or swallows and counts (upload) as fast as the kernel lets it;
 * the client reads slowly at first (download) so that pairlb must stop reading the server.
 */
const GiB = 1024 ** 3;
const WARM = 128 * 1024 ** 2;

let server: Server;
let port = 0;
let lb: PairlbProc;

beforeAll(async () => {
  server = bulkServer(); // first line from the client: "down N" or "up N" (test/helpers/bulk.ts)
  await new Promise<void>((ok) => server.listen(0, '127.0.0.1', () => ok()));
  port = (server.address() as AddressInfo).port;
  lb = await startPairlb(`global:
  log:
    access: json
listen:
  - name: bulk
    bind: 127.0.0.1:0
    mode: tcp
    backends:
      - name: a
        address: 127.0.0.1:${port}
        check: false
`);
}, 30_000);

afterAll(async () => {
  await lb?.stop();
  await new Promise<void>((ok) => server.close(() => ok()));
});

function download(n: number, slowMs = 0): Promise<number> {
  return new Promise((ok, fail) => {
    const c = connect({ port: lb.port('bulk'), host: '127.0.0.1' });
    let got = 0;
    c.on('error', fail);
    c.write(`down ${n}\n`);
    if (slowMs > 0) { c.pause(); setTimeout(() => c.resume(), slowMs); }
    c.on('data', (d: Buffer) => { got += d.length; });
    c.on('end', () => { c.end(); ok(got); });
  });
}

const upload = (n: number): Promise<string> => bulkUpload(lb.port('bulk'), n);

describe('mode tcp streams', () => {
  it('1 GiB down (client paused for the first 500 ms) and 1 GiB up, whole, with RSS growing by less than 128 MB', async () => {
    // Warm to V8's young-generation plateau first (see test/proxy/streaming.test.ts).
    expect(await download(WARM)).toBe(WARM);
    expect(await upload(WARM)).toBe(String(WARM));
    const base = lb.rssKb();
    let peak = base;
    const t = setInterval(() => { peak = Math.max(peak, lb.rssKb()); }, 50);
    try {
      expect(await download(GiB, 500)).toBe(GiB);
      expect(await upload(GiB)).toBe(String(GiB));
    } finally { clearInterval(t); }
    peak = Math.max(peak, lb.rssKb());
    // Bounded: 2 GiB went through; one connection buffers at most ~1 MiB (256 KiB per socket and
    // direction); the rest is V8 reclaiming read buffers lazily (measured 40-70 MB on a loaded machine).
    expect((peak - base) / 1024).toBeLessThan(128);
    const lines = () => lb.logs.filter((l) => l.mod === 'access' && l.mode === 'tcp');
    // The log is written asynchronously: wait for the two big connections' lines.
    for (let i = 0; lines().length < 4 && i < 500; i++) await new Promise((r) => setTimeout(r, 10));
    const last = lines().slice(-2);
    expect(last.map((l) => [l.termination, l.bytes_read, l.bytes_in])).toEqual([
      ['--', GiB, `down ${GiB}\n`.length],
      ['--', String(GiB).length, GiB + `up ${GiB}\n`.length],
    ]);
  }, 180_000);
});
