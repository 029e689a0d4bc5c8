import { describe, expect, it } from 'vitest';
import { findCookie, prefixSetCookie, readInsertCookie, readPrefixCookie } from '../../src/proxy/sticky.js';

describe('cookie parsing (RFC 6265)', () => {
  it.each([
    ['SRV=a', 'SRV', 0], ['x=1; SRV=a', 'SRV', 5], ['XSRV=a; SRV=b', 'SRV', 8], ['x=SRV=a', 'SRV', -1], ['SRVX=1', 'SRV', -1],
  ])('findCookie(%s, %s) = %i', (h, n, i) => expect(findCookie(h, n)).toBe(i));

  it.each([
    ['SRV=a', true, 'a', null], ['x=1; SRV=a; y=2', true, 'a', 'x=1; y=2'], ['x=1; SRV=a', true, 'a', 'x=1'],
    ['SRV=a; y=2', true, 'a', 'y=2'], ['x=1; SRV=a', false, 'a', 'x=1; SRV=a'], ['x=1', true, undefined, 'x=1'], ['SRV="q"', true, 'q', null],
  ])('insert: %s (remove %s)', (h, rm, id, fwd) => expect(readInsertCookie(h, 'SRV', rm as boolean)).toEqual({ id, forward: fwd }));

  it.each([
    ['JSESSIONID=s1~abc', 's1', 'JSESSIONID=abc'], ['a=1; JSESSIONID=s1~abc; b=2', 's1', 'a=1; JSESSIONID=abc; b=2'],
    ['JSESSIONID=abc', undefined, 'JSESSIONID=abc'], ['JSESSIONID=abc; x=s~y', undefined, 'JSESSIONID=abc; x=s~y'],
  ])('prefix: %s', (h, id, fwd) => expect(readPrefixCookie(h, 'JSESSIONID')).toEqual({ id, forward: fwd }));

  it('prefixes only the named Set-Cookie', () => {
    expect(prefixSetCookie('JSESSIONID=abc; Path=/', 'JSESSIONID', 's1')).toBe('JSESSIONID=s1~abc; Path=/');
    expect(prefixSetCookie('OTHER=abc', 'JSESSIONID', 's1')).toBe('OTHER=abc');
    expect(prefixSetCookie('JSESSIONIDX=abc', 'JSESSIONID', 's1')).toBe('JSESSIONIDX=abc');
  });
});
