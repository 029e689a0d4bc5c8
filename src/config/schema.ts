import { z } from 'zod';
import { bool, duration, durationAtLeast, hostPort, name } from './types.js';
import { cidrList } from './cidr.js';
import { haSchema } from '../ha/config.js';
import { scaleSchema, checkScaleRefs } from '../scale/config.js';
import { statsSchema, adminSchema } from '../stats/config.js';
import { ticketsSchema } from './tls-tickets.js';
import { tlsSchema } from '../tls/config.js';
import { FACILITIES } from '../log-sinks.js';
import { acmeSchema, acmeNamesSchema } from '../acme/config.js';
import { ruleSchema } from './rules.js';
import { checkSites, poolRefs } from './sites.js';
import { h2LimitsSchema } from '../h2/config.js';

/**
 * The whole configuration: one schema gives the TypeScript types, the defaults and the validation.
 * Objects are strict: an unknown key is an error, so a typo never passes silently.
 * docs/configuration.md is checked against this file by a test.
 */

/** Check timings: a zero interval would spin; 10 ms is already far below anything sensible. */
const checkDelay = durationAtLeast(10);

export const checkSchema = z.object({
  /**
   * http: a request, status in `expect`; tcp: a connect; dns: a query for `dns_name` (over UDP
   * to the server's address; NOERROR or NXDOMAIN is UP). Default: http in mode http, tcp in mode
   * tcp, dns in mode udp.
   */
  type: z.enum(['http', 'tcp', 'dns']).default('http'),
  /** Name asked (type SOA) by dns checks. */
  dns_name: z.string().regex(/^(\.|([A-Za-z0-9_]([A-Za-z0-9_-]{0,62})\.?)+)$/, 'expected a domain name').default('.'),
  method: z.string().regex(/^[A-Z]+$/).default('GET'),
  path: z.string().startsWith('/').regex(/^[^\s\x00-\x1f\x7f]+$/, 'expected a path without spaces or control characters').default('/'),
  /** Host header of HTTP checks; default: the backend's address. */
  host: z.string().regex(/^[^\s\x00-\x1f\x7f]+$/, 'expected a host without spaces or control characters').optional(),
  /** Accepted statuses: a list of codes and ranges ("200", "200-399"). Default 2xx/3xx as HAProxy. */
  expect: z.array(z.union([z.number().int().min(100).max(999), z.string().regex(/^\d{3}(-\d{3})?$/)
    .refine((s) => { const [a, b] = s.split('-'); return b === undefined || Number(a) <= Number(b); }, 'expected a range low-high with low <= high')])).min(1).default(['200-399']),
  interval: checkDelay.default('2s'),
  /** Interval while a state change is in progress (default: interval). */
  fastinterval: checkDelay.optional(),
  /** Interval while DOWN (default: interval). */
  downinterval: checkDelay.optional(),
  timeout: checkDelay.default('1s'),
  rise: z.number().int().min(1).default(2),
  fall: z.number().int().min(1).default(3),
}).strict();

export const passiveSchema = z.object({
  /** Consecutive connection errors on real traffic that mark a backend DOWN; 0 disables. */
  connect_errors: z.number().int().min(0).default(3),
  /** Consecutive 5xx responses that mark a backend DOWN; 0 (default) disables. */
  http_5xx: z.number().int().min(0).default(0),
}).strict();

export const backendSchema = z.object({
  name,
  address: hostPort,
  weight: z.number().int().min(0).max(256).default(1),
  /** Value of the sticky cookie for this server; defaults to a hash of the name (never the address). */
  cookie: z.string().regex(/^[A-Za-z0-9._-]{1,64}$/, 'expected 1-64 letters, digits, . _ -').optional(),
  backup: bool.default(false),
  check: bool.default(true),
  /** Initial administrative state. */
  state: z.enum(['ready', 'drain', 'maint']).default('ready'),
  /**
   * Most requests in flight at once on this server (HAProxy's server `maxconn`); more wait in a
   * queue (this server's for sticky requests, the listen's otherwise) up to `timeouts.queue`, then
   * 503. 0 = unlimited.
   */
  maxconn: z.number().int().min(0).max(1_000_000).default(0),
  /**
   * Most requests waiting in this server's own queue (sticky requests of a full server; HAProxy's
   * server `maxqueue`): beyond it a request is balanced again (another server, or the backend
   * queue), its persistence broken. 0 = unlimited. Mode tcp has no server queues (no stickiness).
   */
  maxqueue: z.number().int().min(0).max(1_000_000).default(0),
  /**
   * Send a PROXY protocol header first on every connection to this server (HAProxy `send-proxy`,
   * `send-proxy-v2`), so it sees the client's address; `none` overrides the pool's `send_proxy`.
   * Health checks send one too (v2 LOCAL / v1 UNKNOWN). In mode http a connection that carried a
   * header belongs to one client connection: never reused by another client, closed with it.
   */
  send_proxy: z.enum(['v1', 'v2', 'none']).optional(),
}).strict();

export const acceptProxySchema = z.object({
  /** Source addresses allowed to connect (CIDRs or addresses); a connection from anywhere else is closed and counted. */
  from: cidrList.min(1),
  /** Most time for a client to send its complete PROXY header. */
  timeout: durationAtLeast(1).default('3s'),
}).strict();

/** An SNI pattern: a host name, or `*.` + a domain (any name below it, any depth), case-insensitive. */
const sniName = z.string().regex(/^(\*\.)?[A-Za-z0-9_]([A-Za-z0-9_-]{0,62})(\.[A-Za-z0-9_]([A-Za-z0-9_-]{0,62}))*\.?$/, 'expected a host name or *.domain');

export const passthroughSchema = z.object({
  /** Ordered routes: the first whose `sni` matches the ClientHello's server name picks the servers. */
  routes: z.array(z.object({
    /** Names: exact (www.example.com) or wildcard (*.example.com: any name below example.com). */
    sni: z.array(sniName).min(1),
    /** Names of servers of this listen's `backends` that serve these names. */
    servers: z.array(name).min(1),
  }).strict()).default([]),
  /** Servers for a ClientHello without SNI or with a name no route has. Default: the servers no route names. */
  default: z.array(name).optional(),
  /** Most time for the ClientHello to arrive complete; then the connection is closed and counted. */
  timeout: durationAtLeast(1).default('5s'),
}).strict();

export const udpSchema = z.object({
  /** Most client flows (source address:port) tracked at once; beyond it the oldest is evicted (counted). */
  max_flows: z.number().int().min(1).max(1_000_000).default(10000),
  /** A flow with no datagram either way for this long is closed. */
  flow_idle: durationAtLeast(100).default('30s'),
  /** Most replies relayed per client datagram (DNS: 1); 0 = any number. */
  replies: z.number().int().min(0).max(1000).default(0),
}).strict();

export const cookieSchema = z.object({
  name: z.string().regex(/^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/, 'expected a cookie name (RFC 6265 token)'),
  mode: z.enum(['insert', 'prefix']).default('insert'),
  indirect: bool.default(false),
  nocache: bool.default(false),
  secure: bool.default(false),
  httponly: bool.default(true),
  samesite: z.enum(['Strict', 'Lax', 'None']).optional(),
  /** Optional Domain attribute (insert mode). */
  domain: z.string().optional(),
  /** Optional Max-Age in seconds (insert mode); default is a session cookie. */
  maxage: z.number().int().positive().optional(),
}).strict();

export const forwardforSchema = z.object({
  enabled: bool.default(true),
  /** A header name (RFC 9110 §5.1 token): undici would refuse any other on every request. */
  header: z.string().regex(/^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/, 'expected a header name (RFC 9110 token)').default('X-Forwarded-For'),
  /** Also set X-Forwarded-Proto, X-Forwarded-Host, X-Forwarded-Port. */
  proto: bool.default(true),
  /** Add an RFC 7239 Forwarded header. */
  forwarded: bool.default(false),
}).strict();

export const timeoutsSchema = z.object({
  connect: duration.default('5s'),
  /** Max time waiting for the backend's response headers, and between body chunks. */
  server: duration.default('30s'),
  /** Idle keep-alive timeout for client connections. */
  client: duration.default('30s'),
  /** Max time to receive a complete request head (slowloris gets 408). */
  http_request: duration.default('10s'),
  /**
   * Max time without a byte of a request body from the client (nginx `client_body_timeout`); time
   * the proxy itself is not reading (backend not connected or applying backpressure) does not
   * count. On expiry: 408 if the response has not started, else the connection is closed. 0 disables.
   */
  client_body: duration.default('10s'),
  /** Idle timeout of an Upgrade (WebSocket) tunnel: no byte either way for that long (HAProxy `timeout tunnel`). 0 disables. */
  tunnel: duration.default('1h'),
  /** Max time a stopping process waits for in-flight requests. */
  drain: duration.default('30s'),
  /** Max time a request waits for a server slot (server `maxconn`) before 503 (HAProxy `timeout queue`). Default: `connect`. */
  queue: durationAtLeast(1).optional(),
}).strict();

/** Per-client limits (HAProxy stick-table spirit): src/proxy/client-limits.ts. */
export const limitsSchema = z.object({
  /** Most connections one source (IPv4 address, IPv6 /64) may have open at once; requests on more get 429 and are closed. 0 = unlimited. */
  conn_per_source: z.number().int().min(0).max(1_000_000).default(0),
  /** Most requests one source may send per `rate_period` (sliding window); more get 429 and the connection is closed. 0 = unlimited. */
  rate_per_source: z.number().int().min(0).max(100_000_000).default(0),
  /** Window of `rate_per_source`. */
  rate_period: durationAtLeast(100).default('10s'),
  /** Most sources tracked; a new one beyond evicts the least recently connected. */
  table_size: z.number().int().min(16).max(10_000_000).default(100_000),
  /** A source with no open connection is forgotten this long after its last request. */
  expire: durationAtLeast(1000).default('10m'),
}).strict();

export const retryOn = z.enum(['conn-failure', 'empty-response', 'response-timeout', 'reset']);

/**
 * In modes tcp and udp a check without a `type` is a tcp / dns check (HTTP requests would fail);
 * `passthrough` without a `mode` means mode tcp.
 */
function defaultCheckType(v: unknown): unknown {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return v;
  let o = v as Record<string, unknown>;
  // TLS passthrough is a mode tcp feature: it implies the mode when none is written.
  if (o.mode === undefined && o.passthrough !== undefined) o = { ...o, mode: 'tcp' };
  if (o.mode !== 'tcp' && o.mode !== 'udp') return o;
  const type = o.mode === 'udp' ? 'dns' : 'tcp';
  if (o.check === undefined) return { ...o, check: { type } };
  if (typeof o.check === 'object' && o.check !== null && !Array.isArray(o.check) && (o.check as Record<string, unknown>).type === undefined) return { ...o, check: { ...(o.check as object), type } };
  return o;
}

/** Forwarding engine field; the former `http-proxy` engine is refused naming the replacements (issue 10). */
const engineField = z.enum(['undici', 'native'], {
  errorMap: (_i, ctx) => ({
    message: ctx.data === 'http-proxy'
      ? 'engine http-proxy was removed (unsafe: request smuggling, crash on two Host headers); use native (the default) or undici'
      : ctx.defaultError,
  }),
});

/**
 * The server-side keys a `listen` section and a `backends` pool share (one home: both schemas
 * spread these, in this order; scripts/gen-config-doc.mjs reads the comments here).
 */
const serverSideFields = {
  /** Extra attempts on other servers for a request that could not be delivered. */
  retries: z.number().int().min(0).max(10).default(2),
  /**
   * When a request may have reached the server, retry (idempotent, bodiless requests only) on:
   * empty-response (connection closed before any response byte), reset, response-timeout.
   * conn-failure (never delivered) is always retried up to `retries`.
   */
  retry_on: z.array(retryOn).default(['conn-failure', 'empty-response', 'reset']),
  /** Retry on another server rather than the same one. */
  redispatch: bool.default(true),
  /** Ramp a server's weight up over this long after it comes UP. */
  slowstart: duration.default(0),
  /** Active health check of every server. */
  check: checkSchema.default({}),
  /** Passive checks on real traffic. */
  passive: passiveSchema.default({}),
  /** Largest response head accepted from a server, bytes. */
  max_header_size: z.number().int().min(1024).max(1 << 20).default(16384),
  /**
   * Retry-After (seconds, rounded up) on the 503 of a request whose wait for a server slot ran out
   * (`timeouts.queue`, server `maxconn`). Unset: no Retry-After. (429s of `limits` always carry one.)
   */
  retry_after: durationAtLeast(1).optional(),
  /**
   * Most requests (mode tcp: connections) waiting in the backend queue for a server slot (server
   * `maxconn`); beyond it refused at once: HTTP 503, TCP closed, termination sQ (counted
   * queue_full). 0 = unlimited (only `timeouts.queue` bounds the wait).
   */
  maxqueue: z.number().int().min(0).max(10_000_000).default(0),
};

export const listenSchema = z.preprocess(defaultCheckType, z.object({
  name,
  bind: hostPort,
  /** Terminate TLS on this bind (docs/tls.md). Absent: plain HTTP. */
  tls: tlsSchema.optional(),
  /**
   * HTTP/2 on a TLS bind: ALPN offers `h2` before `http/1.1`; HTTP/2 streams go through the same
   * rules and pools as HTTP/1.1 requests, to the servers over HTTP/1.1 (docs/http2.md).
   * Ignored without `tls`. `false`: HTTP/1.1 only (ALPN offers `tls.alpn` alone).
   */
  h2: bool.default(true),
  /**
   * Cleartext HTTP/2 with prior knowledge on a plain bind (a connection that starts with the
   * HTTP/2 preface; HTTP/1.1 still works on the same bind). For internal clients: browsers only
   * speak HTTP/2 over TLS. Ignored with `tls`.
   */
  h2c: bool.default(false),
  /**
   * http: a reverse proxy; tcp: connections relayed byte for byte (SMTP, IMAP, TLS passthrough);
   * udp: datagrams relayed per client flow (DNS). In tcp and udp modes the HTTP keys are ignored;
   * `timeouts.tunnel` is the idle timeout of a TCP connection.
   */
  mode: z.enum(['http', 'tcp', 'udp']).default('http'),
  /** Require a PROXY protocol header (v1 or v2) on every connection, from these sources only. Modes http and tcp. */
  accept_proxy: acceptProxySchema.optional(),
  /** Default `send_proxy` of every server in this pool. */
  send_proxy: z.enum(['v1', 'v2']).optional(),
  udp: udpSchema.default({}),
  /**
   * TLS passthrough (mode tcp): the ClientHello's SNI is read without terminating TLS and picks
   * the servers (`routes`, `default`); the bytes go on unchanged. Absent: no peeking.
   */
  passthrough: passthroughSchema.optional(),
  /**
   * roundrobin (smooth weighted), leastconn (fewest in flight per weight, ties by round robin),
   * source (client address hash), uri (path hash, query excluded), header (hash of `hash_header`;
   * absent header: round robin), random (two random choices, the less loaded). src/balance/.
   */
  balance: z.enum(['roundrobin', 'leastconn', 'source', 'uri', 'header', 'random']).default('roundrobin'),
  /**
   * Hash algorithms: map-based (exact weight shares; adding or removing a server moves most keys) or
   * consistent (a ring: adding or removing one of N servers moves about 1/N of the keys).
   */
  hash_type: z.enum(['map-based', 'consistent']).default('map-based'),
  /** Header whose value is hashed with `balance: header`. */
  hash_header: z.string().regex(/^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/, 'expected a header name (RFC 9110 token)').optional(),
  /** Client sources admitted (addresses or CIDRs); empty: every source. Checked at accept, before `deny`. */
  allow: cidrList.default([]),
  /** Client sources refused at accept (closed, counted as denied_conn). */
  deny: cidrList.default([]),
  limits: limitsSchema.default({}),
  /**
   * HAProxy's `option http-keep-alive` (default), `option http-server-close` (the backend connection
   * is closed after each response; clients keep theirs) and `option httpclose` (both sides closed
   * after each response).
   */
  connection_mode: z.enum(['http-keep-alive', 'http-server-close', 'httpclose']).default('http-keep-alive'),
  /**
   * Most client connections open at once on this listen section (HAProxy frontend `maxconn`); more
   * are closed at accept and counted (refused_conn). Unset: only `global.maxconn` applies.
   */
  maxconn: z.number().int().min(1).max(10_000_000).optional(),
  /**
   * Forwarding engine: native (default: Node's llhttp over a socket pool, ~1.2× the requests per
   * CPU-second of undici, bench/RESULTS.md) or undici (an undici Pool per backend). The former
   * `http-proxy` engine was removed (request smuggling and a crash on two Host headers, issue 10):
   * a config naming it is refused with a message naming the replacements.
   */
  engine: engineField.default('native'),
  cookie: cookieSchema.optional(),
  forwardfor: forwardforSchema.default({}),
  timeouts: timeoutsSchema.default({}),
  ...serverSideFields,
  max_request_line: z.number().int().min(256).max(1 << 16).default(8192),
  /**
   * Minimum average rate of a request body, bytes/s (Apache mod_reqtimeout's MinRate): a body may
   * take `timeouts.client_body` plus one second per `min_body_rate` bytes received. 0 disables.
   */
  min_body_rate: z.number().int().min(0).default(500),
  /**
   * Most header lines a request may have (HAProxy's tune.http.maxhdr is 101); more gets 431.
   * node:http would otherwise drop the lines past 2,000 silently and forward the rest.
   */
  max_headers: z.number().int().min(8).max(10000).default(100),
  /** HTTP/2 limits of client connections (docs/http2.md "Limits and attacks"). */
  h2_limits: h2LimitsSchema.default({}),
  backends: z.array(backendSchema).default([]),
  /** Names of this section's certificate from ACME (needs the top-level `acme:` section): one certificate, these names in its SAN. */
  acme: acmeNamesSchema.optional(),
}).strict().superRefine((l, ctx) => {
  // Server names in passthrough routes are checked by preflight (pairlb check and start refuse unknown ones).
  if (l.passthrough && l.mode !== 'tcp') ctx.addIssue({ code: z.ZodIssueCode.custom, path: ['passthrough'], message: 'passthrough is for mode tcp' });
  if (l.mode === 'udp' && l.accept_proxy) ctx.addIssue({ code: z.ZodIssueCode.custom, path: ['accept_proxy'], message: 'accept_proxy is for modes http and tcp' });
  if (l.mode === 'udp' && (l.send_proxy || l.backends.some((b) => b.send_proxy && b.send_proxy !== 'none'))) {
    const i = l.backends.findIndex((b) => b.send_proxy && b.send_proxy !== 'none');
    ctx.addIssue({ code: z.ZodIssueCode.custom, path: i >= 0 ? ['backends', i, 'send_proxy'] : ['send_proxy'], message: 'send_proxy is for modes http and tcp (this listen is mode udp)' });
  }
  if (l.mode === 'udp' && l.check.type === 'http') ctx.addIssue({ code: z.ZodIssueCode.custom, path: ['check', 'type'], message: 'mode udp checks are dns or tcp' });
  checkBalance(l, ctx);
  checkServers(l.backends, 'backends', ctx);
}));

/** How the servers of a pool are chosen (src/balance/). */
const balanceField = z.enum(['roundrobin', 'leastconn', 'source', 'uri', 'header', 'random']);
const hashTypeField = z.enum(['map-based', 'consistent']);
const headerNameField = z.string().regex(/^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/, 'expected a header name (RFC 9110 token)');

function checkBalance(p: { balance: string; hash_header?: string }, ctx: z.RefinementCtx): void {
  if (p.balance === 'header' && !p.hash_header) ctx.addIssue({ code: z.ZodIssueCode.custom, path: ['hash_header'], message: 'balance: header needs hash_header (the header to hash)' });
}

/** Timeouts of a frontend: the client side of `listen[].timeouts`. */
export const frontendTimeoutsSchema = z.object({
  /** Idle keep-alive timeout for client connections. */
  client: duration.default('30s'),
  /** Max time to receive a complete request head (slowloris gets 408). */
  http_request: duration.default('10s'),
  /** Max time without a byte of a request body from the client (408 or close); 0 disables. */
  client_body: duration.default('10s'),
  /** Idle timeout of an Upgrade (WebSocket) tunnel; 0 disables. */
  tunnel: duration.default('1h'),
  /** Max time a stopping process waits for in-flight requests. */
  drain: duration.default('30s'),
  /** Mode tcp with `sni` rules: most time for the client's ClientHello to arrive complete; then closed and counted. */
  hello: durationAtLeast(1).default('5s'),
}).strict();

/** Timeouts of a backend pool: the server side of `listen[].timeouts`. */
export const poolTimeoutsSchema = z.object({
  /** Max time to connect to a server. */
  connect: duration.default('5s'),
  /** Max time waiting for the server's response headers, and between body chunks. */
  server: duration.default('30s'),
  /** Max time a request waits for a server slot (server `maxconn`) before 503. Default: `connect`. */
  queue: durationAtLeast(1).optional(),
}).strict();

/**
 * `frontends[]`: where clients connect (bind, client limits and timeouts) and the ordered rules
 * that pick a backend pool per request (src/config/rules.ts). docs/sites.md.
 */
export const frontendSchema = z.object({
  /** Frontend name (shares the namespace of listen names). */
  name,
  /** Address to accept on, host:port. */
  bind: hostPort,
  /** Terminate TLS on this bind (docs/tls.md). Absent: plain HTTP. */
  tls: tlsSchema.optional(),
  /**
   * HTTP/2 on a TLS bind: ALPN offers `h2` before `http/1.1`; HTTP/2 streams go through the same
   * rules and pools as HTTP/1.1 requests, to the servers over HTTP/1.1 (docs/http2.md).
   * Ignored without `tls`. `false`: HTTP/1.1 only (ALPN offers `tls.alpn` alone).
   */
  h2: bool.default(true),
  /**
   * Cleartext HTTP/2 with prior knowledge on a plain bind (a connection that starts with the
   * HTTP/2 preface; HTTP/1.1 still works on the same bind). For internal clients: browsers only
   * speak HTTP/2 over TLS. Ignored with `tls`.
   */
  h2c: bool.default(false),
  /**
   * http: requests, routed per request. tcp: connections relayed byte for byte, routed per
   * connection by rules with `sni` (TLS passthrough: the ClientHello's server name, read without
   * terminating) and `src` conditions and a `backend` action naming mode tcp pools; the HTTP keys
   * are ignored, `timeouts.tunnel` is the idle timeout.
   */
  mode: z.enum(['http', 'tcp']).default('http'),
  /** Require a PROXY protocol header (v1 or v2) on every connection, from these sources only. */
  accept_proxy: acceptProxySchema.optional(),
  /** Most client connections open at once on this frontend; more are closed at accept. */
  maxconn: z.number().int().min(1).max(10_000_000).optional(),
  /** Client sources admitted (addresses or CIDRs); empty: every source. Checked at accept, before `deny`. */
  allow: cidrList.default([]),
  /** Client sources refused at accept (closed, counted as denied_conn). */
  deny: cidrList.default([]),
  /** Per-client limits (as `listen[].limits`). */
  limits: limitsSchema.default({}),
  /** http-keep-alive, http-server-close or httpclose (as `listen[].connection_mode`). */
  connection_mode: z.enum(['http-keep-alive', 'http-server-close', 'httpclose']).default('http-keep-alive'),
  /** X-Forwarded-For / X-Forwarded-* / Forwarded headers added to requests. */
  forwardfor: forwardforSchema.default({}),
  /** Client-side timeouts. */
  timeouts: frontendTimeoutsSchema.default({}),
  /** Largest request head, bytes. */
  max_header_size: z.number().int().min(1024).max(1 << 20).default(16384),
  /** Longest request line, bytes (414 beyond). */
  max_request_line: z.number().int().min(256).max(1 << 16).default(8192),
  /** Minimum average rate of a request body, bytes/s; 0 disables. */
  min_body_rate: z.number().int().min(0).default(500),
  /** Most header lines a request may have (431 beyond). */
  max_headers: z.number().int().min(8).max(10000).default(100),
  /** HTTP/2 limits of client connections (as `listen[].h2_limits`). */
  h2_limits: h2LimitsSchema.default({}),
  /** Names of this frontend's certificate from ACME (needs the top-level `acme:` section). */
  acme: acmeNamesSchema.optional(),
  /** Ordered rules; the first whose `when` holds applies. */
  rules: z.array(ruleSchema).default([]),
  /** Backend for requests no rule sends elsewhere; omitted: such requests get a 404 page. */
  default_backend: name.optional(),
}).strict();

/**
 * `backends[]`: a pool of servers with how it is balanced, checked and retried. One pool may
 * serve several frontends; each server is checked once. docs/sites.md.
 */
export const poolSchema = z.object({
  /** Backend (pool) name (shares the namespace of listen names). */
  name,
  /**
   * http: servers answer HTTP requests (frontends in mode http). tcp: connections are relayed to
   * them (frontends in mode tcp); checks default to `tcp`.
   */
  mode: z.enum(['http', 'tcp']).default('http'),
  /** Balancing algorithm (as `listen[].balance`). */
  balance: balanceField.default('roundrobin'),
  /** Hash algorithm of the hashing balance algorithms: map-based or consistent. */
  hash_type: hashTypeField.default('map-based'),
  /** Header whose value is hashed with `balance: header`. */
  hash_header: headerNameField.optional(),
  /** Forwarding engine: native (default) or undici. */
  engine: engineField.default('native'),
  /** Sticky sessions by cookie. */
  cookie: cookieSchema.optional(),
  /**
   * Default `send_proxy` of every server in this pool: a PROXY protocol header first on each
   * server connection, which then belongs to one client connection (private, closed with it).
   */
  send_proxy: z.enum(['v1', 'v2']).optional(),
  /** Server-side timeouts. */
  timeouts: poolTimeoutsSchema.default({}),
  ...serverSideFields,
  /** The servers (same keys as `listen[].backends[]`). */
  servers: z.array(backendSchema).default([]),
}).strict().superRefine((p, ctx) => {
  checkBalance(p, ctx);
  checkServers(p.servers, 'servers', ctx);
  if (p.check.type === 'dns') ctx.addIssue({ code: z.ZodIssueCode.custom, path: ['check', 'type'], message: 'dns checks are for mode udp listen sections' });
});

/** Unique server names and cookie ids within one pool. */
function checkServers(list: readonly BackendConfig[], key: string, ctx: z.RefinementCtx): void {
  const seen = new Map<string, number>();
  const cookies = new Map<string, number>();
  list.forEach((b, i) => {
    if (seen.has(b.name)) ctx.addIssue({ code: z.ZodIssueCode.custom, path: [key, i, 'name'], message: `duplicate backend name ${JSON.stringify(b.name)} (also ${key}[${seen.get(b.name)}])` });
    seen.set(b.name, i);
    if (b.cookie !== undefined) {
      if (cookies.has(b.cookie)) ctx.addIssue({ code: z.ZodIssueCode.custom, path: [key, i, 'cookie'], message: `duplicate cookie id ${JSON.stringify(b.cookie)} (also ${key}[${cookies.get(b.cookie)}])` });
      cookies.set(b.cookie, i);
    }
  });
}

export const syslogSchema = z.object({
  /** Unix datagram socket of the local syslog daemon (rsyslog, or journald's /dev/log). */
  socket: z.string().startsWith('/').default('/dev/log'),
  /** A syslog server over UDP (host:port) instead of the local socket. */
  server: hostPort.optional(),
  /**
   * Message header: rfc3164 (BSD; on the local socket without hostname, as rsyslog's imuxsock and
   * journald parse it) or rfc5424 (to a server; on the local socket rsyslog needs imuxsock's
   * `UseSpecialParser="off"`, and journald does not parse it).
   */
  format: z.enum(['rfc3164', 'rfc5424']).default('rfc3164'),
  facility: z.enum(FACILITIES).default('local0'),
  /** The APP-NAME / TAG field (rsyslog's `$programname`). */
  tag: z.string().regex(/^[A-Za-z0-9._-]{1,32}$/, 'expected 1-32 letters, digits, . _ -').default('pairlb'),
}).strict();

export const logSchema = z.object({
  /** Level of the JSON logs; a reload applies it. */
  level: z.enum(['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent']).default('info'),
  /**
   * Access log format: HAProxy httplog fields as JSON, or Apache combined (for Awstats/GoAccess).
   * Without access_file or access_syslog the lines go to stdout with the JSON logs (the journal).
   * A reload applies this and the two keys below.
   */
  access: z.enum(['json', 'combined', 'off']).default('json'),
  /**
   * Write the access log to this file (appended, mode 0640) instead of stdout. SIGUSR1 reopens it
   * (logrotate: `postrotate systemctl kill -s USR1 pairlb`), so rotate without copytruncate.
   */
  access_file: z.string().startsWith('/').optional(),
  /** Send the access log to syslog (one message per line, severity info) instead of stdout. */
  access_syslog: syslogSchema.optional(),
}).strict();

export const globalSchema = z.object({
  /** This node's name (defaults to the hostname). */
  node: name.optional(),
  /** Where runtime state (admin changes, clones, replicated state) is persisted. */
  state_dir: z.string().default('/var/lib/pairlb'),
  /**
   * Most client connections open at once over every listen section; more are closed at accept,
   * counted (refused_conn) and logged. Omitted: derived from the open-file limit,
   * (limit - min(256, limit/4)) / 2, since a proxied connection also holds a backend descriptor.
   */
  maxconn: z.number().int().min(1).max(10_000_000).optional(),
  /**
   * Data-plane threads. 0: the data plane runs in the control plane's thread (one core). N >= 1:
   * N worker threads, each accepting on every bind (SO_REUSEPORT) while the control plane (config,
   * backends, health, HA, scaler, stats/admin, state) keeps its own thread. auto: one per core
   * (os.availableParallelism()). Takes effect at start (a reload keeps the running count).
   */
  workers: z.union([z.literal('auto'), z.number().int().min(0).max(256)]).default(0),
  /**
   * Time one event-loop turn of a data plane spends on requests of open keep-alive connections;
   * past it, further such requests wait for the next turns (in arrival order), so that new
   * connections are accepted and their first request served first under saturation (HAProxy
   * bounds a turn with tune.maxpollevents; libuv accepts one connection per turn). 0: no bound.
   */
  turn_budget: duration.default('2ms'),
  /**
   * Listening sockets per bind in each data plane (SO_REUSEPORT on one address; the kernel spreads
   * new connections over them). libuv accepts one connection per socket per event-loop turn, so
   * this is how many new connections a busy turn can accept. Read when a bind starts.
   */
  accept_sockets: z.number().int().min(1).max(64).default(4),
  /**
   * The HTTP/1.1 server side of every bind. `lean`: pairlb's own (src/proxy/front/h1.ts: Node's
   * llhttp parsing straight off the socket, no IncomingMessage/ServerResponse per request); Upgrade
   * and CONNECT requests are handed to node:http. `node`: node:http's server for every connection.
   * The wire behaviour is the same (the edge suites run on both). Read when a bind starts.
   */
  http1_front: z.enum(['lean', 'node']).default('lean'),
  log: logSchema.default({}),
}).strict();

export const configSchema = z.object({
  global: globalSchema.default({}),
  /** Listen sections: each is one frontend and one backend pool of the same name. */
  listen: z.array(listenSchema).default([]),
  /** Frontends: binds and rules (HAProxy `frontend`). */
  frontends: z.array(frontendSchema).default([]),
  /** Backend pools of servers (HAProxy `backend`). */
  backends: z.array(z.preprocess(defaultCheckType, poolSchema)).default([]),
  stats: statsSchema.optional(),
  admin: adminSchema.optional(),
  ha: haSchema.optional(),
  scale: scaleSchema.optional(),
  /** TLS session ticket keys, shared by the HA pair (docs/tls-tickets.md). */
  tls_tickets: ticketsSchema.optional(),
  /** Certificates from an ACME CA (Let's Encrypt by default): docs/acme.md. */
  acme: acmeSchema.optional(),
}).strict().superRefine((c, ctx) => {
  checkSites(c, ctx);
  checkScaleRefs(c.scale, poolRefs(c), ctx);
  const owner = new Map<string, string>();
  const acmeNames = (key: 'listen' | 'frontends', list: readonly { name: string; acme?: readonly string[] }[]): void => list.forEach((l, i) => {
    if (!l.acme) return;
    if (!c.acme) ctx.addIssue({ code: z.ZodIssueCode.custom, path: [key, i, 'acme'], message: 'needs the top-level acme: section (email, terms_of_service_agreed)' });
    l.acme.forEach((n, j) => {
      const o = owner.get(n);
      if (o !== undefined) ctx.addIssue({ code: z.ZodIssueCode.custom, path: [key, i, 'acme', j], message: `${n} is already ordered by ${o}` });
      owner.set(n, `${key === 'listen' ? 'listen' : 'frontend'} ${l.name}`);
    });
  });
  acmeNames('listen', c.listen);
  acmeNames('frontends', c.frontends);
});

export type Config = z.output<typeof configSchema>;
export type ListenConfig = z.output<typeof listenSchema>;
export type BackendConfig = z.output<typeof backendSchema>;
export type CheckConfig = z.output<typeof checkSchema>;
export type CookieConfig = z.output<typeof cookieSchema>;
export type FrontendInput = z.output<typeof frontendSchema>;
export type PoolInput = z.output<typeof poolSchema>;
