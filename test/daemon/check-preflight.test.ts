import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFileSync, spawnSync } from 'node:child_process';
import { chmodSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { cleanup, cli, ensureBuilt, freePort, MAIN, tempDir } from './daemon.js';

/**
 * `pairlb check` validates what `start` reads (issue 15): the HA key file, admin token files, the
 * scaler's SSH keys and the VIP interface, each error with its key path and line, through the real
 * CLI. `start` refuses the same files before binding any port.
 */

let dir: string;
let statsPort: number;
const key = () => join(dir, 'ha.key');

function config(o: { iface?: string; admin?: string; hvKey?: string } = {}): string {
  const f = join(dir, 'c.yaml');
  writeFileSync(f, [
    'global: { node: lb1, log: { level: info } }',
    'listen:',
    '  - name: web',
    '    bind: 127.0.0.1:0',
    '    backends: [{ name: a, address: "127.0.0.1:9", check: false }]',
    `stats: { bind: "127.0.0.1:${statsPort}", auth: [{ user: ops, password: secret-pass }] }`,
    ...(o.admin ? ['admin:', `  bind: 127.0.0.1:0`, `  token_file: ${o.admin}`] : []),
    'ha:',
    `  key_file: ${key()}`,
    '  node: { dedicated: "127.0.0.1:16940" }',
    '  peer: { name: lb2, dedicated: "127.0.0.2:16941" }',
    `  vip: { address: 198.18.0.10/24, interface: ${o.iface ?? 'lo'} }`,
    ...(o.hvKey ? ['scale:', '  hypervisors:', `    - { name: hv1, host: 127.0.0.1, key_file: ${o.hvKey}, host_key: "SHA256:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU" }`] : []),
  ].join('\n') + '\n');
  return f;
}
const goodKey = () => { writeFileSync(key(), 'k'.repeat(32)); chmodSync(key(), 0o600); };

beforeAll(async () => {
  ensureBuilt();
  dir = tempDir('check-pre');
  statsPort = await freePort();
});
afterAll(() => cleanup(dir));

describe('pairlb check validates what start reads', () => {
  it('a valid config with its files passes', () => {
    goodKey();
    const tok = join(dir, 'admin.token');
    writeFileSync(tok, 't'.repeat(32));
    const hv = join(dir, 'hv_ed25519');
    execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', hv]);
    const f = config({ admin: tok, hvKey: hv });
    const r = cli(['check', '-c', f]);
    expect([r.code, r.stderr, r.stdout]).toEqual([0, '', `Configuration file is valid: ${f}\n`]);
  });

  it('the HA key file: missing, readable by others, too short (line of key_file)', () => {
    const f = config();
    execFileSync('rm', ['-f', key()]);
    let r = cli(['check', '-c', f]);
    expect(r.code).toBe(1);
    expect(r.stderr).toBe(`${f}: 1 error(s)\n  ha.key_file: ${key()}: ENOENT: no such file or directory, stat '${key()}' (line 8)\n`);
    writeFileSync(key(), 'k'.repeat(32)); chmodSync(key(), 0o644);
    r = cli(['check', '-c', f]);
    expect([r.code, r.stderr]).toEqual([1, `${f}: 1 error(s)\n  ha.key_file: ${key()}: bad permissions 644: group/others must have no access (chmod 600 ${key()}) (line 8)\n`]);
    writeFileSync(key(), 'short'); chmodSync(key(), 0o600);
    r = cli(['check', '-c', f]);
    expect([r.code, r.stderr]).toEqual([1, `${f}: 1 error(s)\n  ha.key_file: ${key()}: key too short (5 bytes, need at least 16) (line 8)\n`]);
  });

  it('start refuses the same key file before binding any port (no log line, stats port free)', async () => {
    const f = config();
    writeFileSync(key(), 'k'.repeat(32)); chmodSync(key(), 0o640);
    const r = cli(['start', '-c', f, '--state-dir', join(dir, 'state')]);
    expect(r.code).toBe(1);
    expect(r.stdout).toBe('');
    expect(r.stderr).toContain(`ha.key_file: ${key()}: bad permissions 640`);
  });

  it('a VIP interface that does not exist; admin token file; the scaler key: missing and not a key', () => {
    goodKey();
    const notKey = join(dir, 'not-a-key');
    writeFileSync(notKey, 'hello\n');
    const f = config({ iface: 'ens18x', admin: join(dir, 'missing.token'), hvKey: notKey });
    const r = cli(['check', '-c', f]);
    expect(r.code).toBe(1);
    const lines = r.stderr.split('\n');
    expect(lines[0]).toBe(`${f}: 3 error(s)`);
    expect(lines).toContain(`  ha.vip.interface: interface ens18x does not exist (ip -br link lists the names here) (line 14)`);
    expect(lines).toContain(`  admin.token_file: ENOENT: no such file or directory, open '${join(dir, 'missing.token')}' (line 9)`);
    expect(lines.find((l) => l.startsWith('  scale.hypervisors[0].key_file: '))).toMatch(new RegExp(`^  scale\\.hypervisors\\[0\\]\\.key_file: key_file ${notKey}: not a usable private key \\(.+\\) \\(line 17\\)$`));
    // --schema-only: the same file written for another machine passes.
    const s = cli(['check', '--schema-only', '-c', f]);
    expect([s.code, s.stderr]).toEqual([0, '']);
    const m = cli(['check', '-c', config({ hvKey: join(dir, 'nope') })]);
    expect(m.stderr).toContain(`  scale.hypervisors[0].key_file: cannot read key_file ${join(dir, 'nope')}: ENOENT`);
  });
  it('a VIP interface that exists but is down passes check (runtime FAULT, not a config error)', () => {
    goodKey();
    // A fresh network namespace's lo is down: run the real CLI inside one the test creates.
    const ns = `plbchk${process.pid}`;
    execFileSync('ip', ['netns', 'add', ns]);
    try {
      expect(execFileSync('ip', ['-n', ns, '-br', 'link', 'show', 'lo']).toString()).toMatch(/DOWN/);
      const r = spawnSync('ip', ['netns', 'exec', ns, process.execPath, MAIN, 'check', '-c', config({ iface: 'lo' })], { encoding: 'utf8', timeout: 20_000 });
      expect([r.status, r.stderr]).toEqual([0, '']);
      // …while a name that does not exist there is still refused.
      const m = spawnSync('ip', ['netns', 'exec', ns, process.execPath, MAIN, 'check', '-c', config({ iface: 'eth0' })], { encoding: 'utf8', timeout: 20_000 });
      expect(m.status).toBe(1);
      expect(m.stderr).toContain('ha.vip.interface: interface eth0 does not exist');
    } finally {
      execFileSync('ip', ['netns', 'del', ns]);
    }
  });
});
