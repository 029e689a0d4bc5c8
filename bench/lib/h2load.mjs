// h2load runner and output parser (Debian nghttp2-client). h2load rather than wrk for HTTP/2: wrk
// speaks HTTP/1.1 only; h2load multiplexes `-m` streams on each of `-c` connections.
import { spawn } from 'node:child_process';

/**
 * Parse h2load's summary: requests done/succeeded/failed/errored/timeout, 2xx and non-2xx
 * counts, the negotiated application protocol, the duration of the measured part. Throws when the
 * summary is missing (h2load failed).
 */
export function parseH2load(out) {
  const fin = /finished in ([\d.]+)(s|ms), ([\d.]+) req\/s/.exec(out);
  const req = /requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, (\d+) failed, (\d+) errored, (\d+) timeout/.exec(out);
  if (!fin || !req) throw new Error(`unexpected h2load output:\n${out.slice(-1500)}`);
  const codes = /status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx/.exec(out);
  const proto = /Application protocol: (\S+)/.exec(out);
  const secs = Number(fin[1]) / (fin[2] === 'ms' ? 1000 : 1);
  const n = (i) => Number(req[i]);
  return {
    secs,
    rps: Number(fin[3]),
    done: n(3),
    succeeded: n(4),
    failed: n(5),
    errored: n(6),
    timeout: n(7),
    ok2xx: codes ? Number(codes[1]) : 0,
    non2xx: codes ? Number(codes[2]) + Number(codes[3]) + Number(codes[4]) : 0,
    protocol: proto ? proto[1] : '?',
  };
}

/**
 * `h2load -t1 -c<conns> -m<streams> (-n<requests> | -D<secs>)` pinned to `cpu`, on `url` (https:
 * ALPN h2; http: prior-knowledge h2c). Resolves with parseH2load's result and the raw output.
 * Prefer `requests`: at the end of a `-D` run h2load sends GOAWAY with up to conns × streams
 * requests in flight and waits for the server to close each connection; pairlb over TLS sometimes
 * keeps one open (docs/http2.md "Performance"), and h2load then never prints its summary.
 * `secs` still bounds the run (killed after secs + 30 s).
 */
export function runH2load({ bin = 'h2load', url, secs, requests, conns = 10, streams = 100, warmup = 0, cpu = 0 }) {
  const args = ['-c', String(cpu), bin, '-t1', `-c${conns}`, `-m${streams}`, requests ? `-n${requests}` : `-D${secs}`];
  if (warmup > 0) args.push(`--warm-up-time=${warmup}`);
  args.push(url);
  return new Promise((resolve, reject) => {
    const child = spawn('taskset', args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d) => { out += d; });
    child.stderr.on('data', (d) => { out += d; });
    const guard = setTimeout(() => child.kill('SIGKILL'), (secs + warmup + 30) * 1000);
    child.on('error', (e) => { clearTimeout(guard); reject(e); });
    child.on('close', () => {
      clearTimeout(guard);
      try { resolve({ ...parseH2load(out), raw: out }); } catch (e) { reject(e); }
    });
  });
}
