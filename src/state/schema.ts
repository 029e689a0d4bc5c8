import { z } from 'zod';
import { hostPort } from '../config/types.js';

/**
 * Schemas of the runtime state document (state_dir/runtime.json and what the HA peer sends). A
 * document from disk or from the peer is validated here before any section sees it: a cast would
 * let a document of another version (or a bug on the peer) reach the backend set as garbage.
 *
 * Objects are `passthrough`: a field added by a newer peer is carried along, not dropped.
 * The shapes mirror RuntimeState (src/backends/backend-set.ts) and the scaler's PersistedState
 * (src/scale/scaler.ts); the section owners keep their own checks of the meaning.
 */

// Names as the rest of the program accepts them today; the shape, not the naming policy, is
// checked here (a name refused now would drop the whole document).
const runtimeEntrySchema = z.object({
  listen: z.string().min(1).max(256),
  name: z.string().min(1).max(256),
  admin: z.enum(['ready', 'drain', 'maint']).optional(),
  weight: z.number().int().min(0).max(256).optional(),
  added: z.object({
    address: hostPort,
    cookie: z.string().optional(),
    backup: z.boolean(),
    check: z.boolean(),
    origin: z.enum(['config', 'runtime', 'clone']),
    meta: z.record(z.unknown()).optional(),
  }).passthrough().optional(),
  removed: z.boolean().optional(),
  basis: z.string().optional(),
  cfg_state: z.enum(['ready', 'drain', 'maint']).optional(),
  cfg_weight: z.number().int().min(0).max(256).optional(),
}).passthrough();

export const runtimeStateSchema = z.object({
  version: z.number().int().min(0),
  entries: z.array(runtimeEntrySchema),
}).passthrough();

const cloneRecordSchema = z.object({
  name: z.string().min(1),
  source: z.string().min(1),
  listen: z.string().min(1),
  hypervisor: z.string(),
  state: z.enum(['creating', 'joining', 'active', 'removing', 'destroying']),
  address: z.string().optional(),
  snmp: z.string().optional(),
  createdAt: z.number(),
  since: z.number(),
  adopted: z.boolean().optional(),
  error: z.string().optional(),
}).passthrough();

export const scaleStateSchema = z.object({
  version: z.literal(1),
  clones: z.array(cloneRecordSchema),
  groups: z.record(z.object({ lastCloneAt: z.number(), lastActionAt: z.number() }).passthrough()).default({}),
}).passthrough();

/** Node name → number of changes made by that node. */
export const versionVectorSchema = z.record(z.string().min(1).max(64), z.number().int().min(0));

export const stateDocSchema = z.object({
  /** Total number of changes (sum of vv); the only version of files written before vv existed. */
  version: z.number().int().min(0),
  vv: versionVectorSchema.optional(),
  hash: z.string().regex(/^[0-9a-f]{16}$/).optional(),
  node: z.string().optional(),
  savedAt: z.string(),
  sections: z.object({
    backends: runtimeStateSchema.optional(),
    scale: scaleStateSchema.optional(),
  }).catchall(z.unknown()),
}).passthrough();

export type StateDocInput = z.output<typeof stateDocSchema>;

/** "sections.backends.entries[2].added.address: expected host:port…", first 3 issues. */
export function describeIssues(e: z.ZodError): string {
  return e.issues.slice(0, 3).map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`).join('; ');
}
