import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { request } from 'undici';
import { startApp } from '../helpers/app.js';
import { startBackend, type TestBackend } from '../helpers/backend.js';
import { startSnmpd, type Snmpd } from '../helpers/snmpd.js';
import type { Hypervisor } from '../helpers/sshd.js';
import { getScaler, type Scaler } from '../../src/scale/scaler.js';
import type { App } from '../../src/app.js';

/**
 * Shared setup of the scaler tests: a real snmpd for the VDS, a real HTTP backend as the VDS,
 * real sshd hypervisors (test/helpers/sshd.ts) and an in-process App (real proxy, real health
 * checker, the scaler module) built from YAML.
 */

export interface HvEntry { name: string; hv?: Hypervisor; port?: number; hostKey?: string; keyFile?: string }

export interface ScaleHarnessOpts {
  agent: Snmpd;
  hypervisors: HvEntry[];
  /** Extra YAML lines under `scale:` (indented 2), e.g. policy overrides. */
  scaleExtra?: string;
  pollMs?: number;
  stateDir?: string;
  cloneHealth?: string;
  /** Listen address (default 127.0.0.1:0; a separate daemon process needs a real port). */
  bind?: string;
  /** YAML lines (indented 4) overriding SNMP settings for vds-01 only. */
  vdsSnmp?: string;
  log?: boolean;
  /**
   * How the pool is written: a `listen` section named web (scale.vds[].listen: web, the default),
   * or a frontend web in front of a `backends` pool app (scale.vds[].backend: app).
   */
  model?: 'listen' | 'backends';
}

export interface Harness {
  app: App;
  /** The pool the VDS serves (web or app, by `model`): the key of app.backends.get(pool, name). */
  pool: string;
  scaler: Scaler;
  vds: TestBackend;
  url: string;
  stateDir: string;
  stop(): Promise<void>;
}

export function yamlFor(o: ScaleHarnessOpts, vdsAddress: string): string {
  const poll = o.pollMs ?? 250;
  const hvs = o.hypervisors.map((h) => [
    `    - name: ${h.name}`,
    '      host: 127.0.0.1',
    `      port: ${h.port ?? h.hv!.port}`,
    `      key_file: ${h.keyFile ?? h.hv!.keyFile}`,
    `      host_key: "${h.hostKey ?? h.hv!.hostKey}"`,
  ].join('\n')).join('\n');
  const c = o.agent.creds;
  const pool = o.model === 'backends'
    ? `frontends:
  - name: web
    bind: ${o.bind ?? '127.0.0.1:0'}
    default_backend: app
backends:
  - name: app
    slowstart: 1s
    check: { type: http, path: /, interval: 100ms, timeout: 500ms, rise: 2, fall: 2 }
    servers:
      - name: vds-01
        address: ${vdsAddress}`
    : `listen:
  - name: web
    bind: ${o.bind ?? '127.0.0.1:0'}
    slowstart: 1s
    check: { type: http, path: /, interval: 100ms, timeout: 500ms, rise: 2, fall: 2 }
    backends:
      - name: vds-01
        address: ${vdsAddress}`;
  return `
global:
  node: scale-test
${pool}
scale:
  snmp:
    version: "3"
    user: ${c.user}
    auth_password: ${c.auth}
    priv_password: ${c.priv}
    port: ${o.agent.port}
    interval: ${poll}ms
    timeout: 300ms
    retries: 0
  vds:
    - name: vds-01
      ${o.model === 'backends' ? 'backend: app' : 'listen: web'}
${o.vdsSnmp ? '      snmp:\n' + o.vdsSnmp.replace(/^/gm, '    ') : ''}
  policy:
    up: 2.0
    up_samples: 2
    down: 1.0
    down_samples: 3
    up_cooldown: 1s
    down_cooldown: 1s
    max_clones_per_vds: 1
    max_clones: 2
  hypervisors:
${hvs}
  timeouts:
    connect: 2s
    clone: 10s
    destroy: 10s
    list: 5s
    clone_health: ${o.cloneHealth ?? '4s'}
    drain: 2s
${o.scaleExtra ?? ''}
`;
}

export async function startHarness(o: ScaleHarnessOpts): Promise<Harness> {
  const vds = await startBackend('vds-01');
  const stateDir = o.stateDir ?? mkdtempSync(join(tmpdir(), 'pairlb-scale-state-'));
  const a = await startApp(yamlFor(o, vds.address), { stateDir, log: o.log });
  const scaler = getScaler(a.app);
  if (!scaler) throw new Error('scale module not registered');
  return {
    app: a.app, pool: o.model === 'backends' ? 'app' : 'web', scaler, vds, url: a.url('web'), stateDir,
    async stop() {
      await a.stop();
      await vds.close();
      if (!o.stateDir) rmSync(stateDir, { recursive: true, force: true });
    },
  };
}

export async function until<T>(what: string, fn: () => T | undefined | false | Promise<T | undefined | false>, timeoutMs = 15_000, stepMs = 25): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out after ${timeoutMs} ms waiting for: ${what}`);
    await new Promise((r) => setTimeout(r, stepMs));
  }
}

/** One GET through the balancer; returns the backend's name (body) and status. */
export async function hit(url: string): Promise<{ status: number; body: string }> {
  const r = await request(url + '/', { headersTimeout: 3000, bodyTimeout: 3000 });
  return { status: r.statusCode, body: (await r.body.text()).trim() };
}

export { startSnmpd };
