import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { configFromArgv, isPairlbStart } from '../../src/cli/reload.js';
import { cleanup, cli, ensureBuilt, tempDir } from './daemon.js';

/** `pairlb reload` refuses to signal the wrong process and explains why (exit statuses are stable). */

describe('pairlb reload: finding the process', () => {
  it.each([
    [['-c', '/etc/pairlb/pairlb.yaml'], '/etc/pairlb/pairlb.yaml'],
    [['--config', 'a.yaml', '--pidfile', 'x'], 'a.yaml'],
    [['--config=b.yaml'], 'b.yaml'],
    [['-cc.yaml'], 'c.yaml'],
    [['--demo'], undefined],
  ])('configFromArgv(%j) = %j', (argv, want) => {
    expect(configFromArgv(argv as string[])).toBe(want);
  });

  it.each([
    [['/usr/bin/node', '/usr/local/bin/pairlb', 'start', '-c', 'x'], true],
    [['node', '/srv/pairlb/dist/cli/main.js', 'start'], true],
    [['node', '/usr/local/bin/pairlb', 'check', '-c', 'x'], false],
    [['/usr/sbin/sshd', '-D'], false],
  ])('isPairlbStart(%j) = %j', (argv, want) => {
    expect(isPairlbStart(argv as string[])).toBe(want);
  });

  let dir: string;
  let sleeper: ReturnType<typeof spawn> | undefined;
  beforeAll(() => { ensureBuilt(); dir = tempDir('reload-cli'); });
  afterAll(() => { if (sleeper?.exitCode === null) sleeper.kill('SIGKILL'); cleanup(dir); });

  it('exit 3 when the pid file is missing or stale, or names a process that is not pairlb', async () => {
    const missing = cli(['reload', '--pidfile', join(dir, 'none.pid')]);
    expect(missing.code).toBe(3);
    expect(missing.stderr).toContain('cannot read pid file');

    // A pid that certainly is not running: a child that has exited.
    const gone = spawn(process.execPath, ['-e', '0']);
    await new Promise((ok) => gone.once('exit', ok));
    writeFileSync(join(dir, 'stale.pid'), `${gone.pid}\n`);
    const stale = cli(['reload', '--pidfile', join(dir, 'stale.pid')]);
    expect(stale.code).toBe(3);
    expect(stale.stderr).toContain(`no process ${gone.pid}`);

    // A live process that is not pairlb (pid reused): never signalled.
    sleeper = spawn('sleep', ['30']);
    writeFileSync(join(dir, 'other.pid'), `${sleeper.pid}\n`);
    const other = cli(['reload', '--pidfile', join(dir, 'other.pid')]);
    expect(other.code).toBe(3);
    expect(other.stderr).toContain('is not pairlb start');
    expect(sleeper.exitCode).toBe(null);
    expect(sleeper.signalCode).toBe(null);
  });

  it('exit 2 on a usage error', () => {
    const r = cli(['reload', '--bogus']);
    expect(r.code).toBe(2);
  });
});
