import { existsSync, writeSync } from 'node:fs';
import type { Logger } from '../log.js';

/**
 * sd_notify(3) without libsystemd: READY=1, WATCHDOG=1, STOPPING=1, RELOADING=1 and STATUS= to the
 * unix datagram socket that systemd names in NOTIFY_SOCKET (`Type=notify`, `WatchdogSec=`).
 *
 * Node has no AF_UNIX SOCK_DGRAM (dgram is UDP only; net is stream only). What others do: a native
 * addon (npm `sd-notify`, `unix-dgram`: a C++ toolchain at install), or spawning
 * `systemd-notify` per message (a fork per WATCHDOG=1 from a ~100 MB process, and its messages come
 * from another PID, so the unit needs NotifyAccess=all — systemd even drops them when the helper
 * has exited before systemd looked up its cgroup). Here: at start, before anything else runs,
 * `pairlb start` re-executes itself through perl (perl-base is Essential in Debian), which opens a
 * datagram socket *connected* to NOTIFY_SOCKET, clears its close-on-exec flag and execs the same
 * node with the same arguments and PAIRLB_NOTIFY_FD=<fd>. execve keeps the PID, so MAINPID is
 * pairlb's and every message is a plain write(2) of our own process on that fd — the kernel stamps
 * it with our PID (SCM_CREDENTIALS), so `NotifyAccess=main` accepts it. A write costs a few µs; the
 * socket is non-blocking, so a systemd that does not read loses a message instead of blocking us.
 */

export const NOTIFY_FD_ENV = 'PAIRLB_NOTIFY_FD';
const PERL = '/usr/bin/perl';

/** Opens the connected socket (or says why not in PAIRLB_NOTIFY_FD) and execs argv. */
const PERL_OPENER = `use Socket; use Fcntl;
my $p = $ENV{NOTIFY_SOCKET}; $p =~ s/^@/\\0/;
my $s;
if (socket($s, PF_UNIX, SOCK_DGRAM, 0) && connect($s, pack_sockaddr_un($p))) {
  fcntl($s, F_SETFD, 0); fcntl($s, F_SETFL, fcntl($s, F_GETFL, 0) | O_NONBLOCK);
  $ENV{${NOTIFY_FD_ENV}} = fileno($s);
} else { $ENV{${NOTIFY_FD_ENV}} = "error: $!"; }
exec { $ARGV[0] } @ARGV or die "exec $ARGV[0]: $!";`;

/**
 * Call first thing in the CLI for `start`: when systemd gave us a NOTIFY_SOCKET and we have no
 * descriptor for it yet, replace this process (same PID) by itself with one. Returns only when
 * nothing is to be done (or perl is missing: the notifier then says so in the log).
 */
export function reexecWithNotifySocket(): void {
  const env = process.env;
  if (!env.NOTIFY_SOCKET || env[NOTIFY_FD_ENV] !== undefined) return;
  if (typeof process.execve !== 'function' || !existsSync(PERL)) { env[NOTIFY_FD_ENV] = `error: ${PERL} (or process.execve) not available`; return; }
  process.execve(PERL, ['perl', '-e', PERL_OPENER, process.execPath, ...process.execArgv, ...process.argv.slice(1)], env);
}

/** A component that must answer for systemd's watchdog to be fed (HA loop, data-plane workers). */
export interface LivenessProbe {
  readonly name: string;
  /** Resolves when the component answered; the watchdog waits for at most its interval. */
  ping(): Promise<unknown>;
}

export class SdNotifier {
  private readonly fd: number | undefined;
  private timer: NodeJS.Timeout | undefined;
  private round = 0;
  /** Messages written / refused by the socket (EAGAIN: systemd does not read). */
  sent = 0;
  failed = 0;
  /** Watchdog rounds in which something did not answer (WATCHDOG=1 withheld). */
  withheld = 0;

  constructor(private readonly log: Logger, env: NodeJS.ProcessEnv = process.env) {
    const v = env[NOTIFY_FD_ENV];
    if (v === undefined) return;
    if (/^\d+$/.test(v)) this.fd = Number(v);
    else log.error({ mod: 'systemd', NOTIFY_SOCKET: env.NOTIFY_SOCKET, why: v }, 'cannot notify systemd (Type=notify will time out): no socket for NOTIFY_SOCKET');
    // Children (notify hooks, ip, arping) must not talk to systemd on our behalf.
    delete env.NOTIFY_SOCKET;
  }

  get enabled(): boolean { return this.fd !== undefined; }

  /** One datagram of `KEY=value` lines. */
  send(msg: string): boolean {
    if (this.fd === undefined) return false;
    try { writeSync(this.fd, msg); this.sent++; return true; } catch (e) {
      if (this.failed++ < 3) this.log.warn({ mod: 'systemd', err: e }, 'sd_notify write failed');
      return false;
    }
  }

  ready(status: string): void { this.send(`READY=1\nSTATUS=${status}\nMAINPID=${process.pid}`); }
  reloading(): void { this.send(`RELOADING=1\nMONOTONIC_USEC=${monotonicUsec()}`); }
  reloaded(status: string): void { this.send(`READY=1\nSTATUS=${status}`); }
  stopping(): void { this.send('STOPPING=1\nSTATUS=stopping'); }

  /**
   * WATCHDOG=1 every WATCHDOG_USEC/2, but only in rounds where this event loop ran (the timer
   * itself) and every probe answered within the round: a hung HA loop or worker stops the feed,
   * and systemd kills and restarts the service after WatchdogSec (the VIP goes with ExecStopPost).
   */
  startWatchdog(probes: () => LivenessProbe[], env: NodeJS.ProcessEnv = process.env): number | undefined {
    const usec = Number(env.WATCHDOG_USEC);
    if (this.fd === undefined || !(usec > 0)) return undefined;
    if (env.WATCHDOG_PID && Number(env.WATCHDOG_PID) !== process.pid) return undefined;
    const every = Math.max(10, Math.floor(usec / 2000));
    const tick = (): void => {
      const round = ++this.round;
      const ps = probes();
      const pending = new Set(ps.map((p) => p.name));
      let done = false;
      const finish = (): void => {
        if (done) return;
        done = true;
        clearTimeout(limit);
        if (pending.size === 0) this.send('WATCHDOG=1');
        else {
          this.withheld++;
          this.log.warn({ mod: 'systemd', silent: [...pending], round, withheld: this.withheld }, 'WATCHDOG=1 withheld: not answering within the watchdog interval');
        }
      };
      const limit = setTimeout(finish, every);
      for (const p of ps) p.ping().then(() => { pending.delete(p.name); if (!pending.size) finish(); }, () => { /* stays pending */ });
      if (!ps.length) finish();
    };
    tick();
    this.timer = setInterval(tick, every);
    return every;
  }

  close(): void { clearInterval(this.timer); this.timer = undefined; }
}

function monotonicUsec(): string {
  // CLOCK_MONOTONIC in µs, as systemd compares it (process.hrtime is CLOCK_MONOTONIC on Linux).
  return (process.hrtime.bigint() / 1000n).toString();
}
