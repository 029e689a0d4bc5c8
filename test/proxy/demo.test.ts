import { afterAll, expect, it } from 'vitest';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { CLI } from '../helpers/proc.js';

/**
 * `npm start` = `pairlb start --demo`: the README's first command. Two demo backends + balancer on
 * 127.0.0.1:8080 + stats on :8404; two curls show round robin; SIGINT (Ctrl-C) stops it cleanly.
 */
let child: ChildProcess | undefined;
afterAll(() => { if (child && child.exitCode === null) child.kill('SIGKILL'); });

it('npm start runs the demo: round robin, sticky cookie, stats page with auth, clean Ctrl-C', async () => {
  child = spawn(process.execPath, [CLI, 'start', '--demo'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let err = '';
  await new Promise<void>((ok, fail) => {
    const t = setTimeout(() => fail(new Error('demo did not start: ' + err)), 15_000);
    child!.stderr!.on('data', (d) => { err += d; if (err.includes('pairlb demo: balancer on http://127.0.0.1:8080/')) { clearTimeout(t); ok(); } });
    child!.once('exit', (c) => fail(new Error(`demo exited ${c}: ${err}`)));
  });
  const bodies: string[] = [];
  for (let i = 0; i < 2; i++) bodies.push(await (await fetch('http://127.0.0.1:8080/')).text());
  expect(bodies.map((b) => b.split(' ')[2]).sort()).toEqual(['web1', 'web2']);
  const sticky = await fetch('http://127.0.0.1:8080/', { headers: { cookie: 'SERVERID=w1' } });
  expect(await sticky.text()).toMatch(/^hello from web1/);
  // The README's X-Forwarded-For line: the demo backend echoes the headers it got.
  const xff = await (await fetch('http://127.0.0.1:8080/', { headers: { 'x-forwarded-for': '203.0.113.7' } })).text();
  expect(xff).toMatch(/^hello from web[12] \(GET \/\)\nheaders received:\n/);
  expect(xff).toContain('\n  X-Forwarded-For: 203.0.113.7, 127.0.0.1\n');
  expect(xff).toContain('\n  X-Forwarded-Proto: http\n');
  // /metrics needs the stats credentials (README).
  expect((await fetch('http://127.0.0.1:8404/metrics')).status).toBe(401);
  const metrics = await fetch('http://127.0.0.1:8404/metrics', { headers: { authorization: 'Basic ' + Buffer.from('admin:admin').toString('base64') } });
  expect(metrics.status).toBe(200);
  expect(await metrics.text()).toMatch(/^pairlb_/m);
  expect((await fetch('http://127.0.0.1:8404/')).status).toBe(401);
  const page = await fetch('http://127.0.0.1:8404/', { headers: { authorization: 'Basic ' + Buffer.from('admin:admin').toString('base64') } });
  expect(page.status).toBe(200);
  expect(await page.text()).toContain('web2');
  // Runtime state goes to a fresh temp dir (a second `npm start` starts from the config again),
  // never into the checkout, and is removed at exit.
  const stateDir = /pairlb demo: runtime state in (\S+) \(a temp dir, removed at exit/.exec(err)?.[1];
  expect(stateDir, err).toBeDefined();
  expect(stateDir!.startsWith(join(tmpdir(), 'pairlb-demo-'))).toBe(true);
  expect(stateDir).not.toBe(resolve(CLI, '../../../state'));
  expect(existsSync(stateDir!)).toBe(true);
  const code = await new Promise<number | null>((ok) => { child!.once('exit', (c) => ok(c)); child!.kill('SIGINT'); });
  expect(code).toBe(0);
  expect(existsSync(stateDir!)).toBe(false);
});
