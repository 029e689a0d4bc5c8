import type { Socket } from 'node:net';

/**
 * The per-connection "is TLS" flag: true on a connection that pairlb terminated TLS on (node:tls
 * sets `encrypted` on a TLSSocket). Read by X-Forwarded-Proto/Port, `Forwarded: proto=` and the
 * rules' `tls` condition; one property read, no lookup.
 */
export function isTls(socket: Socket | null | undefined): boolean {
  return (socket as { encrypted?: boolean } | null | undefined)?.encrypted === true;
}
