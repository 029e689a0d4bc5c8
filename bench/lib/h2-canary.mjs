// A well-behaved HTTP/2 client in its own process (so an attacker in the bench's process cannot
// delay it): one GET / every 10 ms on one connection to 127.0.0.1:<port>, h2c. The parent (fork,
// IPC) sends 'mark' to start a measured window and 'stop' to end it; the child answers
// { lat: [ms…], fail } for the window, then exits. Bounded: at most 100,000 requests, 10 minutes.
import http2 from 'node:http2';

const port = Number(process.argv[2]);
const client = http2.connect(`http://127.0.0.1:${port}`);
client.on('error', () => {});
let lat = [];
let fail = 0;
let stopped = false;
const end = Date.now() + 600_000;

function one() {
  return new Promise((resolve) => {
    const t0 = performance.now();
    const r = client.request({ ':path': '/' });
    r.setTimeout(5000, () => r.close());
    r.on('response', (h) => { if (h[':status'] !== 200) fail++; });
    r.on('error', () => {});
    r.on('close', () => { if (r.rstCode === 0) lat.push(performance.now() - t0); else fail++; resolve(); });
    r.resume();
  });
}

process.on('message', (m) => {
  if (m === 'mark') { lat = []; fail = 0; }
  if (m === 'stop') { stopped = true; process.send({ lat, fail }, () => { client.close(); process.exit(0); }); }
});
process.send('ready');
for (let i = 0; i < 100_000 && !stopped && Date.now() < end; i++) {
  await one();
  await new Promise((r) => setTimeout(r, 10));
}
