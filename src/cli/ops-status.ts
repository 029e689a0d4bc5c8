import { parseArgs } from 'node:util';
import { register } from './registry.js';
import { CONNECT_OPTIONS, CONNECT_USAGE, call, errorText, resolveTarget } from './ops-client.js';
import { unknown, type Verdict } from '../admin/status.js';
import { PairlbError } from '../errors.js';

/**
 * `pairlb status`: one line and a Nagios exit code (0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN), so
 * existing monitoring (Nagios, Icinga, Zabbix agents) can run it as a plugin. The verdict is
 * computed by the running process (src/admin/status.ts). A balancer that does not answer at all is
 * CRITICAL (it is not serving); a usage error or an answer we cannot read is UNKNOWN.
 */
register('status', {
  summary: 'one-line health summary with Nagios exit codes (0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN)',
  usage: ['pairlb status [connection options] [--json]', '', CONNECT_USAGE].join('\n'),
  async run(argv) {
    let v;
    try { v = parseArgs({ args: argv, options: CONNECT_OPTIONS }).values; } catch (e) {
      process.stdout.write(unknown((e as Error).message).text + '\n');
      return 3;
    }
    let verdict: Verdict;
    let doc: Record<string, unknown> | undefined;
    try {
      const r = await call(resolveTarget(v), 'GET', '/v1/status');
      doc = r.body;
      const vd = r.body.verdict as Verdict | undefined;
      verdict = r.status === 200 && vd && typeof vd.code === 'number' ? vd : unknown(errorText(r));
    } catch (e) {
      verdict = e instanceof PairlbError && e.code === 'PAIRLB_ADMIN_UNREACHABLE'
        ? { code: 2, label: 'CRITICAL', text: `PAIRLB CRITICAL - ${e.message}` }
        : unknown((e as Error).message);
    }
    process.stdout.write((v.json && doc ? JSON.stringify(doc, null, 1) : verdict.text) + '\n');
    return verdict.code;
  },
});
