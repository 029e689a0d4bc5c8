import { describe, expect, test } from 'vitest';
import { readFileSync } from 'node:fs';
import { Authenticator, CsrfTokens, hashPassword, parseHash, secretEquals } from '../../src/stats/auth.js';
import { verdict, type ListenSummary, type PairSummary, type StatusNote } from '../../src/admin/status.js';
import { COLUMNS } from '../../src/stats/columns.js';
import { csvEscape } from '../../src/stats/model.js';
import { esc } from '../../src/stats/page.js';

const basic = (u: string, p: string) => 'Basic ' + Buffer.from(`${u}:${p}`).toString('base64');

describe('stats auth', () => {
  test('scrypt hash round trip, wrong password, unknown user, plaintext user', async () => {
    const h = await hashPassword('s3cret pw', 10);
    expect(h).toMatch(/^\$scrypt\$ln=10,r=8,p=1\$[A-Za-z0-9+/]+\$[A-Za-z0-9+/]+$/);
    expect(parseHash(h)?.key.length).toBe(32);
    const a = new Authenticator([{ user: 'ops', password: h }, { user: 'old', password: 'plain' }]);
    expect(await a.check(basic('ops', 's3cret pw'))).toBe('ops');
    expect(await a.check(basic('ops', 's3cret pX'))).toBeUndefined();
    expect(await a.check(basic('nobody', 's3cret pw'))).toBeUndefined();
    expect(await a.check(basic('old', 'plain'))).toBe('old');
    expect(await a.check(basic('old', 'plain2'))).toBeUndefined();
    expect(await a.check(undefined)).toBeUndefined();
    expect(await a.check('Bearer x')).toBeUndefined();
    expect(Authenticator.plaintextUsers([{ user: 'ops', password: h }, { user: 'old', password: 'plain' }])).toEqual(['old']);
  });

  test('a malformed $scrypt$ string is a config error, not a plaintext password', () => {
    expect(() => new Authenticator([{ user: 'ops', password: '$scrypt$ln=15$zzz' }])).toThrow(/malformed scrypt hash/);
  });

  test('two hashes of one password differ (random salt)', async () => {
    expect(await hashPassword('x', 10)).not.toBe(await hashPassword('x', 10));
  });

  test('CSRF tokens are bound to the user and expire', () => {
    const c = new CsrfTokens(60_000);
    const t = c.issue('ops', 1_000_000);
    expect(c.verify('ops', t, 1_000_500)).toBe(true);
    expect(c.verify('eve', t, 1_000_500)).toBe(false);
    expect(c.verify('ops', t, 1_000_000 + 61_000)).toBe(false);
    expect(c.verify('ops', t.slice(0, -1) + (t.endsWith('A') ? 'B' : 'A'), 1_000_500)).toBe(false);
    expect(c.verify('ops', undefined, 1_000_500)).toBe(false);
    expect(c.verify('ops', '', 1_000_500)).toBe(false);
    expect(new CsrfTokens().verify('ops', t, 1_000_500)).toBe(false); // another process's secret
  });

  test('secretEquals', () => {
    expect(secretEquals('abcdefabcdefabcdef', 'abcdefabcdefabcdef')).toBe(true);
    expect(secretEquals('abcdefabcdefabcdef', 'abcdefabcdefabcdeX')).toBe(false);
    expect(secretEquals('abc', 'abcd')).toBe(false);
  });
});

describe('pairlb status verdict (Nagios)', () => {
  const L = (name: string, up: number, down: string[] = [], drain = 0, maint = 0): ListenSummary => ({ name, up, down, drain, maint, total: up + down.length + drain + maint });
  const solo: PairSummary = { configured: false, role: 'standalone' };
  const cases: [string, ListenSummary[], PairSummary, number][] = [
    ['all up, standalone', [L('web', 2)], solo, 0],
    ['drain and maint are not warnings', [L('web', 1, [], 1, 1)], solo, 0],
    ['a backend down', [L('web', 1, ['web2'])], solo, 1],
    ['no backend up', [L('web', 0, ['web1', 'web2'])], solo, 2],
    ['no backend up because all in maint', [L('web', 0, [], 0, 2)], solo, 2],
    ['one listen of two without backends up', [L('web', 2), L('api', 0, ['a1'])], solo, 2],
    ['master with live peer', [L('web', 2)], { configured: true, role: 'master', peer: 'lb-02', peerAgeMs: 200, peerAlive: true, peerRole: 'backup' }, 0],
    ['backup with live master peer', [L('web', 2)], { configured: true, role: 'backup', peer: 'lb-01', peerAgeMs: 200, peerAlive: true, peerRole: 'master' }, 0],
    ['master with silent peer', [L('web', 2)], { configured: true, role: 'master', peer: 'lb-02', peerAgeMs: 9000, peerAlive: false }, 1],
    ['backup with silent peer: no master', [L('web', 2)], { configured: true, role: 'backup', peer: 'lb-01', peerAlive: false }, 2],
    ['two backups', [L('web', 2)], { configured: true, role: 'backup', peer: 'lb-01', peerAgeMs: 100, peerAlive: true, peerRole: 'backup' }, 2],
    ['no listen at all', [], solo, 2],
    ['master, state in sync', [L('web', 2)], { configured: true, role: 'master', peer: 'lb-02', peerAgeMs: 200, peerAlive: true, peerRole: 'backup', stateSync: 'same', stateConflicts: 0 }, 0],
    ['master, state behind (being replicated)', [L('web', 2)], { configured: true, role: 'master', peer: 'lb-02', peerAgeMs: 200, peerAlive: true, peerRole: 'backup', stateSync: 'behind' }, 0],
    ['master, state diverged', [L('web', 2)], { configured: true, role: 'master', peer: 'lb-02', peerAgeMs: 200, peerAlive: true, peerRole: 'backup', stateSync: 'diverged' }, 1],
    ['backup, a state conflict was reconciled', [L('web', 2)], { configured: true, role: 'backup', peer: 'lb-01', peerAgeMs: 200, peerAlive: true, peerRole: 'master', stateSync: 'same', stateConflicts: 1 }, 1],
    ['conflict does not hide a critical', [L('web', 0, ['w'])], { configured: true, role: 'master', peer: 'lb-02', peerAgeMs: 200, peerAlive: true, peerRole: 'backup', stateConflicts: 2 }, 2],
  ];
  test.each(cases)('%s', (_n, listens, pair, code) => {
    const v = verdict(listens, pair);
    expect(v.code).toBe(code);
    expect(v.text.startsWith(`PAIRLB ${['OK', 'WARNING', 'CRITICAL'][code]} - `)).toBe(true);
    expect(v.text).not.toContain('\n');
  });
  test('summary text', () => {
    expect(verdict([L('web', 1, ['web2'])], solo).text).toBe('PAIRLB WARNING - web: 1/2 up (web2 DOWN); role standalone | web_up=1;;1:;0;2');
  });
  const note = (level: 1 | 2, text = 'x'): StatusNote => ({ source: 'scale', level, text });
  test.each([
    ['no notes', [L('web', 2)], [], 0],
    ['a scaler warning makes an all-UP pair WARNING', [L('web', 2)], [note(1)], 1],
    ['a critical note (expired certificate)', [L('web', 2)], [note(2)], 2],
    ['a warning note does not lower a CRITICAL', [L('web', 0, ['w'])], [note(1)], 2],
    ['the highest note wins', [L('web', 2)], [note(1), note(2), note(1)], 2],
  ] as [string, ListenSummary[], StatusNote[], number][])('notes: %s', (_n, listens, notes, code) => {
    expect(verdict(listens, solo, notes).code).toBe(code);
  });
  test('notes text: one line, after the pair, before the perfdata (| and newlines in a note cannot break it)', () => {
    expect(verdict([L('web', 2)], solo, [note(1, 'scale: last reconcile failed (a | b\nc)')]).text)
      .toBe('PAIRLB WARNING - web: 2/2 up; role standalone; scale: last reconcile failed (a b c) | web_up=2;;1:;0;2');
  });
});

describe('column table and escaping', () => {
  test('column keys are unique and every metric has one type', () => {
    const keys = COLUMNS.map((c) => c.key);
    expect(new Set(keys).size).toBe(keys.length);
    const types = new Map<string, string>();
    for (const c of COLUMNS) if (c.prom) {
      const t = types.get(c.prom.metric);
      if (t) expect(c.prom.type).toBe(t); else types.set(c.prom.metric, c.prom.type);
    }
  });
  test('docs/operations-stats.md documents every column', () => {
    const doc = readFileSync(new URL('../../docs/operations-stats.md', import.meta.url), 'utf8');
    const missing = COLUMNS.map((c) => c.key).filter((k) => !doc.includes('`' + k + '`') && !/^http_[1-5]xx$/.test(k));
    expect(missing).toEqual([]);
    for (const c of COLUMNS) if (c.prom) expect(doc, c.prom.metric).toContain(c.prom.metric);
  });
  test('csv escaping, spreadsheet formulas neutralised', () => {
    expect(csvEscape('a,b')).toBe('"a,b"');
    expect(csvEscape('say "hi"')).toBe('"say ""hi"""');
    expect(csvEscape('=HYPERLINK("x")')).toBe(`"'=HYPERLINK(""x"")"`);
    expect(csvEscape(-3)).toBe('-3');
    expect(csvEscape(null)).toBe('');
  });
  test('html escaping', () => {
    expect(esc(`<img src=x onerror="a('b')">&`)).toBe('&lt;img src=x onerror=&quot;a(&#39;b&#39;)&quot;&gt;&amp;');
  });
});
