import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

export const CLI = resolve(import.meta.dirname, '../../dist/cli/main.js');

/**
 * Run the real `pairlb start` as a child process (built dist/), wait for 'pairlb started', and
 * return the bound addresses it logged. Logs are kept for assertions.
 */
export interface PairlbProc {
  child: ChildProcess;
  pid: number;
  dir: string;
  cfgFile: string;
  listens: Record<string, string>;
  logs: Record<string, unknown>[];
  port(listen?: string): number;
  rssKb(): number;
  stop(signal?: NodeJS.Signals): Promise<number | null>;
}

/**
 * `startMs`: how long to wait for 'pairlb started' (default 15 s; worker threads load every module
 * again). `netns`: run it in that network namespace (`ip netns exec` execs node: same pid).
 */
export async function startPairlb(yaml: string, opts: { dir?: string; args?: string[]; env?: Record<string, string>; nofile?: number; startMs?: number; netns?: string } = {}): Promise<PairlbProc> {
  const dir = opts.dir ?? mkdtempSync(join(tmpdir(), 'pairlb-test-'));
  const cfgFile = join(dir, 'pairlb.yaml');
  writeFileSync(cfgFile, yaml);
  const argv = [CLI, 'start', '-c', cfgFile, '--state-dir', join(dir, 'state'), ...(opts.args ?? [])];
  // prlimit execs node: the child's pid is pairlb's.
  const [cmd, args] = opts.nofile ? ['prlimit', [`--nofile=${opts.nofile}`, '--', process.execPath, ...argv]]
    : opts.netns ? ['ip', ['netns', 'exec', opts.netns, process.execPath, ...argv]] : [process.execPath, argv];
  const child = spawn(cmd, args, {
    stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...opts.env },
  });
  const logs: Record<string, unknown>[] = [];
  let buf = '';
  let stderr = '';
  child.stderr!.on('data', (d) => { stderr += d; });
  const started = new Promise<Record<string, string>>((ok, fail) => {
    const ms = opts.startMs ?? 15_000;
    // A daemon that did not start in time is killed: the failed test must not leave it running.
    const t = setTimeout(() => { child.kill('SIGKILL'); fail(new Error(`pairlb did not start in ${ms / 1000} s; stderr: ${stderr}; logs: ${JSON.stringify(logs.slice(-5))}`)); }, ms);
    child.stdout!.on('data', (d) => {
      buf += d;
      let i;
      while ((i = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, i); buf = buf.slice(i + 1);
        try {
          const j = JSON.parse(line);
          logs.push(j);
          if (j.msg === 'pairlb started') { clearTimeout(t); ok(j.listens); }
        } catch { logs.push({ raw: line }); }
      }
    });
    child.once('exit', (code) => { clearTimeout(t); fail(new Error(`pairlb exited with ${code}; stderr: ${stderr}`)); });
  });
  const listens = await started;
  const exited = new Promise<number | null>((ok) => child.once('exit', (code) => ok(code)));
  return {
    child, pid: child.pid!, dir, cfgFile, listens, logs,
    port: (listen) => Number((listen ? listens[listen] : Object.values(listens)[0]).split(':').pop()),
    rssKb: () => Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${child.pid}/status`, 'utf8'))![1]),
    stop: async (signal = 'SIGTERM') => {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      const code = await exited;
      if (!opts.dir) rmSync(dir, { recursive: true, force: true });
      return code;
    },
  };
}
