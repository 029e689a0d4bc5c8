// New-connection latency under load (issue 12): while wrk saturates a target, open a new TCP
// connection every `everyMs`, send one GET and time connect → first response byte. A proxy that
// lets busy connections starve accept or the first read shows it here (HAProxy bounds work per
// loop turn with tune.maxaccept / tune.maxpollevents).
import { connect } from 'node:net';

export function startNewConnProbe(port, { everyMs = 20, timeoutMs = 5000 } = {}) {
  const samples = [];
  let timeouts = 0, errors = 0, pending = 0;
  const one = () => {
    const t0 = performance.now();
    pending++;
    const s = connect(port, '127.0.0.1');
    let done = false;
    const end = (ok) => {
      if (done) return;
      done = true; pending--;
      clearTimeout(timer);
      if (ok) samples.push(performance.now() - t0);
      s.destroy();
    };
    const timer = setTimeout(() => { timeouts++; end(false); }, timeoutMs);
    s.on('connect', () => s.write('GET / HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n'));
    s.once('data', () => end(true));
    s.on('error', () => { errors++; end(false); });
  };
  const iv = setInterval(one, everyMs);
  return {
    async stop() {
      clearInterval(iv);
      const until = Date.now() + timeoutMs + 500;
      while (pending > 0 && Date.now() < until) await new Promise((r) => setTimeout(r, 20));
      const xs = [...samples].sort((a, b) => a - b);
      const q = (p) => (xs.length ? xs[Math.min(xs.length - 1, Math.floor(p * xs.length))] : NaN);
      return { n: xs.length, p50_ms: q(0.5), p90_ms: q(0.9), p99_ms: q(0.99), max_ms: xs.length ? xs[xs.length - 1] : NaN, timeouts, errors };
    },
  };
}
