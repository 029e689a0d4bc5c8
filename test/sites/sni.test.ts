import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { readFileSync, rmSync } from 'node:fs';
import { connect as tlsConnect } from 'node:tls';
import { startApp } from '../helpers/app.js';
import { startBackend, type TestBackend } from '../helpers/backend.js';
import { makeCa, makeLeaf, type Ca } from '../helpers/certs.js';
import { tempDir } from '../daemon/daemon.js';

/**
 * `sni` as a rule condition (issue 14) on an HTTP TLS frontend: the server name of the TLS
 * handshake, distinct from the Host header, exact and `*.` wildcard, negatable, ANDed with other
 * conditions. Real TLS clients (node:tls) against the real App, a backend per pool.
 */
let dir: string;
let ca: Ca;
const be: TestBackend[] = [];
let lb: Awaited<ReturnType<typeof startApp>>;

beforeAll(async () => {
  dir = tempDir('htg-sni');
  ca = makeCa(join(dir, 'ca'));
  const leaf = makeLeaf(ca, 'sites', ['a.sni.test', '*.b.sni.test', 'neg.test']);
  for (const n of ['A', 'B', 'D']) be.push(await startBackend(n));
  lb = await startApp(`global: { log: { access: off } }
frontends:
  - name: fe
    bind: 127.0.0.1:0
    tls:
      certificates: [${leaf.bundle}]
    rules:
      - { when: { host: neg.test, not: { sni: ['*.sni.test'] } }, return: { status: 200, body: not-sni } }
      - { when: { sni: A.SNI.TEST. }, backend: pa }
      - { when: { sni: '*.b.sni.test', not: { host: skip.example } }, backend: pb }
    default_backend: pd
backends:
${be.map((b) => `  - { name: p${b.name.toLowerCase()}, servers: [{ name: ${b.name}, address: '${b.address}', check: false }] }`).join('\n')}
`);
}, 30_000);

afterAll(async () => {
  await lb?.stop();
  for (const b of be) await b.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/** One request over TLS with this SNI (undefined: none) and Host; the response body. */
function ask(sni: string | undefined, host: string): Promise<string> {
  return new Promise((ok, fail) => {
    const s = tlsConnect({ host: '127.0.0.1', port: lb.port('fe'), servername: sni ?? '', ca: [readFileSync(ca.rootCert)], rejectUnauthorized: false });
    let buf = '';
    s.on('data', (d) => { buf += d.toString('latin1'); });
    s.on('error', fail);
    s.on('end', () => { s.destroy(); ok(buf.slice(buf.indexOf('\r\n\r\n') + 4)); });
    s.once('secureConnect', () => s.write(`GET / HTTP/1.1\r\nHost: ${host}\r\nConnection: close\r\n\r\n`));
  });
}

describe('sni rule condition on an HTTP TLS frontend', () => {
  it.each([
    ['a.sni.test', 'x.b.sni.test', 'A'], // the handshake's name decides, not Host
    ['A.Sni.Test', 'whatever', 'A'], // case-insensitive, trailing dot in the rule ignored
    ['x.b.sni.test', 'a.sni.test', 'B'], // wildcard
    ['deep.x.b.sni.test', 'a.sni.test', 'B'], // any depth below
    ['b.sni.test', 'a.sni.test', 'D'], // the wildcard is not the bare name
    ['x.b.sni.test', 'skip.example', 'D'], // ANDed with a negated host
    [undefined, 'a.sni.test', 'D'], // no SNI: an sni condition never holds
    [undefined, 'neg.test', 'not-sni'], // ... and its negation does
    ['a.sni.test', 'neg.test', 'A'],
  ])('SNI %s, Host %s → %s', async (sni, host, want) => {
    expect(await ask(sni, host)).toBe(want);
  });
});
