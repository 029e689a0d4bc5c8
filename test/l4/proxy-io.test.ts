import { afterEach, describe, expect, it } from 'vitest';
import { startAppLogged } from '../edge/stream-helpers.js';
import { startBackend } from '../helpers/backend.js';
import { encodeProxyHeader, V2_LOCAL, V2_SIG } from '../../src/l4/proxy-protocol.js';
import { tcpBackend, TcpClient, waitFor, type TcpBackend } from './helpers.js';
import { RawClient } from '../helpers/raw-http.js';

/**
 * PROXY protocol on real sockets: raw bytes in (accept_proxy, modes tcp and http), exactly what
 * the server received (send_proxy), what the client got, refusals counted, and a good client
 * served right after a bad one.
 */
const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => { for (const c of cleanups.splice(0).reverse()) await c(); });

async function backend(name: string, mode: 'greet' | 'silent' | 'echo' = 'greet'): Promise<TcpBackend> {
  const b = await tcpBackend(name, mode);
  cleanups.push(() => b.close());
  return b;
}
async function app(text: string) {
  const p = await startAppLogged(text);
  cleanups.push(() => p.stop());
  return p;
}
function client(port: number): TcpClient {
  const c = new TcpClient(port);
  cleanups.push(() => c.destroy());
  return c;
}
const tcpYaml = (addr: string, extra: string, server = '') => `listen:
  - name: mail
    bind: 127.0.0.1:0
    mode: tcp
${extra}    backends:
      - name: a
        address: ${addr}
        check: false
${server}`;

describe('accept_proxy + send_proxy, mode tcp', () => {
  it('the header\'s client reaches the server in its own PROXY v1 header, byte for byte, whole or split in 1-byte writes', async () => {
    const a = await backend('a', 'silent');
    const p = await app(tcpYaml(a.address, '    accept_proxy:\n      from: [127.0.0.0/8]\n    send_proxy: v1\n'));
    const header = 'PROXY TCP4 192.0.2.1 198.51.100.7 12345 25\r\n';
    const c1 = client(p.port());
    c1.write(header + 'HELO x\r\n');
    await waitFor(() => a.received[0]?.length === 44 + 8, 5000, 'server bytes');
    expect(a.received[0].toString()).toBe(header + 'HELO x\r\n');
    const c2 = client(p.port());
    for (const ch of header + 'NOOP\r\n') { c2.write(ch); await new Promise((r) => setImmediate(r)); }
    await waitFor(() => a.received[1]?.length === 44 + 6, 5000, 'server bytes (split)');
    expect(a.received[1].toString()).toBe(header + 'NOOP\r\n');
    c1.sock.end(); c2.sock.end();
    await waitFor(() => p.access().length === 2, 5000, 'access lines');
    expect(p.access().map((l) => [l.client, l.client_port, l.bytes_in])).toEqual([['192.0.2.1', 12345, 8], ['192.0.2.1', 12345, 6]]);
  });

  it('send_proxy v2 without accept_proxy: the server gets the binary header of the real client and bind address', async () => {
    const a = await backend('a', 'silent');
    const p = await app(tcpYaml(a.address, '', '        send_proxy: v2\n'));
    const c = client(p.port());
    await new Promise<void>((ok) => c.sock.once('connect', () => ok()));
    c.write('x');
    const want = encodeProxyHeader(2, { address: '127.0.0.1', port: c.sock.localPort! }, { address: '127.0.0.1', port: p.port() });
    await waitFor(() => a.received[0]?.length === want.length + 1, 5000, 'header + 1 byte');
    expect(a.received[0].equals(Buffer.concat([want, Buffer.from('x')]))).toBe(true);
    expect(want.subarray(0, 12).equals(V2_SIG)).toBe(true);
  });

  it('garbage, a v2 header with a bad version, an oversized one, a truncated one (timeout) and an untrusted source are refused, counted, and reach no server; the next good client is served', async () => {
    const a = await backend('a');
    const p = await app(tcpYaml(a.address, '    accept_proxy:\n      from: [127.0.0.0/8]\n      timeout: 300ms\n'));
    const lc = p.app.counters.listen('mail');
    const bad: Buffer[] = [
      Buffer.from('HELO x\r\n'),
      (() => { const h = Buffer.alloc(28); V2_SIG.copy(h); h[12] = 0x11; h[13] = 0x11; h.writeUInt16BE(12, 14); return h; })(),
      (() => { const h = Buffer.alloc(16); V2_SIG.copy(h); h[12] = 0x21; h[13] = 0x11; h.writeUInt16BE(60000, 14); return h; })(),
    ];
    for (let i = 0; i < bad.length; i++) {
      const c = client(p.port());
      c.write(bad[i]);
      await c.until(() => c.ended, 5000, `refusal ${i}`);
      expect(c.text).toBe('');
      expect(lc.proxyRefused).toBe(i + 1);
    }
    const slow = client(p.port());
    slow.write('PROXY TCP4 192.0.2.1 198.51.100.7 1');
    const t0 = Date.now();
    await slow.until(() => slow.ended, 5000, 'timeout refusal');
    expect(Date.now() - t0).toBeGreaterThanOrEqual(250);
    expect(lc.proxyRefused).toBe(4);
    expect(a.received).toHaveLength(0);
    const good = client(p.port());
    good.write('PROXY TCP4 192.0.2.9 198.51.100.7 999 25\r\n');
    await good.until(() => good.text === '220 a\r\n', 5000, 'greeting after the refusals');
    // Another pairlb whose accept_proxy trusts only 192.0.2.0/24: 127.0.0.1 is refused before a byte.
    const q = await app(tcpYaml(a.address, '    accept_proxy:\n      from: [192.0.2.0/24]\n').replace('name: mail', 'name: strict'));
    const u = client(q.port());
    u.write('PROXY TCP4 192.0.2.1 198.51.100.7 12345 25\r\n');
    await u.until(() => u.ended || u.closed, 5000, 'untrusted refusal');
    expect(q.app.counters.listen('strict').proxyRefused).toBe(1);
    expect(a.received).toHaveLength(1);
  });

  it('health checks of a send_proxy server start with a v2 LOCAL header', async () => {
    const a = await backend('a', 'silent');
    await app(`listen:
  - name: mail
    bind: 127.0.0.1:0
    mode: tcp
    send_proxy: v2
    check:
      interval: 100ms
    backends:
      - name: a
        address: ${a.address}
`);
    await waitFor(() => a.received.some((r) => r.length >= 16), 5000, 'a check connection with bytes');
    expect(a.received.find((r) => r.length >= 16)!.equals(V2_LOCAL)).toBe(true);
  });
});

describe('accept_proxy, mode http', () => {
  it('X-Forwarded-For and the access log carry the header\'s client, for each request on the connection; no header: refused, no answer; a good client next', async () => {
    const web = await startBackend('web');
    cleanups.push(() => web.close());
    const p = await app(`listen:
  - name: www
    bind: 127.0.0.1:0
    accept_proxy:
      from: [127.0.0.1]
    backends:
      - name: web
        address: ${web.address}
        check: false
`);
    const c = client(p.port());
    c.write('PROXY TCP4 203.0.113.9 198.51.100.7 5555 80\r\nGET /one HTTP/1.1\r\nHost: x\r\n\r\n');
    await c.until(() => c.text.endsWith('web'), 5000, 'first response');
    c.write('GET /two HTTP/1.1\r\nHost: x\r\nX-Forwarded-For: 6.6.6.6\r\n\r\n');
    await c.until(() => (c.text.match(/HTTP\/1.1 200/g) ?? []).length === 2 && c.text.endsWith('web'), 5000, 'second response');
    expect(web.seen.map((s) => [s.url, s.headers['x-forwarded-for']])).toEqual([['/one', '203.0.113.9'], ['/two', '6.6.6.6, 203.0.113.9']]);
    await waitFor(() => p.access().length === 2, 5000, 'access lines');
    expect(p.access().map((l) => [l.client, l.client_port])).toEqual([['203.0.113.9', 5555], ['203.0.113.9', 5555]]);
    const raw = client(p.port());
    raw.write('GET / HTTP/1.1\r\nHost: x\r\n\r\n');
    await raw.until(() => raw.ended || raw.closed, 5000, 'refusal');
    expect(raw.text).toBe('');
    expect(p.app.counters.listen('www').proxyRefused).toBe(1);
    expect(web.seen).toHaveLength(2);
    const next = client(p.port());
    next.write(encodeProxyHeader(2, { address: '2001:db8::7', port: 1 }, { address: '2001:db8::1', port: 80 }));
    next.write('GET /three HTTP/1.1\r\nHost: x\r\n\r\n');
    await next.until(() => next.text.endsWith('web'), 5000, 'v2 client');
    expect(web.seen[2].headers['x-forwarded-for']).toBe('2001:db8::7');
  });
});

describe('accept_proxy on a TLS bind', () => {
  it('the PROXY header comes before the ClientHello: XFF and the log carry its client; a source outside the CIDRs, or a ClientHello without a header, is refused and counted', async () => {
    const { makeCa, makeLeaf, pemOf } = await import('../helpers/certs.js');
    const { tempDir } = await import('../daemon/daemon.js');
    const { rmSync } = await import('node:fs');
    const { join } = await import('node:path');
    const { connect: tlsConnect } = await import('node:tls');
    const { connect } = await import('node:net');
    const dir = tempDir('l4w-tls-proxy');
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    const ca = makeCa(join(dir, 'ca'));
    const leaf = makeLeaf(ca, 'www', ['www.example.test']);
    const web = await startBackend('web');
    cleanups.push(() => web.close());
    const p = await app(`listen:
  - name: www
    bind: 127.0.0.1:0
    tls:
      certificates: [${leaf.bundle}]
    accept_proxy:
      from: [127.0.0.1/32]
    backends:
      - name: web
        address: ${web.address}
        check: false
`);
    /** TCP from `local`, optionally a PROXY header, then TLS and one request; resolves with the answer or the error. */
    const ask = (local: string, header: string | null) => new Promise<string>((ok) => {
      const raw = connect({ port: p.port(), host: '127.0.0.1', localAddress: local }, () => {
        if (header !== null) raw.write(header);
        const t = tlsConnect({ socket: raw, servername: 'www.example.test', ca: pemOf(ca.rootCert) + pemOf(ca.intCert) }, () => {
          t.write('GET /tls HTTP/1.1\r\nHost: www.example.test\r\nConnection: close\r\n\r\n');
        });
        let out = '';
        t.on('data', (d: Buffer) => { out += d.toString(); });
        t.on('end', () => ok(out));
        t.on('error', (e) => ok(`error: ${e.message}`));
      });
      raw.on('error', (e) => ok(`error: ${e.message}`));
      cleanups.push(() => raw.destroy());
    });
    const good = await ask('127.0.0.1', 'PROXY TCP4 203.0.113.7 198.51.100.1 40000 443\r\n');
    expect(good).toMatch(/^HTTP\/1.1 200/);
    expect(web.seen.map((s) => [s.url, s.headers['x-forwarded-for'], s.headers['x-forwarded-proto']])).toEqual([['/tls', '203.0.113.7', 'https']]);
    await waitFor(() => p.access().length === 1, 5000, 'access line');
    expect(p.access()[0]).toMatchObject({ client: '203.0.113.7', client_port: 40000 });
    // A good header from a source outside `from`: closed before any TLS byte is answered (the
    // client sees a reset or an end without a handshake: no answer either way).
    const untrusted = await ask('127.0.0.2', 'PROXY TCP4 203.0.113.8 198.51.100.1 40001 443\r\n');
    expect(untrusted).toMatch(/^(error: .*)?$/);
    // A ClientHello first (no header) from a trusted source: refused too.
    const bare = await ask('127.0.0.1', null);
    expect(bare).toMatch(/^(error: .*)?$/);
    expect(p.app.counters.listen('www').proxyRefused).toBe(2);
    expect(web.seen).toHaveLength(1);
    // And the next good client is served.
    expect(await ask('127.0.0.1', 'PROXY TCP4 203.0.113.9 198.51.100.1 40002 443\r\n')).toMatch(/^HTTP\/1.1 200/);
    expect(web.seen[1].headers['x-forwarded-for']).toBe('203.0.113.9');
  });
});

describe('send_proxy, mode http: exact bytes at the server', () => {
  /** Records each connection's bytes; answers every request head (no bodies here) with 200 "ok". */
  async function httpRecorder(): Promise<TcpBackend> {
    const b = await tcpBackend('h', 'silent');
    b.server.on('connection', (s) => {
      let n = 0;
      s.on('data', () => {
        const i = b.sockets.indexOf(s);
        const heads = b.received[i].toString('latin1').split('\r\n\r\n').length - 1;
        for (; n < heads; n++) s.write('HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok');
      });
    });
    cleanups.push(() => b.close());
    return b;
  }

  it.each(['undici', 'native'])('%s: one PROXY v1 header first on each client\'s own connection, then that client\'s requests only', async (engine) => {
    const a = await httpRecorder();
    const p = await app(`listen:
  - name: web
    bind: 127.0.0.1:0
    engine: ${engine}
    send_proxy: v1
    backends:
      - name: a
        address: ${a.address}
        check: false
`);
    const c1 = new RawClient(p.port(), '127.0.0.2');
    const c2 = new RawClient(p.port(), '127.0.0.3');
    cleanups.push(() => { c1.destroy(); c2.destroy(); });
    await Promise.all([c1.ready, c2.ready]);
    const req = (path: string) => `GET ${path} HTTP/1.1\r\nHost: site\r\n\r\n`;
    c1.send(req('/1a'));
    expect((await c1.next())!.body).toBe('ok');
    c2.send(req('/2a'));
    expect((await c2.next())!.body).toBe('ok');
    c1.send(req('/1b'));
    expect((await c1.next())!.body).toBe('ok');
    expect(a.received.length).toBe(2);
    const text = a.received.map((r) => r.toString('latin1'));
    const hdr = (c: { sock: { localPort?: number } }, from: string) => `PROXY TCP4 ${from} 127.0.0.1 ${c.sock.localPort} ${p.port()}\r\n`;
    expect(text[0].startsWith(hdr(c1, '127.0.0.2') + 'GET /1a HTTP/1.1\r\n')).toBe(true);
    expect(text[1].startsWith(hdr(c2, '127.0.0.3') + 'GET /2a HTTP/1.1\r\n')).toBe(true);
    // One header per connection; the second request of client 1 on its own connection, after the first.
    expect(text.map((t) => t.split('PROXY ').length - 1)).toEqual([1, 1]);
    expect([...text[0].matchAll(/^GET (\S+)/gm)].map((m) => m[1])).toEqual(['/1a', '/1b']);
    expect([...text[1].matchAll(/^GET (\S+)/gm)].map((m) => m[1])).toEqual(['/2a']);
    expect([...text[0].matchAll(/^x-forwarded-for: (.*)\r$/gim)].map((m) => m[1])).toEqual(['127.0.0.2', '127.0.0.2']);
    // Client 1 leaves: its server connection is closed; client 2's still serves it.
    c1.destroy();
    await waitFor(() => a.sockets[0].destroyed || a.sockets[0].readableEnded, 5000, 'client 1\'s server connection closed');
    c2.send(req('/2b'));
    expect((await c2.next())!.body).toBe('ok');
    expect(a.received.length).toBe(2);
    expect(a.received[1].toString('latin1')).toContain('GET /2b HTTP/1.1\r\n');
  });
});
