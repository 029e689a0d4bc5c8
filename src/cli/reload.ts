import { parseArgs } from 'node:util';
import { readFileSync, readlinkSync } from 'node:fs';
import { resolve } from 'node:path';
import { loadConfigFile } from '../config/load.js';
import { ConfigError } from '../errors.js';
import { register } from './registry.js';

/**
 * `pairlb reload`: validate the config a running `pairlb start` uses, then send it SIGHUP.
 *
 * The running process validates again and keeps its config when the file is bad, so validating here
 * is not what keeps the balancer safe; it is what lets the operator see the errors on their terminal
 * and get a non-zero exit status, instead of digging them out of the journal (as `haproxy -c` before
 * a reload).
 */

export const DEFAULT_PIDFILE = '/run/pairlb/pairlb.pid';

/** Exit statuses, stable for scripts. */
export const RELOAD_EXIT = { ok: 0, invalid: 1, usage: 2, notRunning: 3 } as const;

/**
 * The config file named on a `pairlb start` command line (`-c F`, `--config F`, `--config=F`,
 * `-cF`), or undefined. Pure: takes argv as read from /proc/PID/cmdline.
 */
export function configFromArgv(argv: string[]): string | undefined {
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if ((a === '-c' || a === '--config') && i + 1 < argv.length) return argv[i + 1];
    if (a.startsWith('--config=')) return a.slice('--config='.length);
    if (a.startsWith('-c') && a.length > 2 && !a.startsWith('--')) return a.slice(2);
  }
  return undefined;
}

/** True when argv looks like `… pairlb … start …` (a stale pid file may name a reused pid). */
export function isPairlbStart(argv: string[]): boolean {
  return argv.includes('start') && argv.some((a) => /pairlb|cli\/main\.js$/.test(a));
}

interface Target { pid: number; argv?: string[]; cwd?: string }

function findTarget(pidArg: string | undefined, pidfile: string): Target | string {
  let pid: number;
  if (pidArg !== undefined) {
    pid = Number(pidArg);
  } else {
    let text: string;
    try { text = readFileSync(pidfile, 'utf8'); } catch (e) {
      return `cannot read pid file ${pidfile} (${(e as NodeJS.ErrnoException).code ?? (e as Error).message}): is pairlb running with --pidfile ${pidfile}?`;
    }
    pid = Number(text.trim());
  }
  if (!Number.isInteger(pid) || pid <= 1) return `not a usable pid: ${JSON.stringify(pidArg ?? pidfile)}`;
  try { process.kill(pid, 0); } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ESRCH') return `no process ${pid} (stale pid file ${pidfile}?)`;
    // EPERM: it exists but belongs to another user; kill() below reports the same error clearly.
  }
  // Linux only: /proc tells us what the process is and where it runs. Elsewhere, trust the pid.
  let argv: string[] | undefined;
  let cwd: string | undefined;
  try { argv = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter(Boolean); } catch { /* no /proc */ }
  try { cwd = readlinkSync(`/proc/${pid}/cwd`); } catch { /* other user or no /proc */ }
  if (argv && !isPairlbStart(argv)) return `process ${pid} is not pairlb start (${argv.join(' ').slice(0, 120)}): stale pid file?`;
  return { pid, argv, cwd };
}

register('reload', {
  summary: 'validate the config of the running balancer, then make it reload (SIGHUP)',
  usage: [
    'pairlb reload [--pidfile FILE | --pid PID] [-c FILE] [--no-check]',
    '',
    'Finds the running `pairlb start` through its pid file, validates the config file it was started',
    'with (or FILE given with -c), prints every error and exits 1 without signalling when the file is',
    'invalid; otherwise sends SIGHUP. The running process applies the difference live: listen sections',
    'and backends added, changed or removed, in-flight requests and idle keep-alive connections kept,',
    'runtime changes (admin API, scaler) kept. Its log says "config reloaded" or why not.',
    'Under systemd, `systemctl reload pairlb` does the same.',
    '',
    'Options:',
    `  --pidfile FILE   pid file written by \`pairlb start --pidfile\` (default ${DEFAULT_PIDFILE})`,
    '  --pid PID        signal this process instead of reading a pid file',
    '  -c, --config FILE  the file to validate: the one the running process was started with (read',
    '                   from /proc by default; a different file is refused, it would not be loaded)',
    '  --no-check       send SIGHUP without validating first',
    '',
    'Exit status: 0 signal sent, 1 config invalid (nothing sent), 2 usage, 3 no running pairlb.',
  ].join('\n'),
  async run(argv) {
    let values;
    try {
      ({ values } = parseArgs({
        args: argv,
        options: {
          pidfile: { type: 'string' }, pid: { type: 'string' },
          config: { type: 'string', short: 'c' }, 'no-check': { type: 'boolean' },
        },
      }));
    } catch (e) {
      process.stderr.write(`pairlb reload: ${(e as Error).message}\n`);
      return RELOAD_EXIT.usage;
    }
    const pidfile = values.pidfile ?? DEFAULT_PIDFILE;
    const target = findTarget(values.pid, pidfile);
    if (typeof target === 'string') { process.stderr.write(`pairlb reload: ${target}\n`); return RELOAD_EXIT.notRunning; }

    if (!values['no-check']) {
      // The running process re-reads the file it was started with; validating another one would
      // prove nothing, so -c must name that same file (it exists for systems without /proc).
      const fromArgv = target.argv && configFromArgv(target.argv.slice(target.argv.indexOf('start') + 1));
      const running = fromArgv !== undefined && target.cwd ? resolve(target.cwd, fromArgv) : fromArgv;
      if (values.config !== undefined && running !== undefined && resolve(values.config) !== running) {
        process.stderr.write(`pairlb reload: process ${target.pid} reloads ${running}, not ${values.config}: edit that file (or start it with -c ${values.config})\n`);
        return RELOAD_EXIT.usage;
      }
      const file = values.config ?? running;
      if (file === undefined) {
        process.stderr.write(`pairlb reload: cannot tell which config process ${target.pid} uses: give it with -c FILE (or --no-check)\n`);
        return RELOAD_EXIT.usage;
      }
      try { loadConfigFile(file); } catch (e) {
        process.stderr.write((e instanceof ConfigError ? e.message : String(e)) + '\n');
        process.stderr.write(`pairlb reload: not reloading process ${target.pid}: it keeps running with its current config\n`);
        return RELOAD_EXIT.invalid;
      }
      process.stdout.write(`Configuration file is valid: ${file}\n`);
    }
    try { process.kill(target.pid, 'SIGHUP'); } catch (e) {
      process.stderr.write(`pairlb reload: cannot signal process ${target.pid}: ${(e as Error).message}\n`);
      return RELOAD_EXIT.notRunning;
    }
    process.stdout.write(`Sent SIGHUP to pairlb (pid ${target.pid})\n`);
    return RELOAD_EXIT.ok;
  },
});
