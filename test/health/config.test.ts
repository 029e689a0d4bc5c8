import { describe, expect, it } from 'vitest';
import { checkSchema } from '../../src/config/schema.js';

describe('listen check section', () => {
  it('has HAProxy-like defaults', () => {
    expect(checkSchema.parse({})).toEqual({ type: 'http', method: 'GET', path: '/', expect: ['200-399'], interval: 2000, timeout: 1000, rise: 2, fall: 3, dns_name: '.' });
  });

  it.each([
    [{ path: '/a b' }, 'path'],
    [{ path: '/a\r\nX-Evil: 1' }, 'path'],
    [{ host: 'a\r\nb' }, 'host'],
    [{ expect: ['500-200'] }, 'expect'],
    [{ expect: [42] }, 'expect'],
    [{ expect: [] }, 'expect'],
    [{ interval: 0 }, 'interval'],
    [{ fastinterval: '5ms' }, 'fastinterval'],
    [{ timeout: '0s' }, 'timeout'],
    [{ rise: 0 }, 'rise'],
  ])('refuses %j', (input, key) => {
    const r = checkSchema.safeParse(input);
    expect(r.success).toBe(false);
    expect(r.error!.issues[0].path[0]).toBe(key);
  });

  it('accepts lists of codes and ranges and durations with units', () => {
    expect(checkSchema.parse({ expect: [200, '204', '500-503'], interval: '250ms', downinterval: '1m' })).toMatchObject({ expect: [200, '204', '500-503'], interval: 250, downinterval: 60_000 });
  });
});
