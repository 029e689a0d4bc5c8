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

  it('parses durations', () => {
    expect(parseDuration('250ms')).toBe(250);
    expect(parseDuration('2s')).toBe(2000);
    expect(parseDuration('1.5s')).toBe(1500);
    expect(parseDuration('1m')).toBe(60000);
    expect(parseDuration(300)).toBe(300);
    expect(parseDuration('2 days')).toBeUndefined();
  });
});
