import type { ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import pino from 'pino';
import { Watchdog } from '../../src/ha/watchdog.js';

/**
 * The VIP watchdog's shell for real (bash, its own session), with its two commands pointed at
 * files instead of `ip addr del` and arping: what it runs and when. The namespace tests
 * (failover.test.ts) run it with the real commands.
 */

const dir = mkdtempSync(join(tmpdir(), 'pairlb-watchdog-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const log = pino({ level: 'silent' });
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
async function until(f: () => boolean, ms: number, what: string): Promise<void> {
  const end = Date.now() + ms;
  while (Date.now() < end) { if (f()) return; await sleep(10); }
  throw new Error(`timeout after ${ms} ms: ${what}`);
}
const lines = (f: string) => (existsSync(f) ? readFileSync(f, 'utf8').trim().split('\n').filter(Boolean) : []);

function make(name: string, timeoutMs: number) {
  const del = join(dir, `${name}.del`), arp = join(dir, `${name}.arp`);
  const fired: string[] = [];
  const w = new Watchdog(['/bin/sh', '-c', `echo del >> ${del}`], ['/bin/sh', '-c', `echo arp >> ${arp}`], timeoutMs, log, (why) => fired.push(why));
  w.start();
  const child = () => (w as unknown as { child?: ChildProcess }).child!;
  return { w, del, arp, fired, child };
}

describe('VIP watchdog', () => {
  it('fed while armed: nothing; feed stops (a hang): removes the VIP once and reports "stalled"', async () => {
    const { w, del, fired } = make('hang', 1000); // fed every 50 ms against 1 s: room for a loaded machine
    w.arm();
    for (let i = 0; i < 10; i++) { await sleep(50); w.feed(); }
    expect(lines(del)).toEqual([]);
    await until(() => fired.length > 0, 5000, 'stalled reported');
    expect(fired).toEqual(['stalled']);
    expect(lines(del)).toEqual(['del']);
    expect(w.isArmed()).toBe(false);
    await sleep(1500); // disarmed now: no second removal
    expect(lines(del)).toEqual(['del']);
    w.close();
  });

  it('our process gone (stdin EOF) while armed: removes the VIP and exits; disarmed: exits without touching it', async () => {
    for (const armed of [true, false]) {
      const { w, del, child } = make(`eof-${armed}`, 5000);
      if (armed) w.arm(); else { w.arm(); w.disarm(); }
      const c = child();
      const exited = new Promise((r) => c.once('exit', r));
      await sleep(100);
      c.stdin!.end(); // what the kernel does when our process dies, SIGKILL included
      await exited;
      expect(lines(del)).toEqual(armed ? ['del'] : []);
      w.close();
    }
  });

  it('runs in its own session (a signal to our process group does not reach it) and ignores SIGTERM', async () => {
    const { w, child } = make('session', 5000);
    const c = child();
    await sleep(100);
    const pgid = readFileSync(`/proc/${c.pid}/stat`, 'utf8').split(') ')[1].split(' ')[2];
    expect(Number(pgid)).toBe(c.pid); // leader of its own group
    c.kill('SIGTERM');
    await sleep(200);
    expect(c.exitCode).toBe(null);
    const exited = new Promise((r) => c.once('exit', r));
    w.close(); // disarm + EOF: it ends by itself
    await exited;
  });

  it('sends gratuitous ARPs on request (forked from its shell, not from us)', async () => {
    const { w, arp } = make('garp', 5000);
    await sleep(50);
    expect(w.garp(3)).toBe(true);
    await until(() => lines(arp).length === 3, 5000, '3 arps');
    w.close();
    expect(w.garp(1)).toBe(false);
  });

  it('kills the GARP senders still running when asked (a demotion must not announce us afterwards)', async () => {
    const arp = join(dir, 'cancel.arp');
    const w = new Watchdog(['/bin/true'], ['/bin/sh', '-c', `sleep 0.5; echo arp >> ${arp}`], 5000, log, () => {});
    w.start();
    await sleep(50);
    expect(w.garp(2)).toBe(true);
    await sleep(100);
    w.cancelGarps();
    await sleep(900);
    expect(lines(arp)).toEqual([]);
    expect(w.garp(1)).toBe(true); // still serving requests afterwards
    await until(() => lines(arp).length === 1, 5000, 'one arp after the cancel');
    w.close();
  });

  it('removes the VIP on request ("d": our process cannot spawn ip any more) and reports "dropped"', async () => {
    const { w, del, fired } = make('drop', 5000);
    w.arm();
    await sleep(50);
    expect(w.dropNow()).toBe(true);
    await until(() => fired.length > 0, 5000, 'dropped reported');
    expect(fired).toEqual(['dropped']);
    expect(lines(del)).toEqual(['del']);
    expect(w.isArmed()).toBe(false);
    w.close();
  });

  it('stalledFor: undefined while fed or disarmed, the gap once it nears the timeout', () => {
    const { w } = make('gap', 1000);
    expect(w.stalledFor(w.lastFeed + 5000)).toBe(undefined); // disarmed
    w.arm();
    expect(w.stalledFor(w.lastFeed + 500)).toBe(undefined);
    expect(w.stalledFor(w.lastFeed + 950)).toBeCloseTo(950, 6);
    w.close();
  });

  it('restarts itself when killed, still armed', async () => {
    const { w, del, child } = make('restart', 150);
    w.arm();
    const first = child();
    first.kill('SIGKILL');
    await until(() => { const c = (w as unknown as { child?: { pid?: number } }).child; return !!c && c.pid !== first.pid; }, 5000, 'restarted');
    // Not fed from now: the new one removes the VIP.
    await until(() => lines(del).length === 1, 5000, 'removal by the restarted watchdog');
    w.close();
  });
});
