import { afterAll, describe, expect, it } from 'vitest';
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { notifyReceiver as receiver } from '../helpers/sd-receiver.js';
import { startPairlb } from '../helpers/proc.js';
import { startBackend } from '../helpers/backend.js';
import { ensurePackages } from '../helpers/sys.js';

/**
 * sd_notify with a real unix datagram socket bound by the test as NOTIFY_SOCKET (what systemd does
 * for Type=notify; test/helpers/sd-receiver.ts), checking the sender's PID as NotifyAccess=main
 * does. WATCHDOG=1 withheld while the HA loop does not answer: test/ha/isolation-ns.test.ts.
 */

const dir = mkdtempSync(join(tmpdir(), 'pairlb-sdnotify-'));
const kids: ChildProcess[] = [];
afterAll(() => {
  for (const k of kids) if (k.exitCode === null) k.kill('SIGKILL');
  rmSync(dir, { recursive: true, force: true });
});

describe('sd_notify (Type=notify, WatchdogSec)', () => {
  it('READY=1 once serving, WATCHDOG=1 every WATCHDOG_USEC/2, STOPPING=1 on SIGTERM — all from pairlb\'s own PID', async () => {
    ensurePackages(['python3-minimal']);
    const sock = join(dir, 'notify.sock');
    const r = receiver(sock);
    kids.push(r.child);
    await r.bound;
    const be = await startBackend('sd-be');
    const p = await startPairlb(`global: {node: sd, log: {access: "off"}}\nlisten:\n  - name: www\n    bind: 127.0.0.1:0\n    backends: [{name: b1, address: "${be.address}"}]\n`, {
      env: { NOTIFY_SOCKET: sock, WATCHDOG_USEC: '400000' }, // a feed every 200 ms
    });
    try {
      await r.until((g) => g.some((d) => d.msg.startsWith('READY=1')), 10_000, 'READY=1');
      const ready = r.got.find((d) => d.msg.startsWith('READY=1'))!;
      expect(ready.pid).toBe(p.pid); // the same PID as the process started: execve kept it
      expect(ready.msg).toContain(`MAINPID=${p.pid}`);
      // Sent after 'pairlb started' (every listener bound) was logged.
      expect(p.logs.findIndex((l) => l.msg === 'pairlb started')).toBeGreaterThanOrEqual(0);
      await r.until((g) => g.filter((d) => d.msg === 'WATCHDOG=1').length >= 5, 10_000, 'five WATCHDOG=1');
      expect(new Set(r.got.map((d) => d.pid))).toEqual(new Set([p.pid]));
      // The notify hooks and helpers we spawn do not inherit NOTIFY_SOCKET.
      expect(p.logs.some((l) => l.mod === 'systemd' && l.msg === 'notified systemd: READY=1' && l.watchdog_ms === 200)).toBe(true);
      const before = r.got.length;
      await p.stop('SIGTERM');
      expect(r.got.slice(before).some((d) => d.msg.startsWith('STOPPING=1'))).toBe(true);
    } finally {
      await p.stop('SIGKILL');
      await be.close();
    }
  });

  it('with global.workers: 2, WATCHDOG=1 waits for every worker thread too (one liveness probe each)', async () => {
    ensurePackages(['python3-minimal']);
    const sock = join(dir, 'notify-w.sock');
    const r = receiver(sock);
    kids.push(r.child);
    await r.bound;
    const be = await startBackend('sd-bew');
    const p = await startPairlb(`global: {node: sdw, workers: 2, log: {access: "off"}}\nlisten:\n  - name: www\n    bind: 127.0.0.1:0\n    backends: [{name: b1, address: "${be.address}"}]\n`, {
      env: { NOTIFY_SOCKET: sock, WATCHDOG_USEC: '400000' },
    });
    try {
      await r.until((g) => g.filter((d) => d.msg === 'WATCHDOG=1').length >= 3, 10_000, 'three WATCHDOG=1');
      const ready = p.logs.find((l) => l.msg === 'notified systemd: READY=1');
      expect(ready?.probes).toEqual(['worker 0', 'worker 1']);
      expect(new Set(r.got.map((d) => d.pid))).toEqual(new Set([p.pid]));
    } finally {
      await p.stop('SIGTERM');
      await be.close();
    }
  });

  it('a NOTIFY_SOCKET that nobody bound is logged with the reason, and pairlb serves on', async () => {
    const be = await startBackend('sd-be2');
    const yaml = `global: {node: sd2, log: {access: "off"}}\nlisten:\n  - name: www\n    bind: 127.0.0.1:0\n    backends: [{name: b1, address: "${be.address}"}]\n`;
    const p = await startPairlb(yaml, { env: { NOTIFY_SOCKET: join(dir, 'nobody-here.sock') } });
    try {
      const end = Date.now() + 10_000;
      while (!p.logs.some((l) => l.mod === 'systemd') && Date.now() < end) await new Promise((r) => setTimeout(r, 20));
      const err = p.logs.find((l) => l.mod === 'systemd');
      expect(err?.msg).toBe('cannot notify systemd (Type=notify will time out): no socket for NOTIFY_SOCKET');
      expect(String(err?.why)).toMatch(/^error: /);
    } finally {
      await p.stop();
      await be.close();
    }
  });
});
