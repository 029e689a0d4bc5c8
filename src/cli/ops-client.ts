import { request } from 'node:http';
import { readFileSync } from 'node:fs';
import { userInfo } from 'node:os';
import { loadConfigFile } from '../config/load.js';
import { PairlbError } from '../errors.js';
import { DEFAULT_ADMIN_SOCKET } from '../stats/config.js';
import { readToken } from '../admin/module.js';

/**
 * Client of the runtime admin API for the CLI. Where to connect, first match wins:
 *   --socket PATH | --url http://127.0.0.1:PORT (+ --token-file F, or PAIRLB_ADMIN_TOKEN)
 *   | -c FILE (its `admin:` section) | PAIRLB_ADMIN_SOCKET | /run/pairlb/admin.sock
 */

export const CONNECT_OPTIONS = {
  config: { type: 'string', short: 'c' },
  socket: { type: 'string' },
  url: { type: 'string' },
  'token-file': { type: 'string' },
  timeout: { type: 'string' },
  json: { type: 'boolean' },
} as const;

export const CONNECT_USAGE = [
  'Connection (first match wins): --socket PATH | --url http://HOST:PORT with --token-file FILE or',
  '$PAIRLB_ADMIN_TOKEN | -c FILE (uses its admin: section) | $PAIRLB_ADMIN_SOCKET | ' + DEFAULT_ADMIN_SOCKET,
].join('\n');

export interface Target { socketPath?: string; host?: string; port?: number; token?: string; timeoutMs: number }

export function resolveTarget(v: { config?: string; socket?: string; url?: string; 'token-file'?: string; timeout?: string }): Target {
  const timeoutMs = v.timeout ? Number(v.timeout) * 1000 : 10_000;
  if (v.socket) return { socketPath: v.socket, timeoutMs };
  if (v.url) {
    const u = new URL(v.url);
    const token = v['token-file'] ? readFileSync(v['token-file'], 'utf8').trim() : process.env.PAIRLB_ADMIN_TOKEN;
    return { host: u.hostname.replace(/^\[|\]$/g, ''), port: Number(u.port || 80), token, timeoutMs };
  }
  if (v.config) {
    const cfg = loadConfigFile(v.config);
    const a = cfg.admin;
    if (!a) throw new PairlbError('PAIRLB_NO_ADMIN', `${v.config} has no admin: section (the runtime API is off)`);
    if (a.bind) {
      const [host, port] = [a.bind.slice(0, a.bind.lastIndexOf(':')).replace(/^\[|\]$/g, ''), Number(a.bind.slice(a.bind.lastIndexOf(':') + 1))];
      return { host: host === '0.0.0.0' ? '127.0.0.1' : host, port, token: process.env.PAIRLB_ADMIN_TOKEN ?? readToken(a), timeoutMs };
    }
    return { socketPath: a.socket ?? DEFAULT_ADMIN_SOCKET, timeoutMs };
  }
  return { socketPath: process.env.PAIRLB_ADMIN_SOCKET ?? DEFAULT_ADMIN_SOCKET, timeoutMs };
}

export interface ApiResponse { status: number; body: Record<string, unknown> }

function who(): string {
  try { return (process.env.SUDO_USER || userInfo().username).replace(/[^A-Za-z0-9._@-]/g, '_').slice(0, 64) || 'unknown'; } catch { return 'unknown'; }
}

/** One API call. Rejects with PAIRLB_ADMIN_UNREACHABLE when nothing answers. */
export function call(t: Target, method: string, path: string, body?: unknown): Promise<ApiResponse> {
  const data = body === undefined ? undefined : JSON.stringify(body);
  const headers: Record<string, string> = { 'user-agent': 'pairlb-cli', 'x-pairlb-user': who(), accept: 'application/json' };
  if (data !== undefined) { headers['content-type'] = 'application/json'; headers['content-length'] = String(Buffer.byteLength(data)); }
  if (t.token) headers.authorization = 'Bearer ' + t.token;
  return new Promise((ok, fail) => {
    const req = request({ socketPath: t.socketPath, host: t.host, port: t.port, method, path, headers, timeout: t.timeoutMs, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        let parsed: Record<string, unknown>;
        try { parsed = JSON.parse(text) as Record<string, unknown>; } catch { return fail(new PairlbError('PAIRLB_ADMIN_BAD_ANSWER', `not JSON (HTTP ${res.statusCode}): ${text.slice(0, 200)}`)); }
        ok({ status: res.statusCode ?? 0, body: parsed });
      });
    });
    req.on('timeout', () => req.destroy(new PairlbError('PAIRLB_ADMIN_TIMEOUT', `no answer within ${t.timeoutMs} ms`)));
    req.on('error', (e) => {
      if (e instanceof PairlbError) return fail(e);
      const where = t.socketPath ?? `${t.host}:${t.port}`;
      fail(new PairlbError('PAIRLB_ADMIN_UNREACHABLE', `cannot reach the admin API at ${where}: ${(e as NodeJS.ErrnoException).code ?? e.message}`));
    });
    req.end(data);
  });
}

export function errorText(r: ApiResponse): string {
  const e = r.body.error as { code?: string; message?: string } | undefined;
  return e ? `${e.message} (${e.code})` : `HTTP ${r.status}`;
}
