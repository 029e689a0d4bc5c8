import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { check, decode, encode, readKeyFile, ReplayGuard, MsgType, FLAG_HANDOVER, type Packet } from '../../src/ha/advert.js';
import { haSchema } from '../../src/ha/config.js';
import { parseConfig } from '../../src/config/load.js';
import { ConfigError } from '../../src/errors.js';

const KEY = Buffer.from('0123456789abcdef0123456789abcdef');
const pkt = (o: Partial<Packet> = {}): Packet => ({
  type: MsgType.Advert, role: 'master', priority: 150, flags: FLAG_HANDOVER, path: 0, cluster: 'c1', node: 'lb1',
  incarnation: 1000n, seq: 1n, echo: 500n, stateVersion: 7, payload: Buffer.alloc(0), ...o,
});
/** lb2 (incarnation 500) receiving from lb1. */
const ctx = (guard = new ReplayGuard()) => ({ key: KEY, cluster: 'c1', self: 'lb2', peer: 'lb1', guard, incarnation: 500n });
const verdict = (b: Buffer, c: ReturnType<typeof ctx>) => { const v = check(b, c); return v.ok ? (v.backlog ? 'backlog' : 'ok') : v.reason; };

describe('ha advert codec', () => {
  it('round-trips every field', () => {
    const p = pkt({ type: MsgType.State, payload: Buffer.from('hello'), path: 1, seq: 2n ** 40n });
    const d = decode(encode(p, KEY));
    expect(d?.packet).toEqual(p);
  });

  it('accepts a good packet once, then calls the copy replayed', () => {
    const c = ctx();
    const b = encode(pkt(), KEY);
    expect(check(b, c)).toMatchObject({ ok: true, newIncarnation: true, backlog: false });
    expect(check(b, c)).toMatchObject({ ok: false, reason: 'replayed' });
  });

  it('packets reordered between the two paths: each accepted once, the older ones as backlog (not acted on)', () => {
    const c = ctx();
    // The sender numbers packets with one counter; odd ones went on path 0, even ones on path 1.
    const seqs = [3n, 1n, 2n, 5n, 4n, 2n, 5n, 6n];
    const verdicts = seqs.map((seq) => verdict(encode(pkt({ seq, path: Number(seq % 2n) === 1 ? 0 : 1 }), KEY), c));
    expect(verdicts).toEqual(['ok', 'backlog', 'backlog', 'ok', 'backlog', 'replayed', 'replayed', 'ok']);
  });

  it('drops sequence numbers older than their path\'s window', () => {
    const c = ctx();
    check(encode(pkt({ seq: 100n }), KEY), c);
    expect(check(encode(pkt({ seq: 30n }), KEY), c)).toMatchObject({ ok: false, reason: 'replayed' });
  });

  it('a link-flap backlog is not a replay: packets queued on the dedicated path arrive after 200 newer ones on the public path', () => {
    const c = ctx();
    const on = (seq: bigint) => encode(pkt({ seq, path: seq % 2n === 1n ? 0 : 1 }), KEY);
    const out: string[] = [];
    for (let s = 1n; s <= 20n; s++) out.push(verdict(on(s), c)); // both paths up
    for (let s = 21n; s <= 420n; s++) if (s % 2n === 0n) out.push(verdict(on(s), c)); // path 0 down: its packets queue
    for (let s = 21n; s <= 420n; s++) if (s % 2n === 1n) out.push(verdict(on(s), c)); // link up: the queue flushes
    const tally = (xs: string[]) => xs.reduce<Record<string, number>>((m, x) => ({ ...m, [x]: (m[x] ?? 0) + 1 }), {});
    expect(tally(out)).toEqual({ ok: 220, backlog: 200 });
    // The same packets again are replays, whether recent on their path or older than its window.
    expect([verdict(on(419n), c), verdict(on(21n), c), verdict(on(420n), c)]).toEqual(['replayed', 'replayed', 'replayed']);
    expect(verdict(on(421n), c)).toBe('ok');
  });

  it('a packet whose echo is not our current incarnation is unconfirmed; it still teaches us the incarnation, and is never accepted later', () => {
    const c = ctx(new ReplayGuard(1000n)); // lb1's incarnation 1000 persisted by our previous run
    const v1 = verdict(encode(pkt({ seq: 7n, echo: 499n }), KEY), c); // made for our previous run (499)
    const v2 = verdict(encode(pkt({ seq: 9n, echo: 0n }), KEY), c); // sender had never heard us
    const v3 = verdict(encode(pkt({ seq: 10n, echo: 500n }), KEY), c);
    expect([v1, v2, v3]).toEqual(['unconfirmed', 'unconfirmed', 'ok']);
    expect(verdict(encode(pkt({ seq: 7n, echo: 499n }), KEY), c)).toBe('replayed');
    // Both nodes restarted: lb1's new incarnation arrives unconfirmed, and is learnt (we echo it next).
    const g = new ReplayGuard(1000n);
    expect(verdict(encode(pkt({ incarnation: 3000n, seq: 1n, echo: 499n }), KEY), ctx(g))).toBe('unconfirmed');
    expect(g.incarnation).toBe(3000n);
    expect(verdict(encode(pkt({ incarnation: 1000n, seq: 99n, echo: 500n }), KEY), ctx(g))).toBe('old_incarnation');
  });

  it('a packet of the old protocol version is counted as bad_version', () => {
    const b = encode(pkt(), KEY); b[4] = 1;
    expect(check(b, ctx())).toMatchObject({ ok: false, reason: 'bad_version' });
  });

  it('a new incarnation resets the window; the old incarnation is then refused', () => {
    const c = ctx();
    const old = encode(pkt({ incarnation: 1000n, seq: 50n }), KEY);
    check(old, c);
    expect(check(encode(pkt({ incarnation: 2000n, seq: 1n }), KEY), c)).toMatchObject({ ok: true, newIncarnation: true });
    expect(check(encode(pkt({ incarnation: 1000n, seq: 51n }), KEY), c)).toMatchObject({ ok: false, reason: 'old_incarnation' });
  });

  it('rejection verdicts by reason', () => {
    const c = ctx();
    const good = encode(pkt(), KEY);
    const flipped = Buffer.from(good); flipped[flipped.length - 1] ^= 1;
    const tampered = Buffer.from(good); tampered[7] = 254; // priority raised, MAC unchanged
    const cases: [string, Buffer][] = [
      ['garbage', Buffer.from('GET / HTTP/1.1\r\n\r\n')],
      ['garbage', good.subarray(0, good.length - 1)],
      ['garbage', Buffer.alloc(0)],
      ['foreign_cluster', encode(pkt({ cluster: 'other' }), KEY)],
      ['bad_mac', encode(pkt(), Buffer.from('another key of 32 bytes........!'))],
      ['bad_mac', flipped],
      ['bad_mac', tampered],
      ['unknown_node', encode(pkt({ node: 'intruder' }), KEY)],
      ['self', encode(pkt({ node: 'lb2' }), KEY)],
    ];
    for (const [reason, b] of cases) expect(check(b, c)).toMatchObject({ ok: false, reason });
    // None of them touched the replay state: the genuine packet is still accepted.
    expect(check(good, c).ok).toBe(true);
  });
});

describe('ha key file', () => {
  const dir = mkdtempSync(join(tmpdir(), 'pairlb-key-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  const f = join(dir, 'ha.key');

  it('refuses a key readable by group or others, like heartbeat with authkeys', () => {
    writeFileSync(f, 'k'.repeat(32) + '\n');
    for (const mode of [0o644, 0o640, 0o604, 0o660]) {
      chmodSync(f, mode);
      expect(() => readKeyFile(f)).toThrow(/bad permissions .*chmod 600/);
    }
    chmodSync(f, 0o600);
    // Verbatim: the trailing newline is part of the key (both nodes read the same file).
    expect(readKeyFile(f)).toEqual(Buffer.from('k'.repeat(32) + '\n'));
  });

  it('reads a binary key as bytes: two different keys that are not valid UTF-8 stay different, and their MACs too', () => {
    // 0x80-0xbf are UTF-8 continuation bytes: alone, each one is invalid and used to decode to U+FFFD,
    // so these two files once gave the same key.
    const a = Buffer.from(Array.from({ length: 32 }, (_, i) => 0x80 + i));
    const b = Buffer.from(Array.from({ length: 32 }, (_, i) => 0xa0 + i));
    const asUtf8 = (x: Buffer) => Buffer.from(x.toString('utf8').trim(), 'utf8'); // the old reading
    expect(asUtf8(a)).toEqual(asUtf8(b));
    const fa = join(dir, 'a.key'), fb = join(dir, 'b.key');
    writeFileSync(fa, a, { mode: 0o600 }); writeFileSync(fb, b, { mode: 0o600 });
    const ka = readKeyFile(fa), kb = readKeyFile(fb);
    expect(ka).toEqual(a);
    expect(kb).toEqual(b);
    const pa = encode(pkt(), ka), pb = encode(pkt(), kb);
    expect(pa.subarray(-32)).not.toEqual(pb.subarray(-32));
    // A node holding the other key rejects the packet as bad_mac; the right key accepts it.
    expect(check(pa, { ...ctx(), key: kb })).toMatchObject({ ok: false, reason: 'bad_mac' });
    expect(check(pa, { ...ctx(), key: ka })).toMatchObject({ ok: true });
  });

  it('refuses a file too large to be a key (a wrong path)', () => {
    const big = join(dir, 'big.key');
    writeFileSync(big, Buffer.alloc(5000, 1), { mode: 0o600 });
    expect(() => readKeyFile(big)).toThrow(/5000 bytes, not a key/);
  });

  it('refuses a short or missing key', () => {
    writeFileSync(f, 'short'); chmodSync(f, 0o600);
    expect(() => readKeyFile(f)).toThrow(/too short/);
    expect(() => readKeyFile(join(dir, 'nope'))).toThrow(/ENOENT/);
  });
});

describe('ha config', () => {
  const base = {
    key_file: '/etc/pairlb/ha.key',
    node: { dedicated: '198.19.0.1:694', public: '198.18.0.11:694' },
    peer: { name: 'lb2', dedicated: '198.19.0.2:694', public: '198.18.0.12:694' },
    vip: { address: '198.18.0.10/24', interface: 'eth0' },
  };
  const issues = (o: Record<string, unknown>): string[] => {
    const r = haSchema.safeParse({ ...base, ...o });
    return r.success ? [] : r.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`);
  };

  it('defaults are sub-second and consistent', () => {
    const c = haSchema.parse(base);
    expect([c.keepalive, c.warntime, c.deadtime, c.initdead, c.failback_delay]).toEqual([50, 120, 200, 2000, 2000]);
    expect(c.garp).toMatchObject({ burst: 3, repeat: 3, probe: true });
  });

  it('rejects the classic ha.cf mistake: warntime ≥ deadtime', () => {
    expect(issues({ deadtime: '5s', warntime: '10s', initdead: '10s' })).toEqual([expect.stringMatching(/^warntime: warntime \(10000 ms\) must be shorter than deadtime \(5000 ms\)/)]);
  });

  it('rejects a deadtime shorter than two intervals', () => {
    expect(issues({ keepalive: '1s', warntime: '1s', deadtime: '1500ms' })).toEqual([expect.stringMatching(/^deadtime: .*two keepalive intervals/)]);
  });

  it('rejects bad addresses, a lone public path and heartbeats on the VIP', () => {
    expect(issues({ vip: { address: '198.18.0.10', interface: 'eth0' } })).toEqual([expect.stringMatching(/^vip.address: expected IPv4\/prefix/)]);
    expect(issues({ node: { dedicated: '198.19.0.1:694' } })).toEqual([expect.stringMatching(/^node.public: node.public and peer.public go together/)]);
    expect(issues({ peer: { ...base.peer, public: '198.18.0.10:694' } })).toEqual([expect.stringMatching(/^peer.public: heartbeats must not use the VIP/)]);
    expect(issues({ peer: { ...base.peer, dedicated: 'lb2:694' } })).toEqual([expect.stringMatching(/^peer.dedicated: dedicated: expected an IPv4/)]);
  });

  it('pairlb check reports the path and line', () => {
    const yaml = `listen:\n  - name: web\n    bind: 0.0.0.0:80\nha:\n  key_file: /k\n  node: {dedicated: "198.19.0.1:694"}\n  peer: {name: lb2, dedicated: "198.19.0.2:694"}\n  deadtime: 5s\n  warntime: 10s\n  initdead: 10s\n  vip: {address: 198.18.0.10/24, interface: eth0}\n`;
    try { parseConfig(yaml, 'ha.yaml'); expect.unreachable(); } catch (e) {
      expect(e).toBeInstanceOf(ConfigError);
      expect((e as ConfigError).problems).toEqual([{ path: 'ha.warntime', message: expect.stringMatching(/must be shorter than deadtime/), line: 9 }]);
    }
  });
});
