import { afterEach, describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { Writable } from 'node:stream';
import { closeSync, constants, mkdtempSync, openSync, readSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { FdLines, writesDirect } from '../../src/log-sinks.js';

/**
 * FdLines (src/log-sinks.ts) writes batches of access lines straight to a descriptor. On a real
 * non-blocking FIFO (64 KiB of room) it must keep what the reader has not taken, in order, split
 * no line, bound what waits, and count and report what it drops.
 */

const dirs: string[] = [];
afterEach(() => { for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true }); });

function fifo(): { w: number; r: number; close(): void } {
  const dir = mkdtempSync(join(tmpdir(), 'alog-fifo-'));
  dirs.push(dir);
  const path = join(dir, 'f');
  execFileSync('mkfifo', [path]);
  // O_RDWR on a FIFO opens without a peer (Linux); both ends non-blocking.
  const w = openSync(path, constants.O_RDWR | constants.O_NONBLOCK);
  const r = openSync(path, constants.O_RDONLY | constants.O_NONBLOCK);
  return { w, r, close: () => { closeSync(w); closeSync(r); } };
}

/** What the FIFO holds now (non-blocking reads until EAGAIN). */
function readAvailable(fd: number): string {
  const buf = Buffer.alloc(1 << 16);
  let out = '';
  for (;;) {
    let n: number;
    try { n = readSync(fd, buf, 0, buf.length, null); } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'EAGAIN') return out;
      throw e;
    }
    if (n === 0) return out;
    out += buf.toString('latin1', 0, n);
  }
}

/** Read until `want` bytes came out (the writer retries on a 10 ms timer), bounded at 10 s. */
async function readUntil(fd: number, want: number): Promise<string> {
  let got = '';
  const deadline = Date.now() + 10_000;
  while (got.length < want && Date.now() < deadline) {
    got += readAvailable(fd);
    if (got.length < want) await new Promise((ok) => setTimeout(ok, 5));
  }
  return got;
}

const lines = (from: number, n: number, pad = 90): string => {
  let s = '';
  for (let i = from; i < from + n; i++) s += `line ${i} `.padEnd(pad, '.') + '\n';
  return s;
};

function capture(): { log: pino.Logger; text: () => string } {
  const chunks: string[] = [];
  const stream = new Writable({ write(c, _e, cb) { chunks.push(String(c)); cb(); } });
  return { log: pino({ level: 'info' }, stream), text: () => chunks.join('') };
}

describe('FdLines: batches written by the caller to a descriptor', () => {
  it('a FIFO that is full keeps the rest and the batches behind it, in order, none split or lost', async () => {
    const f = fifo();
    try {
      const out = new FdLines(f.w);
      const a = lines(0, 1500); // 135 KB: more than the FIFO's 64 KiB
      const b = lines(1500, 10);
      out.write(a);
      expect(out.pending).toBe(true);
      out.write(b);
      const got = await readUntil(f.r, a.length + b.length);
      expect(got).toBe(a + b);
      expect(out.pending).toBe(false);
      expect(out.dropped).toBe(0);
      out.write(b);
      expect(readAvailable(f.r)).toBe(b);
    } finally { f.close(); }
  });

  it('what waits is bounded: whole batches beyond 4 MiB are dropped, counted and reported once lines go out again', async () => {
    const f = fifo();
    const { log, text } = capture();
    try {
      const out = new FdLines(f.w, log);
      const batch = lines(0, 1000); // 90 KB per batch
      const n = 60; // 5.4 MB in all while nobody reads
      for (let i = 0; i < n; i++) out.write(batch);
      expect(out.dropped).toBeGreaterThan(0);
      expect(out.dropped % 1000).toBe(0);
      const kept = n * 1000 - out.dropped;
      const got = await readUntil(f.r, kept * 91);
      expect(got.length).toBe(kept * 91);
      expect(got).toBe(batch.repeat(kept / 1000));
      out.write(batch);
      expect(await readUntil(f.r, batch.length)).toBe(batch);
      expect(text()).toContain(`access log: ${out.dropped} lines dropped`);
    } finally { f.close(); }
  });

  it('writesDirect: a regular file and /dev/null yes (write(2) never waits for a reader), a FIFO no', () => {
    const dir = mkdtempSync(join(tmpdir(), 'alog-'));
    dirs.push(dir);
    const file = openSync(join(dir, 'x'), 'a');
    const nul = openSync('/dev/null', 'a');
    const f = fifo();
    try {
      expect(writesDirect(file)).toBe(true);
      expect(writesDirect(nul)).toBe(true);
      expect(writesDirect(f.w)).toBe(false);
    } finally { closeSync(file); closeSync(nul); f.close(); }
  });
});
