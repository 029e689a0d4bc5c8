import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { IntervalHistogram, diffBins, percentilesOf } from '../../src/ha/intervals.js';
import { StateStore } from '../../src/state/store.js';
import { silentLogger } from '../../src/log.js';

/** Pure parts of the HA isolation (issue 12): heartbeat-interval bins, and the store's off-loop saves. */

describe('heartbeat interval histogram', () => {
  it('counts intervals in 1 ms bins; percentiles and max; a gap starts a new series', () => {
    const h = new IntervalHistogram();
    const at = [0, 50, 100, 151, 201, 251, 301.5, 420];
    for (const t of at) h.beat(t);
    h.gap();
    h.beat(10_000); // first beat after a gap: no interval
    h.beat(10_050);
    const s = h.summary();
    expect(s.count).toBe(8);
    expect(s.bins).toEqual({ 50: 6, 51: 1, 118: 1 });
    expect([s.p50Ms, s.p99Ms, s.maxMs]).toEqual([50, 118, 118.5]);
  });

  it('window figures from two cumulative snapshots', () => {
    const a = { 50: 10, 51: 2 }, b = { 50: 110, 51: 2, 70: 1, 300: 1 };
    const d = diffBins(a, b);
    expect(d).toEqual({ 50: 100, 70: 1, 300: 1 });
    expect(percentilesOf(d)).toEqual({ p50Ms: 50, p99Ms: 70 });
    expect(percentilesOf({})).toEqual({ p50Ms: 0, p99Ms: 0 });
    expect(diffBins(undefined, { 5: 1 })).toEqual({ 5: 1 });
  });

  it('intervals of 5 s and more share the last bin', () => {
    const h = new IntervalHistogram();
    h.beat(0); h.beat(7000); h.beat(17_000);
    expect(h.summary().bins).toEqual({ 5000: 2 });
  });
});

describe('state store saves off the event loop', () => {
  const dirs: string[] = [];
  afterAll(() => { for (const d of dirs) rmSync(d, { recursive: true, force: true }); });

  it('a synchronous save (scaler write-ahead) while a debounced one is in flight: the file ends with the newer state, no temp file left', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'pairlb-store-')); dirs.push(dir);
    const s = new StateStore(dir, silentLogger, 'n1');
    let items = ['a'];
    s.register('t', { export: () => ({ items: [...items] }), import: (v) => { items = (v as { items: string[] }).items; } });
    s.changed('t');
    (s as unknown as { saveSoon(): void }).saveSoon(); // the debounced save, started now: write + fsync on the thread pool
    items = ['a', 'b'];
    s.changed('t');
    s.saveNow(); // same tick: written, fsynced and renamed before the async one completes
    const saving = () => (s as unknown as { saving: boolean }).saving;
    for (let i = 0; i < 200 && saving(); i++) await new Promise((r) => setTimeout(r, 10));
    expect(saving()).toBe(false);
    const doc = JSON.parse(readFileSync(join(dir, 'runtime.json'), 'utf8'));
    expect(doc.sections.t.items).toEqual(['a', 'b']);
    expect(readdirSync(dir).filter((f) => f.includes('.tmp'))).toEqual([]);
    s.close();
  });

  it('debounced saves: the last change is on disk once the save settles', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'pairlb-store-')); dirs.push(dir);
    const s = new StateStore(dir, silentLogger, 'n1');
    let n = 0;
    s.register('t', { export: () => ({ n }), import: () => {} });
    for (let i = 0; i < 5; i++) { n = i; s.changed('t'); await new Promise((r) => setTimeout(r, 7)); }
    const read = () => { try { return JSON.parse(readFileSync(join(dir, 'runtime.json'), 'utf8')).sections.t.n; } catch { return undefined; } };
    for (let i = 0; i < 300 && read() !== 4; i++) await new Promise((r) => setTimeout(r, 10));
    expect(read()).toBe(4);
    expect(readdirSync(dir).filter((f) => f.includes('.tmp'))).toEqual([]);
  });
});
