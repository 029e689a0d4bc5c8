import { ImportResult, NAME_RE, fmtMs, sourceLines, type Path, type SourceLine } from './result.js';
import { RULE_FORBIDDEN_HEADERS } from '../config/rules.js';
import { AclTable, MAX_TERMS, condition, fixTls, haproxyWords, implies, whenOf, type Dnf } from './haproxy-rules.js';

/**
 * haproxy.cfg → pairlb config fragments (pure). HAProxy's `frontend` and `backend` sections become
 * pairlb `frontends` and `backends` (pools), one for one; a frontend with several `bind` lines
 * becomes one frontend per bind (pairlb has one bind per frontend), each with the same rules.
 * `acl`, `use_backend`, `default_backend`, `http-request` redirect/deny/return/set-header/del-header
 * and `http-response` set-header/del-header become pairlb `rules` (docs/sites.md: first match wins,
 * so HAProxy's evaluation order is rebuilt: its terminal http-request rules first, then one rule per
 * use_backend carrying the header edits that apply to it). `bind … ssl crt` becomes `tls:`. A
 * `listen` stays a pairlb `listen` section unless it has such rules or several binds (then a
 * frontend + a pool of its name). Values keep HAProxy's meaning: times without a unit are
 * milliseconds, a bare `check` is a TCP connect (pairlb `check.type: tcp`), no `option forwardfor`
 * means no X-Forwarded-For. What cannot be expressed is reported with its line.
 */

export interface HaproxyImport {
  listen: Record<string, unknown>[];
  frontends: Record<string, unknown>[];
  backends: Record<string, unknown>[];
  global: Record<string, unknown>;
  stats?: Record<string, unknown>;
  result: ImportResult;
}

export interface HaproxyImportOptions {
  /** Whether a `crt` path is a directory (the CLI asks the file system; default: ends with `/` or has no .pem/.crt extension). */
  isDirectory?: (path: string) => boolean | undefined;
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
  /** acl, use_backend, http-request, http-response and redirect lines, in file order. */
  rules: Directive[];
  /** Every bind line (the old `listen NAME ADDR` syntax as one). */
  binds: Directive[];
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
  return { name, at, mode: 'tcp', timeouts: {}, servers: [], serverCheck: { differs: [] }, defaultServer: [], rules: [], binds: [] };
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
      // Read when the section is written (parseBind): a frontend gets one pairlb frontend per bind.
      b.binds.push(d);
      if (!b.bind) b.bind = haproxyAddress(args[0]?.split(',')[0] ?? '').hostPort;
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
    case 'use_backend': case 'acl': case 'http-request': case 'http-response': case 'redirect': b.rules.push(d); return;
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
    case 'reqadd': case 'rspadd': case 'reqrep': case 'rsprep': case 'reqdel': case 'rspdel':
      skip('the pre-1.6 header rules have no pairlb equivalent: written as http-request/http-response set-header/del-header they would be imported'); return;
    case 'http-after-response': case 'tcp-request': case 'tcp-response':
      skip(`${k} rules have no pairlb equivalent`); return;
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

/** Client-side keys of a listen section or a frontend, with their comments; returns its timeouts. */
function frontKeys(b: Builder, r: ImportResult, P: (...p: (string | number)[]) => Path, l: Record<string, unknown>, ff: { enabled: boolean; header?: string }): Record<string, string> {
  if (b.maxconn !== undefined) l.maxconn = b.maxconn;
  if (b.connectionMode && b.connectionMode !== 'http-keep-alive') l.connection_mode = b.connectionMode;
  l.forwardfor = ff.enabled ? { enabled: true, ...(ff.header ? { header: ff.header } : {}), proto: false } : { enabled: false };
  r.note(P('forwardfor'), ff.enabled
    ? `option forwardfor: ${ff.header ?? 'X-Forwarded-For'} as HAProxy; proto: false because HAProxy adds no X-Forwarded-Proto/Host/Port (pairlb can: proto: true)`
    : 'no `option forwardfor` in HAProxy: no X-Forwarded-For header either (pairlb\'s default would add it)');
  const t: Record<string, string> = {};
  for (const k of ['client', 'http_request', 'tunnel'] as const) if (b.timeouts[k] !== undefined) t[k] = fmtMs(b.timeouts[k]);
  if (t.client === undefined && b.timeouts.client_from_client !== undefined) {
    t.client = fmtMs(b.timeouts.client_from_client);
    r.note(P('timeouts', 'client'), 'from `timeout client`: pairlb\'s timeouts.client is the idle keep-alive time of a client connection (HAProxy\'s use of timeout client when http-keep-alive is not set)');
  }
  return t;
}

/** Server-side keys of a listen section or a pool (servers excluded), with their comments; returns its timeouts. */
function poolKeys(b: Builder, r: ImportResult, P: (...p: (string | number)[]) => Path, l: Record<string, unknown>): Record<string, string> {
  l.balance = b.balance ?? 'roundrobin';
  if (b.hashHeader && b.balance === 'header') l.hash_header = b.hashHeader;
  // HAProxy's hash-type default is map-based, as pairlb's: written only when asked for.
  if (b.hashType && ['source', 'uri', 'header'].includes(String(b.balance))) l.hash_type = b.hashType;
  if (b.cookie) {
    l.cookie = b.cookie;
    if (b.cookie.mode === 'prefix') r.note(P('cookie'), `prefix: the application's ${String(b.cookie.name)} carries "<server cookie>~" in front of its value, stripped again on requests (as HAProxy)`);
    if (b.cookie.mode === 'insert' && b.cookie.httponly === false) r.note(P('cookie'), 'httponly: false keeps HAProxy\'s behaviour (it sets HttpOnly only when asked); pairlb\'s default is true');
  }
  const t: Record<string, string> = {};
  for (const k of ['connect', 'server', 'queue'] as const) if (b.timeouts[k] !== undefined) t[k] = fmtMs(b.timeouts[k]);
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
    if (sc.differs.length) r.skip(sc.at!, `servers of ${b.name}`, `check timings differ between servers (${sc.differs.join(', ')}): pairlb has one check per pool; the first checked server's are used`);
  }
  return t;
}

function httpOnly(b: Builder, r: ImportResult, sectionText: string): boolean {
  if (b.mode === 'http') return true;
  r.skip(b.at, sectionText, `mode ${b.mode}${b.mode === 'tcp' ? ' (HAProxy\'s default without `mode http`)' : ''}: pairlb proxies HTTP only; this section is not imported`);
  return false;
}

/** Writes one builder as a pairlb listen section (or says why it cannot be one). */
function emit(b: Builder, r: ImportResult, idx: number, sectionText: string, bind: { hostPort: string; tls?: Record<string, unknown> }): Record<string, unknown> | undefined {
  if (!httpOnly(b, r, sectionText)) return undefined;
  const P = (...p: (string | number)[]) => ['listen', idx, ...p];
  const l: Record<string, unknown> = { name: b.name, bind: bind.hostPort, ...(bind.tls ? { tls: bind.tls } : {}), mode: 'http' };
  r.note(P('name'), `from ${b.at}: ${sectionText}`);
  const ft = frontKeys(b, r, P, l, b.forwardfor ?? { enabled: false });
  const pt = poolKeys(b, r, P, l);
  const t = { ...ft, ...pt };
  if (Object.keys(t).length) l.timeouts = t;
  l.backends = b.servers;
  return l;
}

/** Writes a backend section's builder as a pairlb pool. */
function emitPool(b: Builder, r: ImportResult, idx: number, sectionText: string): Record<string, unknown> {
  const P = (...p: (string | number)[]) => ['backends', idx, ...p];
  const l: Record<string, unknown> = { name: b.name };
  r.note(P('name'), `from ${b.at}: ${sectionText}`);
  const t = poolKeys(b, r, P, l);
  if (Object.keys(t).length) l.timeouts = t;
  l.servers = b.servers;
  return l;
}

/** `ssl-default-bind-*` of the global section: applied to every `ssl` bind (its own options win). */
interface TlsDefaults { ciphers?: string; ciphersuites?: string; curves?: string; minVersion?: string }

const TLS_VERSIONS: Record<string, string | null> = { TLSv1_2: 'TLSv1.2', 'TLSv1.2': 'TLSv1.2', TLSv1_3: 'TLSv1.3', 'TLSv1.3': 'TLSv1.3', SSLv3: null, TLSv1_0: null, 'TLSv1.0': null, TLSv1_1: null, 'TLSv1.1': null };

/**
 * One `bind ADDR [options]` → a pairlb bind address and, with `ssl`, its `tls:` (certificates from
 * `crt` files, or a `crt` directory of PEM bundles; versions, ciphers, curves). Unusable options
 * are reported on the line.
 */
function parseBind(d: Directive, r: ImportResult, td: TlsDefaults, isDir: (p: string) => boolean): { hostPort?: string; tls?: Record<string, unknown> } {
  const w = haproxyWords(d.line.text).slice(1);
  const at = `${d.file}:${d.line.n}`;
  const skip = (why: string): void => r.skip(at, d.line.text, why);
  const addrs = w[0]?.split(',') ?? [];
  const a = haproxyAddress(addrs[0] ?? '');
  if (!a.hostPort) { skip(a.why!); return {}; }
  if (addrs.length > 1) skip('pairlb has one address per bind: only the first address is used');
  let ssl = false;
  const crts: string[] = [];
  const tls: Record<string, unknown> = {};
  const bad: string[] = [];
  const ignored: string[] = [];
  for (let i = 1; i < w.length; i++) {
    const o = w[i];
    const v = w[i + 1];
    switch (o) {
      case 'ssl': ssl = true; break;
      case 'crt': if (v) crts.push(v); i++; break;
      case 'alpn':
        i++;
        if (v && v.split(',').includes('h2')) ignored.push(`alpn ${v} (pairlb offers http/1.1 on TLS binds here)`);
        break;
      case 'ssl-min-ver': {
        i++;
        const m = TLS_VERSIONS[v ?? ''];
        if (m === undefined) bad.push(`ssl-min-ver ${v}`);
        else if (m === null) ignored.push(`ssl-min-ver ${v} (pairlb accepts TLS 1.2 and 1.3 only)`);
        else tls.min_version = m;
        break;
      }
      case 'ssl-max-ver': i++; bad.push(`ssl-max-ver ${v}`); break;
      case 'ciphers': i++; if (v) tls.ciphers = v; break;
      case 'ciphersuites': i++; if (v) tls.ciphersuites = v; break;
      case 'curves': i++; if (v) tls.curves = v; break;
      case 'no-sslv3': case 'no-tlsv10': case 'no-tlsv11': case 'force-tlsv12': break; // pairlb's floor is TLS 1.2
      case 'force-tlsv13': tls.min_version = 'TLSv1.3'; break;
      case 'v4v6': case 'v6only': case 'prefer-client-ciphers': break;
      case 'verify': i++; if (v !== 'none') bad.push(`verify ${v} (client certificates)`); break;
      case 'crt-list': case 'ca-file': case 'crl-file': case 'ecdhe': case 'npn': case 'interface': case 'name': case 'id': case 'process': case 'thread': case 'maxconn': case 'backlog': case 'mss': case 'tfo': case 'user': case 'group': case 'mode': case 'level': case 'nice': case 'ssl-ca-file':
        i++; bad.push(`${o} ${v ?? ''}`.trim()); break;
      default: bad.push(o);
    }
  }
  if (bad.length) skip(`bind options ${bad.join(', ')}: ${GENERIC}`);
  if (ignored.length) skip(`bind options ${ignored.join(', ')}: not written`);
  if (!ssl) {
    if (crts.length) skip('crt without ssl: the bind stays plain HTTP');
    return { hostPort: a.hostPort };
  }
  if (!crts.length) { skip('ssl without crt: pairlb needs certificates; this bind is not imported'); return {}; }
  const files: string[] = [];
  for (const c of crts) {
    if (isDir(c)) {
      if (tls.directory !== undefined) { skip(`crt ${c}: pairlb reads one directory of PEM bundles per bind; list the files instead`); continue; }
      tls.directory = c.replace(/\/+$/, '') || '/';
    } else files.push(c);
  }
  if (files.length) tls.certificates = files;
  if (tls.min_version === undefined && td.minVersion) tls.min_version = td.minVersion;
  if (tls.ciphers === undefined && td.ciphers) tls.ciphers = td.ciphers;
  if (tls.ciphersuites === undefined && td.ciphersuites) tls.ciphersuites = td.ciphersuites;
  if (tls.curves === undefined && td.curves) tls.curves = td.curves;
  return { hostPort: a.hostPort, tls: { ...(tls.certificates ? { certificates: tls.certificates } : {}), ...(tls.directory ? { directory: tls.directory } : {}), ...Object.fromEntries(Object.entries(tls).filter(([k]) => k !== 'certificates' && k !== 'directory')) } };
}

/** Default for `crt PATH` without a file system to ask: a trailing / or no certificate-like extension is a directory. */
function guessDir(p: string): boolean { return p.endsWith('/') || !/\.(pem|crt|cer)$/i.test(p); }

// ---- rules -----------------------------------------------------------------------------------

type Answer = { redirect: Record<string, unknown> } | { deny: Record<string, unknown> } | { return: Record<string, unknown> };
/** A header edit with its condition: on the request (set/del) or the response. */
interface Edit { dnf: Dnf; side: 'req' | 'res'; set?: [string, string]; del?: string; at: string; text: string }
interface Parsed { terminals: { dnf: Dnf; answer: Answer; at: string; text: string }[]; edits: Edit[]; uses: { dnf: Dnf; backend: string; at: string; text: string }[] }

/** A header value with HAProxy log-format variables (`%[src]`, `%ci`) cannot be a fixed pairlb value. */
function fixedValue(v: string): string | undefined {
  if (/%(?!%)/.test(v)) return undefined;
  return v.replace(/%%/g, '%');
}

/**
 * A section's acl / use_backend / http-request / http-response / redirect lines → terminal answers,
 * header edits and use_backend routes, each with its condition; what cannot be expressed is
 * reported with its line and left out.
 */
function parseRules(lines: Directive[], r: ImportResult): Parsed {
  const acls = new AclTable();
  const out: Parsed = { terminals: [], edits: [], uses: [] };
  for (const d of lines) {
    const at = `${d.file}:${d.line.n}`;
    const text = d.line.text;
    const skip = (why: string): void => r.skip(at, text, why);
    const w = haproxyWords(text);
    const kw = w[0];
    if (kw === 'acl') { const why = acls.add(w.slice(1)); if (why) skip(why); continue; }
    const ci = w.findIndex((x, i) => i > 0 && (x === 'if' || x === 'unless'));
    const head = ci < 0 ? w : w.slice(0, ci);
    const cond = condition(ci < 0 ? [] : w.slice(ci), acls);
    if ('why' in cond) { skip(`condition: ${cond.why}`); continue; }
    const dnf = cond.dnf;
    if (kw === 'use_backend') {
      const be = head[1];
      if (!be || head.length > 2 || be.includes('%')) { skip('use_backend with a computed backend name (log-format) has no pairlb equivalent'); continue; }
      out.uses.push({ dnf, backend: be, at, text });
      continue;
    }
    const act = kw === 'redirect' ? 'redirect' : head[1];
    const args = kw === 'redirect' ? head.slice(1) : head.slice(2);
    if (kw === 'http-response') {
      if (act === 'set-header' || act === 'add-header') {
        const v = fixedValue(args.slice(1).join(' '));
        if (!args[0] || v === undefined) { skip(`http-response ${act} with a log-format value (%[…]) has no pairlb equivalent`); continue; }
        if (RULE_FORBIDDEN_HEADERS.has(args[0].toLowerCase())) { skip(`${args[0]} is a framing or hop-by-hop header: pairlb rules may not change it`); continue; }
        if (act === 'add-header') r.skip(at, text, 'add-header appends a line; written as response_set_header (replaces)');
        out.edits.push({ dnf, side: 'res', set: [args[0], v], at, text });
      } else if (act === 'del-header' && args.length === 1) out.edits.push({ dnf, side: 'res', del: args[0], at, text });
      else skip(`http-response ${act ?? ''}: pairlb rules set and delete response headers only`);
      continue;
    }
    if (kw !== 'http-request' && kw !== 'redirect') { skip(GENERIC); continue; }
    if (act === 'set-header' || act === 'add-header') {
      const v = fixedValue(args.slice(1).join(' '));
      if (!args[0] || v === undefined) { skip(`http-request ${act} with a log-format value (%[…]) has no pairlb equivalent`); continue; }
      if (RULE_FORBIDDEN_HEADERS.has(args[0].toLowerCase())) { skip(`${args[0]} is a framing or hop-by-hop header: pairlb rules may not change it`); continue; }
      if (act === 'add-header') r.skip(at, text, 'add-header appends a line; written as set_header (replaces)');
      out.edits.push({ dnf, side: 'req', set: [args[0], v], at, text });
      continue;
    }
    if (act === 'del-header' && args.length === 1) { out.edits.push({ dnf, side: 'req', del: args[0], at, text }); continue; }
    if (act === 'redirect' || kw === 'redirect') {
      const rd = redirectOf(kw === 'redirect' ? head.slice(1) : args);
      if ('why' in rd) { skip(rd.why); continue; }
      out.terminals.push({ dnf, answer: { redirect: rd.redirect }, at, text });
      continue;
    }
    if (act === 'deny') {
      const a: Record<string, unknown> = {};
      for (let i = 0; i < args.length; i++) {
        if (args[i] === 'deny_status' && /^\d{3}$/.test(args[i + 1] ?? '')) { a.status = Number(args[++i]); continue; }
        skip(`http-request deny ${args.slice(i).join(' ')}: pairlb's deny has a status only`);
        break;
      }
      out.terminals.push({ dnf, answer: { deny: a }, at, text });
      continue;
    }
    if (act === 'return') {
      const a: Record<string, unknown> = { status: 200 };
      let ok = true;
      for (let i = 0; i < args.length; i++) {
        const o = args[i], v = args[i + 1];
        if (o === 'status' && /^\d{3}$/.test(v ?? '')) { a.status = Number(v); i++; } else if (o === 'content-type' && v) { a.content_type = v; i++; } else if (o === 'string' && v !== undefined) { a.body = v; i++; } else { ok = false; skip(`http-request return ${o}: pairlb returns a status, a content type and a fixed string`); break; }
      }
      if (ok) out.terminals.push({ dnf, answer: { return: a }, at, text });
      continue;
    }
    skip(`http-request ${act ?? ''}: pairlb rules redirect, deny, return, and set or delete request headers only`);
  }
  return out;
}

function redirectOf(a: string[]): { redirect: Record<string, unknown> } | { why: string } {
  const rd: Record<string, unknown> = {};
  const kind = a[0];
  const v = a[1];
  if (!v) return { why: 'redirect without a target' };
  if (kind === 'scheme') { if (v !== 'https' && v !== 'http') return { why: `redirect scheme ${v}: pairlb redirects to http or https` }; rd.scheme = v; }
  else if (kind === 'location') { if (fixedValue(v) === undefined) return { why: 'redirect location with log-format variables has no pairlb equivalent' }; rd.location = fixedValue(v); }
  else if (kind === 'prefix') {
    const p = v.replace(/\/+$/, '');
    if (!p || fixedValue(p) === undefined) return { why: `redirect prefix ${v}: pairlb needs a fixed URL or path prefix` };
    rd.prefix = fixedValue(p);
  } else return { why: `redirect ${kind}: pairlb redirects by scheme, location or prefix` };
  for (let i = 2; i < a.length; i++) {
    if (a[i] === 'code' && /^(301|302|303|307|308)$/.test(a[i + 1] ?? '')) { rd.code = Number(a[++i]); continue; }
    if (a[i] === 'drop-query') { rd.drop_query = true; continue; }
    return { why: `redirect option ${a[i]}${a[i + 1] && !a[i + 1].startsWith('-') ? ' ' + a[i + 1] : ''}: pairlb redirects keep path and query (drop-query) with a code only` };
  }
  // HAProxy's default code is 302, as pairlb's: written only when the file says.
  return { redirect: rd };
}

/** Conditional edits beyond this per route: not imported (each doubles the rules of the route). */
const MAX_COND_EDITS = 3;

/**
 * The pairlb rules of one frontend bind: HAProxy runs the frontend's http-request rules in order
 * (a terminal one ends it), then the first matching use_backend, else default_backend, then the
 * backend's own http-request rules; header edits apply to whatever passes them. pairlb runs the
 * first matching rule only, so each route (use_backend, then the default) becomes one rule per
 * combination of the conditional edits that apply to it, the most edits first. `tls` is the
 * bind's kind: `ssl_fc` is known per bind and drops out.
 */
function buildRules(fe: Parsed, def: string | undefined, backendRules: (name: string) => Parsed | undefined, tls: boolean, r: ImportResult, where: string): Record<string, unknown>[] {
  const out: Record<string, unknown>[] = [];
  let closed = false;
  const seen = new Set<string>();
  const push = (term: Dnf[number], body: Record<string, unknown>, at: string, text: string): void => {
    if (closed) return;
    const w = whenOf(term, tls);
    if (w === null) return;
    if ('why' in w) { r.skip(at, text, w.why); return; }
    for (const n of w.notes) r.skip(at, text, n);
    // A rule with the very condition of an earlier one can never match (the earlier one wins).
    const k = JSON.stringify(w.when ?? null);
    if (seen.has(k)) return;
    seen.add(k);
    out.push(w.when ? { when: w.when, ...body } : body);
    if (!w.when) closed = true;
  };
  for (const t of fe.terminals) for (const term of t.dnf) push(term, { ...t.answer }, t.at, t.text);
  const routes = [...fe.uses.map((u) => ({ dnf: u.dnf, backend: u.backend as string | undefined, at: u.at, text: u.text })), { dnf: [[]] as Dnf, backend: def, at: where, text: 'default_backend' }];
  for (const route of routes) {
    const be = route.backend !== undefined ? backendRules(route.backend) : undefined;
    if (route.backend !== undefined && be === undefined && route.backend !== def) { r.skip(route.at, route.text, `backend ${route.backend} is not in the file (or not mode http)`); continue; }
    const edits = [...fe.edits, ...(be?.edits ?? [])].map((e) => ({ ...e, dnf: fixTls(e.dnf, tls) }));
    const always = edits.filter((e) => e.dnf.length === 1 && e.dnf[0].length === 0);
    const never = (e: Edit) => e.dnf.length === 0;
    let conds = edits.filter((e) => !always.includes(e) && !never(e));
    // HSTS only ever goes out over TLS in pairlb: `if { ssl_fc }` on it says nothing more.
    if (conds.length > MAX_COND_EDITS) {
      for (const e of conds.slice(MAX_COND_EDITS)) r.skip(e.at, e.text, `more than ${MAX_COND_EDITS} conditional header edits on one route have no compact pairlb equivalent: left out`);
      conds = conds.slice(0, MAX_COND_EDITS);
    }
    for (const term of route.dnf) {
      // The backend's own terminal http-request rules, within this route.
      for (const t of be?.terminals ?? []) for (const bt of t.dnf) push([...term, ...bt], { ...t.answer }, t.at, t.text);
      // An edit whose condition this route's own condition implies is unconditional here.
      const sure = [...always, ...conds.filter((e) => implies(term, e.dnf))];
      const maybe = conds.filter((e) => !sure.includes(e));
      const subsets: Edit[][] = [];
      for (let m = (1 << maybe.length) - 1; m >= 0; m--) subsets.push(maybe.filter((_, i) => m & (1 << i)));
      subsets.sort((a, b) => b.length - a.length);
      for (const sub of subsets) {
        let terms: Dnf = [term];
        for (const e of sub) { const n: Dnf = []; for (const x of terms) for (const y of e.dnf) n.push([...x, ...y]); terms = n; }
        if (terms.length > MAX_TERMS) { r.skip(route.at, route.text, `the route with its conditional header edits expands to more than ${MAX_TERMS} rules: edits left out`); terms = [term]; }
        const body = editsBody([...sure, ...sub]);
        const isDefault = route.backend === def && route === routes[routes.length - 1];
        if (isDefault && Object.keys(body).length === 0 && sub.length === 0 && term.length === 0) {
          // The plain default: default_backend does it, no rule needed.
          continue;
        }
        if (route.backend === undefined) {
          // No default_backend: HAProxy answers 503, pairlb 404; edits alone need a destination.
          continue;
        }
        for (const x of terms) push(x, { backend: route.backend, ...body }, route.at, route.text);
      }
    }
  }
  return mergeAdjacent(out);
}

/**
 * Two neighbouring rules with the same action and edits whose conditions differ in one list key
 * only (`host: a` / `host: b`) are one rule (`host: [a, b]`): the OR of HAProxy's ACL lines.
 */
function mergeAdjacent(rules: Record<string, unknown>[]): Record<string, unknown>[] {
  const out: Record<string, unknown>[] = [];
  for (const rule of rules) {
    const prev = out[out.length - 1];
    const m = prev && mergeable(prev, rule);
    if (m) out[out.length - 1] = m; else out.push(rule);
  }
  return out;
}

const LIST_KEYS = new Set(['host', 'path_prefix', 'method', 'src']);

function mergeable(a: Record<string, unknown>, b: Record<string, unknown>): Record<string, unknown> | undefined {
  const { when: wa, ...ra } = a as { when?: Record<string, unknown> };
  const { when: wb, ...rb } = b as { when?: Record<string, unknown> };
  if (!wa || !wb || JSON.stringify(ra) !== JSON.stringify(rb)) return undefined;
  const keys = new Set([...Object.keys(wa), ...Object.keys(wb)]);
  let diff: string | undefined;
  for (const k of keys) {
    if (JSON.stringify(wa[k]) === JSON.stringify(wb[k])) continue;
    if (diff !== undefined || !LIST_KEYS.has(k) || wa[k] === undefined || wb[k] === undefined) return undefined;
    diff = k;
  }
  if (diff === undefined) return a;
  const list = (v: unknown) => (Array.isArray(v) ? v : [v]) as string[];
  return { ...a, when: { ...wa, [diff]: [...new Set([...list(wa[diff]), ...list(wb[diff])])] } };
}

function editsBody(edits: Edit[]): Record<string, unknown> {
  const b: Record<string, unknown> = {};
  const set = (k: string, n: string, v: string) => { const m = (b[k] ??= {}) as Record<string, string>; m[n] = v; };
  const del = (k: string, n: string) => { const l = (b[k] ??= []) as string[]; if (!l.includes(n)) l.push(n); };
  for (const e of edits) {
    if (e.side === 'req') { if (e.set) set('set_header', ...e.set); else del('del_header', e.del!); }
    else if (e.set) set('response_set_header', ...e.set); else del('response_del_header', e.del!);
  }
  return b;
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

export function convertHaproxy(text: string, file = 'haproxy.cfg', opts: HaproxyImportOptions = {}): HaproxyImport {
  const r = new ImportResult();
  const { sections, global: globalLines } = parseSections(text, file, r);
  const global: Record<string, unknown> = {};
  const td: TlsDefaults = {};
  for (const d of globalLines) {
    const w = haproxyWords(d.line.text);
    const at = `${file}:${d.line.n}`;
    if (w[0] === 'maxconn' && /^\d+$/.test(w[1] ?? '')) { global.maxconn = Number(w[1]); r.note(['global', 'maxconn'], `from ${at}: most client connections at once over every listen section`); continue; }
    if (w[0] === 'stats' && w[1] === 'socket') { r.skip(at, d.line.text, 'the runtime API is pairlb\'s own (admin.socket, JSON; `pairlb backend …`), not HAProxy\'s stats socket'); continue; }
    if (w[0] === 'ssl-default-bind-ciphers' && w[1]) { td.ciphers = w[1]; continue; }
    if (w[0] === 'ssl-default-bind-ciphersuites' && w[1]) { td.ciphersuites = w[1]; continue; }
    if (w[0] === 'ssl-default-bind-curves' && w[1]) { td.curves = w[1]; continue; }
    if (w[0] === 'ssl-default-bind-options') {
      const rest: string[] = [];
      for (let i = 1; i < w.length; i++) {
        if (w[i] === 'ssl-min-ver' && TLS_VERSIONS[w[i + 1] ?? '']) { td.minVersion = TLS_VERSIONS[w[++i]]!; continue; }
        if (['no-sslv3', 'no-tlsv10', 'no-tlsv11'].includes(w[i])) continue;
        rest.push(w[i]);
      }
      if (rest.length) r.skip(at, d.line.text, `${rest.join(' ')}: ${GENERIC} (pairlb serves TLS 1.2 and 1.3, with session tickets shared by the pair: docs/tls-tickets.md)`);
      continue;
    }
    r.skip(at, d.line.text, GLOBAL_WHY[w[0]] ?? (w[0].startsWith('tune.') || w[0].startsWith('ssl-') ? `${GENERIC} (pairlb tunes itself)` : GENERIC));
  }
  const isDir = (p: string): boolean => opts.isDirectory?.(p) ?? guessDir(p);
  const listen: Record<string, unknown>[] = [];
  const frontends: Record<string, unknown>[] = [];
  const names = new Set<string>();
  const build = (s: Section, part: 'all' | 'frontend' | 'backend'): Builder => {
    let name = s.name;
    if (!NAME_RE.test(name)) {
      name = name.replace(/[^A-Za-z0-9._-]/g, '-').replace(/^[^A-Za-z0-9]+/, '').slice(0, 64) || `${s.kind}${s.line.n}`;
      r.skip(`${file}:${s.line.n}`, s.line.text, `${JSON.stringify(s.name)} is not a pairlb name (letters, digits, . _ -): written as ${name}`);
    }
    const b = fresh(name, `${file}:${s.line.n}`);
    // `listen NAME ADDR` (the old syntax) is a bind.
    if (part !== 'backend' && s.line.words[2]) apply(b, { line: { ...s.line, text: `bind ${s.line.words.slice(2).join(' ')}`, words: ['bind', ...s.line.words.slice(2)] }, file, fromDefaults: false }, r, part);
    const port = b.bind?.split(':').pop();
    for (const d of [...s.defaults, ...s.body]) apply(b, d, r, part, port);
    return b;
  };
  // Pools: every mode http backend section, and each listen section that becomes frontend + pool.
  interface PoolEntry { b: Builder; s: Section; rules: Parsed; used: boolean }
  const pools = new Map<string, PoolEntry>();
  /** Listen sections written as listen: a pool of their name for the frontends' rules. */
  const listenPools = new Set<string>();
  for (const s of sections) {
    if (s.kind !== 'backend') continue;
    const b = build(s, 'backend');
    if (!httpOnly(b, r, s.line.text)) continue;
    const rules = parseRules(b.rules.filter((d) => d.line.words[0] !== 'use_backend'), r);
    for (const d of b.rules) if (d.line.words[0] === 'use_backend') r.skip(`${d.file}:${d.line.n}`, d.line.text, 'use_backend belongs in a frontend');
    pools.set(b.name, { b, s, rules, used: false });
  }
  const EMPTY: Parsed = { terminals: [], edits: [], uses: [] };
  const rulesOf = (name: string): Parsed | undefined => {
    const p = pools.get(name);
    if (p) { p.used = true; return p.rules; }
    return listenPools.has(name) ? EMPTY : undefined;
  };
  const uniqueName = (base: string): string => {
    let n = base.slice(0, 64);
    for (let i = 2; names.has(n); i++) n = `${base.slice(0, 60)}-${i}`;
    names.add(n);
    return n;
  };
  /** A frontend (or a listen section with rules) → one pairlb frontend per bind. */
  const frontendsOf = (b: Builder, s: Section, def: string | undefined): void => {
    const parsed = parseRules(b.rules, r);
    const reached = [...new Set([def, ...parsed.uses.map((u) => u.backend)].filter((x): x is string => x !== undefined))];
    // HAProxy adds X-Forwarded-For when the frontend or the backend says so; pairlb per frontend.
    let ff = b.forwardfor ?? { enabled: false };
    if (!ff.enabled) {
      const withFf = reached.filter((n) => pools.get(n)?.b.forwardfor?.enabled);
      if (withFf.length) {
        ff = pools.get(withFf[0])!.b.forwardfor!;
        const without = reached.filter((n) => !withFf.includes(n));
        if (without.length) r.skip(b.at, s.line.text, `option forwardfor is set on backend ${withFf.join(', ')} but not on ${without.join(', ')}: pairlb adds X-Forwarded-For per frontend; written enabled for all`);
      }
    }
    if (!b.binds.length) { r.skip(b.at, s.line.text, 'no bind: this section is not imported'); return; }
    const parsedBinds = b.binds.map((d) => ({ d, p: parseBind(d, r, td, isDir) })).filter((x) => x.p.hostPort);
    if (!parsedBinds.length) { r.skip(b.at, s.line.text, 'no usable bind: this section is not imported'); return; }
    if (def === undefined) r.skip(b.at, s.line.text, 'no default_backend: a request no rule sends anywhere gets pairlb\'s 404 page (HAProxy answers 503)');
    for (const { d, p } of parsedBinds) {
      const idx = frontends.length;
      const P = (...x: (string | number)[]) => ['frontends', idx, ...x];
      const name = uniqueName(parsedBinds.length === 1 ? b.name : `${b.name}-${p.hostPort!.split(':').pop()}`);
      const fe: Record<string, unknown> = { name, bind: p.hostPort, ...(p.tls ? { tls: p.tls } : {}) };
      r.note(P('name'), `from ${b.at}: ${s.line.text}${parsedBinds.length > 1 ? ` (the bind of ${d.file}:${d.line.n}: one pairlb frontend per bind)` : ''}`);
      const t = frontKeys(b, r, P, fe, ff);
      if (Object.keys(t).length) fe.timeouts = t;
      const rules = buildRules(parsed, def, rulesOf, p.tls !== undefined, r, b.at);
      if (rules.length) fe.rules = rules;
      if (def !== undefined) fe.default_backend = def;
      frontends.push(fe);
    }
  };
  for (const s of sections) {
    if (s.kind === 'listen') {
      const b = build(s, 'all');
      if (!httpOnly(b, r, s.line.text)) continue;
      if (!b.rules.length && !b.defaultBackend && b.binds.length === 1) {
        const bind = parseBind(b.binds[0], r, td, isDir);
        if (!bind.hostPort) { r.skip(b.at, s.line.text, 'no usable bind: this section is not imported'); continue; }
        const l = emit(b, r, listen.length, s.line.text, { hostPort: bind.hostPort, tls: bind.tls });
        if (l) { listen.push(l); names.add(b.name); listenPools.add(b.name); }
        continue;
      }
      // Rules or several binds: the listen's servers become a pool of its name behind frontends.
      if (pools.has(b.name)) { r.skip(b.at, s.line.text, `a backend is named ${b.name} too: not imported`); continue; }
      pools.set(b.name, { b, s, rules: EMPTY, used: true });
      const def = b.defaultBackend?.line.words[1] ?? (b.servers.length ? b.name : undefined);
      frontendsOf(b, s, def);
    } else if (s.kind === 'frontend') {
      const b = build(s, 'frontend');
      if (!httpOnly(b, r, s.line.text)) continue;
      let def = b.defaultBackend?.line.words[1];
      if (def !== undefined && !pools.has(def) && !listenPools.has(def)) {
        r.skip(`${file}:${b.defaultBackend!.line.n}`, b.defaultBackend!.line.text, `backend ${def} is not in the file (or not mode http)`);
        def = undefined;
      }
      if (def !== undefined) rulesOf(def);
      frontendsOf(b, s, def);
    }
  }
  const backends: Record<string, unknown>[] = [];
  for (const [name, p] of pools) {
    if (!p.used) { r.skip(`${file}:${p.s.line.n}`, p.s.line.text, 'no frontend sends requests to it: not imported'); continue; }
    backends.push(emitPool(p.b, r, backends.length, p.s.kind === 'listen' ? `${p.s.line.text} (its servers)` : p.s.line.text));
    void name;
  }
  const stats = collectStats(sections, file, r);
  return { listen, frontends, backends, global, stats, result: r };
}
