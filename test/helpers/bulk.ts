import { Readable } from 'node:stream';
import { connect, createServer, type Server, type Socket } from 'node:net';

/** One 256 KiB chunk of 'a's: the unit every bulk body in the tests is made of (no per-chunk allocation). */
export const CHUNK = Buffer.alloc(256 * 1024, 97);

/** A body of `total` bytes of CHUNK, streamed with backpressure (nothing buffered beyond a chunk). */
export function zeros(total: number): Readable {
  let sent = 0;
  return new Readable({
    read() {
      if (sent >= total) { this.push(null); return; }
      const n = Math.min(CHUNK.length, total - sent);
      sent += n;
      this.push(n === CHUNK.length ? CHUNK : CHUNK.subarray(0, n));
    },
  });
}

/**
 * A TCP bulk server. The client's first line says what to do: "down N" (the server sends N bytes,
 * then FIN) or "up N" (it counts what it gets until the client's FIN and answers the count).
 * Not listening yet: call `listen`.
 */
export function bulkServer(): Server {
  return createServer({ allowHalfOpen: true }, (sock) => {
    sock.on('error', () => {});
    let head = '';
    const onHead = (d: Buffer) => {
      head += d.toString('latin1');
      const eol = head.indexOf('\n');
      if (eol < 0) return;
      sock.off('data', onHead);
      const [cmd, n] = head.slice(0, eol).split(' ');
      const total = Number(n);
      if (cmd === 'down') {
        sendThenEnd(sock, total);
      } else {
        let got = head.length - eol - 1;
        sock.on('data', (x: Buffer) => { got += x.length; });
        sock.on('end', () => sock.end(String(got)));
      }
    };
    sock.on('data', onHead);
  });
}

/** Write `total` bytes of CHUNK to `sock` with backpressure (waits for 'drain'), then FIN. */
export function sendThenEnd(sock: Socket, total: number): void {
  let sent = 0;
  const pump = () => {
    while (sent < total) {
      const k = Math.min(CHUNK.length, total - sent);
      sent += k;
      if (!sock.write(k === CHUNK.length ? CHUNK : CHUNK.subarray(0, k))) { sock.once('drain', pump); return; }
    }
    sock.end();
  };
  pump();
}

/** A bulkServer's "up N" through `port`: send N bytes then FIN, resolve with the count it answered. */
export function bulkUpload(port: number, total: number): Promise<string> {
  return new Promise((ok, fail) => {
    const c = connect({ port, host: '127.0.0.1', allowHalfOpen: true });
    let answer = '';
    c.on('error', fail);
    c.on('data', (d: Buffer) => { answer += d.toString(); });
    c.on('end', () => { c.end(); ok(answer); });
    c.write(`up ${total}\n`);
    sendThenEnd(c, total);
  });
}
