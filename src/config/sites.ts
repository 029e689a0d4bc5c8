import { z } from 'zod';
import type { Config, FrontendInput, PoolInput, BackendConfig, ListenConfig } from './schema.js';
import { frontendSchema, frontendTimeoutsSchema, poolSchema, poolTimeoutsSchema } from './schema.js';
import { unconditional } from './rules.js';

/**
 * The internal model every consumer reads (docs/sites.md): frontends (binds + rules) and pools
 * (servers + how they are balanced and checked). A `listen` section is normalized into one
 * frontend and one pool, both named after it, whose default backend is that pool, so code below
 * the config never sees `listen` again. Normalization copies every key the frontend/pool schemas
 * have from the listen section, so a key added to both (`tls:` on binds…) is carried over
 * without touching this file.
 *
 * Names: frontends and listen sections share one namespace, pools and listen sections another
 * (a listen section is in both). The backend set, stats, admin API, state and the scaler key
 * servers by `pool/server`; for a listen section that is `listen/server`, as before.
 */

export interface FrontendConfig extends Omit<FrontendInput, 'mode'> {
  /** A listen section may be mode tcp/udp: the manager gives those to src/l4/, not to an HTTP Listener. */
  readonly mode: 'http' | 'tcp' | 'udp';
  /** 'listen' when normalized from a listen section (its pool has the same name). */
  readonly from: 'listen' | 'frontend';
}

export interface PoolConfig extends PoolInput {
  readonly from: 'listen' | 'frontend';
  /** Frontends that may send requests here (default_backend or a rule), in config order. */
  readonly frontends: readonly string[];
}

export interface Sites {
  readonly frontends: readonly FrontendConfig[];
  readonly pools: readonly PoolConfig[];
}

/** Keys copied from a listen section (computed on first use: schema.ts imports this module). */
let keys: { fe: string[]; feT: string[]; pool: string[]; poolT: string[] } | undefined;
function keySets(): NonNullable<typeof keys> {
  return keys ??= {
    fe: Object.keys(frontendSchema.shape).filter((k) => k !== 'rules' && k !== 'default_backend' && k !== 'timeouts'),
    feT: Object.keys(frontendTimeoutsSchema.shape),
    pool: Object.keys(poolSchema.innerType().shape).filter((k) => k !== 'servers' && k !== 'timeouts'),
    poolT: Object.keys(poolTimeoutsSchema.shape),
  };
}

function pick(o: object, keys: readonly string[]): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const k of keys) if ((o as Record<string, unknown>)[k] !== undefined) out[k] = (o as Record<string, unknown>)[k];
  return out;
}

const memo = new WeakMap<Config, Sites>();

/** The frontends and pools of a validated config (computed once per config object, frozen). */
export function sitesOf(cfg: Config): Sites {
  let s = memo.get(cfg);
  if (s === undefined) { s = normalize(cfg); memo.set(cfg, s); }
  return s;
}

/** The frontend a listen section stands for: its client-side keys, no rules, its own pool as default. */
export function listenFrontend(l: ListenConfig): FrontendConfig {
  const k = keySets();
  return { ...pick(l, k.fe), timeouts: pick(l.timeouts, k.feT), rules: [], default_backend: l.name, from: 'listen' } as unknown as FrontendConfig;
}

/** The pool a listen section stands for: its server-side keys, `backends` as `servers`. */
export function listenPool(l: ListenConfig, frontends: readonly string[] = [l.name]): PoolConfig {
  const k = keySets();
  return { ...pick(l, k.pool), timeouts: pick(l.timeouts, k.poolT), servers: l.backends, from: 'listen', frontends } as unknown as PoolConfig;
}

function normalize(cfg: Config): Sites {
  const frontends: FrontendConfig[] = [];
  const pools: PoolConfig[] = [];
  const users = new Map<string, string[]>();
  const use = (pool: string | undefined, fe: string): void => {
    if (pool === undefined) return;
    const u = users.get(pool) ?? [];
    if (!u.includes(fe)) u.push(fe);
    users.set(pool, u);
  };
  for (const l of cfg.listen) { frontends.push(listenFrontend(l)); use(l.name, l.name); }
  for (const f of cfg.frontends) {
    frontends.push({ ...f, from: 'frontend' });
    for (const r of f.rules) use(r.backend, f.name);
    use(f.default_backend, f.name);
  }
  for (const l of cfg.listen) pools.push(listenPool(l, users.get(l.name) ?? []));
  for (const p of cfg.backends) pools.push({ ...p, from: 'frontend', frontends: users.get(p.name) ?? [] });
  return deepFreeze({ frontends, pools });
}

function deepFreeze<T>(o: T): T {
  if (o && typeof o === 'object' && !Object.isFrozen(o)) { Object.freeze(o); for (const v of Object.values(o)) deepFreeze(v); }
  return o;
}

/** Pools as the scaler's reference check sees them: name and servers. */
export function poolRefs(c: { listen: readonly { name: string; backends: readonly BackendConfig[] }[]; backends: readonly { name: string; servers: readonly BackendConfig[] }[] }): { name: string; backends: readonly BackendConfig[] }[] {
  return [...c.listen.map((l) => ({ name: l.name, backends: l.backends })), ...c.backends.map((p) => ({ name: p.name, backends: p.servers }))];
}

type RawConfig = Pick<Config, 'listen' | 'frontends' | 'backends'>;

/**
 * Cross-section checks (from the root schema): unique names, every backend a frontend names
 * exists, no rule that can never match (one before it matches every request).
 */
export function checkSites(c: RawConfig, ctx: z.RefinementCtx): void {
  const issue = (path: (string | number)[], message: string): void => ctx.addIssue({ code: z.ZodIssueCode.custom, path, message });
  // Neither a listen section nor a frontend: `listen` is what a first config has (and what the
  // message has always named).
  if (c.listen.length === 0 && c.frontends.length === 0) issue(['listen'], 'required key is missing');
  const fronts = new Map<string, string>();
  const pools = new Map<string, string>();
  c.listen.forEach((l, i) => {
    if (fronts.has(l.name)) issue(['listen', i, 'name'], `duplicate listen name ${JSON.stringify(l.name)}`);
    fronts.set(l.name, `listen[${i}]`);
    pools.set(l.name, `listen[${i}]`);
  });
  c.frontends.forEach((f, i) => {
    const prev = fronts.get(f.name);
    if (prev) issue(['frontends', i, 'name'], `duplicate name ${JSON.stringify(f.name)} (also ${prev}; frontends and listen sections share names)`);
    fronts.set(f.name, `frontends[${i}]`);
  });
  c.backends.forEach((p, i) => {
    const prev = pools.get(p.name);
    if (prev) issue(['backends', i, 'name'], `duplicate name ${JSON.stringify(p.name)} (also ${prev}; backends and listen sections share names)`);
    pools.set(p.name, `backends[${i}]`);
  });
  const known = (): string => [...pools.keys()].map((n) => JSON.stringify(n)).join(', ') || 'none';
  const poolMode = new Map(c.backends.map((p) => [p.name, p.mode]));
  /** A frontend and the pools it names agree on the mode (HAProxy refuses a mix too). */
  const sameMode = (f: FrontendInput, pool: string | undefined, path: (string | number)[]): void => {
    if (pool === undefined || !pools.has(pool)) return;
    const pm = poolMode.get(pool);
    if (f.mode === 'tcp' && pm !== 'tcp') issue(path, `${JSON.stringify(pool)} is ${pm === undefined ? 'a listen section' : 'a mode http pool'}: a mode tcp frontend routes to backends entries with mode: tcp`);
    if (f.mode === 'http' && pm === 'tcp') issue(path, `${JSON.stringify(pool)} is a mode tcp pool: a mode http frontend routes to mode http pools`);
  };
  c.frontends.forEach((f, i) => {
    if (f.default_backend !== undefined && !pools.has(f.default_backend)) issue(['frontends', i, 'default_backend'], `no backend named ${JSON.stringify(f.default_backend)} (known: ${known()})`);
    sameMode(f, f.default_backend, ['frontends', i, 'default_backend']);
    if (f.mode === 'tcp') {
      if (f.tls) issue(['frontends', i, 'tls'], 'a mode tcp frontend does not terminate TLS (it routes TLS by sni without terminating)');
      if (f.acme) issue(['frontends', i, 'acme'], 'acme needs a mode http frontend (HTTP-01 and TLS termination)');
      f.rules.forEach((r, j) => {
        const bad = [...Object.keys(r.when ?? {}).filter((k) => k !== 'sni' && k !== 'src' && k !== 'not' && (r.when as Record<string, unknown>)[k] !== undefined).map((k) => `when.${k}`),
          ...Object.keys(r.when?.not ?? {}).filter((k) => k !== 'sni' && k !== 'src' && (r.when!.not as Record<string, unknown>)[k] !== undefined).map((k) => `when.not.${k}`),
          ...['redirect', 'deny', 'return', 'set_header', 'del_header', 'response_set_header', 'response_del_header'].filter((k) => (r as Record<string, unknown>)[k] !== undefined)];
        if (bad.length) issue(['frontends', i, 'rules', j], `a mode tcp frontend's rules have sni and src conditions and a backend action (not ${bad.join(', ')})`);
        else if (r.backend === undefined) issue(['frontends', i, 'rules', j], 'a mode tcp frontend\'s rule needs a backend');
      });
    }
    let catchAll = -1;
    f.rules.forEach((r, j) => {
      if (r.backend !== undefined && !pools.has(r.backend)) issue(['frontends', i, 'rules', j, 'backend'], `no backend named ${JSON.stringify(r.backend)} (known: ${known()})`);
      sameMode(f, r.backend, ['frontends', i, 'rules', j, 'backend']);
      if (catchAll >= 0) issue(['frontends', i, 'rules', j], `this rule can never match: rules[${catchAll}] before it has no condition and matches every request`);
      else if (unconditional(r)) catchAll = j;
    });
  });
}
