import type { IncomingMessage, ServerResponse } from 'node:http';
import { PairlbError } from '../errors.js';

/** Small helpers shared by the admin API and the stats page (control plane only). */

export const ERROR_STATUS: Record<string, number> = {
  PAIRLB_NO_LISTEN: 404,
  PAIRLB_NO_BACKEND: 404,
  PAIRLB_BACKEND_EXISTS: 409,
  PAIRLB_REMOVING: 409,
  PAIRLB_NOT_MASTER: 409,
  PAIRLB_FORBIDDEN: 403,
  PAIRLB_BAD_ADDRESS: 400,
  PAIRLB_BAD_WEIGHT: 400,
  PAIRLB_BAD_STATE: 400,
  PAIRLB_BAD_NAME: 400,
  PAIRLB_BAD_COOKIE: 400,
  PAIRLB_BAD_REQUEST: 400,
  PAIRLB_TOO_LARGE: 413,
};

export function statusOf(e: unknown): number {
  return e instanceof PairlbError ? (ERROR_STATUS[e.code] ?? 500) : 500;
}

export function readBody(req: IncomingMessage, limit = 64 * 1024): Promise<string> {
  return new Promise((ok, fail) => {
    const chunks: Buffer[] = [];
    let n = 0;
    req.on('data', (c: Buffer) => {
      n += c.length;
      if (n > limit) { fail(new PairlbError('PAIRLB_TOO_LARGE', `body over ${limit} bytes`)); req.destroy(); return; }
      chunks.push(c);
    });
    req.on('end', () => ok(Buffer.concat(chunks).toString('utf8')));
    req.on('error', fail);
  });
}

export function sendJson(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const s = JSON.stringify(body, null, 1) + '\n';
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(s), 'cache-control': 'no-store', ...headers });
  res.end(s);
}

export function sendError(res: ServerResponse, e: unknown): void {
  const code = e instanceof PairlbError ? e.code : 'PAIRLB_INTERNAL';
  sendJson(res, statusOf(e), { error: { code, message: (e as Error).message } });
}
