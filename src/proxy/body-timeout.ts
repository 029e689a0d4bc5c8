import type { IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';
import type { ListenSettings } from './listener.js';

/** A request whose body is being received (the listener's Exchange). */
export interface BodyOwner {
  readonly req: IncomingMessage;
  readonly socket: Socket;
  readonly finished: boolean;
  /** The client stopped sending (or sends too slowly): answer 408 or cut, abort the upstream. */
  bodyTimedOut(): void;
}

interface Watch {
  /** performance.now() at the start, of the last progress, of the last check. */
  start: number;
  last: number;
  checked: number;
  /** socket.bytesRead at the last check, bytes received since the start. */
  read: number;
  got: number;
  /** Time the proxy itself was not reading (backend not connected, backpressure): never the client's. */
  credit: number;
}

/**
 * Request body timeouts (issue 10 item 5): a client that sends `Content-Length: 100000` and then
 * nothing, or one byte every 5 s, must not hold its connection and a backend connection for ever.
 *
 *   idle  `timeouts.client_body`: no byte from the client for that long (nginx client_body_timeout);
 *   rate  `min_body_rate`: the body may take client_body + 1 s per min_body_rate bytes received
 *         (Apache mod_reqtimeout `body=…,MinRate=…`), which cuts the one-byte drip an idle timeout
 *         alone lets run for days while a 1 GiB upload at any sane rate is never cut.
 *
 * Only time spent waiting for the client counts: while the request stream is not being read (the
 * engine has not connected yet, or pauses it because the backend applies backpressure) the bytes
 * wait in our buffers and the client cannot send; that time is credited, so a slow backend is never
 * blamed on the client. Progress is read from the socket's byte counter by one timer per listener,
 * ticking only while bodies are in flight: nothing is allocated or listened to per chunk.
 */
export class BodyWatch {
  private readonly watched = new Map<BodyOwner, Watch>();
  private timer: NodeJS.Timeout | undefined;

  constructor(private readonly l: { readonly s: ListenSettings }) {}

  add(o: BodyOwner): void {
    const idle = this.l.s.bodyIdleMs;
    if (idle === 0) return;
    const now = performance.now();
    this.watched.set(o, { start: now, last: now, checked: now, read: o.socket.bytesRead, got: 0, credit: 0 });
    if (this.timer === undefined) {
      this.timer = setInterval(this.tick, Math.min(1000, Math.max(50, idle >> 2)));
      this.timer.unref();
    }
  }

  private readonly tick = (): void => {
    const s = this.l.s;
    const idle = s.bodyIdleMs;
    const rate = s.bodyRatePerMs;
    if (idle === 0) { this.stop(); return; } // turned off by a reload
    const now = performance.now();
    for (const [o, w] of this.watched) {
      const req = o.req;
      if (o.finished || req.complete || req.destroyed) { this.watched.delete(o); continue; }
      const read = o.socket.bytesRead;
      if (read !== w.read) {
        w.got += read - w.read;
        w.read = read;
        w.last = now;
      } else if (req.readableFlowing !== true || req.readableLength > 0) {
        w.last = now;
        w.credit += now - w.checked;
      }
      w.checked = now;
      if ((idle > 0 && now - w.last >= idle) || (rate > 0 && now - w.start - w.credit > idle + w.got / rate)) {
        this.watched.delete(o);
        o.bodyTimedOut();
      }
    }
    if (this.watched.size === 0) this.stop();
  };

  stop(): void {
    if (this.timer !== undefined) { clearInterval(this.timer); this.timer = undefined; }
    this.watched.clear();
  }
}
