#!/usr/bin/env node
import { readFileSync } from 'node:fs';
import { packageVersion } from '../version.js';
import { commands } from './registry.js';
import { reexecWithNotifySocket } from '../ha/sd-notify.js';
import './start.js';
import './commands.js';

const HELP = (): string => [
  'pairlb: load balancer and high-availability pair',
  '',
  'Usage: pairlb <command> [options]',
  '',
  'Commands:',
  ...[...commands].map(([n, c]) => `  ${n.padEnd(14)} ${c.summary}`),
  '',
  'pairlb <command> --help shows the options of a command; pairlb --version the version.',
].join('\n');

/** `pairlb drain web web1` is `pairlb backend drain web web1` (the verbs of src/cli/ops-backend.ts). */
const BACKEND_VERBS = new Set(['list', 'add', 'remove', 'drain', 'ready', 'maint', 'weight']);

const version = packageVersion;

/** Node.js 20 reached end of life on 2026-04-30; bin/pairlb runs the Node 24 that npm installed. */
const MIN_NODE_MAJOR = 24;

async function main(argv: string[]): Promise<number> {
  if (argv[0] === '--version' || argv[0] === '-V' || argv[0] === 'version') { process.stdout.write(`pairlb ${version()}\n`); return 0; }
  const major = Number(process.versions.node.split('.')[0]);
  if (major < MIN_NODE_MAJOR) {
    process.stderr.write(`pairlb: needs Node.js ${MIN_NODE_MAJOR} or newer (this is ${process.version}); run it through bin/pairlb, which uses the Node that \`npm ci\` installed (node_modules/node/bin/node)\n`);
    return 1;
  }
  const [name, ...rest] = argv;
  // systemd's NOTIFY_SOCKET needs a datagram socket that node cannot open: see src/ha/sd-notify.ts.
  if (name === 'start') reexecWithNotifySocket();
  if (!name || name === '--help' || name === '-h' || name === 'help') {
    process.stdout.write(HELP() + '\n');
    return name ? 0 : 2;
  }
  const cmd = commands.get(name);
  if (!cmd) {
    const hint = BACKEND_VERBS.has(name) ? `did you mean \`pairlb backend ${[name, ...rest].join(' ')}\`?\n` : '';
    process.stderr.write(`pairlb: unknown command ${JSON.stringify(name)}\n${hint}\n${HELP()}\n`);
    return 2;
  }
  if (rest.includes('--help') || rest.includes('-h')) { process.stdout.write(`${cmd.summary}\n\nUsage: ${cmd.usage}\n`); return 0; }
  return cmd.run(rest);
}

main(process.argv.slice(2)).then((code) => {
  process.exitCode = code;
  // Give async log destinations a moment to flush, then make sure nothing keeps us alive.
  setTimeout(() => process.exit(code), 100).unref();
}, (e) => {
  process.stderr.write(`pairlb: ${e instanceof Error ? e.stack : String(e)}\n`);
  process.exit(1);
});
