// wrk runner and output parser. wrk (Debian `wrk`) rather than autocannon: autocannon saturates its
// own core at ~15k req/s here, below the fastest proxy, which compresses every ratio (bench.md).
import { spawn } from 'node:child_process';

/** Parse a wrk duration ("812.00us", "1.23ms", "2.01s", "1.00m") into milliseconds. */
export function toMs(s) {
  const m = /^([\d.]+)(us|ms|s|m)$/.exec(s.trim());
  if (!m) return NaN;
  const v = Number(m[1]);
  return m[2] === 'us' ? v / 1000 : m[2] === 'ms' ? v : m[2] === 's' ? v * 1000 : v * 60_000;
}

/**
 * Parse `wrk --latency` output: requests/sec, total requests, p50/p99 latency in ms, socket errors
 * and non-2xx/3xx responses. Throws when the summary line is missing (wrk failed).
 */
export function parseWrk(out) {
  const rps = /Requests\/sec:\s+([\d.]+)/.exec(out);
  if (!rps) throw new Error(`unexpected wrk output:\n${out}`);
  const total = /(\d+) requests in ([\d.]+\w+),/.exec(out);
  const pct = (p) => {
    const m = new RegExp(`^\\s+${p}%\\s+([\\d.]+\\w+)\\s*$`, 'm').exec(out);
    return m ? toMs(m[1]) : NaN;
  };
  const sock = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(out);
  const non2xx = /Non-2xx or 3xx responses: (\d+)/.exec(out);
  return {
    rps: Number(rps[1]),
    requests: total ? Number(total[1]) : NaN,
    p50_ms: pct(50),
    p99_ms: pct(99),
    errors: {
      connect: sock ? Number(sock[1]) : 0,
      read: sock ? Number(sock[2]) : 0,
      write: sock ? Number(sock[3]) : 0,
      timeout: sock ? Number(sock[4]) : 0,
      non2xx: non2xx ? Number(non2xx[1]) : 0,
    },
  };
}

/**
 * Run `wrk -t1 -c<conns> -d<secs>s --latency [-H ...] url` pinned to `cpu`.
 * Resolves with the parsed result plus the raw output and the wrk PID (for CPU accounting).
 * `onStart(pid)` is called right after spawn.
 */
export function runWrk({ url, secs, conns = 64, headers = [], cpu = 0, onStart }) {
  const args = ['-c', String(cpu), 'wrk', '-t1', `-c${conns}`, `-d${secs}s`, '--latency', '--timeout', '5s'];
  // wrk drops a -H header that has no space after the colon (bench.md pitfall): keep "Name: value".
  for (const h of headers) args.push('-H', h);
  args.push(url);
  return new Promise((resolve, reject) => {
    const child = spawn('taskset', args, { stdio: ['ignore', 'pipe', 'pipe'] });
    onStart?.(child.pid);
    let out = '';
    let err = '';
    child.stdout.on('data', (d) => { out += d; });
    child.stderr.on('data', (d) => { err += d; });
    const guard = setTimeout(() => child.kill('SIGKILL'), (secs + 30) * 1000);
    child.on('error', (e) => { clearTimeout(guard); reject(e); });
    child.on('exit', (code) => {
      clearTimeout(guard);
      if (code !== 0) { reject(new Error(`wrk exited ${code}: ${err || out}`)); return; }
      try { resolve({ ...parseWrk(out), raw: out, pid: child.pid }); } catch (e) { reject(e); }
    });
  });
}
