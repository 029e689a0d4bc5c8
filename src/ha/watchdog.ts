import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import type { Logger } from '../log.js';

/**
 * The VIP watchdog: a small bash process, outside our event loop, that removes the VIP when we can
 * no longer be master. A master whose process died or hangs must not keep the VIP: its kernel would
 * go on answering ARP for it, and the backup's RFC 5227 probe would see a "live" master forever
 * (issue 11: SIGKILL of pairlb alone left the VIP on lb-01 until systemd restarted it).
 *
 * Protocol, one line each way on its stdin/stdout:
 *   main → watchdog  `m` armed (we hold the VIP or are about to add it) and fed; sent every
 *                    keepalive while armed.  `b` disarmed (not master).  `d` remove the VIP now
 *                    (a main process that cannot spawn `ip` any more, e.g. EMFILE).  `gN` send N
 *                    gratuitous ARPs (arping, in the background): the master's re-announcements
 *                    fork from this small shell, not from our ~100 MB process, whose fork stalls
 *                    the event loop for up to ~100 ms each on a loaded machine (measured) — long
 *                    enough, three in a row, to look like a hang.  `k` kill those still running
 *                    (a demotion: Vip.supersede()).
 *   watchdog → main  `stalled` it removed the VIP because no `m` came for `timeout`;
 *                    `dropped` it removed the VIP on request.
 *   EOF on stdin     main is gone (crash, SIGKILL, exit): remove the VIP if armed, then exit.
 *
 *   armed ──(no feed for timeout: SIGSTOP, stuck event loop)──► ip addr del, print "stalled", disarmed
 *   armed ──(stdin EOF: process died)─────────────────────────► ip addr del, exit
 *
 * Why bash: `read -t` gives a sub-second timeout without forking, so the steady state costs one
 * read per heartbeat (dash has no `read -t`). It runs in its own session (`detached`), so a signal
 * to our process group (Ctrl-C, `kill -- -PGID`) does not take it down with us, and it ignores
 * INT/TERM/HUP: it ends by itself when our end of the pipe closes. SIGKILL of our PID alone does
 * not kill children; systemd's KillMode=mixed SIGKILLs it at the stop timeout, and the unit's
 * ExecStopPost removes the VIP as a last resort.
 */
export class Watchdog {
  private child: ChildProcess | undefined;
  private armed = false;
  private closing = false;
  private lastSpawn = 0;
  /** When we last told the watchdog we are alive (performance.now()). */
  lastFeed = performance.now();
  /** Times the watchdog removed the VIP (stalled or on request). */
  fired = 0;

  /**
   * @param delCmd `ip addr del VIP dev IF` as argv (from Vip.delArgv(): one home for the command)
   * @param timeoutMs no feed this long while armed = we are hung: the VIP goes
   * @param onFire called (on our event loop, when it runs again) after the watchdog removed the VIP
   */
  constructor(private readonly delCmd: string[], private readonly garpCmd: string[], readonly timeoutMs: number, private readonly log: Logger, private readonly onFire: (why: 'stalled' | 'dropped') => void) {}

  start(): void {
    if (this.closing) return;
    this.lastSpawn = Date.now();
    const q = (x: string): string => `'${x.replace(/'/g, `'\\''`)}'`;
    const del = this.delCmd.map(q).join(' ') + ' >/dev/null 2>&1';
    const arp = this.garpCmd.map(q).join(' ') + ' >/dev/null 2>&1 &';
    const t = (this.timeoutMs / 1000).toFixed(3);
    const script = `trap '' INT TERM HUP PIPE
armed=0
while :; do
  if [ $armed = 1 ]; then IFS= read -r -t ${t} line; rc=$?; else IFS= read -r line; rc=$?; fi
  if [ $rc = 0 ]; then
    case $line in
      m) armed=1 ;;
      b) armed=0 ;;
      d) ${del}; armed=0; echo dropped ;;
      g[0-9]*) n=\${line#g}; while [ "$n" -gt 0 ]; do ${arp} n=$((n-1)); done ;;
      k) kill -9 $(jobs -p) >/dev/null 2>&1 ;;
    esac
  elif [ $rc -gt 128 ]; then
    ${del}; armed=0; echo stalled
  else
    [ $armed = 1 ] && ${del}
    exit 0
  fi
done`;
    let c: ChildProcess;
    try {
      c = spawn('/bin/bash', ['-c', script, 'pairlb-watchdog'], { stdio: ['pipe', 'pipe', 'ignore'], detached: true });
    } catch (e) {
      this.log.error({ err: e }, 'could not start the VIP watchdog');
      return;
    }
    this.child = c;
    c.on('error', (e) => this.log.error({ err: e }, 'VIP watchdog failed (bash missing?): a hung master would keep the VIP until the peer finds it not serving'));
    c.stdin!.on('error', () => { /* it died; 'exit' handles it */ });
    createInterface({ input: c.stdout! }).on('line', (l) => {
      if (l !== 'stalled' && l !== 'dropped') return;
      this.fired++;
      this.armed = false;
      this.onFire(l);
    });
    c.on('exit', (code, sig) => {
      if (this.child === c) this.child = undefined;
      if (this.closing) return;
      this.log.error({ code, sig }, 'VIP watchdog exited: restarting it');
      // At most one restart a second: a watchdog that cannot run must not become a fork loop.
      const t = setTimeout(() => { this.start(); if (this.armed) this.write('m'); }, Math.max(0, 1000 - (Date.now() - this.lastSpawn)));
      t.unref();
    });
    if (this.armed) this.write('m');
  }

  private write(line: string): void {
    const c = this.child;
    if (c?.stdin?.writable) c.stdin.write(line + '\n');
  }

  /** We hold the VIP (or are about to add it): from now on a silence of timeoutMs removes it. */
  arm(): void { this.armed = true; this.feed(); }

  /** We do not hold the VIP any more. */
  disarm(): void {
    this.lastFeed = performance.now();
    if (!this.armed) return;
    this.armed = false;
    this.write('b');
  }

  isArmed(): boolean { return this.armed; }

  /** Called every keepalive: the proof that our event loop runs. */
  feed(): void {
    this.lastFeed = performance.now();
    if (this.armed) this.write('m');
  }

  /** Send `n` gratuitous ARPs from the watchdog's shell; false when it is not running. */
  garp(n: number): boolean {
    if (!this.child?.stdin?.writable) return false;
    this.write(`g${n}`);
    return true;
  }

  /** Kill the GARP senders still running (the role changed). */
  cancelGarps(): void { this.write('k'); }

  /** Ask the watchdog to remove the VIP now (our own `ip` could not be spawned). */
  dropNow(): boolean {
    if (!this.child?.stdin?.writable) return false;
    this.write('d');
    return true;
  }

  /**
   * How long our event loop went without feeding while armed, when that is long enough that the
   * watchdog has removed the VIP or may do so before our next feed reaches it; else undefined.
   * The margin covers a watchdog that reads our feed late on a loaded machine.
   */
  stalledFor(now = performance.now()): number | undefined {
    if (!this.armed || !this.child) return undefined;
    const gap = now - this.lastFeed;
    return gap >= this.timeoutMs * 0.9 ? gap : undefined;
  }

  /** Disarm and end it (normal stop: we released the VIP ourselves). */
  close(): void {
    this.closing = true;
    this.armed = false;
    const c = this.child;
    this.child = undefined;
    if (!c) return;
    if (c.stdin?.writable) { c.stdin.write('b\n'); c.stdin.end(); }
    // It exits on EOF; a watchdog that does not within a second is killed.
    const t = setTimeout(() => { try { c.kill('SIGKILL'); } catch { /* gone */ } }, 1000);
    t.unref();
    c.once('exit', () => clearTimeout(t));
  }
}
