import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFile, execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync, chmodSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createServer, type Server, type TLSSocket } from 'node:tls';
import { encryptionKey, formatTicketKeyFile, parseTicketKeyFile, rotateKeys, swapLayout, TicketKeys, ticketsSchema } from '../../src/tls/ticket-keys.js';
import { Sealer } from '../../src/state/sealed.js';
import { StateStore } from '../../src/state/store.js';
import { silentLogger } from '../../src/log.js';

/**
 * Ticket keys against real TLS: a node:tls server (OpenSSL) and `openssl s_client -sess_out` /
 * `-sess_in`, which prints "Reused" when the server accepted the ticket. The HA part moves the
 * sealed section between two stores exactly as the replicator does (snapshot → apply).
 */

let dir: string;
let cert: Buffer, key: Buffer;

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'pairlb-tickets-'));
  execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-days', '2',
    '-subj', '/CN=tickets.test', '-addext', 'subjectAltName=DNS:tickets.test',
    '-keyout', join(dir, 'key.pem'), '-out', join(dir, 'cert.pem')], { stdio: 'ignore' });
  cert = readFileSync(join(dir, 'cert.pem'));
  key = readFileSync(join(dir, 'key.pem'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

async function tlsServer(tag: string): Promise<{ server: Server; port: number; close(): Promise<void> }> {
  // One session id context for both "nodes": OpenSSL refuses a session from another context.
  const server = createServer({ cert, key, sessionIdContext: 'pairlb-test', sessionTimeout: 3600 }, (s: TLSSocket) => {
    s.once('data', () => s.end(`HTTP/1.0 200 OK\r\n\r\n${tag}\n`));
    s.on('error', () => {});
  });
  await new Promise<void>((ok) => server.listen(0, '127.0.0.1', ok));
  const port = (server.address() as { port: number }).port;
  return { server, port, close: () => new Promise((ok) => server.close(() => ok())) };
}

/** One s_client connection; returns "New" or "Reused" and what the server answered. */
function sClient(port: number, sess: { out?: string; in?: string }, tls = '-tls1_3'): Promise<{ kind: string; body: string }> {
  const args = ['s_client', '-connect', `127.0.0.1:${port}`, '-servername', 'tickets.test', tls, '-ign_eof'];
  if (sess.out) args.push('-sess_out', sess.out);
  if (sess.in) args.push('-sess_in', sess.in);
  return new Promise((ok, fail) => {
    const p = execFile('openssl', args, { timeout: 10_000 }, (err, stdout) => {
      if (err && !stdout) { fail(err); return; }
      const m = /^(New|Reused), /m.exec(stdout);
      ok({ kind: m ? m[1] : `?${stdout.slice(0, 200)}`, body: /^(node-\w+)$/m.exec(stdout)?.[1] ?? '' });
    });
    p.stdin!.end('GET / HTTP/1.0\r\n\r\n');
  });
}

describe('ticket key file (HAProxy tls-ticket-keys format)', () => {
  it('parses 48-byte base64 keys, swaps HAProxy layout (name|aes|hmac) to Node\'s (name|hmac|aes), round-trips', () => {
    const hap = [randomBytes(48), randomBytes(48), randomBytes(48)];
    const text = `# comment\n\n${hap.map((k) => k.toString('base64')).join('\n')}\n`;
    const keys = parseTicketKeyFile(text, 'f');
    expect(keys).toHaveLength(3);
    expect(keys[0].subarray(0, 16)).toEqual(hap[0].subarray(0, 16));
    expect(keys[0].subarray(16, 32)).toEqual(hap[0].subarray(32, 48));
    expect(keys[0].subarray(32, 48)).toEqual(hap[0].subarray(16, 32));
    expect(swapLayout(keys[1])).toEqual(hap[1]);
    expect(parseTicketKeyFile(formatTicketKeyFile(keys), 'f')).toEqual(keys);
  });

  it.each([
    ['80-byte AES-256 key', randomBytes(80).toString('base64'), /f:1: an 80-byte \(AES-256\) key/],
    ['wrong length', randomBytes(32).toString('base64'), /f:1: 32 bytes, expected 48/],
    ['not base64', 'not*base64!', /f:1: not base64/],
    ['empty file', '# nothing\n', /f: no key/],
  ])('refuses %s with the line', (_n, text, re) => {
    expect(() => parseTicketKeyFile(text, 'f')).toThrow(re);
  });

  it('the second to last key encrypts; rotation drops the oldest and appends', () => {
    const [a, b, c, d] = [1, 2, 3, 4].map((n) => Buffer.alloc(48, n));
    expect(encryptionKey([a])).toBe(a);
    expect(encryptionKey([a, b, c])).toBe(b);
    expect(rotateKeys([a, b, c], 3, d)).toEqual([b, c, d]);
    expect(rotateKeys([a], 3, d)).toEqual([a, d]);
  });

  it('sealed values open only with the same HA key and purpose', () => {
    const k = randomBytes(32);
    const s = new Sealer(k, 'tls_tickets');
    const blob = s.seal(Buffer.from('secret'));
    expect(s.open(blob)?.toString()).toBe('secret');
    expect(new Sealer(randomBytes(32), 'tls_tickets').open(blob)).toBeUndefined();
    expect(new Sealer(k, 'acme').open(blob)).toBeUndefined();
    expect(s.open(blob.slice(0, -4) + 'AAAA')).toBeUndefined();
    expect(blob).not.toContain(Buffer.from('secret').toString('base64'));
  });
});

describe('ticket keys on a real TLS server (openssl s_client)', () => {
  it('resumes with the current key, not after a rotation; the keys file is written 0600 and re-read when edited', async () => {
    let now = 1_000_000;
    const file = join(dir, 'rot', 'ticket-keys');
    const tk = new TicketKeys(ticketsSchema.parse({ file, rotate: '1h' }), { log: silentLogger, active: () => true, now: () => now });
    tk.start();
    const srv = await tlsServer('node-a');
    tk.attach(srv.server);
    try {
      expect((statSync(file).mode & 0o777).toString(8)).toBe('600');
      const fileKeys = parseTicketKeyFile(readFileSync(file, 'utf8'), file);
      expect(fileKeys).toHaveLength(3);
      expect(encryptionKey(fileKeys)).toEqual(tk.current());
      const sess = join(dir, 'rot.sess');
      expect(await sClient(srv.port, { out: sess })).toEqual({ kind: 'New', body: 'node-a' });
      expect((await sClient(srv.port, { in: sess })).kind).toBe('Reused');
      // TLS 1.2 tickets use the same key.
      const sess12 = join(dir, 'rot12.sess');
      await sClient(srv.port, { out: sess12 }, '-tls1_2');
      expect((await sClient(srv.port, { in: sess12 }, '-tls1_2')).kind).toBe('Reused');

      const before = tk.current();
      tk.tick(); // not due yet
      expect(tk.current()).toEqual(before);
      now += 3_600_000;
      tk.tick();
      expect(tk.current()).not.toEqual(before);
      expect(tk.status().rotations).toBe(1);
      // The old "next" key is the new encryption key (HAProxy order); the file follows.
      expect(tk.current()).toEqual(fileKeys[2]);
      expect(parseTicketKeyFile(readFileSync(file, 'utf8'), file)[1]).toEqual(tk.current());
      expect((await sClient(srv.port, { in: sess })).kind).toBe('New');

      // An operator's edit of the file is picked up (watchFile polls every second).
      const mine = [randomBytes(48), randomBytes(48)];
      writeFileSync(file, mine.map((k) => k.toString('base64')).join('\n') + '\n');
      const want = swapLayout(mine[0]);
      const t0 = Date.now();
      while (!tk.current().equals(want) && Date.now() - t0 < 10_000) await new Promise((r) => setTimeout(r, 50));
      expect(tk.current()).toEqual(want);
      expect(tk.status().source).toBe('file');
      const sess2 = join(dir, 'rot2.sess');
      await sClient(srv.port, { out: sess2 });
      expect((await sClient(srv.port, { in: sess2 })).kind).toBe('Reused');
    } finally {
      tk.stop();
      await srv.close();
    }
  });

  it('a file that cannot be used is refused at start with its path', () => {
    const bad = join(dir, 'bad-keys');
    writeFileSync(bad, randomBytes(80).toString('base64') + '\n');
    chmodSync(bad, 0o600);
    const tk = new TicketKeys(ticketsSchema.parse({ file: bad }), { log: silentLogger, active: () => true });
    expect(() => tk.start()).toThrow(/bad-keys:1: an 80-byte/);
  });

  it('HA: the master\'s keys reach the backup sealed; a session from the master resumes on the backup', async () => {
    const haKey = randomBytes(32);
    let masterRole = true;
    const storeA = new StateStore(undefined, silentLogger, 'lb1');
    const storeB = new StateStore(undefined, silentLogger, 'lb2');
    const a = new TicketKeys(ticketsSchema.parse({ rotate: '1h' }), { log: silentLogger, store: storeA, haKey: () => haKey, active: () => masterRole });
    const b = new TicketKeys(ticketsSchema.parse({ rotate: '1h' }), { log: silentLogger, store: storeB, haKey: () => haKey, active: () => !masterRole });
    a.start();
    b.start();
    const sa = await tlsServer('node-a');
    const sb = await tlsServer('node-b');
    a.attach(sa.server);
    b.attach(sb.server);
    try {
      // Before the backup has the master's keys, its own provisional key does not decrypt.
      const sess = join(dir, 'ha.sess');
      expect(await sClient(sa.port, { out: sess })).toEqual({ kind: 'New', body: 'node-a' });
      expect((await sClient(sb.port, { in: sess })).kind).toBe('New');

      const doc = storeA.snapshot();
      const wire = JSON.stringify(doc);
      // Nothing of the keys is readable in the replicated document.
      expect(wire).not.toContain(a.current().subarray(16).toString('hex'));
      expect(wire).not.toContain(a.current().subarray(16).toString('base64'));
      expect(doc.sections.tls_tickets).toMatchObject({ v: 1, keys: expect.stringMatching(/^v1\./) });
      storeB.apply(doc);
      expect(b.current()).toEqual(a.current());
      expect(b.status()).toMatchObject({ source: 'replicated', current: a.status().current, shared: true });
      expect(await sClient(sb.port, { in: sess })).toEqual({ kind: 'Reused', body: 'node-b' });

      // Failover: the new master continues the old master's schedule and rotates for the pair.
      masterRole = false;
      b.onRole();
      a.onRole();
      expect(b.current()).toEqual(a.current());
      // A document sealed with another HA key is refused and changes nothing.
      const other = new StateStore(undefined, silentLogger, 'lbx');
      const x = new TicketKeys(ticketsSchema.parse({}), { log: silentLogger, store: other, haKey: () => randomBytes(32), active: () => false });
      x.start();
      const before = x.current();
      other.apply(doc);
      expect(x.current()).toEqual(before);
      expect(x.status().errors).toBe(1);
      x.stop();
    } finally {
      a.stop(); b.stop();
      await sa.close(); await sb.close();
    }
  });
});
