import { afterEach, beforeAll, afterAll, describe, expect, test } from 'vitest';
import { connect, type Socket } from 'node:net';
import { writeFileSync } from 'node:fs';
import { startBackend, type TestBackend } from '../helpers/backend.js';
import { startPairlb, type PairlbProc } from '../helpers/proc.js';
import { ensureBuilt, freePort } from '../daemon/daemon.js';
import { autoMaxconn } from '../../src/proxy/accept-guard.js';

/**
 * Issue 10 item 10: at the open-file limit pairlb used to refuse connections silently (libuv's
 * EMFILE trick accepts and closes them; node:http emits nothing). The real daemon runs under
 * `prlimit --nofile=N`; clients open connections until accepts fail; the refusals must be logged
 * and counted, and once the clients go away a new request must be served.
 */

let backend: TestBackend;
let p: PairlbProc | undefined;
const clients: Socket[] = [];

beforeAll(async () => { ensureBuilt(); backend = await startBackend('b1'); });
afterAll(async () => { await backend?.close(); });
afterEach(async () => {
  for (const c of clients.splice(0)) c.destroy();
  await p?.stop();
  p = undefined;
});

const yaml = (statsPort: number, global = '', listen = '') => `
global:
  log: { access: "off" }
${global}
listen:
  - name: web
    bind: 127.0.0.1:0
    timeouts: { client: 60s, http_request: 60s }
    check: { interval: 30s }
${listen}
    backends:
      - { name: b1, address: "${backend.address}" }
stats:
  bind: 127.0.0.1:${statsPort}
`;

type Outcome = 'served' | 'closed';

/** Opens n connections at once; each sends one keep-alive request. Resolves when every one was answered or closed. */
function openMany(port: number, n: number): Promise<Outcome[]> {
  return Promise.all(Array.from({ length: n }, () => new Promise<Outcome>((ok) => {
    const s = connect(port, '127.0.0.1');
    clients.push(s);
    let got = '';
    s.on('connect', () => s.write('GET /hold HTTP/1.1\r\nHost: t\r\n\r\n'));
    s.on('data', (d) => { got += d; if (/\r\n\r\nb1$/.test(got)) ok('served'); else if (/^HTTP\/1\.1 5\d\d/.test(got)) ok('closed'); });
    s.on('error', () => {});
    s.on('close', () => ok('closed'));
  })));
}

async function metric(statsPort: number, name: string): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${statsPort}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith(name + ' ') || l.startsWith(name + '{'));
  return line ? Number(line.split(' ').pop()) : NaN;
}

async function waitFor(what: string, pred: () => Promise<boolean> | boolean, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await pred())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function get(port: number): Promise<{ status: number; body: string }> {
  const r = await fetch(`http://127.0.0.1:${port}/after`);
  return { status: r.status, body: await r.text() };
}

describe('accept failures at the open-file limit are visible', () => {
  test('maxconn derived from the fd limit: the excess is refused, counted per listen, logged once per 10 s; served again after', async () => {
    const statsPort = await freePort();
    const NOFILE = 160;
    const maxconn = autoMaxconn(NOFILE);
    expect(maxconn).toBe(60);
    p = await startPairlb(yaml(statsPort), { nofile: NOFILE });
    expect(p.logs.find((l) => l.msg === `client connection budget: maxconn ${maxconn} (open-file limit ${NOFILE})`)).toBeTruthy();
    const port = p.port('web');

    const extra = 15;
    const outcomes = await openMany(port, maxconn + extra);
    expect(outcomes.filter((o) => o === 'served').length).toBe(maxconn);
    expect(outcomes.filter((o) => o === 'closed').length).toBe(extra);

    // The first refusal is logged at once; the rest of the burst is in the next line (after 10 s).
    const first = p.logs.find((l) => l.reason === 'maxconn');
    expect(first).toMatchObject({ level: 40, listen: 'web', refused: 1, maxconn, fdLimit: NOFILE });
    expect(await metric(statsPort, 'pairlb_listen_refused_connections_total')).toBe(extra);
    expect(await metric(statsPort, 'pairlb_client_connections')).toBe(maxconn);
    const json = await (await fetch(`http://127.0.0.1:${statsPort}/stats.json`)).json() as { listens: { total: Record<string, unknown> }[] };
    expect(json.listens[0].total.refused_conn).toBe(extra);
    const page = await (await fetch(`http://127.0.0.1:${statsPort}/`)).text();
    expect(page).toContain(`client connections ${maxconn}/${maxconn} (open-file limit ${NOFILE})`);

    for (const c of clients.splice(0)) c.destroy();
    await waitFor('connections released', async () => (await metric(statsPort, 'pairlb_client_connections')) === 0);
    expect(await get(port)).toEqual({ status: 200, body: 'b1' });
    // The burst's remaining refusals are reported in one line when the 10 s window ends.
    await waitFor('second log line', () => p!.logs.some((l) => l.reason === 'maxconn' && l.refused === extra - 1), 15_000);
    expect(p.logs.filter((l) => l.reason === 'maxconn').length).toBe(2);
  });

  test('real EMFILE (maxconn above what the limit allows): logged, counted, process keeps serving', async () => {
    const statsPort = await freePort();
    const NOFILE = 64;
    p = await startPairlb(yaml(statsPort, '  maxconn: 100000'), { nofile: NOFILE });
    expect(p.logs.some((l) => typeof l.msg === 'string' && l.msg.startsWith('global.maxconn 100000 is more than the open-file limit 64 allows'))).toBe(true);
    const port = p.port('web');

    // Connections with an unfinished request head (no backend descriptor): more than the limit can hold.
    let closed = 0;
    for (let i = 0; i < NOFILE; i++) {
      const s = connect(port, '127.0.0.1', () => s.write('GET / HTTP/1.1\r\n'));
      clients.push(s);
      s.on('error', () => {});
      s.on('close', () => closed++);
    }
    await waitFor('open-file limit log line', () => p!.logs.some((l) => l.reason === 'EMFILE' && typeof l.msg === 'string' && l.msg.startsWith('open-file limit reached (EMFILE, limit 64')));
    await waitFor('libuv closes the connections it cannot hold', () => closed > 0);

    for (const c of clients.splice(0)) c.destroy();
    await waitFor('a request is served again', async () => { try { return (await get(port)).status === 200; } catch { return false; } });
    expect(await get(port)).toEqual({ status: 200, body: 'b1' });
    expect(await metric(statsPort, 'pairlb_fd_limit_hits_total')).toBeGreaterThanOrEqual(1);
    expect(p.child.exitCode).toBe(null);
  });

  test.each(['undici', 'native'])('%s: backend connects failing with EMFILE do not take the backend DOWN (passive check)', async (engine) => {
    const statsPort = await freePort();
    const NOFILE = 64;
    p = await startPairlb(yaml(statsPort, '  maxconn: 100000', `    engine: ${engine}\n    passive: { connect_errors: 3 }`), { nofile: NOFILE });
    const port = p.port('web');
    // Every descriptor goes to clients (libuv accepts the whole backlog before reading any request),
    // so each request's backend connect fails with EMFILE: our limit, not the backend's failure.
    const outcomes = await openMany(port, 2 * NOFILE);
    expect(outcomes.filter((o) => o === 'closed').length).toBeGreaterThan(0);
    for (const c of clients.splice(0)) c.destroy();
    await waitFor('a request is served again', async () => { try { return (await get(port)).status === 200; } catch { return false; } });
    const json = await (await fetch(`http://127.0.0.1:${statsPort}/stats.json`)).json() as { listens: { backends: Record<string, unknown>[] }[] };
    expect(json.listens[0].backends[0].status).toBe('UP');
    expect(p.logs.some((l) => typeof l.msg === 'string' && l.msg.includes('passive:'))).toBe(false);
  });

  test('global.maxconn applies live on reload (SIGHUP)', async () => {
    const statsPort = await freePort();
    p = await startPairlb(yaml(statsPort, '  maxconn: 4'));
    const port = p.port('web');
    let outcomes = await openMany(port, 6);
    expect(outcomes.filter((o) => o === 'served').length).toBe(4);
    for (const c of clients.splice(0)) c.destroy();
    await waitFor('connections released', async () => (await metric(statsPort, 'pairlb_client_connections')) === 0);
    writeFileSync(p.cfgFile, yaml(statsPort, '  maxconn: 8'));
    const from = p.logs.length;
    p.child.kill('SIGHUP');
    await waitFor('reload', () => p!.logs.slice(from).some((l) => l.msg === 'config reloaded'));
    expect(p.logs.slice(from).some((l) => l.msg === 'client connection budget: maxconn 8')).toBe(true);
    outcomes = await openMany(port, 10);
    expect(outcomes.filter((o) => o === 'served').length).toBe(8);
    expect(await metric(statsPort, 'pairlb_listen_refused_connections_total')).toBe(2 + 2);
  });
});
