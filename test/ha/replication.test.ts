import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { deflateRawSync } from 'node:zlib';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { silentLogger } from '../../src/log.js';
import { StateStore, parseStateDoc, type StateDoc } from '../../src/state/store.js';
import { compareVersions, contentHash, mergeVectors, type StateVersion, type VersionOrder } from '../../src/state/version.js';
import { decideOnDoc, diffDocs, mustSend, Outbox, Replicator, type DocDecision } from '../../src/ha/replication.js';
import { PathLiveness } from '../../src/ha/paths.js';
import { decodeAdvertBody, encodeAdvertBody } from '../../src/ha/advert-body.js';
import type { HaRole } from '../../src/ha/fsm.js';
import { chunkPayload, CHUNK_DATA, MAX_CHUNKS, Reassembler } from '../../src/ha/chunks.js';
import { deflateRawSync as deflate, inflateRawSync } from 'node:zlib';
import { randomBytes } from 'node:crypto';
import { renderPage } from '../../src/stats/page.js';

/**
 * The pure parts of replication, table-driven: version comparison, what to do with a received
 * document, resend scheduling, path liveness from echoes, the advert body codec; then two
 * Replicators over an in-memory link that loses what the test says (the shell with real sockets
 * and namespaces: test/ha/sync.test.ts).
 */

const V = (vv: Record<string, number>, hash = 'aaaaaaaaaaaaaaaa'): StateVersion => ({ vv, hash });

describe('compareVersions', () => {
  const rows: [string, StateVersion, StateVersion, VersionOrder][] = [
    ['empty = empty', V({}), V({}), 'same'],
    ['equal vectors, equal hash', V({ lb1: 3, lb2: 1 }), V({ lb1: 3, lb2: 1 }), 'same'],
    ['a missing key counts as 0', V({ lb1: 3, lb2: 0 }), V({ lb1: 3 }), 'same'],
    ['one more change here', V({ lb1: 4, lb2: 1 }), V({ lb1: 3, lb2: 1 }), 'ahead'],
    ['a node the other never heard of', V({ lb1: 3, lb2: 1 }), V({ lb1: 3 }), 'ahead'],
    ['peer has one more', V({ lb1: 3 }), V({ lb1: 3, lb2: 1 }), 'behind'],
    ['split: one change each, same total', V({ lb1: 4, lb2: 1 }), V({ lb1: 3, lb2: 2 }), 'diverged'],
    ['split: different totals', V({ lb1: 9 }), V({ lb1: 3, lb2: 1 }), 'diverged'],
    ['same vector, different content (lost change re-made)', V({ lb1: 5 }, '1111111111111111'), V({ lb1: 5 }, '2222222222222222'), 'diverged'],
    ['ahead by vector even if hashes differ', V({ lb1: 6 }, '1111111111111111'), V({ lb1: 5 }, '2222222222222222'), 'ahead'],
    ['legacy scalar files: higher wins', V({ '*': 7 }), V({ '*': 6 }), 'ahead'],
  ];
  it.each(rows)('%s', (_n, a, b, want) => {
    expect(compareVersions(a, b)).toBe(want);
    const mirror = { same: 'same', ahead: 'behind', behind: 'ahead', diverged: 'diverged' }[want];
    expect(compareVersions(b, a)).toBe(mirror);
  });
  it('mergeVectors is the pointwise maximum', () => {
    expect(mergeVectors({ lb1: 4, lb2: 1 }, { lb1: 3, lb2: 2, x: 1 })).toEqual({ lb1: 4, lb2: 2, x: 1 });
  });
});

describe('decideOnDoc (received document vs ours)', () => {
  const rows: [VersionOrder, HaRole, HaRole, DocDecision][] = [
    ['ahead', 'master', 'backup', 'apply'],
    ['ahead', 'backup', 'master', 'apply'], // newer wins whatever the roles (both restarted)
    ['ahead', 'fault', 'init', 'apply'],
    ['same', 'master', 'backup', 'same'],
    ['behind', 'master', 'backup', 'stale'],
    ['diverged', 'master', 'backup', 'lose'],
    ['diverged', 'master', 'fault', 'lose'],
    ['diverged', 'master', 'init', 'lose'],
    ['diverged', 'backup', 'master', 'win'],
    ['diverged', 'fault', 'master', 'win'],
    ['diverged', 'master', 'master', 'unsettled'],
    ['diverged', 'backup', 'backup', 'unsettled'],
    ['diverged', 'fault', 'backup', 'unsettled'],
  ];
  it.each(rows)('%s from a %s peer while we are %s → %s', (order, sender, ours, want) => {
    expect(decideOnDoc(order, sender, ours)).toBe(want);
  });
  it.each([['same', false], ['behind', false], ['ahead', true], ['diverged', true]] as const)('mustSend(%s) = %s', (o, want) => expect(mustSend(o)).toBe(want));
});

describe('Outbox: resend with backoff until acknowledged', () => {
  // Each step: [time, action, expected result of offer() or attempts]
  type Step = [number, 'offer', string, boolean] | [number, 'sent'] | [number, 'ack'];
  const rows: [string, Step[]][] = [
    ['first offer sends at once, then waits first, 2×first, 4×first, capped at max', [
      [0, 'offer', 'v1', true], [0, 'sent'],
      [99, 'offer', 'v1', false], [100, 'offer', 'v1', true], [100, 'sent'],
      [299, 'offer', 'v1', false], [300, 'offer', 'v1', true], [300, 'sent'],
      [699, 'offer', 'v1', false], [700, 'offer', 'v1', true], [700, 'sent'],
      [1449, 'offer', 'v1', false], [1450, 'offer', 'v1', true], [1450, 'sent'], // 800 capped to 750
      [2200, 'offer', 'v1', true],
    ]],
    ['a newer item replaces the outstanding one and goes at once', [
      [0, 'offer', 'v1', true], [0, 'sent'], [10, 'offer', 'v2', true], [10, 'sent'], [50, 'offer', 'v2', false],
    ]],
    ['ack clears: the same key is then new again', [
      [0, 'offer', 'v1', true], [0, 'sent'], [5, 'ack'], [6, 'offer', 'v1', true],
    ]],
  ];
  it.each(rows)('%s', (_n, steps) => {
    const o = new Outbox({ first: 100, max: 750 });
    for (const s of steps) {
      if (s[1] === 'offer') expect(o.offer(s[2], s[0]), `offer ${s[2]} at ${s[0]}`).toBe(s[3]);
      else if (s[1] === 'sent') o.sent(s[0]);
      else o.ack();
    }
  });
  it('counts attempts and pending time', () => {
    const o = new Outbox({ first: 100, max: 750 });
    o.offer('v', 1000); o.sent(1000); o.offer('v', 1100); o.sent(1100);
    expect(o.attempts).toBe(2);
    expect(o.pendingMs(1500)).toBe(500);
    o.ack();
    expect(o.pendingMs(1500)).toBeUndefined();
  });
});

describe('PathLiveness: up only when the peer answers on the path', () => {
  const D = 200;
  type Ev = ['rx', 0 | 1, bigint, number, boolean?] | ['echo', [bigint, bigint], bigint, number];
  const rows: [string, Ev[], number, [boolean, boolean], [bigint, bigint]?][] = [
    ['nothing heard: both down', [], 0, [false, false]],
    ['heard on dedicated, no echo yet: down (one-way in our direction unknown)', [['rx', 0, 5n, 10]], 20, [false, false], [5n, 0n]],
    ['heard and echoed on both', [['rx', 0, 5n, 10], ['rx', 1, 6n, 10], ['echo', [3n, 4n], 4n, 10]], 20, [true, true], [5n, 6n]],
    ['one-way cut us → peer on dedicated: the echo stops advancing, down after deadtime', [
      ['rx', 0, 5n, 0], ['rx', 1, 6n, 0], ['echo', [3n, 4n], 4n, 0],
      ['rx', 0, 7n, 150], ['rx', 1, 8n, 150], ['echo', [3n, 10n], 10n, 150],
      ['rx', 0, 9n, 250], ['rx', 1, 10n, 250], ['echo', [3n, 12n], 12n, 250],
    ], 260, [false, true], [9n, 10n]],
    ['one-way cut peer → us on dedicated: not heard there, down', [
      ['rx', 0, 5n, 0], ['rx', 1, 6n, 0], ['echo', [3n, 4n], 4n, 0], ['rx', 1, 8n, 150], ['echo', [9n, 10n], 10n, 150],
    ], 260, [false, true], [5n, 8n]],
    ['an echo above our sequence (of our previous run) proves nothing', [['rx', 0, 5n, 0], ['echo', [900n, 0n], 4n, 0]], 10, [false, false]],
    ['a new peer incarnation restarts the echoed numbers', [['rx', 0, 500n, 0], ['rx', 0, 2n, 5, true]], 10, [false, false], [2n, 0n]],
  ];
  it.each(rows)('%s', (_n, evs, now, want, echo) => {
    const l = new PathLiveness(D);
    for (const e of evs) {
      if (e[0] === 'rx') l.received(e[1], e[2], e[3], !!e[4]);
      else l.echoed(e[1], e[2], e[3]);
    }
    expect([l.up(0, now), l.up(1, now)]).toEqual(want);
    if (echo) expect(l.echo()).toEqual(echo);
  });
});

describe('advert body (TLV)', () => {
  it('round-trips echo, version and conflict ack', () => {
    const b = { echo: [123n, 2n ** 40n] as [bigint, bigint], version: V({ lb1: 7, 'lb-02.example': 70000 }, '0123456789abcdef'), conflictAck: 'fedcba9876543210' };
    expect(decodeAdvertBody(encodeAdvertBody(b))).toEqual(b);
  });
  it('empty body (an older node) decodes to nothing; unknown tags are skipped; truncation keeps what was whole', () => {
    expect(decodeAdvertBody(Buffer.alloc(0))).toEqual({});
    const known = encodeAdvertBody({ conflictAck: '0011223344556677' });
    expect(decodeAdvertBody(Buffer.concat([Buffer.from([99, 0, 2, 1, 2]), known]))).toEqual({ conflictAck: '0011223344556677' });
    const full = encodeAdvertBody({ echo: [1n, 2n], version: V({ lb1: 1 }) });
    expect(decodeAdvertBody(full.subarray(0, full.length - 2))).toEqual({ echo: [1n, 2n] });
  });
});

describe('chunks: documents split to fit one frame, reassembled across resends', () => {
  const doc = (n: number) => randomBytes(n);
  it.each([0, 1, CHUNK_DATA, CHUNK_DATA + 1, 5 * CHUNK_DATA + 7])('%i bytes: ceil(n / 1200) chunks, each ≤ 1214 bytes, in any order → the same bytes', (n) => {
    const d = doc(n);
    const cs = chunkPayload(d);
    expect(cs.length).toBe(Math.max(1, Math.ceil(n / CHUNK_DATA)));
    for (const c of cs) expect(c.length).toBeLessThanOrEqual(CHUNK_DATA + 14);
    const r = new Reassembler();
    const order = cs.map((_, i) => i).reverse();
    const results = order.map((i) => r.add(cs[i], 0));
    expect(results.slice(0, -1).every((x) => x.kind === 'partial')).toBe(true);
    const last = results[results.length - 1];
    expect(last.kind === 'whole' && last.doc.equals(d)).toBe(true);
    expect(r.pending).toBe(0);
  });
  it('chunks of two sends of the same document complete each other; duplicates are harmless', () => {
    const d = doc(4000), cs = chunkPayload(d), r = new Reassembler();
    expect(r.add(cs[0], 0).kind).toBe('partial');
    expect(r.add(cs[0], 1).kind).toBe('partial');
    expect(r.add(cs[2], 2).kind).toBe('partial'); // first send: 1 and 3 lost
    expect(r.add(cs[1], 3).kind).toBe('partial'); // the resend brings them
    const w = r.add(cs[3], 4);
    expect(w.kind === 'whole' && w.doc.equals(d)).toBe(true);
  });
  it('bounded: at most 2 incomplete transfers, forgotten after the TTL', () => {
    const r = new Reassembler(2, 1000);
    const [a, b, c] = [chunkPayload(doc(3000)), chunkPayload(doc(3000)), chunkPayload(doc(3000))];
    r.add(a[0], 0); r.add(b[0], 0); r.add(c[0], 0);
    expect(r.pending).toBe(2);
    expect(r.add(a[1], 0).kind).toBe('partial'); // a was evicted: starts again
    r.add(c[1], 5000); // the others are past the TTL
    expect(r.pending).toBe(1);
  });
  it('a payload without the chunk magic is a whole document (older pairlb): no raw deflate stream starts with it', () => {
    for (let i = 0; i < 300; i++) {
      const z = deflate(Buffer.from(JSON.stringify({ version: i, sections: { x: randomBytes(i).toString('base64') } })));
      expect(z[0] & 0x06).not.toBe(0x06);
      const w = new Reassembler().add(z, 0);
      expect(w.kind === 'whole' && w.doc.equals(z)).toBe(true);
    }
    expect(JSON.parse(inflateRawSync(deflate(Buffer.from('{"a":1}'))).toString())).toEqual({ a: 1 });
  });
  it('malformed chunk headers are refused; too large a document is refused at the sender', () => {
    const c = chunkPayload(doc(3000))[1];
    const bad = Buffer.from(c); bad.writeUInt16BE(7, 10); // index ≥ count
    expect(new Reassembler().add(bad, 0).kind).toBe('bad');
    const zero = Buffer.from(c); zero.writeUInt16BE(0, 12);
    expect(new Reassembler().add(zero, 0).kind).toBe('bad');
    expect(() => chunkPayload(Buffer.alloc(MAX_CHUNKS * CHUNK_DATA + 1))).toThrow(/max 1024/);
  });
});

describe('state documents', () => {
  const dirs: string[] = [];
  afterAll(() => { for (const d of dirs) rmSync(d, { recursive: true, force: true }); });
  const tmp = () => { const d = mkdtempSync(join(tmpdir(), 'pairlb-state-')); dirs.push(d); return d; };

  it('parseStateDoc validates with the schema: paths of the first issues', () => {
    const ok = { version: 2, vv: { lb1: 2 }, hash: '0123456789abcdef', savedAt: 'x', sections: { backends: { version: 1, entries: [{ listen: 'web', name: 'web3', added: { address: '10.0.0.1:80', backup: false, check: true, origin: 'runtime' } }] } } };
    expect(parseStateDoc(ok).ok).toBe(true);
    const bad = structuredClone(ok) as any;
    bad.sections.backends.entries[0].added.address = 'nowhere';
    const r = parseStateDoc(bad);
    expect(r.ok).toBe(false);
    expect(!r.ok && r.error).toMatch(/^sections\.backends\.entries\.0\.added\.address: expected host:port/);
    expect(parseStateDoc({ version: -1, savedAt: 'x', sections: {} }).ok).toBe(false);
    expect(parseStateDoc({ version: 1, savedAt: 'x', sections: { scale: { version: 2, clones: [] } } }).ok).toBe(false);
    expect(parseStateDoc('{"version":1}').ok).toBe(false);
  });

  it('a legacy file (scalar version) loads with a vector under "*" and a computed hash', () => {
    const d = tmp();
    const sections = { t: { n: 1 } };
    writeFileSync(join(d, 'runtime.json'), JSON.stringify({ version: 7, node: 'lb1', savedAt: 'x', sections }));
    const s = new StateStore(d, silentLogger, 'lb2');
    s.load();
    expect(s.currentVersion()).toEqual({ vv: { '*': 7 }, hash: contentHash(sections) });
  });

  it('an invalid file is refused (start from config), not cast, and kept aside from the next save', () => {
    const d = tmp();
    const bad = JSON.stringify({ version: 'seven', savedAt: 'x', sections: {} });
    writeFileSync(join(d, 'runtime.json'), bad);
    const s = new StateStore(d, silentLogger, 'lb1');
    s.load();
    let imported: unknown;
    s.register('t', { export: () => ({}), import: (v) => { imported = v; } });
    expect(imported).toBeUndefined();
    expect(s.version).toBe(0);
    const aside = readdirSync(d).filter((f) => f.startsWith('runtime.json.invalid-'));
    expect(aside.length).toBe(1);
    expect(readFileSync(join(d, aside[0]), 'utf8')).toBe(bad);
  });

  it('own changes count under the node name; an applied document brings its version; imports are not changes', () => {
    const a = new StateStore(undefined, silentLogger, 'lb1'), b = new StateStore(undefined, silentLogger, 'lb2');
    let va = 0, vb = 0;
    a.register('t', { export: () => ({ n: va }), import: (v) => { va = (v as { n: number }).n; } });
    b.register('t', { export: () => ({ n: vb }), import: (v) => { vb = (v as { n: number }).n; b.changed('t'); } }); // an import that reports a change
    va = 1; a.changed('t'); va = 2; a.changed('t');
    expect(a.currentVersion().vv).toEqual({ lb1: 2 });
    b.apply(a.snapshot());
    expect(vb).toBe(2);
    expect(b.currentVersion()).toEqual(a.currentVersion());
    vb = 3; b.changed('t');
    expect(compareVersions(b.currentVersion(), a.currentVersion())).toBe('ahead');
    va = 9; a.changed('t');
    expect(compareVersions(b.currentVersion(), a.currentVersion())).toBe('diverged');
  });

  it('diffDocs lists items per listen/name and per clone', () => {
    const doc = (entries: unknown[], clones: unknown[] = []): StateDoc => ({ version: 0, vv: {}, hash: '0000000000000000', savedAt: '', sections: { backends: { version: 1, entries }, scale: { version: 1, clones, groups: {} } } });
    const e = (name: string, o: object = {}) => ({ listen: 'web', name, ...o });
    const kept = doc([e('web3', { added: { address: '10.0.0.3:80' } }), e('web1', { admin: 'drain' })]);
    const disc = doc([e('web4', { added: { address: '10.0.0.4:80' } }), e('web1', { admin: 'maint' })], [{ name: 'c1' }]);
    expect(diffDocs(kept, disc, 'lb1', 'lb2')).toEqual([
      'backends web/web1: lb1 kept {"admin":"drain","listen":"web","name":"web1"}; lb2 discarded {"admin":"maint","listen":"web","name":"web1"}',
      'backends web/web3: only in lb1\'s kept state {"added":{"address":"10.0.0.3:80"},"listen":"web","name":"web3"}',
      'backends web/web4: only in lb2\'s discarded state {"added":{"address":"10.0.0.4:80"},"listen":"web","name":"web4"}',
      'scale c1: only in lb2\'s discarded state {"name":"c1"}',
    ]);
    expect(diffDocs(kept, kept, 'lb1', 'lb2')).toEqual([]);
  });
});

/**
 * Two replicators joined by an in-memory link whose loss the test controls. Time is simulated;
 * each `run(ms)` advances it in keepalive steps, exchanging adverts both ways.
 */
describe('two replicators over a lossy link', () => {
  const KA = 50;
  interface Node { name: string; store: StateStore; repl: Replicator; role: HaRole; data: { items: string[] }; dir: string }
  const dirs: string[] = [];
  afterAll(() => { for (const d of dirs) rmSync(d, { recursive: true, force: true }); });

  function pair() {
    let now = 0;
    const drop = { ab: false, ba: false, every: 0 };
    let nth = 0;
    const queue: { to: Node; payload: Buffer; fromRole: HaRole }[] = [];
    const mk = (name: string, role: HaRole): Node => {
      const dir = mkdtempSync(join(tmpdir(), `pairlb-repl-${name}-`)); dirs.push(dir);
      const store = new StateStore(dir, silentLogger, name);
      const n = { name, store, role, data: { items: [] as string[] }, dir } as Node;
      store.register('t', { export: () => ({ items: [...n.data.items] }), import: (v) => { n.data.items = [...(v as { items: string[] }).items]; } });
      n.repl = new Replicator({
        log: silentLogger, store, node: name, peer: name === 'lb1' ? 'lb2' : 'lb1', enabled: true,
        role: () => n.role, peerAlive: () => true,
        send: (payload) => {
          const to = n === a ? b : a;
          if (n === a ? drop.ab : drop.ba) return;
          if (drop.every && ++nth % drop.every === 0) return;
          queue.push({ to, payload, fromRole: n.role });
        },
      }, { first: 2 * KA, max: 1000 });
      return n;
    };
    const a = mk('lb1', 'master'), b = mk('lb2', 'backup');
    const advert = (from: Node, to: Node, dropped: boolean) => { if (!dropped) to.repl.onPeerAdvert(from.repl.advertVersion(), from.repl.conflictAck, now); };
    const run = (ms: number) => {
      for (const end = now + ms; now < end; now += KA) {
        advert(a, b, drop.ab); advert(b, a, drop.ba);
        while (queue.length) { const m = queue.shift()!; m.to.repl.onState(m.payload, m.fromRole, now); }
        a.repl.evaluate(now); b.repl.evaluate(now);
      }
    };
    const change = (n: Node, item: string) => { n.data.items.push(item); n.store.changed('t'); n.repl.evaluate(now); };
    return { a, b, drop, run, change };
  }

  it('a change on the master while its direction is lossy is resent until acknowledged', () => {
    const { a, b, drop, run, change } = pair();
    drop.ab = true;
    change(a, 'web3');
    run(1000);
    expect(b.data.items).toEqual([]);
    expect(a.repl.inSync()).toBe(false);
    expect(a.repl.status(0).resent).toBeGreaterThan(2);
    drop.ab = false;
    run(1200); // the next resend (backoff ≤ 1 s) gets through
    expect(b.data.items).toEqual(['web3']);
    expect(a.repl.inSync() && b.repl.inSync()).toBe(true);
    expect(a.repl.status(0).sync).toBe('same');
  });

  it('a large document (60 chunks) over a link that loses every 7th datagram converges by resends', () => {
    const { a, b, drop, run, change } = pair();
    drop.every = 7;
    const big = randomBytes(70_000).toString('base64');
    change(a, big);
    run(3000);
    expect(b.data.items).toEqual([big]);
    expect(a.repl.inSync()).toBe(true);
  });

  it('diverged after a split: the master\'s state wins, both record the conflict, the loser\'s state is saved', () => {
    const { a, b, drop, run, change } = pair();
    change(a, 'base'); run(200);
    drop.ab = drop.ba = true;
    change(a, 'web3'); change(b, 'web4');
    b.role = 'master';
    run(300);
    b.role = 'backup'; // settled: lb1 preferred
    drop.ab = drop.ba = false;
    run(500);
    expect(a.data.items).toEqual(['base', 'web3']);
    expect(b.data.items).toEqual(['base', 'web3']);
    expect(a.repl.inSync() && b.repl.inSync()).toBe(true);
    for (const [n, here] of [[a, 'kept'], [b, 'discarded']] as const) {
      const c = n.repl.status(0).conflicts;
      expect(c.count, n.name).toBe(1);
      expect(c.last).toMatchObject({ winner: 'lb1', loser: 'lb2', here, rule: "the master's state wins" });
      expect(c.last!.differences).toEqual(['t: differs (lb1 kept {"items":["base","web3"]}; lb2 discarded {"items":["base","web4"]})']);
      const f = readdirSync(n.dir).filter((x) => x.startsWith('conflict-'));
      expect(f.length).toBe(1);
      expect(JSON.parse(readFileSync(join(n.dir, f[0]), 'utf8')).discarded.sections.t.items).toEqual(['base', 'web4']);
    }
  });

  it('diverged while the non-preferred node is master (the other restarted): its state wins', () => {
    const { a, b, drop, run, change } = pair();
    drop.ab = drop.ba = true;
    change(a, 'web3'); change(b, 'web4');
    a.role = 'backup'; b.role = 'master';
    drop.ab = drop.ba = false;
    run(500);
    expect(a.data.items).toEqual(['web4']);
    expect(a.repl.status(0).conflicts.last).toMatchObject({ winner: 'lb2', here: 'discarded' });
    expect(b.repl.status(0).conflicts.last).toMatchObject({ winner: 'lb2', here: 'kept' });
  });

  it('diverged versions of the same content (old-format files on both nodes): applied, no conflict', () => {
    const { a, b, run } = pair();
    a.data.items = ['x']; b.data.items = ['x'];
    a.store.apply({ version: 2, vv: { lb1: 2 }, hash: '1111111111111111', savedAt: '', sections: { t: { items: ['x'] } } });
    b.store.apply({ version: 2, vv: { lb2: 2 }, hash: '2222222222222222', savedAt: '', sections: { t: { items: ['x'] } } });
    run(500);
    expect(b.store.currentVersion()).toEqual(a.store.currentVersion());
    expect([a.repl.status(0).conflicts.count, b.repl.status(0).conflicts.count]).toEqual([0, 0]);
    expect(readdirSync(b.dir).filter((x) => x.startsWith('conflict-'))).toEqual([]);
  });

  it('documents: a bare one from an older pairlb is applied by version; an invalid one is counted, not applied', () => {
    const { b } = pair();
    const send = (v: unknown) => b.repl.onState(deflateRawSync(Buffer.from(JSON.stringify(v))), 'master', 0);
    send({ version: 3, node: 'lb1', savedAt: 'x', sections: { t: { items: ['old'] } } });
    expect(b.data.items).toEqual(['old']);
    expect(b.store.currentVersion().vv).toEqual({ '*': 3 });
    send({ kind: 'state', doc: { version: 4, savedAt: 'x', sections: { backends: { version: 1, entries: [{ listen: 'web', name: 'w', weight: 999 }] } } } });
    send({ kind: 'state', doc: 'nonsense' });
    b.repl.onState(Buffer.from('not deflated'), 'master', 0);
    expect(b.data.items).toEqual(['old']);
    expect(b.repl.status(0)).toMatchObject({ applied: 1, invalid: 3 });
  });

  it('the stats page shows the conflict and its differences from the real status shape', () => {
    const { a, b, drop, run, change } = pair();
    drop.ab = drop.ba = true;
    change(a, 'web3'); change(b, 'web<4>');
    drop.ab = drop.ba = false;
    run(500);
    const html = renderPage({ node: 'lb1', role: 'master', now: Date.now(), tables: [], refreshMs: 5000, nonce: 'n', ha: { role: 'master', node: 'lb1', peer: { name: 'lb2', role: 'backup', alive: true }, replication: a.repl.status(0) } });
    expect(html).toContain('<div class="panel warn"><h2>Pair</h2>');
    expect(html).toMatch(/<dt>state CONFLICT<\/dt><dd>1 open — lb2&#39;s changes were discarded \(the master&#39;s state wins\) at /);
    expect(html).toContain('<summary>state differences to resolve (1)</summary><ul><li>t: differs (lb1 kept {&quot;items&quot;:[&quot;web3&quot;]}; lb2 discarded {&quot;items&quot;:[&quot;web&lt;4&gt;&quot;]})</li></ul>');
    expect(html).toMatch(/<dt>replicated state<\/dt><dd>in sync \(lb1:1 #[0-9a-f]{8}\)<\/dd>/);
    // Acknowledged by the operator: no longer an alarm, still listed.
    expect(a.repl.acknowledgeConflicts('ops (api)')).toBe(1);
    expect(a.repl.status(0).conflicts).toMatchObject({ count: 1, open: 0, acknowledged: { by: 'ops (api)' } });
    const after = renderPage({ node: 'lb1', role: 'master', now: Date.now(), tables: [], refreshMs: 5000, nonce: 'n', ha: { role: 'master', node: 'lb1', peer: { name: 'lb2', role: 'backup', alive: true }, replication: a.repl.status(0) } });
    expect(after).toContain('<div class="panel"><h2>Pair</h2>');
    expect(after).toMatch(/<dt>state conflicts<\/dt><dd>1, acknowledged by ops \(api\) — last: lb2&#39;s changes/);
    expect(after).not.toContain('state differences to resolve');
  });

  it('while both are master (not settled) nothing is applied', () => {
    const { a, b, drop, run, change } = pair();
    drop.ab = drop.ba = true;
    change(a, 'web3'); change(b, 'web4');
    b.role = 'master';
    drop.ab = drop.ba = false;
    run(500);
    expect([a.data.items, b.data.items]).toEqual([['web3'], ['web4']]);
    expect(a.repl.status(0).sync).toBe('diverged');
    expect(a.repl.inSync()).toBe(false);
  });

  it('the discarded document reaches the winner even when the winner\'s copy of the loser\'s state was lost', () => {
    const { a, b, drop, run, change } = pair();
    run(100);
    drop.ab = drop.ba = true;
    change(a, 'web3'); change(b, 'web4');
    drop.ab = false; // lb1 → lb2 works: lb2 applies at once; lb2 → lb1 lost for a while
    run(300);
    expect(b.data.items).toEqual(['web3']);
    expect(a.repl.status(0).conflicts.count).toBe(0);
    drop.ba = false;
    run(1500);
    expect(a.repl.status(0).conflicts).toMatchObject({ count: 1, last: { here: 'kept', loser: 'lb2' } });
  });
});
