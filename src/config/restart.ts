import type { Config } from './schema.js';

/**
 * Which changes of a reload take effect only at the next restart (pure). `running` names the
 * control-plane modules that run in this process (a module is created at start only when its
 * section is there). Everything not listed here is applied by the reload itself:
 *   - listen sections and backends (ProxyManager, BackendSet), global.maxconn (AcceptGuard),
 *     not global.workers (threads started once),
 *   - global.log: level, access format and destination (App.applyLog),
 *   - stats, admin, scale sections of running modules (their reload()), their removal.
 * A reload that changes one of these keys still applies the rest; `pairlb reload` prints them.
 */
export interface RestartKey { key: string; why: string }

export function restartKeys(old: Config, next: Config, running: ReadonlySet<string>): RestartKey[] {
  const out: RestartKey[] = [];
  if (old.global.node !== next.global.node) out.push({ key: 'global.node', why: 'the node name is read at start (HA, state, replication)' });
  // The data-plane worker threads are started once (src/proxy/workers.ts reload says the same).
  if (JSON.stringify(old.global.workers) !== JSON.stringify(next.global.workers)) out.push({ key: 'global.workers', why: 'the data-plane worker threads are started at start' });
  if (old.global.state_dir !== next.global.state_dir) out.push({ key: 'global.state_dir', why: 'runtime state is loaded from and saved to the directory read at start' });
  // HaNode.reload applies nothing: the heartbeat sockets, key, VIP and timings are set up at start.
  const haOn = (c: Config) => !!c.ha && c.ha.enabled !== false;
  if (running.has('ha') || haOn(next)) {
    if (!running.has('ha')) out.push({ key: 'ha', why: 'HA was not running: it starts at the next restart' });
    else if (!haOn(next)) out.push({ key: 'ha', why: 'HA keeps running until the next restart' });
    else for (const k of changedLeaves(old.ha, next.ha, 'ha')) out.push({ key: k, why: 'the HA node reads its settings at start' });
  }
  for (const sec of ['stats', 'admin', 'scale'] as const) {
    if (next[sec] !== undefined && !running.has(sec)) out.push({ key: sec, why: `the ${sec} section was added: it starts at the next restart` });
  }
  return out;
}

/** Key paths whose values differ (arrays compared whole, reported at their own path). */
export function changedLeaves(a: unknown, b: unknown, path: string): string[] {
  const isObj = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
  if (isObj(a) && isObj(b)) {
    const out: string[] = [];
    for (const k of new Set([...Object.keys(a), ...Object.keys(b)])) out.push(...changedLeaves(a[k], b[k], `${path}.${k}`));
    return out;
  }
  return JSON.stringify(a) === JSON.stringify(b) ? [] : [path];
}
