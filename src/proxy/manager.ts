import type { App } from '../app.js';
import type { Config } from '../config/schema.js';

/** Placeholder: the proxy core lands next (issue 2). Interface is final. */
export class ProxyManager {
  constructor(private readonly app: App) {}
  async start(): Promise<void> {}
  async reload(_cfg: Config): Promise<void> {}
  async stop(_drainMs?: number): Promise<void> {}
  /** True when every listen section is bound and accepting. HA uses it for FAULT. */
  isServing(): boolean { return true; }
  /** Bound address of a listen section (port 0 in tests resolves here). */
  address(_listen: string): { host: string; port: number } | undefined { return undefined; }
}
