import { spawnSync } from 'node:child_process';
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { MAIN } from '../helpers/netns.js';
import { Daemon, ensureBuilt, freePort } from '../daemon/daemon.js';

/** The real CLI: `pairlb check` rejects nonsense timings, `pairlb start` refuses a readable key. */
describe('pairlb CLI and the ha section', () => {
  const dir = mkdtempSync(join(tmpdir(), 'pairlb-ha-cli-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  const cfg = (dedicated: string, timings: string): string => {
    const f = join(dir, 'c.yaml');
    writeFileSync(f, [
      'global: { node: lb1, log: { level: info } }',
      'listen:',
      '  - name: web',
      '    bind: 127.0.0.1:0',
      '    backends: [{ name: a, address: "127.0.0.1:9", check: false }]',
      'ha:',
      `  key_file: ${dir}/ha.key`,
      `  node: { dedicated: "${dedicated}" }`,
      '  peer: { name: lb2, dedicated: "127.0.0.2:16941" }',
      '  vip: { address: 198.18.0.10/24, interface: lo }',
      timings,
    ].join('\n') + '\n');
    return f;
  };
  const run = (...args: string[]) => spawnSync(process.execPath, [MAIN, ...args], { encoding: 'utf8', timeout: 20_000 });

  it('pairlb check: the classic ha.cf mistake (warntime ≥ deadtime), a too short deadtime, port 0', () => {
    const r = run('check', '-c', cfg('127.0.0.1:0', '  keepalive: 3s\n  warntime: 10s\n  deadtime: 5s\n  initdead: 10s'));
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/ha\.warntime: warntime \(10000 ms\) must be shorter than deadtime \(5000 ms\).*\(line 12\)/);
    expect(r.stderr).toMatch(/ha\.deadtime: deadtime \(5000 ms\) must be at least two keepalive intervals/);
    expect(r.stderr).toMatch(/ha\.node\.dedicated: dedicated: port 0 is not allowed/);
  });

  it('a VIP interface that does not exist: the daemon goes INIT -> FAULT saying which and why', async () => {
    ensureBuilt();
    const [a, b] = [await freePort(), await freePort()];
    const f = cfg(`127.0.0.1:${a}`, '');
    writeFileSync(f, readFileSync(f, 'utf8').replace('interface: lo', 'interface: ens18x').replace('127.0.0.2:16941', `127.0.0.2:${b}`));
    writeFileSync(join(dir, 'ha.key'), 'x'.repeat(32));
    chmodSync(join(dir, 'ha.key'), 0o600);
    const d = new Daemon(dir, f, join(dir, 'pid'));
    try {
      const l = await d.waitLog((x) => x.mod === 'ha' && x.to === 'fault', 15_000);
      expect([l.from, l.reason, l.msg]).toEqual(['init', 'interface ens18x does not exist (ip -br link lists the names here)', 'role init -> fault: interface ens18x does not exist (ip -br link lists the names here)']);
      // No bare "not healthy" transition before it.
      expect(d.logs.filter((x) => typeof x.msg === 'string' && x.msg.startsWith('role ')).map((x) => x.msg)).toEqual(['role standalone -> init: ha starting', l.msg]);
    } finally { await d.kill(); }
  });

  it('pairlb start refuses a key file that group or others can read', () => {
    const f = cfg('127.0.0.1:16940', '');
    writeFileSync(join(dir, 'ha.key'), 'x'.repeat(32));
    chmodSync(join(dir, 'ha.key'), 0o644);
    const r = run('start', '-c', f, '--state-dir', join(dir, 'state'));
    expect(r.status).toBe(1);
    expect(r.stdout + r.stderr).toMatch(/bad permissions 644: group\/others must have no access \(chmod 600/);
  });
});
