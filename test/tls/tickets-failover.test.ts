import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensurePackages } from '../helpers/sys.js';
import { NET, adminRequest, pairlbConfig, startPair, type Pair, type Proc, type Topology } from '../helpers/netns.js';

/**
 * TLS session resumption across a failover (issue 13): two real pairlb processes in network
 * namespaces, a TLS bind on the VIP. The client takes a session ticket from the master with
 * `openssl s_client -sess_out`, the master stops (graceful handover), and the same ticket offered to
 * the new master with `-sess_in` is accepted: "Reused", answered through lb2. Without the shared
 * keys the new master could not decrypt the ticket and the handshake would be "New".
 */

ensurePackages(['iproute2', 'iputils-arping']);

const KEY = 'tickets-failover-key-0123456789abcdef';
const TIMING = '  keepalive: 150ms\n  warntime: 360ms\n  deadtime: 600ms\n  garp: { probe_timeout: 400ms }\n';
let pair: Pair;
let t: Topology;
let dir: string;
let lb1: Proc, lb2: Proc;

function config(node: 'lb1' | 'lb2', dir: string): string {
  const base = pairlbConfig(node, { dir, haExtra: TIMING });
  const shop = `listen:
  - name: shop
    bind: 0.0.0.0:443
    tls: { certificates: [${dir}/shop.pem] }
    timeouts: { drain: 2s }
    backends:
      - { name: web1, address: "${NET.web1}:${NET.webPort}" }
`;
  return base.replace('listen:\n', shop);
}

/** One s_client run from the client namespace against the VIP: New/Reused and which balancer proxied. */
async function sClient(sess: { out?: string; in?: string }): Promise<{ kind: string; via?: string }> {
  const args = ['s_client', '-connect', `${NET.vip}:443`, '-servername', 'shop.test', '-tls1_3', '-ign_eof'];
  if (sess.out) args.push('-sess_out', sess.out);
  if (sess.in) args.push('-sess_in', sess.in);
  const cmd = `printf 'GET / HTTP/1.0\\r\\nHost: shop.test\\r\\n\\r\\n' | timeout 10 openssl ${args.join(' ')} 2>/dev/null`;
  const out = await t.exec('c', 'sh', ['-c', cmd], { allowFail: true });
  return { kind: /^(New|Reused), /m.exec(out)?.[1] ?? `? ${out.slice(0, 300)}`, via: /"peer":"([\d.]+)"/.exec(out)?.[1] };
}

beforeAll(async () => {
  pair = await startPair({
    tag: 'tkt', key: KEY, dirPrefix: 'tickets-ha', webs: ['w1'],
    prepare: (d) => {
      execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-days', '2',
        '-subj', '/CN=shop.test', '-addext', 'subjectAltName=DNS:shop.test', '-keyout', join(d, 'k.pem'), '-out', join(d, 'c.pem')], { stdio: 'ignore' });
      execFileSync('sh', ['-c', `cat ${d}/c.pem ${d}/k.pem > ${d}/shop.pem`]);
    },
    config,
  });
  ({ t, dir, lb1, lb2 } = pair);
}, 60_000);

afterAll(async () => { await pair?.destroy(); }, 30_000);

describe('TLS session tickets shared by the HA pair', () => {
  it('a session from the master resumes on the new master after a failover ("Reused")', async () => {
    // The master's keys reach the backup through the replicated state.
    const applied = await lb2.waitFor((j) => j.msg === 'tls ticket keys applied from the replicated state', 15_000, 'lb2 has the master\'s ticket keys');
    // Both nodes say so in /v1/status: the same encryption key name; lb1 made it, lb2 received it.
    const tk = async (n: string) => (await adminRequest(join(dir, `${n}-admin.sock`), 'GET', '/v1/status')).json.tickets;
    const [k1, k2] = [await tk('lb1'), await tk('lb2')];
    expect(k1).toMatchObject({ source: 'generated', shared: true, keys: 3, current: applied.current });
    expect(k2).toMatchObject({ source: 'replicated', shared: true, keys: 3, current: applied.current });
    const sess = join(dir, 'client.sess');
    const first = await sClient({ out: sess });
    expect(first).toEqual({ kind: 'New', via: NET.lb1.pub });
    expect(await sClient({ in: sess })).toEqual({ kind: 'Reused', via: NET.lb1.pub });

    const t0 = Date.now();
    lb1.kill('SIGTERM');
    await lb2.waitRole('master', 15_000, t0);
    // The VIP answers from lb2 (the client's neighbour entry follows the gratuitous ARP).
    let r = await sClient({ in: sess });
    for (let i = 0; i < 40 && r.via !== NET.lb2.pub; i++) { await new Promise((ok) => setTimeout(ok, 100)); r = await sClient({ in: sess }); }
    expect(r).toEqual({ kind: 'Reused', via: NET.lb2.pub });
    expect(applied.current).toMatch(/^[0-9a-f]{32}$/);
  }, 90_000);
});
