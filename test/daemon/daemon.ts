import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

/**
 * Runs the real `pairlb` CLI (dist/cli/main.js) as a child process, the way systemd does, and reads
 * its JSON log lines. Tests kill only the processes they started, by pid.
 */
export const ROOT = resolve(import.meta.dirname, '../..');
export const MAIN = join(ROOT, 'dist/cli/main.js');

function newestMtime(dir: string): number {
  let t = 0;
  for (const f of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, f.name);
    t = Math.max(t, f.isDirectory() ? newestMtime(p) : statSync(p).mtimeMs);
  }
  return t;
}

/**
 * Builds dist/ when a source file is newer (`npm test` builds first; `vitest run test/daemon` may
 * not). Test files run in parallel workers: one builds, the others wait on a lock directory.
 */
export function ensureBuilt(): void {
  const fresh = (): boolean => existsSync(MAIN) && statSync(MAIN).mtimeMs >= newestMtime(join(ROOT, 'src'));
  if (fresh()) return;
  const lock = join(tmpdir(), 'pairlb-test-build.lock');
  const end = Date.now() + 180_000;
  for (;;) {
    try { mkdirSync(lock); break; } catch {
      // Someone else builds; a lock older than 3 minutes is from a crashed run.
      try { if (Date.now() - statSync(lock).mtimeMs > 180_000) rmSync(lock, { recursive: true, force: true }); } catch { /* gone */ }
      if (Date.now() > end) throw new Error(`build lock ${lock} held for too long`);
      spawnSync('sleep', ['0.2']);
      if (!existsSync(lock)) return;
    }
  }
  try {
    const r = spawnSync(process.execPath, [join(ROOT, 'node_modules/typescript/bin/tsc'), '-p', join(ROOT, 'tsconfig.json')], { encoding: 'utf8', timeout: 120_000 });
    // tsc emits despite type errors (another helper's file mid-edit): only a missing build is fatal.
    if (r.status !== 0 && !existsSync(MAIN)) throw new Error(`tsc failed:\n${r.stdout}${r.stderr}`);
  } finally { rmSync(lock, { recursive: true, force: true }); }
}

/** Runs a CLI command to completion. */
export function cli(args: string[], timeout = 20_000): { code: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [MAIN, ...args], { encoding: 'utf8', timeout, cwd: ROOT });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** A TCP port that was free a moment ago (the daemon is a separate process: it cannot report port 0). */
export async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((ok) => s.listen(0, '127.0.0.1', () => ok()));
  const port = (s.address() as AddressInfo).port;
  await new Promise<void>((ok) => s.close(() => ok()));
  return port;
}

export function tempDir(prefix: string): string {
  return mkdtempSync(join(tmpdir(), `pairlb-${prefix}-`));
}

export type LogLine = Record<string, unknown> & { msg?: string; level?: number };

export class Daemon {
  readonly proc: ChildProcess;
  readonly logs: LogLine[] = [];
  /** stdout lines as written (JSON.parse would hide a duplicate key). */
  readonly rawLines: string[] = [];
  stderr = '';
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  exitedAt = 0;
  private waiters: { pred: (l: LogLine) => boolean; ok: (l: LogLine) => void }[] = [];
  private buf = '';

  /** `args` replaces the whole command line after main.js (to run a unit's ExecStart= verbatim). */
  constructor(readonly dir: string, readonly configFile: string, readonly pidfile: string, args?: string[]) {
    const argv = args ?? ['start', '-c', configFile, '--state-dir', join(dir, 'state'), '--pidfile', pidfile];
    this.proc = spawn(process.execPath, [MAIN, ...argv], { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
    this.proc.stdout!.setEncoding('utf8').on('data', (d: string) => this.onData(d));
    this.proc.stderr!.setEncoding('utf8').on('data', (d: string) => { this.stderr += d; });
    this.exited = new Promise((ok) => this.proc.once('exit', (code, signal) => { this.exitedAt = performance.now(); ok({ code, signal }); }));
  }

  get pid(): number { return this.proc.pid!; }

  private onData(d: string): void {
    this.buf += d;
    let i: number;
    while ((i = this.buf.indexOf('\n')) >= 0) {
      const line = this.buf.slice(0, i);
      this.buf = this.buf.slice(i + 1);
      this.rawLines.push(line);
      let l: LogLine;
      try { l = JSON.parse(line) as LogLine; } catch { l = { msg: line }; }
      this.logs.push(l);
      this.waiters = this.waiters.filter((w) => { if (w.pred(l)) { w.ok(l); return false; } return true; });
    }
  }

  /** Resolves with the first log line (already seen or future) matching pred; rejects after ms. */
  waitLog(pred: (l: LogLine) => boolean, ms = 10_000, from = 0): Promise<LogLine> {
    const seen = this.logs.slice(from).find(pred);
    if (seen) return Promise.resolve(seen);
    return new Promise((ok, fail) => {
      const t = setTimeout(() => fail(new Error(`no matching log line within ${ms} ms; last lines:\n${this.logs.slice(-8).map((x) => JSON.stringify(x)).join('\n')}\nstderr: ${this.stderr}`)), ms);
      this.waiters.push({ pred, ok: (l) => { clearTimeout(t); ok(l); } });
    });
  }

  signal(sig: NodeJS.Signals): void { if (this.proc.exitCode === null && this.proc.signalCode === null) process.kill(this.pid, sig); }

  /** Test teardown: SIGKILL our own child if it is still running. */
  async kill(): Promise<void> {
    if (this.proc.exitCode === null && this.proc.signalCode === null) this.proc.kill('SIGKILL');
    await this.exited;
  }
}

/** Starts the daemon and waits until it logs "pairlb started". */
export async function startDaemon(dir: string, yaml: string): Promise<Daemon> {
  const file = join(dir, 'pairlb.yaml');
  writeFileSync(file, yaml);
  const d = new Daemon(dir, file, join(dir, 'pairlb.pid'));
  try {
    await Promise.race([
      d.waitLog((l) => l.msg === 'pairlb started', 15_000),
      d.exited.then((e) => { throw new Error(`pairlb exited early (${e.code}/${e.signal}): ${d.stderr}\n${d.logs.map((x) => JSON.stringify(x)).join('\n')}`); }),
    ]);
  } catch (e) { await d.kill(); throw e; }
  return d;
}

export function cleanup(dir: string): void { rmSync(dir, { recursive: true, force: true }); }
