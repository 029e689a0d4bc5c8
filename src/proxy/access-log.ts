import type { IncomingMessage } from 'node:http';
import type { Logger } from '../log.js';
import type { Exchange, Listener } from './listener.js';

/**
 * One line per request. `json`: the fields of HAProxy's httplog (client, listen/backend/server,
 * timers Tw/Tc/Tr/Ta in ms, status, bytes, termination state, retries) as a pino JSON line.
 * `combined`: the Apache combined format that Awstats and GoAccess read.
 * Timers: Tw is the time waited for a server slot (server maxconn; 0 when not queued), Tc the
 * time until the request was handed to a connection (-1 if never), Tr until response headers
 * (-1 if none), Ta total. srv_queue / backend_queue: waiters ahead of it in the server's and the
 * backend's queue when it was queued (HAProxy's fields of the same name).
 */
const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];
const pad = (n: number) => (n < 10 ? '0' + n : String(n));

function clfDate(d: Date): string {
  return `${pad(d.getUTCDate())}/${MONTHS[d.getUTCMonth()]}/${d.getUTCFullYear()}:${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}:${pad(d.getUTCSeconds())} +0000`;
}

function q(s: string | undefined): string {
  return s === undefined ? '-' : s.replace(/["\\]/g, (c) => '\\' + c);
}

export class AccessLog {
  readonly enabled: boolean;
  private readonly log: Logger;
  constructor(private readonly mode: 'json' | 'combined' | 'off', log: Logger) {
    this.enabled = mode !== 'off';
    this.log = log.child({ mod: 'access' });
  }

  write(l: Listener, ex: Exchange, now: number, bytesIn: number): void {
    const req = ex.req;
    const ms = (t: number) => (t ? Math.round((t - ex.start) * 100) / 100 : -1);
    if (this.mode === 'json') {
      this.log.info({
        client: ex.socket.remoteAddress, client_port: ex.socket.remotePort,
        listen: l.s.name, server: ex.route?.name ?? '<NOSRV>',
        Tw: Math.round(ex.tw * 100) / 100, Tc: ms(ex.tConnect), Tr: ms(ex.tHeaders), Ta: ms(now),
        status: ex.status, bytes_read: ex.bytesOut, bytes_in: bytesIn,
        termination: ex.termination, retries: ex.attempts > 1 ? ex.attempts - 1 : 0,
        srv_queue: ex.srvQueue, backend_queue: ex.backendQueue,
        method: req.method, uri: req.url,
      });
    } else {
      this.line(req, ex.socket.remoteAddress, ex.status, ex.bytesOut);
    }
  }

  /** A request refused before routing (414 and the like). */
  reject(l: Listener, req: IncomingMessage, status: number): void {
    if (!this.enabled) return;
    if (this.mode === 'json') this.log.info({ client: req.socket?.remoteAddress, client_port: req.socket?.remotePort, listen: l.s.name, server: '<NOSRV>', status, termination: 'PR', method: req.method, uri: req.url?.slice(0, 256) });
    else this.line(req, req.socket?.remoteAddress, status, 0);
  }

  private line(req: IncomingMessage, client: string | undefined, status: number, bytes: number): void {
    const h = req.headers;
    process.stdout.write(`${client ?? '-'} - - [${clfDate(new Date())}] "${q(req.method)} ${q(req.url)} HTTP/${req.httpVersion}" ${status} ${bytes || '-'} "${q(h.referer)}" "${q(h['user-agent'])}"\n`);
  }
}
