import { describe, expect, it } from 'vitest';
import { parseRequest } from './strict.js';

/** The edge tests' backend-side parser must refuse what it claims to refuse, and read the rest exactly. */

const H = 'Host: a.test\r\n';
const ok: [string, string, { method: string; target: string; body: string; framing: string }][] = [
  ['origin-form GET', `GET /a?b HTTP/1.1\r\n${H}\r\n`, { method: 'GET', target: '/a?b', body: '', framing: 'none' }],
  ['Content-Length body', `POST /p HTTP/1.1\r\n${H}Content-Length: 5\r\n\r\nhelloREST`, { method: 'POST', target: '/p', body: 'hello', framing: 'length' }],
  ['chunked with extensions and trailers', `POST /c HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\n5;a=b;c="d e"\r\nhello\r\nA\r\n0123456789\r\n0\r\nX-T: 1\r\n\r\n`, { method: 'POST', target: '/c', body: 'hello0123456789', framing: 'chunked' }],
  ['HTTP/1.0 without Host', 'GET /x HTTP/1.0\r\n\r\n', { method: 'GET', target: '/x', body: '', framing: 'none' }],
  ['absolute-form', `GET http://a.test/p HTTP/1.1\r\n${H}\r\n`, { method: 'GET', target: 'http://a.test/p', body: '', framing: 'none' }],
  ['OPTIONS *', `OPTIONS * HTTP/1.1\r\n${H}\r\n`, { method: 'OPTIONS', target: '*', body: '', framing: 'none' }],
  ['CONNECT authority-form', 'CONNECT a.test:443 HTTP/1.1\r\nHost: a.test:443\r\n\r\n', { method: 'CONNECT', target: 'a.test:443', body: '', framing: 'none' }],
];
const bad: [string, string][] = [
  ['bare LF ends a field line', `GET / HTTP/1.1\r\n${H}X: 1\n\r\n`],
  ['bare CR in a value', `GET / HTTP/1.1\r\n${H}X: a\rb\r\n\r\n`],
  ['obs-fold', `GET / HTTP/1.1\r\n${H}X: a\r\n b\r\n\r\n`],
  ['space before the colon', `GET / HTTP/1.1\r\n${H}X : 1\r\n\r\n`],
  ['NUL in a value', `GET / HTTP/1.1\r\n${H}X: a\x00b\r\n\r\n`],
  ['two spaces in the request line', `GET  / HTTP/1.1\r\n${H}\r\n`],
  ['HTTP/2.0', `GET / HTTP/2.0\r\n${H}\r\n`],
  ['no version', `GET /\r\n${H}\r\n`],
  ['leading empty line', `\r\nGET / HTTP/1.1\r\n${H}\r\n`],
  ['non-ASCII target', `GET /\xff HTTP/1.1\r\n${H}\r\n`],
  ['asterisk on GET', `GET * HTTP/1.1\r\n${H}\r\n`],
  ['HTTP/1.1 without Host', 'GET / HTTP/1.1\r\n\r\n'],
  ['two Host lines', `GET / HTTP/1.1\r\n${H}${H}\r\n`],
  ['invalid Host', 'GET / HTTP/1.1\r\nHost: a b\r\n\r\n'],
  ['TE and CL', `POST / HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n`],
  ['TE gzip, chunked', `POST / HTTP/1.1\r\n${H}Transfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n`],
  ['two TE lines', `POST / HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n`],
  ['TE on HTTP/1.0', `POST / HTTP/1.0\r\n${H}Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n`],
  ['two Content-Length lines', `POST / HTTP/1.1\r\n${H}Content-Length: 1\r\nContent-Length: 1\r\n\r\nx`],
  ['Content-Length +5', `POST / HTTP/1.1\r\n${H}Content-Length: +5\r\n\r\nhello`],
  ['chunk size 0x5', `POST / HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\n0x5\r\nhello\r\n0\r\n\r\n`],
  ['chunk size with a space', `POST / HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\n5 \r\nhello\r\n0\r\n\r\n`],
  ['chunk data without CRLF', `POST / HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\n5\r\nhelloXX0\r\n\r\n`],
  ['16-digit chunk size', `POST / HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\n0000000000000005\r\nhello\r\n0\r\n\r\n`],
];

describe('strict HTTP/1.1 request parser (test/edge/strict.ts)', () => {
  it.each(ok)('reads %s', (_n, text, want) => {
    const r = parseRequest(Buffer.from(text, 'latin1'));
    expect(r.kind).toBe('request');
    if (r.kind !== 'request') return;
    expect({ method: r.req.method, target: r.req.target, body: r.req.body.toString('latin1'), framing: r.req.framing }).toEqual(want);
  });

  it.each(bad)('refuses %s', (_n, text) => {
    expect(parseRequest(Buffer.from(text, 'latin1')).kind).toBe('error');
  });

  it('waits for the rest of a request, then finds where the next one starts', () => {
    const two = Buffer.from(`POST /p HTTP/1.1\r\n${H}Content-Length: 5\r\n\r\nhelloGET /q HTTP/1.1\r\n${H}\r\n`, 'latin1');
    for (const cut of [10, 30, 45, 56]) expect(parseRequest(two.subarray(0, cut)).kind).toBe('incomplete');
    const r1 = parseRequest(two);
    if (r1.kind !== 'request') throw new Error(r1.kind);
    const r2 = parseRequest(two, r1.end);
    expect(r2.kind === 'request' && r2.req.target).toBe('/q');
  });
});
