import { describe, expect, it } from 'vitest';
import { convertHaproxy, haproxyAddress, haproxyTime } from '../../src/import/haproxy.js';
import { configSchema } from '../../src/config/schema.js';

/** haproxy.cfg → listen sections (issue 15): values keep HAProxy's meaning; every unmapped line says why. */

const cfg = (body: string): string => `defaults\n    mode http\n\n${body}\n`;
const only = (text: string) => {
  const r = convertHaproxy(text, 'h.cfg');
  return { l: r.listen[0], r };
};

describe('HAProxy values', () => {
  it.each([
    ['5000', 5000], ['5s', 5000], ['50000', 50000], ['1m', 60000], ['2h', 7200000], ['1d', 86400000], ['500us', 1], ['10ms', 10], ['x', undefined], ['5 s', undefined],
  ])('time %s → %s ms (no unit = ms)', (v, ms) => expect(haproxyTime(v)).toBe(ms));

  it.each([
    ['0.0.0.0:80', '0.0.0.0:80'], ['*:80', '0.0.0.0:80'], [':8080', '0.0.0.0:8080'], ['10.0.0.1:443', '10.0.0.1:443'],
    ['[::]:80', '[::]:80'], [':::80', '[::]:80'], ['ipv4@1.2.3.4:80', '1.2.3.4:80'], ['web.example:80', 'web.example:80'],
  ])('address %s → %s', (a, hp) => expect(haproxyAddress(a)).toEqual({ hostPort: hp }));

  it.each([
    ['unix@/run/x.sock', 'pairlb binds TCP addresses only'],
    ['1.2.3.4:80-81', 'port ranges have no pairlb equivalent (one port per listen section)'],
    ['1.2.3.4', 'no port (HAProxy then uses the port the client connected to; pairlb needs one)'],
  ])('address %s is refused: %s', (a, why) => expect(haproxyAddress(a)).toEqual({ why }));
});

describe('listen section lines', () => {
  it.each<[string, string, Record<string, unknown>]>([
    ['bare check is a TCP connect', 'server a 10.0.0.1:80 check', { check: { type: 'tcp', interval: '2s', timeout: '2s', rise: 2, fall: 3 } }],
    ['httpchk with one argument is the uri (method OPTIONS)', 'option httpchk /ping\n    server a 10.0.0.1:80 check', { check: { type: 'http', method: 'OPTIONS', path: '/ping', interval: '2s', timeout: '2s', rise: 2, fall: 3 } }],
    ['http-check send (HAProxy 2.2+)', 'option httpchk\n    http-check send meth GET uri /health ver HTTP/1.1 hdr Host www.example.com\n    server a 10.0.0.1:80 check', { check: { type: 'http', method: 'GET', path: '/health', host: 'www.example.com', interval: '2s', timeout: '2s', rise: 2, fall: 3 } }],
    ['httpchk Host trick', 'option httpchk GET /h HTTP/1.1\\r\\nHost:\\ www.example.com\n    server a 10.0.0.1:80 check', { check: { type: 'http', method: 'GET', path: '/h', host: 'www.example.com', interval: '2s', timeout: '2s', rise: 2, fall: 3 } }],
    ['inter/rise/fall and timeout check', 'timeout check 500\n    server a 10.0.0.1:80 check inter 5s rise 4 fall 1 fastinter 1s downinter 10s', { check: { type: 'tcp', interval: '5s', fastinterval: '1s', downinterval: '10s', timeout: '500ms', rise: 4, fall: 1 } }],
    ['cookie insert keeps HttpOnly off', 'cookie SRV insert indirect nocache', { cookie: { name: 'SRV', mode: 'insert', indirect: true, nocache: true, httponly: false } }],
    ['cookie insert httponly secure', 'cookie SRV insert httponly secure attr SameSite=lax', { cookie: { name: 'SRV', mode: 'insert', httponly: true, secure: true, samesite: 'Lax' } }],
    ['cookie prefix', 'cookie JSESSIONID prefix', { cookie: { name: 'JSESSIONID', mode: 'prefix' } }],
    ['forwardfor', 'option forwardfor', { forwardfor: { enabled: true, proto: false } }],
    ['forwardfor header', 'option forwardfor header X-Client', { forwardfor: { enabled: true, header: 'X-Client', proto: false } }],
    ['no forwardfor = no XFF', '', { forwardfor: { enabled: false } }],
    ['old timeouts (ms)', 'contimeout 5000\n    srvtimeout 50000\n    clitimeout 50000', { timeouts: { connect: '5s', server: '50s', client: '50s' } }],
    ['new timeouts', 'timeout connect 4s\n    timeout server 1m\n    timeout http-request 10s\n    timeout tunnel 1h', { timeouts: { connect: '4s', server: '1m', http_request: '10s', tunnel: '1h' } }],
    ['http-keep-alive wins over timeout client', 'timeout client 30s\n    timeout http-keep-alive 2s', { timeouts: { client: '2s' } }],
    ['retries and redispatch', 'retries 3\n    option redispatch', { retries: 3, redispatch: true }],
    ['no option redispatch = false', '', { redispatch: false }],
    ['balance leastconn', 'balance leastconn', { balance: 'leastconn' }],
    ['balance source, consistent', 'balance source\n    hash-type consistent', { balance: 'source', hash_type: 'consistent' }],
    ['balance hdr(name)', 'balance hdr(X-Tenant)', { balance: 'header', hash_header: 'X-Tenant' }],
    ['balance random(2)', 'balance random(2)', { balance: 'random' }],
    ['frontend maxconn, timeout queue', 'maxconn 100\n    timeout queue 5s', { maxconn: 100, timeouts: { queue: '5s' } }],
    ['option httpclose', 'option httpclose', { connection_mode: 'httpclose' }],
    ['option http-server-close', 'option http-server-close', { connection_mode: 'http-server-close' }],
  ])('%s', (_n, lines, want) => {
    const { l } = only(cfg(`listen web 0.0.0.0:80\n    ${lines}`));
    expect(l).toMatchObject({ name: 'web', bind: '0.0.0.0:80', mode: 'http', ...want });
  });

  it('server parameters', () => {
    const { l, r } = only(cfg('listen web\n    bind :80\n    default-server inter 3s\n    server a 10.0.0.1:80 weight 10 cookie A check backup\n    server b 10.0.0.2 disabled\n    server c 10.0.0.3:80 check maxconn 50 port 81'));
    expect(l.backends).toEqual([
      { name: 'a', address: '10.0.0.1:80', weight: 10, cookie: 'A', backup: true },
      { name: 'b', address: '10.0.0.2:80', state: 'maint', check: false },
      { name: 'c', address: '10.0.0.3:80', maxconn: 50 },
    ]);
    expect((l.check as Record<string, unknown>).interval).toBe('3s');
    expect(r.result.unmapped.map((u) => [u.at, u.why])).toEqual([
      ['h.cfg:8', 'no port: HAProxy uses the port the client connected to; written with the bind\'s port 80'],
      ['h.cfg:9', 'server options port 81: no pairlb equivalent (pairlb servers have name, address, weight, cookie, backup, check, state, maxconn; check timings are per listen section)'],
    ]);
  });

  it.each([
    ['balance static-rr', 'balance static-rr: pairlb has roundrobin, leastconn, source, uri, hdr(name), random(2); roundrobin is used'],
    ['balance uri whole', 'balance uri whole: options have no pairlb equivalent (uri hashes the path without the query string)'],
    ['cookie SRV', 'cookie rewrite mode (the default without insert/prefix) has no pairlb equivalent: use insert or prefix'],
    ['bind :81', 'pairlb has one bind per listen section: only the first bind is used'],
    ['http-request set-header X-A 1', 'header/request rules have no pairlb equivalent yet'],
    ['frobnicate 1', 'no pairlb equivalent'],
  ])('%s is listed as not mapped', (line, why) => {
    const { r } = only(cfg(`listen web\n    bind :80\n    ${line}`));
    expect(r.result.unmapped).toEqual([{ at: 'h.cfg:6', text: line, why }]);
  });

  it('a section name pairlb does not allow is rewritten and said so', () => {
    const r = convertHaproxy(cfg('listen web:front\n    bind :80'), 'h.cfg');
    expect(r.listen[0].name).toBe('web-front');
    expect(r.result.unmapped).toEqual([{ at: 'h.cfg:4', text: 'listen web:front', why: '"web:front" is not a pairlb name (letters, digits, . _ -): written as web-front' }]);
  });

  it('mode tcp (HAProxy\'s default) is not imported', () => {
    const r = convertHaproxy('listen db :5432\n    server a 10.0.0.1:5432 check\n', 'h.cfg');
    expect(r.listen).toEqual([]);
    expect(r.result.unmapped).toEqual([{ at: 'h.cfg:1', text: 'listen db :5432', why: 'mode tcp (HAProxy\'s default without `mode http`): pairlb proxies HTTP only; this section is not imported' }]);
  });
});

describe('frontends and backends', () => {
  const text = cfg([
    'frontend www', '    bind :80', '    option forwardfor', '    default_backend app',
    'frontend rules', '    bind :81', '    acl is_api path_beg /api', '    use_backend api if is_api', '    default_backend app',
    'backend app', '    server a1 10.0.0.1:80 check',
    'backend api', '    server p1 10.0.0.2:80',
    'backend unused', '    server u1 10.0.0.3:80',
  ].join('\n'));
  const r = convertHaproxy(text, 'h.cfg');

  it('a frontend with only default_backend becomes one listen section with the backend\'s servers', () => {
    expect(r.listen.map((l) => [l.name, l.bind, (l.backends as { name: string }[]).map((b) => b.name), l.forwardfor])).toEqual([
      ['www', '0.0.0.0:80', ['a1'], { enabled: true, proto: false }],
    ]);
  });

  it('a frontend with use_backend rules, and backends only it reaches, are listed with why', () => {
    expect(r.result.unmapped).toEqual([
      { at: 'h.cfg:8', text: 'frontend rules', why: 'routes by rules (use_backend at line 11; acl at 10; path_beg /api → api, else → app): pairlb has one bind and one pool per listen section today, so rules cannot be expressed yet; this frontend is not imported (give each backend its own port or host name in front, or keep HAProxy for it)' },
      { at: 'h.cfg:15', text: 'backend api', why: 'only reached through the use_backend rules of frontend rules: not imported' },
      { at: 'h.cfg:17', text: 'backend unused', why: 'no frontend uses it as default_backend: not imported' },
    ]);
  });

  it('the output passes the schema', () => {
    expect(configSchema.safeParse({ listen: r.listen }).success).toBe(true);
  });
});

describe('stats and global', () => {
  it('stats auth/realm/refresh/admin → the stats section; global maxconn; the rest listed', () => {
    const r = convertHaproxy('global\n    maxconn 4096\n    daemon\n' + cfg('listen web :80\n    stats enable\n    stats uri /st\n    stats auth ops:s3cret\n    stats realm Haproxy\\ Stats\n    stats refresh 10s\n    stats admin if TRUE'), 'h.cfg');
    expect(r.global).toEqual({ maxconn: 4096 });
    expect(r.stats).toEqual({ bind: '127.0.0.1:8404', auth: [{ user: 'ops', password: 's3cret' }], realm: 'Haproxy Stats', refresh: '10s', admin: true });
    expect(r.result.unmapped).toEqual([{ at: 'h.cfg:3', text: 'daemon', why: 'pairlb runs in the foreground under systemd (systemd/pairlb.service)' }]);
    expect(r.result.comments.get('stats')).toEqual(['from listen web: HAProxy served the page on that section\'s port at /st; pairlb serves it on its own bind at / (change bind to reach it from elsewhere)']);
    expect(configSchema.safeParse({ listen: r.listen, stats: r.stats }).success).toBe(true);
  });
});
