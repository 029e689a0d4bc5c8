// The HA testbed in network namespaces, shared by test/ha (through test/helpers/netns.ts) and
// bench/failover.mjs. Plain ESM so that the bench runs with `node` alone.
//
//   client ──┐                     switch namespace: bridge br0 (forward_delay 0, STP off)
//   lb1 eth0 ┼── br0 ── lb2 eth0   public 198.18.0.0/24: client .100, lb1 .11, lb2 .12,
//   web1 ────┤          web2       web1 .21, web2 .22, VIP .10
//   lb1 eth1 ════════════ lb2 eth1 dedicated heartbeat link 198.19.0.0/30 (.1, .2)
//
// Only namespaces we create, only 198.18.0.0/15, no default route anywhere. Every name carries a
// per-run prefix that encodes our pid, so a later run can tell a crashed run's leftovers (pid
// dead: delete) from a concurrent run's (pid alive: leave alone).
import http from 'node:http';
import { execFile, spawn } from 'node:child_process';
import { promisify } from 'node:util';
import { createInterface } from 'node:readline';
import { randomBytes } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';

const execFileP = promisify(execFile);
const HERE = dirname(fileURLToPath(import.meta.url));
export const REPO = join(HERE, '..');
export const POLLER = join(HERE, 'failover-poller.mjs');
// PAIRLB_MAIN: run a private build (the shared dist/ may be rebuilt by someone else mid-run).
export const MAIN = process.env.PAIRLB_MAIN ?? join(REPO, 'dist/cli/main.js');

export const NET = {
  vip: '198.18.0.10', prefix: 24,
  client: '198.18.0.100',
  lb1: { pub: '198.18.0.11', ded: '198.19.0.1' },
  lb2: { pub: '198.18.0.12', ded: '198.19.0.2' },
  web1: '198.18.0.21', web2: '198.18.0.22',
  webPort: 8080,
};

const BASE = 'ph';
export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

export async function run(cmd, args, opts = {}) {
  try {
    const { stdout } = await execFileP(cmd, args, { timeout: 15_000, ...opts });
    return stdout;
  } catch (e) {
    if (opts.allowFail) return '';
    throw new Error(`${cmd} ${args.join(' ')}: ${(e.stderr || e.message).trim()}`);
  }
}

function alive(pid) {
  try { process.kill(pid, 0); return true; } catch (e) { return e.code === 'EPERM'; }
}

/** Delete namespaces left by crashed runs (their creator pid is gone). */
export async function cleanupStale() {
  const out = await run('ip', ['netns', 'list'], { allowFail: true });
  for (const line of out.split('\n')) {
    const name = line.split(' ')[0];
    const m = /^ph([0-9a-z]+)x[0-9a-f]{2}[a-z]{0,4}-/.exec(name);
    if (m && !alive(parseInt(m[1], 36))) await deleteNs(name);
  }
}

async function deleteNs(name) {
  // Kill what still runs inside (our own processes, started in a namespace we created).
  const pids = (await run('ip', ['netns', 'pids', name], { allowFail: true })).split('\n').filter(Boolean);
  for (const p of pids) { try { process.kill(Number(p), 'SIGKILL'); } catch { /* gone */ } }
  await run('ip', ['netns', 'del', name], { allowFail: true });
}

export class Topology {
  constructor(prefix) {
    this.prefix = prefix;
    this.names = ['sw', 'c', 'l1', 'l2', 'w1', 'w2'];
    this.children = new Set();
  }

  ns(n) { return `${this.prefix}-${n}`; }

  /** `tag`: up to 4 lower-case letters put in every name (an engineer's or a test's prefix). */
  static async create(tag = '') {
    if (!/^[a-z]{0,4}$/.test(tag)) throw new Error(`topology tag ${JSON.stringify(tag)}: up to 4 lower-case letters`);
    await cleanupStale();
    const t = new Topology(`${BASE}${process.pid.toString(36)}x${randomBytes(1).toString('hex')}${tag}`);
    try { await t.build(); } catch (e) { await t.destroy(); throw e; }
    return t;
  }

  ip(n, args, opts) { return run('ip', ['-n', this.ns(n), ...args], opts); }
  exec(n, cmd, args, opts) { return run('ip', ['netns', 'exec', this.ns(n), cmd, ...args], opts); }

  async build() {
    for (const n of this.names) {
      await run('ip', ['netns', 'add', this.ns(n)]);
      await this.ip(n, ['link', 'set', 'lo', 'up']);
    }
    await this.ip('sw', ['link', 'add', 'br0', 'type', 'bridge', 'forward_delay', '0', 'stp_state', '0']);
    await this.ip('sw', ['link', 'set', 'br0', 'up']);
    const P = this.prefix;
    // veth pair, one end renamed in each namespace (names are per namespace; the temp names are unique).
    const veth = async (a, aName, b, bName) => {
      const ta = `${P}${a}${b}a`.slice(-15), tb = `${P}${a}${b}b`.slice(-15);
      await run('ip', ['link', 'add', ta, 'netns', this.ns(a), 'type', 'veth', 'peer', 'name', tb, 'netns', this.ns(b)]);
      await this.ip(a, ['link', 'set', ta, 'name', aName]);
      await this.ip(b, ['link', 'set', tb, 'name', bName]);
    };
    const pub = { c: NET.client, l1: NET.lb1.pub, l2: NET.lb2.pub, w1: NET.web1, w2: NET.web2 };
    for (const [n, addr] of Object.entries(pub)) {
      await veth(n, 'eth0', 'sw', `p-${n}`);
      await this.ip('sw', ['link', 'set', `p-${n}`, 'master', 'br0']);
      await this.ip('sw', ['link', 'set', `p-${n}`, 'up']);
      await this.ip(n, ['addr', 'add', `${addr}/24`, 'dev', 'eth0']);
      await this.ip(n, ['link', 'set', 'eth0', 'up']);
    }
    await veth('l1', 'eth1', 'l2', 'eth1');
    await this.ip('l1', ['addr', 'add', `${NET.lb1.ded}/30`, 'dev', 'eth1']);
    await this.ip('l2', ['addr', 'add', `${NET.lb2.ded}/30`, 'dev', 'eth1']);
    await this.ip('l1', ['link', 'set', 'eth1', 'up']);
    await this.ip('l2', ['link', 'set', 'eth1', 'up']);
    // Wait for carrier on every port (veth is immediate; the bridge needs a moment).
    for (let i = 0; i < 50; i++) {
      const s = await this.ip('sw', ['-br', 'link', 'show', 'master', 'br0']);
      if (s.split('\n').filter((l) => / UP /.test(l)).length === 5) break;
      await sleep(20);
    }
  }

  /** A process in a namespace, its stdout as JSON lines (pino) and raw lines. */
  spawn(n, cmd, args, { env, name } = {}) {
    const child = spawn('ip', ['netns', 'exec', this.ns(n), cmd, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env } });
    const p = new Proc(child, name ?? `${n}:${cmd}`);
    this.children.add(p);
    child.on('exit', () => this.children.delete(p));
    return p;
  }

  /**
   * Real backend: a node http server answering who it is and which balancer it saw; GET /big
   * answers 1 MiB (the load that drives the balancer's GC: issue 12).
   */
  startWeb(n) {
    const src = `
      const http = require('node:http');
      const BIG = Buffer.alloc(1 << 20, 120);
      const s = http.createServer((req, res) => {
        if (req.url === '/big') { res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': BIG.length }); res.end(BIG); return; }
        const body = JSON.stringify({ backend: ${JSON.stringify(n)}, peer: req.socket.remoteAddress, xff: req.headers['x-forwarded-for'] || null });
        res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
        res.end(body);
      });
      s.keepAliveTimeout = 30000;
      s.listen(${NET.webPort}, '0.0.0.0', () => console.log('listening'));
      process.on('SIGTERM', () => process.exit(0));`;
    return this.spawn(n, process.execPath, ['-e', src], { name: n });
  }

  async destroy() {
    for (const p of [...this.children]) p.kill('SIGKILL');
    for (const n of this.names) await deleteNs(this.ns(n));
  }
}

export class Proc extends EventEmitter {
  constructor(child, name) {
    super();
    this.child = child;
    this.name = name;
    this.lines = [];
    this.logs = [];
    this.stderr = '';
    this.exited = new Promise((resolve) => child.on('exit', (code, signal) => { this.exitCode = code; this.signal = signal; resolve({ code, signal }); }));
    createInterface({ input: child.stdout }).on('line', (line) => {
      this.lines.push(line);
      let j;
      if (line.startsWith('{')) { try { j = JSON.parse(line); } catch { /* not JSON */ } }
      if (j) { j._at = Date.now(); this.logs.push(j); this.emit('log', j); }
      this.emit('line', line);
    });
    child.stderr.on('data', (d) => { this.stderr += d; if (this.stderr.length > 100_000) this.stderr = this.stderr.slice(-50_000); });
  }

  get pid() { return this.child.pid; }

  /** PID of pairlb's HA loop process (ha.isolation: process), from its start line; the last one started. */
  haLoopPid() { return this.logs.filter((j) => j.msg === 'HA loop runs in its own process').at(-1)?.loopPid; }

  /** Every process of the daemon but its VIP watchdog (its own session): main and HA loop. */
  daemonPids() { return [this.pid, this.haLoopPid()].filter((p) => typeof p === 'number'); }

  kill(sig = 'SIGTERM') { if (this.exitCode === undefined) { try { this.child.kill(sig); } catch { /* gone */ } } }

  /** Resolve with the first (past or future) log/line matching `pred`, or reject after `ms`. */
  waitFor(pred, ms = 10_000, what = 'condition') {
    const hit = this.logs.find(pred) ?? this.lines.find((l) => typeof l === 'string' && pred(l));
    if (hit) return Promise.resolve(hit);
    return new Promise((resolve, reject) => {
      const onLog = (j) => { if (pred(j)) { done(); resolve(j); } };
      const onLine = (l) => { if (pred(l)) { done(); resolve(l); } };
      const onExit = () => { done(); reject(new Error(`${this.name} exited (${this.exitCode ?? this.signal}) while waiting for ${what}\n${this.stderr.slice(-2000)}\n${this.lines.slice(-15).join('\n')}`)); };
      const t = setTimeout(() => { done(); reject(new Error(`${this.name}: timeout after ${ms} ms waiting for ${what}\n${this.stderr.slice(-2000)}\n${this.lines.slice(-15).join('\n')}`)); }, ms);
      const done = () => { clearTimeout(t); this.off('log', onLog); this.off('line', onLine); this.child.off('exit', onExit); };
      this.on('log', onLog); this.on('line', onLine); this.child.once('exit', onExit);
    });
  }

  /** Role changes logged by app.setRole: [{to, reason, at}]. */
  roles() { return this.logs.filter((j) => j.mod === 'ha' && j.to && j.from !== undefined).map((j) => ({ to: j.to, reason: j.reason, at: j._at })); }
  role() { const r = this.roles(); return r.length ? r[r.length - 1].to : undefined; }
  waitRole(role, ms = 10_000, after = 0) { return this.waitFor((j) => typeof j === 'object' && j.mod === 'ha' && j.to === role && j._at >= after && j.from !== undefined, ms, `role ${role}`); }
}

/**
 * The client: a new connection for each request, one every `interval` ms (not waiting for the
 * previous one), each with its own timeout. Samples: {s, e, ok, lb, err} with wall-clock ms.
 */
export function startPoller(topo, { interval = 20, timeout = 1000, maxMs = 120_000 } = {}) {
  const names = `${NET.lb1.pub}=lb1,${NET.lb2.pub}=lb2`;
  const p = topo.spawn('c', process.execPath, [POLLER, `http://${NET.vip}/`, String(interval), String(timeout), String(maxMs), names], { name: 'poller' });
  p.samples = [];
  p.on('line', (l) => { if (l.startsWith('{"s"')) p.samples.push(JSON.parse(l)); });
  p.stop = async () => { p.kill('SIGTERM'); await p.exited; return p.samples; };
  return p;
}

/**
 * Figures of one failover from the client's samples:
 *   first_reply_ms: from t0 to the earliest successful answer from `to` to a request sent after t0
 *   outage_ms:      longest gap between the send times of consecutive answered requests in the window
 *   failed:         requests sent in the window that got no HTTP answer
 */
export function analyse(samples, t0, to, tEnd = Infinity) {
  const win = samples.filter((x) => x.s >= t0 - 200 && x.s <= tEnd).sort((a, b) => a.s - b.s);
  // Earliest *answer* (a request sent just after t0 may only succeed on its SYN retransmit, 1 s later).
  const firstNew = win.filter((x) => x.ok && x.lb === to && x.s >= t0).sort((a, b) => a.e - b.e)[0];
  // Outage as the client lives it: the longest stretch of sending time in which no request got an
  // answer (gap between the send times of consecutive answered requests; 20 ms when nothing failed).
  let lastOk = Math.max(...samples.filter((x) => x.ok && x.s < t0).map((x) => x.s));
  if (!Number.isFinite(lastOk)) lastOk = t0;
  let outage = 0;
  for (const x of win) if (x.ok && x.s >= lastOk) { outage = Math.max(outage, x.s - lastOk); lastOk = x.s; }
  const failed = win.filter((x) => !x.ok && x.s >= t0 - 50);
  return {
    first_reply_ms: firstNew ? Math.round(firstNew.e - t0) : null,
    outage_ms: Math.round(outage),
    failed: failed.length,
    errors: [...new Set(failed.map((x) => x.err))],
    requests: win.length,
    by: win.reduce((m, x) => { const k = x.ok ? x.lb : 'fail'; m[k] = (m[k] ?? 0) + 1; return m; }, {}),
  };
}

/** pairlb config for one node of the pair (or standalone, ha: false, as keepalived's data plane). */
export function pairlbConfig(node, { dir, ha = true, extra = '', haExtra = '', admin = true } = {}) {
  const me = node === 'lb1' ? NET.lb1 : NET.lb2, peer = node === 'lb1' ? NET.lb2 : NET.lb1;
  return `global:
  node: ${node}
  log: { level: info, access: off }
listen:
  - name: web
    bind: 0.0.0.0:80
    check: { type: http, path: /, interval: 500ms }
    # A connection whose client moved to the new master can never finish here: do not wait 30 s for it.
    timeouts: { drain: 5s }
    backends:
      - { name: web1, address: "${NET.web1}:${NET.webPort}" }
      - { name: web2, address: "${NET.web2}:${NET.webPort}" }
${admin ? `admin:\n  socket: ${dir}/${node}-admin.sock\n` : ''}${extra}${ha ? `ha:
  cluster: bench
  key_file: ${dir}/ha.key
  priority: ${node === 'lb1' ? 150 : 100}
  node: { dedicated: "${me.ded}:694", public: "${me.pub}:694" }
  peer: { name: ${node === 'lb1' ? 'lb2' : 'lb1'}, dedicated: "${peer.ded}:694", public: "${peer.pub}:694" }
  vip: { address: ${NET.vip}/${NET.prefix}, interface: eth0 }
${haExtra}` : ''}`;
}

export function startPairlb(topo, node, cfgFile, stateDir) {
  return topo.spawn(node === 'lb1' ? 'l1' : 'l2', process.execPath, [MAIN, 'start', '-c', cfgFile, '--state-dir', stateDir], { name: node });
}

/** keepalived as in shared/testbed.md: VRRP on the dedicated link, VIP on eth0, 150/100. */
export function keepalivedConfig(node, { advertInt, dir }) {
  const me = node === 'lb1' ? NET.lb1 : NET.lb2, peer = node === 'lb1' ? NET.lb2 : NET.lb1;
  const v3 = advertInt < 1;
  return `global_defs {
  router_id ${node}
  ${v3 ? 'vrrp_version 3' : ''}
  script_user root
  enable_script_security
}
vrrp_instance VI_1 {
  state BACKUP
  interface eth1
  virtual_router_id 51
  priority ${node === 'lb1' ? 150 : 100}
  advert_int ${advertInt}
  unicast_src_ip ${me.ded}
  unicast_peer {
    ${peer.ded}
  }
  virtual_ipaddress {
    ${NET.vip}/${NET.prefix} dev eth0
  }
}
`;
}

export function startKeepalived(topo, node, cfgFile, dir) {
  const n = node === 'lb1' ? 'l1' : 'l2';
  return topo.spawn(n, '/usr/sbin/keepalived', ['-n', '-l', '-D', '-G', '-P', '-f', cfgFile,
    `--pid=${dir}/${node}-ka.pid`, `--vrrp_pid=${dir}/${node}-vrrp.pid`], { name: `keepalived-${node}` });
}

/** The client's neighbour entry for the VIP: the MAC it sends to. */
export async function clientNeigh(topo) {
  const out = await topo.ip('c', ['neigh', 'show', NET.vip]);
  return /lladdr ([0-9a-f:]+)/.exec(out)?.[1];
}
export async function mac(topo, n, dev = 'eth0') {
  const out = await topo.ip(n, ['link', 'show', dev]);
  return /link\/ether ([0-9a-f:]+)/.exec(out)?.[1];
}
export async function vipOn(topo, n) {
  return (await topo.ip(n, ['-o', '-4', 'addr', 'show', 'dev', 'eth0'])).includes(` ${NET.vip}/`);
}

/** Send raw UDP datagrams from inside a namespace (the attacker on the public segment). */
export async function sendUdp(topo, n, host, port, bufs) {
  const src = `const d=require('node:dgram').createSocket('udp4');const b=${JSON.stringify(bufs.map((b) => b.toString('hex')))};
    let i=0;const next=()=>{if(i>=b.length)return d.close();d.send(Buffer.from(b[i++],'hex'),${port},${JSON.stringify(host)},next);};next();`;
  await topo.exec(n, process.execPath, ['-e', src]);
}

/** tcpdump in line mode (`-l -n -e`): one Proc whose lines are the decoded frames. */
export function tcpdump(topo, n, dev, filter) {
  return topo.spawn(n, 'tcpdump', ['-i', dev, '-l', '-n', '-e', '-U', ...filter.split(' ')], { name: `tcpdump-${n}` });
}

/** Capture `count` UDP payloads matching `filter` on `dev` in namespace `n` (pcap parsed here). */
export async function captureUdp(topo, n, dev, filter, count, file) {
  await topo.exec(n, 'timeout', ['5', 'tcpdump', '-i', dev, '-n', '-U', '-c', String(count), '-w', file, ...filter.split(' ')]);
  return udpPayloads(file);
}

/**
 * A capture that runs until stopped (tcpdump sees frames before netfilter, so it also records what
 * an nft rule then drops). `stop()` ends it and returns the UDP payloads in arrival order.
 */
export function startCapture(topo, n, dev, filter, file) {
  const p = topo.spawn(n, 'tcpdump', ['-i', dev, '-n', '-U', '-w', file, ...filter.split(' ')], { name: `capture-${n}` });
  return {
    proc: p,
    /** Resolves once tcpdump has written its first packet (so it certainly captures). */
    async ready(ms = 10_000) {
      const { statSync } = await import('node:fs');
      const size = () => { try { return statSync(file).size; } catch { return 0; } };
      const end = Date.now() + ms;
      while (size() <= 24) { // the pcap global header alone
        if (Date.now() > end || p.exitCode !== undefined) throw new Error(`tcpdump captured nothing: ${p.stderr}`);
        await sleep(20);
      }
    },
    /**
     * Wait until the packets written so far satisfy `pred` (tcpdump lags behind on a loaded
     * machine, and SIGTERM drops what it has not read yet: wait for what you need, then stop).
     */
    async until(pred, ms = 10_000, what = 'packets') {
      const end = Date.now() + ms;
      for (;;) {
        let got = [];
        try { got = await udpPayloads(file); } catch { /* not written yet */ }
        if (pred(got)) return got;
        if (Date.now() > end) throw new Error(`capture: timeout after ${ms} ms waiting for ${what} (${got.length} packets)`);
        await sleep(50);
      }
    },
    async stop() { p.kill('SIGTERM'); await p.exited; return udpPayloads(file); },
  };
}

/** Send `bufs` from namespace `n` again and again, every `everyMs`, for `forMs` (a replaying attacker). */
export function sendUdpLoop(topo, n, host, port, bufs, { everyMs = 20, forMs = 1000 } = {}) {
  const src = `const d=require('node:dgram').createSocket('udp4');const b=${JSON.stringify(bufs.map((b) => b.toString('hex')))}.map((h)=>Buffer.from(h,'hex'));
    const end=Date.now()+${forMs};let rounds=0;const round=()=>{if(Date.now()>=end){console.log('rounds '+rounds);return d.close();}rounds++;let i=0;const next=()=>{if(i>=b.length)return setTimeout(round,${everyMs});d.send(b[i++],${port},${JSON.stringify(host)},next);};next();};round();`;
  return topo.spawn(n, process.execPath, ['-e', src], { name: `replay-${n}` });
}

/** The UDP payloads of an Ethernet pcap file, in order. */
export async function udpPayloads(file) {
  const { readFileSync } = await import('node:fs');
  const b = readFileSync(file);
  const out = [];
  let o = 24; // pcap global header; link type ethernet
  while (o + 16 <= b.length) {
    const incl = b.readUInt32LE(o + 8);
    const frame = b.subarray(o + 16, o + 16 + incl);
    o += 16 + incl;
    const ihl = (frame[14] & 0x0f) * 4;
    out.push(Buffer.from(frame.subarray(14 + ihl + 8)));
  }
  return out;
}

/**
 * Who holds the VIP, over time: `ip monitor address` in both balancer namespaces, each event
 * stamped on arrival (a few ms after the kernel made it). `bothHeldMs(from, to)` is the longest
 * stretch in [from, to] during which both namespaces had the VIP on eth0 at once (two masters as
 * the network sees them).
 */
export async function vipMonitor(topo) {
  const state = {};
  const events = []; // {at, n, held}
  const procs = [];
  for (const n of ['l1', 'l2']) {
    const p = topo.spawn(n, 'ip', ['monitor', 'address', 'dev', 'eth0'], { name: `ipmon-${n}` });
    p.on('line', (l) => {
      if (!l.includes(` ${NET.vip}/`)) return;
      events.push({ at: Date.now(), n, held: !l.startsWith('Deleted') });
    });
    procs.push(p);
  }
  await sleep(200); // let `ip monitor` subscribe before we read the starting state
  for (const n of ['l1', 'l2']) state[n] = await vipOn(topo, n);
  const t0 = Date.now();
  return {
    events,
    bothHeldMs(from = t0, to = Date.now()) {
      const held = { ...state };
      let both = held.l1 && held.l2 ? t0 : undefined;
      let longest = 0;
      for (const e of [...events].sort((a, b) => a.at - b.at)) {
        if (e.at > to) break;
        held[e.n] = e.held;
        const now = held.l1 && held.l2;
        if (now && both === undefined) both = e.at;
        if (!now && both !== undefined) { if (e.at >= from) longest = Math.max(longest, e.at - Math.max(both, from)); both = undefined; }
      }
      if (both !== undefined) longest = Math.max(longest, to - Math.max(both, from));
      return longest;
    },
    holders() { const h = { ...state }; for (const e of [...events].sort((a, b) => a.at - b.at)) h[e.n] = e.held; return h; },
    /** Our `ip monitor` processes: not the node's, never to be killed with it. */
    pids: procs.map((p) => p.pid),
    stop() { for (const p of procs) p.kill('SIGTERM'); },
  };
}

/** nftables in namespace `n`: drop what `rule` matches on input (`udp dport 694`, `tcp dport 80`). */
export async function nftDrop(topo, n, rule) {
  await topo.exec(n, 'nft', ['add table inet pairlbtest']);
  await topo.exec(n, 'nft', ['add chain inet pairlbtest in { type filter hook input priority 0 ; }']);
  await topo.exec(n, 'nft', [`add rule inet pairlbtest in ${rule} drop`]);
}
export async function nftClear(topo, n) {
  await topo.exec(n, 'nft', ['delete table inet pairlbtest'], { allowFail: true });
}

/**
 * Block a Node process's event loop for `ms` without any hook in the product: SIGUSR1 opens Node's
 * inspector (on 127.0.0.1:9229 of the process's namespace), and a Runtime.evaluate of a busy loop
 * runs on its main thread. Resolves when the loop is released (the evaluation answered).
 */
export async function blockEventLoop(topo, n, pid, ms) {
  process.kill(pid, 'SIGUSR1');
  const undici = join(REPO, 'node_modules/undici/index.js');
  const src = `
    const { WebSocket } = require(${JSON.stringify(undici)});
    (async () => {
      let list;
      for (let i = 0; i < 100 && !list; i++) {
        try { list = await (await fetch('http://127.0.0.1:9229/json/list')).json(); } catch { await new Promise((r) => setTimeout(r, 50)); }
      }
      const ws = new WebSocket(list[0].webSocketDebuggerUrl);
      ws.onopen = () => { console.log('blocking'); ws.send(JSON.stringify({ id: 1, method: 'Runtime.evaluate', params: { expression: 'for (const e = Date.now() + ${Number(ms)}; Date.now() < e;);' } })); };
      ws.onmessage = (m) => { if (JSON.parse(m.data).id === 1) { console.log('released'); ws.close(); setTimeout(() => process.exit(0), 500); } };
      ws.onerror = (e) => { console.error(String(e.message || e)); process.exit(1); };
    })();`;
  const p = topo.spawn(n, process.execPath, ['-e', src], { name: 'inspector' });
  const released = p.waitFor((l) => l === 'released', ms + 45_000, 'event loop released');
  released.catch(() => {}); // the caller awaits it; an early failure below must not go unhandled
  await p.waitFor((l) => l === 'blocking', 15_000, 'inspector attached');
  return { at: Date.now(), released };
}

/** GET /v1/status from a node's admin socket (undefined when it does not answer). */
export function adminStatus(socketPath) {
  return new Promise((resolve) => {
    const req = http.request({ socketPath, path: '/v1/status' }, (r) => {
      let s = ''; r.on('data', (d) => { s += d; }); r.on('end', () => { try { resolve(JSON.parse(s)); } catch { resolve(undefined); } });
    });
    req.on('error', () => resolve(undefined));
    req.setTimeout(5000, () => req.destroy());
    req.end();
  });
}

export { diffBins, percentilesOf } from '../dist/ha/intervals.js';
