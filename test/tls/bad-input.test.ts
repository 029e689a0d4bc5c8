import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { request as httpsRequest } from 'node:https';
import { join } from 'node:path';
import { Daemon, cleanup, ensureBuilt, freePort, startDaemon, tempDir } from '../daemon/daemon.js';
import { startBackend, type TestBackend } from '../helpers/backend.js';
import { makeCa, makeLeaf, type Ca } from '../helpers/certs.js';

/**
 * The hostile edge of a TLS bind, with the real daemon: plain HTTP to the TLS port, garbage, a
 * ClientHello without SNI, a TLS 1.0-only client (openssl s_client), 1000 connections that never
 * finish the handshake. Each gets a clean refusal (the connection closed), a counter by reason on
 * /metrics, no crash, bounded memory, and a canary client served meanwhile.
 */

let dir: string;
let ca: Ca;
let backend: TestBackend;
let d: Daemon | undefined;
let port: number;
let statsPort: number;

beforeAll(async () => {
  ensureBuilt();
  dir = tempDir('tls-bad');
  ca = makeCa(join(dir, 'ca'));
  const www = makeLeaf(ca, 'www', ['www.example.test']);
  backend = await startBackend('web1');
  port = await freePort();
  statsPort = await freePort();
  d = await startDaemon(dir, `
global: { node: tls-bad, log: { level: info, access: off } }
listen:
  - name: web
    bind: 127.0.0.1:${port}
    tls:
      certificates: [${www.bundle}]
      handshake_timeout: 3s
    backends:
      - { name: web1, address: "${backend.address}", check: false }
stats:
  bind: 127.0.0.1:${statsPort}
`);
});

afterAll(async () => {
  await d?.kill();
  await backend?.close();
  if (dir) cleanup(dir);
});

async function failures(): Promise<Record<string, number>> {
  const t = await (await fetch(`http://127.0.0.1:${statsPort}/metrics`)).text();
  const out: Record<string, number> = {};
  for (const m of t.matchAll(/^pairlb_tls_handshake_failures_total\{listen="web",reason="([a-z_]+)"\} (\d+)$/gm)) out[m[1]] = Number(m[2]);
  for (const m of t.matchAll(/^pairlb_tls_sni_total\{listen="web",sni="([a-z]+)"\} (\d+)$/gm)) out[`sni_${m[1]}`] = Number(m[2]);
  return out;
}

function canary(): Promise<string> {
  return new Promise((ok, fail) => {
    const req = httpsRequest({ host: '127.0.0.1', port, path: '/canary', servername: 'www.example.test', headers: { host: 'www.example.test' }, ca: readFileSync(ca.rootCert), agent: false, timeout: 10_000 }, (res) => {
      let b = '';
      res.on('data', (c) => { b += c; });
      res.on('end', () => ok(`${res.statusCode} ${b}`));
    });
    req.on('error', fail);
    req.on('timeout', () => req.destroy(new Error('canary timed out')));
    req.end();
  });
}

/** Writes bytes on a raw connection; resolves with what came back once the server closed it (bounded). */
function raw(bytes: Buffer | string): Promise<{ got: Buffer; closed: boolean }> {
  return new Promise((ok) => {
    const s = connect(port, '127.0.0.1');
    const chunks: Buffer[] = [];
    const t = setTimeout(() => { s.destroy(); ok({ got: Buffer.concat(chunks), closed: false }); }, 10_000);
    s.on('data', (c) => chunks.push(c));
    s.on('error', () => {});
    s.on('close', () => { clearTimeout(t); ok({ got: Buffer.concat(chunks), closed: true }); });
    s.write(bytes);
  });
}

function openssl(args: string[]): Promise<{ code: number | null; out: string }> {
  return new Promise((ok) => {
    const p = execFile('openssl', ['s_client', '-connect', `127.0.0.1:${port}`, ...args], { timeout: 15_000, encoding: 'utf8' }, (err, stdout, stderr) => {
      ok({ code: err ? (typeof err.code === 'number' ? err.code : null) : 0, out: stdout + stderr });
    });
    p.stdin?.end();
  });
}

async function waitCounter(reason: string, atLeast: number, ms = 10_000): Promise<number> {
  const end = Date.now() + ms;
  for (;;) {
    const v = (await failures())[reason] ?? 0;
    if (v >= atLeast) return v;
    if (Date.now() > end) throw new Error(`${reason} stayed at ${v} (< ${atLeast})`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

function rssKb(pid: number): number {
  return Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))![1]);
}

describe('bad input on a TLS bind', () => {
  it('plain HTTP is closed without an answer, counted plain_http; the canary is served', async () => {
    const before = (await failures()).plain_http;
    const r = await raw('GET / HTTP/1.1\r\nHost: www.example.test\r\n\r\n');
    expect(r.closed).toBe(true);
    expect(r.got.toString('latin1')).not.toContain('HTTP/1.1');
    await waitCounter('plain_http', before + 1);
    expect(await canary()).toBe('200 web1');
    expect(backend.seen.filter((s) => s.url !== '/canary')).toEqual([]);
  });

  it('garbage bytes (not TLS, and a broken TLS record) are closed and counted bad_record', async () => {
    const before = (await failures()).bad_record;
    const a = await raw(Buffer.from([0x00, 0xff, 0x13, 0x37, 0x42, 0x42, 0x42, 0x42, 0x0d, 0x0a]));
    const b = await raw(Buffer.concat([Buffer.from([0x16, 0x03, 0x01, 0x00, 0x08]), Buffer.from('01ffffff0303dead', 'hex')]));
    expect([a.closed, b.closed]).toEqual([true, true]);
    await waitCounter('bad_record', before + 2);
    expect(await canary()).toBe('200 web1');
  });

  it('a client that closes before its ClientHello is complete (or before any byte) is counted aborted', async () => {
    const before = (await failures()).aborted ?? 0;
    const gone = (bytes: Buffer | null) => new Promise<void>((ok) => {
      const s = connect(port, '127.0.0.1');
      s.on('error', () => {});
      s.on('close', () => ok());
      s.on('connect', () => { if (bytes) s.end(bytes); else s.end(); });
    });
    await gone(null);
    await gone(Buffer.from([0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03]));
    await waitCounter('aborted', before + 2);
    expect(await canary()).toBe('200 web1');
  });

  it('a ClientHello without SNI gets the default certificate (not an error), counted sni none', async () => {
    const before = (await failures()).sni_none;
    const r = await openssl(['-noservername', '-CAfile', ca.rootCert, '-verify_return_error']);
    expect(r.out).toMatch(/subject=CN ?= ?www\.example\.test/);
    expect(r.out).toContain('Verify return code: 0 (ok)');
    const end = Date.now() + 10_000;
    while ((await failures()).sni_none < before + 1 && Date.now() < end) await new Promise((x) => setTimeout(x, 100));
    expect((await failures()).sni_none).toBe(before + 1);
  });

  it('a client offering only TLS 1.0 is refused with an alert, counted version', async () => {
    const before = (await failures()).version;
    const r = await openssl(['-servername', 'www.example.test', '-tls1', '-cipher', 'DEFAULT@SECLEVEL=0']);
    expect(r.code).not.toBe(0);
    expect(r.out).toMatch(/alert protocol version|unsupported protocol|no protocols available/i);
    await waitCounter('version', before + 1);
    expect(await canary()).toBe('200 web1');
  });

  it('1000 connections that never finish the handshake: cut after handshake_timeout, counted, memory bounded, canary served meanwhile', async () => {
    const before = (await failures()).timeout;
    const rss0 = rssKb(d!.pid);
    const socks: Socket[] = [];
    let closed = 0;
    const allClosed = new Promise<void>((ok) => {
      for (let i = 0; i < 1000; i++) {
        const s = connect(port, '127.0.0.1');
        s.on('error', () => {});
        s.on('close', () => { if (++closed === 1000) ok(); });
        // Half say nothing, half start a ClientHello and stall.
        if (i % 2) s.on('connect', () => s.write(Buffer.from([0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03])));
        socks.push(s);
      }
    });
    // While they are all open: the canary is served.
    expect(await canary()).toBe('200 web1');
    const rss1 = rssKb(d!.pid);
    const cut = await Promise.race([allClosed.then(() => true), new Promise<boolean>((r) => setTimeout(() => r(false), 30_000))]);
    for (const s of socks) s.destroy();
    expect(cut).toBe(true);
    await waitCounter('timeout', before + 1000, 10_000);
    // 1000 handshaking connections are connection state, not buffers: well under 64 MiB.
    expect(rss1 - rss0).toBeLessThan(64 * 1024);
    expect(await canary()).toBe('200 web1');
    expect(d!.proc.exitCode).toBeNull();
  });
});
