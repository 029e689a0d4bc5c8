// The failover client, run inside the client namespace:
//   node failover-poller.mjs URL INTERVAL_MS TIMEOUT_MS MAX_MS "ip=label,ip=label"
// One request every INTERVAL_MS on a new connection (no keep-alive, no waiting for the previous
// one, as shared/testbed.md measures keepalived), each with its own TIMEOUT_MS. One JSON line per
// finished request: {s: sent, e: ended (wall-clock ms, fractional), ok, lb, err}.
// Stops on SIGTERM or after MAX_MS (bounded), after the requests in flight finished.
import http from 'node:http';

const [url, intervalS = '20', timeoutS = '1000', maxS = '120000', namesS = ''] = process.argv.slice(2);
const interval = Number(intervalS), timeout = Number(timeoutS), maxMs = Number(maxS);
const names = Object.fromEntries(namesS.split(',').filter(Boolean).map((kv) => kv.split('=')).map(([k, v]) => [k, v]));
const now = () => performance.timeOrigin + performance.now();
const t0 = now();
let inflight = 0, stopping = false;

function one() {
  const s = now();
  inflight++;
  let done = false;
  const finish = (ok, lb, err, be) => {
    if (done) return;
    done = true;
    inflight--;
    process.stdout.write(JSON.stringify({ s: +s.toFixed(1), e: +now().toFixed(1), ok, lb, be, err }) + '\n');
  };
  const req = http.get(url, { agent: false, headers: { connection: 'close' }, timeout }, (res) => {
    let body = '';
    res.setEncoding('utf8');
    res.on('data', (d) => { body += d; });
    res.on('end', () => {
      if (res.statusCode !== 200) return finish(false, undefined, `status ${res.statusCode}`);
      try { const j = JSON.parse(body); finish(true, names[j.peer?.replace(/^::ffff:/, '')] ?? j.peer, undefined, j.backend); } catch { finish(false, undefined, 'bad body'); }
    });
    res.on('error', (e) => finish(false, undefined, e.code ?? e.message));
  });
  req.on('timeout', () => { req.destroy(new Error('timeout')); });
  req.on('error', (e) => finish(false, undefined, e.code ?? e.message));
}

const timer = setInterval(() => {
  if (stopping || now() - t0 > maxMs) return stop();
  one();
}, interval);

function stop() {
  if (stopping) return;
  stopping = true;
  clearInterval(timer);
  const wait = setInterval(() => { if (inflight === 0) { clearInterval(wait); process.exit(0); } }, 10);
  setTimeout(() => process.exit(0), timeout + 500).unref();
}
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
