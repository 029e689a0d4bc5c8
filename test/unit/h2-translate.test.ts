import { describe, expect, it } from 'vitest';
import { h2RequestHead } from '../../src/h2/translate.js';

/** RFC 9113 §8.3.1 pseudo-header fields and §8.2.2/§8.2.3 field rules, as the pipeline gets them. */
const req = (extra: string[] = [], pseudo: string[] = [':method', 'GET', ':scheme', 'https', ':path', '/p?q', ':authority', 'a.test']) => h2RequestHead([...pseudo, ...extra]);

describe('h2RequestHead', () => {
  it('pseudo-fields become method, target and authority; regular fields are kept in order', () => {
    expect(req(['accept', '*/*', 'x-a', '1'])).toEqual({ refuse: 0, method: 'GET', path: '/p?q', authority: 'a.test', raw: ['accept', '*/*', 'x-a', '1'] });
  });
  it('cookie fields are joined with "; " at the first one\'s place (§8.2.3)', () => {
    expect(req(['cookie', 'a=1', 'accept', '*/*', 'cookie', 'b=2']).raw).toEqual(['cookie', 'a=1; b=2', 'accept', '*/*']);
  });
  it('te: trailers is allowed (the pipeline drops it as hop-by-hop)', () => {
    expect(req(['te', 'trailers']).refuse).toBe(0);
  });
  it('no :authority: the Host field is used; neither: 400', () => {
    expect(req(['host', 'h.test'], [':method', 'GET', ':scheme', 'http', ':path', '/'])).toMatchObject({ refuse: 0, authority: undefined, raw: ['host', 'h.test'] });
    expect(req([], [':method', 'GET', ':scheme', 'http', ':path', '/']).refuse).toBe(400);
    expect(req([], [':method', 'GET', ':scheme', 'http', ':path', '/', ':authority', '']).refuse).toBe(400);
  });
  it('OPTIONS * is an asterisk-form target; other methods may not use it', () => {
    expect(req([], [':method', 'OPTIONS', ':scheme', 'http', ':path', '*', ':authority', 'a']).refuse).toBe(0);
    expect(req([], [':method', 'GET', ':scheme', 'http', ':path', '*', ':authority', 'a']).refuse).toBe(400);
  });
  it('CONNECT is 501 (no extended CONNECT offered)', () => {
    expect(h2RequestHead([':method', 'CONNECT', ':authority', 'a:443']).refuse).toBe(501);
  });
  it.each([
    ['connection', ['connection', 'close']],
    ['keep-alive', ['keep-alive', '1']],
    ['proxy-connection', ['proxy-connection', 'x']],
    ['transfer-encoding', ['transfer-encoding', 'chunked']],
    ['upgrade', ['upgrade', 'h2c']],
    ['te other than trailers', ['te', 'gzip']],
    ['a pseudo-field after a regular one', ['accept', '*/*', ':path', '/x']],
    ['content-length not a number', ['content-length', '1,1']],
    ['two content-length fields', ['content-length', '1', 'content-length', '1']],
  ])('400: %s', (_n, extra) => { expect(req(extra).refuse).toBe(400); });
  it.each([
    ['missing :method', [':scheme', 'http', ':path', '/', ':authority', 'a']],
    ['missing :scheme', [':method', 'GET', ':path', '/', ':authority', 'a']],
    ['missing :path', [':method', 'GET', ':scheme', 'http', ':authority', 'a']],
    ['empty :path', [':method', 'GET', ':scheme', 'http', ':path', '', ':authority', 'a']],
    ['two :path', [':method', 'GET', ':scheme', 'http', ':path', '/', ':path', '/', ':authority', 'a']],
    ['unknown pseudo-field', [':method', 'GET', ':scheme', 'http', ':path', '/', ':authority', 'a', ':protocol', 'websocket']],
    [':scheme ftp', [':method', 'GET', ':scheme', 'ftp', ':path', '/', ':authority', 'a']],
    [':path not origin-form', [':method', 'GET', ':scheme', 'http', ':path', 'http://a/', ':authority', 'a']],
    ['a fragment', [':method', 'GET', ':scheme', 'http', ':path', '/a#b', ':authority', 'a']],
    ['userinfo in :authority', [':method', 'GET', ':scheme', 'http', ':path', '/', ':authority', 'u@a']],
    ['a space in :authority', [':method', 'GET', ':scheme', 'http', ':path', '/', ':authority', 'a b']],
  ])('400: %s', (_n, pseudo) => { expect(h2RequestHead(pseudo).refuse).toBe(400); });
});
