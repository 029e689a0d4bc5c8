import { afterAll, beforeAll, expect, test } from 'vitest';
import { execFile, spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { writeFileSync } from 'node:fs';
import { Daemon, MAIN, ROOT, cleanup, ensureBuilt, freePort, startDaemon, tempDir } from '../daemon/daemon.js';
import { startBackend, type TestBackend } from '../helpers/backend.js';
import { Authenticator } from '../../src/stats/auth.js';

/**
 * The real CLI against the real daemon (separate processes, as ops use them): pairlb backend …,
 * pairlb status with Nagios exit codes, runtime changes surviving a restart of the daemon, and
 * pairlb hash-password.
 */

let dir: string;
let d: Daemon | undefined;
let b1: TestBackend, b2: TestBackend, b3: TestBackend;
let port: number;
const sock = () => join(dir, 'admin.sock');
const yaml = (w1 = 1) => `
global: { node: cli-test, log: { level: info, access: off } }
listen:
  - name: web
    bind: 127.0.0.1:${port}
    check: { interval: 300ms, timeout: 3s, fall: 3, rise: 1 }
    backends:
      - { name: web1, address: "${b1.address}", weight: ${w1} }
      - { name: web2, address: "${b2.address}" }
admin:
  socket: ${sock()}
  remove_timeout: 3s
`;
/** Runs the CLI without blocking this process: the test backends live here and must keep answering checks. */
function cli(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((ok) => {
    execFile(process.execPath, [MAIN, ...args], { cwd: ROOT, timeout: 20_000, encoding: 'utf8' }, (err, stdout, stderr) => {
      ok({ code: err ? (typeof err.code === 'number' ? err.code : null) : 0, stdout, stderr });
    });
  });
}
const pb = (...args: string[]) => cli(['backend', '--socket', sock(), ...args]);
const status = () => cli(['status', '--socket', sock()]);
async function spread(n: number): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  for (let i = 0; i < n; i++) {
    const r = await fetch(`http://127.0.0.1:${port}/c${i}`);
    await r.text();
    const k = r.headers.get('x-backend') ?? String(r.status);
    out[k] = (out[k] ?? 0) + 1;
  }
  return out;
}

beforeAll(async () => {
  ensureBuilt();
  dir = tempDir('ops-cli');
  [b1, b2, b3] = [await startBackend('web1'), await startBackend('web2'), await startBackend('web3')];
  port = await freePort();
});
afterAll(async () => {
  await d?.kill();
  for (const b of [b1, b2, b3]) await b?.close();
  cleanup(dir);
});

test('backend add/list/drain/weight/remove and status exit codes; changes survive a daemon restart', async () => {
  d = await startDaemon(dir, yaml());
  let r = await status();
  expect(r.stdout.trim()).toBe('PAIRLB OK - web: 2/2 up; role standalone | web_up=2;;1:;0;2');
  expect(r.code).toBe(0);

  r = await pb('add', 'web', 'web3', b3.address, '--weight', '2');
  expect(r.stderr).toBe('');
  expect(r.stdout).toBe(`added web/web3 at ${b3.address}: UP, weight 2\n`);
  expect(r.code).toBe(0);
  expect(await spread(8)).toEqual({ web1: 2, web2: 2, web3: 4 });

  r = await pb('drain', 'web/web1');
  expect([r.code, r.stdout]).toEqual([0, 'web/web1: drain (now DRAIN)\n']);
  r = await pb('weight', 'web', 'web3', '1');
  expect(r.code).toBe(0);
  // Every action is logged with who did it and from where.
  const logged = await d.waitLog((l) => l.mod === 'admin' && l.action === 'state' && l.backend === 'web1');
  expect(logged).toMatchObject({ via: 'cli', listen: 'web', from: 'ready', to: 'drain' });
  expect(typeof logged.user).toBe('string');
  expect(await spread(4)).toEqual({ web2: 2, web3: 2 });
  r = await pb('remove', 'web', 'web2', '--drain-timeout', '3s');
  expect(r.stdout).toMatch(/^removed web\/web2 after \d+ ms \(no request in flight\)\n$/);
  expect(r.code).toBe(0);

  r = await pb('list');
  expect(r.code).toBe(0);
  const rows = r.stdout.trim().split('\n').map((l) => l.split(/\s+/));
  expect(rows[0]).toEqual(['LISTEN', 'NAME', 'ADDRESS', 'STATE', 'WEIGHT', 'CUR', 'TOTAL', 'CHECK', 'ORIGIN']);
  expect(rows.slice(1).map((x) => [x[1], x[3], x[4], x[8]])).toEqual([['web1', 'DRAIN', '1', 'config'], ['web3', 'UP', '1', 'runtime']]);

  r = await pb('drain', 'web', 'nope');
  expect(r.code).toBe(1);
  expect(r.stderr).toContain('no backend "nope" in listen "web" (PAIRLB_NO_BACKEND)');
  expect((await pb('weight', 'web', 'web3')).code).toBe(2);

  // Restart the daemon (SIGTERM, start again over the same state dir): runtime changes are back.
  d.signal('SIGTERM');
  expect((await d.exited).code).toBe(0);
  r = await status();
  expect(r.code).toBe(2); // nothing answers: not serving
  expect(r.stdout).toMatch(/^PAIRLB CRITICAL - cannot reach the admin API/);
  d = await startDaemon(dir, yaml());
  r = await pb('list', '--json');
  const list = (JSON.parse(r.stdout) as { backends: { name: string; state: string; origin: string }[] }).backends;
  expect(list.map((b) => [b.name, b.state, b.origin])).toEqual([['web1', 'DRAIN', 'config'], ['web3', 'UP', 'runtime']]);
  expect(await spread(4)).toEqual({ web3: 4 });

  // Reload (SIGHUP) with the same file: runtime changes stay. Then the file changes web1's weight
  // (4) after web1 was drained at runtime: the weight applies, the drain stays (only a change of
  // web1's `state` in the file would end it), and the reload logs what it did to web1.
  const from = d.logs.length;
  d.signal('SIGHUP');
  await d.waitLog((l) => l.msg === 'config reloaded', 10_000, from);
  expect(JSON.parse((await pb('list', '--json')).stdout).backends.map((b: { name: string; state: string }) => [b.name, b.state])).toEqual([['web1', 'DRAIN'], ['web3', 'UP']]);
  writeFileSync(join(dir, 'pairlb.yaml'), yaml(4));
  const from2 = d.logs.length;
  d.signal('SIGHUP');
  await d.waitLog((l) => l.msg === 'config reloaded', 10_000, from2);
  const after = JSON.parse((await pb('list', '--json')).stdout).backends as { name: string; state: string; weight: number; origin: string }[];
  expect(after.map((b) => [b.name, b.state, b.weight, b.origin])).toEqual([['web1', 'DRAIN', 4, 'config'], ['web3', 'UP', 1, 'runtime']]);
  expect(await spread(5)).toEqual({ web3: 5 });
  const changed = d.logs.slice(from2).filter((l) => typeof l.msg === 'string' && l.msg.startsWith('reload: '));
  expect(changed.map((l) => l.msg)).toEqual(["reload: web/web1: weight 1 -> 4; operator's drain kept (config state unchanged: ready)"]);
  // The file now sets web1's state itself: that ends the operator's drain.
  writeFileSync(join(dir, 'pairlb.yaml'), yaml(4).replace('weight: 4 }', 'weight: 4, state: maint }'));
  const from3 = d.logs.length;
  d.signal('SIGHUP');
  await d.waitLog((l) => l.msg === 'config reloaded', 10_000, from3);
  expect(d.logs.slice(from3).filter((l) => String(l.msg).startsWith('reload: ')).map((l) => l.msg)).toEqual(['reload: web/web1: state "ready" -> "maint"; config state maint replaces the operator\'s drain']);
  expect(JSON.parse((await pb('list', '--json')).stdout).backends.map((b: { name: string; state: string }) => [b.name, b.state])).toEqual([['web1', 'MAINT'], ['web3', 'UP']]);
  writeFileSync(join(dir, 'pairlb.yaml'), yaml(4));
  const from4 = d.logs.length;
  d.signal('SIGHUP');
  await d.waitLog((l) => l.msg === 'config reloaded', 10_000, from4);
  expect((await pb('drain', 'web', 'web1')).code).toBe(0);

  // web3 dies: the health check takes it DOWN -> no backend UP (web1 drained) -> CRITICAL;
  // web1 ready again -> one up, one down -> WARNING.
  await b3.close();
  await expect.poll(async () => (await status()).code, { timeout: 10_000, interval: 200 }).toBe(2);
  expect((await status()).stdout).toContain('web: 0/2 up (web3 DOWN; 1 drain)');
  expect((await pb('ready', 'web', 'web1')).code).toBe(0);
  r = await status();
  expect(r.stdout.trim()).toBe('PAIRLB WARNING - web: 1/2 up (web3 DOWN); role standalone | web_up=1;;1:;0;2');
  expect(r.code).toBe(1);
}, 90_000);

test('pairlb hash-password reads stdin and prints a hash the stats page accepts', async () => {
  const r = spawnSync(process.execPath, [MAIN, 'hash-password', '--ln', '12'], { input: 'pa55 word\n', encoding: 'utf8', cwd: ROOT, timeout: 20_000 });
  expect(r.status).toBe(0);
  const hash = r.stdout.trim();
  expect(hash).toMatch(/^\$scrypt\$ln=12,r=8,p=1\$/);
  const a = new Authenticator([{ user: 'ops', password: hash }]);
  expect(await a.check('Basic ' + Buffer.from('ops:pa55 word').toString('base64'))).toBe('ops');
  expect(await a.check('Basic ' + Buffer.from('ops:pa55 wordx').toString('base64'))).toBeUndefined();
  expect(spawnSync(process.execPath, [MAIN, 'hash-password', '--ln', '99'], { input: 'x\n', encoding: 'utf8' }).status).toBe(2);
});
