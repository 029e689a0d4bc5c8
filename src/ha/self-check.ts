import type { App } from '../app.js';
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

  constructor(private readonly app: App, private readonly cfg: SelfCheckConfig, private readonly vipIp: string, private readonly holdsVip: () => boolean, private readonly log: Logger, private readonly onChange: () => void) {}

  start(): void {
    if (!this.cfg.enabled || this.timer) return;
    this.timer = setInterval(() => { void this.round(); }, this.cfg.interval);
    this.timer.unref();
  }

  stop(): void { clearInterval(this.timer); this.timer = undefined; }

  private targets(): { name: string; host: string; port: number; tls: boolean }[] {
    const out: { name: string; host: string; port: number; tls: boolean }[] = [];
    for (const [name, l] of this.app.proxy.listeners) {
      const a = l.address();
      if (!a) continue;
      let host = a.host;
      if (host === '0.0.0.0') host = '127.0.0.1';
      else if (host === '::') host = '::1';
      else if (host === this.vipIp && !this.holdsVip()) continue;
      out.push({ name, host, port: a.port, tls: l.tls !== undefined });
    }
    return out;
  }

  private async round(): Promise<void> {
    if (this.running) return; // a round still waiting for its timeout
    this.running = true;
    try {
      const ts = this.targets();
      const rs = await Promise.all(ts.map((t) => httpAnswers(t.host, t.port, this.cfg.path, this.cfg.timeout, t.tls)));
      this.rounds++;
      const bad = rs.findIndex((r) => !r.ok);
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
