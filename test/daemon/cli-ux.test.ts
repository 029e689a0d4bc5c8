import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT, cleanup, cli, ensureBuilt, freePort, startDaemon, tempDir, type Daemon } from './daemon.js';

/** The CLI's ways in (issue 15): --version, a backend verb without `backend`, check's default path, where the APIs listen. */

let dir: string;
let d: Daemon | undefined;
beforeAll(() => { ensureBuilt(); dir = tempDir('cli-ux'); });
afterAll(async () => { await d?.kill(); cleanup(dir); });

describe('pairlb CLI', () => {
  it('--version prints the package version', () => {
    const v = (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string }).version;
    for (const a of ['--version', '-V', 'version']) expect(cli([a])).toEqual({ code: 0, stdout: `pairlb ${v}\n`, stderr: '' });
  });

  it('a backend verb without `backend` gets "did you mean"; an unknown word does not', () => {
    let r = cli(['drain', 'web', 'web1']);
    expect(r.code).toBe(2);
    expect(r.stderr.split('\n').slice(0, 2)).toEqual(['pairlb: unknown command "drain"', 'did you mean `pairlb backend drain web web1`?']);
    r = cli(['weight', 'web/web1', '3']);
    expect(r.stderr.split('\n')[1]).toBe('did you mean `pairlb backend weight web/web1 3`?');
    r = cli(['frob']);
    expect(r.stderr.split('\n').slice(0, 2)).toEqual(['pairlb: unknown command "frob"', '']);
  });

  it('check without -c reads /etc/pairlb/pairlb.yaml and says so when it is missing', () => {
    const r = cli(['check']);
    // This machine has no /etc/pairlb (the tests never write there).
    expect(r).toEqual({ code: 2, stdout: '', stderr: 'pairlb check: /etc/pairlb/pairlb.yaml (the default without -c FILE) does not exist\n' });
  });

  it("the admin API's and the stats page's log lines say where they listen", async () => {
    const [p, s, a] = [await freePort(), await freePort(), await freePort()];
    d = await startDaemon(dir, [
      'global: { node: ux, log: { level: info, access: off } }',
      `listen: [{ name: web, bind: "127.0.0.1:${p}", backends: [] }]`,
      `stats: { bind: "127.0.0.1:${s}", auth: [{ user: ops, password: secret-pass }] }`,
      `admin: { bind: "127.0.0.1:${a}", token: "${'t'.repeat(20)}", read_only_socket: "${join(dir, 'ro.sock')}" }`,
    ].join('\n') + '\n');
    const msgs = d.logs.map((l) => l.msg);
    expect(msgs).toContain(`admin API listening on http://127.0.0.1:${a} (token required)`);
    expect(msgs).toContain(`admin API (read-only) listening on unix socket ${join(dir, 'ro.sock')} (mode 0660)`);
    expect(msgs).toContain(`stats page listening on http://127.0.0.1:${s}/`);
    await d.kill();
    d = await startDaemon(dir, [
      'global: { node: ux, log: { level: info, access: off } }',
      `listen: [{ name: web, bind: "127.0.0.1:${p}", backends: [] }]`,
      `admin: { socket: "${join(dir, 'admin.sock')}" }`,
    ].join('\n') + '\n');
    expect(d.logs.map((l) => l.msg)).toContain(`admin API listening on unix socket ${join(dir, 'admin.sock')} (mode 0600)`);
  });
});
