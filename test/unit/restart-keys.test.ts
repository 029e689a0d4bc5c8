import { describe, expect, it } from 'vitest';
import { Writable } from 'node:stream';
import { parseConfig } from '../../src/config/load.js';
import { restartKeys } from '../../src/config/restart.js';
import { createLogger, setLogLevel } from '../../src/log.js';

/** Which reload changes wait for a restart (pure), and a level change reaching every child logger. */

const base = `listen:\n  - name: web\n    bind: 127.0.0.1:8080\n`;
const ha = (deadtime: string) => `ha:\n  key_file: /etc/pairlb/ha.key\n  node: { dedicated: 10.0.1.1:694 }\n  peer: { name: lb-02, dedicated: 10.0.1.2:694 }\n  deadtime: ${deadtime}\n  vip: { address: 10.0.0.1/24, interface: eth0 }\n`;
const keys = (a: string, b: string, running: string[]) => restartKeys(parseConfig(a), parseConfig(b), new Set(running)).map((k) => k.key);

describe('restartKeys', () => {
  it.each([
    ['nothing changed', base, base, [], []],
    ['log level and access format are applied live', base, `global:\n  log: { level: debug, access: combined, access_file: /var/log/x }\n` + base, [], []],
    ['node name', `global: { node: a }\n` + base, `global: { node: b }\n` + base, [], ['global.node']],
    ['state_dir', base, `global: { state_dir: /srv/s }\n` + base, [], ['global.state_dir']],
    ['maxconn is applied', base, `global: { maxconn: 100 }\n` + base, [], []],
    ['workers', base, `global: { workers: 2 }\n` + base, [], ['global.workers']],
    ['an HA timing, HA running', base + ha('1s'), base + ha('2s'), ['ha'], ['ha.deadtime']],
    ['HA added', base, base + ha('1s'), [], ['ha']],
    ['HA removed while running', base + ha('1s'), base, ['ha'], ['ha']],
    ['stats added', base, base + `stats:\n  bind: 127.0.0.1:8404\n  auth: [{ user: admin, password: x }]\n`, [], ['stats']],
    ['stats changed while running: applied', base + `stats:\n  bind: 127.0.0.1:8404\n  auth: [{ user: admin, password: x }]\n`, base + `stats:\n  bind: 127.0.0.1:8405\n  auth: [{ user: admin, password: x }]\n`, ['stats'], []],
  ])('%s', (_what, a, b, running, want) => {
    expect(keys(a, b, running)).toEqual(want);
  });
});

describe('setLogLevel', () => {
  it('reaches children and grandchildren made before and after', () => {
    const out: string[] = [];
    const sink = new Writable({ write(c, _e, cb) { out.push(String(c)); cb(); } });
    const root = createLogger('info', sink);
    const child = root.child({ mod: 'a' });
    const grand = child.child({ x: 1 });
    grand.debug('hidden');
    expect(setLogLevel(root, 'debug')).toBe(true);
    grand.debug('shown');
    root.child({ mod: 'late' }).debug('late shown');
    setLogLevel(root, 'warn');
    child.info('hidden again');
    child.warn('warned');
    expect(out.map((l) => JSON.parse(l).msg)).toEqual(['shown', 'late shown', 'warned']);
  });
});
