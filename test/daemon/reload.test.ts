import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFile } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { Agent, request, type IncomingMessage } from 'node:http';
import { connect, type Socket } from 'node:net';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { startBackend, type TestBackend } from '../helpers/backend.js';
import { MAIN, cleanup, ensureBuilt, freePort, startDaemon, tempDir, type Daemon } from './daemon.js';

/**
 * Live reload of the real daemon (`pairlb start` as a child process, as under systemd) while a
 * bounded load runs through it: backends added and removed, a listen section added, changed and
 * removed, with zero failed requests, zero reset connections and no idle keep-alive connection lost.
 * Then an invalid reload: refused with every error logged, old config keeps serving.
 */

const run = promisify(execFile);

interface Result { status: number; body: string; socket: Socket; reused: boolean }

function get(port: number, agent: Agent | false, path = '/', timeout = 10_000): Promise<Result> {
  return new Promise((ok, fail) => {
    const req = request({ host: '127.0.0.1', port, path, agent, timeout }, (res: IncomingMessage) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => { body += c; });
      res.on('end', () => ok({ status: res.statusCode!, body, socket: req.socket!, reused: req.reusedSocket }));
      res.on('error', fail);
    });
    req.on('timeout', () => req.destroy(new Error('client timeout')));
    req.on('error', fail);
    req.end();
  });
}

function yamlFor(o: { port: number; apiPort?: number; backends: TestBackend[]; xff?: string; adminSocket?: string }): string {
  const lines = [
    ...(o.adminSocket ? ['admin:', `  socket: ${o.adminSocket}`] : []),
    'global:', '  node: reload-test', '  log:', '    level: info', '    access: "off"',
    'listen:',
    '  - name: web', `    bind: 127.0.0.1:${o.port}`,
    '    forwardfor:', `      header: ${o.xff ?? 'X-Forwarded-For'}`,
    '    timeouts:', '      drain: 5s',
    '    check:', '      interval: 500ms',
    '    backends:',
    ...o.backends.flatMap((b) => [`      - name: ${b.name}`, `        address: ${b.address}`]),
  ];
  if (o.apiPort) {
    lines.push('  - name: api', `    bind: 127.0.0.1:${o.apiPort}`, '    backends:',
      ...o.backends.flatMap((b) => [`      - name: ${b.name}`, `        address: ${b.address}`]));
  }
  return lines.join('\n') + '\n';
}

/** Backends answer after 0-20 ms so that requests are in flight at every reload; /slow after 5 s. */
function slowish(name: string): Promise<TestBackend> {
  return startBackend(name, (req, res) => {
    const t = setTimeout(() => {
      res.writeHead(200, { 'content-type': 'text/plain', 'content-length': name.length, 'x-backend': name });
      res.end(name);
    }, req.url === '/slow' ? 5000 : Math.floor(Math.random() * 20));
    res.on('close', () => clearTimeout(t));
  });
}

describe('pairlb daemon: reload', () => {
  let dir: string;
  let a: TestBackend, b: TestBackend, c: TestBackend;
  let d: Daemon | undefined;
  let port: number, apiPort: number, apiPort2: number;
  let cfgFile: string;
  let adminSocket: string;

  beforeAll(async () => {
    ensureBuilt();
    dir = tempDir('reload');
    [a, b, c] = await Promise.all([slowish('php-a'), slowish('php-b'), slowish('php-c')]);
    port = await freePort();
    apiPort = await freePort();
    apiPort2 = await freePort();
    cfgFile = join(dir, 'pairlb.yaml');
    adminSocket = join(dir, 'admin.sock');
  });

  afterAll(async () => {
    await d?.kill();
    await Promise.all([a, b, c].map((x) => x?.close()));
    cleanup(dir);
  });

  it('applies backends added and removed, a listen section added, moved (bind) and one changed in place, under load: 0 failed, 0 reset', async () => {
    d = await startDaemon(dir, yamlFor({ port, backends: [a, b], adminSocket }));
    const reloads = (): number => d!.logs.filter((l) => l.msg === 'config reloaded').length;

    // An idle keep-alive connection opened before the reloads, used again after them.
    const idleAgent = new Agent({ keepAlive: true, maxSockets: 1 });
    const first = await get(port, idleAgent);
    expect(first.status).toBe(200);

    // Bounded load: 16 keep-alive clients, at most 12 s and 40 000 requests.
    const agent = new Agent({ keepAlive: true, maxSockets: 16 });
    const stats = { ok: 0, failed: 0, errors: [] as string[], serverClosed: 0, bodies: new Map<string, number>() };
    const tracked = new Set<Socket>();
    let loading = true;
    const deadline = performance.now() + 12_000;
    const worker = async (): Promise<void> => {
      while (loading && performance.now() < deadline && stats.ok + stats.failed < 40_000) {
        try {
          const r = await get(port, agent);
          if (!tracked.has(r.socket)) {
            tracked.add(r.socket);
            r.socket.on('close', () => { if (loading) stats.serverClosed++; });
          }
          if (r.status === 200) { stats.ok++; stats.bodies.set(r.body, (stats.bodies.get(r.body) ?? 0) + 1); } else { stats.failed++; stats.errors.push(`status ${r.status}`); }
        } catch (e) {
          stats.failed++;
          stats.errors.push((e as NodeJS.ErrnoException).code ?? (e as Error).message);
        }
      }
    };
    const workers = Array.from({ length: 16 }, worker);

    await new Promise((r) => setTimeout(r, 1000));
    // Reload 1, through `pairlb reload`: php-a removed, php-c added, listen `api` added.
    writeFileSync(cfgFile, yamlFor({ port, apiPort, backends: [b, c], adminSocket }));
    // Slow requests (5 s) until one is on php-a, which the reload then removes mid-request.
    const slowSeen = a.seen.length;
    let slowDone = 0;
    const slow: Promise<Result>[] = [];
    const onA = () => a.seen.slice(slowSeen).some((x) => x.url === '/slow');
    for (let i = 0; i < 10 && !onA(); i++) {
      slow.push(get(port, false, '/slow').finally(() => { slowDone++; }));
      for (let j = 0; j < 50 && !onA() && b.seen.filter((x) => x.url === '/slow').length + c.seen.filter((x) => x.url === '/slow').length < slow.length; j++) await new Promise((r) => setTimeout(r, 10));
    }
    expect(onA()).toBe(true);
    const n0 = reloads();
    const out = await run(process.execPath, [MAIN, 'reload', '--pidfile', d.pidfile], { timeout: 20_000 });
    expect(out.stdout).toContain(`Sent SIGHUP to pairlb (pid ${d.pid})`);
    await d.waitLog(() => reloads() > n0, 10_000);
    expect(slowDone).toBe(0); // php-a was removed while its request was in flight …
    const slowRes = await Promise.all(slow);
    expect(slowRes.map((r) => r.status).every((st) => st === 200)).toBe(true);
    expect(slowRes.map((r) => r.body)).toContain('php-a'); // … and that request completed.
    const api = await get(apiPort, false);
    expect(api.status).toBe(200);
    expect(['php-b', 'php-c']).toContain(api.body);
    // Requests that were in flight on php-a finish; after that it gets nothing.
    await new Promise((r) => setTimeout(r, 300));
    const aAfterRemove = a.seen.length;
    const cAtReload = c.seen.length;

    await new Promise((r) => setTimeout(r, 1500));
    // Reload 2, plain SIGHUP (what systemd's ExecReload sends): `api` moves to another port (bind
    // changed), `web` changed in place.
    writeFileSync(cfgFile, yamlFor({ port, apiPort: apiPort2, backends: [b, c], xff: 'X-Client-IP', adminSocket }));
    const n1 = reloads();
    const tHup = performance.now();
    d.signal('SIGHUP');
    await d.waitLog(() => reloads() > n1, 10_000);
    const hupMs = performance.now() - tHup;
    await new Promise((r) => setTimeout(r, 1500));

    loading = false;
    await Promise.all(workers);
    const total = stats.ok + stats.failed;
    // Figures for the report (printed, not asserted beyond the zero counts).
    console.log(`reload under load: ${total} requests, ${stats.ok} ok, ${stats.failed} failed, ${stats.serverClosed} connections closed by the proxy, per backend ${JSON.stringify(Object.fromEntries(stats.bodies))}; SIGHUP to "config reloaded" ${hupMs.toFixed(0)} ms under load`);
    expect(stats.errors).toEqual([]);
    expect(stats.failed).toBe(0);
    expect(stats.serverClosed).toBe(0);
    expect(total).toBeGreaterThan(200);

    expect(a.seen.length).toBe(aAfterRemove);
    expect(c.seen.length).toBeGreaterThan(cAtReload);
    expect(stats.bodies.get('php-c') ?? 0).toBeGreaterThan(0);
    // The in-place change is live: new requests carry the new header name.
    // (the last proxied request: health checks reach the backend directly, without forwarding headers)
    const last = b.seen.filter((r) => r.headers['x-forwarded-proto']).at(-1)!;
    expect(last.headers['x-client-ip']).toBe('127.0.0.1');
    // `api` left its old address for the new one.
    await expect(get(apiPort, false, '/', 2000)).rejects.toMatchObject({ code: 'ECONNREFUSED' });
    expect((await get(apiPort2, false)).status).toBe(200);

    // The idle keep-alive connection survived both reloads.
    const again = await get(port, idleAgent);
    expect(again.status).toBe(200);
    expect(again.reused).toBe(true);
    expect(again.socket).toBe(first.socket);
    agent.destroy();
    idleAgent.destroy();
  });

  it('refuses an invalid config with every error logged and keeps serving the old one', async () => {
    // Continues with the daemon of the previous test (web: php-b + php-c, header X-Client-IP).
    expect(d).toBeDefined();
    const good = yamlFor({ port, backends: [b, c], xff: 'X-Client-IP', adminSocket });
    const bad = [
      'global:', '  node: reload-test',
      'listen:',
      '  - name: web', '    bind: "not-an-address"',
      '    backends:',
      `      - name: php-a`, `        address: ${a.address}`, '        weight: 999',
      '    frobnicate: true',
      'unknown_section: {}',
    ].join('\n') + '\n';
    writeFileSync(cfgFile, bad);

    // `pairlb reload` validates first: prints every error, exits 1, does not signal.
    const before = d!.logs.length;
    const r = await run(process.execPath, [MAIN, 'reload', '--pidfile', d!.pidfile], { timeout: 20_000 }).then(() => ({ code: 0, stderr: '' }), (e: { code: number; stderr: string }) => e);
    expect(r.code).toBe(1);
    for (const p of ['listen[0].bind', 'listen[0].backends[0].weight', 'listen[0].frobnicate', 'unknown_section']) expect(r.stderr).toContain(p);
    expect(r.stderr).toContain('keeps running with its current config');

    // SIGHUP anyway (as a careless `kill -HUP` would): the daemon refuses and logs every problem.
    d!.signal('SIGHUP');
    const refused = await d!.waitLog((l) => /reload refused/.test(String(l.msg)), 10_000, before);
    const paths = (refused.problems as { path: string; line?: number }[]).map((p) => p.path);
    expect(paths).toEqual(expect.arrayContaining(['listen[0].bind', 'listen[0].backends[0].weight', 'listen[0].frobnicate', 'unknown_section']));
    expect((refused.problems as { line?: number }[]).every((p) => typeof p.line === 'number')).toBe(true);
    expect(d!.logs.slice(before).filter((l) => l.msg === 'config reloaded')).toEqual([]);

    // Still the old config: php-b and php-c answer, php-a (named in the bad file) gets nothing.
    const aBefore = a.seen.length;
    const agent = new Agent({ keepAlive: true, maxSockets: 4 });
    const bodies = new Set<string>();
    for (let i = 0; i < 40; i++) {
      const res = await get(port, agent);
      expect(res.status).toBe(200);
      bodies.add(res.body);
    }
    agent.destroy();
    expect([...bodies].sort()).toEqual(['php-b', 'php-c']);
    expect(a.seen.length).toBe(aBefore);
    expect(b.seen.filter((r) => r.headers['x-forwarded-proto']).at(-1)!.headers['x-client-ip']).toBe('127.0.0.1');

    // Fixing the file makes the next reload work.
    writeFileSync(cfgFile, good);
    const n = d!.logs.length;
    const ok = await run(process.execPath, [MAIN, 'reload', '--pidfile', d!.pidfile], { timeout: 20_000 });
    expect(ok.stdout).toContain('Configuration file is valid');
    await d!.waitLog((l) => l.msg === 'config reloaded', 10_000, n);
    // That reload removed the `api` section: its port no longer accepts connections.
    await expect(get(apiPort2, false, '/', 2000)).rejects.toMatchObject({ code: 'ECONNREFUSED' });

    // A raw socket check that the process is the same one (no restart happened).
    const s = connect(port, '127.0.0.1');
    await new Promise<void>((okk, fail) => { s.once('connect', () => okk()); s.once('error', fail); });
    s.destroy();
    expect(d!.proc.exitCode).toBe(null);
  });

  it('runtime changes (admin API) survive a reload', async () => {
    // Continues with the same daemon: web = php-b + php-c from the file.
    const admin = (...args: string[]) => run(process.execPath, [MAIN, 'backend', ...args, '--socket', adminSocket], { timeout: 20_000 });
    await admin('add', 'web', 'php-a', a.address);          // php-a is not in the file
    await admin('drain', 'web', 'php-b');
    await admin('weight', 'web', 'php-c', '5');
    const n = d!.logs.length;
    writeFileSync(cfgFile, yamlFor({ port, backends: [b, c], xff: 'X-Forwarded-For', adminSocket }));
    d!.signal('SIGHUP');
    await d!.waitLog((l) => l.msg === 'config reloaded', 10_000, n);

    const list = JSON.parse((await admin('list', 'web', '--json')).stdout) as { backends: { name: string; state: string; weight: number; origin: string }[] };
    const by = Object.fromEntries(list.backends.map((x) => [x.name, x]));
    expect(by['php-a']).toMatchObject({ state: 'UP', origin: 'runtime' });
    expect(by['php-b']).toMatchObject({ state: 'DRAIN' });
    expect(by['php-c']).toMatchObject({ state: 'UP', weight: 5 });
    // Traffic follows: php-b drained, php-a (runtime) and php-c (weight 5) serve, 1:5.
    const counts = new Map<string, number>();
    for (let i = 0; i < 60; i++) {
      const r = await get(port, false);
      expect(r.status).toBe(200);
      counts.set(r.body, (counts.get(r.body) ?? 0) + 1);
    }
    expect(counts.get('php-b')).toBeUndefined();
    // 10/50 in steady state; a snapshot rebuild (health event) may shift the phase a little.
    expect(counts.get('php-a')).toBeGreaterThanOrEqual(7);
    expect(counts.get('php-a')).toBeLessThanOrEqual(13);
    expect((counts.get('php-a') ?? 0) + (counts.get('php-c') ?? 0)).toBe(60);
    // And the reload itself applied: the header name is back to X-Forwarded-For.
    expect(c.seen.filter((r) => r.headers['x-forwarded-proto']).at(-1)!.headers['x-forwarded-for']).toBe('127.0.0.1');
  });
});
