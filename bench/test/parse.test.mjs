// Unit tests of the bench's pure parts: wrk output parsing, medians and per-round ratios, JSON shape.
//   node --test bench/test/
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseWrk, toMs } from '../lib/wrk.mjs';
import { median, ratioMedian, summarize, toJson } from '../lib/report.mjs';
import { SMALL_BODY, nginxBackend, nginxProxy, haproxy, haproxyConfig, pairlbYaml } from '../lib/configs.mjs';
import { parseH2load } from '../lib/h2load.mjs';

const WRK = `Running 6s test @ http://127.0.0.1:40000/
  1 threads and 64 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     3.10ms    1.20ms  40.00ms   90.00%
    Req/Sec    21.00k     1.00k   23.00k    70.00%
  Latency Distribution
     50%  812.00us
     75%    1.50ms
     90%    2.00ms
     99%    1.02s
  125433 requests in 6.00s, 30.00MB read
  Socket errors: connect 0, read 3, write 0, timeout 2
  Non-2xx or 3xx responses: 7
Requests/sec:  20905.50
Transfer/sec:      5.00MB
`;

test('parseWrk reads rate, percentiles in any unit, errors', () => {
  const r = parseWrk(WRK);
  assert.equal(r.rps, 20905.5);
  assert.equal(r.requests, 125433);
  assert.equal(r.p50_ms, 0.812);
  assert.equal(r.p99_ms, 1020);
  assert.deepEqual(r.errors, { connect: 0, read: 3, write: 0, timeout: 2, non2xx: 7 });
  assert.throws(() => parseWrk('unable to connect to 127.0.0.1:1 Connection refused'));
});

test('toMs', () => {
  assert.deepEqual(['5us', '1.5ms', '2s', '1m', 'x'].map(toMs), [0.005, 1.5, 2000, 60000, NaN]);
});

test('median and per-round ratios pair rounds, not sorted values', () => {
  assert.equal(median([3, 1, 2]), 2);
  assert.equal(median([4, 1, 3, 2]), 2.5);
  assert.ok(Number.isNaN(median([])));
  const a = [{ round: 1, rps: 10 }, { round: 2, rps: 40 }, { round: 3, rps: 30 }];
  const b = [{ round: 1, rps: 20 }, { round: 2, rps: 40 }, { round: 3, rps: 100 }];
  // per-round ratios 0.5, 1, 0.3 → median 0.5 (the ratio of medians would be 30/40 = 0.75)
  assert.deepEqual(ratioMedian(a, b), { median: 0.5, min: 0.3, max: 1, n: 3 });
});

test('toJson has exactly the fields of issue 2', () => {
  const run = (round, rps, rss) => ({ round, rps, p50_ms: 1, p99_ms: 2, rss_mb: rss, proxy_cpu_pct: 90, req_per_cpu_s: rps, cpu0_pct: 50, cpu1_pct: 100, foreign_pct: 0,
    errors: { connect: 0, read: 0, write: 0, timeout: 0, non2xx: 0 } });
  const ha = [run(1, 100, 16), run(2, 200, 17)];
  const pl = [run(1, 30, 100), run(2, 80, 120)];
  const direct = [run(1, 300, NaN), run(2, 300, NaN)];
  const j = toJson({ 'small-keepalive': { pairlb: summarize(pl, ha), haproxy: summarize(ha, ha), direct: summarize(direct, ha) } });
  assert.deepEqual(Object.keys(j['small-keepalive'].pairlb), ['rps', 'p50_ms', 'p99_ms', 'rss_mb', 'ratio_vs_haproxy']);
  assert.equal(j['small-keepalive'].pairlb.ratio_vs_haproxy, 0.35); // median of 0.3 and 0.4
  assert.equal(j['small-keepalive'].pairlb.rss_mb, 120); // largest after-load value
  assert.equal(j['small-keepalive'].haproxy.ratio_vs_haproxy, 1);
  assert.equal(j['small-keepalive'].direct.rss_mb, null);
});

test('generated configs: 100-byte body, same backends everywhere', () => {
  assert.equal(Buffer.byteLength(SMALL_BODY), 100);
  assert.match(nginxBackend('/tmp/x', 'b1', 1234), /listen 127\.0\.0\.1:1234 /);
  const h = haproxy(1, 2, [10, 11], 1000);
  assert.match(h, /nbthread 1/);
  assert.match(h, /server w2 127\.0\.0\.1:11 cookie w2/);
  const y = pairlbYaml({ engine: 'undici', port: 5, stickyPort: 6, backends: [10, 11], stateDir: '/tmp/s' });
  assert.match(y, /access: 'off'/);
  assert.match(y, /engine: undici/);
  assert.equal((y.match(/address: 127\.0\.0\.1:1[01]/g) ?? []).length, 4);
});

const H2LOAD = `starting benchmark...
spawning thread #0: 10 total client(s). Timing-based test with 0s of warm-up time and 5s of main duration for measurements.
Warm-up phase is over for thread #0.
Main benchmark duration is started for thread #0.
Main benchmark duration is over for thread #0. Stopping all clients.
Stopped all clients for thread #0

finished in 5.00s, 21443.60 req/s, 3.15MB/s
requests: 107218 total, 108218 started, 107218 done, 107200 succeeded, 18 failed, 10 errored, 2 timeout
status codes: 107200 2xx, 0 3xx, 0 4xx, 6 5xx
traffic: 15.75MB (16516016) total, 2.86MB (2996008) headers (space savings 93.35%), 10.23MB (10721800) data
Application protocol: h2
`;

test('parseH2load reads the counts, the duration and the protocol', () => {
  const r = parseH2load(H2LOAD);
  assert.equal(r.secs, 5);
  assert.equal(r.rps, 21443.6);
  assert.equal(r.succeeded, 107200);
  assert.equal(r.failed + r.errored + r.timeout, 30);
  assert.equal(r.non2xx, 6);
  assert.equal(r.protocol, 'h2');
  assert.equal(parseH2load(H2LOAD.replace('finished in 5.00s', 'finished in 126.46ms')).secs, 0.12646);
  assert.throws(() => parseH2load('h2load: connect refused\n'), /unexpected h2load output/);
});

test('one HAProxy and nginx config writer for plain, TLS and h2 front ends', () => {
  const tls = { bundle: '/c/bundle.pem', chain: '/c/chain.pem', key: '/c/www.key' };
  const h = haproxyConfig({ fronts: [{ name: 'tls', port: 1, tls, alpn: 'h2,http/1.1' }, { name: 'h2c', port: 2, proto: 'h2' }], backends: [10, 11], maxconn: 100, threads: 2 });
  assert.match(h, /^listen tls\n  bind 127\.0\.0\.1:1 ssl crt \/c\/bundle\.pem alpn h2,http\/1\.1$/m);
  assert.match(h, /^listen h2c\n  bind 127\.0\.0\.1:2 proto h2$/m);
  assert.match(h, /nbthread 2/);
  assert.equal((h.match(/server w1 127\.0\.0\.1:10$/gm) ?? []).length, 2);
  assert.equal(haproxy(1, 2, [10], 50), haproxyConfig({ fronts: [{ name: 'plain', port: 1 }, { name: 'sticky', port: 2, sticky: true }], backends: [10], maxconn: 50 }));
  const n = nginxProxy('/d', 'p', 0, [10, 11], 2, [{ port: 1, tls, h2: true }, { port: 2, h2: true }, { port: 3 }]);
  assert.match(n, /listen 127\.0\.0\.1:1 ssl http2 backlog=4096;\n    ssl_certificate \/c\/chain\.pem;/);
  assert.match(n, /listen 127\.0\.0\.1:2 http2 backlog=4096;\n    location/);
  assert.match(n, /listen 127\.0\.0\.1:3 backlog=4096;/);
  assert.equal((n.match(/proxy_pass http:\/\/be;/g) ?? []).length, 3);
  assert.match(n, /worker_processes 2;/);
  const y = pairlbYaml({ engine: 'undici', backends: [10], stateDir: '/s', fronts: [{ name: 'tls', port: 1, tls, extra: '    h2c: false\n' }] });
  assert.match(y, /- name: tls\n    bind: 127\.0\.0\.1:1\n/);
  assert.match(y, /    tls:\n      certificates: \[\/c\/bundle\.pem\]\n    h2c: false\n    backends:/);
});

test('generated pairlb configs pass `pairlb check` (both engines, with stats)', async () => {
  const { execFileSync } = await import('node:child_process');
  const { mkdtempSync, writeFileSync, rmSync, existsSync } = await import('node:fs');
  const { tmpdir } = await import('node:os');
  const { join, resolve, dirname } = await import('node:path');
  const { fileURLToPath } = await import('node:url');
  const main = resolve(dirname(fileURLToPath(import.meta.url)), '../../dist/cli/main.js');
  assert.ok(existsSync(main), `${main} missing: run npm ci (or npm run build) first`);
  const dir = mkdtempSync(join(tmpdir(), 'pairlb-bench-test-'));
  try {
    for (const [engine, statsBind] of [['undici', undefined], ['native', undefined], ['undici', '127.0.0.1:8404']]) {
      const f = join(dir, `${engine}.yaml`);
      writeFileSync(f, pairlbYaml({ engine, port: 18080, stickyPort: statsBind ? undefined : 18081, backends: [18090, 18091], stateDir: dir, statsBind }));
      execFileSync(process.execPath, [main, 'check', '-c', f], { stdio: 'pipe' });
    }
  } finally { rmSync(dir, { recursive: true, force: true }); }
});
