import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { promisify } from 'node:util';
import { startPairlb, type PairlbProc } from '../helpers/proc.js';
import { ensurePackages } from '../helpers/sys.js';
import { waitFor } from './helpers.js';

/**
 * TCP connect timeout (termination sC) against a server address that blackholes SYNs, in a network
 * namespace of this test: in `l4w-bh-<pid>` (lo only) an nftables rule drops every packet arriving
 * for TCP port 25, so a SYN to 127.0.0.1:25 is neither answered nor refused. The real
 * `pairlb start`, a live server and the clients all run inside the namespace (ip netns exec).
 */
const run = promisify(execFile);
const NS = `l4w-bh-${process.pid}`;
const BLACKHOLE = '127.0.0.1:25';
let p: PairlbProc;
let live: ChildProcess;
const LIVE_PORT = 2525;

/** A client in the namespace: connects, waits for the first line or the close, prints what it saw. */
function nsClient(port: number): Promise<{ text: string; ms: number; how: string }> {
  const js = `const s=require('net').connect(${port},'127.0.0.1');const t=performance.now();let d='';let done=false;
const out=(how)=>{if(done)return;done=true;console.log(JSON.stringify({text:d,ms:performance.now()-t,how}));s.destroy();};
s.on('data',(b)=>{d+=b;if(d.includes('\\n'))out('data');});s.on('end',()=>out('end'));s.on('close',()=>out('close'));s.on('error',(e)=>out(e.code));
setTimeout(()=>out('timeout'),20000).unref();`;
  return run('ip', ['netns', 'exec', NS, process.execPath, '-e', js], { timeout: 30_000 }).then((r) => JSON.parse(r.stdout.trim()));
}

beforeAll(async () => {
  ensurePackages(['iproute2', 'nftables']);
  // Namespaces of earlier runs of this file (a crashed run leaves them behind).
  const { stdout } = await run('ip', ['netns', 'list']);
  for (const n of stdout.split('\n').map((l) => l.split(' ')[0]).filter((n) => n.startsWith('l4w-bh-'))) await run('ip', ['netns', 'del', n]).catch(() => {});
  await run('ip', ['netns', 'add', NS]);
  await run('ip', ['-n', NS, 'link', 'set', 'lo', 'up']);
  await new Promise<void>((ok, fail) => {
    const nft = spawn('ip', ['netns', 'exec', NS, 'nft', '-f', '-'], { stdio: ['pipe', 'inherit', 'inherit'] });
    nft.on('exit', (c) => (c === 0 ? ok() : fail(new Error(`nft exited ${c}`))));
    nft.stdin!.end('table inet l4w { chain in { type filter hook input priority 0; tcp dport 25 drop; }; }\n');
  });
  live = spawn('ip', ['netns', 'exec', NS, process.execPath, '-e',
    `require('net').createServer((s)=>{s.on('error',()=>{});s.write('220 live\\r\\n');s.on('data',()=>{});s.on('end',()=>s.end());}).listen(${LIVE_PORT},'127.0.0.1',()=>console.log('ready'));`], { stdio: ['ignore', 'pipe', 'inherit'] });
  await new Promise<void>((ok, fail) => { live.stdout!.once('data', () => ok()); live.once('exit', (c) => fail(new Error(`live server exited ${c}`))); });
  p = await startPairlb(`global:
  log:
    access: json
listen:
  - name: alone
    bind: 127.0.0.1:2600
    mode: tcp
    retries: 1
    timeouts:
      connect: 300ms
    backends:
      - name: bh
        address: ${BLACKHOLE}
        check: false
  - name: pair
    bind: 127.0.0.1:2601
    mode: tcp
    retries: 1
    timeouts:
      connect: 300ms
    backends:
      - name: bh
        address: ${BLACKHOLE}
        check: false
      - name: live
        address: 127.0.0.1:${LIVE_PORT}
        check: false
`, { netns: NS, startMs: 60_000 });
}, 90_000);

afterAll(async () => {
  await p?.stop();
  live?.kill();
  await run('ip', ['netns', 'del', NS]).catch(() => {});
});

describe('mode tcp connect timeout (a server that blackholes SYNs, in a namespace)', () => {
  it('every attempt times out: the client is closed after 1 + retries × timeouts.connect, termination sC, Tc -1', async () => {
    const r = await nsClient(2600);
    expect(r.text).toBe('');
    expect(['end', 'close', 'ECONNRESET']).toContain(r.how);
    // Two attempts of 300 ms each: never sooner (the lower bound holds on any machine).
    expect(r.ms).toBeGreaterThanOrEqual(590);
    await waitFor(() => p.logs.some((l) => l.mode === 'tcp' && l.listen === 'alone'), 5000, 'tcplog line');
    const l = p.logs.find((x) => x.mode === 'tcp' && x.listen === 'alone')!;
    expect(l).toMatchObject({ server: 'bh', termination: 'sC', Tc: -1, retries: 1, bytes_in: 0, bytes_read: 0 });
    expect(l.Tt as number).toBeGreaterThanOrEqual(590);
  });

  it('with a live server beside it: the timed-out attempt is redispatched there (one retry), the client served normally (--)', async () => {
    // Round robin starts at bh: the first connection times out on it, then goes to live.
    const r = await nsClient(2601);
    expect(r.text).toBe('220 live\r\n');
    expect(r.ms).toBeGreaterThanOrEqual(295);
    await waitFor(() => p.logs.some((l) => l.mode === 'tcp' && l.listen === 'pair'), 5000, 'tcplog line');
    const l = p.logs.find((x) => x.mode === 'tcp' && x.listen === 'pair')!;
    expect(l).toMatchObject({ server: 'live', termination: '--', retries: 1 });
    expect(l.Tc as number).toBeGreaterThanOrEqual(295);
  });
});
