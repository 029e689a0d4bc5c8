import { afterAll, beforeAll, expect, it } from 'vitest';
import { execFile } from 'node:child_process';
import { chmodSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import { MAIN, ROOT, cleanup, ensureBuilt, freePort, startDaemon, tempDir, type Daemon } from './daemon.js';
import { startBackend, type TestBackend } from '../helpers/backend.js';

/**
 * Every log line of a daemon run is JSON without duplicate keys (issue 15: the audit line had
 * "mod" twice, from the child logger's binding and the call; Elasticsearch refuses such a document).
 * The run goes through the paths that log: start with HA (VIP interface missing: FAULT, the VIP
 * removal), stats and admin API, proxied and refused requests (access log), an admin drain over
 * the CLI (the audit line), a reload, a stop.
 */

/** The keys of every object in a JSON text that appear twice in that object; throws on bad JSON. */
export function duplicateKeys(text: string): string[] {
  JSON.parse(text);
  const dups: string[] = [];
  const stack: (Set<string> | null)[] = [];
  let i = 0;
  const str = (): string => {
    let j = i + 1;
    while (text[j] !== '"') j += text[j] === '\\' ? 2 : 1;
    const s = JSON.parse(text.slice(i, j + 1)) as string;
    i = j + 1;
    return s;
  };
  while (i < text.length) {
    const c = text[i];
    if (c === '{') { stack.push(new Set()); i++; } else if (c === '[') { stack.push(null); i++; } else if (c === '}' || c === ']') { stack.pop(); i++; } else if (c === '"') {
      const s = str();
      let k = i;
      while (text[k] === ' ') k++;
      const keys = stack[stack.length - 1];
      if (text[k] === ':' && keys) { if (keys.has(s)) dups.push(s); keys.add(s); }
    } else i++;
  }
  return dups;
}

let dir: string;
let d: Daemon | undefined;
let b1: TestBackend;
beforeAll(async () => { ensureBuilt(); dir = tempDir('log-keys'); b1 = await startBackend('web1'); });
afterAll(async () => { await d?.kill(); await b1?.close(); cleanup(dir); });

const cli = (args: string[]) => new Promise<{ code: number | null; stdout: string; stderr: string }>((ok) => {
  execFile(process.execPath, [MAIN, ...args], { cwd: ROOT, timeout: 20_000, encoding: 'utf8' }, (err, stdout, stderr) => ok({ code: err ? (typeof err.code === 'number' ? err.code : null) : 0, stdout, stderr }));
});

it('the duplicate-key finder sees duplicates at any depth, and none in strings', () => {
  expect(duplicateKeys('{"mod":"a","x":{"mod":1},"mod":"b"}')).toEqual(['mod']);
  expect(duplicateKeys('{"a":{"b":1,"b":2},"c":[{"d":1},{"d":2}]}')).toEqual(['b']);
  expect(duplicateKeys('{"msg":"\\"mod\\": \\"x\\"","mod":"y"}')).toEqual([]);
});

it('no log line of a daemon run has a duplicate key', async () => {
  const [port, stats, hb1, hb2] = [await freePort(), await freePort(), await freePort(), await freePort()];
  const key = join(dir, 'ha.key');
  writeFileSync(key, 'k'.repeat(32)); chmodSync(key, 0o600);
  const sock = join(dir, 'admin.sock');
  const yaml = (w: number) => [
    'global: { node: lk, log: { level: debug, access: json } }',
    'listen:',
    '  - name: web',
    `    bind: 127.0.0.1:${port}`,
    '    check: { interval: 200ms }',
    `    backends: [{ name: web1, address: "${b1.address}", weight: ${w} }, { name: dead, address: "127.0.0.1:9" }]`,
    `stats: { bind: "127.0.0.1:${stats}", auth: [{ user: ops, password: secret-pass }] }`,
    `admin: { socket: "${sock}" }`,
    'ha:',
    `  key_file: ${key}`,
    `  node: { dedicated: "127.0.0.1:${hb1}" }`,
    `  peer: { name: lk2, dedicated: "127.0.0.2:${hb2}" }`,
    '  vip: { address: 198.18.0.10/24, interface: ens18x }',
  ].join('\n') + '\n';
  d = await startDaemon(dir, yaml(1));
  await d.waitLog((l) => l.mod === 'ha' && l.to === 'fault');
  for (let i = 0; i < 3; i++) await (await fetch(`http://127.0.0.1:${port}/x${i}`)).text();
  // A request the edge refuses (400) and a stats page login that fails.
  await new Promise<void>((ok) => { const s = connect(port, '127.0.0.1', () => s.end('GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n')); s.resume(); s.on('close', () => ok()); });
  expect((await fetch(`http://127.0.0.1:${stats}/`, { headers: { authorization: 'Basic ' + Buffer.from('ops:wrong').toString('base64') } })).status).toBe(401);
  const r = await cli(['backend', '--socket', sock, 'drain', 'web', 'web1']);
  expect(r.code).toBe(0);
  await d.waitLog((l) => l.action === 'state' && l.backend === 'web1');
  writeFileSync(join(dir, 'pairlb.yaml'), yaml(2));
  const from = d.logs.length;
  d.signal('SIGHUP');
  await d.waitLog((l) => l.msg === 'config reloaded', 10_000, from);
  d.signal('SIGTERM');
  expect(await d.exited).toEqual({ code: 0, signal: null });
  // Every path above logged (else the test would prove nothing about it).
  const msgs = d.logs.map((l) => String(l.msg));
  expect(d.logs.some((l) => l.mod === 'access')).toBe(true);
  expect(msgs.some((m) => m.startsWith('admin '))).toBe(true);
  expect(msgs).toContain('pairlb stopped');
  const bad = d.rawLines.map((l) => ({ l, dups: duplicateKeys(l) })).filter((x) => x.dups.length);
  expect(bad).toEqual([]);
  expect(d.rawLines.length).toBeGreaterThan(15);
});
