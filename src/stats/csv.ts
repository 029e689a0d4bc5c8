import { COLUMNS, rowValues } from './columns.js';
import { csvEscape, type ListenTable } from './model.js';

/** CSV export of the column table: one header line of column keys, one line per backend, then TOTAL. */
export function renderCsv(tables: readonly ListenTable[]): string {
  const lines = [COLUMNS.map((c) => c.key).join(',')];
  for (const t of tables) {
    for (const r of [...t.backends, t.total]) {
      const v = rowValues(r);
      lines.push(COLUMNS.map((c) => csvEscape(v[c.key])).join(','));
    }
  }
  return lines.join('\n') + '\n';
}
