import { connect, type Socket } from 'node:net';
import { createSocket } from 'node:dgram';
import { isIPv6 } from 'node:net';
import { performance } from 'node:perf_hooks';
import { answerRcode, buildQuery } from '../l4/dns.js';

/**
 * One active check against one backend: a TCP connect, or a minimal HTTP/1.1 request over a raw
 * socket. A raw socket (not undici, not node:http) because the result codes need to know exactly
 * which phase failed — connect vs. response — and a check must never share a pool, an agent or
 * keep-alive state with real traffic.
 *
 * Result codes (HAProxy's names, doc/configuration.txt "check_status"):
 *   L4OK    TCP connect succeeded (tcp checks)
 *   L4TOUT  the connect did not complete within `timeout`
 *   L4CON   the connect failed (refused, unreachable, DNS, reset during connect)
 *   L7OK    HTTP status in the `expect` set
 *   L7STS   HTTP status outside the `expect` set
 *   L7TOUT  connected, but no complete status line within `timeout`
 *   L7RSP   connected, but the peer reset/closed without a status line or sent garbage
 *
 * `timeout` bounds the whole check (connect + status line), so a check never outlives it.
 */

export type CheckCode = 'L4OK' | 'L4TOUT' | 'L4CON' | 'L7OK' | 'L7STS' | 'L7TOUT' | 'L7RSP';

export interface ProbeSpec {
  readonly type: 'http' | 'tcp' | 'dns';
  readonly host: string;
  readonly port: number;
  readonly timeoutMs: number;
  /** Precomputed request bytes (http only). */
  readonly request?: Buffer;
  /** expect[status] === 1 when the status is accepted (http only). */
  readonly expect?: Uint8Array;
  /** Bytes written first on the connection: the PROXY header of a `send_proxy` server (tcp, http). */
  readonly prefix?: Buffer;
  /** Name asked by dns checks. */
  readonly dnsName?: string;
}

export interface ProbeOutcome {
  code: CheckCode;
  ok: boolean;
  status?: number;
  durationMs: number;
  detail?: string;
}

/** Status lines longer than this are garbage, not a slow server. */
const MAX_STATUS_LINE = 4096;
const STATUS_RE = /^HTTP\/\d(?:\.\d)? (\d{3})(?: |\r|$)/;

/**
 * Compile `expect` (numbers, "200", "200-399") into a lookup table indexed by status.
 * Throws on a range whose bounds are reversed (the schema already checks the syntax).
 */
export function compileExpect(list: readonly (number | string)[]): Uint8Array {
  const t = new Uint8Array(1000);
  for (const e of list) {
    let lo: number, hi: number;
    if (typeof e === 'number') lo = hi = e;
    else {
      const [a, b] = e.split('-');
      lo = Number(a);
      hi = b === undefined ? lo : Number(b);
    }
    if (!(lo >= 100 && hi <= 999 && lo <= hi)) throw new RangeError(`bad expected status ${JSON.stringify(e)}`);
    t.fill(1, lo, hi + 1);
  }
  return t;
}

/** Methods that conventionally carry a body get an explicit empty one, so no server waits for it. */
const BODY_METHODS = new Set(['POST', 'PUT', 'PATCH']);

/**
 * The request sent by every check of a backend, built once. `path` and `host` come from the
 * validated config (no whitespace or control characters: no header injection).
 */
export function buildRequest(method: string, path: string, hostHeader: string): Buffer {
  return Buffer.from(
    `${method} ${path} HTTP/1.1\r\n` +
    `Host: ${hostHeader}\r\n` +
    'User-Agent: pairlb-check\r\n' +
    'Accept: */*\r\n' +
    (BODY_METHODS.has(method) ? 'Content-Length: 0\r\n' : '') +
    'Connection: close\r\n\r\n', 'latin1');
}

/**
 * A DNS check: one query (type SOA for `dnsName`) over UDP; an answer with the query's id and
 * RCODE NOERROR or NXDOMAIN is L7OK, another RCODE L7STS (status = RCODE), an ICMP unreachable
 * L4CON, silence L7TOUT (UDP has no connect phase).
 */
function probeDns(spec: ProbeSpec, signal?: AbortSignal): Promise<ProbeOutcome> {
  return new Promise((resolve) => {
    const t0 = performance.now();
    const id = (Math.random() * 0x10000) | 0;
    const sock = createSocket(isIPv6(spec.host) ? 'udp6' : 'udp4');
    let done = false;
    const finish = (code: CheckCode, status?: number, detail?: string) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
      sock.close();
      resolve({ code, ok: code === 'L7OK', status, durationMs: Math.round((performance.now() - t0) * 10) / 10, detail });
    };
    const timer = setTimeout(() => finish('L7TOUT', undefined, `no DNS answer after ${spec.timeoutMs}ms`), spec.timeoutMs);
    const onAbort = () => finish('L4CON', undefined, 'aborted');
    if (signal?.aborted) { onAbort(); return; }
    signal?.addEventListener('abort', onAbort);
    sock.on('error', (err: NodeJS.ErrnoException) => finish('L4CON', undefined, err.code ?? err.message));
    sock.on('message', (msg) => {
      const rc = answerRcode(msg, id);
      if (rc < 0) return; // not our answer: keep waiting
      if (rc === 0 || rc === 3) finish('L7OK', rc);
      else finish('L7STS', rc, `DNS rcode ${rc}`);
    });
    sock.connect(spec.port, spec.host, () => sock.send(buildQuery(id, spec.dnsName ?? '.')));
  });
}

/** `signal` aborts a check in flight (module stop): it resolves at once as L4CON "aborted". */
export function probe(spec: ProbeSpec, signal?: AbortSignal): Promise<ProbeOutcome> {
  if (spec.type === 'dns') return probeDns(spec, signal);
  return new Promise((resolve) => {
    const t0 = performance.now();
    let connected = false;
    let done = false;
    let buf = '';
    const sock: Socket = connect({ host: spec.host, port: spec.port, noDelay: true });
    const finish = (code: CheckCode, status?: number, detail?: string) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
      sock.destroy();
      const ok = code === 'L4OK' || code === 'L7OK';
      resolve({ code, ok, status, durationMs: Math.round((performance.now() - t0) * 10) / 10, detail });
    };
    const timer = setTimeout(() => {
      if (!connected) finish('L4TOUT', undefined, `no connection after ${spec.timeoutMs}ms`);
      else finish('L7TOUT', undefined, `no response after ${spec.timeoutMs}ms`);
    }, spec.timeoutMs);
    const onAbort = () => finish('L4CON', undefined, 'aborted');
    if (signal?.aborted) { onAbort(); return; }
    signal?.addEventListener('abort', onAbort);
    sock.on('connect', () => {
      connected = true;
      if (spec.type === 'tcp') {
        // With a PROXY header, finish once it is written: the server may check it (Postfix does).
        if (spec.prefix) sock.write(spec.prefix, () => finish('L4OK'));
        else finish('L4OK');
        return;
      }
      if (spec.prefix) sock.write(spec.prefix);
      sock.write(spec.request!);
    });
    sock.on('data', (chunk: Buffer) => {
      buf += chunk.toString('latin1');
      const eol = buf.indexOf('\n');
      if (eol < 0) {
        if (buf.length > MAX_STATUS_LINE) finish('L7RSP', undefined, 'status line too long');
        return;
      }
      const m = STATUS_RE.exec(buf.slice(0, eol + 1));
      if (!m) { finish('L7RSP', undefined, 'invalid status line'); return; }
      const status = Number(m[1]);
      if (spec.expect![status] === 1) finish('L7OK', status);
      else finish('L7STS', status, `status ${status}`);
    });
    sock.on('end', () => finish('L7RSP', undefined, 'connection closed without a response'));
    sock.on('close', () => finish('L7RSP', undefined, 'connection closed without a response'));
    sock.on('error', (err: NodeJS.ErrnoException) => {
      const why = err.code ?? err.message;
      if (!connected) finish('L4CON', undefined, why);
      else finish('L7RSP', undefined, why === 'ECONNRESET' ? 'connection reset' : why);
    });
  });
}
