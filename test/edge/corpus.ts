import { mulberry32 } from '../helpers/rng.js';
/**
 * Malformed and ambiguous HTTP/1.1 requests for the differential and fuzz tests, built from
 * RFC 9112 (message framing §6, chunked coding §7.1, request line §3, field syntax §5, Host §3.2)
 * and from issue 10's vectors, plus seeded mutations of valid requests (reproducible: the same
 * seed gives the same bytes).
 *
 * Every case ends its own bytes: a case that leaves a body or head open is there on purpose
 * (the harness's follow-up request then completes it the same way for both proxies).
 */

export interface Case { name: string; bytes: Buffer }

const B = (s: string): Buffer => Buffer.from(s, 'latin1');
const H = 'Host: diff.test\r\n';
/** A second, well-formed request appended to many cases: what a smuggler would hide in a body. */
export const PROBE = `GET /smuggled HTTP/1.1\r\n${H}X-Smuggled: 1\r\n\r\n`;

function add(out: Case[], name: string, s: string | Buffer): void { out.push({ name, bytes: typeof s === 'string' ? B(s) : s }); }

/** Hand-built cases, grouped by the rule they probe. */
export function handwritten(): Case[] {
  const out: Case[] = [];
  const chunkedBody = '5\r\nhello\r\n0\r\n\r\n';

  // Baselines: valid requests both proxies must forward identically.
  add(out, 'valid GET', `GET /a?b=c HTTP/1.1\r\n${H}User-Agent: t\r\nAccept: */*\r\n\r\n`);
  add(out, 'valid POST content-length', `POST /p HTTP/1.1\r\n${H}Content-Length: 5\r\nContent-Type: text/plain\r\n\r\nhello`);
  add(out, 'valid POST chunked', `POST /p HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\n${chunkedBody}`);
  add(out, 'valid pipelined GET + GET', `GET /1 HTTP/1.1\r\n${H}\r\nGET /2 HTTP/1.1\r\n${H}\r\n`);
  add(out, 'valid HTTP/1.0 GET with Host', `GET /ten HTTP/1.0\r\n${H}\r\n`);
  add(out, 'valid HEAD', `HEAD /h HTTP/1.1\r\n${H}\r\n`);
  add(out, 'valid lowercase method token', `get /lower HTTP/1.1\r\n${H}\r\n`);
  add(out, 'valid unknown method', `FROB /x HTTP/1.1\r\n${H}\r\n`);
  add(out, 'valid duplicate ordinary header', `GET /d HTTP/1.1\r\n${H}X-A: 1\r\nX-A: 2\r\n\r\n`);
  add(out, 'valid empty header value', `GET /e HTTP/1.1\r\n${H}X-Empty:\r\n\r\n`);
  add(out, 'valid obs-text in value', `GET /o HTTP/1.1\r\n${H}X-Obs: caf\xe9\r\n\r\n`);
  add(out, 'valid chunk extensions', `POST /ext HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\n5;name=val;q="x y"\r\nhello\r\n0\r\n\r\n`);
  add(out, 'valid trailers', `POST /tr HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\nX-Trailer: 1\r\n\r\n`);
  add(out, 'valid uppercase chunk size', `POST /hex HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\nA\r\n0123456789\r\n0\r\n\r\n`);
  add(out, 'valid leading-zero chunk size', `POST /hex0 HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\n005\r\nhello\r\n0\r\n\r\n`);
  add(out, 'valid Content-Length: 0 GET', `GET /z HTTP/1.1\r\n${H}Content-Length: 0\r\n\r\n`);
  add(out, 'valid Expect: 100-continue', `POST /exp HTTP/1.1\r\n${H}Content-Length: 5\r\nExpect: 100-continue\r\n\r\nhello`);
  add(out, 'valid Connection: close + pipelined', `GET /c HTTP/1.1\r\n${H}Connection: close\r\n\r\n${PROBE}`);
  add(out, 'valid Connection-listed header', `GET /cl HTTP/1.1\r\n${H}Connection: X-Private\r\nX-Private: p\r\nX-Keep: k\r\n\r\n`);
  add(out, 'valid XFF chain from client', `GET /xff HTTP/1.1\r\n${H}X-Forwarded-For: 203.0.113.7\r\n\r\n`);
  add(out, 'valid percent-encoded target', `GET /a%20b/%2e%2e/%00 HTTP/1.1\r\n${H}\r\n`);
  add(out, 'valid dot segments', `GET /a/../../etc/passwd HTTP/1.1\r\n${H}\r\n`);
  add(out, 'valid double slash', `GET //x//y HTTP/1.1\r\n${H}\r\n`);
  add(out, 'valid Host with port', `GET /hp HTTP/1.1\r\nHost: diff.test:8080\r\n\r\n`);
  add(out, 'valid Host IPv6', `GET /v6 HTTP/1.1\r\nHost: [::1]:80\r\n\r\n`);

  // Transfer-Encoding variants (RFC 9112 §6.1: only a final `chunked` frames; anything else is an error for a request).
  const teValues = ['Chunked', 'CHUNKED', ' chunked', 'chunked ', '\tchunked', 'chunked, identity', 'identity, chunked', 'xchunked',
    'chunkedx', 'chunked;q=1', 'gzip, chunked', 'chunked, chunked', '"chunked"', 'chunk', 'identity', '', 'chunked\x00', 'chu\tnked',
    'chunked\x0b', ',chunked', 'chunked,', 'gzip', 'c\xffhunked'];
  for (const v of teValues) {
    add(out, `TE ${JSON.stringify(v)}`, `POST /te HTTP/1.1\r\n${H}Transfer-Encoding: ${v}\r\n\r\n${chunkedBody}${PROBE}`);
    add(out, `TE ${JSON.stringify(v)} + CL`, `POST /te HTTP/1.1\r\n${H}Content-Length: 15\r\nTransfer-Encoding: ${v}\r\n\r\n${chunkedBody}${PROBE}`);
  }
  const teNames = ['transfer-encoding', 'TRANSFER-ENCODING', 'Transfer-Encoding ', 'Transfer_Encoding', 'Transfer-Encoding\t',
    'Transfer-Encoding\x00', ' Transfer-Encoding', 'Transfer-Encodin', 'Transfer-Encoding\x0b'];
  for (const n of teNames) add(out, `TE name ${JSON.stringify(n)}`, `POST /ten HTTP/1.1\r\n${H}X-Before: 1\r\n${n}: chunked\r\n\r\n${chunkedBody}${PROBE}`);
  add(out, 'TE obs-folded value', `POST /tef HTTP/1.1\r\n${H}Transfer-Encoding:\r\n chunked\r\n\r\n${chunkedBody}${PROBE}`);
  add(out, 'TE folded onto previous header', `POST /tef2 HTTP/1.1\r\n${H}X-A: 1\r\n Transfer-Encoding: chunked\r\n\r\n${chunkedBody}${PROBE}`);
  add(out, 'two TE lines chunked + identity', `POST /te2 HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\n\r\n${chunkedBody}${PROBE}`);
  add(out, 'two TE lines identity + chunked', `POST /te2 HTTP/1.1\r\n${H}Transfer-Encoding: identity\r\nTransfer-Encoding: chunked\r\n\r\n${chunkedBody}${PROBE}`);
  add(out, 'two TE lines chunked + chunked', `POST /te2 HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n${chunkedBody}${PROBE}`);
  add(out, 'TE chunked on HTTP/1.0', `POST /te10 HTTP/1.0\r\n${H}Transfer-Encoding: chunked\r\n\r\n${chunkedBody}`);
  add(out, 'CL.TE classic', `POST /clte HTTP/1.1\r\n${H}Content-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nG`);
  add(out, 'TE.CL classic', `POST /tecl HTTP/1.1\r\n${H}Content-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n5c\r\nGPOST / HTTP/1.1\r\nContent-Type: x\r\nContent-Length: 15\r\n\r\nx=1\r\n0\r\n\r\n`);

  // Content-Length variants (§6.3 rule 5, §8.6).
  const clValues = ['5, 5', ' 5', '+5', '-1', '0x5', '5 ', '05', '5.0', '', 'abc', '99999999999999999999', '5\t', '5 5', '5,', '١', '5\x00', '4', '6', '9999999999999999999', '18446744073709551615', '18446744073709551616', '999999999999999', '1000000000000000'];
  for (const v of clValues) add(out, `CL ${JSON.stringify(v)}`, `POST /cl HTTP/1.1\r\n${H}Content-Length: ${v}\r\n\r\nhello${PROBE}`);
  add(out, 'two CL same', `POST /cl2 HTTP/1.1\r\n${H}Content-Length: 5\r\nContent-Length: 5\r\n\r\nhello${PROBE}`);
  add(out, 'two CL different', `POST /cl2 HTTP/1.1\r\n${H}Content-Length: 5\r\nContent-Length: 6\r\n\r\nhello!${PROBE}`);
  add(out, 'two CL 0 and 5', `POST /cl2 HTTP/1.1\r\n${H}Content-Length: 0\r\nContent-Length: 5\r\n\r\nhello${PROBE}`);
  add(out, 'CL name with space before colon', `POST /cls HTTP/1.1\r\n${H}Content-Length : 5\r\n\r\nhello${PROBE}`);
  add(out, 'CL obs-fold', `POST /clf HTTP/1.1\r\n${H}Content-Length:\r\n 5\r\n\r\nhello${PROBE}`);
  add(out, 'CL lowercase', `POST /cll HTTP/1.1\r\n${H}content-length: 5\r\n\r\nhello${PROBE}`);

  // Chunk-size and extension oddities (§7.1, §7.1.1).
  const sizes = ['0x5', '5 ', '5\t', ' 5', '-5', '+5', 'fffffffffffffffff5', '5;', '5 ;ext', '5;ext=\x00', '5;ext="unterminated', '5;=v',
    '5;ext=a b', '5\r', '5\x00', 'g', '', '5;ext="a\\"b"', '5;e1;e2=v2;e3="q"', '0000000000000000005', '5;ext=v\x7f'];
  for (const s of sizes) add(out, `chunk size ${JSON.stringify(s)}`, `POST /cs HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\n${s}\r\nhello\r\n0\r\n\r\n${PROBE}`);
  add(out, 'chunk size bare LF', `POST /cs HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\n5\nhello\r\n0\r\n\r\n${PROBE}`);
  add(out, 'chunk data not followed by CRLF', `POST /cd HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\n5\r\nhelloXX0\r\n\r\n${PROBE}`);
  add(out, 'chunk data followed by LF only', `POST /cd HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\n5\r\nhello\n0\r\n\r\n${PROBE}`);
  add(out, 'chunk too long for its size', `POST /cd HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\n3\r\nhello\r\n0\r\n\r\n${PROBE}`);
  add(out, 'last chunk with extension', `POST /lc HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0;x=y\r\n\r\n${PROBE}`);
  add(out, 'trailer with bad name', `POST /tb HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\nBad Name: 1\r\n\r\n${PROBE}`);
  add(out, 'trailer Content-Length', `POST /tcl HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\nContent-Length: 50\r\n\r\n${PROBE}`);
  add(out, 'trailer obs-fold', `POST /tof HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\nX-T: a\r\n b\r\n\r\n${PROBE}`);
  add(out, 'many tiny chunks', `POST /tiny HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\n${'1\r\nx\r\n'.repeat(200)}0\r\n\r\n`);

  // Bare LF and CR (§2.2).
  add(out, 'bare LF everywhere', `GET /lf HTTP/1.1\n${H.replace('\r', '')}X-A: 1\n\n`);
  add(out, 'bare LF after request line', `GET /lf HTTP/1.1\n${H}\r\n`);
  add(out, 'bare LF in header line', `GET /lf HTTP/1.1\r\nX-A: 1\n${H}\r\n`);
  add(out, 'bare LF ends head', `GET /lf HTTP/1.1\r\n${H}\n`);
  add(out, 'bare CR in value', `GET /cr HTTP/1.1\r\n${H}X-A: a\rb\r\n\r\n`);
  add(out, 'CR CR LF', `GET /crcr HTTP/1.1\r\n${H}X-A: 1\r\r\n\r\n`);
  add(out, 'bare LF hides a header', `GET /lfh HTTP/1.1\r\n${H}X-A: 1\nTransfer-Encoding: chunked\r\n\r\n${chunkedBody}${PROBE}`);

  // NUL and other CTLs in names and values (§5.5: a recipient MUST reject or replace CR, LF, NUL).
  for (const c of ['\x00', '\x01', '\x08', '\x0b', '\x0c', '\x1b', '\x7f', '\x80', '\xff']) {
    const x = c.charCodeAt(0).toString(16);
    add(out, `0x${x} in header value`, `GET /ctl HTTP/1.1\r\n${H}X-A: a${c}b\r\n\r\n`);
    add(out, `0x${x} in header name`, `GET /ctl HTTP/1.1\r\n${H}X-${c}A: 1\r\n\r\n`);
    add(out, `0x${x} in target`, `GET /a${c}b HTTP/1.1\r\n${H}\r\n`);
  }
  add(out, 'NUL in method', `GE\x00T / HTTP/1.1\r\n${H}\r\n`);
  add(out, 'tab in value', `GET /tab HTTP/1.1\r\n${H}X-A: a\tb\r\n\r\n`);
  add(out, 'header name with space', `GET /hs HTTP/1.1\r\n${H}Bad Header: 1\r\n\r\n`);
  add(out, 'header without colon', `GET /nc HTTP/1.1\r\n${H}NoColon\r\n\r\n`);
  add(out, 'empty header name', `GET /en HTTP/1.1\r\n${H}: v\r\n\r\n`);
  add(out, 'header name with separator', `GET /sep HTTP/1.1\r\n${H}X(A): 1\r\n\r\n`);
  add(out, 'header name with slash', `GET /sep HTTP/1.1\r\n${H}X/A: 1\r\n\r\n`);
  add(out, 'obs-fold ordinary header', `GET /of HTTP/1.1\r\n${H}X-Folded: a\r\n b\r\n\r\n`);
  add(out, 'obs-fold with tab', `GET /of HTTP/1.1\r\n${H}X-Folded: a\r\n\tb\r\n\r\n`);
  add(out, 'first header line starts with space', `GET /sp HTTP/1.1\r\n ${H}\r\n`);

  // Request-line oddities (§3).
  const lines = ['GET  / HTTP/1.1', 'GET / HTTP/1.1 ', 'GET\t/\tHTTP/1.1', 'GET / HTTP/1.2', 'GET / HTTP/2.0', 'GET / HTTP/1.10',
    'GET / http/1.1', 'GET / HTTP/1', 'GET / HTTP/0.9', 'GET /', 'G@T / HTTP/1.1', 'GET /a b HTTP/1.1', 'GET /a#frag HTTP/1.1',
    'GET ?a=b HTTP/1.1', 'GET a/b HTTP/1.1', ' GET / HTTP/1.1', 'GET / HTTP/1.1\x00', 'GET / FOO/1.1', `${'A'.repeat(300)} / HTTP/1.1`,
    'GET /a\\b HTTP/1.1', 'GET /a"b HTTP/1.1', 'GET /a<b> HTTP/1.1', 'GET /a{b} HTTP/1.1', 'GET /a|b HTTP/1.1', 'GET /a^b HTTP/1.1',
    'GET /`x` HTTP/1.1', '/ HTTP/1.1', 'GET HTTP/1.1'];
  for (const l of lines) add(out, `request line ${JSON.stringify(l.slice(0, 60))}`, `${l}\r\n${H}\r\n`);
  add(out, 'leading CRLF before request line', `\r\nGET /lead HTTP/1.1\r\n${H}\r\n`);
  add(out, 'two leading CRLF', `\r\n\r\nGET /lead HTTP/1.1\r\n${H}\r\n`);
  add(out, 'leading LF', `\nGET /lead HTTP/1.1\r\n${H}\r\n`);
  add(out, 'HTTP/1.1 without Host', 'GET /nohost HTTP/1.1\r\nX-A: 1\r\n\r\n');
  add(out, 'HTTP/1.0 without Host', 'GET /nohost10 HTTP/1.0\r\n\r\n');
  add(out, 'CONNECT authority-form', `CONNECT diff.test:443 HTTP/1.1\r\nHost: diff.test:443\r\n\r\n`);
  add(out, 'PRI preface', 'PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n');
  add(out, 'TRACE', `TRACE /t HTTP/1.1\r\n${H}\r\n`);

  // absolute-form (§3.2.2: the target's authority wins over Host).
  add(out, 'absolute-form, Host differs', 'GET http://abs.test/p?q=1 HTTP/1.1\r\nHost: other.test\r\n\r\n');
  add(out, 'absolute-form, Host same', 'GET http://diff.test/p HTTP/1.1\r\nHost: diff.test\r\n\r\n');
  add(out, 'absolute-form https', 'GET https://abs.test/p HTTP/1.1\r\nHost: abs.test\r\n\r\n');
  add(out, 'absolute-form without path', 'GET http://abs.test HTTP/1.1\r\nHost: abs.test\r\n\r\n');
  add(out, 'absolute-form with userinfo', 'GET http://user@abs.test/p HTTP/1.1\r\nHost: abs.test\r\n\r\n');
  add(out, 'absolute-form with port', 'GET http://abs.test:81/p HTTP/1.1\r\nHost: abs.test:81\r\n\r\n');
  add(out, 'absolute-form uppercase scheme', 'GET HTTP://ABS.TEST/p HTTP/1.1\r\nHost: abs.test\r\n\r\n');
  add(out, 'absolute-form ftp', 'GET ftp://abs.test/p HTTP/1.1\r\nHost: abs.test\r\n\r\n');
  add(out, 'absolute-form malformed http:/x', 'GET http:/abs.test/p HTTP/1.1\r\nHost: abs.test\r\n\r\n');
  add(out, 'absolute-form without Host', 'GET http://abs.test/p HTTP/1.1\r\n\r\n');
  add(out, 'absolute-form, query only', 'GET http://abs.test?x=1 HTTP/1.1\r\nHost: abs.test\r\n\r\n');

  // Asterisk-form.
  add(out, 'OPTIONS *', `OPTIONS * HTTP/1.1\r\n${H}\r\n`);
  add(out, 'GET *', `GET * HTTP/1.1\r\n${H}\r\n`);
  add(out, 'OPTIONS *x', `OPTIONS *x HTTP/1.1\r\n${H}\r\n`);
  add(out, 'OPTIONS * with body', `OPTIONS * HTTP/1.1\r\n${H}Content-Length: 5\r\n\r\nhello`);

  // Host.
  add(out, 'two Host same', `GET /h2 HTTP/1.1\r\n${H}${H}\r\n`);
  add(out, 'two Host different', `GET /h2 HTTP/1.1\r\n${H}Host: evil.test\r\n\r\n`);
  add(out, 'Host list', 'GET /hl HTTP/1.1\r\nHost: a.test, b.test\r\n\r\n');
  add(out, 'empty Host', 'GET /he HTTP/1.1\r\nHost:\r\n\r\n');
  add(out, 'Host with space', 'GET /hsp HTTP/1.1\r\nHost: a b\r\n\r\n');
  add(out, 'Host bad port', 'GET /hbp HTTP/1.1\r\nHost: a.test:abc\r\n\r\n');
  add(out, 'Host with userinfo', 'GET /hu HTTP/1.1\r\nHost: user@a.test\r\n\r\n');
  add(out, 'Host with slash', 'GET /hs HTTP/1.1\r\nHost: a.test/x\r\n\r\n');
  add(out, 'Host NUL', 'GET /hn HTTP/1.1\r\nHost: a\x00.test\r\n\r\n');
  add(out, 'Host name with space before colon', 'GET /hc HTTP/1.1\r\nHost : a.test\r\n\r\n');
  add(out, 'Host lowercase + uppercase', 'GET /hlu HTTP/1.1\r\nhost: a.test\r\nHOST: a.test\r\n\r\n');

  // Connection naming framing headers (issue 10 item 1).
  add(out, 'Connection: content-length', `GET /ccl HTTP/1.1\r\n${H}Connection: content-length\r\nContent-Length: ${PROBE.length}\r\n\r\n${PROBE}`);
  add(out, 'Connection: transfer-encoding', `POST /cte HTTP/1.1\r\n${H}Connection: transfer-encoding\r\nTransfer-Encoding: chunked\r\n\r\n${chunkedBody}`);
  add(out, 'Connection: host', `GET /ch HTTP/1.1\r\n${H}Connection: host\r\n\r\n`);
  add(out, 'Connection: x-forwarded-for', `GET /cx HTTP/1.1\r\n${H}Connection: x-forwarded-for\r\nX-Forwarded-For: 203.0.113.9\r\n\r\n`);
  add(out, 'Connection: close, content-length', `POST /ccc HTTP/1.1\r\n${H}Connection: close, content-length\r\nContent-Length: 5\r\n\r\nhello`);

  // Bodies on methods without body semantics (issue 10 item 1).
  for (const m of ['GET', 'HEAD', 'DELETE', 'OPTIONS']) {
    add(out, `${m} with chunked body`, `${m} /mb HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\n${(PROBE.length).toString(16)}\r\n${PROBE}\r\n0\r\n\r\n`);
    add(out, `${m} with CL body`, `${m} /mb HTTP/1.1\r\n${H}Content-Length: ${PROBE.length}\r\n\r\n${PROBE}`);
  }

  // Upgrade (issue 10 item 4: the backend answers 200, never 101; what follows must still be parsed as HTTP).
  add(out, 'Upgrade websocket, backend 200, smuggled next', `GET /ws HTTP/1.1\r\n${H}Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n${PROBE}`);
  add(out, 'Upgrade websocket, backend 200', `GET /ws HTTP/1.1\r\n${H}Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n`);
  add(out, 'Upgrade without Connection', `GET /up HTTP/1.1\r\n${H}Upgrade: websocket\r\n\r\n`);
  add(out, 'Connection: upgrade without Upgrade', `GET /up HTTP/1.1\r\n${H}Connection: upgrade\r\n\r\n`);
  add(out, 'Upgrade h2c', `GET /h2c HTTP/1.1\r\n${H}Connection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n`);
  add(out, 'Upgrade on POST with body', `POST /upb HTTP/1.1\r\n${H}Connection: Upgrade\r\nUpgrade: websocket\r\nContent-Length: 5\r\n\r\nhello${PROBE}`);
  add(out, 'Upgrade with CL.TE behind', `GET /ws2 HTTP/1.1\r\n${H}Connection: Upgrade\r\nUpgrade: websocket\r\n\r\nPOST /x HTTP/1.1\r\n${H}Content-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nG`);

  // Header counts and sizes (issue 10 item 8; pairlb's head limit is 16 KiB).
  for (const n of [100, 101, 102, 500, 1000, 2001, 2100]) {
    let hs = '';
    for (let i = 0; i < n; i++) hs += `a${i}:b\r\n`;
    if (hs.length < 15_000) add(out, `${n} headers`, `POST /many HTTP/1.1\r\n${H}${hs}Content-Length: 5\r\n\r\nhello`);
    else {
      hs = '';
      for (let i = 0; i < n; i++) hs += `a:\r\n`;
      add(out, `${n} empty headers`, `POST /many HTTP/1.1\r\n${H}${hs}Content-Length: 5\r\n\r\nhello`);
    }
  }
  add(out, 'head just under 16 KiB', `GET /big HTTP/1.1\r\n${H}X-Big: ${'a'.repeat(16000)}\r\n\r\n`);
  add(out, 'head over 16 KiB', `GET /big HTTP/1.1\r\n${H}X-Big: ${'a'.repeat(17000)}\r\n\r\n`);
  add(out, 'request line 9000', `GET /${'a'.repeat(9000)} HTTP/1.1\r\n${H}\r\n`);
  return out;
}

// ---- seeded mutations -------------------------------------------------------------------------

/** Seeded (test/helpers/rng.ts): a fuzz run is reproduced from its seed. */
export class Rng {
  readonly next: () => number;
  constructor(seed: number) { this.next = mulberry32(seed); }
  int(n: number): number { return Math.floor(this.next() * n); }
  pick<T>(a: readonly T[]): T { return a[this.int(a.length)]; }
}

/** Valid requests the mutations start from. */
export const BASES: readonly string[] = [
  `GET /m?x=1 HTTP/1.1\r\n${H}User-Agent: fuzz\r\nAccept: */*\r\n\r\n`,
  `POST /m HTTP/1.1\r\n${H}Content-Type: text/plain\r\nContent-Length: 5\r\n\r\nhello`,
  `POST /m HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n3;e=1\r\nabc\r\n0\r\n\r\n`,
  `GET /m HTTP/1.1\r\n${H}Connection: keep-alive\r\nCookie: a=1\r\n\r\n${PROBE}`,
  `PUT /m HTTP/1.1\r\n${H}Content-Length: 3\r\nExpect: 100-continue\r\n\r\nabc`,
  `GET /ws HTTP/1.1\r\n${H}Connection: Upgrade\r\nUpgrade: websocket\r\n\r\n`,
];

const DANGEROUS = ['\x00', '\r', '\n', '\t', ' ', ':', ';', ',', '\x7f', '\xff', '"', '\\', '0', 'f', '\r\n', '\r\n\r\n', '\n\n'];
const INJECT = [
  'Transfer-Encoding: chunked', 'Transfer-Encoding: identity', 'Transfer-Encoding: xchunked', 'Content-Length: 0', 'Content-Length: 5',
  'Content-Length: 100', 'Host: evil.test', 'Connection: close', 'Connection: content-length', 'Connection: Upgrade', 'Upgrade: websocket',
  'Expect: 100-continue', 'X-Forwarded-For: 10.0.0.1', 'Transfer-Encoding : chunked', ' Transfer-Encoding: chunked', 'Content-Length: -1',
];

/** Apply 1-3 random byte- or line-level mutations to `base`; returns the bytes and what was done. */
export function mutate(rng: Rng, base: string): { bytes: Buffer; ops: string[] } {
  let s = base;
  const ops: string[] = [];
  const n = 1 + rng.int(3);
  for (let k = 0; k < n; k++) {
    const op = rng.int(9);
    const head = s.indexOf('\r\n\r\n');
    const at = rng.int(Math.max(1, s.length));
    switch (op) {
      case 0: { const c = rng.pick(DANGEROUS); s = s.slice(0, at) + c + s.slice(at); ops.push(`insert ${JSON.stringify(c)}@${at}`); break; }
      case 1: { s = s.slice(0, at) + s.slice(at + 1); ops.push(`delete@${at}`); break; }
      case 2: { const c = rng.pick(DANGEROUS); s = s.slice(0, at) + c + s.slice(at + 1); ops.push(`replace@${at} ${JSON.stringify(c)}`); break; }
      case 3: case 4: {
        const h = rng.pick(INJECT);
        const eol = head > 0 ? s.indexOf('\r\n') + 2 : 0;
        s = s.slice(0, eol) + h + '\r\n' + s.slice(eol);
        ops.push(`inject ${JSON.stringify(h)}`); break;
      }
      case 5: {
        const lines = s.slice(0, head > 0 ? head : s.length).split('\r\n');
        if (lines.length > 1) { const i = 1 + rng.int(lines.length - 1); lines.splice(i, 0, lines[i]); ops.push(`duplicate line ${i}`); }
        s = lines.join('\r\n') + (head > 0 ? s.slice(head) : '');
        break;
      }
      case 6: {
        const i = s.indexOf('\r\n', at);
        if (i >= 0) { s = s.slice(0, i) + (rng.int(2) ? '\n' : '\r') + s.slice(i + 2); ops.push(`bare line end@${i}`); }
        break;
      }
      case 7: {
        const lines = s.slice(0, head > 0 ? head : s.length).split('\r\n');
        if (lines.length > 1) {
          const i = 1 + rng.int(lines.length - 1);
          lines[i] = rng.int(2) ? lines[i].toUpperCase() : lines[i].replace(':', rng.pick([' :', ':\t', ':\r\n ', '\t:', '::']));
          ops.push(`rewrite line ${i}`);
        }
        s = lines.join('\r\n') + (head > 0 ? s.slice(head) : '');
        break;
      }
      default: { s = s + PROBE; ops.push('append probe'); }
    }
  }
  return { bytes: B(s), ops };
}

/**
 * `count` seeded mutations, named by seed and index so a failure can be regenerated. Half start
 * from a valid request (BASES), half from a hand-built case (named in the mutation's name).
 */
export function mutations(seed: number, count: number): Case[] {
  const rng = new Rng(seed);
  const hand = handwritten();
  const out: Case[] = [];
  for (let i = 0; i < count; i++) {
    if (rng.int(2) === 0) {
      const base = rng.int(BASES.length);
      const m = mutate(rng, BASES[base]);
      out.push({ name: `mutation seed=${seed} #${i} base ${base}: ${m.ops.join(', ')}`, bytes: m.bytes });
    } else {
      const c = hand[rng.int(hand.length)];
      const m = mutate(rng, c.bytes.toString('latin1'));
      out.push({ name: `mutation seed=${seed} #${i} of '${c.name}': ${m.ops.join(', ')}`, bytes: m.bytes });
    }
  }
  return out;
}
