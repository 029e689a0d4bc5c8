import { parseArgs } from 'node:util';
import { register } from './registry.js';
import { CONNECT_OPTIONS, CONNECT_USAGE, call, errorText, resolveTarget, type ApiResponse } from './ops-client.js';
import { parseDuration } from '../config/types.js';
import type { BackendView } from '../admin/actions.js';

/**
 * `pairlb backend list|add|remove|drain|ready|maint|weight` on the runtime API. Changes are
 * persisted by the running process (state_dir/runtime.json) and survive restarts and reloads; a
 * later change of the same key (`state`, `weight`) in the config file wins (docs/operations-stats.md).
 * Exit codes: 0 done, 1 refused by pairlb (unknown backend, bad value…), 2 usage, 3 unreachable.
 */

const USAGE = [
  'pairlb backend list [LISTEN] [--json]',
  'pairlb backend add LISTEN NAME HOST:PORT [--weight N] [--backup] [--no-check] [--state ready|drain|maint] [--cookie ID]',
  'pairlb backend remove LISTEN NAME [--drain-timeout 30s] [--no-wait]',
  '        drains first, then removes when no request is in flight (or after the timeout)',
  'pairlb backend drain|ready|maint LISTEN NAME',
  'pairlb backend weight LISTEN NAME N          (0..256)',
  '',
  'LISTEN NAME may also be written LISTEN/NAME.',
  CONNECT_USAGE,
].join('\n');

const enc = encodeURIComponent;

function table(rows: BackendView[]): string {
  const head = ['LISTEN', 'NAME', 'ADDRESS', 'STATE', 'WEIGHT', 'CUR', 'TOTAL', 'CHECK', 'ORIGIN'];
  const data = rows.map((b) => [b.listen, b.name, b.address, b.removing ? 'REMOVING' : b.state, b.effective_weight < b.weight ? `${b.weight} (${Math.round((100 * b.effective_weight) / (b.weight || 1))}%)` : String(b.weight), String(b.cur), String(b.total), b.last_check ?? (b.check ? '-' : 'off'), b.origin]);
  const w = head.map((h, i) => Math.max(h.length, ...data.map((r) => r[i].length)));
  return [head, ...data].map((r) => r.map((c, i) => c.padEnd(w[i])).join('  ').trimEnd()).join('\n') + '\n';
}

function fail(msg: string, code = 2): number { process.stderr.write(`pairlb backend: ${msg}\n`); return code; }

register('backend', {
  summary: 'list, add, remove, drain, ready, maint, weight backends at runtime (admin API)',
  usage: USAGE,
  async run(argv) {
    let parsed;
    try {
      parsed = parseArgs({
        args: argv, allowPositionals: true,
        options: { ...CONNECT_OPTIONS, weight: { type: 'string' }, backup: { type: 'boolean' }, 'no-check': { type: 'boolean' }, state: { type: 'string' }, cookie: { type: 'string' }, 'drain-timeout': { type: 'string' }, 'no-wait': { type: 'boolean' } },
      });
    } catch (e) { return fail((e as Error).message); }
    const { values: v, positionals } = parsed;
    const [verb, ...rest0] = positionals;
    const rest = rest0.length && rest0[0].includes('/') ? [...rest0[0].split('/', 2), ...rest0.slice(1)] : rest0;
    if (!verb) return fail('missing subcommand\n\n' + USAGE);
    const t = resolveTarget(v);
    const out = (r: ApiResponse, ok: (b: Record<string, unknown>) => string): number => {
      if (r.status >= 200 && r.status < 300) { process.stdout.write(v.json ? JSON.stringify(r.body, null, 1) + '\n' : ok(r.body)); return 0; }
      process.stderr.write(`pairlb backend ${verb}: ${errorText(r)}\n`);
      return 1;
    };
    try {
      switch (verb) {
        case 'list': {
          const r = await call(t, 'GET', '/v1/backends' + (rest[0] ? '?listen=' + enc(rest[0]) : ''));
          return out(r, (b) => table(b.backends as BackendView[]));
        }
        case 'add': {
          if (rest.length !== 3) return fail('usage: ' + USAGE.split('\n')[1]);
          const body: Record<string, unknown> = { listen: rest[0], name: rest[1], address: rest[2], backup: !!v.backup, check: !v['no-check'] };
          if (v.weight !== undefined) { if (!/^\d+$/.test(v.weight)) return fail('--weight must be an integer'); body.weight = Number(v.weight); }
          if (v.state) body.state = v.state;
          if (v.cookie) body.cookie = v.cookie;
          return out(await call(t, 'POST', '/v1/backends', body), (b) => { const x = b.backend as BackendView; return `added ${x.listen}/${x.name} at ${x.address}: ${x.state}, weight ${x.weight}\n`; });
        }
        case 'remove': {
          if (rest.length !== 2) return fail('usage: ' + USAGE.split('\n')[2]);
          const ms = v['drain-timeout'] !== undefined ? parseDuration(/^\d+$/.test(v['drain-timeout']) ? v['drain-timeout'] + 's' : v['drain-timeout']) : undefined;
          if (v['drain-timeout'] !== undefined && ms === undefined) return fail('--drain-timeout: expected a duration such as 30s');
          const q = new URLSearchParams();
          if (ms !== undefined) q.set('timeout', String(ms));
          if (v['no-wait']) q.set('wait', '0');
          // The call waits for the drain: give it the drain timeout plus a margin.
          const tt = { ...t, timeoutMs: Math.max(t.timeoutMs, (ms ?? 600_000) + 10_000) };
          return out(await call(tt, 'DELETE', `/v1/backends/${enc(rest[0])}/${enc(rest[1])}` + (q.size ? '?' + q : '')), (b) =>
            b.removing ? `removing ${b.removing} (draining, up to ${b.timeoutMs} ms)\n` : `removed ${rest[0]}/${rest[1]} after ${b.waitedMs} ms` + (b.forced ? ` (timeout: ${b.inflight} request(s) were still in flight)` : ' (no request in flight)') + '\n');
        }
        case 'drain': case 'ready': case 'maint': {
          if (rest.length !== 2) return fail(`usage: pairlb backend ${verb} LISTEN NAME`);
          return out(await call(t, 'POST', `/v1/backends/${enc(rest[0])}/${enc(rest[1])}/state`, { state: verb }), (b) => { const x = b.backend as BackendView; return `${x.listen}/${x.name}: ${verb} (now ${x.state})\n`; });
        }
        case 'weight': {
          if (rest.length !== 3 || !/^\d+$/.test(rest[2])) return fail('usage: pairlb backend weight LISTEN NAME N');
          return out(await call(t, 'POST', `/v1/backends/${enc(rest[0])}/${enc(rest[1])}/weight`, { weight: Number(rest[2]) }), (b) => { const x = b.backend as BackendView; return `${x.listen}/${x.name}: weight ${x.weight}\n`; });
        }
        default:
          return fail(`unknown subcommand ${JSON.stringify(verb)}\n\n` + USAGE);
      }
    } catch (e) {
      process.stderr.write(`pairlb backend ${verb}: ${(e as Error).message}\n`);
      return 3;
    }
  },
});
