import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startApp } from '../helpers/app.js';
import { startBackend, type TestBackend } from '../helpers/backend.js';
import { ensurePackages } from '../helpers/sys.js';
import { freePort } from '../daemon/daemon.js';

/**
 * `/;csv` is HAProxy's CSV: a real HAProxy 2.6 (Debian) and pairlb run the same pool (one server
 * UP, one refused), and the header, the rows and their meaning-bearing fields (status, type,
 * act/bck, weight, check_status, addr) match HAProxy's own answer for the same situation.
 */

type Csv = { header: string[]; rows: Record<string, string>[] };
function parse(text: string): Csv {
  const lines = text.trim().split('\n');
  expect(lines[0].startsWith('# ')).toBe(true);
  const header = lines[0].slice(2).split(',');
  const rows = lines.slice(1).map((l) => { const f = l.split(','); return Object.fromEntries(header.map((h, i) => [h, f[i]])); });
  return { header, rows };
}

async function until<T>(what: string, fn: () => Promise<T | undefined>, ms = 15_000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error(`${what}: not within ${ms} ms`);
    await new Promise((ok) => setTimeout(ok, 50));
  }
}

describe("HAProxy-compatible CSV (/;csv) against a real HAProxy's", () => {
  let be: TestBackend;
  let hap: ChildProcess;
  let dir: string;
  let p: Awaited<ReturnType<typeof startApp>>;
  let hapStats: number;
  let pStats: number;

  beforeAll(async () => {
    ensurePackages(['haproxy']);
    be = await startBackend('a');
    dir = mkdtempSync(join(tmpdir(), 'pairlb-hapcsv-'));
    hapStats = await freePort();
    const hapWeb = await freePort();
    writeFileSync(join(dir, 'haproxy.cfg'), [
      'global', '  maxconn 100', 'defaults', '  mode http', '  timeout connect 1s', '  timeout client 5s', '  timeout server 5s',
      'listen stats', `  bind 127.0.0.1:${hapStats}`, '  stats enable', '  stats uri /',
      'listen web', `  bind 127.0.0.1:${hapWeb}`, '  balance roundrobin', '  option httpchk GET /',
      `  server a ${be.address} check inter 100ms rise 1 fall 1`, '  server b 127.0.0.1:1 check inter 100ms rise 1 fall 1',
    ].join('\n') + '\n');
    hap = spawn('/usr/sbin/haproxy', ['-db', '-f', join(dir, 'haproxy.cfg')], { stdio: 'ignore' });
    pStats = await freePort();
    p = await startApp(`listen:
  - name: web
    bind: 127.0.0.1:0
    check: { type: http, path: /, interval: 100ms, timeout: 500ms, rise: 1, fall: 1 }
    backends:
      - { name: a, address: ${be.address} }
      - { name: b, address: 127.0.0.1:1 }
stats:
  bind: 127.0.0.1:${pStats}
  auth:
    - { user: ops, password: pw }
`);
  });
  afterAll(async () => {
    if (hap && hap.exitCode === null) { const gone = new Promise((ok) => hap.once('exit', ok)); hap.kill('SIGTERM'); await gone; }
    await p?.stop();
    await be?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const settled = (c: Csv) => {
    const st = (n: string) => c.rows.find((r) => r.pxname === 'web' && r.svname === n)?.status;
    return st('a') === 'UP' && st('b') === 'DOWN' ? c : undefined;
  };

  it('same header as HAProxy 2.6 (its base fields, before the per-module ones), same rows and statuses', async () => {
    const theirs = await until('HAProxy to check both servers', async () => {
      try { return settled(parse(await (await fetch(`http://127.0.0.1:${hapStats}/;csv`)).text())); } catch { return undefined; }
    });
    const auth = { authorization: 'Basic ' + Buffer.from('ops:pw').toString('base64') };
    const oursRes = await until('pairlb to check both servers', async () => {
      const r = await fetch(`http://127.0.0.1:${pStats}/;csv`, { headers: auth });
      const text = await r.text();
      return settled(parse(text)) ? { r, text } : undefined;
    });
    expect(oursRes.r.headers.get('content-type')).toBe('text/csv; charset=utf-8');
    const ours = parse(oursRes.text);
    // HAProxy's header continues after "-" with per-module fields (ssl_*, h2_*, h1_*): not ours.
    const base = theirs.header.slice(0, theirs.header.indexOf('-'));
    expect(base.length).toBeGreaterThan(90);
    expect(ours.header.slice(0, -1)).toEqual(base);
    expect(ours.header[ours.header.length - 1]).toBe(''); // the trailing comma, as HAProxy
    expect(oursRes.text.split('\n').filter(Boolean).every((l) => l.endsWith(','))).toBe(true);

    const pick = (c: Csv) => c.rows.filter((r) => r.pxname === 'web').map((r) => ({
      svname: r.svname, status: r.status, type: r.type, act: r.act, bck: r.bck, weight: r.weight, sid: r.sid, check_status: r.check_status, mode: r.mode,
    }));
    // Both are read again until they agree (bounded): a check that times out on a loaded machine
    // changes one side for a moment; the two must converge on the same rows.
    let last = { ours: pick(ours), theirs: pick(theirs) };
    const end = Date.now() + 15_000;
    while (JSON.stringify(last.ours) !== JSON.stringify(last.theirs) && Date.now() < end) {
      await new Promise((ok) => setTimeout(ok, 200));
      last = {
        ours: pick(parse(await (await fetch(`http://127.0.0.1:${pStats}/;csv`, { headers: auth })).text())),
        theirs: pick(parse(await (await fetch(`http://127.0.0.1:${hapStats}/;csv`)).text())),
      };
    }
    expect(last.ours).toEqual(last.theirs);
    const a = ours.rows.find((r) => r.svname === 'a')!;
    expect(a.addr).toBe(be.address);
    expect(Number(a.pid)).toBe(process.pid);
    expect(ours.rows.find((r) => r.svname === 'BACKEND')!.algo).toBe('roundrobin');
    // The cut(1) way scripts read it: field 18 is the status.
    expect(oursRes.text.split('\n').find((l) => l.startsWith('web,b,'))!.split(',')[17]).toBe('DOWN');
  });
});
