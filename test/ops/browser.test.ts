import { afterAll, beforeAll, expect, test } from 'vitest';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { chromium, type BrowserContext } from 'playwright-core';
import { ensurePackages } from '../helpers/sys.js';
import { startApp } from '../helpers/app.js';
import { startBackend, type TestBackend } from '../helpers/backend.js';
import { hashPassword } from '../../src/stats/auth.js';
import type { StatsModule } from '../../src/stats/module.js';
import { renderPage } from '../../src/stats/page.js';
import { buildTables } from '../../src/stats/model.js';

/**
 * The stats page in a real headless Chromium (Debian chromium + playwright-core): log in, see every
 * backend, click Drain, see DRAIN and see the proxy stop sending traffic to it. Screenshots (laptop
 * and phone) are saved under test-artifacts/. Without credentials: 401; a POST without a valid
 * token from the logged-in browser: refused.
 */

const ARTIFACTS = resolve(import.meta.dirname, '../../test-artifacts');
const ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'];

let backends: TestBackend[] = [];
let h: Awaited<ReturnType<typeof startApp>>;
let statsBase: string;
const profiles: string[] = [];
const contexts: BrowserContext[] = [];

async function browser(opts: Parameters<typeof chromium.launchPersistentContext>[1] = {}): Promise<BrowserContext> {
  const profile = mkdtempSync(join(tmpdir(), 'pairlb-chromium-'));
  profiles.push(profile);
  // launchPersistentContext = a fresh --user-data-dir of our own (Playwright refuses it in args).
  const ctx = await chromium.launchPersistentContext(profile, { executablePath: '/usr/bin/chromium', args: ARGS, headless: true, timeout: 30_000, ...opts });
  contexts.push(ctx);
  return ctx;
}

beforeAll(async () => {
  ensurePackages(['chromium']);
  mkdirSync(ARTIFACTS, { recursive: true });
  backends = [await startBackend('web1'), await startBackend('web2'), await startBackend('web3')];
  const hash = await hashPassword('browser-pw', 10);
  h = await startApp(`
global: { node: lb-01 }
listen:
  - name: web
    bind: 127.0.0.1:0
    slowstart: 0
    check: { interval: 500ms, timeout: 3s }
    backends:
${backends.map((b) => `      - { name: ${b.name}, address: "${b.address}" }`).join('\n')}
  - name: api
    bind: 127.0.0.1:0
    backends:
      - { name: api1, address: "127.0.0.1:9", check: false, state: maint }
  - name: dead
    bind: 127.0.0.1:0
    check: { interval: 200ms, timeout: 500ms, fall: 1 }
    backends:
      - { name: gone, address: "127.0.0.1:9" }
stats:
  bind: 127.0.0.1:0
  refresh: 3s
  admin: true
  auth: [{ user: ops, password: "${hash}" }]
`);
  const a = (h.app.modules.find((m) => m.name === 'stats') as StatsModule).address()!;
  statsBase = `http://127.0.0.1:${a.port}`;
});

afterAll(async () => {
  for (const c of contexts) await c.close().catch(() => {});
  await h?.stop();
  for (const b of backends) await b.close();
  for (const p of profiles) rmSync(p, { recursive: true, force: true });
});

/** The state word of a row's status cell (the cell also says how long: "UP" + "3m12s"). */
async function state(page: import('playwright-core').Page, row: string): Promise<string> {
  return (await page.locator(`${row} td.status`).innerText()).trim().split(/\s+/)[0];
}

const hits = (b: TestBackend) => b.seen.filter((s) => s.url.startsWith('/t')).length;
async function traffic(n: number): Promise<number[]> {
  const before = backends.map(hits);
  for (let i = 0; i < n; i++) await (await fetch(`${h.url('web')}/t${i}`)).text();
  return backends.map((b, i) => hits(b) - before[i]);
}

test('without credentials: 401', async () => {
  const ctx = await browser();
  const page = ctx.pages()[0] ?? await ctx.newPage();
  // Headless Chromium cancels the login prompt (ERR_INVALID_AUTH_CREDENTIALS) after receiving the 401.
  const seen = page.waitForResponse((x) => x.url() === statsBase + '/');
  const nav = await page.goto(statsBase + '/').then(() => 'loaded', (e: Error) => e.message);
  const r = await seen;
  expect(r.status()).toBe(401);
  expect(r.headers()['www-authenticate']).toBe('Basic realm="pairlb", charset="UTF-8"');
  expect(nav === 'loaded' || /ERR_INVALID_AUTH_CREDENTIALS/.test(nav)).toBe(true);
  const api = await ctx.request.get(statsBase + '/stats.json');
  expect(api.status()).toBe(401);
  await ctx.close();
}, 60_000);

test('log in, see every backend, drain one from the page, traffic stops going to it', async () => {
  expect(await traffic(9)).toEqual([3, 3, 3]);
  const ctx = await browser({ httpCredentials: { username: 'ops', password: 'browser-pw' }, viewport: { width: 1366, height: 768 } });
  const page = ctx.pages()[0] ?? await ctx.newPage();
  const r = await page.goto(statsBase + '/');
  expect(r!.status()).toBe(200);
  const rows = page.locator('section#l-web tbody tr[data-backend]');
  expect(await rows.evaluateAll((trs) => trs.map((t) => t.getAttribute('data-backend')))).toEqual(['web1', 'web2', 'web3']);
  for (const n of ['web1', 'web2', 'web3']) expect(await state(page, `tr[data-backend="${n}"]`)).toBe('UP');
  expect(await state(page, 'section#l-api tr[data-backend="api1"]')).toBe('MAINT');

  // A POST from the logged-in browser without a valid token is refused (what a forged form would do).
  const forged = await ctx.request.post(statsBase + '/action', { form: { listen: 'web', backend: 'web1', action: 'maint', csrf: 'x.y' }, maxRedirects: 0 });
  expect(forged.status()).toBe(403);
  const noToken = await ctx.request.post(statsBase + '/action', { form: { listen: 'web', backend: 'web1', action: 'maint' }, maxRedirects: 0 });
  expect(noToken.status()).toBe(403);
  expect(h.app.backends.get('web', 'web1')!.admin).toBe('ready');

  await Promise.all([page.waitForURL(/\?ok=/), page.click('tr[data-backend="web2"] button[value="drain"]')]);
  await expect.poll(async () => state(page, 'tr[data-backend="web2"]')).toBe('DRAIN');
  expect(await page.locator('.flash').innerText()).toContain('web/web2: drain (now DRAIN)');
  expect(h.app.backends.get('web', 'web2')!.admin).toBe('drain');

  expect(await traffic(8)).toEqual([4, 0, 4]);

  // After a refresh, the page shows the new totals (auto-refresh replaces the URL without ?ok=).
  await page.waitForURL((u) => !u.search.includes('ok='), { timeout: 10_000 });
  await page.locator('tr[data-backend="web1"]').waitFor();
  await page.screenshot({ path: join(ARTIFACTS, 'stats-laptop.png'), fullPage: true });
  await page.goto(statsBase + '/?all=1');
  expect(await page.locator('tr[data-backend="web1"] td.x').first().isVisible()).toBe(true);
  await page.screenshot({ path: join(ARTIFACTS, 'stats-laptop-all-columns.png'), fullPage: true });
  await page.goto(statsBase + '/');
  expect(await page.locator('tr[data-backend="web1"] td.x').first().isVisible()).toBe(false);
  await page.setViewportSize({ width: 390, height: 844 });
  await page.reload();
  await page.screenshot({ path: join(ARTIFACTS, 'stats-phone.png'), fullPage: true });
  // On a phone the at-a-glance columns and the actions stay visible.
  expect(await page.locator('tr[data-backend="web2"] td.status').isVisible()).toBe(true);
  for (const sel of ['td.status', 'button[value="ready"]', 'button[value="maint"]']) {
    const box = await page.locator(`tr[data-backend="web2"] ${sel}`).boundingBox();
    expect(box, sel).not.toBeNull();
    expect(box!.x + box!.width, `${sel} fits a 390 px screen without scrolling`).toBeLessThanOrEqual(390);
  }
  await ctx.close();
}, 90_000);

test('pair and scaling panels render the HA and scaler status readably (laptop and phone)', async () => {
  // Pure rendering (renderPage) of status objects shaped as src/ha/node.ts HaStatus and
  // src/scale/scaler.ts ScaleStatus, with this run's real tables; the integration of those modules
  // is tested where they run (namespaces, snmpd, sshd).
  const now = Date.now();
  const html = renderPage({
    node: 'lb-01', role: 'master', now, tables: buildTables(h.app, { now }), refreshMs: 0, nonce: 'n',
    ha: {
      role: 'master', node: 'lb-01', vip: '10.0.0.1/24 on eth0',
      peer: { name: 'lb-02', role: 'backup', alive: true, lastSeenMs: 180, paths: { dedicated: true, public: false } },
      lastFailover: { at: new Date(now - 754_000).toISOString(), from: 'backup', to: 'master', reason: 'peer dead: no heartbeat on any path for 1500 ms' },
      incarnation: '1763768400123', stateVersion: 42, received: 1234, sent: 1240, garps: 10, lateHeartbeats: 1, transitions: 3,
      rejected: { bad_hmac: 0, replay: 2 },
    },
    scale: {
      enabled: true, active: true,
      targets: [
        { key: 'vds-01', kind: 'vds', name: 'vds-01', source: 'vds-01', agent: '10.0.0.21:161', version: '3', intervalMs: 10000, last: { at: now - 3000, status: 'ok', load: 2.41 }, samples: [] },
        { key: 'vds-02', kind: 'vds', name: 'vds-02', source: 'vds-02', agent: '10.0.0.22:161', version: '3', intervalMs: 10000, last: { at: now - 4000, status: 'unknown', reason: 'timeout' }, samples: [] },
      ],
      decisions: [{ action: 'clone', source: 'vds-01', reason: 'load 2.41 >= 2 for 3 samples', at: now - 60_000 }, { action: 'none', source: 'vds-02', reason: 'load unknown', at: now - 4000 }],
      clones: [{ name: 'vds-01-clone-a1b2c3', source: 'vds-01', listen: 'web', hypervisor: 'hv1', state: 'active', address: '10.0.0.31:80', createdAt: now - 50_000, since: now - 20_000 }],
      events: [{ at: now - 50_000, event: 'clone', message: 'cloned vds-01 as vds-01-clone-a1b2c3 on hv1' }],
      alarms: [], unknownClones: [], lastReconcile: { at: now - 30_000, ok: true, message: '' },
    },
  });
  expect(html).toContain('backup → master');
  // Without knowing the configured paths, both are shown; with ha.node.public not configured, the
  // public path is not a "public DOWN" (src/stats/module.ts passes haPaths from the config).
  expect(html).toContain('dedicated up, public DOWN');
  const input = { node: 'lb-01', role: 'master', now, tables: [], refreshMs: 0, nonce: 'n', ha: { role: 'master', peer: { name: 'lb-02', alive: true, lastSeenMs: 5, paths: { dedicated: true, public: false } } } };
  const noPublic = renderPage({ ...input, haPaths: { dedicated: true, public: false } });
  expect(noPublic).toContain('<dd>dedicated up</dd>');
  expect(noPublic).not.toContain('public DOWN');
  expect(renderPage({ ...input, haPaths: { dedicated: true, public: true } })).toContain('dedicated up, public DOWN');
  expect(html).toContain('vds-01 2.41');
  const ctx = await browser({ viewport: { width: 1366, height: 768 } });
  const page = ctx.pages()[0] ?? await ctx.newPage();
  await page.setContent(html);
  await page.screenshot({ path: join(ARTIFACTS, 'stats-panels-laptop.png'), fullPage: true });
  await page.setViewportSize({ width: 390, height: 844 });
  await page.screenshot({ path: join(ARTIFACTS, 'stats-panels-phone.png'), fullPage: true });
  await ctx.close();
}, 60_000);

test('at 1,366 px the actions are on screen; Name and Status stay pinned when the table scrolls; status cell, header, hide DOWN, words apart', async () => {
  await expect.poll(() => h.app.backends.get('dead', 'gone')!.health, { timeout: 10_000 }).toBe('down');
  const ctx = await browser({ httpCredentials: { username: 'ops', password: 'browser-pw' }, viewport: { width: 1366, height: 768 } });
  const page = ctx.pages()[0] ?? await ctx.newPage();
  await page.goto(statsBase + '/?all=1');
  const row = 'section#l-web tr[data-backend="web1"]';
  const scroller = page.locator('section#l-web .scroll');
  const [sw, cw] = await scroller.evaluate((e) => [e.scrollWidth, e.clientWidth]);
  expect(sw, 'all columns are wider than the screen').toBeGreaterThan(cw);
  for (const sel of ['button[value="ready"]', 'button[value="drain"]', 'button[value="maint"]']) {
    const box = (await page.locator(`${row} ${sel}`).boundingBox())!;
    expect(box.x + box.width, `${sel} on screen at 1366 px`).toBeLessThanOrEqual(1366);
  }
  const before = { name: (await page.locator(`${row} td.name`).boundingBox())!, status: (await page.locator(`${row} td.status`).boundingBox())! };
  await scroller.evaluate((e) => { e.scrollLeft = e.scrollWidth; });
  await expect.poll(() => scroller.evaluate((e) => e.scrollLeft)).toBeGreaterThan(100);
  const after = { name: (await page.locator(`${row} td.name`).boundingBox())!, status: (await page.locator(`${row} td.status`).boundingBox())! };
  expect(Math.abs(after.name.x - before.name.x)).toBeLessThan(2);
  expect(Math.abs(after.status.x - before.status.x)).toBeLessThan(2);
  // The status cell is not covered by the scrolled cells: the element at its centre is the cell itself.
  const onTop = await page.evaluate(([x, y]) => document.elementFromPoint(x, y)?.closest('td')?.className, [after.status.x + after.status.width / 2, after.status.y + after.status.height / 2]);
  expect(onTop).toContain('status');
  await page.screenshot({ path: join(ARTIFACTS, 'stats-1366-scrolled.png'), fullPage: true });

  // Status cell: state and time in it; header: pid, version, uptime.
  expect((await page.locator(`${row} td.status`).innerText()).trim()).toMatch(/^UP\s+\d+(s|m|h|d)/);
  const header = await page.locator('header').innerText();
  expect(header).toMatch(new RegExp(`pid\\s+${process.pid}\\s+version\\s+\\d+\\.\\d+\\.\\d+\\s+uptime\\s+\\d+`));
  // Words apart (copy, screen readers): heading parts and the off panels.
  expect((await page.locator('section#l-dead h2').innerText()).replace(/\s+/g, ' ')).toMatch(/^dead 0\/1 up 1 down \d+(\.\d)? req\/s/);
  expect((await page.locator('.panel.off-panel').first().innerText()).replace(/\s+/g, ' ')).toMatch(/^Pair HA not configured/);

  // Hide DOWN: the DOWN row goes, the heading says so, the view survives the auto-refresh.
  expect(await page.locator('tr[data-backend="gone"]').count()).toBe(1);
  await Promise.all([page.waitForURL(/hide=down/), page.click('header a:text("hide DOWN")')]);
  expect(await page.locator('tr[data-backend="gone"]').count()).toBe(0);
  expect(await page.locator('section#l-dead h2').innerText()).toContain('1 down (hidden)');
  expect(await page.locator('section#l-web tbody tr[data-backend]').count()).toBe(3);
  await page.waitForURL((u) => u.search.includes('hide=down'), { timeout: 10_000 });
  await ctx.close();
}, 90_000);

test('on a touch screen Drain and Maint ask first (cancel: nothing happens; OK: done); Ready does not', async () => {
  const ctx = await browser({ httpCredentials: { username: 'ops', password: 'browser-pw' }, viewport: { width: 390, height: 844 }, hasTouch: true, isMobile: true });
  const page = ctx.pages()[0] ?? await ctx.newPage();
  await page.goto(statsBase + '/');
  expect(await page.evaluate(() => matchMedia('(pointer: coarse)').matches)).toBe(true);
  const asked: string[] = [];
  page.once('dialog', (d) => { asked.push(d.message()); void d.dismiss(); });
  await page.tap('tr[data-backend="web3"] button[value="maint"]');
  await expect.poll(() => asked.length).toBe(1);
  expect(asked[0]).toBe('MAINT web/web3?');
  expect(h.app.backends.get('web', 'web3')!.admin).toBe('ready');
  page.once('dialog', (d) => { asked.push(d.message()); void d.accept(); });
  await Promise.all([page.waitForURL(/\?ok=/), page.tap('tr[data-backend="web3"] button[value="drain"]')]);
  expect(asked[1]).toBe('DRAIN web/web3?');
  expect(h.app.backends.get('web', 'web3')!.admin).toBe('drain');
  // Ready puts it back without a question (no dialog handler: one would be dismissed and fail this).
  page.on('dialog', (d) => { asked.push(d.message()); void d.dismiss(); });
  await page.tap('tr[data-backend="web3"] button[value="ready"]');
  await expect.poll(() => h.app.backends.get('web', 'web3')!.admin, { timeout: 10_000 }).toBe('ready');
  await page.waitForLoadState();
  expect(asked).toHaveLength(2);
  await ctx.close();
}, 90_000);
