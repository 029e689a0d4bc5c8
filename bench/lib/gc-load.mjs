// GC load for the HA noise bench (bench/ha-noise.mjs), loaded into pairlb with `node --import`:
// a ring of live objects that is continuously replaced, so that the heap keeps growing in old
// space and V8 runs full mark-compact collections on a large heap (stop-the-world pauses of tens
// to hundreds of ms on a loaded 2-core machine), as a proxy under heavy traffic does.
// GC_LOAD_MB (default 300) sets the retained size, GC_LOAD_RATE objects per 10 ms (default 40000).
const MB = Number(process.env.GC_LOAD_MB ?? 300);
const RATE = Number(process.env.GC_LOAD_RATE ?? 40000);
const SIZE = Math.floor((MB * 1024 * 1024) / 120); // ~120 bytes per entry
const ring = new Array(SIZE);
let i = 0;
const t = setInterval(() => {
  for (let k = 0; k < RATE; k++) { ring[i] = { n: i, s: 'x' + i, a: [i, i + 1] }; i = (i + 1) % SIZE; }
}, 10);
t.unref();
