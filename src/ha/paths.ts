/**
 * Liveness of each heartbeat path (0 dedicated, 1 public), both directions. Hearing the peer on a
 * path proves only peer → us; the peer proves us → peer by echoing, in its adverts, the highest
 * sequence number it received from us on that path (advert-body.ts tag 1). A path is up when,
 * within `deadtime`, we heard the peer on it *and* its echo for it advanced (it received one of
 * our newer packets there). A link cut in one direction is then down at both ends, and state is
 * not pushed into it.
 *
 * Pure bookkeeping: the caller passes the clock.
 */
export class PathLiveness {
  private readonly rxAt = [0, 0];
  /** Highest sequence received from the peer per path (current peer incarnation): what we echo. */
  private readonly rxSeq = [0n, 0n];
  /** Highest echo of our own sequence numbers seen from the peer per path, and when it advanced. */
  private readonly echoSeq = [0n, 0n];
  private readonly echoAt = [0, 0];

  constructor(private readonly deadtime: number) {}

  /** A valid packet from the peer on `path`. A new peer incarnation numbers from scratch. */
  received(path: 0 | 1, seq: bigint, now: number, newIncarnation: boolean): void {
    if (newIncarnation) { this.rxSeq[0] = 0n; this.rxSeq[1] = 0n; }
    this.rxAt[path] = now;
    if (seq > this.rxSeq[path]) this.rxSeq[path] = seq;
  }

  /**
   * The peer's echo of our sequence numbers. An echo above `ourSeq` belongs to a previous run of
   * ours (the peer has not seen our new incarnation yet) and proves nothing.
   */
  echoed(echo: readonly [bigint, bigint], ourSeq: bigint, now: number): void {
    for (const p of [0, 1] as const) {
      const e = echo[p];
      if (e > 0n && e <= ourSeq && e > this.echoSeq[p]) { this.echoSeq[p] = e; this.echoAt[p] = now; }
    }
  }

  /**
   * The peer's incarnation grew (possibly learnt from a packet not acted on yet, advert.ts
   * `unconfirmed`): its sequence numbers start from scratch.
   */
  peerRestarted(): void { this.rxSeq[0] = 0n; this.rxSeq[1] = 0n; }

  /** What we echo to the peer. */
  echo(): [bigint, bigint] { return [this.rxSeq[0], this.rxSeq[1]]; }

  heard(path: 0 | 1, now: number): boolean { return this.rxAt[path] > 0 && now - this.rxAt[path] < this.deadtime; }
  answered(path: 0 | 1, now: number): boolean { return this.echoAt[path] > 0 && now - this.echoAt[path] < this.deadtime; }
  up(path: 0 | 1, now: number): boolean { return this.heard(path, now) && this.answered(path, now); }
}
