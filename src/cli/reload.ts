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
export const RELOAD_EXIT = { ok: 0, invalid: 1, usage: 2, notRunning: 3, noReport: 4 } as const;

/**
 * What the running process did with a SIGHUP, written by `pairlb start --pidfile F` to
 * reloadResultFile(F) (atomically) after every reload; `seq` counts this process's reloads.
 */
export interface ReloadReport {
  pid: number; seq: number; at: string; ok: boolean; reason?: string; problems?: string;
  changes: string[]; restart: { key: string; why: string }[];
}

/** /run/pairlb/pairlb.pid → /run/pairlb/pairlb.reload.json */
export function reloadResultFile(pidfile: string): string {
  return pidfile.replace(/\.pid$/, '') + '.reload.json';
}

/** How long `pairlb reload` waits for the process's report (a reload that opens listeners, HA untouched). */
const REPORT_WAIT_MS = 15_000;

function readReport(file: string): ReloadReport | undefined {
  try { return JSON.parse(readFileSync(file, 'utf8')) as ReloadReport; } catch { return undefined; }
}

/** The report with our pid and a seq above `after`, polled every 50 ms up to REPORT_WAIT_MS. */
async function waitReport(file: string, pid: number, after: number): Promise<ReloadReport | undefined> {
  const end = Date.now() + REPORT_WAIT_MS;
  for (;;) {
    const r = readReport(file);
    if (r && r.pid === pid && r.seq > after) return r;
    if (Date.now() > end) return undefined;
    await new Promise((ok) => setTimeout(ok, 50));
  }
}

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
    'runtime changes (admin API, scaler) kept.',
    'Under systemd, `systemctl reload pairlb` does the same.',
    '',
    'Options:',
    `  --pidfile FILE   pid file written by \`pairlb start --pidfile\` (default ${DEFAULT_PIDFILE})`,
    '  --pid PID        signal this process instead of reading a pid file',
    '  -c, --config FILE  the file to validate: the one the running process was started with (read',
    '                   from /proc by default; a different file is refused, it would not be loaded)',
    '  --no-check       send SIGHUP without validating first',
    '',
    'It then waits (up to 15 s) for the process to report what it did, and prints it: what was applied',
    'besides listens and backends (log level, access log), and every changed key that needs a restart.',
    '',
    'Exit status: 0 reloaded (or signal sent, with --pid), 1 config invalid (nothing sent) or refused by',
    'the process, 2 usage, 3 no running pairlb, 4 no report from the process in time.',
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
    // With --pid there is no pid file, hence no known report file: signal and return.
    const reportFile = values.pid === undefined ? reloadResultFile(pidfile) : undefined;
    const before = reportFile ? readReport(reportFile) : undefined;
    const after = before && before.pid === target.pid ? before.seq : 0;
    try { process.kill(target.pid, 'SIGHUP'); } catch (e) {
      process.stderr.write(`pairlb reload: cannot signal process ${target.pid}: ${(e as Error).message}\n`);
      return RELOAD_EXIT.notRunning;
    }
    process.stdout.write(`Sent SIGHUP to pairlb (pid ${target.pid})\n`);
    if (!reportFile) return RELOAD_EXIT.ok;
    const r = await waitReport(reportFile, target.pid, after);
    if (!r) {
      process.stderr.write(`pairlb reload: no report from process ${target.pid} in ${reportFile} within ${REPORT_WAIT_MS / 1000} s: see its log ("config reloaded" or why not)\n`);
      return RELOAD_EXIT.noReport;
    }
    if (!r.ok) {
      if (r.problems) process.stderr.write(r.problems + '\n');
      process.stderr.write(`pairlb reload: process ${target.pid} did not reload: ${r.reason ?? 'see its log'}\n`);
      return RELOAD_EXIT.invalid;
    }
    process.stdout.write(`Reloaded (pid ${target.pid})\n`);
    for (const c of r.changes) process.stdout.write(`  applied: ${c}\n`);
    for (const k of r.restart) process.stdout.write(`  needs a restart: ${k.key} (${k.why})\n`);
    return RELOAD_EXIT.ok;
  },
});
