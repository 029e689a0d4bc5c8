import type { Logger } from '../log.js';
import type { SelfCheckConfig } from './config.js';
import { httpAnswers } from './answers.js';

/**
 * Is this node's data plane answering? Every `interval`, one HTTP request to each listener through
 * its bound address (0.0.0.0 → 127.0.0.1), as a client would send it: `fall` consecutive
 * unanswered rounds make the node unhealthy (FAULT: a master releases the VIP and tells the peer,
 * which claims at once), `rise` answered rounds make it healthy again.
 *
 * `server.listening` alone (ProxyManager.isServing) misses a data plane that is bound but does not
 * answer: fds exhausted (accept fails with EMFILE), connection tracking full, a wedged worker, a
 * firewall rule — while the heartbeats, already-open UDP sockets, go on. A listener bound to the VIP
 * itself is checked only while we hold the VIP (elsewhere the request would reach the peer).
 */
/** A listener's address as the data plane bound it. */
export interface SelfCheckTarget { name: string; host: string; port: number; tls: boolean }

export class SelfCheck {
  ok = true;
  reason = '';
  private fails = 0;
  private passes = 0;
  private timer: NodeJS.Timeout | undefined;
  private running = false;
  /** Rounds run / rounds with a listener unanswered (status, tests). */
  rounds = 0;
  failedRounds = 0;
  /** Rounds that timed out while the data plane went on accepting connections: saturated, not wedged. */
  slowRounds = 0;

  constructor(private readonly listeners: () => SelfCheckTarget[], private readonly accepted: () => number, private readonly cfg: SelfCheckConfig, private readonly vipIp: string, private readonly holdsVip: () => boolean, private readonly log: Logger, private readonly onChange: () => void) {}

  start(): void {
    if (!this.cfg.enabled || this.timer) return;
    this.timer = setInterval(() => { void this.round(); }, this.cfg.interval);
    this.timer.unref();
  }

  stop(): void { clearInterval(this.timer); this.timer = undefined; }

  private targets(): SelfCheckTarget[] {
    const out: SelfCheckTarget[] = [];
    for (const a of this.listeners()) {
      let host = a.host;
      if (host === '0.0.0.0') host = '127.0.0.1';
      else if (host === '::') host = '::1';
      else if (host === this.vipIp && !this.holdsVip()) continue;
      out.push({ name: a.name, host, port: a.port, tls: a.tls });
    }
    return out;
  }

  private async round(): Promise<void> {
    if (this.running) return; // a round still waiting for its timeout
    this.running = true;
    try {
      const ts = this.targets();
      const before = this.accepted();
      const rs = await Promise.all(ts.map((t) => httpAnswers(t.host, t.port, this.cfg.path, this.cfg.timeout, t.tls)));
      this.rounds++;
      const bad = rs.findIndex((r) => !r.ok);
      // Unanswered in time, but the data plane accepted connections meanwhile (its accept counter,
      // pushed by the control plane, moved): its loop runs and serves, only slowly — saturated by
      // traffic (new connections wait behind busy ones), not wedged. Neither a failure nor a pass:
      // failing over would only move the load to the peer. A wedged loop, EMFILE or a dropped port
      // accepts nothing.
      if (bad >= 0 && rs.every((r) => r.ok || r.err === 'timeout') && this.accepted() > before) {
        this.slowRounds++;
        return;
      }
      if (bad < 0) {
        this.fails = 0;
        if (!this.ok && ++this.passes >= this.cfg.rise) {
          this.ok = true; this.reason = '';
          this.log.info({ rounds: this.passes }, 'data plane answers again (self-check)');
          this.onChange();
        }
        return;
      }
      this.failedRounds++;
      this.passes = 0;
      const why = `listen ${ts[bad].name} (${ts[bad].host}:${ts[bad].port}): ${rs[bad].err}`;
      if (this.ok && ++this.fails >= this.cfg.fall) {
        this.ok = false;
        this.reason = `data plane not answering (self-check: ${why})`;
        this.log.warn({ fails: this.fails, ms: rs[bad].ms }, this.reason);
        this.onChange();
      }
    } finally {
      this.running = false;
    }
  }
}
