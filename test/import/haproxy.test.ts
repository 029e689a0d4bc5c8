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
    ['tcp-request content accept', 'tcp-request rules have no pairlb equivalent'],
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

  it('each frontend is a pairlb frontend, each backend a pool, shared by the frontends that name it', () => {
    expect(r.listen).toEqual([]);
    expect(r.frontends.map((f) => [f.name, f.bind, f.default_backend, f.rules, (f.forwardfor as { enabled: boolean }).enabled])).toEqual([
      ['www', '0.0.0.0:80', 'app', undefined, true],
      ['rules', '0.0.0.0:81', 'app', [{ when: { path_prefix: '/api' }, backend: 'api' }], false],
    ]);
    expect(r.backends.map((b) => [b.name, (b.servers as { name: string }[]).map((x) => x.name)])).toEqual([['app', ['a1']], ['api', ['p1']]]);
  });

  it('a backend no frontend sends requests to is listed with why', () => {
    expect(r.result.unmapped).toEqual([
      { at: 'h.cfg:17', text: 'backend unused', why: 'no frontend sends requests to it: not imported' },
    ]);
  });

  it('the output passes the schema', () => {
    const res = configSchema.safeParse({ listen: r.listen, frontends: r.frontends, backends: r.backends });
    expect(res.error?.issues ?? []).toEqual([]);
  });
});

/** Rules of a frontend `fe` (plain bind :80, or TLS :443 with `tls`) in front of backends a, b, c. */
function rulesOf(lines: string[], o: { tls?: boolean; backendC?: string[] } = {}) {
  const t = cfg([
    'frontend fe', `    bind :${o.tls ? '443 ssl crt /etc/haproxy/site.pem' : '80'}`, ...lines.map((l) => `    ${l}`), '    default_backend a',
    'backend a', '    server a1 10.0.0.1:80', 'backend b', '    server b1 10.0.0.2:80', 'backend c', ...(o.backendC ?? []).map((l) => `    ${l}`), '    server c1 10.0.0.3:80',
  ].join('\n'));
  const r = convertHaproxy(t, 'h.cfg');
  return { rules: r.frontends[0]?.rules, unmapped: r.result.unmapped.map((u) => `${u.text} — ${u.why}`), r };
}

describe('rules: acl, use_backend, http-request, http-response', () => {
  it.each<[string, string[], unknown[]]>([
    ['hdr(host) -i, several values', ['acl h hdr(host) -i A.example.com b.example.com', 'use_backend b if h'], [{ when: { host: ['a.example.com', 'b.example.com'] }, backend: 'b' }]],
    ['hdr_end(host) with a leading dot: subdomains', ['acl h hdr_end(host) -i .example.com', 'use_backend b if h'], [{ when: { host: '*.example.com' }, backend: 'b' }]],
    ['hdr_dom(host): the name and below', ['acl h hdr_dom(host) -i example.com', 'use_backend b if h'], [{ when: { host: ['example.com', '*.example.com'] }, backend: 'b' }]],
    ['hdr_beg(host): prefix.*', ['acl h hdr_beg(host) -i api.', 'use_backend b if h'], [{ when: { host: 'api.*' }, backend: 'b' }]],
    ['path_beg, method, src ANDed', ['acl p path_beg /api/ /v2/', 'acl m method GET HEAD', 'acl lan src 10.0.0.0/8 192.168.1.1', 'use_backend b if p m lan'],
      [{ when: { path_prefix: ['/api/', '/v2/'], method: ['GET', 'HEAD'], src: ['10.0.0.0/8', '192.168.1.1/32'] }, backend: 'b' }]],
    ['path_reg, path and path_end', ['use_backend b if { path_reg ^/u/[0-9]+$ }', 'use_backend c if { path /exact.html }', 'use_backend c if { path_end .jpg .png }'],
      [{ when: { path_regex: '^/u/[0-9]+$' }, backend: 'b' }, { when: { path_regex: '^/exact\\.html$' }, backend: 'c' }, { when: { path_regex: '(?:\\.jpg|\\.png)$' }, backend: 'c' }]],
    ['! and unless', ['acl lan src 10.0.0.0/8', 'use_backend b if !lan', 'use_backend c unless lan'], [{ when: { not: { src: '10.0.0.0/8' } }, backend: 'b' }]],
    ['|| gives one rule per branch; neighbours with the same action merge', ['acl h1 hdr(host) x.example.com', 'acl h2 hdr(host) y.example.com', 'use_backend b if h1 || h2'], [{ when: { host: ['x.example.com', 'y.example.com'] }, backend: 'b' }]],
    ['an ACL on two lines is their OR', ['acl h hdr(host) -i x.example.com', 'acl h path_beg /x/', 'use_backend b if h'], [{ when: { host: 'x.example.com' }, backend: 'b' }, { when: { path_prefix: '/x/' }, backend: 'b' }]],
    ['unless a b = !a || !b', ['acl p path_beg /p/', 'acl m method POST', 'use_backend b unless p m'], [{ when: { not: { path_prefix: '/p/' } }, backend: 'b' }, { when: { not: { method: 'POST' } }, backend: 'b' }]],
    ['header present / equal', ['use_backend b if { req.hdr(X-Canary) -m found }', 'use_backend c if { hdr(X-Env) staging }'], [{ when: { header: { name: 'X-Canary' } }, backend: 'b' }, { when: { header: { name: 'X-Env', equals: 'staging' } }, backend: 'c' }]],
    ['redirect scheme https unless ssl_fc on a plain bind: unconditional, rules after it dropped', ['http-request redirect scheme https code 301 unless { ssl_fc }', 'use_backend b if { path_beg /b }'], [{ redirect: { scheme: 'https', code: 301 } }]],
    ['deny with a status, redirect prefix, return', ['http-request deny deny_status 401 if { path_beg /private }', 'http-request redirect prefix https://new.example.com/ code 308 drop-query if { hdr(host) -i old.example.com }', 'http-request return status 200 content-type text/plain string ok if { path /ping }'],
      [{ when: { path_prefix: '/private' }, deny: { status: 401 } }, { when: { host: 'old.example.com' }, redirect: { prefix: 'https://new.example.com', code: 308, drop_query: true } }, { when: { path_regex: '^/ping$' }, return: { status: 200, content_type: 'text/plain', body: 'ok' } }]],
    ['unconditional request edits ride on every route (default too)', ['http-request set-header X-Proxy "pairlb test"', 'http-request del-header X-Debug', 'use_backend b if { path_beg /b }'],
      [{ when: { path_prefix: '/b' }, backend: 'b', set_header: { 'X-Proxy': 'pairlb test' }, del_header: ['X-Debug'] }, { backend: 'a', set_header: { 'X-Proxy': 'pairlb test' }, del_header: ['X-Debug'] }]],
    ['a conditional edit splits a route, most edits first', ['http-request set-header X-Api 1 if { path_beg /api }', 'use_backend b if { hdr(host) b.example.com }'],
      [{ when: { host: 'b.example.com', path_prefix: '/api' }, backend: 'b', set_header: { 'X-Api': '1' } }, { when: { host: 'b.example.com' }, backend: 'b' }, { when: { path_prefix: '/api' }, backend: 'a', set_header: { 'X-Api': '1' } }]],
    ['an edit the route\'s own condition implies is not split', ['acl h hdr(host) b.example.com', 'http-request set-header X-Site b if h', 'use_backend b if h'], [{ when: { host: 'b.example.com' }, backend: 'b', set_header: { 'X-Site': 'b' } }]],
  ])('%s', (_n, lines, want) => {
    const { rules, unmapped, r } = rulesOf(lines);
    expect(rules).toEqual(want);
    const res = configSchema.safeParse({ frontends: r.frontends, backends: r.backends });
    expect(res.error?.issues ?? [], unmapped.join('\n')).toEqual([]);
  });

  it('a backend\'s own http-request/http-response rules apply within the routes that reach it', () => {
    const { rules } = rulesOf(['use_backend c if { path_beg /c }'], { backendC: ['http-request deny if { method DELETE }', 'http-response set-header X-Pool c'] });
    expect(rules).toEqual([
      { when: { path_prefix: '/c', method: 'DELETE' }, deny: {} },
      { when: { path_prefix: '/c' }, backend: 'c', response_set_header: { 'X-Pool': 'c' } },
    ]);
  });

  it('on a TLS bind: ssl_fc is known, HSTS and response edits ride on the routes, the bind becomes tls', () => {
    const { rules, r } = rulesOf(['http-request redirect scheme https unless { ssl_fc }', 'http-response set-header Strict-Transport-Security "max-age=63072000" if { ssl_fc }', 'http-response del-header Server', 'use_backend b if { hdr(host) -i b.example.com }'], { tls: true });
    expect(r.frontends[0].tls).toEqual({ certificates: ['/etc/haproxy/site.pem'] });
    expect(rules).toEqual([
      { when: { host: 'b.example.com' }, backend: 'b', response_set_header: { 'Strict-Transport-Security': 'max-age=63072000' }, response_del_header: ['Server'] },
      { backend: 'a', response_set_header: { 'Strict-Transport-Security': 'max-age=63072000' }, response_del_header: ['Server'] },
    ]);
  });

  it('a frontend with a plain and a TLS bind becomes two frontends; crt DIR is a directory of PEM bundles; global ssl-default-bind-*', () => {
    const t = ['global', '    ssl-default-bind-ciphersuites TLS_AES_128_GCM_SHA256', '    ssl-default-bind-options ssl-min-ver TLSv1.3', '', cfg(['frontend fe', '    bind :80', '    bind :443 ssl crt /etc/haproxy/certs/ crt /etc/haproxy/extra.pem', '    default_backend a', 'backend a', '    server a1 10.0.0.1:80'].join('\n'))].join('\n');
    const r = convertHaproxy(t, 'h.cfg', { isDirectory: (p) => p === '/etc/haproxy/certs/' });
    expect(r.frontends.map((f) => [f.name, f.bind, f.tls])).toEqual([
      ['fe-80', '0.0.0.0:80', undefined],
      ['fe-443', '0.0.0.0:443', { certificates: ['/etc/haproxy/extra.pem'], directory: '/etc/haproxy/certs', min_version: 'TLSv1.3', ciphersuites: 'TLS_AES_128_GCM_SHA256' }],
    ]);
  });

  it('a listen section with an ssl bind keeps being a listen section, with tls:; with two binds it is two frontends and a pool', () => {
    const one = convertHaproxy(cfg(['listen web', '    bind :443 ssl crt /etc/haproxy/web.pem ssl-min-ver TLSv1.3', '    server w1 10.0.0.1:80'].join('\n')), 'h.cfg');
    expect(one.listen.map((l) => [l.name, l.bind, l.tls])).toEqual([['web', '0.0.0.0:443', { certificates: ['/etc/haproxy/web.pem'], min_version: 'TLSv1.3' }]]);
    expect(one.result.unmapped).toEqual([]);
    const two = convertHaproxy(cfg(['listen web', '    bind :80', '    bind :443 ssl crt /etc/haproxy/web.pem', '    server w1 10.0.0.1:80'].join('\n')), 'h.cfg');
    expect(two.listen).toEqual([]);
    expect(two.frontends.map((f) => [f.name, f.bind, f.default_backend, f.tls !== undefined])).toEqual([['web-80', '0.0.0.0:80', 'web', false], ['web-443', '0.0.0.0:443', 'web', true]]);
    expect(two.backends.map((b) => [b.name, (b.servers as { name: string }[]).map((x) => x.name)])).toEqual([['web', ['w1']]]);
    expect(configSchema.safeParse({ frontends: two.frontends, backends: two.backends }).success).toBe(true);
  });

  it('a listen section with rules is a frontend in front of a pool of its own name', () => {
    const r = convertHaproxy(cfg(['listen web', '    bind :80', '    http-request set-header X-A 1', '    server w1 10.0.0.1:80'].join('\n')), 'h.cfg');
    expect(r.listen).toEqual([]);
    expect(r.frontends.map((f) => [f.name, f.default_backend, f.rules])).toEqual([['web', 'web', [{ backend: 'web', set_header: { 'X-A': '1' } }]]]);
    expect(r.backends.map((b) => b.name)).toEqual(['web']);
  });

  it.each([
    ['acl x hdr_reg(host) ^a', 'hdr_reg(host) has no pairlb equivalent'],
    ['acl x url_param(id) 1', 'url_param(id): pairlb rules match host'],
    ['acl x path_beg -i /A', 'pairlb compares paths case-sensitively'],
    ['use_backend %[req.hdr(host),lower,map(/etc/haproxy/hosts.map)]', 'computed backend name'],
    ['http-request set-header X-Client %[src]', 'log-format value'],
    ['http-request set-path /x', 'pairlb rules redirect, deny, return, and set or delete request headers only'],
    ['http-request set-header Content-Length 1', 'framing or hop-by-hop header'],
    ['http-response set-status 404', 'pairlb rules set and delete response headers only'],
    ['use_backend b if { hdr(host) -f /etc/haproxy/hosts.lst }', 'patterns from a file'],
    ['use_backend b if nope', 'ACL nope is not declared in this section'],
  ])('%s is listed as not mapped', (line, why) => {
    const { unmapped } = rulesOf([line]);
    expect(unmapped.find((u) => u.startsWith(line))).toContain(why);
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
