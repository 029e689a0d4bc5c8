import { beforeAll, describe, expect, it } from 'vitest';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseConfig } from '../../src/config/load.js';
import { ROOT, cli, ensureBuilt } from './daemon.js';

/**
 * config/examples/: every file passes the real `pairlb check`; lb-01 and lb-02 are the classic pair
 * (same service, mirrored node keys); the CLI has help for every subcommand.
 */

const EX = join(ROOT, 'config/examples');
const files = readdirSync(EX).filter((f) => f.endsWith('.yaml')).sort();

describe('config examples', () => {
  beforeAll(() => ensureBuilt());

  it('has the pair and a scaling example', () => {
    expect(files).toEqual(expect.arrayContaining(['lb-01.yaml', 'lb-02.yaml', 'scaling.yaml']));
  });

  // --schema-only: the examples name /etc/pairlb files and interfaces of the target machines.
  it.each([...files.map((f) => join('config/examples', f)), 'config/pairlb.yaml'])('pairlb check --schema-only -c %s exits 0', (f) => {
    const r = cli(['check', '--schema-only', '-c', join(ROOT, f)]);
    expect(r.stderr).toBe('');
    expect(r.stdout).toContain('Configuration file is valid');
    expect(r.code).toBe(0);
  });

  it('pairlb check rejects a broken copy of lb-01 with the key path and line', () => {
    const text = readFileSync(join(EX, 'lb-01.yaml'), 'utf8').replace('mode: prefix', 'mode: prefixx');
    expect(() => parseConfig(text, 'lb-01.yaml')).toThrow(/listen\[0\]\.cookie\.mode: .*\(line \d+\)/);
  });

  it('lb-01 and lb-02 are the classic pair: same service, mirrored node keys', () => {
    const l1 = parseConfig(readFileSync(join(EX, 'lb-01.yaml'), 'utf8'));
    const l2 = parseConfig(readFileSync(join(EX, 'lb-02.yaml'), 'utf8'));
    // The service: php-01 and php-02 behind the VIP, JSESSIONID prefix, X-Forwarded-For.
    for (const c of [l1, l2]) {
      const www = c.listen[0];
      expect(www.bind).toBe('10.0.0.1:80');
      expect(www.backends.map((b) => b.name)).toEqual(['php-01', 'php-02']);
      expect(www.cookie).toMatchObject({ name: 'JSESSIONID', mode: 'prefix' });
      expect(www.forwardfor.enabled).toBe(true);
      expect(c.stats?.auth.length).toBeGreaterThan(0);
      expect(c.ha?.vip).toMatchObject({ address: '10.0.0.1/24', interface: 'eth0' });
    }
    expect(l2.listen).toEqual(l1.listen);
    expect(l2.scale).toEqual(l1.scale);
    // Mirrored: each node's peer is the other one.
    expect(l1.global.node).toBe('lb-01');
    expect(l2.global.node).toBe('lb-02');
    expect(l1.ha!.peer.name).toBe(l2.global.node);
    expect(l2.ha!.peer.name).toBe(l1.global.node);
    expect(l1.ha!.peer.dedicated).toBe(l2.ha!.node.dedicated);
    expect(l2.ha!.peer.dedicated).toBe(l1.ha!.node.dedicated);
    expect(l1.ha!.peer.public).toBe(l2.ha!.node.public);
    expect(l2.ha!.peer.public).toBe(l1.ha!.node.public);
    expect(l1.ha!.priority).toBeGreaterThan(l2.ha!.priority);
    // Heartbeats on eth1 (10.0.1.0/30), a second path on eth0's subnet; the same key and cluster.
    expect(l1.ha!.node.dedicated).toMatch(/^10\.0\.1\.\d+:\d+$/);
    expect(l1.ha!.node.public).toMatch(/^10\.0\.0\.\d+:\d+$/);
    expect(l2.ha!.key_file).toBe(l1.ha!.key_file);
    expect(l2.ha!.cluster).toBe(l1.ha!.cluster);
    // Everything else in ha is identical (timers must match on both ends).
    const common = (h: NonNullable<typeof l1.ha>) => ({ ...h, node: undefined, peer: undefined, priority: undefined });
    expect(common(l2.ha!)).toEqual(common(l1.ha!));
  });

  it('the scaling example watches backends that exist and can reach a hypervisor', () => {
    const c = parseConfig(readFileSync(join(EX, 'scaling.yaml'), 'utf8'));
    expect(c.scale?.enabled).toBe(true);
    expect(c.scale!.vds.length).toBeGreaterThan(0);
    expect(c.scale!.hypervisors.length).toBeGreaterThan(0);
    for (const v of c.scale!.vds) expect(c.listen.find((l) => l.name === v.listen)?.backends.map((b) => b.name)).toContain(v.name);
  });
});

describe('CLI help', () => {
  beforeAll(() => ensureBuilt());

  it('pairlb --help lists every subcommand, and each has its own --help', () => {
    const top = cli(['--help']);
    expect(top.code).toBe(0);
    const names = [...top.stdout.matchAll(/^ {2}(\S+) {2,}\S/gm)].map((m) => m[1]);
    expect(names).toEqual(expect.arrayContaining(['start', 'check', 'reload']));
    for (const n of names) {
      const h = cli([n, '--help']);
      expect.soft(h.code, n).toBe(0);
      expect.soft(h.stdout, n).toMatch(new RegExp(`Usage: pairlb ${n}\\b`));
    }
  });

  it('an unknown command exits 2 with the list of commands', () => {
    const r = cli(['frobnicate']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('unknown command');
  });
});
