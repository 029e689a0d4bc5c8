import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { promisify } from 'node:util';
import type { GarpConfig, VipConfig } from './config.js';
import { PairlbError } from '../errors.js';
import type { Logger } from '../log.js';

const execFileP = promisify(execFile);

/**
 * A network interface as sysfs sees it (ip netns exec remounts /sys for the namespace): 'up' (operstate up, or unknown as on loopback and some
 * tunnels), 'down', or 'missing' (no /sys/class/net/NAME: a typo, or Debian's `ens18` where the
 * examples say `eth0`). One home for `pairlb check` and the HA health.
 */
export function interfaceState(name: string): 'up' | 'down' | 'missing' {
  let st: string;
  try { st = readFileSync(`/sys/class/net/${name}/operstate`, 'utf8').trim(); } catch { return 'missing'; }
  return st === 'up' || st === 'unknown' ? 'up' : 'down';
}

/** The reason text for an interface that is not up (HA's FAULT reason, `pairlb check`). */
export function interfaceProblem(name: string): string | undefined {
  const s = interfaceState(name);
  if (s === 'up') return undefined;
  return s === 'missing' ? `interface ${name} does not exist (ip -br link lists the names here)` : `interface ${name} is down`;
}

/**
 * The virtual IP: iproute2 to add/remove it (CAP_NET_ADMIN), iputils arping to announce and probe.
 * Node cannot open a packet socket, so ARP frames come from arping (shared/testbed.md): the frame
 * leaves at once but the process lingers ~1 s, so nothing on the takeover path awaits it.
 *
 *  - announce: `arping -U -c 1 -I if VIP` — an ARP request with sender = target = VIP from our MAC
 *    (RFC 5227 §3 "ARP Announcement"); a burst at takeover, a repeat burst, and a periodic refresh
 *    (keepalived#20: a switch or client that missed the burst would follow the old MAC forever).
 *  - probe: `arping -D` — RFC 5227 §2.1.1 probe (sender IP 0.0.0.0); exit status 1 = someone answered.
 *
 * Generations: a takeover is decided at one moment and carried out later (the HA action chain may
 * be busy, `ip` takes milliseconds to seconds on a loaded machine). A VIP add or GARP that was
 * scheduled before a role change must not run after it: clients would follow our MAC after the
 * peer's last announcement and black-hole (issue 11: 1.4-6.6 s). The caller captures `generation`
 * when it decides to take over; `supersede()` (every demotion) bumps it, and every later step —
 * adding, the GARP burst, the repeat burst, the refresh — checks it and does nothing when stale.
 */
export class Vip {
  readonly ip: string;
  private timers = new Set<NodeJS.Timeout>();
  private refreshTimer: NodeJS.Timeout | undefined;
  private children = new Set<ChildProcess>();
  /** arping announcers not yet exited: killed by supersede() (one that already sent lingers ~1 s). */
  private announcers = new Set<ChildProcess>();
  private kit: ChildProcess | undefined;
  /** GARP frames requested (one arping each). */
  garpsSent = 0;
  /** Bumped by every supersede(): steps of an older takeover are cancelled. */
  generation = 0;
  /** Takeover steps (add, GARP) skipped because the role changed after they were scheduled. */
  cancelled = 0;
  /**
   * A pre-forked helper that sends GARPs (the watchdog's shell, so that no fork of ours stalls the
   * event loop), and kills those not yet exited on supersede(); garp() returns false when it cannot.
   */
  garpVia: { garp(n: number): boolean; cancel(): void } | undefined;

  constructor(private readonly cfg: VipConfig, private readonly garp: GarpConfig, private readonly log: Logger, private readonly ipBin = 'ip') {
    this.ip = cfg.address.split('/')[0];
  }

  private addArgs(): string[] {
    // `replace` = add, and no error when the address is already there (restart, repeated takeover).
    const args = ['addr', 'replace', this.cfg.address, 'dev', this.cfg.interface];
    if (this.cfg.label) args.push('label', this.cfg.label);
    return args;
  }

  /**
   * Pre-fork the takeover: a small shell that waits on stdin, then adds the VIP and fires the GARP
   * burst. Forking from a ~100 MB Node process costs 5-60 ms on a loaded 2-core machine; writing a
   * line to a waiting shell costs nothing, and the shell forks ip and arping in ~1 ms each.
   * Kept ready while we are not master; exits by itself if we die (stdin closes).
   */
  prepare(): void {
    if (this.kit && this.kit.exitCode === null && this.kit.signalCode === null) return;
    const q = (x: string): string => `'${x.replace(/'/g, `'\\''`)}'`;
    const add = [this.ipBin, ...this.addArgs()].map(q).join(' ');
    const arp = this.garpArgv().map(q).join(' ');
    // Two steps: add, report, then the GARP burst only when told `garp` (the role may have changed
    // while `ip` ran: then we are told `skip`). Costs one pipe round trip (< 1 ms idle).
    const script = `read go || exit 0; ${add} 2>&1; rc=$?; echo "pairlb-kit $rc"; [ $rc -eq 0 ] || exit 0; read g || exit 0; [ "$g" = garp ] || exit 0; i=0; while [ $i -lt ${this.garp.burst} ]; do ${arp} >/dev/null 2>&1 & i=$((i+1)); done; wait`;
    const kit = spawn('/bin/sh', ['-c', script], { stdio: ['pipe', 'pipe', 'ignore'] });
    kit.on('error', (e) => this.log.warn({ err: e }, 'could not pre-fork the takeover shell'));
    kit.stdin!.on('error', () => { /* died before use: add() falls back */ });
    this.kit = kit;
  }

  /** Stale generation: count it. */
  private stale(gen: number): boolean {
    if (gen === this.generation) return false;
    this.cancelled++;
    return true;
  }

  /**
   * Add the VIP for the takeover of generation `gen`. Returns garpSent = true when the pre-forked
   * shell also sent the GARP burst; cancelled = true when the generation went stale before the add
   * (nothing done) or while `ip` ran (added, no GARP: the caller's queued release removes it).
   * Falls back to spawning `ip` directly when no shell is ready.
   */
  async add(gen = this.generation): Promise<{ garpSent: boolean; cancelled: boolean }> {
    if (this.stale(gen)) return { garpSent: false, cancelled: true };
    const kit = this.kit;
    this.kit = undefined;
    if (kit && kit.exitCode === null && kit.signalCode === null && kit.stdout) {
      const rc = await new Promise<{ rc: number; out: string; garp: boolean } | undefined>((resolve) => {
        let out = '';
        // A shell that did not answer in time is killed: it must not send a GARP later on its own.
        const t = setTimeout(() => { kit.stdout!.removeAllListeners('data'); kit.kill('SIGKILL'); resolve(undefined); }, 5000);
        kit.stdout!.setEncoding('utf8');
        kit.stdout!.on('data', (d: string) => {
          out += d;
          const m = /pairlb-kit (\d+)/.exec(out);
          if (!m) return;
          clearTimeout(t);
          // Decided here, synchronously with the report: no packet can be handled in between.
          const garp = m[1] === '0' && gen === this.generation;
          kit.stdin!.end(garp ? 'garp\n' : 'skip\n');
          resolve({ rc: Number(m[1]), out: out.slice(0, m.index).trim(), garp });
        });
        kit.once('exit', () => { clearTimeout(t); resolve(undefined); });
        kit.stdin!.write('go\n');
      });
      if (rc?.rc === 0) {
        if (!rc.garp) { this.cancelled++; return { garpSent: false, cancelled: true }; }
        this.garpsSent += this.garp.burst;
        return { garpSent: true, cancelled: false };
      }
      if (rc) throw new PairlbError('PAIRLB_HA_VIP', `ip ${this.addArgs().join(' ')}: ${rc.out || 'exit ' + rc.rc}`);
    }
    const args = this.addArgs();
    try {
      await execFileP(this.ipBin, args, { timeout: 5000 });
    } catch (e) {
      const msg = String((e as { stderr?: string }).stderr ?? (e as Error).message);
      throw new PairlbError('PAIRLB_HA_VIP', `ip ${args.join(' ')}: ${msg.trim()}`);
    }
    return { garpSent: false, cancelled: this.stale(gen) };
  }

  /**
   * A role change away from master: every takeover step scheduled before it is cancelled — a
   * queued or running add sends no GARP, pending repeat/refresh timers stop, arping announcers not
   * yet exited are killed.
   */
  supersede(): void {
    this.generation++;
    this.stopAnnouncing();
    for (const c of this.announcers) c.kill('SIGKILL');
    this.announcers.clear();
    this.garpVia?.cancel();
  }

  /** `ip addr del VIP dev IF` as argv (the watchdog runs the same command). */
  delArgv(): string[] { return [this.ipBin, 'addr', 'del', this.cfg.address, 'dev', this.cfg.interface]; }

  /** `ip addr del`; an address that is not there is fine. */
  async remove(): Promise<void> {
    this.stopAnnouncing();
    const args = this.delArgv().slice(1);
    try {
      await execFileP(this.ipBin, args, { timeout: 5000 });
    } catch (e) {
      const msg = String((e as { stderr?: string }).stderr ?? (e as Error).message);
      if (!/Cannot assign requested address|Address not found|Cannot find device/.test(msg)) throw new PairlbError('PAIRLB_HA_VIP', `ip ${args.join(' ')}: ${msg.trim()}`);
    }
  }

  /** Is the VIP on our interface now? */
  async held(): Promise<boolean> {
    const { stdout } = await execFileP(this.ipBin, ['-o', '-4', 'addr', 'show', 'dev', this.cfg.interface], { timeout: 5000 });
    return stdout.includes(` ${this.ip}/`);
  }


  /** `arping -U -c 1 -I IF VIP` as argv: one gratuitous ARP. */
  garpArgv(): string[] { return [this.garp.arping, '-U', '-c', '1', '-I', this.cfg.interface, this.ip]; }

  /** Send `n` gratuitous ARPs now, each its own arping, none awaited; through garpVia when set (no fork of ours). */
  announce(n = 1): void {
    if (this.garpVia?.garp(n)) { this.garpsSent += n; return; }
    for (let i = 0; i < n; i++) {
      const [bin, ...args] = this.garpArgv();
      const c = this.run(bin, args);
      this.announcers.add(c);
      c.on('exit', () => this.announcers.delete(c));
      this.garpsSent++;
    }
  }

  /**
   * Takeover of generation `gen`: burst now, repeat later, then refresh periodically while we hold
   * the VIP. Returns false (nothing sent) when the generation is stale.
   */
  startAnnouncing(burstNow = true, gen = this.generation): boolean {
    if (this.stale(gen)) return false;
    this.stopAnnouncing();
    if (burstNow) this.announce(this.garp.burst);
    this.repeatLater(gen);
    if (this.garp.refresh > 0) {
      this.refreshTimer = setInterval(() => { if (gen === this.generation) this.announce(1); }, this.garp.refresh);
      this.refreshTimer.unref();
    }
    return true;
  }

  /**
   * Re-announce while master (peer back from a silence, split brain settled in our favour): one
   * burst, no repeat — a repeat `repeat_delay` later would race with the peer's failback (with
   * `failback_delay` = `repeat_delay` our repeat landed just after its takeover GARP: measured,
   * 2.7 s outage). Cancelled by supersede() like every announcement.
   */
  reannounce(): void {
    this.announce(this.garp.burst);
  }

  private repeatLater(gen: number): void {
    if (!(this.garp.repeat > 0 && this.garp.repeat_delay > 0)) return;
    const t = setTimeout(() => { this.timers.delete(t); if (gen === this.generation) this.announce(this.garp.repeat); }, this.garp.repeat_delay);
    t.unref();
    this.timers.add(t);
  }

  stopAnnouncing(): void {
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
    if (this.refreshTimer) { clearInterval(this.refreshTimer); this.refreshTimer = undefined; }
  }

  /**
   * RFC 5227 probe. Resolves true when another host answered for the VIP within `timeoutMs`.
   * An answer arrives in ~1 ms on a LAN and makes arping exit 1 at once; silence keeps it waiting
   * its 1 s minimum, so we kill it at our own timeout and take that as "free".
   */
  probe(timeoutMs = this.garp.probe_timeout): Promise<boolean> {
    return new Promise((resolve) => {
      const c = this.run(this.garp.arping, ['-D', '-c', '1', '-w', '1', '-I', this.cfg.interface, this.ip]);
      let t: NodeJS.Timeout | undefined;
      // The clock starts when arping runs: on a loaded machine the fork alone can take tens of ms.
      // At the timeout we kill it and still read its exit status: an arping that got its answer just
      // before (its exit not yet handled by a busy event loop) exited 1 by itself — "answered",
      // not "free" (taking it for free would make two masters).
      c.on('spawn', () => { t = setTimeout(() => c.kill('SIGKILL'), timeoutMs); });
      c.on('exit', (code) => { clearTimeout(t); resolve(code === 1); });
      c.on('error', (e) => { clearTimeout(t); this.log.error({ err: e }, 'arping probe failed to start; assuming the VIP is free'); resolve(false); });
    });
  }

  private run(bin: string, args: string[]): ChildProcess {
    const c = spawn(bin, args, { stdio: 'ignore' });
    this.children.add(c);
    c.on('exit', () => this.children.delete(c));
    c.on('error', (e) => { this.children.delete(c); this.log.error({ err: e, bin }, 'could not run arping'); });
    return c;
  }

  close(): void {
    this.stopAnnouncing();
    this.kit?.kill('SIGKILL');
    this.kit = undefined;
    for (const c of this.children) c.kill('SIGKILL');
    this.children.clear();
  }
}
