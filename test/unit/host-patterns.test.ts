import { describe, expect, it } from 'vitest';
import { compileRules, matchHost, type MatchInput } from '../../src/proxy/rules.js';
import { ruleSchema } from '../../src/config/rules.js';

/** Host (and SNI) patterns of rules: exact, `*.domain` and `prefix.*` (HAProxy's hdr_beg(host) www.), as compiled. */

const holds = (pattern: string[], host: string, key: 'host' | 'sni' = 'host'): boolean => {
  const rule = ruleSchema.parse({ when: { [key]: pattern }, return: { status: 200 } });
  const [c] = compileRules([rule], undefined, new Map());
  const h = matchHost(host);
  const m: MatchInput = { method: 'GET', path: '/', host: h, raw: [], ip: '127.0.0.1', tls: true, sni: h };
  return c.test(m);
};

describe('rule host patterns', () => {
  it.each<[string[], string, boolean]>([
    [['www.example.com'], 'WWW.example.com', true],
    [['www.example.com'], 'www.example.com:8443', true],
    [['*.example.com'], 'a.b.example.com', true],
    [['*.example.com'], 'example.com', false],
    [['api.*'], 'api.example.com', true],
    [['api.*'], 'API.shop.example', true],
    [['api.*'], 'api', false],
    [['api.*'], 'api.', false],
    [['api.*'], 'myapi.example.com', false],
    [['api.*', 'www.example.com'], 'www.example.com', true],
  ])('%j holds for %s: %s', (p, host, want) => {
    expect(holds(p, host)).toBe(want);
    expect(holds(p, host, 'sni')).toBe(want);
  });

  it('refuses a pattern with a wildcard elsewhere', () => {
    expect(ruleSchema.safeParse({ when: { host: 'a.*.example.com' }, return: { status: 200 } }).success).toBe(false);
    expect(ruleSchema.safeParse({ when: { host: '*' }, return: { status: 200 } }).success).toBe(false);
  });
});
