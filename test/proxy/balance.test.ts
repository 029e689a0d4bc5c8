import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startApp } from '../helpers/app.js';
import { RawClient, rawBackend, type RawBackend } from '../helpers/raw-http.js';

/**
 * Every algorithm treats weights, backups, drain and stickiness the same way (issue 14): they are
 * rules of the routing snapshot, not of the algorithm. The real App with raw backends; requests
 * vary path, source address and header so that hash algorithms see many keys.
 */

const ALGOS = ['roundrobin', 'leastconn', 'source', 'uri', 'header', 'random'] as const;

let bes: RawBackend[];
beforeAll(async () => { bes = await Promise.all(['a', 'b', 'c', 'd', 'z'].map((n) => rawBackend(n))); });
afterAll(async () => { await Promise.all(bes.map((b) => b.close())); });

describe.each(ALGOS)('balance: %s', (algo) => {
  it('primaries only (weight 0 never), a DRAIN server only for its sticky clients, backups only when no primary is UP', async () => {
    const [a, b, c, d, z] = bes;
    const lb = await startApp(`global:\n  log:\n    access: off\nlisten:\n  - name: web\n    bind: 127.0.0.1:0\n    balance: ${algo}\n    hash_header: X-Key\n    hash_type: consistent\n    cookie:\n      name: SRV\n    forwardfor:\n      enabled: false\n    backends:\n`
      + `      - { name: a, address: '${a.address}', weight: 2, cookie: A, check: false }\n`
      + `      - { name: b, address: '${b.address}', cookie: B, check: false }\n`
      + `      - { name: c, address: '${c.address}', cookie: C, backup: true, check: false }\n`
      + `      - { name: d, address: '${d.address}', cookie: D, state: drain, check: false }\n`
      + `      - { name: z, address: '${z.address}', cookie: Z, weight: 0, check: false }\n`);
    try {
      const who = async (path: string, from: string, extra = ''): Promise<string> => {
        const cl = new RawClient(lb.port(), from);
        try {
          cl.send(`GET ${path} HTTP/1.1\r\nHost: app\r\nX-Key: ${path}\r\n${extra}\r\n`);
          const r = (await cl.next())!;
          expect(r.status).toBe(200);
          return r.body.split(' ')[0];
        } finally { cl.destroy(); }
      };
      const seen = new Set<string>();
      for (let i = 0; i < 24; i++) seen.add(await who(`/k${i}`, `127.0.0.${2 + (i % 8)}`));
      expect([...seen].every((n) => n === 'a' || n === 'b'), [...seen].join()).toBe(true);
      // Sticky: the cookie wins over every algorithm, a DRAIN server keeps its clients.
      expect(await who('/s1', '127.0.0.2', 'Cookie: SRV=D\r\n')).toBe('d');
      expect(await who('/s2', '127.0.0.3', 'Cookie: SRV=B\r\n')).toBe('b');
      // A cookie naming the weight-0 server still reaches it (weight only stops new clients).
      expect(await who('/s3', '127.0.0.4', 'Cookie: SRV=Z\r\n')).toBe('z');
      lb.app.backends.setAdmin('web', 'a', 'maint', 'test');
      lb.app.backends.setAdmin('web', 'b', 'maint', 'test');
      const after = new Set<string>();
      for (let i = 0; i < 8; i++) after.add(await who(`/b${i}`, `127.0.0.${2 + i}`));
      expect([...after]).toEqual(['c']);
      // A sticky client of a server in MAINT is rebalanced (to the backup) and gets the new cookie.
      expect(await who('/s4', '127.0.0.2', 'Cookie: SRV=A\r\n')).toBe('c');
    } finally { await lb.stop(); }
  });
});

describe('hash algorithms keep a key on its server', () => {
  it.each([['source'], ['uri'], ['header']])('%s', async (algo) => {
    const lb = await startApp(`global:\n  log:\n    access: off\nlisten:\n  - name: web\n    bind: 127.0.0.1:0\n    balance: ${algo}\n    hash_header: X-Key\n    backends:\n`
      + bes.slice(0, 3).map((b) => `      - { name: ${b.name}, address: '${b.address}', check: false }\n`).join(''));
    try {
      const who = async (path: string, from: string, key: string): Promise<string> => {
        const cl = new RawClient(lb.port(), from);
        try {
          cl.send(`GET ${path} HTTP/1.1\r\nHost: app\r\nX-Key: ${key}\r\n\r\n`);
          return (await cl.next())!.body.split(' ')[0];
        } finally { cl.destroy(); }
      };
      // The same key from varying other inputs: one server. (source: same address; uri: same path,
      // another query; header: same value.)
      const first = await who('/p?x=0', '127.0.0.5', 'k');
      for (let i = 1; i < 6; i++) {
        const got = algo === 'source' ? await who(`/q${i}`, '127.0.0.5', `k${i}`)
          : algo === 'uri' ? await who(`/p?x=${i}`, `127.0.0.${6 + i}`, `k${i}`)
          : await who(`/q${i}`, `127.0.0.${6 + i}`, 'k');
        expect(got).toBe(first);
      }
      // Many keys reach more than one server.
      const spread = new Set<string>();
      for (let i = 0; i < 30; i++) spread.add(await who(`/r${i}`, `127.0.0.${10 + i}`, `v${i}`));
      expect(spread.size).toBeGreaterThan(1);
    } finally { await lb.stop(); }
  });
});
