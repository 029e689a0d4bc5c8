import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { createSocket } from 'node:dgram';
import { join } from 'node:path';
import { startBackend, type TestBackend } from '../helpers/backend.js';
import { ensurePackages } from '../helpers/sys.js';
import { cleanup, cli, ensureBuilt, freePort, startDaemon, tempDir, type Daemon } from './daemon.js';

/**
 * Access log to syslog: a private real rsyslogd (imuxsock on a socket of the test's own) receives
 * the real pairlb's lines and parses them as its default templates do: tag pairlb, our pid,
 * facility local0, severity info, the message one whole combined line. Then a reload moves the
 * lines to a syslog server over UDP (RFC 5424).
 */

async function waitFor<T>(fn: () => T | undefined | false, what: string, ms = 10_000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = fn();
    if (v) return v;
    if (Date.now() > end) throw new Error(`${what}: not within ${ms} ms`);
    await new Promise((ok) => setTimeout(ok, 20));
  }
}

function request(port: number, path: string): Promise<void> {
  return new Promise((ok) => {
    const s = connect(port, '127.0.0.1');
    s.on('error', () => ok());
    s.on('data', () => {});
    s.on('close', () => ok());
    s.write(`GET ${path} HTTP/1.1\r\nHost: site\r\nUser-Agent: t\r\nConnection: close\r\n\r\n`);
  });
}

describe('access log to syslog (real rsyslogd)', () => {
  let dir: string;
  let rs: ChildProcess | undefined;
  let d: Daemon;
  let be: TestBackend;
  let port: number;
  const out = () => (existsSync(join(dir, 'out.log')) ? readFileSync(join(dir, 'out.log'), 'utf8').split('\n').filter(Boolean) : []);

  beforeAll(async () => {
    ensureBuilt();
    ensurePackages(['rsyslog']);
    dir = tempDir('syslog');
    writeFileSync(join(dir, 'rs.conf'), [
      `global(workDirectory="${dir}")`,
      'module(load="imuxsock" SysSock.Use="off")',
      `input(type="imuxsock" Socket="${dir}/log.sock" CreatePath="on")`,
      'template(name="t" type="string" string="%programname%|%procid%|%syslogfacility-text%|%syslogseverity-text%|%msg%\\n")',
      `*.* action(type="omfile" file="${dir}/out.log" template="t")`,
    ].join('\n') + '\n');
    rs = spawn('/usr/sbin/rsyslogd', ['-n', '-f', join(dir, 'rs.conf'), '-i', join(dir, 'rs.pid')], { stdio: 'ignore' });
    await waitFor(() => existsSync(join(dir, 'log.sock')), 'rsyslogd to create its socket');
    be = await startBackend('a');
    port = await freePort();
  });
  afterAll(async () => {
    await d?.kill();
    await be?.close();
    if (rs && rs.exitCode === null) { const gone = new Promise((ok) => rs!.once('exit', ok)); rs.kill('SIGTERM'); await gone; }
    cleanup(dir);
  });

  it('rfc3164 on the local socket: rsyslog sees tag pairlb, our pid, local0.info and one combined line per request', async () => {
    const yaml = (log: string) => `global:\n  log:\n    access: combined\n${log}listen:\n  - name: web\n    bind: 127.0.0.1:${port}\n    backends:\n      - name: a\n        address: ${be.address}\n        check: false\n`;
    d = await startDaemon(dir, yaml(`    access_syslog:\n      socket: ${dir}/log.sock\n`));
    await request(port, '/s1');
    await request(port, '/s2');
    const got = await waitFor(() => { const l = out().filter((x) => x.includes('"GET /s')); return l.length >= 2 && l; }, 'two lines in rsyslog');
    for (const [i, l] of got.entries()) {
      const [prog, pid, fac, sev, msg] = l.split('|');
      expect([prog, pid, fac, sev]).toEqual(['pairlb', String(d.pid), 'local0', 'info']);
      expect(msg).toMatch(new RegExp(`^ 127\\.0\\.0\\.1 - - \\[[^\\]]+\\] "GET /s${i + 1} HTTP/1\\.1" 200 \\d+ "-" "t"$`));
    }
    expect(d.rawLines.some((l) => l.includes('GET /s1'))).toBe(false);

    // Reload: to a syslog server over UDP, RFC 5424 (the test's socket is the server).
    const udp = createSocket('udp4');
    const msgs: string[] = [];
    udp.on('message', (m) => msgs.push(m.toString('utf8')));
    await new Promise<void>((ok) => udp.bind(0, '127.0.0.1', () => ok()));
    try {
      writeFileSync(join(dir, 'pairlb.yaml'), yaml(`    access_syslog:\n      server: 127.0.0.1:${udp.address().port}\n      format: rfc5424\n      facility: local3\n      tag: web-access\n`));
      const r = cli(['reload', '--pidfile', join(dir, 'pairlb.pid')]);
      expect(r.code, r.stderr).toBe(0);
      expect(r.stdout).toContain(`applied: access log combined to 127.0.0.1:${udp.address().port}`);
      await request(port, '/u1');
      const m = await waitFor(() => msgs.find((x) => x.includes('/u1')), 'the UDP message');
      // <PRI> = local3 (19) * 8 + info (6) = 158; VERSION 1; APP-NAME; PROCID; MSGID -; no SD.
      expect(m).toMatch(new RegExp(`^<158>1 \\S+ \\S+ web-access ${d.pid} - - 127\\.0\\.0\\.1 - - \\[[^\\]]+\\] "GET /u1 HTTP/1\\.1" 200 \\d+ "-" "t"\\n?$`));
    } finally { udp.close(); }
  });
});
