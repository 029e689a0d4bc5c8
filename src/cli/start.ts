import { parseArgs } from 'node:util';
import { existsSync, mkdtempSync, readFileSync, renameSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { fileURLToPath } from 'node:url';
import { dirname, join, resolve } from 'node:path';
import { loadConfigFile } from '../config/load.js';
import { preflight } from '../config/preflight.js';
import { checkTls } from '../tls/check.js';
import { formatPath } from '../config/load.js';
import { sitesOf } from '../config/sites.js';
import type { Config } from '../config/schema.js';
import { ConfigError } from '../errors.js';
import { App } from '../app.js';
import { createLogger } from '../log.js';
import { startDemoBackends } from '../demo.js';
import { register } from './registry.js';
import { SdNotifier } from '../ha/sd-notify.js';
import { reloadResultFile, type ReloadReport } from './reload.js';
import '../modules.js';

const HERE = dirname(fileURLToPath(import.meta.url));
/** The embedded default config, used by `npm start` (`pairlb start --demo`). */
export const DEMO_CONFIG = resolve(HERE, '../../config/pairlb.yaml');
/** Where the package and the systemd unit put the config. */
export const DEFAULT_CONFIG = '/etc/pairlb/pairlb.yaml';

register('check', {
  summary: 'validate a config file without starting (like haproxy -c)',
  usage: [
    'pairlb check [-c FILE] [--schema-only]     FILE defaults to /etc/pairlb/pairlb.yaml',
    '',
    'Exit 0 when the file is valid; exit 1 and print every error (key path and line) otherwise.',
    'Besides the YAML and the schema it checks what `start` reads: the HA key file (exists, mode 600,',
    'long enough), admin token files, the scaler\'s SSH keys, and that the VIP interface exists and is up;',
    'TLS certificates: readable, key matching, chain in order (warnings, exit 0: expiry within 30 days,',
    'a routed host name no certificate serves).',
    '',
    'Options:',
    '  --schema-only   the YAML and the schema only (a config written for another machine)',
  ].join('\n'),
  async run(argv) {
    const { values } = parseArgs({ args: argv, options: { config: { type: 'string', short: 'c' }, 'schema-only': { type: 'boolean' } } });
    const file = values.config ?? DEFAULT_CONFIG;
    if (!values.config && !existsSync(file)) { process.stderr.write(`pairlb check: ${file} (the default without -c FILE) does not exist\n`); return 2; }
    try {
      const cfg = loadConfigFile(file, values['schema-only'] ? undefined : (c) => preflight(c, { interfaces: true }));
      // Warnings do not fail the check (exit 0): expiring certificates, names no certificate serves.
      if (!values['schema-only']) for (const w of checkTls(cfg).warnings) process.stderr.write(`warning: ${formatPath(w.path)}: ${w.message}\n`);
      process.stdout.write(`Configuration file is valid: ${file}\n`);
      return 0;
    } catch (e) {
      process.stderr.write((e instanceof ConfigError ? e.message : String(e)) + '\n');
      return 1;
    }
  },
});

register('start', {
  summary: 'run the balancer (foreground; SIGHUP reloads, SIGTERM stops gracefully)',
  usage: [
    'pairlb start -c FILE [--state-dir DIR] [--pidfile FILE]',
    'pairlb start --demo        built-in default: two demo backends on loopback + balancer on 127.0.0.1:8080',
    '',
    'Signals: SIGHUP re-reads FILE and applies the difference (an invalid file is refused, the running',
    'config stays); SIGTERM/SIGINT stop gracefully (HA hands the VIP over, in-flight requests finish up',
    'to timeouts.drain); a second SIGTERM exits at once.',
    '',
    'Options:',
    '  -c, --config FILE   the YAML config (see docs/configuration.md)',
    '  --state-dir DIR     where runtime state is persisted (default: global.state_dir; with --demo a',
    '                      temp dir removed at exit, so every demo starts from the config)',
    '  --pidfile FILE      write the process id here once serving, remove it on exit; `pairlb reload`',
    '                      reads it (systemd unit: /run/pairlb/pairlb.pid)',
    '  --demo              run the built-in demo config with its two demo backends',
  ].join('\n'),
  async run(argv) {
    const { values } = parseArgs({
      args: argv,
      options: { config: { type: 'string', short: 'c' }, demo: { type: 'boolean' }, 'state-dir': { type: 'string' }, pidfile: { type: 'string' } },
    });
    const file = values.config ?? (values.demo ? DEMO_CONFIG : undefined);
    if (!file) { process.stderr.write('pairlb start: -c FILE is required (or --demo)\n'); return 2; }
    let cfg: Config;
    // Files the modules read are checked before any port is bound (the same checks as `check`).
    try { cfg = loadConfigFile(file, (c) => preflight(c, { interfaces: false })); } catch (e) {
      process.stderr.write((e instanceof ConfigError ? e.message : String(e)) + '\n');
      return 1;
    }
    const log = createLogger(cfg.global.log.level);
    // A promise nobody awaited failed before the app runs: logged with its stack as one JSON line,
    // then exit 1 (nothing holds the VIP yet). Once the app runs, installFatalHandlers replaces
    // this with the handler that gives the VIP up first. Data-plane workers log theirs with their
    // worker number and are replaced (src/proxy/worker.ts).
    process.on('unhandledRejection', (err) => {
      log.fatal({ mod: 'process', kind: 'unhandled promise rejection', err }, 'unhandled promise rejection before start: exiting');
      setTimeout(() => process.exit(1), 50);
    });
    let demo: Awaited<ReturnType<typeof startDemoBackends>> | undefined;
    if (values.demo) demo = await startDemoBackends(cfg, log);
    // The demo keeps its runtime state (drains, weights) in a fresh temp dir, removed at exit: a
    // second `npm start` shows the README's tour again instead of the last run's drains, and
    // nothing is written into the checkout. --state-dir keeps it where the user says.
    const demoState = values.demo && !values['state-dir'] ? mkdtempSync(join(tmpdir(), 'pairlb-demo-')) : undefined;
    let app: App;
    try { app = new App(cfg, log, { stateDir: values['state-dir'] ?? demoState }); } catch (e) {
      log.fatal({ err: e }, 'start failed');
      await demo?.close();
      return 1;
    }
    const removeDemoState = () => { if (demoState) rmSync(demoState, { recursive: true, force: true }); };
    process.once('exit', removeDemoState);
    installFatalHandlers(app, log);
    try {
      await app.start();
    } catch (e) {
      log.fatal({ err: e }, 'start failed');
      await app.stop(0).catch(() => {});
      await demo?.close();
      return 1;
    }
    if (values.demo) {
      const a = app.proxy.address(sitesOf(cfg).frontends[0].name);
      process.stderr.write(`pairlb demo: balancer on http://${a?.host}:${a?.port}/ ` + (cfg.stats ? `stats on http://${cfg.stats.bind}/ ` : '') + '(Ctrl-C stops)\n');
      process.stderr.write(`pairlb demo: runtime state in ${app.state.file ? dirname(app.state.file) : '(none)'}` + (demoState ? ' (a temp dir, removed at exit; --state-dir DIR keeps it)' : '') + '\n');
    }
    const pidfile = values.pidfile;
    // Written synchronously just before the signal handlers are installed (same tick): whoever reads
    // the pid can already send SIGHUP without killing us with its default action.
    if (pidfile) {
      try { writePidfile(pidfile); } catch (e) {
        log.fatal({ err: e, pidfile }, 'cannot write the pid file');
        await app.stop(0).catch(() => {});
        await demo?.close();
        return 1;
      }
    }
    // systemd (Type=notify): serving now; WATCHDOG=1 only while this loop and every probe answer.
    const sd = new SdNotifier(log);
    if (sd.enabled) {
      const every = sd.startWatchdog(() => app.liveness);
      sd.ready(`serving ${sitesOf(app.cfg).frontends.length} frontend(s), role ${app.role}`);
      log.info({ mod: 'systemd', watchdog_ms: every, probes: app.liveness.map((p) => p.name) }, 'notified systemd: READY=1');
    }
    const exitCode = await new Promise<number>((resolveExit) => {
      let stopping = false;
      const stop = (sig: string) => {
        if (stopping) { log.warn({ sig }, 'second stop signal: exiting now'); resolveExit(1); return; }
        stopping = true;
        sd.stopping();
        log.info({ sig }, 'stopping');
        // Safety net: the proxy drains for at most timeouts.drain; a module that hangs in stop()
        // must not keep a stopping balancer alive until systemd's SIGKILL.
        const limit = Math.max(0, ...sitesOf(app.cfg).frontends.map((l) => l.timeouts.drain)) + STOP_GRACE_MS;
        setTimeout(() => { log.error({ sig, limit_ms: limit }, 'stop timed out: exiting now'); resolveExit(1); }, limit);
        app.stop().then(() => demo?.close()).then(() => resolveExit(0), (e) => { log.error({ err: e }, 'stop failed'); resolveExit(1); });
      };
      process.on('SIGTERM', () => stop('SIGTERM'));
      process.on('SIGINT', () => stop('SIGINT'));
      // `pairlb reload` waits for this file (next to the pid file) to say what the reload did.
      let reloadSeq = 0;
      const report = (r: Omit<ReloadReport, 'pid' | 'seq' | 'at'>) => {
        if (!pidfile) return;
        const body: ReloadReport = { pid: process.pid, seq: ++reloadSeq, at: new Date().toISOString(), ...r };
        try { writeAtomic(reloadResultFile(pidfile), JSON.stringify(body) + '\n'); } catch (e) { log.warn({ err: e }, 'cannot write the reload result file'); }
      };
      process.on('SIGHUP', () => {
        if (stopping) { log.warn('reload ignored: stopping'); report({ ok: false, reason: 'stopping', changes: [], restart: [] }); return; }
        let next: Config;
        try { next = loadConfigFile(file, (c) => preflight(c, { interfaces: false })); } catch (e) {
          const problems = e instanceof ConfigError ? e.problems : [{ path: '(file)', message: String(e) }];
          log.error({ mod: 'config', file, problems }, 'reload refused: invalid config; the running config stays');
          report({ ok: false, reason: 'invalid config: the running config stays', problems: e instanceof ConfigError ? e.message : String(e), changes: [], restart: [] });
          return;
        }
        sd.reloading();
        app.reload(next).then((r) => {
          // A reload overtaken by a newer one reports nothing: the newer one reports for both.
          if (r.reason !== 'superseded by a newer reload') report({ ok: r.applied, reason: r.reason, changes: r.changes, restart: r.restart });
        }, (e) => { log.error({ err: e }, 'reload failed'); report({ ok: false, reason: `reload failed: ${(e as Error).message}`, changes: [], restart: [] }); })
          .finally(() => sd.reloaded(`serving ${sitesOf(app.cfg).frontends.length} frontend(s), role ${app.role}`));
      });
      // logrotate's postrotate: reopen the access log file (SIGUSR1, as nginx does).
      process.on('SIGUSR1', () => { log.info('SIGUSR1: reopening log files'); app.proxy.access.reopen(); });
    });
    sd.close();
    if (pidfile) { removePidfile(pidfile); removeReloadResult(pidfile); }
    return exitCode;
  },
});

/**
 * An uncaught exception or an unhandled promise rejection leaves the process in a state nobody
 * planned for (Node's own default is to exit): it is logged with its stack and kind, the HA loop is
 * asked to give the VIP up (FAULT, so the peer claims at once; bounded), then we exit 1 and systemd
 * restarts us. Without this a crash logged a bare stack on stderr and left the peer to wait for
 * deadtime (and, with the loop in this process, the VIP to the watchdog).
 */
function installFatalHandlers(app: App, log: ReturnType<typeof createLogger>): void {
  let fatal = false;
  const onFatal = (kind: string, err: unknown): void => {
    if (fatal) return;
    fatal = true;
    log.fatal({ mod: 'process', kind, err }, `${kind}: exiting (the VIP is given up first)`);
    const exit = (): void => { try { log.flush(); } catch { /* exiting anyway */ } setTimeout(() => process.exit(1), 50); };
    setTimeout(exit, 2000).unref();
    const ha = app.modules.find((m) => m.name === 'ha') as { abandon?(reason: string): Promise<void> } | undefined;
    (ha?.abandon ? ha.abandon(`fatal ${kind} in the control plane`) : Promise.resolve()).then(exit, exit);
  };
  process.removeAllListeners('unhandledRejection'); // the pre-start one: this handler replaces it
  process.on('uncaughtException', (e) => onFatal('uncaught exception', e));
  process.on('unhandledRejection', (r) => onFatal('unhandled promise rejection', r));
}

/** Time a stop may take beyond the longest timeouts.drain (HA hand-over, module stops). */
const STOP_GRACE_MS = 10_000;

/** Written atomically (temp + rename) so `pairlb reload` never reads a half-written file. */
function writePidfile(file: string): void { writeAtomic(file, `${process.pid}\n`); }

function writeAtomic(file: string, text: string): void {
  writeFileSync(`${file}.tmp`, text);
  renameSync(`${file}.tmp`, file);
}

function removeReloadResult(pidfile: string): void {
  const f = reloadResultFile(pidfile);
  try { if ((JSON.parse(readFileSync(f, 'utf8')) as ReloadReport).pid === process.pid) unlinkSync(f); } catch { /* none, or not ours */ }
}

/** Removed only if it is still ours: a second instance may have replaced it. */
function removePidfile(file: string): void {
  try {
    if (readFileSync(file, 'utf8').trim() === String(process.pid)) unlinkSync(file);
  } catch { /* already gone */ }
}

