import { Registry } from 'prom-client';
import type { App, Role } from '../app.js';
import { COLUMNS, type Column, type Row, type RowKind } from './columns.js';
import { RT_BUCKETS } from './counters.js';
import { buildTables, type ListenTable, type RowOpts } from './model.js';

/**
 * Prometheus exposition with prom-client, driven by the same column table as the page.
 *
 * Every metric is a *custom collector* registered on the registry: its get() reads the hot-path
 * counters when Prometheus scrapes. The data plane never calls prom-client (no labels() lookups,
 * no inc() per request), so enabling metrics costs nothing per request.
 *
 * Other modules (HA, scaler) add their own metrics to the same registry: `metricsRegistry(app)`
 * gives it; use prom-client Gauges/Counters with a collect() callback that reads state at scrape
 * time.
 */

const registries = new WeakMap<App, Registry>();

/** The prom-client registry served at /metrics for this App. */
export function metricsRegistry(app: App): Registry {
  let r = registries.get(app);
  if (!r) registries.set(app, (r = new Registry()));
  return r;
}

interface Sample { metricName?: string; labels: Record<string, string | number>; value: number }

interface Collector {
  name: string;
  help: string;
  type: 'counter' | 'gauge' | 'histogram';
  aggregator: 'sum';
  get(): Promise<{ name: string; help: string; type: string; aggregator: 'sum'; values: Sample[] }>;
  reset(): void;
}

const PREFIX: Record<RowKind, string> = { backend: 'pairlb_backend_', total: 'pairlb_listen_' };
const ROLES: readonly Role[] = ['standalone', 'init', 'backup', 'master', 'fault'];
const LE = [...RT_BUCKETS.map(String), '+Inf'];

function labelsOf(r: Row): Record<string, string> {
  return r.kind === 'backend' ? { listen: r.listen, backend: r.name } : { listen: r.listen };
}

export class PromExporter {
  readonly registry: Registry;
  private tables: ListenTable[] | undefined;
  private tablesAt = -1;

  constructor(private readonly app: App, private readonly rowOpts: () => RowOpts = () => ({})) {
    this.registry = metricsRegistry(app);
    // Group columns by metric name: several columns can feed one metric (errors_total{type}).
    for (const kind of ['backend', 'total'] as const) {
      const groups = new Map<string, Column[]>();
      for (const c of COLUMNS) {
        if (!c.prom || (c.prom.kinds && !c.prom.kinds.includes(kind))) continue;
        const g = groups.get(c.prom.metric);
        if (g) g.push(c); else groups.set(c.prom.metric, [c]);
      }
      for (const [metric, cols] of groups) this.add(this.collector(kind, PREFIX[kind] + metric, cols));
    }
    this.add({
      name: 'pairlb_node_role', help: 'Role of this node: 1 for the current one', type: 'gauge', aggregator: 'sum', reset() {},
      get: async () => ({ name: 'pairlb_node_role', help: 'Role of this node: 1 for the current one', type: 'gauge', aggregator: 'sum',
        values: ROLES.map((role) => ({ labels: { node: this.app.node, role }, value: this.app.role === role ? 1 : 0 })) }),
    });
  }

  private add(c: Collector): void {
    // registerMetric only needs name/help/type/get: the custom-collector contract of prom-client.
    this.registry.registerMetric(c as unknown as Parameters<Registry['registerMetric']>[0]);
  }

  /** Build the rows once per scrape (every collector of a scrape reads the same snapshot). */
  private rows(kind: RowKind): Row[] {
    const now = Date.now();
    if (!this.tables || now - this.tablesAt > 50) { this.tables = buildTables(this.app, { ...this.rowOpts(), now }); this.tablesAt = now; }
    return kind === 'backend' ? this.tables.flatMap((t) => t.backends) : this.tables.map((t) => t.total);
  }

  private collector(kind: RowKind, name: string, cols: Column[]): Collector {
    const spec = cols[0].prom!;
    const help = cols.find((c) => c.prom!.help)?.prom!.help ?? cols[0].help;
    const base = { name, help, type: spec.type, aggregator: 'sum' as const };
    const get = async () => {
      const values: Sample[] = [];
      for (const r of this.rows(kind)) {
        const lbl = labelsOf(r);
        if (spec.type === 'histogram') { histogram(values, name, lbl, r); continue; }
        for (const c of cols) {
          const v = c.value(r);
          const p = c.prom!;
          if (p.enumLabel && p.enumValues) {
            const cur = typeof v === 'string' ? v.split(' ')[0] : '';
            for (const e of p.enumValues) values.push({ labels: { ...lbl, [p.enumLabel]: e }, value: cur === e ? 1 : 0 });
            continue;
          }
          if (typeof v !== 'number') continue;
          values.push({ labels: p.labels ? { ...lbl, ...p.labels } : lbl, value: p.scale ? v * p.scale : v });
        }
      }
      return { ...base, values };
    };
    return { ...base, get, reset() {} };
  }

  async text(): Promise<string> {
    this.tables = undefined;
    return this.registry.metrics();
  }

  get contentType(): string { return this.registry.contentType; }
}

function histogram(out: Sample[], name: string, lbl: Record<string, string>, r: Row): void {
  let acc = 0;
  const counts = r.c.rtCounts;
  for (let i = 0; i < counts.length; i++) {
    acc += counts[i];
    out.push({ metricName: name + '_bucket', labels: { ...lbl, le: LE[i] }, value: acc });
  }
  out.push({ metricName: name + '_sum', labels: lbl, value: r.c.rtSum });
  out.push({ metricName: name + '_count', labels: lbl, value: acc });
}
