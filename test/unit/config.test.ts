import { describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/config/load.js';
import { ConfigError } from '../../src/errors.js';
import { parseDuration } from '../../src/config/types.js';

function problems(yaml: string): string[] {
  try { parseConfig(yaml); } catch (e) {
    if (e instanceof ConfigError) return e.problems.map((p) => `${p.path}: ${p.message}${p.line ? ` (line ${p.line})` : ''}`);
    throw e;
  }
  return [];
}

describe('config', () => {
  it('applies defaults and freezes the result', () => {
    const c = parseConfig('listen:\n  - name: web\n    bind: 127.0.0.1:80\n    backends:\n      - name: a\n        address: 10.1.1.1:8080\n');
    expect(c.listen[0].retries).toBe(2);
    expect(c.listen[0].check.interval).toBe(2000);
    expect(c.listen[0].check.rise).toBe(2);
    expect(c.listen[0].check.fall).toBe(3);
    expect(c.listen[0].backends[0].weight).toBe(1);
    expect(c.listen[0].timeouts.connect).toBe(5000);
    expect(Object.isFrozen(c.listen[0].backends[0])).toBe(true);
  });

  it('reports every error at once, with key path and line', () => {
    const yaml = [
      'listen:',                       // 1
      '  - name: web',                 // 2
      '    bind: 127.0.0.1:80',        // 3
      '    retries: -1',               // 4
      '    backends:',                 // 5
      '      - name: a',               // 6
      '        address: 10.0.0.1',     // 7
      '      - name: b',               // 8
      '        address: 10.0.0.2:80',  // 9
      '        wieght: 3',             // 10
      '    check:',                    // 11
      '      interval: soon',          // 12
    ].join('\n');
    expect(problems(yaml).sort()).toEqual([
      'listen[0].backends[0].address: expected host:port (got "10.0.0.1") (line 7)',
      'listen[0].backends[1].wieght: unknown key (line 10)',
      'listen[0].check.interval: expected a duration such as 500ms, 2s, 1m (got "soon") (line 12)',
      'listen[0].retries: Number must be greater than or equal to 0 (line 4)',
    ]);
  });

  it('refuses duplicate names and cookie ids, missing keys, YAML syntax errors', () => {
    expect(problems('listen:\n  - name: web\n    bind: 127.0.0.1:80\n    backends:\n      - name: a\n        address: 1.1.1.1:1\n        cookie: x\n      - name: a\n        address: 1.1.1.2:1\n        cookie: x\n')).toEqual([
      'listen[0].backends[1].name: duplicate backend name "a" (also backends[0]) (line 8)',
      'listen[0].backends[1].cookie: duplicate cookie id "x" (also backends[0]) (line 10)',
    ]);
    expect(problems('listen:\n  - name: web\n')).toEqual(['listen[0].bind: required key is missing (line 2)']);
    expect(problems('listen: [\n')[0]).toMatch(/^\(yaml\): .*\(line \d+\)$/);
    expect(problems('{}')).toEqual(['listen: required key is missing (line 1)']);
  });

  it('a bare number refused as a too short duration: "did you mean 5s?"; a cross-key check on a default names the key written', () => {
    const ha = (t: string) => ['listen: [{ name: web, bind: "127.0.0.1:80" }]', 'ha:', '  key_file: /k', '  node: { dedicated: "127.0.0.1:1" }',
      '  peer: { name: b, dedicated: "127.0.0.2:1" }', '  vip: { address: 198.18.0.10/24, interface: lo }', t].join('\n') + '\n';
    // heartbeat's `deadtime 5` (seconds) as YAML: 5 ms, below the default garp.probe_timeout (60 ms).
    expect(problems(ha('  deadtime: 5'))).toEqual([
      'ha.deadtime: warntime (120 ms) must be shorter than deadtime (5 ms): a late heartbeat must be reported before the peer is declared dead (ha.warntime was not written: its default applies); did you mean 5s? (a bare number is milliseconds) (line 7)',
      'ha.deadtime: deadtime (5 ms) must be at least two keepalive intervals (100 ms): one lost heartbeat must not cause a failover; did you mean 5s? (a bare number is milliseconds) (line 7)',
      'ha.deadtime: probe_timeout (60 ms) must be shorter than deadtime (5 ms) (ha.garp.probe_timeout was not written: its default applies); did you mean 5s? (a bare number is milliseconds) (line 7)',
    ]);
    expect(problems(ha('  deadtime: 5s\n  initdead: 10\n  keepalive: 1s\n  warntime: 2s'))).toEqual([
      'ha.initdead: initdead (10 ms) must be at least deadtime (5000 ms); did you mean 10s? (a bare number is milliseconds) (line 8)',
    ]);
    // A minimum of the key itself; a value with a unit gets no hint; a number that is not refused none either.
    expect(problems('listen:\n  - name: web\n    bind: 127.0.0.1:80\n    check: { interval: 5, timeout: 5ms, rise: 5 }\n')).toEqual([
      'listen[0].check.interval: expected at least 10ms (got 5); did you mean 5s? (a bare number is milliseconds) (line 4)',
      'listen[0].check.timeout: expected at least 10ms (got "5ms") (line 4)',
    ]);
  });

  it('booleans accept on/off/yes/no (any case) as heartbeat and HAProxy users write them, for boolean keys only', () => {
    const c = parseConfig('listen:\n  - name: web\n    bind: 127.0.0.1:80\n    redispatch: off\n    cookie: { name: S, secure: yes, httponly: No, indirect: ON }\n    backends: [{ name: a, address: "1.1.1.1:1", check: no, backup: Yes }]\n');
    expect([c.listen[0].redispatch, c.listen[0].cookie!.secure, c.listen[0].cookie!.httponly, c.listen[0].cookie!.indirect, c.listen[0].backends[0].check, c.listen[0].backends[0].backup]).toEqual([false, true, false, true, false, true]);
    // Other words are still refused; a string key keeps the word.
    expect(problems('listen:\n  - name: web\n    bind: 127.0.0.1:80\n    redispatch: maybe\n')).toEqual(['listen[0].redispatch: expected true/false (or on/off, yes/no), got "maybe" (line 4)']);
    expect(parseConfig('listen:\n  - name: web\n    bind: 127.0.0.1:80\n    cookie: { name: "on", domain: "yes" }\n').listen[0].cookie).toMatchObject({ name: 'on', domain: 'yes' });
  });

  it('a misindented key is one line naming the key and its line (not the parser\'s one or two errors on the line above)', () => {
    const web = 'listen:\n  - name: web\n    bind: 127.0.0.1:80\n';
    expect(problems(web + '      check: false\n')).toEqual(['(yaml): key "check" is indented deeper than "bind" (line 3), which already has a value: align it with "bind" (column 5) (line 4)']);
    expect(problems(web + '   backends: []\n')).toEqual(['(yaml): key "backends" (column 4) matches no key above: align it with "bind" (line 3, column 5) (line 4)']);
    expect(problems(web + '    backends:\n      - name: a\n      address: 1.1.1.1:1\n')).toEqual(['(yaml): key "address" is at the column of the "-" of the list item above (line 5): indent it to column 9, like "name", to make it part of that item (line 6)']);
    expect(problems('global:\n  node: a\n log:\n    level: info\n' + web)).toEqual(['(yaml): key "log" (column 2) matches no key above: align it with "node" (line 2, column 3) or with "global" (column 1) (line 3)']);
    // Valid layouts are not flagged: a list at its key's column, block scalars, comments.
    expect(problems('listen:\n- name: web\n  bind: 127.0.0.1:80\n  # x\n  backends:\n  - name: a\n    address: 1.1.1.1:1\nglobal:\n  node: a\n')).toEqual([]);
    // Other YAML errors keep the parser's message, once per line.
    expect(problems('listen: [\n')).toHaveLength(1);
  });

  it('parses durations', () => {
    expect(parseDuration('250ms')).toBe(250);
    expect(parseDuration('2s')).toBe(2000);
    expect(parseDuration('1.5s')).toBe(1500);
    expect(parseDuration('1m')).toBe(60000);
    expect(parseDuration(300)).toBe(300);
    expect(parseDuration('2 days')).toBeUndefined();
  });
});
