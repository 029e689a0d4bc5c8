import { z } from 'zod';
import { bool, duration, name } from '../config/types.js';

/**
 * Scaler configuration (docs/scaling.md documents every key).
 *
 *   scale:
 *     snmp:        defaults for every VDS (v3 authPriv SHA/AES recommended)
 *     vds:         the VDSs to watch: backend name in a listen section (+ per-VDS snmp overrides)
 *     policy:      thresholds with hysteresis, sample streaks, cooldowns, clone limits
 *     hypervisors: where clones are made, over SSH with a pinned host key
 *     commands:    clone / destroy / list templates run on the hypervisor
 */

const OID_RE = /^\.?\d+(\.\d+)+$/;
/** OpenSSH style: "SHA256:" + unpadded base64 of the SHA-256 of the host key blob (ssh-keygen -lf). */
export const FINGERPRINT_RE = /^SHA256:[A-Za-z0-9+/]{43}=?$/;

const snmpFields = {
  /** Agent address; default: the host of the VDS's backend address. */
  host: z.string().min(1),
  port: z.number().int().min(1).max(65535),
  version: z.enum(['2c', '3']),
  community: z.string().min(1),
  user: z.string().min(1),
  auth_protocol: z.enum(['sha', 'sha224', 'sha256', 'sha384', 'sha512', 'md5']),
  /** USM requires at least 8 characters. */
  auth_password: z.string().min(8, 'USM passwords are at least 8 characters'),
  priv_protocol: z.enum(['aes', 'aes256b', 'aes256r', 'des']),
  priv_password: z.string().min(8, 'USM passwords are at least 8 characters'),
  interval: duration,
  timeout: duration,
  retries: z.number().int().min(0).max(5),
  /** UCD-SNMP-MIB laLoad.1 (1-minute load, an OctetString such as "2.50"). */
  oid: z.string().regex(OID_RE, 'expected a numeric OID such as 1.3.6.1.4.1.2021.10.1.3.1'),
  /** The value read is divided by this (100 for laLoadInt, …10.1.5.1). */
  divisor: z.number().positive(),
};

/** Defaults for every VDS; each VDS may override any key. */
export const snmpDefaultsSchema = z.object({
  host: snmpFields.host.optional(),
  port: snmpFields.port.default(161),
  version: snmpFields.version.default('3'),
  community: snmpFields.community.optional(),
  user: snmpFields.user.optional(),
  auth_protocol: snmpFields.auth_protocol.default('sha'),
  auth_password: snmpFields.auth_password.optional(),
  priv_protocol: snmpFields.priv_protocol.default('aes'),
  priv_password: snmpFields.priv_password.optional(),
  interval: snmpFields.interval.default('5s'),
  timeout: snmpFields.timeout.default('1s'),
  retries: snmpFields.retries.default(1),
  oid: snmpFields.oid.default('1.3.6.1.4.1.2021.10.1.3.1'),
  divisor: snmpFields.divisor.default(1),
}).strict();

export const snmpOverrideSchema = z.object(Object.fromEntries(
  Object.entries(snmpFields).map(([k, v]) => [k, (v as z.ZodTypeAny).optional()]),
) as { [K in keyof typeof snmpFields]: z.ZodOptional<(typeof snmpFields)[K]> }).strict();

export const vdsSchema = z.object({
  /** Name of the VDS as a server of its pool (and, unless `source` is set, its name on the hypervisor). */
  name,
  /**
   * The backend pool the VDS (and its clones) serve: a `backends` entry's name, or a listen
   * section's (a listen section is a pool of its own name).
   */
  backend: name.optional(),
  /** The same as `backend` (its name before frontends/backends existed); give one of the two. */
  listen: name.optional(),
  /** Name of the VDS as the hypervisor's clone command knows it; default: `name`. */
  source: name.optional(),
  snmp: snmpOverrideSchema.default({}),
}).strict().superRefine((v, ctx) => {
  if (v.backend === undefined && v.listen === undefined) ctx.addIssue({ code: z.ZodIssueCode.custom, path: ['backend'], message: 'required: the pool the VDS serves (backend: NAME; listen: NAME is the same key)' });
  else if (v.backend !== undefined && v.listen !== undefined && v.backend !== v.listen) ctx.addIssue({ code: z.ZodIssueCode.custom, path: ['listen'], message: `listen is the old name of backend: give one of the two (${JSON.stringify(v.backend)} and ${JSON.stringify(v.listen)} differ)` });
}).transform((v) => ({ ...v, listen: (v.backend ?? v.listen)! }));
// Below the config the pool is read as `listen` (the key of the scaler's state, events and API),
// whichever key named it; `backend` keeps what the file said (for error paths).

export const policySchema = z.object({
  /** Clone when load ≥ up … */
  up: z.number().positive().default(2.0),
  /** … for this many consecutive known samples. */
  up_samples: z.number().int().min(1).max(100).default(2),
  /** Remove a clone when its load < down … */
  down: z.number().nonnegative().default(1.0),
  /** … for this many consecutive known samples. */
  down_samples: z.number().int().min(1).max(100).default(3),
  /** After a clone of a VDS, no further clone of it for this long. */
  up_cooldown: duration.default('60s'),
  /** After any action on a VDS's group, no removal in it for this long. */
  down_cooldown: duration.default('120s'),
  max_clones_per_vds: z.number().int().min(0).default(2),
  max_clones: z.number().int().min(0).default(4),
}).strict().superRefine((p, ctx) => {
  if (p.down >= p.up) ctx.addIssue({ code: z.ZodIssueCode.custom, path: ['down'], message: `down (${p.down}) must be below up (${p.up}): hysteresis` });
});

export const hypervisorSchema = z.object({
  name,
  host: z.string().min(1),
  port: z.number().int().min(1).max(65535).default(22),
  user: z.string().min(1).default('root'),
  /** Private key (OpenSSH or PEM) used to log in; key authentication only. */
  key_file: z.string().min(1),
  /** Pinned host key: `ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub` → "SHA256:…". No pin, no connection. */
  host_key: z.string().regex(FINGERPRINT_RE, 'expected an OpenSSH SHA256 fingerprint such as SHA256:AbC… (ssh-keygen -lf KEY.pub)'),
}).strict();

export const commandsSchema = z.object({
  /** Must print one JSON line {"name": …, "address": "host:port"} (optional "snmp": "host:port"). */
  clone: z.string().min(1).default('clone {source} {name}'),
  destroy: z.string().min(1).default('destroy {name}'),
  /** Prints one line per VM: a JSON object {"name": …, "address"?: …} or a bare name. */
  list: z.string().min(1).default('list'),
}).strict().superRefine((c, ctx) => {
  if (!c.clone.includes('{name}')) ctx.addIssue({ code: z.ZodIssueCode.custom, path: ['clone'], message: 'the clone template must contain {name}' });
  if (!c.clone.includes('{source}')) ctx.addIssue({ code: z.ZodIssueCode.custom, path: ['clone'], message: 'the clone template must contain {source}' });
  if (!c.destroy.includes('{name}')) ctx.addIssue({ code: z.ZodIssueCode.custom, path: ['destroy'], message: 'the destroy template must contain {name}' });
});

export const scaleTimeoutsSchema = z.object({
  /** TCP connect + SSH handshake + authentication. */
  connect: duration.default('10s'),
  clone: duration.default('300s'),
  destroy: duration.default('120s'),
  list: duration.default('30s'),
  /** A clone that is not UP after this long is removed and destroyed. */
  clone_health: duration.default('120s'),
  /** Longest wait for a draining clone's active requests to finish. */
  drain: duration.default('60s'),
}).strict();

export const scaleSchema = z.object({
  enabled: bool.default(true),
  snmp: snmpDefaultsSchema.default({}),
  vds: z.array(vdsSchema).default([]),
  policy: policySchema.default({}),
  hypervisors: z.array(hypervisorSchema).default([]),
  commands: commandsSchema.default({}),
  timeouts: scaleTimeoutsSchema.default({}),
  /** A clone found by `list` that the scaler has no record of: adopt it, destroy it, or only report it. */
  unknown_clones: z.enum(['report', 'adopt', 'destroy']).default('report'),
  /** `list` on every hypervisor at start, on becoming master, and this often. */
  reconcile_interval: duration.default('5m'),
  /** After a failed step (destroy not confirmed, hypervisor unreachable at reconcile), or while a `creating` record waits for its clone command (at most until its deadline), reconcile again this soon. */
  retry_interval: duration.default('30s'),
  /** Samples kept per VDS/clone for the stats page. */
  samples_kept: z.number().int().min(1).max(10_000).default(60),
}).strict().superRefine((s, ctx) => {
  const dup = (arr: { name: string }[], key: string) => {
    const seen = new Map<string, number>();
    arr.forEach((x, i) => {
      if (seen.has(x.name)) ctx.addIssue({ code: z.ZodIssueCode.custom, path: [key, i, 'name'], message: `duplicate name ${JSON.stringify(x.name)} (also ${key}[${seen.get(x.name)}])` });
      seen.set(x.name, i);
    });
  };
  dup(s.vds, 'vds');
  dup(s.hypervisors, 'hypervisors');
  if (s.enabled && s.vds.length && !s.hypervisors.length) ctx.addIssue({ code: z.ZodIssueCode.custom, path: ['hypervisors'], message: 'at least one hypervisor is required to clone' });
  s.vds.forEach((v, i) => {
    const r = { ...s.snmp, ...stripUndef(v.snmp) };
    const p = (k: string) => (k in stripUndef(v.snmp) ? ['vds', i, 'snmp', k] : ['snmp', k]);
    if (r.version === '2c' && !r.community) ctx.addIssue({ code: z.ZodIssueCode.custom, path: p('community'), message: `vds ${v.name}: SNMP v2c needs a community` });
    if (r.version === '3') {
      for (const k of ['user', 'auth_password', 'priv_password'] as const) {
        if (!r[k]) ctx.addIssue({ code: z.ZodIssueCode.custom, path: p(k), message: `vds ${v.name}: SNMP v3 (authPriv) needs ${k}` });
      }
    }
  });
});

export type ScaleConfig = z.output<typeof scaleSchema>;
export type VdsConfig = z.output<typeof vdsSchema>;
export type PolicyConfig = z.output<typeof policySchema>;
export type HypervisorConfig = z.output<typeof hypervisorSchema>;
export type SnmpDefaults = z.output<typeof snmpDefaultsSchema>;

/** SNMP settings of one target, defaults merged with the VDS's overrides. */
export interface SnmpTarget {
  host: string;
  port: number;
  version: '2c' | '3';
  community?: string;
  user?: string;
  auth_protocol: SnmpDefaults['auth_protocol'];
  auth_password?: string;
  priv_protocol: SnmpDefaults['priv_protocol'];
  priv_password?: string;
  interval: number;
  timeout: number;
  retries: number;
  oid: string;
  divisor: number;
}

function stripUndef<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}

/** Merge defaults and a VDS's overrides; `hostFallback` is the backend's host. */
export function resolveSnmp(s: ScaleConfig, v: VdsConfig, hostFallback: string): SnmpTarget {
  const r = { ...s.snmp, ...stripUndef(v.snmp) };
  return { ...r, host: r.host ?? hostFallback } as SnmpTarget;
}

/**
 * Cross-section checks (called from the root schema): every VDS names an existing pool (a
 * `backends` entry or a listen section) and a server of it; the error names the key the file used.
 */
export function checkScaleRefs(
  scale: ScaleConfig | undefined,
  listens: readonly { name: string; backends: readonly { name: string }[] }[],
  ctx: z.RefinementCtx,
): void {
  if (!scale) return;
  scale.vds.forEach((v, i) => {
    const key = v.backend !== undefined ? 'backend' : 'listen';
    const l = listens.find((x) => x.name === v.listen);
    if (!l) ctx.addIssue({ code: z.ZodIssueCode.custom, path: ['scale', 'vds', i, key], message: key === 'listen' ? `no listen section named ${JSON.stringify(v.listen)}, nor a backends entry` : `no backends entry named ${JSON.stringify(v.listen)}, nor a listen section` });
    else if (!l.backends.some((b) => b.name === v.name)) ctx.addIssue({ code: z.ZodIssueCode.custom, path: ['scale', 'vds', i, 'name'], message: key === 'listen' ? `listen ${v.listen} has no backend named ${JSON.stringify(v.name)}` : `backend ${v.listen} has no server named ${JSON.stringify(v.name)}` });
  });
}
