import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ensurePackages } from '../helpers/sys.js';
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
}, 60_000);

afterAll(async () => {
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
