import { STATUS_CODES } from 'node:http';
/**
 * The one place that maps failures to HTTP statuses and short bodies (precomputed at load time).
 *   400 malformed request        408 request head too slow (slowloris)   414 request line too long
 *   413 Content-Length beyond 15 digits
 *   429 per-client limit (limits.*)  431 header block too large   502 no connection / broken response    503 no backend available
 *   504 backend timeout          501 CONNECT or a transfer coding not implemented
 *   505 HTTP version not supported
 *   404 a frontend's rules sent the request nowhere and it has no default_backend
 */
export const STATUS_TEXT: Record<number, string> = {
  400: 'Bad Request', 404: 'Not Found', 408: 'Request Timeout', 413: 'Content Too Large', 414: 'URI Too Long', 429: 'Too Many Requests', 431: 'Request Header Fields Too Large',
  501: 'Not Implemented', 502: 'Bad Gateway', 503: 'Service Unavailable', 504: 'Gateway Timeout', 505: 'HTTP Version Not Supported',
};

const BODY: Record<number, string> = {
  400: 'Your browser sent an invalid request.',
  404: 'No site is configured for this host name and path.',
  408: 'Your browser did not send a complete request in time.',
  413: 'The request body is too large.',
  414: 'The request line is too long.',
  429: 'Too many requests or connections from your address: slow down.',
  431: 'The request header block is too large.',
  501: 'The request uses a method or transfer coding that is not implemented.',
  502: 'The server returned an invalid or incomplete response.',
  503: 'No server is available to handle this request.',
  504: 'The server did not respond in time.',
  505: 'Only HTTP/1.0 and HTTP/1.1 are supported.',
};

export interface ErrorPage { status: number; body: Buffer; headers: string[] }

export const ERROR_PAGES = new Map<number, ErrorPage>();
for (const s of Object.keys(BODY).map(Number)) {
  const body = Buffer.from(`<html><body><h1>${s} ${STATUS_TEXT[s]}</h1>\n${BODY[s]}\n</body></html>\n`);
  ERROR_PAGES.set(s, {
    status: s, body,
    headers: ['content-type', 'text/html', 'content-length', String(body.length), 'cache-control', 'no-cache'],
  });
}

/** Raw response for a connection whose request could not be parsed (written to the socket). */
export function rawErrorResponse(status: number): Buffer {
  const p = ERROR_PAGES.get(status) ?? ERROR_PAGES.get(400)!;
  return Buffer.concat([
    Buffer.from(`HTTP/1.1 ${status} ${STATUS_TEXT[status] ?? 'Bad Request'}\r\ncontent-type: text/html\r\ncontent-length: ${p.body.length}\r\ncache-control: no-cache\r\nconnection: close\r\n\r\n`),
    p.body,
  ]);
}

/**
 * A page a rule answers with (deny, return), built at config load: `body` as is with its
 * content type, or the standard page of the status. Never called per request.
 */
export function localPage(status: number, body?: string, contentType = 'text/plain; charset=utf-8'): ErrorPage {
  if (body === undefined) {
    const std = ERROR_PAGES.get(status);
    if (std) return std;
    const text = STATUS_CODES[status] ?? 'Error';
    const b = Buffer.from(`<html><body><h1>${status} ${text}</h1>\n</body></html>\n`);
    return { status, body: b, headers: ['content-type', 'text/html', 'content-length', String(b.length), 'cache-control', 'no-cache'] };
  }
  const b = Buffer.from(body);
  return { status, body: b, headers: ['content-type', contentType, 'content-length', String(b.length)] };
}
