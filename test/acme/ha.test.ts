import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { X509Certificate } from 'node:crypto';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensurePackages } from '../helpers/sys.js';
import { NET, adminRequest, pairlbConfig, startPair, type Pair, type Proc, type Topology } from '../helpers/netns.js';
import { startPebble, type Pebble } from '../helpers/pebble.js';
import { certFacts, splitBundle } from '../../src/acme/store.js';
import { PLACEHOLDER_CN } from '../../src/acme/placeholder.js';

/**
 * ACME with the HA pair, in network namespaces: pebble runs in the client's namespace and resolves
 * every name to the BACKUP's public address, so the CA's HTTP-01 request can only be answered by
 * lb2 with the token the master lb1 created (replicated state). The certificate and the account
 * reach lb2 (same serial, same account file), and after a failover lb2 serves that certificate on
 * the VIP at once, without ordering again.
 */

ensurePackages(['iproute2', 'iputils-arping']);

const KEY = 'acme-ha-key-0123456789abcdef0123';
const TIMING = '  keepalive: 150ms\n  warntime: 360ms\n  deadtime: 600ms\n  garp: { probe_timeout: 400ms }\n';
const CA_HOST = NET.client;
let pair: Pair;
let t: Topology;
let dir: string;
let pebble: Pebble;
let lb1: Proc, lb2: Proc;

function config(node: 'lb1' | 'lb2'): string {
  const acme = `acme:
  directory: ${pebble.directory}
  email: ops@shop.test
  terms_of_service_agreed: true
  ca_file: ${pebble.caFile}
  cert_dir: ${dir}/certs-${node}
  retry_min: 1s
  retry_max: 2s
  order_timeout: 30s
tls_tickets:
  rotate: 2s
`;
  const base = pairlbConfig(node, { dir, haExtra: TIMING, extra: acme });
  return base.replace('listen:\n', `listen:
  - name: shop
    bind: 0.0.0.0:443
    acme: [shop.test, www.shop.test]
    tls: { directory: ${dir}/certs-${node} }
    timeouts: { drain: 2s }
    backends:
      - { name: web1, address: "${NET.web1}:${NET.webPort}" }
`);
}

function issued(node: string): { serial: string; pem: string } | undefined {
  const f = join(dir, `certs-${node}`, 'shop.pem');
  if (!existsSync(f)) return undefined;
  const pem = readFileSync(f, 'utf8');
  const leaf = splitBundle(pem).certs[0];
  if (new X509Certificate(leaf).issuer.includes(PLACEHOLDER_CN)) return undefined;
  return { serial: certFacts(leaf).serial, pem };
}

async function until<T>(f: () => T | undefined | Promise<T | undefined>, ms: number, what: string): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await f();
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error(`timeout after ${ms} ms: ${what}; lb1 acme logs: ${JSON.stringify(lb1.logs.filter((l) => l.mod === 'acme').slice(-3))}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** What the VIP serves to a client in the client namespace that trusts pebble's root. */
async function viaVip(): Promise<{ serial?: string; verified: boolean; via?: string }> {
  const sh = `printf 'GET / HTTP/1.0\\r\\nHost: shop.test\\r\\n\\r\\n' | timeout 10 openssl s_client -connect ${NET.vip}:443 -servername shop.test -CAfile ${dir}/root.pem -ign_eof > ${dir}/sc.out 2>/dev/null;` +
    ` openssl x509 -in ${dir}/sc.out -noout -serial; grep -E 'Verify return code|"peer"' ${dir}/sc.out`;
  const out = await t.exec('c', 'sh', ['-c', sh], { allowFail: true });
  return { serial: /serial=([0-9A-F]+)/.exec(out)?.[1], verified: /Verify return code: 0 \(ok\)/.test(out), via: /"peer":"([\d.]+)"/.exec(out)?.[1] };
}

beforeAll(async () => {
  pair = await startPair({
    tag: 'acme', key: KEY, dirPrefix: 'acme-ha', webs: ['w1'],
    beforeNodes: async (topo, d) => {
      pebble = await startPebble({ httpPort: 80, netns: topo.ns('c'), host: CA_HOST, defaultA: NET.lb2.pub });
      writeFileSync(join(d, 'root.pem'), await pebble.root());
    },
    config: (node, d) => { dir = d; return config(node); },
  });
  ({ t, dir, lb1, lb2 } = pair);
}, 90_000);

afterAll(async () => {
  // The CA runs in the client namespace: stopped before the namespaces go.
  await pebble?.stop();
  await pair?.destroy();
}, 30_000);

describe('ACME with the HA pair', () => {
  it('the master orders, the backup answers the challenge and holds the certificate, and serves it after a failover', async () => {
    // Issued: the CA could reach only lb2 (every name resolves to 198.18.0.12), with lb1's token.
    const cert = await until(() => issued('lb1'), 45_000, 'lb1 has a certificate');
    // The file can be read before its log line has come through lb1's stdout pipe: wait for it.
    await lb1.waitFor((l) => l.mod === 'acme' && l.msg === 'acme: certificate for shop installed', 5000, 'lb1 logs the certificate installed');
    expect(lb2.logs.filter((l) => l.mod === 'acme' && typeof l.msg === 'string' && (l.msg as string).startsWith('acme: ordering'))).toEqual([]);
    // Replicated: the same bundle and the same account on lb2.
    const copy = await until(() => { const c = issued('lb2'); return c?.serial === cert.serial ? c : undefined; }, 10_000, 'lb2 has the same certificate');
    expect(copy.pem).toBe(cert.pem);
    const account = (n: string) => JSON.parse(readFileSync(join(dir, `state-${n}`, 'acme', 'account.json'), 'utf8'));
    expect(account('lb2')).toEqual(account('lb1'));
    expect(account('lb1').url).toMatch(/^https:\/\/198\.18\.0\.100:14000\/my-account\//);
    // No private key in the clear in the replicated state on disk.
    const keyB64 = splitBundle(cert.pem).key!.split('\n').slice(1, 2).join('');
    expect(readFileSync(join(dir, 'state-lb2', 'runtime.json'), 'utf8')).not.toContain(keyB64);

    // Ticket keys rotated by the master (every 2 s here) reach the backup: same key name on both.
    const tk = async (n: string) => (await adminRequest(join(dir, `${n}-admin.sock`), 'GET', '/v1/status')).json.tickets;
    const rotated = await until(async () => { const a = await tk('lb1'); return a.rotations >= 1 ? a : undefined; }, 10_000, 'a rotation on lb1');
    await until(async () => { const [a, b] = [await tk('lb1'), await tk('lb2')]; return a.current === b.current && b.current !== undefined && b.source === 'replicated' ? true : undefined; }, 10_000, 'lb2 follows lb1\'s rotation');
    expect((await tk('lb2')).rotations).toBe(0);
    expect(rotated.source).toBe('generated');

    // The master serves it on the VIP, trusted by a client that trusts the CA.
    const before = await until(async () => { const v = await viaVip(); return v.serial === cert.serial ? v : undefined; }, 10_000, 'the VIP serves the certificate');
    expect(before).toEqual({ serial: cert.serial, verified: true, via: NET.lb1.pub });

    // Failover: lb2 serves the same certificate at once, without a new order.
    const t0 = Date.now();
    lb1.kill('SIGTERM');
    await lb2.waitRole('master', 15_000, t0);
    const after = await until(async () => { const v = await viaVip(); return v.via === NET.lb2.pub ? v : undefined; }, 10_000, 'lb2 answers on the VIP');
    expect(after).toEqual({ serial: cert.serial, verified: true, via: NET.lb2.pub });
    expect(lb2.logs.filter((l) => l.mod === 'acme' && typeof l.msg === 'string' && (l.msg as string).startsWith('acme: ordering'))).toEqual([]);
    // The new master takes over the ticket key schedule.
    await until(async () => ((await tk('lb2')).rotations >= 1 ? true : undefined), 10_000, 'a rotation on lb2 as master');
  }, 120_000);
});
