import { parentPort, workerData } from 'node:worker_threads';
import { createLogger, setLogLevel } from '../log.js';
import { Http01Tokens } from '../acme/http01.js';
import { CounterStore, COUNTER_VECTOR_LENGTH, counterDelta, counterVector, type Counters } from '../stats/counters.js';
import { ProxyManager } from './manager.js';
import type { TlsStatus } from '../tls/terminator.js';
import { LoopLag } from '../ha/loop-lag.js';
import { SharedInflight } from './shared-inflight.js';
import { portKey, type Addresses, type DataPlaneHost, type FromWorker, type RouteSpec, type ToWorker, type WorkerInit } from './contract.js';

/**
 * A data-plane worker thread (global.workers >= 1): every listener of the config, bound with
 * SO_REUSEPORT beside the other workers', reading the routing snapshots the control plane sends
 * (src/proxy/workers.ts). It owns nothing else: no backend set, no health checks, no HA, no stats.
 */

const init = workerData as WorkerInit;
const port = parentPort!;
const post = (m: FromWorker): void => port.postMessage(m);
const log = createLogger(init.logLevel).child({ worker: init.index });
const counters = new CounterStore();
/** This worker's event-loop lag (stats JSON `threads`, /metrics), sent with every flush answer. */
const lag = new LoopLag();
const snapshots = new Map<string, RouteSpec[]>(Object.entries(init.snapshots));
let ports = new Map<string, number>(Object.entries(init.ports));
const http01 = new Http01Tokens();
http01.replace(init.http01);
/** TLS servers of this worker and the process's current session-ticket key (the control plane rotates it). */
const ticketServers = new Set<import('node:https').Server>();
let ticketKey = Buffer.from(init.ticketKey);
const shared = new SharedInflight(init.inflight, init.index);
let frontendSlots = new Map<string, number>(Object.entries(init.frontendSlots));

process.on('unhandledRejection', (err) => {
  log.fatal({ err, worker: init.index }, 'unhandled promise rejection in a data-plane worker: it exits and is replaced');
  process.exit(1);
});

const host: DataPlaneHost = {
  log,
  counters,
  routes: (listen) => snapshots.get(listen) ?? [],
  passiveDown: (listen, backend, reason) => post({ t: 'passive', listen, backend, reason }),
  reusePort: true,
  port: (name, bind) => ports.get(portKey(name, bind)),
  tickets: {
    attach: (server) => { server.setTicketKeys(ticketKey); ticketServers.add(server); return () => { ticketServers.delete(server); }; },
  },
  http01,
  tlsServer: () => {},
  shared,
  frontendSlot: (name) => frontendSlots.get(name) ?? -1,
};
const pm = new ProxyManager(host, init.cfg, { table: new Int32Array(init.conn), accepted: new Float64Array(init.accepted), slot: init.index, probe: false });

// ---- counters back to the control plane --------------------------------------------------------

const sent = new Map<Counters, Float64Array>();
const now = new Float64Array(COUNTER_VECTOR_LENGTH);

/** Every counter that changed since the last report, as deltas (src/stats/counters.ts). */
function flushCounters(force = false): void {
  const listens: [string, Float64Array][] = [];
  const backends: [number, Float64Array][] = [];
  const diff = (c: Counters): Float64Array | undefined => {
    let s = sent.get(c);
    if (!s) sent.set(c, (s = new Float64Array(COUNTER_VECTOR_LENGTH)));
    const d = new Float64Array(COUNTER_VECTOR_LENGTH);
    return counterDelta(counterVector(c, now), s, d) ? d : undefined;
  };
  for (const [name, c] of counters.listens) { const d = diff(c); if (d) listens.push([name, d]); }
  for (const [id, c] of counters.backends) { const d = diff(c); if (d) backends.push([id, d]); }
  const pools: [string, Float64Array][] = [];
  for (const [name, c] of counters.pools) { const d = diff(c); if (d) pools.push([name, d]); }
  // TLS binds: certificates and handshake counters, once a second (the stats page's TLS panel).
  let tls: TlsStatus[] | undefined;
  if (++flushes % 10 === 0 || force) for (const l of pm.listeners.values()) if (l.tls) (tls ??= []).push(l.tls.status());
  if (listens.length > 0 || backends.length > 0 || pools.length > 0 || tls) post({ t: 'counters', listens, pools, backends, tls });
}
let flushes = 0;
const flushTimer = setInterval(flushCounters, init.flushMs);
flushTimer.unref();

function addresses(): Addresses {
  const out: Addresses = {};
  for (const [name, l] of [...pm.listeners, ...pm.l4]) {
    const a = l.address();
    if (a) out[name] = { ...a, bind: l.s.cfg.bind };
  }
  return out;
}

// ---- control messages --------------------------------------------------------------------------

let stopping = false;
port.on('message', (m: ToWorker) => {
  switch (m.t) {
    case 'snapshot':
      snapshots.set(m.listen, m.routes);
      pm.rebuild(m.listen);
      break;
    case 'config':
      ports = new Map(Object.entries(m.ports));
      frontendSlots = new Map(Object.entries(m.frontendSlots));
      for (const [l, r] of Object.entries(m.snapshots)) snapshots.set(l, r);
      pm.reload(m.cfg).then(
        () => post({ t: 'reloaded', id: m.id, addresses: addresses() }),
        (e: Error) => { log.error({ err: e }, 'reload failed in worker'); post({ t: 'reloaded', id: m.id, addresses: addresses(), error: e.message }); },
      );
      break;
    case 'closeIdle':
      pm.closeIdleConnections();
      break;
    case 'tickets':
      ticketKey = Buffer.from(m.key);
      for (const s of ticketServers) s.setTicketKeys(ticketKey);
      break;
    case 'http01':
      http01.replace(m.entries);
      break;
    case 'log':
      setLogLevel(log, m.log.level);
      pm.access.configure(m.log);
      break;
    case 'reopen':
      pm.access.reopen();
      break;
    case 'clearClients':
      pm.clearClients();
      break;
    case 'destroyTo':
      post({ t: 'destroyed', id: m.id, n: pm.destroyConnectionsToNow(m.address) });
      break;
    case 'flush':
      flushCounters(true);
      post({ t: 'flushed', id: m.id, lag: lag.snapshot() });
      break;
    case 'stop':
      if (stopping) break;
      stopping = true;
      pm.stop(m.drainMs).finally(() => {
        clearInterval(flushTimer);
        flushCounters();
        post({ t: 'stopped' });
        port.close();
      });
      break;
  }
});

pm.start().then(
  () => post({ t: 'ready', addresses: addresses() }),
  (e: NodeJS.ErrnoException) => {
    post({ t: 'startFailed', message: e.message, code: e.code });
    void pm.stop(0).finally(() => port.close());
  },
);
