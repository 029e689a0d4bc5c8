import { FRONT_OF } from '../helpers/app.js';
import { afterEach, describe, expect, it } from 'vitest';
import { createServer, type IncomingMessage } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { RawClient, startAppLogged, waitUntil } from './stream-helpers.js';

/**
 * Issue 10 item 4: WebSocket / Upgrade smuggling. A tunnel is opened only on a 101 that switches to
 * the protocol the client asked for; any other answer is a normal response and the connection goes
 * on being parsed as HTTP by pairlb (spoofed X-Forwarded-For rewritten, CL+TE refused), so bytes
 * sent after an Upgrade request can never reach a backend unparsed. Tunnels close when idle for
 * `timeouts.tunnel`, are counted, and get an access-log line when they close.
 */

type Mode = 'refuse-200' | 'echo-101' | 'wrong-101' | 'no-connection-101' | 'silent';

interface Seen { method: string; url: string; headers: IncomingMessage['headers']; body: string }

const UPGRADE = 'GET /ws HTTP/1.1\r\nHost: app.example\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nX-Forwarded-For: 6.6.6.6\r\n\r\n';

describe.each(['undici', 'native'])('Upgrade requests (engine %s)', (engine) => {
  const cleanups: (() => Promise<void>)[] = [];
  afterEach(async () => { while (cleanups.length) await cleanups.pop()!(); });

  /**
   * A real node:http backend: plain requests are recorded in `seen`; Upgrade requests in
   * `upgrades`, with every byte that arrives on their connection after the head in `after`.
   */
  async function setup(mode: Mode, extra = '') {
    const seen: Seen[] = [];
    const upgrades: { headers: IncomingMessage['headers']; after: string; sock: Socket; closed: boolean }[] = [];
    const backend = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (d: Buffer) => chunks.push(d));
      req.on('end', () => {
        if (req.url !== '/health') seen.push({ method: req.method!, url: req.url!, headers: req.headers, body: Buffer.concat(chunks).toString() });
        const body = `plain ${req.method} ${req.url}`;
        res.writeHead(200, { 'content-type': 'text/plain', 'content-length': body.length });
        res.end(body);
      });
    });
    backend.on('upgrade', (req: IncomingMessage, sock: Socket, head: Buffer) => {
      const u = { headers: req.headers, after: head.toString('latin1'), sock, closed: false };
      upgrades.push(u);
      sock.on('error', () => {});
      sock.on('close', () => { u.closed = true; });
      sock.on('end', () => sock.end());
      if (mode === 'refuse-200') {
        // Not switching: a normal response, and the connection is kept open, so that anything
        // pairlb relayed raw after it would show up in `after`.
        sock.on('data', (d: Buffer) => { u.after += d.toString('latin1'); });
        sock.write('HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 7\r\n\r\nnot now');
        return;
      }
      if (mode === 'silent') return; // never answers
      if (mode === 'wrong-101') sock.write('HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n');
      else if (mode === 'no-connection-101') sock.write('HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n');
      else {
        // The greeting goes in the same segment as the 101: the engines must not lose it.
        sock.write('HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\nhello from backend;');
      }
      sock.on('data', (d: Buffer) => { u.after += d.toString('latin1'); if (mode === 'echo-101') sock.write(d.toString('latin1').toUpperCase()); });
    });
    await new Promise<void>((ok) => backend.listen(0, '127.0.0.1', () => ok()));
    cleanups.push(() => new Promise<void>((ok) => { for (const u of upgrades) u.sock.destroy(); backend.close(() => ok()); backend.closeAllConnections(); }));
    const bport = (backend.address() as AddressInfo).port;
    const p = await startAppLogged(`listen:
  - name: web
    bind: 127.0.0.1:0
    engine: ${engine}
    timeouts:
      tunnel: 1s
      client: 2s
${extra}    backends:
      - name: a
        address: 127.0.0.1:${bport}
        check: false
stats:
  bind: 127.0.0.1:0
`, FRONT_OF[engine]);
    cleanups.push(() => p.stop());
    const client = () => { const c = new RawClient(p.port()); cleanups.push(async () => c.destroy()); return c; };
    const lc = p.app.counters.listen('web');
    const bc = p.app.counters.backend(p.app.backends.backends('web')[0].id);
    return { seen, upgrades, p, client, lc, bc };
  }

  it('backend answers 200: the client gets the 200, the request sent right behind it in the same write is parsed by pairlb (XFF rewritten), a CL+TE one gets 400', async () => {
    const { seen, upgrades, client } = await setup('refuse-200');
    const c = client();
    await c.write(UPGRADE + 'GET /next HTTP/1.1\r\nHost: app.example\r\nX-Forwarded-For: 6.6.6.6\r\n\r\n');
    const rs = await c.waitResponses(2);
    expect(rs[0].status).toBe(200);
    expect(rs[0].body).toBe('not now');
    expect(rs[1].status).toBe(200);
    expect(rs[1].body).toBe('plain GET /next');
    // The Upgrade request itself was rewritten as any proxied request.
    expect(upgrades).toHaveLength(1);
    expect(upgrades[0].headers['x-forwarded-for']).toBe('6.6.6.6, 127.0.0.1');
    expect(upgrades[0].headers.upgrade).toBe('websocket');
    // The second request reached the backend as a parsed request: the client's XFF got our address
    // appended, and nothing at all went down the Upgrade request's connection.
    expect(seen.map((x) => `${x.method} ${x.url}`)).toEqual(['GET /next']);
    expect(seen[0].headers['x-forwarded-for']).toBe('6.6.6.6, 127.0.0.1');
    expect(seen[0].headers['x-forwarded-proto']).toBe('http');
    expect(upgrades[0].after).toBe('');

    // Still HTTP: CL+TE is refused by pairlb's parser and never forwarded.
    await c.write('POST /smuggle HTTP/1.1\r\nHost: app.example\r\nContent-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nX');
    const rs2 = await c.waitResponses(3);
    expect(rs2[2].status).toBe(400);
    await c.waitClosed();
    expect(seen.map((x) => x.url)).toEqual(['/next']);
    expect(upgrades[0].after).toBe('');

    // Another client is served.
    const o = client();
    await o.write('GET /other HTTP/1.1\r\nHost: app.example\r\n\r\n');
    expect((await o.waitResponses(1))[0].body).toBe('plain GET /other');
  });

  it('backend answers 200: a CL+TE request in the same write as the Upgrade gets 400 and never reaches the backend', async () => {
    const { seen, upgrades, client } = await setup('refuse-200');
    const c = client();
    await c.write(UPGRADE + 'POST /smuggle HTTP/1.1\r\nHost: app.example\r\nContent-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /admin HTTP/1.1\r\nHost: app.example\r\n\r\n');
    const rs = await c.waitResponses(2);
    expect(rs.map((r) => r.status)).toEqual([200, 400]);
    await c.waitClosed();
    expect(seen).toEqual([]);
    expect(upgrades).toHaveLength(1);
    expect(upgrades[0].after).toBe('');
  });

  it('50 refused Upgrades in one write on one connection: 50 answers in order, then a plain request; no listener piles up on the socket', async () => {
    const { seen, upgrades, client } = await setup('refuse-200');
    const warnings: string[] = [];
    const onWarning = (w: Error) => { warnings.push(w.name); };
    process.on('warning', onWarning);
    cleanups.push(async () => { process.off('warning', onWarning); });
    const c = client();
    await c.write(UPGRADE.repeat(50) + 'GET /last HTTP/1.1\r\nHost: app.example\r\n\r\n');
    const rs = await c.waitResponses(51);
    expect(rs.slice(0, 50).every((r) => r.status === 200 && r.body === 'not now')).toBe(true);
    expect(rs[50].body).toBe('plain GET /last');
    expect(upgrades).toHaveLength(50);
    expect(upgrades.every((u) => u.after === '')).toBe(true);
    expect(seen.map((x) => x.url)).toEqual(['/last']);
    expect(warnings).not.toContain('MaxListenersExceededWarning');
  });

  it('a connection handed back after a refused Upgrade and left idle is closed after timeouts.client (2 s)', async () => {
    const { client } = await setup('refuse-200');
    const c = client();
    await c.write(UPGRADE);
    await c.waitResponses(1);
    const t0 = performance.now();
    await c.waitClosed(15_000);
    // The idle timer runs from the proxy's write of the response; on a loaded machine the client
    // reads it some 100s of ms later (1857 ms seen at load 20). Not closed at once is the point.
    expect(performance.now() - t0).toBeGreaterThanOrEqual(1000);
  });

  for (const mode of ['wrong-101', 'no-connection-101'] as const) {
    it(`a 101 that does not switch to the protocol asked for (${mode === 'wrong-101' ? 'Upgrade: h2c to a websocket request' : 'no Connection: upgrade'}) is refused: 502, no tunnel, the connection goes on as HTTP`, async () => {
      const { seen, upgrades, client, lc, bc } = await setup(mode);
      const c = client();
      await c.write(UPGRADE + 'GET /next HTTP/1.1\r\nHost: app.example\r\nX-Forwarded-For: 6.6.6.6\r\n\r\n');
      const rs = await c.waitResponses(2);
      expect(rs[0].status).toBe(502);
      expect(rs[1].body).toBe('plain GET /next');
      expect(seen[0].headers['x-forwarded-for']).toBe('6.6.6.6, 127.0.0.1');
      // pairlb closed the backend connection that claimed to switch; nothing was relayed on it.
      await waitUntil(() => upgrades[0].closed, 5000, 'the backend connection to close');
      expect(upgrades[0].after).toBe('');
      expect(lc.tunnels).toBe(0);
      expect(bc.errResp).toBe(1);
    });
  }

  it('a real 101: the tunnel relays both ways (including bytes in the same segment as the 101), is counted, and logged when it closes', async () => {
    const { upgrades, client, lc, bc, p } = await setup('echo-101');
    const c = client();
    await c.write(UPGRADE);
    await waitUntil(() => c.text().includes('hello from backend;'), 10_000, 'the 101 and the greeting');
    expect(c.text()).toMatch(/^HTTP\/1.1 101 Switching Protocols\r\n/);
    expect(c.text()).toContain('Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=');
    expect(lc.tunnels).toBe(1);
    expect(lc.tunnelsCur).toBe(1);
    expect(bc.tunnelsCur).toBe(1);
    // Visible in /metrics (and the page, CSV, JSON: one table of columns).
    const stats = p.app.modules.find((m) => m.name === 'stats') as unknown as { address(): { port: number } };
    const metrics = await (await fetch(`http://127.0.0.1:${stats.address().port}/metrics`)).text();
    expect(metrics).toMatch(/^pairlb_listen_current_tunnels\{[^}]*listen="web"[^}]*\} 1$/m);
    expect(metrics).toMatch(/^pairlb_backend_tunnels_total\{[^}]*backend="a"[^}]*\} 1$/m);
    // Bytes that look like HTTP go through untouched: inside a tunnel they are the new protocol's.
    await c.write('ping GET / HTTP/1.1\r\n');
    await waitUntil(() => c.text().includes('PING GET / HTTP/1.1'), 10_000, 'the echo');
    expect(upgrades[0].after).toBe('ping GET / HTTP/1.1\r\n');
    const sentBefore = c.sock.bytesWritten;
    c.sock.end();
    await c.waitClosed();
    await waitUntil(() => lc.tunnelsCur === 0, 5000, 'the tunnel to be closed');
    await waitUntil(() => upgrades[0].closed, 5000, 'the backend side to close');
    expect(bc.tunnelsCur).toBe(0);
    await waitUntil(() => p.access().some((j) => j.uri === '/ws'), 5000, 'the access-log line');
    const line = p.access().find((j) => j.uri === '/ws')!;
    expect(line).toMatchObject({ status: 101, termination: '--', server: 'a', method: 'GET' });
    // Wire bytes, the 101's head included: everything the client received.
    expect(line.bytes_read).toBe(Buffer.byteLength(c.text(), 'latin1'));
    expect(line.bytes_in).toBe(sentBefore);
    expect(typeof line.Ta).toBe('number');
  });

  it('bytes sent in the same write as the Upgrade request are held until the 101, then go into the tunnel', async () => {
    const { upgrades, client } = await setup('echo-101');
    const c = client();
    await c.write(UPGRADE + 'early bytes');
    await waitUntil(() => c.text().includes('EARLY BYTES'), 10_000, 'the echo of the early bytes');
    expect(upgrades[0].after).toBe('early bytes');
    expect(c.text().indexOf('101 Switching Protocols')).toBeLessThan(c.text().indexOf('EARLY BYTES'));
  });

  it('an Upgrade request in HTTP/1.0 is served as a plain request (RFC 9110 §7.8: Upgrade ignored)', async () => {
    const { seen, upgrades, client } = await setup('echo-101');
    const c = client();
    await c.write(UPGRADE.replace('HTTP/1.1', 'HTTP/1.0'));
    const [r] = await c.waitResponses(1);
    expect(r.body).toBe('plain GET /ws');
    await c.waitClosed();
    expect(upgrades).toHaveLength(0);
    expect(seen).toHaveLength(1);
    expect(seen[0].headers.upgrade).toBeUndefined();
    expect(seen[0].headers['x-forwarded-for']).toBe('6.6.6.6, 127.0.0.1');
  });

  it('a client that goes away while the backend has not answered its Upgrade: the backend connection is closed, nothing left counted', async () => {
    const { upgrades, client, lc, bc, p } = await setup('silent');
    const c = client();
    await c.write(UPGRADE);
    await waitUntil(() => upgrades.length === 1, 10_000, 'the backend to get the Upgrade');
    expect(lc.cur).toBe(1);
    c.destroy();
    await waitUntil(() => upgrades[0].closed, 10_000, 'the backend connection to close');
    await waitUntil(() => lc.cur === 0 && bc.cur === 0, 5000, 'the session to end');
    await waitUntil(() => p.access().some((j) => j.uri === '/ws'), 5000, 'the access-log line');
    expect(p.access().find((j) => j.uri === '/ws')).toMatchObject({ termination: 'CH' });
    expect(lc.tunnels).toBe(0);
    expect(bc.errResp).toBe(0);
  });

  it('an idle tunnel is closed after timeouts.tunnel (1 s); traffic keeps it open', async () => {
    const { upgrades, client, lc, p } = await setup('echo-101');
    // Busy: a byte every 200 ms for 2 s (twice the timeout): stays open (then closed by the client: --).
    const busy = client();
    await busy.write(UPGRADE);
    await waitUntil(() => busy.text().includes('hello from backend;'), 10_000, 'the 101');
    for (let i = 0; i < 10; i++) {
      await new Promise((r) => setTimeout(r, 200));
      await busy.write('x');
    }
    expect(busy.closed).toBe(false);
    await waitUntil(() => busy.text().endsWith('XXXXXXXXXX'), 5000, 'the echoes');
    busy.destroy();
    await waitUntil(() => lc.tunnelsCur === 0, 5000, 'the busy tunnel to close');

    const idle = client();
    await idle.write(UPGRADE);
    await waitUntil(() => idle.text().includes('hello from backend;'), 10_000, 'the 101');
    const t0 = performance.now();
    await idle.waitClosed(15_000);
    // From the client's (polled) sight of the 101, which lags the proxy's write on a loaded machine
    // (934 ms seen at load 20): not closed at once is what is asserted; the upper side is the wait's.
    expect(performance.now() - t0).toBeGreaterThanOrEqual(500);
    await waitUntil(() => upgrades[1].closed, 5000, 'the backend side to close');
    expect(lc.tunnelsCur).toBe(0);
    await waitUntil(() => p.access().filter((j) => j.uri === '/ws').length === 2, 5000, 'the access-log lines');
    expect(p.access().filter((j) => j.uri === '/ws').map((j) => j.termination)).toEqual(['--', 'cD']);
  });

  it('an Upgrade request behind a pipelined request waits for it; a tunnel follows', async () => {
    const { seen, client } = await setup('echo-101');
    const c = client();
    await c.write('GET /first HTTP/1.1\r\nHost: app.example\r\n\r\n' + UPGRADE);
    await waitUntil(() => c.text().includes('hello from backend;'), 10_000, 'the 101');
    const t = c.text();
    expect(t.indexOf('plain GET /first')).toBeGreaterThan(0);
    expect(t.indexOf('plain GET /first')).toBeLessThan(t.indexOf('101 Switching Protocols'));
    expect(seen.map((x) => x.url)).toEqual(['/first']);
    await c.write('abc');
    await waitUntil(() => c.text().endsWith('ABC'), 10_000, 'the echo');
  });

  it('a WebSocket handshake without a valid Sec-WebSocket-Key, or an Upgrade without Host, is refused with 400 before any backend (as HAProxy)', async () => {
    const { seen, upgrades, client, lc } = await setup('echo-101');
    for (const bad of [
      'GET /ws HTTP/1.1\r\nHost: app.example\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: app.example\r\n\r\n',
      'GET /ws HTTP/1.1\r\nHost: app.example\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Key: short\r\n\r\n',
      'GET /ws HTTP/1.1\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n',
    ]) {
      const c = client();
      await c.write(bad);
      const rs = await c.waitResponses(1);
      expect(rs.map((r) => r.status)).toEqual([400]);
      await c.waitClosed();
      expect(c.responses()).toHaveLength(1);
    }
    expect(seen).toEqual([]);
    expect(upgrades).toEqual([]);
    expect(lc.errReq).toBeGreaterThanOrEqual(2);
  });

  it('an Upgrade request with a body is served as a plain request (Upgrade ignored), and so is what follows it', async () => {
    const { seen, upgrades, client } = await setup('echo-101');
    const c = client();
    await c.write('POST /up HTTP/1.1\r\nHost: app.example\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAAP__\r\nContent-Length: 5\r\n\r\nhelloGET /next HTTP/1.1\r\nHost: app.example\r\nX-Forwarded-For: 6.6.6.6\r\n\r\n');
    const rs = await c.waitResponses(2);
    expect(rs.map((r) => r.body)).toEqual(['plain POST /up', 'plain GET /next']);
    expect(upgrades).toHaveLength(0);
    expect(seen.map((x) => `${x.method} ${x.url} ${x.body}`)).toEqual(['POST /up hello', 'GET /next ']);
    expect(seen[0].headers.upgrade).toBeUndefined();
    expect(seen[0].headers['http2-settings']).toBeUndefined();
    expect(seen[1].headers['x-forwarded-for']).toBe('6.6.6.6, 127.0.0.1');
  });
});
