import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync, existsSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { ensurePackages } from '../helpers/sys.js';
import { startBackend, type TestBackend } from '../helpers/backend.js';
import { Daemon, MAIN, ROOT, cleanup, ensureBuilt, freePort, tempDir } from './daemon.js';

/**
 * The systemd files in systemd/: `systemd-analyze verify` (and `security --offline`) on the unit,
 * negative controls proving that the check catches a broken unit, the unit's commands run against
 * the real CLI, sysusers/tmpfiles applied to a scratch root, and the sysctl drop-in applied in a
 * network namespace of our own (never the host's).
 *
 * verify without a running systemd: it works on a unit file given by path (`--man=no` skips the man
 * page lookup of Documentation=); it exits 0 on mere warnings (unknown key, unparsable value), so a
 * unit passes only with exit 0 AND no output. It also checks that every Exec binary exists: the
 * temp copy points ExecStart at node (installed pairlb lives in /usr/local/bin on a real host).
 * What verify does NOT catch (systemd 252): misspelled capability names (silently ignored) and
 * missing ExecReload binaries; the settings test below pins the capability names exactly instead.
 */

const UNIT = readFileSync(join(ROOT, 'systemd/pairlb.service'), 'utf8');
const SYSCTL = join(ROOT, 'systemd/99-pairlb.conf');
const INSTALLED = '/usr/local/bin/pairlb';

function verify(unitText: string, dir: string, name = 'pairlb.service'): { ok: boolean; out: string } {
  const file = join(dir, name);
  writeFileSync(file, unitText.replaceAll(INSTALLED, process.execPath));
  const r = spawnSync('systemd-analyze', ['verify', '--man=no', file], { encoding: 'utf8', timeout: 30_000, cwd: dir });
  const out = (r.stdout + r.stderr).trim();
  return { ok: r.status === 0 && out === '', out: `exit ${r.status}: ${out}` };
}

/** [Section] → key → values (a key may repeat: ExecReload=, Documentation=). */
function parseUnit(text: string): Map<string, Map<string, string[]>> {
  const out = new Map<string, Map<string, string[]>>();
  let sec = '';
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (!line || line.startsWith('#') || line.startsWith(';')) continue;
    const m = /^\[(.+)\]$/.exec(line);
    if (m) { sec = m[1]; out.set(sec, out.get(sec) ?? new Map()); continue; }
    const i = line.indexOf('=');
    const k = line.slice(0, i), v = line.slice(i + 1);
    const s = out.get(sec)!;
    s.set(k, [...(s.get(k) ?? []), v]);
  }
  return out;
}

describe('systemd units', () => {
  let dir: string;
  const netns: string[] = [];
  const prefix = `plbsd${process.pid % 100000}`;

  beforeAll(() => {
    ensurePackages(['systemd', 'iproute2', 'procps', 'iputils-arping']);
    ensureBuilt();
    dir = tempDir('systemd');
    // Namespaces a crashed earlier run may have left behind (only ours: same prefix scheme).
    for (const n of execFileSync('ip', ['netns', 'list'], { encoding: 'utf8' }).split('\n')) {
      const name = n.split(' ')[0];
      if (name.startsWith(prefix)) spawnSync('ip', ['netns', 'del', name]);
    }
  });

  afterAll(() => {
    for (const n of netns) spawnSync('ip', ['netns', 'del', n]);
    cleanup(dir);
  });

  it('systemd-analyze verify accepts pairlb.service with no warning', () => {
    const r = verify(UNIT, dir);
    expect(r.out).toBe('exit 0: ');
    expect(r.ok).toBe(true);
  });

  it('the same check fails on a broken unit (negative controls)', () => {
    const broken: [string, string][] = [
      ['misspelled key', UNIT.replace('Restart=on-failure', 'Restrat=on-failure')],
      ['bad value', UNIT.replace('ProtectSystem=strict', 'ProtectSystem=sometimes')],
      ['bad time value', UNIT.replace('RestartSec=2s', 'RestartSec=2 parsecs')],
      ['missing ExecStartPre binary', UNIT.replace(`ExecStartPre=${INSTALLED}`, 'ExecStartPre=/nonexistent/pairlb')],
      ['no ExecStart', UNIT.replace(/^ExecStart=.*$/m, '')],
    ];
    for (const [what, text] of broken) {
      const r = verify(text, dir, `broken-${what.replace(/\W+/g, '-')}.service`);
      expect.soft(r.ok, `${what} should fail: ${r.out}`).toBe(false);
    }
  });

  it('systemd-analyze security --offline rates the sandboxing below 3.0 ("OK")', () => {
    const file = join(dir, 'pairlb.service');
    writeFileSync(file, UNIT.replaceAll(INSTALLED, process.execPath));
    const r = spawnSync('systemd-analyze', ['security', '--offline=true', '--threshold=30', '--no-pager', file], { encoding: 'utf8', timeout: 30_000 });
    const m = /Overall exposure level for pairlb\.service: (\d+\.\d+)/.exec(r.stdout);
    console.log(`systemd-analyze security: exposure ${m?.[1]}`);
    expect(m).not.toBeNull();
    expect(r.status).toBe(0);
    expect(Number(m![1])).toBeLessThan(3);
  });

  it('has the promised settings: own user, exactly three capabilities, sandbox, state dir, reload and restart', () => {
    const s = parseUnit(UNIT).get('Service')!;
    const one = (k: string) => { expect(s.get(k), k).toHaveLength(1); return s.get(k)![0]; };
    expect(one('User')).toBe('pairlb');
    // sd_notify from the main PID (src/ha/sd-notify.ts; test/daemon/sd-notify.test.ts).
    expect(one('Type')).toBe('notify');
    expect(one('NotifyAccess')).toBe('main');
    expect(one('WatchdogSec')).toMatch(/^\d+s$/);
    expect(one('CapabilityBoundingSet').split(/\s+/).sort()).toEqual(['CAP_NET_ADMIN', 'CAP_NET_BIND_SERVICE', 'CAP_NET_RAW']);
    expect(one('AmbientCapabilities').split(/\s+/).sort()).toEqual(['CAP_NET_ADMIN', 'CAP_NET_BIND_SERVICE', 'CAP_NET_RAW']);
    expect(one('NoNewPrivileges')).toBe('yes');
    expect(one('ProtectSystem')).toBe('strict');
    expect(one('StateDirectory')).toBe('pairlb');
    expect(one('Restart')).toBe('on-failure');
    expect(one('StandardOutput')).toBe('journal');
    expect(s.get('ExecReload')!.at(-1)).toBe('/bin/kill -HUP $MAINPID');
    expect(s.get('MemoryDenyWriteExecute')).toBeUndefined(); // V8 needs W+X pages
    // The stop timeout leaves room for the default drain (30 s).
    expect(Number(one('TimeoutStopSec').replace(/s$/, ''))).toBeGreaterThan(30);
    // The pid file `pairlb reload` reads lives in the RuntimeDirectory.
    expect(one('ExecStart')).toContain(`--pidfile /run/${one('RuntimeDirectory')}/pairlb.pid`);
    // ExecStartPre and ExecReload validate the very file ExecStart loads.
    const cfg = /-c (\S+)/.exec(one('ExecStart'))![1];
    expect(one('ExecStartPre')).toBe(`${INSTALLED} check -c ${cfg}`);
    expect(s.get('ExecReload')![0]).toBe(`${INSTALLED} check -c ${cfg}`);
  });

  it("the unit's own commands work with the real CLI: check, start, reload (kill -HUP $MAINPID), stop", async () => {
    const s = parseUnit(UNIT).get('Service')!;
    const work = join(dir, 'run');
    mkdirSync(work, { recursive: true });
    const backend: TestBackend = await startBackend('php-01');
    const port = await freePort();
    const cfg = join(work, 'pairlb.yaml');
    writeFileSync(cfg, `global: {node: unit-test, state_dir: "${join(work, 'state')}", log: {access: "off"}}\nlisten:\n  - name: www\n    bind: 127.0.0.1:${port}\n    backends: [{name: php-01, address: "${backend.address}"}]\n`);
    // Exec lines with the install paths mapped into the scratch dir.
    const local = (line: string) => line.replace('/etc/pairlb/pairlb.yaml', cfg).replace('/run/pairlb/', `${work}/`).split(' ');
    const pre = local(s.get('ExecStartPre')![0]);
    expect(pre[0]).toBe(INSTALLED);
    const r = spawnSync(process.execPath, [MAIN, ...pre.slice(1)], { encoding: 'utf8' });
    expect(r.stdout + r.stderr).toContain('Configuration file is valid');
    expect(r.status).toBe(0);

    const start = local(s.get('ExecStart')![0]);
    const argv = start.slice(1);
    expect(argv[0]).toBe('start');
    const pidfile = argv[argv.indexOf('--pidfile') + 1];
    const d = new Daemon(work, cfg, pidfile, argv);
    try {
      await d.waitLog((l) => l.msg === 'pairlb started', 15_000);
      expect(readFileSync(pidfile, 'utf8').trim()).toBe(String(d.pid));
      // ExecReload: check, then kill -HUP $MAINPID.
      const [chk, kill] = s.get('ExecReload')!.map(local);
      expect(spawnSync(process.execPath, [MAIN, ...chk.slice(1)]).status).toBe(0);
      const killArgs = kill.slice(1).map((a) => a.replace('$MAINPID', String(d.pid)));
      expect(spawnSync(kill[0], killArgs).status).toBe(0);
      await d.waitLog((l) => l.msg === 'config reloaded', 10_000);
      // An invalid file: ExecReload's check fails first (systemctl reload reports the failure and
      // never sends the signal), and the process keeps serving.
      const good = readFileSync(cfg, 'utf8');
      writeFileSync(cfg, good.replace(`bind: 127.0.0.1:${port}`, 'bind: nowhere'));
      const bad = spawnSync(process.execPath, [MAIN, ...chk.slice(1)], { encoding: 'utf8' });
      expect(bad.status).toBe(1);
      expect(bad.stderr).toContain('listen[0].bind: expected host:port');
      const res = await fetch(`http://127.0.0.1:${port}/`);
      expect(res.status).toBe(200);
      expect(await res.text()).toBe('php-01');
      writeFileSync(cfg, good);
      // KillSignal (SIGTERM): graceful stop, exit 0, so Restart=on-failure does not restart it.
      d.signal(s.get('KillSignal')![0] as NodeJS.Signals);
      expect(await d.exited).toEqual({ code: 0, signal: null });
      expect(existsSync(pidfile)).toBe(false);
    } finally {
      await d.kill();
      await backend.close();
    }
  });

  it("the unit's privileges (non-root user, ambient capabilities, bounding set, no new privileges) are enough for ip, arping and port 80, and needed", () => {
    // setpriv reproduces the unit's credentials (not its seccomp/namespace sandbox) in a namespace of
    // our own with a veth pair: what the HA module runs on takeover and release.
    const s = parseUnit(UNIT).get('Service')!;
    const caps = s.get('AmbientCapabilities')![0].split(/\s+/).map((c) => c.replace(/^CAP_/, '').toLowerCase());
    const bounding = s.get('CapabilityBoundingSet')![0].split(/\s+/).map((c) => c.replace(/^CAP_/, '').toLowerCase());
    expect(s.get('NoNewPrivileges')![0]).toBe('yes');
    const ns = `${prefix}c`;
    execFileSync('ip', ['netns', 'add', ns]); netns.push(ns);
    execFileSync('ip', ['-n', ns, 'link', 'add', 'pub0', 'type', 'veth', 'peer', 'name', 'pub1']);
    for (const dev of ['lo', 'pub0', 'pub1']) execFileSync('ip', ['-n', ns, 'link', 'set', dev, 'up']);
    const as = (withCaps: boolean, cmd: string[]) => spawnSync('ip', ['netns', 'exec', ns, 'setpriv', '--reuid=65534', '--regid=65534', '--clear-groups',
      `--inh-caps=-all${withCaps ? caps.map((c) => `,+${c}`).join('') : ''}`,
      ...(withCaps ? [`--ambient-caps=-all${caps.map((c) => `,+${c}`).join('')}`] : []),
      `--bounding-set=-all${withCaps ? bounding.map((c) => `,+${c}`).join('') : ''}`,
      '--no-new-privs', ...cmd], { encoding: 'utf8', timeout: 10_000 });
    const ok = (r: ReturnType<typeof as>) => `${r.status} ${r.stderr.trim()}`;
    expect(ok(as(true, ['ip', 'addr', 'add', '198.18.0.10/24', 'dev', 'pub0']))).toBe('0 ');
    expect(execFileSync('ip', ['-n', ns, '-br', 'addr', 'show', 'pub0'], { encoding: 'utf8' })).toContain('198.18.0.10/24');
    expect(as(true, ['arping', '-U', '-c', '1', '-I', 'pub0', '198.18.0.10']).status).toBe(0);
    expect(as(true, ['arping', '-D', '-c', '1', '-w', '1', '-I', 'pub0', '198.18.0.99']).status).toBe(0);
    const bind80 = "require('net').createServer().listen(80,'0.0.0.0',function(){console.log('bound');this.close()}).on('error',e=>console.log(e.code))";
    expect(as(true, [process.execPath, '-e', bind80]).stdout.trim()).toBe('bound');
    expect(ok(as(true, ['ip', 'addr', 'del', '198.18.0.10/24', 'dev', 'pub0']))).toBe('0 ');
    // Control: the same user without the capabilities can do none of it.
    expect(as(false, ['ip', 'addr', 'add', '198.18.0.10/24', 'dev', 'pub0']).status).not.toBe(0);
    expect(as(false, [process.execPath, '-e', bind80]).stdout.trim()).toBe('EACCES');
  });

  it('ExecStopPost (pairlb vip-release) removes a VIP left behind on the interface, and is a no-op when there is none', () => {
    // After a crash or a SIGKILL of the whole unit, a node without a running pairlb must not keep the
    // VIP: its kernel would answer ARP for it and the peer's probe would find it "in use".
    const s = parseUnit(UNIT).get('Service')!;
    const post = s.get('ExecStopPost')!;
    expect(post).toHaveLength(1);
    expect(post[0]).toBe(`-${INSTALLED} vip-release -c /etc/pairlb/pairlb.yaml`); // '-': a failure does not fail the stop
    const ns = `${prefix}v`;
    execFileSync('ip', ['netns', 'add', ns]); netns.push(ns);
    execFileSync('ip', ['-n', ns, 'link', 'add', 'pub0', 'type', 'veth', 'peer', 'name', 'pub1']);
    for (const dev of ['lo', 'pub0', 'pub1']) execFileSync('ip', ['-n', ns, 'link', 'set', dev, 'up']);
    execFileSync('ip', ['-n', ns, 'addr', 'add', '198.18.0.10/24', 'dev', 'pub0']);
    const cfg = join(dir, 'vip-release.yaml');
    writeFileSync(cfg, ['global: { node: lb1, log: { level: info } }', 'listen: [{ name: web, bind: "0.0.0.0:80" }]', 'ha:', '  key_file: /nonexistent/ha.key',
      '  node: { dedicated: "198.19.0.1:694" }', '  peer: { name: lb2, dedicated: "198.19.0.2:694" }', '  vip: { address: 198.18.0.10/24, interface: pub0 }', ''].join('\n'));
    const argv = post[0].slice(1).replace('/etc/pairlb/pairlb.yaml', cfg).split(' ').slice(1);
    const release = () => spawnSync('ip', ['netns', 'exec', ns, process.execPath, MAIN, ...argv], { encoding: 'utf8', timeout: 20_000 });
    const held = () => execFileSync('ip', ['-n', ns, '-br', 'addr', 'show', 'pub0'], { encoding: 'utf8' }).includes('198.18.0.10/24');
    expect(held()).toBe(true);
    let r = release();
    expect(`${r.status} ${r.stderr}`).toBe('0 ');
    expect(held()).toBe(false);
    r = release(); // nothing left to remove
    expect(`${r.status} ${r.stderr}`).toBe('0 ');
    expect(r.stdout).toContain('vip-release: VIP not on the interface');
  });

  it('sysusers and tmpfiles snippets apply to a scratch root', () => {
    const root = join(dir, 'root');
    mkdirSync(join(root, 'etc'), { recursive: true });
    execFileSync('systemd-sysusers', [`--root=${root}`, join(ROOT, 'systemd/pairlb.sysusers')], { stdio: 'pipe' });
    const passwd = readFileSync(join(root, 'etc/passwd'), 'utf8');
    expect(passwd).toMatch(/^pairlb:x:\d+:\d+:pairlb load balancer:\/var\/lib\/pairlb:\/usr\/sbin\/nologin$/m);
    const gid = Number(/^pairlb:x:(\d+):/m.exec(readFileSync(join(root, 'etc/group'), 'utf8'))![1]);
    execFileSync('systemd-tmpfiles', ['--create', `--root=${root}`, join(ROOT, 'systemd/pairlb.tmpfiles')], { stdio: 'pipe' });
    const st = statSync(join(root, 'etc/pairlb'));
    expect(st.mode & 0o777).toBe(0o750);
    expect(st.gid).toBe(gid);
  });

  it('the sysctl drop-in applies in a fresh network namespace and lets a listener bind a VIP it does not hold', () => {
    const ns = `${prefix}a`, bare = `${prefix}b`;
    for (const n of [ns, bare]) { execFileSync('ip', ['netns', 'add', n]); netns.push(n); execFileSync('ip', ['-n', n, 'link', 'set', 'lo', 'up']); }
    const r = spawnSync('ip', ['netns', 'exec', ns, 'sysctl', '-p', SYSCTL], { encoding: 'utf8' });
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    // Every key of the file took its value.
    const wanted = readFileSync(SYSCTL, 'utf8').split('\n').map((l) => l.trim()).filter((l) => l && !l.startsWith('#'))
      .map((l) => l.split('=').map((x) => x.trim()));
    expect(wanted.length).toBeGreaterThanOrEqual(3);
    for (const [k, v] of wanted) {
      const got = execFileSync('ip', ['netns', 'exec', ns, 'sysctl', '-n', k], { encoding: 'utf8' }).trim().replace(/\s+/g, ' ');
      expect(got, k).toBe(v.replace(/\s+/g, ' '));
    }
    // What it is for: the backup listens on the VIP before it holds it (198.18.0.0/15, test range).
    const bind = (n: string) => spawnSync('ip', ['netns', 'exec', n, process.execPath, '-e',
      "require('net').createServer().listen(8080,'198.18.0.10',function(){console.log('bound');this.close()}).on('error',e=>{console.log(e.code);process.exit(0)})"], { encoding: 'utf8', timeout: 10_000 }).stdout.trim();
    expect(bind(ns)).toBe('bound');
    expect(bind(bare)).toBe('EADDRNOTAVAIL');
  });
});
