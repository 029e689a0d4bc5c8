import type { Readable } from 'node:stream';
import type { ClientHttp2Session, IncomingHttpHeaders, OutgoingHttpHeaders } from 'node:http2';

export interface H2Answer { status: number; headers: IncomingHttpHeaders; body: string }

/**
 * One request on a node:http2 client session, the whole answer collected. `body`: none (the
 * HEADERS end the stream), a string or a stream to send, or `null` to leave the request open (the
 * test ends or resets it).
 */
export function h2Request(s: ClientHttp2Session, h: OutgoingHttpHeaders, body?: string | Readable | null): Promise<H2Answer> {
  return new Promise((ok, fail) => {
    const st = s.request(h, { endStream: body === undefined });
    let out = '';
    let head: IncomingHttpHeaders = {};
    st.on('response', (x) => { head = x; });
    st.on('data', (d) => { out += d; });
    st.on('end', () => ok({ status: Number(head[':status']), headers: head, body: out }));
    st.on('error', fail);
    if (typeof body === 'string') st.end(body);
    else if (body) body.pipe(st);
  });
}
