// Starting the backends and every target of the bench, in one temp dir, all on 127.0.0.1.
import { mkdirSync, openSync, writeFileSync, chmodSync, readFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import * as cfg from './configs.mjs';
import { freePort, startPinned, waitHttp, processTree, httpGet } from './procs.mjs';
import { h2Get, tlsAlpn, waitFor } from './tls.mjs';

export const TARGET_NAMES = ['pairlb', 'pairlb-native', 'http-proxy', 'haproxy', 'nginx', 'direct',
  // global.workers 1 and 2 (access log off, and the default json access log on), beside HAProxy
  // nbthread 2 and nginx worker_processes 2. Two-thread targets get both CPUs (see cpusOf).
  'pairlb-w1', 'pairlb-w2', 'pairlb-w1-log', 'pairlb-w2-log', 'haproxy-2', 'nginx-2'];
/**
 * The workers targets run the product's default engine (native since 2026-12-01); opt-in: the same
 * with the access log and `engine: undici`, for the engine comparison.
 */
export const ENGINE_TARGETS = ['pairlb-undici-w1-log', 'pairlb-undici-w2-log'];

/** Targets that run on two threads/processes: pinned to both CPUs, shared with wrk and the backends. */
export const MULTI = new Set(['pairlb-w2', 'pairlb-w2-log', 'pairlb-undici-w2-log', 'haproxy-2', 'nginx-2']);
/** Opt-in reference proxies (bench/ref/): design ceilings to compare pairlb's overhead against. */
export const REF_TARGETS = ['ref-undici', 'ref-llhttp', 'ref-lean', ...ENGINE_TARGETS,
  // pairlb as before issue 12's accept fairness (turn_budget 0, accept_sockets 1): a same-run A/B.
  'pairlb-unbounded'];

/** Two nginx backends (one worker each) pinned to the client CPU. Returns their ports and handles. */
export async function startBackends(dir, bins, cpu) {
  mkdirSync(join(dir, 'www'), { recursive: true });
  // Incompressible-looking, fixed content: 64 KiB of a repeated line (nginx serves it with sendfile).
  const line = 'pairlb bench 64 KiB body line..\n';
  writeFileSync(join(dir, 'www', 'large.bin'), line.repeat(cfg.LARGE_BYTES / line.length));
  chmodSync(dir, 0o755); chmodSync(join(dir, 'www'), 0o755); chmodSync(join(dir, 'www', 'large.bin'), 0o644);
  const out = [];
  for (const name of ['backend1', 'backend2']) {
    const port = await freePort();
    writeFileSync(join(dir, `${name}.conf`), cfg.nginxBackend(dir, name, port));
    const h = startPinned(name, cpu, bins.nginx, cfg.nginxArgs(dir, name), { logFd: openSync(join(dir, `${name}.out`), 'a') });
    out.push({ name, port, handle: h });
  }
  for (const b of out) await waitHttp(b.port, { handle: b.handle });
  const small = await httpGet(out[0].port, '/');
  const large = await httpGet(out[0].port, '/large');
  if (small.body.length !== 100) throw new Error(`backend small body is ${small.body.length} bytes, expected 100`);
  if (large.body.length !== cfg.LARGE_BYTES) throw new Error(`backend /large is ${large.body.length} bytes, expected ${cfg.LARGE_BYTES}`);
  return out;
}

/**
 * Start one target. Each returns { name, port, stickyPort?, statsPort?, ports?, handle?, pids() }.
 * `direct` starts nothing: it is wrk straight to backend 1.
 *
 * `fronts` replaces the default front ends (plain + sticky) with one listen section per entry,
 * `ports[front.name]` its port:
 *   { name, tls?: certs() of lib/tls.mjs, h2?: boolean, extra?: pairlb YAML lines }
 *   tls + h2: ALPN h2,http/1.1 (HAProxy `alpn h2,http/1.1`, nginx `listen … ssl http2`);
 *   h2 without tls: prior-knowledge h2c (HAProxy `proto h2`, nginx `listen … http2`);
 *   `extra` carries pairlb's own keys for that front (its h2 switches), so the caller owns them.
 * Each front is waited for with its own protocol (an HTTP/2 GET answered 200 for h2 fronts).
 */
export async function startTarget(name, { dir, bins, cpu, pin, backends, maxconn, root, nodeFlags = [], stats = false, single = false, profileDir, fronts, altRoot }) {
  const bports = backends.map((b) => b.port);
  const log = (n) => openSync(join(dir, `${n}.out`), 'a');
  if (name === 'direct') return { name, port: bports[0], pids: () => [] };
  // `pairlb-w1@b`: the same pairlb target run from another checkout (`altRoot`, its dist/), for an
  // A/B of two builds in one run (bench/h2.mjs --compare).
  const kind = name.replace(/@\w+$/, '');
  if (kind !== name) { if (!altRoot) throw new Error(`${name}: no altRoot for the @ variant`); root = altRoot; }
  // `pin`: these CPUs whatever the target (bench/threads.mjs --cpus, for diagnosis).
  if (pin !== undefined) cpu = pin;
  else if (MULTI.has(kind) && cpu !== undefined) cpu = '0,1';
  const fp = fronts ? await Promise.all(fronts.map(async (f) => ({ ...f, port: await freePort() }))) : undefined;
  const ports = fp ? Object.fromEntries(fp.map((f) => [f.name, f.port])) : undefined;
  const ready = async (port, handle) => {
    if (!fp) return waitHttp(port, { handle });
    for (const f of fp) {
      if (f.h2) {
        const r = await waitFor(() => h2Get(f.port, { tls: !!f.tls }), handle, `HTTP/2 on ${f.port}`);
        if (r.status !== 200) throw new Error(`HTTP/2 GET / on ${f.name} answered ${r.status}`);
        if (f.tls && r.alpn !== 'h2') throw new Error(`ALPN on ${f.name} chose ${r.alpn}, not h2`);
      } else if (f.tls) await waitFor(() => tlsAlpn(f.port), handle, `TLS on ${f.port}`);
      else await waitHttp(f.port, { handle });
    }
  };
  if (name === 'haproxy' || name === 'haproxy-2') {
    const port = fp ? fp[0].port : await freePort(); const stickyPort = fp ? undefined : await freePort();
    const threads = name === 'haproxy-2' ? 2 : 1;
    writeFileSync(join(dir, `${name}.cfg`), fp
      ? cfg.haproxyConfig({ fronts: fp.map((f) => ({ name: f.name, port: f.port, tls: f.tls, alpn: f.tls ? (f.h2 ? 'h2,http/1.1' : 'http/1.1') : undefined, proto: !f.tls && f.h2 ? 'h2' : undefined })), backends: bports, maxconn, threads })
      : cfg.haproxy(port, stickyPort, bports, maxconn, threads));
    const handle = startPinned(name, cpu, bins.haproxy, ['-db', '-f', join(dir, `${name}.cfg`)], { logFd: log(name) });
    await ready(port, handle).catch(async (e) => { await handle.stop(); throw withLog(e, dir, name); });
    return { name, port, stickyPort, ports, handle, pids: () => [handle.pid] };
  }
  if (name === 'nginx' || name === 'nginx-2') {
    const port = fp ? fp[0].port : await freePort();
    const conf = name === 'nginx' ? 'nginx-proxy' : 'nginx-proxy-2';
    writeFileSync(join(dir, `${conf}.conf`), cfg.nginxProxy(dir, conf, port, bports, name === 'nginx-2' ? 2 : 1, fp ?? [{ port }]));
    const handle = startPinned(name, cpu, bins.nginx, cfg.nginxArgs(dir, conf), { logFd: log(name) });
    await ready(port, handle).catch(async (e) => { await handle.stop(); throw withLog(e, dir, name); });
    return { name, port, ports, handle, pids: () => processTree(handle.pid) };
  }
  if (name === 'ref-undici' || name === 'ref-llhttp' || name === 'ref-lean' || name === 'http-proxy') {
    const port = await freePort();
    const file = join(root, 'bench', 'ref', name === 'ref-undici' ? 'undici-dispatch.mjs' : name === 'ref-llhttp' ? 'llhttp-upstream.mjs' : name === 'ref-lean' ? 'ref-lean.mjs' : 'http-proxy.mjs');
    const handle = startPinned(name, cpu, process.execPath, [...nodeFlags, file, String(port), ...bports.map(String)], { logFd: log(name) });
    await waitHttp(port, { handle }).catch((e) => { throw withLog(e, dir, name); });
    return { name, port, handle, pids: () => processTree(handle.pid) };
  }
  // pairlb (undici), pairlb-native, pairlb-stats and its twin pairlb-nostats: one node process each.
  const wm = /^pairlb(-undici)?-w(\d)(-log)?$/.exec(kind);
  // pairlb and pairlb-stats/-nostats: undici (issue 2's figures); pairlb-wN: the default engine.
  const engine = kind === 'pairlb-native' ? 'native' : wm && !wm[1] ? undefined : 'undici';
  const main = join(root, 'dist', 'cli', 'main.js');
  if (!existsSync(main)) throw new Error(`${main} is missing: run \`npm ci\` (or \`npm run build\`) at the top level`);
  const port = fp ? fp[0].port : await freePort(); const stickyPort = fp || stats || single ? undefined : await freePort();
  const statsPort = stats ? await freePort() : undefined;
  const stateDir = join(dir, `${name}.state`);
  mkdirSync(stateDir, { recursive: true });
  const yamlFile = join(dir, `${name}.yaml`);
  writeFileSync(yamlFile, cfg.pairlbYaml({ engine, port, stickyPort, backends: bports, stateDir, statsBind: statsPort ? `127.0.0.1:${statsPort}` : undefined, workers: wm ? Number(wm[2]) : undefined, accessLog: !!wm?.[3], unbounded: kind === 'pairlb-unbounded', node: fp ? `bench-${name.replace("@", "-")}` : undefined,
    fronts: fp?.map((f) => ({ name: f.name, port: f.port, tls: f.tls, extra: f.extra })) }));
  const flags = [...nodeFlags];
  if (profileDir) flags.push('--cpu-prof', '--cpu-prof-dir', profileDir);
  const handle = startPinned(name, cpu, process.execPath, [...flags, main, 'start', '-c', yamlFile, '--state-dir', stateDir], { logFd: log(name) });
  await ready(port, handle).catch(async (e) => { await handle.stop(); throw withLog(e, dir, name); });
  return { name, port, stickyPort, statsPort, ports, handle, pids: () => processTree(handle.pid) };
}

function withLog(e, dir, name) {
  let tail = '';
  try { tail = readFileSync(join(dir, `${name}.out`), 'utf8').trim().split('\n').slice(-8).join('\n'); } catch { /* none */ }
  return new Error(`${name}: ${e.message}${tail ? `\n  log (${join(dir, `${name}.out`)}):\n    ${tail.replace(/\n/g, '\n    ')}` : ''}`);
}
