// TLS for the bench's front ends: one ECDSA P-256 certificate (made here with openssl) that every
// target serves (bench.md: same certificate for every target), and readiness waits that speak TLS
// (and HTTP/2) instead of plain HTTP.
import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { connect as tlsConnect } from 'node:tls';
import { connect as h2Connect } from 'node:http2';
import { setTimeout as sleep } from 'node:timers/promises';

/**
 * A CA and a server certificate for www.bench.test and 127.0.0.1, ECDSA P-256, in `dir`.
 * Returns { chain (cert + CA, PEM), key, bundle (chain + key: HAProxy's `crt`, pairlb's
 * `certificates`), ca }.
 */
export function certs(dir) {
  const o = (args) => execFileSync('openssl', args, { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] });
  o(['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', 'ca.key', '-out', 'ca.crt', '-days', '30', '-subj', '/CN=bench CA']);
  o(['req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', 'www.key', '-out', 'www.csr', '-subj', '/CN=www.bench.test']);
  writeFileSync(join(dir, 'www.ext'), 'subjectAltName=DNS:www.bench.test,IP:127.0.0.1\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n');
  o(['x509', '-req', '-in', 'www.csr', '-CA', 'ca.crt', '-CAkey', 'ca.key', '-set_serial', '2', '-days', '30', '-extfile', 'www.ext', '-out', 'www.crt']);
  const chain = readFileSync(join(dir, 'www.crt'), 'utf8') + readFileSync(join(dir, 'ca.crt'), 'utf8');
  writeFileSync(join(dir, 'chain.pem'), chain);
  writeFileSync(join(dir, 'bundle.pem'), chain + readFileSync(join(dir, 'www.key'), 'utf8'));
  return { chain: join(dir, 'chain.pem'), key: join(dir, 'www.key'), bundle: join(dir, 'bundle.pem'), ca: join(dir, 'ca.crt') };
}

/** One TLS handshake to 127.0.0.1:port; resolves with the ALPN protocol chosen (false when none), rejects on failure. */
export function tlsAlpn(port, alpn = ['http/1.1']) {
  return new Promise((resolve, reject) => {
    const s = tlsConnect({ port, host: '127.0.0.1', rejectUnauthorized: false, ALPNProtocols: alpn }, () => { const p = s.alpnProtocol; s.destroy(); resolve(p); });
    s.setTimeout(2000, () => { s.destroy(); reject(new Error('TLS handshake timeout')); });
    s.on('error', reject);
  });
}

/**
 * One HTTP/2 GET `path` (TLS with ALPN h2 when `tls`, else prior knowledge); resolves with
 * { status, body, alpn } or rejects. A readiness probe and a sanity check of what the bench measures.
 */
export function h2Get(port, { tls = true, path = '/', timeoutMs = 3000 } = {}) {
  return new Promise((resolve, reject) => {
    const url = `${tls ? 'https' : 'http'}://127.0.0.1:${port}`;
    const s = h2Connect(url, tls ? { rejectUnauthorized: false } : {});
    const guard = setTimeout(() => { s.destroy(); reject(new Error('h2 GET timeout')); }, timeoutMs);
    const fail = (e) => { clearTimeout(guard); s.destroy(); reject(e); };
    s.on('error', fail);
    const req = s.request({ ':path': path });
    let status = 0;
    const chunks = [];
    req.on('response', (h) => { status = h[':status']; });
    req.on('data', (d) => chunks.push(d));
    req.on('error', fail);
    req.on('end', () => {
      clearTimeout(guard);
      const alpn = s.alpnProtocol;
      s.close();
      resolve({ status, body: Buffer.concat(chunks), alpn });
    });
  });
}

/**
 * Wait until `probe()` resolves (bounded by `ms`); fails at once when the daemon exits.
 * Returns the probe's value.
 */
export async function waitFor(probe, handle, what, ms = 15000) {
  const until = Date.now() + ms;
  let last;
  for (;;) {
    if (handle?.exited) throw new Error(`${handle.name} exited (${handle.exitCode})`);
    try { return await probe(); } catch (e) { last = e; }
    if (Date.now() > until) throw new Error(`${handle?.name ?? '?'}: ${what} not ready within ${ms} ms (last: ${last?.message ?? last})`);
    await sleep(100);
  }
}

/** Wait until port answers a TLS handshake. */
export function waitTls(port, handle, ms = 15000) {
  return waitFor(() => tlsAlpn(port), handle, `TLS on ${port}`, ms);
}
