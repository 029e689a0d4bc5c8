import type { IncomingMessage, ServerResponse } from 'node:http';
import type { App } from '../app.js';
import { PairlbError } from '../errors.js';
import { findModule, panelStatus } from '../stats/model.js';
import { AdminActions, type Actor } from './actions.js';
import { readBody, sendError, sendJson } from './http.js';
import { certSummaries, tlsStatuses } from '../tls/status.js';
import { verdict, type ListenSummary, type PairSummary, type StatusNote } from './status.js';
import { acmeOf } from '../acme/module.js';

/**
 * The runtime API: JSON over HTTP/1.1, on a unix socket (default) or a local TCP address with a
 * bearer token (the transport and auth live in module.ts; this file only routes).
 *
 *   GET    /v1/status                              summary + Nagios verdict (pairlb status)
 *   GET    /v1/backends[?listen=L]                 list
 *   GET    /v1/backends/L/N                        one backend
 *   POST   /v1/backends        {listen,name,address,weight?,backup?,check?,state?,cookie?}   add
 *   POST   /v1/backends/L/N/state   {state: ready|drain|maint}
 *   POST   /v1/backends/L/N/weight  {weight: 0..256}
 *   DELETE /v1/backends/L/N[?timeout=ms][&wait=0]  drain, then remove when idle or after timeout
 *   POST   /v1/ha/conflicts/ack {}                 the replicated-state conflicts shown are resolved
 *
 * Errors: {"error": {"code": "PAIRLB_…", "message": "…"}} with 400/404/409/413.
 */

const actionsOf = new WeakMap<App, AdminActions>();

/** One AdminActions per App, shared by the page and the API (pending removals are seen by both). */
export function adminActions(app: App): AdminActions {
  let a = actionsOf.get(app);
  if (!a) actionsOf.set(app, (a = new AdminActions(app, app.log.child({ mod: 'admin' }))));
  return a;
}

/** Reads the pair panel of the HA module (duck-typed: see src/stats/model.ts). */
export function pairSummary(app: App): PairSummary {
  const s = panelStatus(app, 'ha') as Record<string, unknown> | undefined;
  if (!s) return { configured: false, role: app.role };
  const peer = (s.peer && typeof s.peer === 'object' ? s.peer : {}) as Record<string, unknown>;
  const num = (v: unknown) => (typeof v === 'number' && Number.isFinite(v) ? v : undefined);
  const str = (v: unknown) => (typeof v === 'string' ? v : undefined);
  return {
    configured: true,
    role: str(s.role) ?? app.role,
    peer: str(peer.name) ?? str(peer.node) ?? str(s.peer),
    peerAgeMs: num(peer.lastSeenMs) ?? num(peer.ageMs) ?? num(peer.lastHeardMs) ?? num(s.peerAgeMs) ?? num(s.heartbeatAgeMs),
    peerAlive: typeof peer.alive === 'boolean' ? peer.alive : typeof s.peerAlive === 'boolean' ? (s.peerAlive as boolean) : undefined,
    peerRole: str(peer.role),
    stateSync: str((s.replication as Record<string, unknown> | undefined)?.sync),
    stateConflicts: num(((s.replication as Record<string, unknown> | undefined)?.conflicts as Record<string, unknown> | undefined)?.open),
  };
}

export function listenSummaries(app: App): ListenSummary[] {
  return app.backends.listenNames().map((name) => {
    const bs = app.backends.backends(name);
    const s: ListenSummary = { name, up: 0, down: [], drain: 0, maint: 0, total: bs.length };
    for (const b of bs) {
      if (b.admin === 'maint') s.maint++;
      else if (b.health === 'down') s.down.push(b.name);
      else if (b.admin === 'drain') s.drain++;
      else s.up++;
    }
    return s;
  });
}

export function statusDoc(app: App): Record<string, unknown> {
  const listens = listenSummaries(app);
  const pair = pairSummary(app);
  const acme = acmeOf(app)?.status();
  // ACME order failures come in through app.statusNotes() (the ACME module registers them).
  const notes: StatusNote[] = app.statusNotes();
  return { node: app.node, role: app.role, pair, listens, notes, ha: panelStatus(app, 'ha') ?? null, scale: panelStatus(app, 'scale') ?? null, acme: acme ?? null, tls: certSummaries(tlsStatuses(app)), tickets: app.tickets.status(), verdict: verdict(listens, pair, notes) };
}

function parseJson(s: string): Record<string, unknown> {
  if (!s.trim()) return {};
  let v: unknown;
  try { v = JSON.parse(s); } catch { throw new PairlbError('PAIRLB_BAD_REQUEST', 'body is not valid JSON'); }
  if (!v || typeof v !== 'object' || Array.isArray(v)) throw new PairlbError('PAIRLB_BAD_REQUEST', 'body must be a JSON object');
  return v as Record<string, unknown>;
}

export interface ApiOpts {
  removeTimeoutMs: () => number;
  actor: (req: IncomingMessage) => Actor;
  /** Role of this request's credential (the read-only token: reads only). */
  role?: 'admin' | 'read-only';
}

export async function handleApi(app: App, req: IncomingMessage, res: ServerResponse, opts: ApiOpts): Promise<void> {
  const actions = adminActions(app);
  try {
    const url = new URL(req.url ?? '/', 'http://admin');
    const parts = url.pathname.split('/').filter(Boolean).map(decodeURIComponent);
    const m = req.method ?? 'GET';
    if (parts[0] !== 'v1') throw new PairlbError('PAIRLB_NOT_FOUND', 'unknown path (the API lives under /v1)');
    if (opts.role === 'read-only' && m !== 'GET' && m !== 'HEAD') throw new PairlbError('PAIRLB_FORBIDDEN', 'read-only access (read-only token or socket): changes need the admin token or socket');
    if (m !== 'GET' && m !== 'DELETE' && !(req.headers['content-type'] ?? '').startsWith('application/json')) {
      throw new PairlbError('PAIRLB_BAD_REQUEST', 'send Content-Type: application/json');
    }
    const p = parts.slice(1);
    if (p[0] === 'status' && p.length === 1 && m === 'GET') return sendJson(res, 200, statusDoc(app));
    if (p[0] === 'ha' && p[1] === 'conflicts' && p[2] === 'ack' && p.length === 3 && m === 'POST') {
      const ha = findModule<{ acknowledgeConflicts?: (by: string) => number }>(app, 'ha');
      if (!ha?.acknowledgeConflicts) throw new PairlbError('PAIRLB_NOT_FOUND', 'HA is not configured on this node');
      const who = opts.actor(req);
      return sendJson(res, 200, { acknowledged: ha.acknowledgeConflicts(`${who.user} (${who.via})`) });
    }
    if (p[0] === 'backends') {
      if (p.length === 1 && m === 'GET') return sendJson(res, 200, { backends: actions.list(url.searchParams.get('listen') ?? undefined) });
      if (p.length === 1 && m === 'POST') {
        const body = parseJson(await readBody(req));
        if (typeof body.listen !== 'string') throw new PairlbError('PAIRLB_BAD_REQUEST', 'listen: required');
        return sendJson(res, 201, { backend: actions.add(body.listen, body, opts.actor(req)) });
      }
      if (p.length >= 3) {
        const [, listen, name, verb] = p;
        if (p.length === 3 && m === 'GET') {
          const b = actions.list(listen).find((x) => x.name === name);
          if (!b) throw new PairlbError('PAIRLB_NO_BACKEND', `no backend ${JSON.stringify(name)} in listen ${JSON.stringify(listen)}`);
          return sendJson(res, 200, { backend: b });
        }
        if (p.length === 3 && m === 'DELETE') {
          const t = url.searchParams.get('timeout');
          const timeout = t !== null && /^\d+$/.test(t) ? Number(t) : opts.removeTimeoutMs();
          const who = opts.actor(req);
          if (url.searchParams.get('wait') === '0') {
            actions.remove(listen, name, timeout, who).catch((e) => app.log.error({ err: e, mod: 'admin' }, 'remove failed'));
            return sendJson(res, 202, { removing: `${listen}/${name}`, timeoutMs: timeout });
          }
          return sendJson(res, 200, await actions.remove(listen, name, timeout, who));
        }
        if (p.length === 4 && m === 'POST' && verb === 'state') {
          const body = parseJson(await readBody(req));
          return sendJson(res, 200, { backend: actions.setState(listen, name, String(body.state), opts.actor(req)) });
        }
        if (p.length === 4 && m === 'POST' && verb === 'weight') {
          const body = parseJson(await readBody(req));
          return sendJson(res, 200, { backend: actions.setWeight(listen, name, body.weight, opts.actor(req)) });
        }
      }
    }
    throw new PairlbError('PAIRLB_NOT_FOUND', `no route ${m} ${url.pathname}`);
  } catch (e) {
    if (e instanceof PairlbError && e.code === 'PAIRLB_NOT_FOUND') return sendJson(res, 404, { error: { code: e.code, message: e.message } });
    if (!(e instanceof PairlbError)) app.log.error({ err: e, mod: 'admin' }, 'admin API error');
    sendError(res, e);
  }
}
