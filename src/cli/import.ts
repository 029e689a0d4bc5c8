import { parseArgs } from 'node:util';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { networkInterfaces } from 'node:os';
import { join } from 'node:path';
import { register } from './registry.js';
import { convertHaproxy } from '../import/haproxy.js';
import { convertHeartbeat, type HeartbeatFiles } from '../import/heartbeat.js';
import { convertKeepalived } from '../import/keepalived.js';
import { ImportResult } from '../import/result.js';
import { renderConfig, unmappedLines } from '../import/render.js';

register('import', {
  summary: 'convert haproxy.cfg (+ heartbeat ha.d or keepalived.conf) to a pairlb config on stdout',
  usage: [
    'pairlb import --haproxy FILE [--heartbeat DIR | --keepalived FILE] [--node NAME] [--peer NAME] > pairlb.yaml',
    '',
    'Writes a commented pairlb YAML to stdout; every line that could not be mapped, and every value to',
    'fill in, is listed (with why) at the top of the file and on stderr. Values keep their meaning:',
    'HAProxy times without a unit are ms, a bare `check` is a TCP connect (check.type: tcp), heartbeat',
    'times without a unit are seconds. HAProxy `frontend`/`backend` become pairlb `frontends`/`backends`',
    '(one frontend per bind line), acl + use_backend + http-request redirect/deny/return/set-header/',
    'del-header + http-response set-header/del-header become `rules`, `bind … ssl crt` becomes `tls:`; a',
    '`listen` stays a listen section unless it has rules or several binds. The heartbeat/VRRP secret is',
    'never copied: pairlb needs its own key file (recipe in the output and in docs/ha.md).',
    '',
    'Options:',
    '  --haproxy FILE     haproxy.cfg (global, defaults, listen, frontend, backend)',
    '  --heartbeat DIR    heartbeat\'s directory (/etc/ha.d): ha.cf, haresources, authkeys',
    '  --keepalived FILE  keepalived.conf: the vrrp_instance',
    '  --node NAME        this node (heartbeat: a `node` name; default: the haresources owner)',
    '  --peer NAME        the peer\'s node name (keepalived has none)',
    '',
    'Exit 0 when a config was written, 1 when no HTTP section could be imported, 2 on bad usage.',
    'Then: pairlb check -c pairlb.yaml --schema-only (and without --schema-only on the balancer).',
  ].join('\n'),
  async run(argv) {
    let values;
    try {
      ({ values } = parseArgs({ args: argv, options: { haproxy: { type: 'string' }, heartbeat: { type: 'string' }, keepalived: { type: 'string' }, node: { type: 'string' }, peer: { type: 'string' } } }));
    } catch (e) { process.stderr.write(`pairlb import: ${(e as Error).message}\n`); return 2; }
    if (!values.haproxy) { process.stderr.write('pairlb import: --haproxy FILE is required\n'); return 2; }
    if (values.heartbeat && values.keepalived) { process.stderr.write('pairlb import: give --heartbeat or --keepalived, not both (pairlb runs one HA pair)\n'); return 2; }
    const read = (f: string): string | undefined => { try { return readFileSync(f, 'utf8'); } catch (e) { process.stderr.write(`pairlb import: cannot read ${f}: ${(e as Error).message}\n`); return undefined; } };
    const hp = read(values.haproxy);
    if (hp === undefined) return 2;
    const result = new ImportResult();
    // `crt PATH` may name a file or a directory of PEM bundles: ask the file system when it can tell.
    const h = convertHaproxy(hp, values.haproxy, { isDirectory: (p) => { try { return statSync(p).isDirectory(); } catch { return undefined; } } });
    result.merge(h.result);
    const sources = [values.haproxy];
    let ha: Record<string, unknown> | undefined;
    const global: Record<string, unknown> = { ...h.global };
    if (values.heartbeat) {
      const files: HeartbeatFiles = {};
      for (const [k, name] of [['hacf', 'ha.cf'], ['haresources', 'haresources'], ['authkeys', 'authkeys']] as const) {
        const p = join(values.heartbeat, name);
        if (!existsSync(p)) continue;
        const t = read(p);
        if (t === undefined) return 2;
        files[k] = { text: t, file: p };
        sources.push(p);
      }
      if (!files.hacf && !files.haresources) { process.stderr.write(`pairlb import: ${values.heartbeat} has neither ha.cf nor haresources\n`); return 2; }
      const local = Object.values(networkInterfaces()).flatMap((l) => (l ?? []).map((a) => a.address));
      const hb = convertHeartbeat(files, { node: values.node, localAddresses: local });
      result.merge(hb.result);
      Object.assign(global, hb.global);
      ha = hb.ha;
    } else if (values.keepalived) {
      const t = read(values.keepalived);
      if (t === undefined) return 2;
      sources.push(values.keepalived);
      const k = convertKeepalived(t, values.keepalived, { node: values.node, peer: values.peer });
      result.merge(k.result);
      Object.assign(global, k.global);
      ha = k.ha;
    }
    process.stdout.write(renderConfig({ sources, global, listen: h.listen, frontends: h.frontends, backends: h.backends, stats: h.stats, ha, result }));
    for (const t of result.todo) process.stderr.write(`pairlb import: FILL IN ${t}\n`);
    for (const l of unmappedLines(result.unmapped)) process.stderr.write(`pairlb import: not mapped: ${l}\n`);
    if (!h.listen.length && !h.frontends.length) { process.stderr.write('pairlb import: no HTTP listen section or frontend could be imported (pairlb needs at least one)\n'); return 1; }
    return 0;
  },
});
