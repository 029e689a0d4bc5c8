import { connect } from 'node:net';
import { connect as tlsConnect } from 'node:tls';

/**
 * Does an HTTP server answer at host:port? One request on a new connection, `Connection: close`;
 * "answers" = the first bytes back are an HTTP/1.x status line, whatever the status (a 503 from a
 * proxy whose backends are all down is still a proxy that serves). Never throws.
 *
 * Why not a TCP connect alone: the kernel completes the handshake for a process that is stopped or
 * stuck (the listen backlog), so only an application answer proves a live data plane.
 *
 * Used by the HA node twice: the backup asks the VIP before claiming it (is there a live master
 * behind the ARP answer?), and every node asks its own listeners (is my data plane answering?).
 */
export interface Answer { ok: boolean; ms: number; err?: string }

/** `tls`: the listener terminates TLS; any certificate is accepted (the question is "does it serve"). */
export function httpAnswers(host: string, port: number, path: string, timeoutMs: number, tls = false): Promise<Answer> {
  return new Promise((resolve) => {
    const t0 = performance.now();
    let done = false;
    let got = '';
    const sock = tls ? tlsConnect({ host, port, rejectUnauthorized: false, ALPNProtocols: ['http/1.1'] }) : connect({ host, port });
    const finish = (ok: boolean, err?: string): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      sock.destroy();
      resolve({ ok, ms: Math.round(performance.now() - t0), err });
    };
    const timer = setTimeout(() => finish(false, got ? 'no status line' : 'timeout'), timeoutMs);
    const hostHeader = host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
    sock.on(tls ? 'secureConnect' : 'connect', () => {
      sock.write(`GET ${path} HTTP/1.1\r\nHost: ${hostHeader}\r\nUser-Agent: pairlb-ha-check\r\nConnection: close\r\n\r\n`);
    });
    sock.setEncoding('latin1');
    sock.on('data', (d: string) => {
      got += d;
      if (got.length >= 12) { const ok = /^HTTP\/1\.[01] \d{3}/.test(got); finish(ok, ok ? undefined : 'not HTTP'); }
    });
    sock.on('end', () => finish(false, got ? 'short answer' : 'closed without an answer'));
    sock.on('error', (e: NodeJS.ErrnoException) => finish(false, e.code ?? e.message));
  });
}
