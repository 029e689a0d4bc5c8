import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { startBackend, type TestBackend } from '../helpers/backend.js';
import { startPairlb, type PairlbProc } from '../helpers/proc.js';
import { ensurePackages } from '../helpers/sys.js';
import { ensureBuilt } from '../daemon/daemon.js';

/**
 * Many sites on one bind (issue 13): 50 host names across 10 backend pools, plain HTTP, routed by
 * Host through the real pairlb process from dist/; every name asked with `curl --resolve` (the
 * way an operator checks a site before DNS points at the VIP), and the exact backend per name
 * asserted. Names are exact, wildcard (*.site-N.test) and mixed case. The TLS/SNI half of the
 * test lives with TLS termination (test/tls/).
 */

const run = promisify(execFile);
const POOLS = 10;
const PER_POOL = 5;
let backends: TestBackend[] = [];
let lb: PairlbProc | undefined;

/** Host names of pool i: three exact, one under a wildcard, one wildcard-only name depth 2. */
function names(i: number): { rule: string[]; ask: string[] } {
  return {
    rule: [`site-${i}.test`, `www.site-${i}.test`, `shop-${i}.example.test`, `*.site-${i}.test`],
    ask: [`site-${i}.test`, `WWW.Site-${i}.test`, `shop-${i}.example.test`, `cdn.site-${i}.test`, `a.b.site-${i}.test`],
  };
}

beforeAll(async () => {
  ensureBuilt();
  ensurePackages(['curl']);
  backends = await Promise.all(Array.from({ length: POOLS }, (_, i) => startBackend(`b${i}`)));
  const fe = Array.from({ length: POOLS }, (_, i) => `      - { when: { host: [${names(i).rule.map((n) => JSON.stringify(n)).join(', ')}] }, backend: pool-${i} }`).join('\n');
  const pools = backends.map((b, i) => `  - { name: pool-${i}, servers: [{ name: ${b.name}, address: "${b.address}", check: false }] }`).join('\n');
  lb = await startPairlb(`global: { log: { access: off } }
frontends:
  - name: sites
    bind: "127.0.0.1:0"
    rules:
${fe}
backends:
${pools}
`);
}, 60_000);

afterAll(async () => {
  await lb?.stop();
  await Promise.all(backends.map((b) => b.close()));
});

describe('50 host names across 10 backends on one bind', () => {
  it('curl --resolve NAME:PORT:127.0.0.1 reaches exactly the backend of each name; an unknown name gets the 404 page', async () => {
    const port = lb!.port('sites');
    const want: Record<string, string> = {};
    for (let i = 0; i < POOLS; i++) for (const n of names(i).ask) want[n] = `b${i}`;
    expect(Object.keys(want)).toHaveLength(POOLS * PER_POOL);
    const got: Record<string, string> = {};
    // In batches of 10 curls: bounded in count, concurrent enough to be quick on 2 cores.
    const all = Object.keys(want);
    for (let k = 0; k < all.length; k += 10) {
      await Promise.all(all.slice(k, k + 10).map(async (n) => {
        const { stdout } = await run('curl', ['-sS', '--max-time', '10', '--resolve', `${n}:${port}:127.0.0.1`, '-o', '-', '-w', ' %{http_code}', `http://${n}:${port}/who?name=${n}`]);
        got[n] = stdout;
      }));
    }
    const expected = Object.fromEntries(all.map((n) => [n, `${want[n]} 200`]));
    expect(got).toEqual(expected);
    // Each backend saw exactly its five names (Host as the client sent it), nothing else.
    for (let i = 0; i < POOLS; i++) {
      expect(backends[i].seen.map((s) => s.headers.host!.split(':')[0]).sort()).toEqual(names(i).ask.slice().sort());
    }
    const { stdout } = await run('curl', ['-sS', '--max-time', '10', '--resolve', `nosuch.test:${port}:127.0.0.1`, '-w', ' %{http_code}', `http://nosuch.test:${port}/`]);
    expect(stdout).toMatch(/No site is configured.* 404$/s);
  });
});
