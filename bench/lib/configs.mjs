// Config files for every target, generated into the run's temp dir. Every proxy gets the same
// work to do: two backends, round robin, keep-alive on both sides, X-Forwarded-For, no access log,
// no health checks (none of them checks, so none pays for it); the sticky variant inserts a cookie
// (HAProxy `cookie SERVERID insert indirect nocache`, and the same in pairlb).

/** The 100-byte body of the small response (exactly 100 bytes, checked at start). */
export const SMALL_BODY = 'pairlb bench: 100-byte response body from an nginx backend. '.padEnd(99, '.') + '\n';
export const LARGE_BYTES = 64 * 1024;

/** Client and upstream keep-alive limits high enough that nobody reconnects during a run
 * (nginx closes a keep-alive connection after 1000 requests by default; HAProxy never does). */
const KA_REQUESTS = 10_000_000;

function nginxCommon(dir, name, workers = 1) {
  // nginx opens its default error log before reading the config; `-e` (see nginxArgs) avoids that.
  return `daemon off;
master_process on;
worker_processes ${workers};
pid ${dir}/${name}.pid;
error_log ${dir}/${name}.error.log warn;
worker_rlimit_nofile 16384;
events { worker_connections 8192; }
`;
}

function nginxTemps(dir, name) {
  return ['client_body', 'proxy', 'fastcgi', 'uwsgi', 'scgi']
    .map((t) => `  ${t}_temp_path ${dir}/${name}.${t}_temp;`).join('\n');
}

/** One backend: nginx, one worker, `/` answers 100 bytes, `/large` a 64 KiB static file. */
export function nginxBackend(dir, name, port) {
  return `${nginxCommon(dir, name)}
http {
  access_log off;
  keepalive_requests ${KA_REQUESTS};
  keepalive_timeout 60s;
${nginxTemps(dir, name)}
  server {
    listen 127.0.0.1:${port} backlog=4096;
    default_type text/plain;
    location = /large { root ${dir}/www; try_files /large.bin =404; }
    location / { return 200 "${SMALL_BODY.replace(/\n$/, '\\n')}"; }
  }
}
`;
}

/**
 * nginx as the peer proxy: `workers` worker processes (default 1), upstream keep-alive pool,
 * X-Forwarded-For. One `server` per front end (see `fronts` below); without `fronts`, one plain
 * HTTP/1.1 server on `port`.
 *   front: { port, tls?: { chain, key }, h2?: boolean }  — `listen … ssl` with the certificate,
 *   `http2` on the listen line (nginx 1.22 syntax: ALPN h2 on a TLS listen, prior knowledge on a
 *   plain one).
 */
export function nginxProxy(dir, name, port, backends, workers = 1, fronts = [{ port }]) {
  const server = (f) => `  server {
    listen 127.0.0.1:${f.port}${f.tls ? ' ssl' : ''}${f.h2 ? ' http2' : ''} backlog=4096;
${f.tls ? `    ssl_certificate ${f.tls.chain};
    ssl_certificate_key ${f.tls.key};
    ssl_protocols TLSv1.2 TLSv1.3;
    ssl_session_cache shared:SSL:10m;
` : ''}    location / {
      proxy_pass http://be;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host $host;
      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
      # 64 KiB bodies: without bigger buffers nginx spools them to a temp file (bench.md pitfall).
      proxy_buffer_size 16k;
      proxy_buffers 16 16k;
      proxy_busy_buffers_size 32k;
    }
  }
`;
  return `${nginxCommon(dir, name, workers)}
http {
  access_log off;
  keepalive_requests ${KA_REQUESTS};
  keepalive_timeout 60s;
${nginxTemps(dir, name)}
  upstream be {
${backends.map((p) => `    server 127.0.0.1:${p};`).join('\n')}
    keepalive 128;
    keepalive_requests ${KA_REQUESTS};
  }
${fronts.map(server).join('')}}
`;
}

export function nginxArgs(dir, name) {
  return ['-p', dir, '-c', `${dir}/${name}.conf`, '-e', `${dir}/${name}.error.log`];
}

/**
 * HAProxy, nbthread `threads`, one `listen` section per front end, all on the same backends.
 *   front: { name, port, sticky?, tls?: { bundle }, alpn?, proto? }
 *   `tls` binds `ssl crt <bundle> alpn <alpn ?? http/1.1>`; `proto h2` is prior-knowledge h2c.
 * `maxconn` stays below the fd limit (HAProxy refuses more).
 */
export function haproxyConfig({ fronts, backends, maxconn, threads = 1 }) {
  const servers = (sticky) => backends.map((p, i) => `  server w${i + 1} 127.0.0.1:${p}${sticky ? ` cookie w${i + 1}` : ''}`).join('\n');
  const bind = (f) => `127.0.0.1:${f.port}${f.tls ? ` ssl crt ${f.tls.bundle} alpn ${f.alpn ?? 'http/1.1'}` : ''}${f.proto ? ` proto ${f.proto}` : ''}`;
  return `global
  nbthread ${threads}
  maxconn ${maxconn}

defaults
  mode http
  timeout connect 5s
  timeout client 30s
  timeout server 30s
  timeout http-keep-alive 30s
  option forwardfor
${fronts.map((f) => `
listen ${f.name}
  bind ${bind(f)}
  balance roundrobin
${f.sticky ? '  cookie SERVERID insert indirect nocache\n' : ''}${servers(f.sticky)}
`).join('')}`;
}

/** HAProxy with the two listen sections of `npm run bench`: plain round robin on `port`, sticky cookie on `stickyPort`. */
export function haproxy(port, stickyPort, backends, maxconn, threads = 1) {
  return haproxyConfig({ fronts: [{ name: 'plain', port }, { name: 'sticky', port: stickyPort, sticky: true }], backends, maxconn, threads });
}

/**
 * pairlb with one engine: the same two listen sections (plain and sticky) in one process, or one
 * listen section per entry of `fronts` ({ name, port, sticky?, tls?: { bundle }, extra? } — `extra`
 * is YAML lines added to that listen section, already indented by four spaces).
 * Access log off and level warn, so the figures measure proxying, not logging.
 * `statsBind` adds the stats section (stats page + /metrics) for the enabled-vs-disabled comparison.
 * `engine` undefined: no `engine:` key, i.e. the product's default (the workers targets).
 */
export function pairlbYaml({ engine, port, stickyPort, backends, stateDir, statsBind, workers, accessLog = false, fronts, node, unbounded = false }) {
  const be = (sticky) => backends.map((p, i) => `      - name: w${i + 1}
        address: 127.0.0.1:${p}
        check: false${sticky ? `\n        cookie: w${i + 1}` : ''}`).join('\n');
  const listen = ({ name, port: p, sticky, tls, extra }) => `  - name: ${name}
    bind: 127.0.0.1:${p}
    balance: roundrobin
${engine ? `    engine: ${engine}\n` : ''}    forwardfor:
      enabled: true
    timeouts:
      drain: 1s
${tls ? `    tls:
      certificates: [${tls.bundle}]
` : ''}${extra ?? ''}${sticky ? `    cookie:
      name: SERVERID
      mode: insert
      indirect: true
      nocache: true
` : ''}    backends:
${be(sticky)}
`;
  fronts ??= [{ name: 'plain', port }, ...(stickyPort ? [{ name: 'sticky', port: stickyPort, sticky: true }] : [])];
  return `# generated by bench/lib/configs.mjs
global:
  node: ${node ?? `bench-${engine ?? 'default'}${statsBind ? '-stats' : ''}`}
  state_dir: ${stateDir}
${workers !== undefined ? `  workers: ${workers}\n` : ''}${unbounded ? '  turn_budget: 0\n  accept_sockets: 1\n' : ''}  log:
    level: ${accessLog ? 'info' : 'warn'}
    access: ${accessLog ? 'json' : "'off'"}
listen:
${fronts.map(listen).join('')}${statsBind ? `stats:
  bind: ${statsBind}
` : ''}`;
}

/**
 * pairlb's own keys for an HTTP/2 front end (YAML lines for pairlbYaml's `extra`): `h2: true` on a
 * TLS bind (ALPN h2,http/1.1), `h2c: true` (prior knowledge) on a plain one; `more` is appended.
 */
export function pairlbH2Extra(kind, more = '') {
  return `    ${kind === 'tls' ? 'h2' : 'h2c'}: true\n${more}`;
}
