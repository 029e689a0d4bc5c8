import { closeSync, fsyncSync, mkdirSync, openSync, readFileSync, renameSync, writeSync } from 'node:fs';
import { mkdir, open, rename } from 'node:fs/promises';
import { dirname } from 'node:path';

/**
 * Anti-replay for one peer (pure: no clock, no I/O). Three rules, each with its own verdict:
 *
 *  1. Incarnation: every start of the peer has a higher incarnation. Packets of a lower one are
 *     `old_incarnation`. The highest one seen is persisted by the shell (state_dir/ha-peer, fsync),
 *     so this holds across restarts of either node.
 *  2. Sequence, per path: the sender numbers every packet with one counter and names the path it
 *     sent it on (authenticated). Each path has its own sliding window (RFC 4303 §3.4.3, 64 wide),
 *     so a packet is accepted at most once, and packets queued on a path that was down (a link-flap
 *     backlog) are still in order on their own path: unseen, hence not `replayed`. A copy of a
 *     packet, or one older than its path's window, is `replayed`.
 *  3. Echo: every packet carries the receiver's incarnation as the sender last heard it. A packet
 *     whose echo is not our current incarnation was made before the peer heard this run of ours:
 *     it may be a capture from before our restart, where the window above is empty. It is
 *     `unconfirmed` and never acted on — our incarnation is strictly increasing, so no packet made
 *     before we started can carry it, and a capture made after that is caught by rule 2.
 *
 * An unseen packet older than the newest packet acted on from this incarnation carries nothing
 * new (reordering between the paths, or a link-flap backlog): it is `backlog` — not a rejection,
 * not acted on (its role and flags are stale), counted apart.
 *
 * Authenticated, unseen packets update the windows and the incarnation even when unconfirmed:
 * both nodes restarting at once must learn each other's incarnation to echo it. That is safe:
 * the highest authenticated incarnation is always the peer's real current one or an older one.
 */
export type GuardVerdict = 'fresh' | 'backlog' | 'unconfirmed' | 'old_incarnation' | 'replayed';

const W = 64n;
const MASK = (1n << W) - 1n;

/** One path's window: bit i set = sequence `top - i` was seen. */
class SeqWindow {
  top = -1n;
  bits = 0n;
  /** True when `seq` was already seen or is too old to tell. */
  seen(seq: bigint): boolean {
    if (seq > this.top) return false;
    const d = this.top - seq;
    return d >= W || ((this.bits >> d) & 1n) === 1n;
  }
  mark(seq: bigint): void {
    if (seq > this.top) {
      const shift = this.top < 0n ? W : seq - this.top;
      this.bits = shift >= W ? 1n : ((this.bits << shift) | 1n) & MASK;
      this.top = seq;
    } else {
      this.bits |= 1n << (this.top - seq);
    }
  }
}

export class ReplayGuard {
  /** Highest incarnation of the peer seen (authenticated); -1 = none. Persist it when it grows. */
  incarnation: bigint;
  private windows = [new SeqWindow(), new SeqWindow()];
  /** Highest sequence accepted as fresh in this incarnation, over every path. */
  private newest = -1n;

  /** `known`: the peer's highest incarnation from a previous run of ours (state_dir/ha-peer). */
  constructor(known = -1n) { this.incarnation = known; }

  /**
   * Judge an authenticated packet and record it. `self` is our current incarnation, `echo` the
   * packet's view of it. Never call with an unauthenticated packet (it would move the windows).
   */
  judge(inc: bigint, seq: bigint, path: 0 | 1, echo: bigint, self: bigint): { verdict: GuardVerdict; newIncarnation: boolean } {
    if (inc < this.incarnation) return { verdict: 'old_incarnation', newIncarnation: false };
    const newIncarnation = inc > this.incarnation;
    if (newIncarnation) {
      this.incarnation = inc;
      this.windows = [new SeqWindow(), new SeqWindow()];
      this.newest = -1n;
    }
    const w = this.windows[path];
    if (w.seen(seq)) return { verdict: 'replayed', newIncarnation };
    w.mark(seq);
    // Older than a packet already acted on: stale whatever its echo (at the handshake, the peer's
    // last unconfirmed packet may arrive after its first confirmed one on the other path).
    if (seq < this.newest) return { verdict: 'backlog', newIncarnation };
    if (echo !== self) return { verdict: 'unconfirmed', newIncarnation };
    this.newest = seq;
    return { verdict: 'fresh', newIncarnation };
  }
}

/**
 * A bigint kept in a small file, written so that a crash or power loss leaves either the old or
 * the new value: write to a temp file, fsync it, rename over, fsync the directory. Used for our
 * own incarnation (ha-incarnation) and the peer's highest (ha-peer).
 */
export function readPersisted(file: string): bigint | undefined {
  try {
    const s = readFileSync(file, 'utf8').trim();
    return /^\d{1,20}$/.test(s) ? BigInt(s) : undefined;
  } catch { return undefined; }
}

export function writePersisted(file: string, v: bigint): void {
  const dir = dirname(file);
  mkdirSync(dir, { recursive: true, mode: 0o750 });
  const tmp = `${file}.tmp`;
  const fd = openSync(tmp, 'w', 0o640);
  try { writeSync(fd, v.toString() + '\n'); fsyncSync(fd); } finally { closeSync(fd); }
  renameSync(tmp, file);
  const dfd = openSync(dir, 'r');
  try { fsyncSync(dfd); } finally { closeSync(dfd); }
}

/** As writePersisted, on the thread pool: an fsync on a busy disk must not stall the heartbeats. */
export async function writePersistedAsync(file: string, v: bigint): Promise<void> {
  const dir = dirname(file);
  await mkdir(dir, { recursive: true, mode: 0o750 });
  const tmp = `${file}.tmp`;
  const fh = await open(tmp, 'w', 0o640);
  try { await fh.writeFile(v.toString() + '\n'); await fh.sync(); } finally { await fh.close(); }
  await rename(tmp, file);
  const dh = await open(dir, 'r');
  try { await dh.sync(); } finally { await dh.close(); }
}
