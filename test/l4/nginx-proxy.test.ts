import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execFileSync } from 'node:child_process';
import { ensurePackages } from '../helpers/sys.js';
import { startApp } from '../helpers/app.js';
import { RawClient } from '../helpers/raw-http.js';
import { startAppLogged } from '../edge/stream-helpers.js';
import { closedPort, TcpClient, waitFor } from './helpers.js';

/**
 * send_proxy against the real nginx (Debian nginx-light, `listen ... proxy_protocol`): nginx sees
 * the client's address in $proxy_protocol_addr, for v1 and v2, and pairlb's HTTP health checks
 * (which start with a v2 LOCAL header) pass against it. The client's address is set with an
 * accept_proxy header, so it differs from the loopback address nginx sees as the peer.
 */
let dir: string;
let nginx: ChildProcess;
const ports = { v1: 0, v2: 0 };
let p: Awaited<ReturnType<typeof startAppLogged>>;
/** Mode http with send_proxy: undici (listen, server-level v1) and native (backends pool default v2). */
let h: Awaited<ReturnType<typeof startApp>>;

beforeAll(async () => {
  ensurePackages(['nginx-light']);
  dir = mkdtempSync(join(tmpdir(), 'pairlb-nginx-pp-'));
  ports.v1 = await closedPort();
  ports.v2 = await closedPort();
  writeFileSync(join(dir, 'nginx.conf'), `daemon off;
worker_processes 1;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log warn;
events { worker_connections 64; }
http {
  access_log off;
  client_body_temp_path ${dir}; proxy_temp_path ${dir}; fastcgi_temp_path ${dir}; uwsgi_temp_path ${dir}; scgi_temp_path ${dir};
  server {
    listen 127.0.0.1:${ports.v1} proxy_protocol;
    listen 127.0.0.1:${ports.v2} proxy_protocol;
    location / { return 200 "client=$proxy_protocol_addr:$proxy_protocol_port peer=$remote_addr\\n"; }
    location /h { return 200 "client=$proxy_protocol_addr xff=$http_x_forwarded_for peer_port=$remote_port conn=$connection\\n"; }
  }
}
`);
  nginx = spawn('/usr/sbin/nginx', ['-c', join(dir, 'nginx.conf'), '-p', dir], { stdio: 'ignore' });
  p = await startAppLogged(`listen:
  - name: pp
    bind: 127.0.0.1:0
    mode: tcp
    accept_proxy:
      from: [127.0.0.1]
    check:
      type: http
      interval: 200ms
      rise: 1
    backends:
      - name: v1
        address: 127.0.0.1:${ports.v1}
        send_proxy: v1
      - name: v2
        address: 127.0.0.1:${ports.v2}
        send_proxy: v2
`);
  h = await startApp(`global:
  log:
    access: off
listen:
  - name: web-undici
    bind: 127.0.0.1:0
    check:
      interval: 200ms
      rise: 1
    backends:
      - name: ng
        address: 127.0.0.1:${ports.v1}
        send_proxy: v1
frontends:
  - name: web-native
    bind: 127.0.0.1:0
    default_backend: pn
backends:
  - name: pn
    engine: native
    send_proxy: v2
    check:
      interval: 200ms
      rise: 1
    servers:
      - name: ng
        address: 127.0.0.1:${ports.v2}
`);
}, 60_000);

afterAll(async () => {
  await h?.stop();
  await p?.stop();
  if (nginx && nginx.exitCode === null) { nginx.kill('SIGTERM'); await new Promise((ok) => nginx.once('exit', ok)); }
  rmSync(dir, { recursive: true, force: true });
});

describe('send_proxy to the real nginx', () => {
  it('health checks with a PROXY header pass (L7OK); nginx sees the client of each connection, v1 and v2', async () => {
    await waitFor(() => ['v1', 'v2'].every((n) => p.app.backends.get('pp', n)?.lastCheck?.code === 'L7OK'), 15_000, 'both servers checked L7OK');
    const seen: string[] = [];
    for (let i = 0; i < 2; i++) {
      const c = new TcpClient(p.port());
      c.write(`PROXY TCP4 203.0.113.${i + 7} 198.51.100.1 4${i}000 25\r\nGET / HTTP/1.0\r\nHost: x\r\n\r\n`);
      await c.until(() => c.ended, 5000, 'nginx answer');
      c.destroy();
      seen.push(c.text.slice(c.text.indexOf('\r\n\r\n') + 4));
    }
    expect(seen.sort()).toEqual(['client=203.0.113.7:40000 peer=127.0.0.1\n', 'client=203.0.113.8:41000 peer=127.0.0.1\n']);
    await waitFor(() => p.access().length === 2);
    expect(p.access().map((l) => l.server).sort()).toEqual(['v1', 'v2']);
  });
});

/**
 * Established TCP connections from 127.0.0.1:port to nginx (pairlb's side of an upstream
 * connection). The destination matters: Linux gives one ephemeral port to several connections
 * with different destinations.
 */
function established(port: number, to: number): number {
  return execFileSync('ss', ['-tnH', 'state', 'established', 'src', `127.0.0.1:${port}`, 'dst', `127.0.0.1:${to}`], { encoding: 'utf8' }).split('\n').filter((l) => l.trim() !== '').length;
}

async function untilTrue(cond: () => boolean, ms: number, what: string): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timeout waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe('send_proxy in mode http to the real nginx (listen ... proxy_protocol)', () => {
  const GET = (path: string) => `GET ${path} HTTP/1.1\r\nHost: site\r\n\r\n`;
  const parse = (body: string) => Object.fromEntries(body.trim().split(' ').map((kv) => kv.split('=')));

  it.each([['web-undici', 'undici, listen, server send_proxy v1'], ['web-native', 'native, backends pool send_proxy v2']])('%s (%s): each keep-alive client on its own upstream connection, with its own address; closed with it', async (fe) => {
    const pool = fe === 'web-undici' ? 'web-undici' : 'pn';
    const ng = fe === 'web-undici' ? ports.v1 : ports.v2;
    // The checks start with a PROXY header (v2 LOCAL / v1 UNKNOWN): nginx refuses a connection without one.
    await untilTrue(() => h.app.backends.get(pool, 'ng')?.lastCheck?.code === 'L7OK', 15_000, 'nginx checked L7OK');
    const a = new RawClient(h.port(fe), '127.0.0.2');
    const b = new RawClient(h.port(fe), '127.0.0.3');
    try {
      const seen: Record<string, string>[] = [];
      // Interleaved: a, b, a, b, each on its keep-alive connection.
      for (const [c, path] of [[a, '/h/a1'], [b, '/h/b1'], [a, '/h/a2'], [b, '/h/b2']] as const) {
        c.send(GET(path));
        const r = (await c.next())!;
        expect(r.status).toBe(200);
        seen.push(parse(r.body));
      }
      const [a1, b1, a2, b2] = seen;
      // nginx sees each request's own client in the PROXY header, and X-Forwarded-For agrees.
      expect([a1.client, a2.client, b1.client, b2.client]).toEqual(['127.0.0.2', '127.0.0.2', '127.0.0.3', '127.0.0.3']);
      expect([a1.xff, a2.xff, b1.xff, b2.xff]).toEqual(['127.0.0.2', '127.0.0.2', '127.0.0.3', '127.0.0.3']);
      // A client's requests share its connection; the two clients never share one.
      expect(a2.conn).toBe(a1.conn);
      expect(b2.conn).toBe(b1.conn);
      expect(a1.conn).not.toBe(b1.conn);
      expect(established(Number(a1.peer_port), ng)).toBe(1);
      // a closes: its upstream connection closes; b's stays and still serves b.
      a.destroy();
      await untilTrue(() => established(Number(a1.peer_port), ng) === 0, 5000, "a's upstream connection closed");
      expect(established(Number(b1.peer_port), ng)).toBe(1);
      b.send(GET('/h/b3'));
      const b3 = parse((await b.next())!.body);
      expect([b3.client, b3.conn]).toEqual(['127.0.0.3', b1.conn]);
      // A new client from a's address gets a new connection, never a's old one.
      const a3c = new RawClient(h.port(fe), '127.0.0.2');
      a3c.send(GET('/h/a3'));
      const a3 = parse((await a3c.next())!.body);
      a3c.destroy();
      expect(a3.client).toBe('127.0.0.2');
      expect([a1.conn, b1.conn]).not.toContain(a3.conn);
      b.destroy();
      await untilTrue(() => established(Number(b1.peer_port), ng) === 0, 5000, "b's upstream connection closed");
    } finally { a.destroy(); b.destroy(); }
  });
});
