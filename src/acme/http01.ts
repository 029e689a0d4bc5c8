import type { IncomingMessage, ServerResponse } from 'node:http';

/**
 * HTTP-01 challenge answers (RFC 8555 §8.3): the CA fetches
 * `http://<name>/.well-known/acme-challenge/<token>` on port 80 and expects the key authorization.
 *
 * The tokens live here, in the App (`app.http01`), filled by the ACME module on the master and by
 * the replicated state on the backup, so both nodes answer (the VIP may move in the middle of an
 * order). Every plain-HTTP listener looks a request up before routing (listener.ts); a token that is
 * not ours falls through to the backends, so a site that runs its own ACME client behind pairlb
 * keeps working. What crosses to a data-plane thread is the map's content (token → string).
 */
export const HTTP01_PREFIX = '/.well-known/acme-challenge/';

export class Http01Tokens {
  private readonly m = new Map<string, string>();
  /** Bumped on every change (a data-plane copy can compare it). */
  version = 0;
  private readonly subs = new Set<() => void>();

  /** Called after every change (a data-plane thread's copy is refreshed from entries()); returns the unsubscribe. */
  onChange(fn: () => void): () => void { this.subs.add(fn); return () => { this.subs.delete(fn); }; }
  private changed(): void { this.version++; for (const f of this.subs) f(); }

  get size(): number { return this.m.size; }

  /** The key authorization for a request path, or undefined (not a challenge, or not ours). */
  lookup(path: string): string | undefined {
    if (this.m.size === 0 || !path.startsWith(HTTP01_PREFIX)) return undefined;
    return this.m.get(path.slice(HTTP01_PREFIX.length));
  }

  set(token: string, keyAuthorization: string): void { this.m.set(token, keyAuthorization); this.changed(); }
  delete(token: string): void { if (this.m.delete(token)) this.changed(); }
  replace(entries: Iterable<[string, string]>): void { this.m.clear(); for (const [k, v] of entries) this.m.set(k, v); this.changed(); }
  entries(): [string, string][] { return [...this.m]; }
}

/** Answer a challenge: 200 text/plain with the key authorization (HEAD: headers only). */
export function answerHttp01(req: IncomingMessage, res: ServerResponse, keyAuthorization: string): void {
  const body = Buffer.from(keyAuthorization, 'ascii');
  res.writeHead(200, { 'content-type': 'text/plain', 'content-length': body.length, 'cache-control': 'no-store' });
  res.end(req.method === 'HEAD' ? undefined : body);
}
