import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { Vip } from '../../src/ha/vip.js';
import { garpSchema, vipSchema } from '../../src/ha/config.js';
import { silentLogger } from '../../src/log.js';

/**
 * A takeover step scheduled before a role change is cancelled by it (issue 11: a queued VIP add and
 * GARP burst ran after the node had been demoted again, clients followed its MAC, black holes of
 * 1.4-6.6 s). The real Vip class with its pre-forked shell and real processes; `ip` and `arping`
 * are stand-in scripts that log their arguments (no root, no interface), and `ip addr replace` can
 * be made slow to hold the add in flight.
 */

let dir: string;
let log: string;
let slow: string;
const vips: Vip[] = [];

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'pairlb-vip-'));
  log = join(dir, 'calls.log');
  slow = join(dir, 'slow');
  writeFileSync(join(dir, 'ip'), `#!/bin/sh\necho "ip $*" >> '${log}'\nif [ "$2" = replace ] && [ -e '${slow}' ]; then sleep 0.4; fi\necho "ip-done $2" >> '${log}'\n`);
  writeFileSync(join(dir, 'arping'), `#!/bin/sh\necho "arping $*" >> '${log}'\n`);
  chmodSync(join(dir, 'ip'), 0o755); chmodSync(join(dir, 'arping'), 0o755);
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));
afterEach(() => { for (const v of vips.splice(0)) v.close(); rmSync(slow, { force: true }); writeFileSync(log, ''); });

function vip(garp: Record<string, unknown> = {}): Vip {
  const v = new Vip(vipSchema.parse({ address: '198.18.0.10/24', interface: 'eth0' }), garpSchema.parse({ arping: join(dir, 'arping'), burst: 3, repeat: 2, repeat_delay: '150ms', refresh: 0, ...garp }), silentLogger, join(dir, 'ip'));
  vips.push(v);
  return v;
}
const calls = (): string[] => (existsSync(log) ? readFileSync(log, 'utf8').split('\n').filter(Boolean) : []);
const arpings = (): number => calls().filter((l) => l.startsWith('arping -U')).length;
async function until(f: () => boolean, ms: number, what: string): Promise<void> {
  const end = Date.now() + ms;
  while (Date.now() < end) { if (f()) return; await new Promise((r) => setTimeout(r, 10)); }
  throw new Error(`timeout after ${ms} ms: ${what}`);
}
/**
 * Absence needs a bound: a GARP that was going to be sent is forked within milliseconds of the
 * decision (the shell reads one line; the repeat timer is 150 ms), so 1 s has > 5x slack on a
 * loaded machine.
 */
const QUIET_MS = 1000;
const quiet = () => new Promise((r) => setTimeout(r, QUIET_MS));

describe('vip: takeover steps are cancelled by a role change', () => {
  it('normal takeover through the pre-forked shell: add, then the GARP burst, then the repeat burst', async () => {
    const v = vip();
    v.prepare();
    const r = await v.add(v.generation);
    expect(r).toEqual({ garpSent: true, cancelled: false });
    expect(v.startAnnouncing(false, v.generation)).toBe(true);
    await until(() => arpings() === 5, 5000, '3 + 2 GARPs');
    expect(calls()[0]).toBe('ip addr replace 198.18.0.10/24 dev eth0');
    expect(v.cancelled).toBe(0);
  });

  it('demotion while the add is queued: nothing is added, no GARP', async () => {
    const v = vip();
    v.prepare();
    const gen = v.generation; // take_vip decided…
    v.supersede(); // …demoted before the chain got to it
    expect(await v.add(gen)).toEqual({ garpSent: false, cancelled: true });
    expect(v.startAnnouncing(true, gen)).toBe(false);
    await quiet();
    expect(calls()).toEqual([]);
    expect(v.cancelled).toBe(2);
  });

  it('demotion while `ip addr replace` runs in the pre-forked shell: added, but the shell sends no GARP', async () => {
    const v = vip();
    writeFileSync(slow, '');
    v.prepare();
    const gen = v.generation;
    const p = v.add(gen);
    await until(() => calls().includes('ip addr replace 198.18.0.10/24 dev eth0'), 5000, 'ip started');
    v.supersede();
    expect(await p).toEqual({ garpSent: false, cancelled: true });
    await quiet();
    expect(calls()).toEqual(['ip addr replace 198.18.0.10/24 dev eth0', 'ip-done replace']);
    // The caller's queued release removes it.
    await v.remove();
    expect(calls().at(-2)).toBe('ip addr del 198.18.0.10/24 dev eth0');
  });

  it('demotion while `ip` runs without a pre-forked shell: startAnnouncing refuses the stale generation', async () => {
    const v = vip();
    writeFileSync(slow, '');
    const gen = v.generation;
    const p = v.add(gen);
    await until(() => calls().includes('ip addr replace 198.18.0.10/24 dev eth0'), 5000, 'ip started');
    v.supersede();
    expect((await p).cancelled).toBe(true);
    expect(v.startAnnouncing(true, gen)).toBe(false);
    await quiet();
    expect(arpings()).toBe(0);
  });

  it('demotion after the burst: the repeat burst scheduled before it never goes out', async () => {
    const v = vip();
    v.prepare();
    const gen = v.generation;
    await v.add(gen);
    v.startAnnouncing(false, gen);
    await until(() => arpings() === 3, 5000, 'takeover burst');
    v.supersede();
    await quiet();
    expect(arpings()).toBe(3); // without supersede: + 2 repeats after 150 ms
  });
});
