import { parseConfig } from '../../src/config/load.js';
import { App } from '../../src/app.js';
import { createLogger, silentLogger } from '../../src/log.js';
import '../../src/modules.js';
import { parse, stringify } from 'yaml';

/**
 * Start a real App in-process from YAML text (binds on port 0 resolve via app.proxy.address()).
 * `workers` sets global.workers (the data plane in that many worker threads; 0: in this thread).
 */
export async function startApp(yaml: string, opts: { stateDir?: string | null; log?: boolean; workers?: number; front?: Front } = {}): Promise<{ app: App; url: (listen?: string) => string; port: (listen?: string) => number; stop(): Promise<void> }> {
  const y = opts.workers === undefined ? yaml : withWorkers(yaml, opts.workers);
  const cfg = parseConfig(opts.front === undefined ? y : withFront(y, opts.front));
  const log = opts.log || process.env.PAIRLB_TEST_LOG ? createLogger('debug') : silentLogger;
  const app = new App(cfg, log, { stateDir: opts.stateDir === undefined ? null : opts.stateDir });
  await app.start();
  const port = (listen = cfg.listen[0].name) => app.proxy.address(listen)!.port;
  return { app, port, url: (listen) => `http://127.0.0.1:${port(listen)}`, stop: () => app.stop(200) };
}

export type Front = 'lean' | 'node';
/**
 * The HTTP/1 front each engine's edge suite runs on: undici's on node:http's server, native's on
 * the lean one (the default), so that every raw-byte edge suite holds both fronts and both engines.
 */
export const FRONT_OF: Record<string, Front> = { undici: 'node', native: 'lean' };

/** The same YAML with global.http1_front set. */
export function withFront(yaml: string, front: Front): string {
  const doc = (parse(yaml) ?? {}) as { global?: Record<string, unknown> };
  doc.global = { ...doc.global, http1_front: front };
  return stringify(doc);
}

/** The same YAML with global.workers set. */
export function withWorkers(yaml: string, workers: number): string {
  const doc = (parse(yaml) ?? {}) as { global?: Record<string, unknown> };
  doc.global = { ...doc.global, workers };
  return stringify(doc);
}
