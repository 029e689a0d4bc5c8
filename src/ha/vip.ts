import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { promisify } from 'node:util';
import type { GarpConfig, VipConfig } from './config.js';
import { PairlbError } from '../errors.js';
import type { Logger } from '../log.js';

const execFileP = promisify(execFile);

/**
 * The virtual IP: iproute2 to add/remove it (CAP_NET_ADMIN), iputils arping to announce and probe.
 * Node cannot open a packet socket, so ARP frames come from arping (shared/testbed.md): the frame
 * leaves at once but the process lingers ~1 s, so nothing on the takeover path awaits it.
 *
 *  - announce: `arping -U -c 1 -I if VIP` — an ARP request with sender = target = VIP from our MAC
 *    (RFC 5227 §3 "ARP Announcement"); a burst at takeover, a repeat burst, and a periodic refresh
 *    (keepalived#20: a switch or client that missed the burst would follow the old MAC forever).
 *  - probe: `arping -D` — RFC 5227 §2.1.1 probe (sender IP 0.0.0.0); exit status 1 = someone answered.
 */
export class Vip {
  readonly ip: string;
  private timers = new Set<NodeJS.Timeout>();
  private refreshTimer: NodeJS.Timeout | undefined;
  private children = new Set<ChildProcess>();
  private kit: ChildProcess | undefined;
  /** GARP frames requested (one arping each). */
  garpsSent = 0;

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
    const arp = [this.garp.arping, '-U', '-c', '1', '-I', this.cfg.interface, this.ip].map(q).join(' ');
    const script = `read go || exit 0; ${add} 2>&1; rc=$?; if [ $rc -eq 0 ]; then i=0; while [ $i -lt ${this.garp.burst} ]; do ${arp} >/dev/null 2>&1 & i=$((i+1)); done; fi; echo "pairlb-kit $rc"; wait`;
    const kit = spawn('/bin/sh', ['-c', script], { stdio: ['pipe', 'pipe', 'ignore'] });
    kit.on('error', (e) => this.log.warn({ mod: 'ha', err: e }, 'could not pre-fork the takeover shell'));
    kit.stdin!.on('error', () => { /* died before use: add() falls back */ });
    this.kit = kit;
  }

  /**
   * Add the VIP. Returns garpSent = true when the pre-forked shell also sent the GARP burst.
   * Falls back to spawning `ip` directly when no shell is ready.
   */
  async add(): Promise<{ garpSent: boolean }> {
    const kit = this.kit;
    this.kit = undefined;
    if (kit && kit.exitCode === null && kit.signalCode === null && kit.stdout) {
      const rc = await new Promise<{ rc: number; out: string } | undefined>((resolve) => {
        let out = '';
        const t = setTimeout(() => resolve(undefined), 5000);
        kit.stdout!.setEncoding('utf8');
        kit.stdout!.on('data', (d: string) => {
          out += d;
          const m = /pairlb-kit (\d+)/.exec(out);
          if (m) { clearTimeout(t); resolve({ rc: Number(m[1]), out: out.slice(0, m.index).trim() }); }
        });
        kit.once('exit', () => { clearTimeout(t); resolve(undefined); });
        kit.stdin!.end('go\n');
      });
      if (rc?.rc === 0) { this.garpsSent += this.garp.burst; return { garpSent: true }; }
      if (rc) throw new PairlbError('PAIRLB_HA_VIP', `ip ${this.addArgs().join(' ')}: ${rc.out || 'exit ' + rc.rc}`);
    }
    const args = this.addArgs();
    try {
      await execFileP(this.ipBin, args, { timeout: 5000 });
    } catch (e) {
      const msg = String((e as { stderr?: string }).stderr ?? (e as Error).message);
      throw new PairlbError('PAIRLB_HA_VIP', `ip ${args.join(' ')}: ${msg.trim()}`);
    }
    return { garpSent: false };
  }

  /** `ip addr del`; an address that is not there is fine. */
  async remove(): Promise<void> {
    this.stopAnnouncing();
    const args = ['addr', 'del', this.cfg.address, 'dev', this.cfg.interface];
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

  /** Interface operational state from sysfs (ip netns exec remounts /sys for the namespace). */
  linkUp(): boolean {
    try {
      const st = readFileSync(`/sys/class/net/${this.cfg.interface}/operstate`, 'utf8').trim();
      return st === 'up' || st === 'unknown';
    } catch {
      return false;
    }
  }

  /** Send `n` gratuitous ARPs now, each its own arping, none awaited. */
  announce(n = 1): void {
    for (let i = 0; i < n; i++) {
      this.run(this.garp.arping, ['-U', '-c', '1', '-I', this.cfg.interface, this.ip]);
      this.garpsSent++;
    }
  }

  /** Takeover: burst now, repeat later, then refresh periodically while we hold the VIP. */
  startAnnouncing(burstNow = true): void {
    this.stopAnnouncing();
    if (burstNow) this.announce(this.garp.burst);
    if (this.garp.repeat > 0 && this.garp.repeat_delay > 0) {
      const t = setTimeout(() => { this.timers.delete(t); this.announce(this.garp.repeat); }, this.garp.repeat_delay);
      t.unref();
      this.timers.add(t);
    }
    if (this.garp.refresh > 0) {
      this.refreshTimer = setInterval(() => this.announce(1), this.garp.refresh);
      this.refreshTimer.unref();
    }
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
      c.on('spawn', () => { t = setTimeout(() => { c.kill('SIGKILL'); resolve(false); }, timeoutMs); });
      c.on('exit', (code) => { clearTimeout(t); resolve(code === 1); });
      c.on('error', (e) => { clearTimeout(t); this.log.error({ mod: 'ha', err: e }, 'arping probe failed to start; assuming the VIP is free'); resolve(false); });
    });
  }

  private run(bin: string, args: string[]): ChildProcess {
    const c = spawn(bin, args, { stdio: 'ignore' });
    this.children.add(c);
    c.on('exit', () => this.children.delete(c));
    c.on('error', (e) => { this.children.delete(c); this.log.error({ mod: 'ha', err: e, bin }, 'could not run arping'); });
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
