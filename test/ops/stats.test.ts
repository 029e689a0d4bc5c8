import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { startApp } from '../helpers/app.js';
import { startBackend, type TestBackend } from '../helpers/backend.js';
import { hashPassword } from '../../src/stats/auth.js';
import { parseConfig } from '../../src/config/load.js';
import { COLUMNS } from '../../src/stats/columns.js';
import type { StatsModule } from '../../src/stats/module.js';
import type { App } from '../../src/app.js';

/**
 * The stats server against a real App with a real proxy and real backends: auth, one table for
 * HTML/CSV/JSON/Prometheus, admin actions only by same-origin POST with a valid anti-CSRF token.
 */

const basic = (u: string, p: string) => 'Basic ' + Buffer.from(`${u}:${p}`).toString('base64');
export function statsUrl(app: App): string {
  const m = app.modules.find((x) => x.name === 'stats') as StatsModule;
  const a = m.address()!;
  return `http://127.0.0.1:${a.port}`;
}

let b1: TestBackend, b2: TestBackend;
let h: Awaited<ReturnType<typeof startApp>>;
let base: string;
const OPS = basic('ops', 'correct horse');

beforeAll(async () => {
  b1 = await startBackend('web1'); b2 = await startBackend('web2');
  const hash = await hashPassword('correct horse', 10);
  h = await startApp(`
listen:
  - name: web
    bind: 127.0.0.1:0
    check: { interval: 200ms, timeout: 3s }
    backends:
      - { name: web1, address: "${b1.address}" }
      - { name: web2, address: "${b2.address}" }
stats:
  bind: 127.0.0.1:0
  refresh: 2s
  admin: true
  auth:
    - { user: ops, password: "${hash}" }
    - { user: viewer, password: "plain-text-pw" }
`);
  base = statsUrl(h.app);
  for (let i = 0; i < 6; i++) await (await fetch(h.url() + '/req' + i)).text();
});
afterAll(async () => { await h?.stop(); await b1?.close(); await b2?.close(); });

describe('stats page', () => {
  test('401 with WWW-Authenticate without or with wrong credentials, everywhere', async () => {
    for (const p of ['/', '/stats.csv', '/stats.json', '/metrics']) {
      const r = await fetch(base + p);
      expect(r.status, p).toBe(401);
      expect(r.headers.get('www-authenticate')).toBe('Basic realm="pairlb", charset="UTF-8"');
      await r.text();
    }
    const r = await fetch(base + '/', { headers: { authorization: basic('ops', 'wrong') } });
    expect(r.status).toBe(401);
    await r.text();
  });

  test('HTML with every backend row, TOTAL row, security headers', async () => {
    const r = await fetch(base + '/', { headers: { authorization: OPS } });
    expect(r.status).toBe(200);
    expect(r.headers.get('content-security-policy')).toContain("frame-ancestors 'none'");
    expect(r.headers.get('x-frame-options')).toBe('DENY');
    const html = await r.text();
    for (const n of ['web1', 'web2', 'TOTAL']) expect(html).toContain(`data-backend="${n}"`);
    expect(html).toContain('name="csrf"');
    expect(html).toContain('HA not configured');
    expect(html).toContain('Scaling not configured');
    expect(html).toMatch(/<td class="status"[^>]*>UP <small>\d+s<\/small><\/td>/);
  });

  test('plaintext user can read but the form carries its own token', async () => {
    const r = await fetch(base + '/', { headers: { authorization: basic('viewer', 'plain-text-pw') } });
    expect(r.status).toBe(200);
    expect(await r.text()).toContain('signed in as viewer');
  });

  test('CSV and JSON carry the same columns as the table', async () => {
    const csv = await (await fetch(base + '/stats.csv', { headers: { authorization: OPS } })).text();
    const lines = csv.trim().split('\n');
    expect(lines[0]).toBe(COLUMNS.map((c) => c.key).join(','));
    expect(lines.length).toBe(1 + 2 + 1);
    const total = lines[3].split(',');
    expect(total[1]).toBe('TOTAL');
    expect(Number(total[COLUMNS.findIndex((c) => c.key === 'total')])).toBeGreaterThanOrEqual(6);
    const j = await (await fetch(base + '/stats.json', { headers: { authorization: OPS } })).json() as { listens: { name: string; total: Record<string, unknown>; backends: Record<string, unknown>[] }[] };
    expect(j.listens[0].name).toBe('web');
    expect(Object.keys(j.listens[0].backends[0])).toEqual(COLUMNS.map((c) => c.key));
    expect(j.listens[0].backends.map((b) => b.name)).toEqual(['web1', 'web2']);
    expect((j.listens[0].backends[0].total as number) + (j.listens[0].backends[1].total as number)).toBe(j.listens[0].total.total);
    expect(j.listens[0].backends[0].http_2xx).toBe(j.listens[0].backends[0].total);
  });

  test('metrics: counters and histogram read at scrape time', async () => {
    // The first health check runs at a random point of its 200 ms interval: wait for it (bounded).
    for (let i = 0; i < 100 && !h.app.backends.get('web', 'web1')?.lastCheck; i++) await new Promise((ok) => setTimeout(ok, 20));
    const r = await fetch(base + '/metrics', { headers: { authorization: OPS } });
    expect(r.headers.get('content-type')).toContain('text/plain');
    const t = await r.text();
    expect(t).toMatch(/^pairlb_backend_sessions_total\{listen="web",backend="web1"\} 3$/m);
    expect(t).toMatch(/^pairlb_listen_responses_total\{listen="web",code="2xx"\} 6$/m);
    expect(t).toMatch(/^pairlb_backend_state\{listen="web",backend="web2",state="UP"\} 1$/m);
    expect(t).toMatch(/^pairlb_backend_response_time_seconds_bucket\{listen="web",backend="web1",le="\+Inf"\} 3$/m);
    expect(t).toMatch(/^pairlb_backend_response_time_seconds_count\{listen="web",backend="web1"\} 3$/m);
    expect(t).toMatch(/^pairlb_backend_check_duration_seconds\{listen="web",backend="web1"\} [0-9.e-]+$/m);
    expect(t).toMatch(/^pairlb_node_role\{node="[^"]+",role="standalone"\} 1$/m);
    expect(t).toContain('# TYPE pairlb_backend_bytes_out_total counter');
  });
});

describe('admin actions from the page', () => {
  async function token(user = OPS): Promise<string> {
    const html = await (await fetch(base + '/', { headers: { authorization: user } })).text();
    return /name="csrf" value="([^"]+)"/.exec(html)![1];
  }
  const post = (body: Record<string, string>, headers: Record<string, string> = {}) => fetch(base + '/action', {
    method: 'POST', redirect: 'manual', body: new URLSearchParams(body),
    headers: { authorization: OPS, ...headers },
  });

  test('POST without a token, with a forged one, or cross-site: refused, state unchanged', async () => {
    let r = await post({ listen: 'web', backend: 'web2', action: 'drain' });
    expect(r.status).toBe(403);
    expect(await r.text()).toContain('anti-CSRF');
    r = await post({ listen: 'web', backend: 'web2', action: 'drain', csrf: 'lzz0.AAAA' });
    expect(r.status).toBe(403); await r.text();
    // The viewer's token is not valid for ops (tokens are bound to the user).
    r = await post({ listen: 'web', backend: 'web2', action: 'drain', csrf: await token(basic('viewer', 'plain-text-pw')) });
    expect(r.status).toBe(403); await r.text();
    r = await post({ listen: 'web', backend: 'web2', action: 'drain', csrf: await token() }, { origin: 'http://evil.example' });
    expect(r.status).toBe(403); await r.text();
    r = await post({ listen: 'web', backend: 'web2', action: 'drain', csrf: await token() }, { 'sec-fetch-site': 'cross-site' });
    expect(r.status).toBe(403); await r.text();
    r = await fetch(base + '/action', { method: 'POST', body: new URLSearchParams({ listen: 'web', backend: 'web2', action: 'drain' }) });
    expect(r.status).toBe(401); await r.text();
    expect(h.app.backends.get('web', 'web2')!.admin).toBe('ready');
  });

  test('POST with a valid token: drain, weight, ready; bad values come back as a message', async () => {
    let r = await post({ listen: 'web', backend: 'web2', action: 'drain', csrf: await token() }, { origin: base });
    expect(r.status).toBe(303);
    const loc = r.headers.get('location')!;
    expect(decodeURIComponent(loc)).toMatch(/^\.\/\?ok=web\/web2: drain \(now DRAIN\)&sig=[\w-]{22}$/);
    // The result line shows only with its signature: a crafted link cannot put text on the page.
    const shown = await (await fetch(new URL(loc, base + '/'), { headers: { authorization: OPS } })).text();
    expect(shown).toContain('<div class="flash" role="status">web/web2: drain (now DRAIN)</div>');
    const forged = await (await fetch(base + '/?ok=' + encodeURIComponent('Session expired: log in at evil.example') + '&sig=AAAAAAAAAAAAAAAAAAAAAA', { headers: { authorization: OPS } })).text();
    expect(forged).not.toContain('evil.example');
    expect(h.app.backends.get('web', 'web2')!.admin).toBe('drain');
    const html = await (await fetch(base + '/', { headers: { authorization: OPS } })).text();
    expect(html).toMatch(/<tr class="s-DRAIN[^"]*" data-backend="web2">/);
    r = await post({ listen: 'web', backend: 'web2', action: 'weight', weight: '7', csrf: await token() });
    expect(r.status).toBe(303);
    expect(h.app.backends.get('web', 'web2')!.weight).toBe(7);
    r = await post({ listen: 'web', backend: 'web2', action: 'weight', weight: '999', csrf: await token() });
    expect(r.headers.get('location')).toMatch(/^\.\/\?err=/);
    r = await post({ listen: 'web', backend: 'nope', action: 'maint', csrf: await token() });
    expect(decodeURIComponent(r.headers.get('location')!)).toContain('no backend "nope"');
    r = await post({ listen: 'web', backend: 'web2', action: 'ready', csrf: await token() });
    expect(h.app.backends.get('web', 'web2')!.admin).toBe('ready');
  });
});

describe('metrics scrape cost', () => {
  test('100 backends: a scrape takes < 50 ms', async () => {
    const backends = Array.from({ length: 100 }, (_, i) => `      - { name: b${i}, address: "127.0.0.1:${20000 + i}", check: false }`).join('\n');
    const big = await startApp(`
listen:
  - name: big
    bind: 127.0.0.1:0
    backends:
${backends}
stats:
  bind: 127.0.0.1:0
  auth: []
`);
    try {
      // Fill the counters as traffic would (what the scrape reads), without a network round trip each.
      for (const b of big.app.backends.all()) {
        const c = big.app.counters.backend(b.id);
        for (let i = 0; i < 50; i++) { c.begin(Date.now()); c.observe(200, 0.003 * i); c.cur--; }
      }
      const url = statsUrl(big.app) + '/metrics';
      await (await fetch(url)).text(); // warm-up (JIT)
      // Cost of a scrape = CPU time of this process while rendering (immune to other processes
      // competing for the 2 cores); wall time of the HTTP round trip is reported alongside.
      const cpu: number[] = [], wall: number[] = [];
      let text = '';
      for (let i = 0; i < 15; i++) {
        const c0 = process.cpuUsage(), t0 = performance.now();
        text = await (await fetch(url)).text();
        wall.push(performance.now() - t0);
        const c = process.cpuUsage(c0);
        cpu.push((c.user + c.system) / 1000);
      }
      cpu.sort((a, b) => a - b); wall.sort((a, b) => a - b);
      console.log(`scrape of 100 backends (${text.length} bytes, ${text.split('\n').length} lines): CPU median ${cpu[7].toFixed(1)} ms [${cpu[0].toFixed(1)}-${cpu[14].toFixed(1)}], wall median ${wall[7].toFixed(1)} ms [${wall[0].toFixed(1)}-${wall[14].toFixed(1)}]`);
      expect(text.match(/^pairlb_backend_sessions_total\{/gm)!.length).toBe(100);
      expect(cpu[7]).toBeLessThan(50);
    } finally { await big.stop(); }
  });
});

describe('HA and scaler metrics (mapping of their status objects, read at scrape time)', () => {
  test('samples appear when the modules report, none when they are absent', async () => {
    const { PromExporter } = await import('../../src/stats/prometheus.js');
    const x = await startApp(`
global: { node: lb-01 }
listen:
  - name: web
    bind: 127.0.0.1:0
    backends: [{ name: w, address: "127.0.0.1:9", check: false }]
`);
    try {
      const exp = new PromExporter(x.app);
      let t = await exp.text();
      expect(t).toContain('# TYPE pairlb_ha_peer_alive gauge');
      expect(t).not.toMatch(/^pairlb_ha_peer_alive\{/m);
      expect(t).not.toMatch(/^pairlb_scale_load\{/m);
      // Status objects shaped as src/ha/node.ts HaStatus and src/scale/scaler.ts ScaleStatus.
      const now = Date.now();
      x.app.modules.push(
        { name: 'ha', start() {}, stop() {}, status: () => ({ role: 'master', node: 'lb-01', peer: { name: 'lb-02', role: 'backup', alive: true, lastSeenMs: 250, paths: { dedicated: true, public: true } }, transitions: 3, sent: 100, received: 98, lateHeartbeats: 1, garps: 10, rejected: { bad_hmac: 2, replay: 0 } }) } as never,
        { name: 'scale', start() {}, stop() {}, status: () => ({ enabled: true, active: true, targets: [{ name: 'vds-01', kind: 'vds', last: { at: now - 2000, status: 'ok', load: 2.5 } }, { name: 'vds-02', kind: 'vds', last: { at: now - 1000, status: 'unknown', reason: 'timeout' } }], clones: [{ name: 'vds-01-clone-aaaaaa', source: 'vds-01', state: 'active' }, { name: 'vds-01-clone-bbbbbb', source: 'vds-01', state: 'joining' }], decisions: [], events: [], alarms: [] }) } as never,
      );
      t = await exp.text();
      expect(t).toMatch(/^pairlb_ha_peer_alive\{node="lb-01"\} 1$/m);
      expect(t).toMatch(/^pairlb_ha_peer_last_heartbeat_seconds\{node="lb-01"\} 0.25$/m);
      expect(t).toMatch(/^pairlb_ha_transitions_total\{node="lb-01"\} 3$/m);
      expect(t).toMatch(/^pairlb_ha_rejected_total\{node="lb-01",reason="bad_hmac"\} 2$/m);
      expect(t).toMatch(/^pairlb_scale_load\{target="vds-01",kind="vds"\} 2.5$/m);
      expect(t).not.toMatch(/^pairlb_scale_load\{target="vds-02"/m);
      expect(t).toMatch(/^pairlb_scale_sample_ok\{target="vds-02",kind="vds"\} 0$/m);
      expect(t).toMatch(/^pairlb_scale_clones\{source="vds-01",state="joining"\} 1$/m);
      expect(t).toMatch(/^pairlb_scale_active\{node="lb-01"\} 1$/m);
    } finally { await x.stop(); }
  });
});

describe('reload', () => {
  test('new users apply at once; old credentials stop working', async () => {
    const cfg = parseConfig(`
listen:
  - name: web
    bind: 127.0.0.1:0
    backends:
      - { name: web1, address: "${b1.address}" }
      - { name: web2, address: "${b2.address}" }
stats:
  bind: 127.0.0.1:0
  admin: false
  auth: [{ user: night, password: "${await hashPassword('shift', 10)}" }]
`);
    await h.app.reload(cfg);
    let r = await fetch(base + '/', { headers: { authorization: OPS } });
    expect(r.status).toBe(401); await r.text();
    r = await fetch(base + '/', { headers: { authorization: basic('night', 'shift') } });
    expect(r.status).toBe(200);
    expect(await r.text()).not.toContain('name="csrf"'); // admin: false now
  });
});
