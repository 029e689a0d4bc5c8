import { afterAll, describe, expect, it } from 'vitest';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { startPairlb } from '../helpers/proc.js';
import { startBackend } from '../helpers/backend.js';
import { ensurePackages } from '../helpers/sys.js';

/**
 * sd_notify with a real unix datagram socket bound by the test as NOTIFY_SOCKET (what systemd does
 * for Type=notify): a small python3 receiver binds it with SO_PASSCRED and prints every datagram
 * with the sender's PID from SCM_CREDENTIALS, which is what systemd's NotifyAccess=main checks.
 */

const RECEIVER = `
import socket, struct, sys, json
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
s.bind(sys.argv[1])
print(json.dumps({"bound": True}), flush=True)
while True:
    msg, anc, flags, addr = s.recvmsg(4096, socket.CMSG_SPACE(12))
    pid = None
    for level, typ, data in anc:
        if level == socket.SOL_SOCKET and typ == socket.SCM_CREDENTIALS:
            pid = struct.unpack("iII", data[:12])[0]
    print(json.dumps({"pid": pid, "msg": msg.decode()}), flush=True)
`;

interface Datagram { pid: number; msg: string; at: number }

function receiver(path: string): { child: ChildProcess; got: Datagram[]; bound: Promise<void>; until(f: (d: Datagram[]) => boolean, ms: number, what: string): Promise<void> } {
  const child = spawn('python3', ['-c', RECEIVER, path], { stdio: ['ignore', 'pipe', 'inherit'] });
  const got: Datagram[] = [];
  let onBound: () => void;
  const bound = new Promise<void>((r) => { onBound = r; });
  createInterface({ input: child.stdout! }).on('line', (l) => {
    const j = JSON.parse(l);
    if (j.bound) onBound();
    else got.push({ ...j, at: Date.now() });
  });
  const until = async (f: (d: Datagram[]) => boolean, ms: number, what: string): Promise<void> => {
    const end = Date.now() + ms;
    while (Date.now() < end) { if (f(got)) return; await new Promise((r) => setTimeout(r, 20)); }
    throw new Error(`timeout after ${ms} ms: ${what}; got ${JSON.stringify(got.slice(-5))}`);
  };
  return { child, got, bound, until };
}

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
