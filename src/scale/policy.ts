/**
 * The scaling policy: a pure function of the samples of one VDS's group (the original and its
 * clones), its cooldown clocks and the clone counts. No I/O, no clock: the scaler passes `now`.
 *
 *   clone  when any member of the group (original or active clone) has had load ≥ up for the
 *          last `up_samples` samples, unless a clone of the group is already in progress, a limit
 *          is reached, or the group is in its up cooldown;
 *   remove a clone whose load has been < down for the last `down_samples` samples, when no member
 *          is hot and the group is out of its down cooldown (the coldest such clone goes first);
 *   never  remove an original; never act on an "unknown" sample: it breaks every streak.
 *
 * Hysteresis: down < up (checked by the config schema), plus streaks and cooldowns, so a load
 * hovering around one threshold does not flap.
 */

/** One SNMP reading. `load` is set only for 'ok'; 'unknown' carries why (timeout, noSuch, auth…). */
export interface Sample {
  at: number;
  status: 'ok' | 'unknown';
  load?: number;
  reason?: string;
}

export interface PolicyParams {
  up: number;
  up_samples: number;
  down: number;
  down_samples: number;
  up_cooldown: number;
  down_cooldown: number;
  max_clones_per_vds: number;
  max_clones: number;
}

export interface GroupView {
  source: string;
  /** Samples of the original, oldest first. */
  original: readonly Sample[];
  /** Clones that joined the pool (only these can be removed or make the group hot). */
  clones: readonly { name: string; samples: readonly Sample[] }[];
  /** Clones of this group being created or joining: they block another clone and count against the limits. */
  pending: number;
  /** Clones of this group being drained or destroyed: they still count against the limits. */
  leaving?: number;
  /** Clones of every group, including pending ones. */
  totalClones: number;
  /** An operation (clone or removal) of this group is running: decide nothing. */
  busy: boolean;
  /** ms timestamps of the group's last clone and last action of any kind; 0 = never. */
  lastCloneAt: number;
  lastActionAt: number;
}

export type Decision =
  | { action: 'clone'; source: string; reason: string }
  | { action: 'remove'; source: string; clone: string; reason: string }
  | { action: 'none'; source: string; reason: string };

/** The last n samples if all are known, else undefined (an unknown sample breaks the streak). */
function lastKnown(samples: readonly Sample[], n: number): number[] | undefined {
  if (samples.length < n) return undefined;
  const out: number[] = [];
  for (let i = samples.length - n; i < samples.length; i++) {
    const s = samples[i];
    if (s.status !== 'ok' || s.load === undefined || !Number.isFinite(s.load)) return undefined;
    out.push(s.load);
  }
  return out;
}

const fmt = (x: number) => x.toFixed(2);

export function decide(p: PolicyParams, g: GroupView, now: number): Decision {
  const none = (reason: string): Decision => ({ action: 'none', source: g.source, reason });
  if (g.busy) return none('operation in progress');

  const members = [{ name: g.source, samples: g.original }, ...g.clones];
  let hot: { name: string; loads: number[] } | undefined;
  for (const m of members) {
    const l = lastKnown(m.samples, p.up_samples);
    if (l && l.every((x) => x >= p.up)) { hot = { name: m.name, loads: l }; break; }
  }

  if (hot) {
    const why = `${hot.name} load ${hot.loads.map(fmt).join(',')} >= ${p.up} for ${p.up_samples} samples`;
    const mine = g.clones.length + g.pending + (g.leaving ?? 0);
    if (g.pending > 0) return none(`${why}; a clone is already in progress`);
    if (mine >= p.max_clones_per_vds) return none(`${why}; max_clones_per_vds (${p.max_clones_per_vds}) reached`);
    if (g.totalClones >= p.max_clones) return none(`${why}; max_clones (${p.max_clones}) reached`);
    if (g.lastCloneAt && now - g.lastCloneAt < p.up_cooldown) return none(`${why}; up cooldown ${Math.ceil((p.up_cooldown - (now - g.lastCloneAt)) / 1000)}s left`);
    return { action: 'clone', source: g.source, reason: why };
  }

  let cold: { name: string; loads: number[] } | undefined;
  for (const c of g.clones) {
    const l = lastKnown(c.samples, p.down_samples);
    if (!l || !l.every((x) => x < p.down)) continue;
    const last = l[l.length - 1];
    if (!cold || last < cold.loads[cold.loads.length - 1] || (last === cold.loads[cold.loads.length - 1] && c.name < cold.name)) cold = { name: c.name, loads: l };
  }
  if (cold) {
    const why = `${cold.name} load ${cold.loads.map(fmt).join(',')} < ${p.down} for ${p.down_samples} samples`;
    if (g.lastActionAt && now - g.lastActionAt < p.down_cooldown) return none(`${why}; down cooldown ${Math.ceil((p.down_cooldown - (now - g.lastActionAt)) / 1000)}s left`);
    return { action: 'remove', source: g.source, clone: cold.name, reason: why };
  }

  const last = g.original[g.original.length - 1];
  if (!last) return none('no sample yet');
  if (last.status !== 'ok') return none(`${g.source} load unknown (${last.reason ?? 'no reason'})`);
  return none(`steady (${g.source} load ${fmt(last.load!)})`);
}
