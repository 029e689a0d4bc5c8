import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { chownSync, copyFileSync, existsSync, lstatSync, mkdirSync, readFileSync, readlinkSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { chrootArgs, debianRoot, inRoot } from '../helpers/chroot.js';
import { ROOT, cleanup, ensureBuilt, freePort, tempDir } from './daemon.js';

/**
 * The Debian package, built by scripts/build-deb.sh from this tree, installed with dpkg into a
 * throwaway Debian 12 root (debootstrap, cached: test/helpers/chroot.ts), never into this machine.
 * In that root there is no Node at all: pairlb runs on the Node 24 the package bundles. Then
 * `pairlb check` and the unit's own ExecStart line run as the unit's user, and it serves.
 */

describe('Debian package: build, install into a fresh Debian 12 root, check, start as the unit does', () => {
  let dir: string;
  let root: string;
  let deb: string;
  let proc: ChildProcess | undefined;
  const unit = () => readFileSync(join(root, 'lib/systemd/system/pairlb.service'), 'utf8');
  const key = (k: string) => unit().split('\n').filter((l) => l.startsWith(`${k}=`)).map((l) => l.slice(k.length + 1));

  beforeAll(() => {
    ensureBuilt();
    dir = tempDir('deb');
    root = join(dir, 'root');
    const b = spawnSync('bash', [join(ROOT, 'scripts/build-deb.sh'), '--out', join(dir, 'out'), '--compress', 'none'], { encoding: 'utf8', timeout: 300_000, cwd: ROOT });
    if (b.status !== 0) throw new Error(`build-deb.sh failed: ${b.stderr}`);
    deb = b.stdout.trim().split('\n').pop()!;
    debianRoot(root);
  }, 600_000);

  afterAll(async () => {
    if (proc && proc.exitCode === null && proc.signalCode === null) { proc.kill('SIGKILL'); await new Promise((ok) => proc!.once('exit', ok)); }
    cleanup(dir);
  });

  it('dpkg -i installs it: files where docs/operations.md says, user and directories from its sysusers/tmpfiles', () => {
    expect(inRoot(root, ['sh', '-c', 'command -v node || echo none']).stdout.trim()).toBe('none');
    copyFileSync(deb, join(root, 'tmp/pairlb.deb'));
    const r = inRoot(root, ['dpkg', '-i', '/tmp/pairlb.deb'], { timeout: 300_000 });
    expect(r.code, r.stderr + r.stdout).toBe(0);

    expect(readlinkSync(join(root, 'usr/bin/pairlb'))).toBe('../lib/pairlb/bin/pairlb');
    expect(existsSync(join(root, 'usr/lib/pairlb/node_modules/node/bin/node'))).toBe(true);
    expect(key('ExecStart')).toEqual(['/usr/bin/pairlb start -c /etc/pairlb/pairlb.yaml --pidfile /run/pairlb/pairlb.pid']);
    expect(key('ExecStartPre')).toEqual(['/usr/bin/pairlb check -c /etc/pairlb/pairlb.yaml']);
    expect(unit()).not.toContain('/usr/local');
    for (const f of ['usr/lib/sysusers.d/pairlb.conf', 'usr/lib/tmpfiles.d/pairlb.conf', 'usr/lib/sysctl.d/99-pairlb.conf', 'etc/logrotate.d/pairlb']) {
      expect(lstatSync(join(root, f)).isFile(), f).toBe(true);
    }
    const pw = inRoot(root, ['getent', 'passwd', 'pairlb']).stdout.trim().split(':');
    expect(pw[5]).toBe('/var/lib/pairlb');
    const uid = Number(pw[2]);
    const gid = Number(pw[3]);
    const etc = statSync(join(root, 'etc/pairlb'));
    expect([etc.mode & 0o777, etc.uid, etc.gid]).toEqual([0o750, 0, gid]);
    const yaml = statSync(join(root, 'etc/pairlb/pairlb.yaml'));
    expect([yaml.mode & 0o777, yaml.uid, yaml.gid]).toEqual([0o640, 0, gid]);
    const logs = statSync(join(root, 'var/log/pairlb'));
    expect([logs.mode & 0o777, logs.uid]).toEqual([0o750, uid]);
    // docs/operations.md "Files and paths" (Debian package table): every installed path it names exists.
    const ops = readFileSync(join(ROOT, 'docs/operations.md'), 'utf8');
    // (Secrets are the operator's to make: that row is not checked.)
    const table = ops.slice(ops.indexOf('With the Debian package'), ops.indexOf('With the npm tarball instead')).split('\n').filter((l) => !l.startsWith('| HA key')).join('\n');
    const named = [...table.matchAll(/`(\/(?:usr|lib|etc)\/[^`\s]*)`/g)].map((m) => m[1]).filter((f) => !f.includes('…'));
    expect(named.length).toBeGreaterThan(8);
    for (const f of named) expect(existsSync(join(root, f)), `${f} (docs/operations.md) is not installed`).toBe(true);
    const status = inRoot(root, ['dpkg-query', '-W', '-f', '${Status} ${Version}', 'pairlb']).stdout;
    expect(status).toMatch(/^install ok installed \d+\.\d+\.\d+-1$/);
    const v = inRoot(root, ['pairlb', '--version']);
    expect(v.stdout.trim()).toBe(`pairlb ${JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')).version}`);
  });

  it('the unit\'s ExecStartPre (pairlb check) and ExecStart run as its User= and serve', async () => {
    const user = `${key('User')[0]}:${key('Group')[0]}`;
    expect(user).toBe('pairlb:pairlb');
    const pre = key('ExecStartPre')[0].split(' ');
    const c = inRoot(root, pre, { user });
    expect(c.stderr).toBe('');
    expect(c.stdout).toBe('Configuration file is valid: /etc/pairlb/pairlb.yaml\n');
    expect(c.code).toBe(0);

    // What systemd does before ExecStart: the unit's RuntimeDirectory=, StateDirectory=, LogsDirectory=.
    const uid = Number(inRoot(root, ['id', '-u', 'pairlb']).stdout);
    const gid = Number(inRoot(root, ['id', '-g', 'pairlb']).stdout);
    for (const [k, base] of [['RuntimeDirectory', 'run'], ['StateDirectory', 'var/lib'], ['LogsDirectory', 'var/log']] as const) {
      const p = join(root, base, key(k)[0]);
      mkdirSync(p, { recursive: true });
      chownSync(p, uid, gid);
    }
    // The shipped config listens on 127.0.0.1:8080; this root shares the host's network: a free port.
    const port = await freePort();
    const cfgFile = join(root, 'etc/pairlb/pairlb.yaml');
    writeFileSync(cfgFile, readFileSync(cfgFile, 'utf8').replace('127.0.0.1:8080', `127.0.0.1:${port}`));

    const argv = key('ExecStart')[0].split(' ');
    proc = spawn('unshare', chrootArgs(root, argv, user), { stdio: ['ignore', 'pipe', 'pipe'], env: { PATH: '/usr/sbin:/usr/bin:/sbin:/bin', LANG: 'C' } });
    let out = '';
    let err = '';
    proc.stdout!.setEncoding('utf8').on('data', (d: string) => { out += d; });
    proc.stderr!.setEncoding('utf8').on('data', (d: string) => { err += d; });
    const exited = new Promise<number | null>((ok) => proc!.once('exit', (code) => ok(code)));
    const end = Date.now() + 20_000;
    while (!out.includes('"msg":"pairlb started"')) {
      if (proc.exitCode !== null || Date.now() > end) throw new Error(`pairlb did not start: ${out}\n${err}`);
      await new Promise((ok) => setTimeout(ok, 50));
    }
    const started = out.split('\n').map((l) => { try { return JSON.parse(l) as Record<string, unknown>; } catch { return {}; } }).find((l) => l.msg === 'pairlb started')!;
    expect(started.listens).toEqual({ www: `127.0.0.1:${port}` });
    // No backend in the shipped config: 503 from pairlb itself proves it serves.
    const res = await fetch(`http://127.0.0.1:${port}/`);
    expect(res.status).toBe(503);
    await res.arrayBuffer();
    // It runs as pairlb, on the bundled Node, and wrote its pid file where `pairlb reload` reads it.
    const pidText = readFileSync(join(root, 'run/pairlb/pairlb.pid'), 'utf8').trim();
    expect(Number(pidText)).toBe(1); // PID 1 of its pid namespace
    const hostPid = Number(readFileSync(`/proc/${proc.pid}/task/${proc.pid}/children`, 'utf8').trim().split(' ')[0]);
    const st = readFileSync(`/proc/${hostPid}/status`, 'utf8');
    expect(/^Uid:\s+(\d+)/m.exec(st)![1]).toBe(String(uid));
    expect(readlinkSync(`/proc/${hostPid}/exe`)).toBe(join(root, 'usr/lib/pairlb/node_modules/node/bin/node'));
    expect(execFileSync(join(root, 'usr/lib/pairlb/node_modules/node/bin/node'), ['--version'], { encoding: 'utf8' })).toMatch(/^v24\./);

    process.kill(hostPid, 'SIGTERM');
    expect(await exited).toBe(0);
    expect(out).toContain('"msg":"pairlb stopped"');
  });
});
