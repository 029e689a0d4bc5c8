import { ImportResult, NAME_RE, fmtMs, sourceLines, type SourceLine } from './result.js';

/**
 * haproxy.cfg → pairlb `listen` sections (pure). pairlb has one bind and one pool per listen
 * section today, so a HAProxy `listen`, and a `frontend` whose only routing is `default_backend`,
 * become a listen section each; a frontend with `use_backend … if` rules cannot be expressed yet and
 * is listed as unmapped. Values keep HAProxy's meaning: times without a unit are milliseconds, a bare
 * `check` is a TCP connect (pairlb `check.type: tcp`), no `option forwardfor` means no X-Forwarded-For.
 */

export interface HaproxyImport {
  listen: Record<string, unknown>[];
  global: Record<string, unknown>;
  stats?: Record<string, unknown>;
  result: ImportResult;
}

interface Directive { line: SourceLine; file: string; fromDefaults: boolean }
interface Section { kind: string; name: string; line: SourceLine; body: Directive[]; defaults: Directive[]; defaultsId: number }

const PROXY_KINDS = new Set(['listen', 'frontend', 'backend', 'defaults']);
const OTHER_KINDS = new Set(['global', 'userlist', 'peers', 'resolvers', 'mailers', 'program', 'cache', 'http-errors', 'ring', 'log-forward', 'crt-store', 'traces']);

/** HAProxy time: a number with an optional unit, default milliseconds (configuration.txt §2.5). */
export function haproxyTime(v: string): number | undefined {
  const m = /^(\d+(?:\.\d+)?)(us|ms|s|m|h|d)?$/.exec(v);
  if (!m) return undefined;
  const unit = { us: 0.001, ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 }[m[2] ?? 'ms']!;
  return Math.round(Number(m[1]) * unit);
}

/** HAProxy address → pairlb host:port. `*:80`, `:80` → 0.0.0.0:80; `:::80` / `[::]:80` → [::]:80. */
export function haproxyAddress(a: string): { hostPort?: string; why?: string } {
  if (/^(unix|abns|fd|sockpair|quic4|quic6|udp|udp4|udp6)@/.test(a) || a.startsWith('/')) return { why: 'pairlb binds TCP addresses only' };
  const s = a.replace(/^(ipv4|ipv6|tcp|tcp4|tcp6)@/, '');
  let host: string, port: string;
  const br = /^\[([0-9A-Fa-f:.]+)\]:(.+)$/.exec(s);
  if (br) { host = br[1]; port = br[2]; } else {
    const i = s.lastIndexOf(':');
    if (i < 0) return { why: 'no port (HAProxy then uses the port the client connected to; pairlb needs one)' };
    host = s.slice(0, i); port = s.slice(i + 1);
  }
  if (/^\d+-\d+$/.test(port)) return { why: 'port ranges have no pairlb equivalent (one port per listen section)' };
  if (!/^\d{1,5}$/.test(port) || Number(port) > 65535) return { why: `bad port ${JSON.stringify(port)}` };
  if (host === '' || host === '*') host = '0.0.0.0';
  if (host.includes(':')) host = `[${host === '::' || host === '' ? '::' : host}]`;
  return { hostPort: `${host}:${port}` };
}

function parseSections(text: string, file: string, r: ImportResult): { sections: Section[]; global: Directive[] } {
  const sections: Section[] = [];
  const global: Directive[] = [];
  let cur: Section | undefined;
  let inGlobal = false;
  let skipping = false;
  let defaults: Directive[] = [];
  let defaultsId = 0;
  for (const line of sourceLines(text, { comment: /(^|[^\\])#.*$/ })) {
    const kw = line.words[0];
    if (PROXY_KINDS.has(kw) || OTHER_KINDS.has(kw)) {
      inGlobal = kw === 'global'; skipping = false; cur = undefined;
      if (kw === 'defaults') {
        defaults = [];
        defaultsId++;
        if (line.words.length > 1) r.skip(`${file}:${line.n}`, line.text, 'named defaults (and `from`) are not followed: the options of this defaults section apply to the sections after it');
        cur = { kind: 'defaults', name: '', line, body: defaults, defaults: [], defaultsId };
      } else if (PROXY_KINDS.has(kw)) {
        cur = { kind: kw, name: line.words[1] ?? '', line, body: [], defaults: defaults.map((d) => ({ ...d, fromDefaults: true })), defaultsId };
        sections.push(cur);
      } else if (!inGlobal) {
        skipping = true;
        r.skip(`${file}:${line.n}`, line.text, `a ${kw} section has no pairlb equivalent (its lines are not listed one by one)`);
      }
      continue;
    }
    if (skipping) continue;
    const d: Directive = { line, file, fromDefaults: false };
    if (inGlobal) global.push(d);
    else if (cur) cur.body.push(d);
    else r.skip(`${file}:${line.n}`, line.text, 'outside any section');
  }
  return { sections, global };
}

/** The listen section being built from defaults + section lines, in file order (later lines win). */
interface Builder {
  name: string;
  at: string;
  bind?: string;
  mode: string;
  balance?: string;
  hashType?: string;
  hashHeader?: string;
  /** Frontend (listen) maxconn. */
  maxconn?: number;
  connectionMode?: string;
  cookie?: Record<string, unknown>;
  forwardfor?: { enabled: boolean; header?: string };
  httpchk?: { method: string; path: string; host?: string };
  expect?: string[];
  timeouts: Record<string, number>;
  checkTimeout?: number;
  retries?: number;
  redispatch?: boolean;
  servers: Record<string, unknown>[];
  serverCheck: { inter?: number; fastinter?: number; downinter?: number; rise?: number; fall?: number; at?: string; differs: string[] };
  defaultServer: string[];
  slowstart?: number;
  defaultBackend?: Directive;
  rules: Directive[];
}

const TIMEOUT_MAP: Record<string, string> = {
  connect: 'connect', server: 'server', 'http-request': 'http_request', 'http-keep-alive': 'client', tunnel: 'tunnel', queue: 'queue',
  contimeout: 'connect', srvtimeout: 'server',
};

const GENERIC = 'no pairlb equivalent';

const OPTION_WHY: Record<string, string> = {
  'http-keep-alive': 'pairlb keeps connections alive by default (connection_mode: http-keep-alive): nothing to write',
  'http-pretend-keepalive': 'pairlb keeps backend connections alive: nothing to write',
  dontlognull: 'pairlb logs every request it parsed; connections without a request are not logged as requests',
  tcplog: 'pairlb proxies HTTP only',
  abortonclose: GENERIC,
  'log-health-checks': 'pairlb logs every state change of a backend (health checks included) always',
};

function fresh(name: string, at: string): Builder {
  return { name, at, mode: 'tcp', timeouts: {}, servers: [], serverCheck: { differs: [] }, defaultServer: [], rules: [] };
}

/** Applies one line. `part` says whether the line belongs to the frontend half or the backend half of a frontend+backend pair. */
function apply(b: Builder, d: Directive, r: ImportResult, part: 'all' | 'frontend' | 'backend', bindPort?: string): void {
  const w = d.line.words;
  const at = `${d.file}:${d.line.n}`;
  const skip = (why: string): void => r.skip(at, d.line.text, why);
  const kw = w[0];
  const no = kw === 'no';
  const k = no ? w[1] : kw;
  const args = no ? w.slice(2) : w.slice(1);
  if (part === 'backend' && (k === 'bind' || (k === 'timeout' && ['client', 'http-request', 'http-keep-alive'].includes(args[0])) || k === 'clitimeout')) return;
  switch (k) {
    case 'bind': {
      if (b.bind) { skip('pairlb has one bind per listen section: only the first bind is used'); return; }
      const addrs = args[0]?.split(',') ?? [];
      const a = haproxyAddress(addrs[0] ?? '');
      if (!a.hostPort) { skip(a.why!); return; }
      b.bind = a.hostPort;
      if (addrs.length > 1) skip('pairlb has one bind per listen section: only the first address is used');
      if (args.length > 1) skip(args.slice(1).some((x) => x === 'ssl' || x === 'crt') ? 'TLS on the bind: pairlb listens in plain HTTP here (terminate TLS in front of it)' : `bind options ${args.slice(1).join(' ')}: ${GENERIC}`);
      return;
    }
    case 'mode':
      b.mode = args[0];
      return;
    case 'balance': {
      const alg = args[0] ?? '';
      const hdr = /^hdr\(([!#$%&'*+\-.^_`|~0-9A-Za-z]+)\)$/.exec(alg);
      if (['roundrobin', 'leastconn', 'source', 'uri'].includes(alg)) b.balance = alg;
      else if (/^random(\(2\))?$/.test(alg)) b.balance = 'random';
      else if (hdr) { b.balance = 'header'; b.hashHeader = hdr[1]; }
      else { skip(`balance ${alg}: pairlb has roundrobin, leastconn, source, uri, hdr(name), random(2); roundrobin is used`); return; }
      if (args.length > 1) skip(`balance ${alg} ${args.slice(1).join(' ')}: options have no pairlb equivalent (uri hashes the path without the query string)`);
      return;
    }
    case 'hash-type':
      if (args[0] === 'map-based' || args[0] === 'consistent') b.hashType = args[0];
      else { skip(`hash-type ${args[0]}: pairlb has map-based and consistent`); return; }
      if (args.length > 1) skip(`hash-type ${args.slice(1).join(' ')}: pairlb hashes with its own function (FNV-1a + murmur3 finaliser)`);
      return;
    case 'cookie': return applyCookie(b, args, skip, r);
    case 'option': return applyOption(b, args, no, skip, d, r);
    case 'http-check':
      if (args[0] === 'expect' && args[1] === 'status' && args[2] && /^\d{3}$/.test(args[2])) { b.expect = [args[2]]; return; }
      if (args[0] === 'expect' && args[1] === 'status' && args[2] && /^\d{3}-\d{3}$/.test(args[2])) { b.expect = [args[2]]; return; }
      if (args[0] === 'send') {
        // HAProxy 2.2+: http-check send [meth M] [uri U] [ver V] [hdr Host H]; applies with option httpchk.
        const c = b.httpchk ?? { method: 'OPTIONS', path: '/' };
        const rest: string[] = [];
        for (let i = 1; i < args.length; i++) {
          const v = args[i + 1];
          if (args[i] === 'meth' && v && /^[A-Z]+$/.test(v)) { c.method = v; i++; }
          else if (args[i] === 'uri' && v?.startsWith('/')) { c.path = v; i++; }
          else if (args[i] === 'hdr' && /^host$/i.test(v ?? '') && args[i + 2]) { c.host = args[i + 2]; i += 2; }
          else if (args[i] === 'ver' && v === 'HTTP/1.1') i++;
          else rest.push(args[i]);
        }
        b.httpchk = c;
        if (rest.length) skip(`http-check send ${rest.join(' ')}: pairlb's HTTP checks send a method, a path and a Host header only (HTTP/1.1)`);
        return;
      }
      skip('pairlb checks accept a list of statuses (check.expect) only: no string/regex matches, no check sequences');
      return;
    case 'timeout': {
      const ms = haproxyTime(args[1] ?? '');
      if (ms === undefined) { skip('not a HAProxy time'); return; }
      if (args[0] === 'client') {
        // HAProxy's timeout client is the client's inactivity timeout; pairlb's `client` is the idle
        // keep-alive timeout (what HAProxy uses timeout client for when http-keep-alive is unset).
        if (b.timeouts.client === undefined || d.fromDefaults) b.timeouts.client_from_client = ms;
        return;
      }
      if (args[0] === 'check') { b.checkTimeout = ms; return; }
      const key = TIMEOUT_MAP[args[0]];
      if (!key) { skip(`timeout ${args[0]}: ${GENERIC}`); return; }
      b.timeouts[key] = ms;
      return;
    }
    case 'contimeout': case 'srvtimeout': case 'clitimeout': {
      const ms = haproxyTime(args[0] ?? '');
      if (ms === undefined) { skip('not a HAProxy time'); return; }
      if (k === 'clitimeout') b.timeouts.client_from_client = ms; else b.timeouts[TIMEOUT_MAP[k]] = ms;
      return;
    }
    case 'retries': {
      const n = Number(args[0]);
      if (!Number.isInteger(n) || n < 0) { skip('not a count'); return; }
      if (n > 10) skip('pairlb allows at most 10 retries: 10 is written');
      b.retries = Math.min(n, 10);
      return;
    }
    case 'redispatch': b.redispatch = true; return;
    case 'default-server': b.defaultServer = args; return;
    case 'server': return applyServer(b, d, args, r, bindPort ?? b.bind?.split(':').pop());
    case 'default_backend': b.defaultBackend = d; return;
    case 'use_backend': case 'acl': b.rules.push(d); return;
    case 'stats': return; // collected separately (one stats section for the whole file)
    case 'maxconn': {
      const n = Number(args[0]);
      if (!Number.isInteger(n) || n < 1) { skip('not a count'); return; }
      // A backend section has no maxconn of its own in HAProxy (fullconn): only the frontend half.
      if (part !== 'backend') b.maxconn = n;
      return;
    }
    case 'log': skip('pairlb writes JSON logs (and the access log) to stdout, i.e. journald; no syslog target'); return;
    case 'description': return;
    case 'fullconn': case 'dispatch': skip(GENERIC); return;
    case 'errorfile': case 'errorloc': case 'errorloc302': case 'errorloc303': skip('pairlb writes its own error pages (503/502/504); custom pages have no equivalent yet'); return;
    case 'http-request': case 'http-response': case 'reqadd': case 'rspadd': case 'reqrep': case 'rsprep': case 'reqdel': case 'rspdel': case 'http-after-response': case 'tcp-request': case 'tcp-response': case 'redirect':
      skip('header/request rules have no pairlb equivalent yet'); return;
    default: skip(GENERIC);
  }
}

function applyCookie(b: Builder, args: string[], skip: (why: string) => void, r: ImportResult): void {
  void r;
  const name = args[0];
  if (!name || !/^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/.test(name)) { skip('not a cookie name'); return; }
  const c: Record<string, unknown> = { name };
  let mode: string | undefined;
  const bad: string[] = [];
  for (let i = 1; i < args.length; i++) {
    const a = args[i];
    if (a === 'insert' || a === 'prefix' || a === 'rewrite') mode = a;
    else if (a === 'indirect') c.indirect = true;
    else if (a === 'nocache') c.nocache = true;
    else if (a === 'secure') c.secure = true;
    else if (a === 'httponly') c.httponly = true;
    else if (a === 'domain') c.domain = args[++i];
    else if (a === 'attr' && /^SameSite=(Strict|Lax|None)$/i.test(args[i + 1] ?? '')) { const v = args[++i].split('=')[1].toLowerCase(); c.samesite = v[0].toUpperCase() + v.slice(1); }
    else if (a === 'maxidle' || a === 'maxlife' || a === 'attr') bad.push(`${a} ${args[++i]}`);
    else bad.push(a);
  }
  if (mode === 'rewrite' || mode === undefined) { skip('cookie rewrite mode (the default without insert/prefix) has no pairlb equivalent: use insert or prefix'); return; }
  // HAProxy sets HttpOnly only when asked; pairlb's default is on.
  if (mode === 'insert' && c.httponly === undefined) c.httponly = false;
  if (bad.length) skip(`cookie options ${bad.join(', ')}: ${GENERIC} (postonly, preserve, dynamic, maxidle/maxlife are not implemented)`);
  b.cookie = { name, mode, ...c };
}

function applyOption(b: Builder, args: string[], no: boolean, skip: (why: string) => void, d: Directive, r: ImportResult): void {
  void d; void r;
  const o = args[0];
  switch (o) {
    case 'forwardfor': {
      if (no) { b.forwardfor = { enabled: false }; return; }
      const f: { enabled: boolean; header?: string } = { enabled: true };
      const rest: string[] = [];
      for (let i = 1; i < args.length; i++) {
        if (args[i] === 'header') f.header = args[++i];
        else if (args[i] === 'except') rest.push(`except ${args[++i]}`);
        else rest.push(args[i]);
      }
      if (rest.length) skip(`option forwardfor ${rest.join(' ')}: ${GENERIC} (pairlb always appends the client address)`);
      b.forwardfor = f;
      return;
    }
    case 'httpchk': {
      if (no) { b.httpchk = undefined; return; }
      // option httpchk [<method>] <uri> [<version>]  (one argument = the uri)
      let method = 'OPTIONS', path = '/', version: string | undefined;
      const a = args.slice(1);
      if (a.length === 1) path = a[0];
      else if (a.length >= 2) { method = a[0]; path = a[1]; version = a.slice(2).join(' ') || undefined; }
      const c: { method: string; path: string; host?: string } = { method, path };
      if (version) {
        // The old trick: "HTTP/1.1\r\nHost:\ www.example.com".
        const host = /\\r\\nHost:\\?\s*([^\s\\]+)/i.exec(version)?.[1];
        if (host) c.host = host;
        const v = version.split('\\r\\n')[0];
        if (v !== 'HTTP/1.1') skip(`pairlb's HTTP checks are HTTP/1.1 with a Host header (the backend's address unless check.host); ${v} is not sent as such — a server that answers HTTP/1.0 answers these too`);
      }
      if (!/^\/[^\s]*$/.test(path)) { skip('pairlb check paths start with /'); return; }
      b.httpchk = c;
      return;
    }
    case 'redispatch': b.redispatch = !no; return;
    case 'httpclose': case 'http-server-close': case 'forceclose':
      b.connectionMode = no ? 'http-keep-alive' : o === 'http-server-close' ? 'http-server-close' : 'httpclose';
      return;
    case 'httplog': return; // pairlb's access log has the httplog fields (docs/operations.md)
    default: {
      const why = OPTION_WHY[o];
      skip(why ?? GENERIC);
    }
  }
}

function applyServer(b: Builder, d: Directive, args: string[], r: ImportResult, bindPort?: string): void {
  const at = `${d.file}:${d.line.n}`;
  const skip = (why: string): void => r.skip(at, d.line.text, why);
  let name = args[0] ?? '';
  if (!NAME_RE.test(name)) {
    const fixed = name.replace(/[^A-Za-z0-9._-]/g, '-').replace(/^[^A-Za-z0-9]+/, '').slice(0, 64) || `server${b.servers.length + 1}`;
    skip(`server name ${JSON.stringify(name)} is not a pairlb name (letters, digits, . _ -): written as ${fixed}`);
    name = fixed;
  }
  let addr = args[1] ?? '';
  if (addr && !/:\d+$/.test(addr) && !addr.includes(']') && bindPort) {
    skip(`no port: HAProxy uses the port the client connected to; written with the bind's port ${bindPort}`);
    addr = `${addr}:${bindPort}`;
  }
  const a = haproxyAddress(addr);
  if (!a.hostPort) { skip(`server address: ${a.why}`); return; }
  const s: Record<string, unknown> = { name, address: a.hostPort };
  let check = false;
  const timing: Record<string, number> = {};
  const bad: string[] = [];
  const params = [...b.defaultServer, ...args.slice(2)];
  for (let i = 0; i < params.length; i++) {
    const p = params[i];
    const v = params[i + 1];
    switch (p) {
      case 'check': check = true; break;
      case 'no-check': check = false; break;
      case 'backup': s.backup = true; break;
      case 'disabled': s.state = 'maint'; break;
      case 'enabled': delete s.state; break;
      case 'weight': { i++; const n = Number(v); if (Number.isInteger(n) && n >= 0 && n <= 256) s.weight = n; else bad.push(`weight ${v}`); break; }
      case 'cookie': i++; if (/^[A-Za-z0-9._-]{1,64}$/.test(v ?? '')) s.cookie = v; else bad.push(`cookie ${v} (pairlb cookie ids are 1-64 letters, digits, . _ -)`); break;
      case 'inter': case 'fastinter': case 'downinter': { i++; const ms = haproxyTime(v ?? ''); if (ms === undefined) bad.push(`${p} ${v}`); else timing[p] = ms; break; }
      case 'rise': case 'fall': { i++; const n = Number(v); if (Number.isInteger(n) && n >= 1) timing[p] = n; else bad.push(`${p} ${v}`); break; }
      case 'slowstart': { i++; const ms = haproxyTime(v ?? ''); if (ms === undefined) bad.push(`${p} ${v}`); else b.slowstart = Math.max(b.slowstart ?? 0, ms); break; }
      case 'maxconn': { i++; const n = Number(v); if (Number.isInteger(n) && n >= 0) s.maxconn = n; else bad.push(`maxconn ${v}`); break; }
      case 'maxqueue': case 'port': case 'addr': case 'minconn': case 'on-error': case 'error-limit': case 'observe': case 'resolvers': case 'init-addr': case 'agent-check': case 'agent-port': case 'agent-inter': case 'id': case 'check-sni': case 'sni': case 'crt': case 'ca-file': case 'verify': case 'proto': case 'alpn': case 'pool-max-conn':
        bad.push(`${p} ${v ?? ''}`.trim()); i++; break;
      default: bad.push(p);
    }
  }
  if (bad.length) skip(`server options ${bad.join(', ')}: ${GENERIC} (pairlb servers have name, address, weight, cookie, backup, check, state, maxconn; check timings are per listen section)`);
  if (!check) s.check = false;
  if (check) {
    const sc = b.serverCheck;
    for (const key of ['inter', 'fastinter', 'downinter', 'rise', 'fall'] as const) {
      const v = timing[key];
      if (sc.at === undefined) continue;
      if ((sc as Record<string, unknown>)[key] !== v) sc.differs.push(`${name} ${key}`);
    }
    if (sc.at === undefined) { Object.assign(sc, timing); sc.at = at; }
  }
  b.servers.push(s);
}

/** Writes one builder as a pairlb listen section (or says why it cannot be one). */
function emit(b: Builder, r: ImportResult, idx: number, sectionText: string): Record<string, unknown> | undefined {
  if (b.mode !== 'http') {
    r.skip(b.at, sectionText, `mode ${b.mode}${b.mode === 'tcp' ? ' (HAProxy\'s default without `mode http`)' : ''}: pairlb proxies HTTP only; this section is not imported`);
    return undefined;
  }
  if (!b.bind) { r.skip(b.at, sectionText, 'no usable bind: this section is not imported'); return undefined; }
  const P = (...p: (string | number)[]) => ['listen', idx, ...p];
  const l: Record<string, unknown> = { name: b.name, bind: b.bind, mode: 'http', balance: b.balance ?? 'roundrobin' };
  if (b.hashHeader && b.balance === 'header') l.hash_header = b.hashHeader;
  // HAProxy's hash-type default is map-based, as pairlb's: written only when asked for.
  if (b.hashType && ['source', 'uri', 'header'].includes(String(b.balance))) l.hash_type = b.hashType;
  if (b.maxconn !== undefined) l.maxconn = b.maxconn;
  if (b.connectionMode && b.connectionMode !== 'http-keep-alive') l.connection_mode = b.connectionMode;
  r.note(P('name'), `from ${b.at}: ${sectionText}`);
  if (b.cookie) {
    l.cookie = b.cookie;
    if (b.cookie.mode === 'prefix') r.note(P('cookie'), `prefix: the application's ${String(b.cookie.name)} carries "<server cookie>~" in front of its value, stripped again on requests (as HAProxy)`);
    if (b.cookie.mode === 'insert' && b.cookie.httponly === false) r.note(P('cookie'), 'httponly: false keeps HAProxy\'s behaviour (it sets HttpOnly only when asked); pairlb\'s default is true');
  }
  const ff = b.forwardfor ?? { enabled: false };
  l.forwardfor = ff.enabled ? { enabled: true, ...(ff.header ? { header: ff.header } : {}), proto: false } : { enabled: false };
  r.note(P('forwardfor'), ff.enabled
    ? `option forwardfor: ${ff.header ?? 'X-Forwarded-For'} as HAProxy; proto: false because HAProxy adds no X-Forwarded-Proto/Host/Port (pairlb can: proto: true)`
    : 'no `option forwardfor` in HAProxy: no X-Forwarded-For header either (pairlb\'s default would add it)');
  const t: Record<string, string> = {};
  for (const [k, v] of Object.entries(b.timeouts)) if (k !== 'client_from_client') t[k] = fmtMs(v);
  if (t.client === undefined && b.timeouts.client_from_client !== undefined) {
    t.client = fmtMs(b.timeouts.client_from_client);
    r.note(P('timeouts', 'client'), 'from `timeout client`: pairlb\'s timeouts.client is the idle keep-alive time of a client connection (HAProxy\'s use of timeout client when http-keep-alive is not set)');
  }
  if (Object.keys(t).length) l.timeouts = t;
  if (b.retries !== undefined) l.retries = b.retries;
  l.redispatch = b.redispatch ?? false;
  if (!b.redispatch) r.note(P('redispatch'), 'HAProxy redispatches only with `option redispatch`: false keeps that (a sticky request whose server is down fails instead of going to another server)');
  if (b.slowstart) l.slowstart = fmtMs(b.slowstart);
  const checked = b.servers.some((s) => s.check !== false);
  if (checked) {
    const sc = b.serverCheck;
    const c: Record<string, unknown> = b.httpchk ? { type: 'http', method: b.httpchk.method, path: b.httpchk.path, ...(b.httpchk.host ? { host: b.httpchk.host } : {}) } : { type: 'tcp' };
    if (b.httpchk && b.expect) c.expect = b.expect;
    const inter = sc.inter ?? 2000;
    c.interval = fmtMs(inter);
    if (sc.fastinter) c.fastinterval = fmtMs(sc.fastinter);
    if (sc.downinter) c.downinterval = fmtMs(sc.downinter);
    // HAProxy: without `timeout check` a check may take `inter` (connect + response).
    c.timeout = fmtMs(b.checkTimeout ?? inter);
    c.rise = sc.rise ?? 2;
    c.fall = sc.fall ?? 3;
    l.check = c;
    r.note(P('check'), b.httpchk
      ? `option httpchk: ${b.httpchk.method} ${b.httpchk.path}; 2xx/3xx is up, as HAProxy`
      : 'bare `check` in HAProxy is a TCP connect: type: tcp');
    if (sc.differs.length) r.skip(sc.at!, `servers of ${b.name}`, `check timings differ between servers (${sc.differs.join(', ')}): pairlb has one check per listen section; the first checked server's are used`);
  }
  l.backends = b.servers;
  return l;
}

/** "path_beg /api → api_servers, hdr(host) -i static.example.com → static, else app": what the rules do, for the user to plan the split. */
function describeRules(rules: Directive[], def: Directive | undefined): string {
  const acl = new Map<string, string>();
  for (const d of rules) if (d.line.words[0] === 'acl') {
    const [, n, ...crit] = d.line.words;
    acl.set(n, [acl.get(n), crit.join(' ')].filter(Boolean).join(' or '));
  }
  const out: string[] = [];
  for (const d of rules) {
    const w = d.line.words;
    if (w[0] !== 'use_backend') continue;
    const cond = w.slice(3).map((t) => acl.get(t.replace(/^!/, '')) ? `${t.startsWith('!') ? 'not ' : ''}${acl.get(t.replace(/^!/, ''))}` : t).join(' ');
    out.push(`${w[2] === 'unless' ? 'unless ' : ''}${cond || 'always'} → ${w[1]}`);
  }
  if (def) out.push(`else → ${def.line.words[1]}`);
  return out.join(', ');
}

function collectStats(sections: Section[], file: string, r: ImportResult): Record<string, unknown> | undefined {
  let stats: Record<string, unknown> | undefined;
  let from: string | undefined;
  for (const s of sections) {
    if (s.kind === 'defaults') continue;
    const lines = [...s.defaults, ...s.body].filter((d) => d.line.words[0] === 'stats');
    if (!lines.length) continue;
    const enabled = lines.some((d) => d.line.words[1] === 'enable' || d.line.words[1] === 'uri' || d.line.words[1] === 'auth');
    if (!enabled) continue;
    if (stats) { for (const d of lines) if (!d.fromDefaults) r.skip(`${file}:${d.line.n}`, d.line.text, `pairlb has one stats page; the one of ${from} is imported`); continue; }
    stats = { bind: '127.0.0.1:8404' };
    from = `${s.kind} ${s.name}`;
    const auth: Record<string, unknown>[] = [];
    let uri = '/haproxy?stats';
    for (const d of lines) {
      const w = d.line.words;
      const at = `${file}:${d.line.n}`;
      switch (w[1]) {
        case 'enable': break;
        case 'uri': uri = w[2] ?? uri; break;
        case 'auth': {
          const [user, ...pw] = (w[2] ?? '').split(':');
          if (!NAME_RE.test(user) || !pw.length) { r.skip(at, d.line.text, 'user must be a pairlb name (letters, digits, . _ -) with a password'); break; }
          auth.push({ user, password: pw.join(':') });
          break;
        }
        case 'realm': stats.realm = w.slice(2).join(' ').replace(/\\ /g, ' ').replace(/"/g, ''); break;
        case 'refresh': { const ms = haproxyTime(w[2] ?? ''); if (ms !== undefined) stats.refresh = fmtMs(ms); break; }
        case 'admin': stats.admin = true; if (w.slice(2).join(' ') !== 'if TRUE') r.skip(at, d.line.text, 'pairlb allows admin actions to every stats user with role admin; the condition is not kept'); break;
        case 'hide-version': case 'show-legends': case 'show-node': case 'show-desc': break;
        case 'socket': r.skip(at, d.line.text, 'the runtime API is pairlb\'s own (admin.socket, JSON; `pairlb backend …`), not HAProxy\'s stats socket'); break;
        default: r.skip(at, d.line.text, GENERIC);
      }
    }
    if (auth.length) stats.auth = auth;
    if (stats.admin && !auth.length) { delete stats.admin; r.skip(from, 'stats admin', 'pairlb needs stats.auth users for admin actions: not enabled'); }
    r.note(['stats'], `from ${from}: HAProxy served the page on that section's port at ${uri}; pairlb serves it on its own bind at / (change bind to reach it from elsewhere)`);
    if (auth.length) r.note(['stats', 'auth'], 'plaintext passwords work (with a warning at start); replace them with the output of `pairlb hash-password`');
  }
  return stats;
}

const GLOBAL_WHY: Record<string, string> = {
  log: 'pairlb writes JSON logs (and the access log) to stdout, i.e. journald; no syslog target',
  daemon: 'pairlb runs in the foreground under systemd (systemd/pairlb.service)',
  user: 'the systemd unit runs pairlb as user pairlb', group: 'the systemd unit runs pairlb as group pairlb',
  uid: 'the systemd unit runs pairlb as user pairlb', gid: 'the systemd unit runs pairlb as group pairlb',
  chroot: 'the systemd unit confines pairlb (ProtectSystem, ReadWritePaths) instead of a chroot',
  pidfile: 'a start option: pairlb start --pidfile FILE (the systemd unit uses /run/pairlb/pairlb.pid)',
  nbproc: 'pairlb sizes its data-plane workers itself', nbthread: 'pairlb sizes its data-plane workers itself',
  'ulimit-n': 'set LimitNOFILE= in the systemd unit; global.maxconn follows the open-file limit when not set',
};

export function convertHaproxy(text: string, file = 'haproxy.cfg'): HaproxyImport {
  const r = new ImportResult();
  const { sections, global: globalLines } = parseSections(text, file, r);
  const global: Record<string, unknown> = {};
  for (const d of globalLines) {
    const w = d.line.words;
    const at = `${file}:${d.line.n}`;
    if (w[0] === 'maxconn' && /^\d+$/.test(w[1] ?? '')) { global.maxconn = Number(w[1]); r.note(['global', 'maxconn'], `from ${at}: most client connections at once over every listen section`); continue; }
    if (w[0] === 'stats' && w[1] === 'socket') { r.skip(at, d.line.text, 'the runtime API is pairlb\'s own (admin.socket, JSON; `pairlb backend …`), not HAProxy\'s stats socket'); continue; }
    r.skip(at, d.line.text, GLOBAL_WHY[w[0]] ?? (w[0].startsWith('tune.') || w[0].startsWith('ssl-') ? `${GENERIC} (pairlb tunes itself; TLS is not terminated by pairlb here)` : GENERIC));
  }
  const backends = new Map(sections.filter((s) => s.kind === 'backend').map((s) => [s.name, s]));
  const usedBackends = new Set<string>();
  const listen: Record<string, unknown>[] = [];
  // A backend after the same defaults section as its frontend does not apply those defaults a second
  // time (they would undo the frontend's own lines, e.g. its `option forwardfor header X`).
  const build = (s: Section, part: 'all' | 'frontend' | 'backend', into?: Builder, frontendDefaults?: number): Builder => {
    let name = s.name;
    if (!into && !NAME_RE.test(name)) {
      name = name.replace(/[^A-Za-z0-9._-]/g, '-').replace(/^[^A-Za-z0-9]+/, '').slice(0, 64) || `${s.kind}${s.line.n}`;
      r.skip(`${file}:${s.line.n}`, s.line.text, `${JSON.stringify(s.name)} is not a pairlb name (letters, digits, . _ -): written as ${name}`);
    }
    const b = into ?? fresh(name, `${file}:${s.line.n}`);
    // `listen NAME ADDR` (the old syntax) is a bind.
    if (part !== 'backend' && s.line.words[2]) apply(b, { line: { ...s.line, words: ['bind', ...s.line.words.slice(2)] }, file, fromDefaults: false }, r, part);
    const port = b.bind?.split(':').pop();
    const defaults = part === 'backend' && frontendDefaults === s.defaultsId ? [] : s.defaults;
    for (const d of [...defaults, ...s.body]) apply(b, d, r, part, port);
    return b;
  };
  for (const s of sections) {
    if (s.kind === 'listen') {
      const b = build(s, 'all');
      if (b.rules.length || b.defaultBackend) {
        r.skip(b.at, s.line.text, 'a listen section that routes to other backends (use_backend/default_backend) cannot be expressed: pairlb has one pool per listen section');
        continue;
      }
      const l = emit(b, r, listen.length, s.line.text);
      if (l) listen.push(l);
    } else if (s.kind === 'frontend') {
      const b = build(s, 'frontend');
      const uses = b.rules.filter((d) => d.line.words[0] === 'use_backend');
      if (uses.length) {
        const acls = b.rules.filter((d) => d.line.words[0] === 'acl').map((d) => d.line.n);
        r.skip(b.at, s.line.text, `routes by rules (use_backend at line${uses.length > 1 ? 's' : ''} ${uses.map((d) => d.line.n).join(', ')}${acls.length ? `; acl at ${acls.join(', ')}` : ''}; ${describeRules(b.rules, b.defaultBackend)}): pairlb has one bind and one pool per listen section today, so rules cannot be expressed yet; this frontend is not imported (give each backend its own port or host name in front, or keep HAProxy for it)`);
        continue;
      }
      if (!b.defaultBackend) { r.skip(b.at, s.line.text, 'no default_backend: nothing to forward to; not imported'); continue; }
      const target = b.defaultBackend.line.words[1];
      const be = backends.get(target);
      if (!be) { r.skip(`${file}:${b.defaultBackend.line.n}`, b.defaultBackend.line.text, `backend ${target} is not in the file`); continue; }
      usedBackends.add(target);
      b.defaultBackend = undefined;
      build(be, 'backend', b, s.defaultsId);
      const l = emit(b, r, listen.length, `${s.line.text} → backend ${target}`);
      if (l) listen.push(l);
    }
  }
  for (const [name, s] of backends) {
    if (usedBackends.has(name)) continue;
    const users = sections.filter((f) => f.kind === 'frontend' && f.body.some((d) => d.line.words[0] === 'use_backend' && d.line.words[1] === name)).map((f) => f.name);
    r.skip(`${file}:${s.line.n}`, s.line.text, users.length
      ? `only reached through the use_backend rules of frontend ${users.join(', ')}: not imported`
      : 'no frontend uses it as default_backend: not imported');
  }
  const stats = collectStats(sections, file, r);
  return { listen, global, stats, result: r };
}
