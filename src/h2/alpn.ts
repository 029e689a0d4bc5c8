import * as tls from 'node:tls';
import type { Server as TlsServer } from 'node:tls';
import type { FrontendConfig } from '../config/sites.js';

/**
 * The ALPN list a TLS bind offers (RFC 7301; the server picks the first of its list the client
 * also offers): `h2` first when the frontend's `h2` is on, then `tls.alpn` (http/1.1). One home
 * for it: the https server is made with it and a reload sets it again (setAlpn).
 */
export function alpnList(cfg: FrontendConfig): string[] {
  const base = cfg.tls ? [...cfg.tls.alpn] : ['http/1.1'];
  return cfg.h2 ? ['h2', ...base] : base;
}

/**
 * New handshakes of a running server offer `list` (node:tls reads the server's encoded list for
 * each connection; `convertALPNProtocols` is what its constructor and setSecureContext use).
 */
export function setAlpn(server: TlsServer, list: string[]): void {
  // Exported by node:tls but absent from @types/node.
  (tls as unknown as { convertALPNProtocols(l: string[], out: object): void }).convertALPNProtocols(list, server);
}
