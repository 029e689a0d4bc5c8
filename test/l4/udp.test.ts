import { afterEach, describe, expect, it } from 'vitest';
import { createSocket, type RemoteInfo, type Socket } from 'node:dgram';
import { startAppLogged } from '../edge/stream-helpers.js';
import { waitFor } from './helpers.js';

/**
 * mode: udp with real UDP sockets on loopback: per-flow server choice, replies from the bound
 * address, flow idle timeout, one reply per flow, DNS health checks, and the flow cap under a
 * flood of sources (distinct client ports: loopback cannot spoof addresses without raw sockets,
 * and a flow is keyed by address and port alike).
 */
const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => { for (const c of cleanups.splice(0).reverse()) await c(); });

interface Resolver { name: string; port: number; got: number; sock: Socket }

/** A UDP server: answers a DNS query (id echoed, QR set, RCODE 0, its name appended) unless silent. */
async function resolver(name: string, silent = false): Promise<Resolver> {
  const sock = createSocket('udp4');
  const r: Resolver = { name, port: 0, got: 0, sock };
  sock.on('message', (msg: Buffer, from: RemoteInfo) => {
    r.got++;
    if (silent || msg.length < 12) return;
    const out = Buffer.concat([msg, Buffer.from(name)]);
    out.writeUInt16BE(msg.readUInt16BE(2) | 0x8000, 2);
    sock.send(out, from.port, from.address);
  });
  await new Promise<void>((ok) => sock.bind(0, '127.0.0.1', () => ok()));
  r.port = sock.address().port;
  cleanups.push(() => new Promise<void>((ok) => sock.close(() => ok())));
  return r;
}

/** A client socket that records replies with their source. */
async function udpClient(): Promise<{ sock: Socket; replies: { msg: Buffer; from: RemoteInfo }[]; ask(port: number, id: number): void }> {
  const sock = createSocket('udp4');
  const replies: { msg: Buffer; from: RemoteInfo }[] = [];
  sock.on('message', (msg, from) => replies.push({ msg, from }));
  await new Promise<void>((ok) => sock.bind(0, '127.0.0.1', () => ok()));
  cleanups.push(() => new Promise<void>((ok) => sock.close(() => ok())));
  const q = (id: number) => { const b = Buffer.alloc(17); b.writeUInt16BE(id, 0); b.writeUInt16BE(0x0100, 2); b.writeUInt16BE(1, 4); return b; };
  return { sock, replies, ask: (port, id) => sock.send(q(id), port, '127.0.0.1') };
}

function yaml(rs: Resolver[], extra = '', check = '        check: false\n'): string {
  return `listen:
  - name: dns
    bind: 127.0.0.1:0
    mode: udp
${extra}    backends:
${rs.map((r) => `      - name: ${r.name}\n        address: 127.0.0.1:${r.port}\n${check}`).join('')}`;
}

async function app(text: string) {
  const p = await startAppLogged(text);
  cleanups.push(() => p.stop());
  return p;
}

describe('mode udp', () => {
  it('each client flow gets a server in turn and keeps it; replies come from the bound address; counted both ways', async () => {
    const [a, b] = await Promise.all([resolver('a'), resolver('b')]);
    const p = await app(yaml([a, b]));
    const c1 = await udpClient();
    const c2 = await udpClient();
    c1.ask(p.port(), 1);
    await waitFor(() => c1.replies.length === 1, 5000, 'reply 1');
    c2.ask(p.port(), 2);
    await waitFor(() => c2.replies.length === 1, 5000, 'reply 2');
    c1.ask(p.port(), 3);
    await waitFor(() => c1.replies.length === 2, 5000, 'reply 3');
    const who = (x: { msg: Buffer }) => x.msg.subarray(17).toString();
    expect([who(c1.replies[0]), who(c2.replies[0]), who(c1.replies[1])]).toEqual(['a', 'b', 'a']);
    expect(c1.replies[0].msg.readUInt16BE(0)).toBe(1);
    for (const r of [...c1.replies, ...c2.replies]) expect([r.from.address, r.from.port]).toEqual(['127.0.0.1', p.port()]);
    const lc = p.app.counters.listen('dns');
    expect({ total: lc.total, cur: lc.cur, bytesIn: lc.bytesIn, bytesOut: lc.bytesOut }).toEqual({ total: 2, cur: 2, bytesIn: 51, bytesOut: 54 });
  });

  it('a flow idle for udp.flow_idle is closed; with udp.replies: 1 a flow ends with its answer', async () => {
    const [a] = await Promise.all([resolver('a')]);
    const p = await app(yaml([a], '    udp:\n      flow_idle: 200ms\n'));
    const c = await udpClient();
    c.ask(p.port(), 1);
    await waitFor(() => c.replies.length === 1);
    const lc = p.app.counters.listen('dns');
    expect(lc.cur).toBe(1);
    const t0 = Date.now();
    await waitFor(() => lc.cur === 0, 5000, 'idle flow closed');
    expect(Date.now() - t0).toBeGreaterThanOrEqual(100);
    const q = await app(yaml([a], '    udp:\n      replies: 1\n').replace('name: dns', 'name: once'));
    const c2 = await udpClient();
    c2.ask(q.port(), 7);
    await waitFor(() => c2.replies.length === 1);
    await waitFor(() => q.app.counters.listen('once').cur === 0, 5000, 'flow closed after one reply');
    expect(q.app.counters.listen('once').total).toBe(1);
  });

  it('a flood of 300 sources holds at most udp.max_flows flows: the oldest are evicted and counted, new clients still answered', async () => {
    const [a] = await Promise.all([resolver('a')]);
    const p = await app(yaml([a], '    udp:\n      max_flows: 50\n'));
    const lc = p.app.counters.listen('dns');
    const flows = (p.app.proxy.l4.get('dns') as unknown as { flows: Map<string, unknown> }).flows;
    let most = 0;
    // All kept open until the end: a closed socket's port may be handed out again (same flow).
    const socks: Socket[] = [];
    cleanups.push(() => { for (const s of socks) s.close(); });
    for (let i = 0; i < 300; i++) {
      const s = createSocket('udp4');
      socks.push(s);
      await new Promise<void>((ok) => s.bind(0, '127.0.0.1', () => ok()));
      const q = Buffer.alloc(12); q.writeUInt16BE(i, 0);
      await new Promise<void>((ok) => s.send(q, p.port(), '127.0.0.1', () => ok()));
      // Paced: the test and pairlb share one event loop, and a burst would overflow the socket's
      // receive buffer (~256 datagrams here), which is the kernel's drop, not pairlb's.
      for (let n = 0; lc.total < i + 1 && n < 10_000; n++) await new Promise((r) => setImmediate(r));
      most = Math.max(most, flows.size);
    }
    await waitFor(() => lc.total === 300, 5000, '300 flows seen').catch((e) => { throw new Error(`${e.message}: total ${lc.total}, evicted ${lc.flowsEvicted}, flows ${flows.size}, errConn ${lc.errConn}`); });
    expect(most).toBeLessThanOrEqual(50);
    expect(flows.size).toBe(50);
    expect(lc.flowsEvicted).toBe(250);
    expect(lc.cur).toBe(50);
    const c = await udpClient();
    c.ask(p.port(), 9);
    await waitFor(() => c.replies.length === 1, 5000, 'answer after the flood');
  });

  it('DNS health checks: a resolver that answers is UP, a silent one goes DOWN (L7TOUT) and gets no new flow', async () => {
    const [a, s] = await Promise.all([resolver('a'), resolver('silent', true)]);
    const p = await app(yaml([a, s], '    check:\n      interval: 100ms\n      timeout: 100ms\n      fall: 1\n', ''));
    await waitFor(() => p.app.backends.get('dns', 'silent')!.health === 'down', 5000, 'silent DOWN');
    expect(p.app.backends.get('dns', 'silent')!.lastCheck?.code).toBe('L7TOUT');
    expect(p.app.backends.get('dns', 'a')!.lastCheck?.code).toBe('L7OK');
    expect(p.app.backends.get('dns', 'a')!.health).toBe('up');
    for (let i = 0; i < 4; i++) {
      const c = await udpClient();
      c.ask(p.port(), i);
      await waitFor(() => c.replies.length === 1, 5000, `answer ${i}`);
      expect(c.replies[0].msg.subarray(17).toString()).toBe('a');
    }
  });
});
