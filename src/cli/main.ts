#!/usr/bin/env node
import { commands } from './registry.js';
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
  'pairlb <command> --help shows the options of a command.',
].join('\n');

async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (!name || name === '--help' || name === '-h' || name === 'help') {
    process.stdout.write(HELP() + '\n');
    return name ? 0 : 2;
  }
  const cmd = commands.get(name);
  if (!cmd) { process.stderr.write(`pairlb: unknown command ${JSON.stringify(name)}\n\n${HELP()}\n`); return 2; }
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
