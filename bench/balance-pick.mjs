// Per-pick cost of the balancers (src/balance/), in-process, one core: `taskset -c 1 node bench/balance-pick.mjs` after `npm run build`.
// "before" is the pre-interface Routing.pick body (SmoothRoundRobin.pick directly), kept as the reference.
import { Routing } from '../dist/proxy/routing.js';
import { SmoothRoundRobin } from '../dist/balance/round-robin.js';
const mk = () => [1, 2].map((i) => ({ id: i, name: 'b' + i, weight: 1, maxconn: 0, counters: { cur: 0 } }));
const N = 5_000_000;
function bench(label, f) {
  for (let i = 0; i < 200_000; i++) f();
  let best = Infinity;
  for (let r = 0; r < 5; r++) { const t = process.hrtime.bigint(); for (let i = 0; i < N; i++) f(); best = Math.min(best, Number(process.hrtime.bigint() - t) / N); }
  console.log(label, best.toFixed(1), 'ns/pick');
}
const old = new SmoothRoundRobin(mk()); // the pre-change Routing.pick body: set.pick(tried) ?? undefined
bench('before: SmoothRoundRobin.pick (old Routing.pick)', () => old.pick(null) ?? undefined);
const r = new Routing(mk(), [], new Map(), { algorithm: 'roundrobin', hashType: 'map-based' });
bench('after:  Routing.pick roundrobin', () => r.pick(-1, null));
const lc = new Routing(mk(), [], new Map(), { algorithm: 'leastconn', hashType: 'map-based' });
bench('after:  Routing.pick leastconn', () => lc.pick(-1, null));
const h = new Routing(mk(), [], new Map(), { algorithm: 'source', hashType: 'consistent' });
let k = 12345;
bench('after:  Routing.pick source consistent', () => h.pick((k = (k * 1103515245 + 12345) >>> 0), null));
