import { EventEmitter } from 'node:events';
import { randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync, renameSync, mkdirSync, statSync, unwatchFile, watchFile } from 'node:fs';
import { dirname } from 'node:path';
import { z } from 'zod';
import { ticketsSchema, type TicketsConfig } from '../config/tls-tickets.js';
import { PairlbError } from '../errors.js';
import type { Logger } from '../log.js';
import type { StateStore } from '../state/store.js';
import { Sealer } from '../state/sealed.js';

/**
 * TLS session ticket keys (RFC 5077; TLS 1.3 resumption tickets use the same keys in OpenSSL).
 *
 * One set of keys for the whole process, like HAProxy's `tls-ticket-keys`: every TLS server calls
 * `attach(server)`, which sets the current key with `server.setTicketKeys()` now and after every
 * change (rotation, file edit, key received from the peer). What crosses to another thread is the
 * 48-byte `current()` key and the 'change' event: nothing else.
 *
 * Keys, oldest first, as in HAProxy's file: the second to last encrypts (HAProxy's rule, so the
 * last one is already known to every node before it is used). Node's public API takes one key
 * (`setTicketKeys`, 48 bytes: name ‖ HMAC key ‖ AES-128 key), which both encrypts and decrypts:
 * a ticket issued under the previous key gets a full handshake after a rotation.
 *
 * Rotation (`rotate` > 0): the active node (master or standalone) drops the oldest key and appends
 * a new random one every `rotate`, counting from the last rotation (kept with the keys, so a new
 * master continues the schedule instead of restarting it). With `file`, the keys are read from it
 * at start and when it changes, and every rotation is written back to it atomically (mode 0600).
 *
 * HA: the keys are a section of the replicated runtime state, sealed with a key derived from the
 * HA key (state/sealed.ts), so they cross the link and rest in state_dir encrypted and
 * authenticated. Only the active node generates or rotates; the backup applies what the master
 * sends and serves with it at once after a failover, so clients resume their sessions.
 */

export { ticketsSchema, type TicketsConfig };

export const TICKET_KEY_BYTES = 48;
const SECTION = 'tls_tickets';
/** setTimeout's largest delay. */
const MAX_TIMER = 2 ** 31 - 1;

/** HAProxy key layout (name ‖ aes ‖ hmac) → Node's (name ‖ hmac ‖ aes). The same swap reverses it. */
export function swapLayout(k: Buffer): Buffer {
  return Buffer.concat([k.subarray(0, 16), k.subarray(32, 48), k.subarray(16, 32)]);
}

/** Parse a HAProxy tls-ticket-keys file into Node-layout keys, oldest first; throws with the line. */
export function parseTicketKeyFile(text: string, file: string): Buffer[] {
  const keys: Buffer[] = [];
  text.split('\n').forEach((raw, i) => {
    const line = raw.trim();
    if (!line || line.startsWith('#')) return;
    const b = Buffer.from(line, 'base64');
    if (!/^[A-Za-z0-9+/]+={0,2}$/.test(line) || b.toString('base64').replace(/=+$/, '') !== line.replace(/=+$/, '')) {
      throw new PairlbError('PAIRLB_TLS_TICKET_KEYS', `${file}:${i + 1}: not base64`);
    }
    if (b.length === 80) throw new PairlbError('PAIRLB_TLS_TICKET_KEYS', `${file}:${i + 1}: an 80-byte (AES-256) key; pairlb takes 48-byte keys (Node's ticket API is AES-128): openssl rand 48 | base64 -w0`);
    if (b.length !== TICKET_KEY_BYTES) throw new PairlbError('PAIRLB_TLS_TICKET_KEYS', `${file}:${i + 1}: ${b.length} bytes, expected ${TICKET_KEY_BYTES}`);
    keys.push(swapLayout(b));
  });
  if (!keys.length) throw new PairlbError('PAIRLB_TLS_TICKET_KEYS', `${file}: no key`);
  return keys;
}

export function formatTicketKeyFile(keys: Buffer[]): string {
  return '# pairlb TLS ticket keys (HAProxy tls-ticket-keys format), oldest first; the second to last encrypts\n'
    + keys.map((k) => swapLayout(k).toString('base64')).join('\n') + '\n';
}

/** The key that encrypts: the second to last (the only one when there is one). */
export function encryptionKey(keys: Buffer[]): Buffer {
  return keys[Math.max(0, keys.length - 2)];
}

/** One rotation: the oldest keys go so that `keep` remain with the new one appended. */
export function rotateKeys(keys: Buffer[], keep: number, fresh: Buffer): Buffer[] {
  const next = [...keys, fresh];
  return next.slice(Math.max(0, next.length - keep));
}

/** When the next rotation is due (undefined: never). */
export function nextRotationAt(rotatedAt: number, rotateMs: number): number | undefined {
  return rotateMs > 0 ? rotatedAt + rotateMs : undefined;
}

export interface TicketServer { setTicketKeys(keys: Buffer): void }

export interface TicketKeysStatus {
  source: 'file' | 'generated' | 'replicated';
  file?: string;
  keys: number;
  /** Hex name of the encryption key (public: it is sent in every ticket). Equal on both nodes when shared. */
  current: string;
  rotatedAt: string;
  nextRotation?: string;
  /** Replicated to the peer (HA with a key). */
  shared: boolean;
  rotations: number;
  errors: number;
  lastError?: string;
}

export interface TicketKeysOptions {
  log: Logger;
  /** HA key (read at start): the keys join the replicated state, sealed with it. */
  haKey?: () => Buffer | undefined;
  store?: StateStore;
  /** True on the node that may rotate: master or standalone. */
  active(): boolean;
  now?: () => number;
}

const sectionSchema = z.object({ v: z.literal(1), keys: z.string(), rotatedAt: z.number() }).passthrough();

export class TicketKeys extends EventEmitter {
  private cfg: TicketsConfig;
  private keys: Buffer[] = [];
  private rotatedAt = 0;
  private source: TicketKeysStatus['source'] = 'generated';
  /** No key yet from the file, the store or a rotation: a random key for this process only. */
  private provisional = true;
  private sealer: Sealer | undefined;
  private sealed: { of: string; value: string } | undefined;
  private timer: NodeJS.Timeout | undefined;
  private watching: string | undefined;
  private readonly servers = new Set<TicketServer>();
  private rotations = 0;
  private errors = 0;
  private lastError: string | undefined;
  private readonly now: () => number;
  private started = false;
  /** Importing state_dir/runtime.json at start: a keys file edited since then wins over it. */
  private fromDisk = false;

  constructor(cfg: TicketsConfig | undefined, private readonly o: TicketKeysOptions) {
    super();
    this.cfg = cfg ?? ticketsSchema.parse({});
    this.now = o.now ?? Date.now;
    this.keys = Array.from({ length: this.cfg.keep }, () => randomBytes(TICKET_KEY_BYTES));
    this.rotatedAt = this.now();
  }

  /** The 48-byte key for `setTicketKeys`. */
  current(): Buffer { return encryptionKey(this.keys); }

  /** Set the current key on `server` now and after every change; returns the detach function. */
  attach(server: TicketServer): () => void {
    server.setTicketKeys(this.current());
    this.servers.add(server);
    return () => { this.servers.delete(server); };
  }

  start(): void {
    if (this.started) return;
    this.started = true;
    const haKey = this.o.store ? this.o.haKey?.() : undefined;
    this.sealer = haKey ? new Sealer(haKey, SECTION) : undefined;
    if (this.cfg.file) this.loadFile(true);
    if (this.sealer) {
      this.fromDisk = true;
      try { this.o.store!.register(SECTION, { export: () => this.exportSection(), import: (v) => this.importSection(v) }); } finally { this.fromDisk = false; }
    }
    this.watch();
    this.onRole();
  }

  /** Role changed (or start): the node that became active takes over the schedule. */
  onRole(): void {
    if (!this.started) return;
    if (this.o.active() && this.provisional && this.cfg.rotate > 0) {
      // Nothing from the file, the disk or the peer: this node's keys become the pair's.
      this.provisional = false;
      this.source = 'generated';
      this.rotatedAt = this.now();
      this.publish('generated');
    }
    this.schedule();
  }

  reload(cfg: TicketsConfig | undefined): void {
    const next = cfg ?? ticketsSchema.parse({});
    const fileChanged = next.file !== this.cfg.file;
    this.cfg = next;
    if (fileChanged && next.file) this.loadFile(false);
    this.watch();
    this.schedule();
  }

  stop(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    if (this.watching) unwatchFile(this.watching);
    this.watching = undefined;
    this.servers.clear();
  }

  /** Rotate now if due (the timer calls it; tests call it with their clock). */
  tick(): void {
    const due = nextRotationAt(this.rotatedAt, this.cfg.rotate);
    if (due === undefined || !this.o.active() || this.now() < due) { this.schedule(); return; }
    this.keys = rotateKeys(this.keys, this.cfg.keep, randomBytes(TICKET_KEY_BYTES));
    this.rotatedAt = this.now();
    this.provisional = false;
    this.source = 'generated';
    this.rotations++;
    this.o.log.info({ current: this.current().subarray(0, 16).toString('hex'), keys: this.keys.length }, 'tls ticket keys rotated');
    this.publish('rotated');
    this.schedule();
  }

  status(): TicketKeysStatus {
    const next = nextRotationAt(this.rotatedAt, this.cfg.rotate);
    return {
      source: this.source,
      file: this.cfg.file,
      keys: this.keys.length,
      current: this.current().subarray(0, 16).toString('hex'),
      rotatedAt: new Date(this.rotatedAt).toISOString(),
      nextRotation: next !== undefined ? new Date(next).toISOString() : undefined,
      shared: !!this.sealer,
      rotations: this.rotations,
      errors: this.errors,
      lastError: this.lastError,
    };
  }

  private schedule(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    const due = nextRotationAt(this.rotatedAt, this.cfg.rotate);
    if (!this.started || due === undefined || !this.o.active()) return;
    this.timer = setTimeout(() => { this.timer = undefined; this.tick(); }, Math.min(MAX_TIMER, Math.max(0, due - this.now())));
    this.timer.unref();
  }

  /** A change made here: servers, file, peer. */
  private publish(why: string): void {
    this.apply();
    if (this.cfg.file) this.writeFile();
    if (this.sealer) this.o.store!.changed(SECTION);
    this.o.log.debug({ why, current: this.current().subarray(0, 16).toString('hex') }, 'tls ticket keys published');
  }

  private apply(): void {
    const k = this.current();
    for (const s of this.servers) {
      try { s.setTicketKeys(k); } catch (e) { this.fail(`setTicketKeys: ${(e as Error).message}`); }
    }
    this.emit('change', k);
  }

  private fail(msg: string): void {
    this.errors++;
    this.lastError = msg;
    this.o.log.error({ error: msg }, 'tls ticket keys');
  }

  private sameKeys(keys: Buffer[]): boolean {
    return keys.length === this.keys.length && keys.every((k, i) => k.equals(this.keys[i]));
  }

  private loadFile(atStart: boolean): void {
    const file = this.cfg.file!;
    let text: string;
    try { text = readFileSync(file, 'utf8'); } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT' && this.cfg.rotate > 0) {
        // Created with this process's keys at the first publish (start as active, or from the peer).
        if (!atStart) this.writeFile();
        return;
      }
      if (atStart) throw new PairlbError('PAIRLB_TLS_TICKET_KEYS', `tls_tickets.file ${file}: ${(e as Error).message}`);
      this.fail(`${file}: ${(e as Error).message}`);
      return;
    }
    let keys: Buffer[];
    try { keys = parseTicketKeyFile(text, file); } catch (e) {
      if (atStart) throw e;
      this.fail((e as Error).message);
      return;
    }
    if (this.sameKeys(keys)) return;
    if (!atStart && this.sealer && !this.o.active()) {
      this.o.log.warn({ file }, 'tls ticket keys file changed on the backup: ignored, the master\'s keys are shared (edit it on the master)');
      return;
    }
    this.keys = keys;
    this.provisional = false;
    this.source = 'file';
    this.rotatedAt = this.fileTime(file) ?? this.now();
    this.o.log.info({ file, keys: keys.length, current: this.current().subarray(0, 16).toString('hex') }, 'tls ticket keys loaded');
    if (atStart) { this.apply(); return; }
    this.apply();
    if (this.sealer) this.o.store!.changed(SECTION);
  }

  private fileTime(file: string): number | undefined {
    try { return statSync(file).mtimeMs; } catch { return undefined; }
  }

  private writeFile(): void {
    const file = this.cfg.file!;
    try {
      mkdirSync(dirname(file), { recursive: true, mode: 0o750 });
      const tmp = `${file}.tmp`;
      writeFileSync(tmp, formatTicketKeyFile(this.keys), { mode: 0o600 });
      renameSync(tmp, file);
    } catch (e) { this.fail(`${file}: ${(e as Error).message}`); }
  }

  private watch(): void {
    const want = this.cfg.file;
    if (this.watching === want) return;
    if (this.watching) unwatchFile(this.watching);
    this.watching = want;
    if (want) watchFile(want, { interval: 1000, persistent: false }, (cur, prev) => { if (cur.mtimeMs !== prev.mtimeMs || cur.size !== prev.size) this.loadFile(false); });
  }

  private exportSection(): unknown {
    if (this.provisional) return null;
    const plain = Buffer.concat(this.keys);
    const of = plain.toString('hex');
    if (this.sealed?.of !== of) this.sealed = { of, value: this.sealer!.seal(plain) };
    return { v: 1, keys: this.sealed.value, rotatedAt: this.rotatedAt };
  }

  /** The section from runtime.json at start, or from the master. */
  private importSection(v: unknown): void {
    if (v === null || v === undefined) return;
    const r = sectionSchema.safeParse(v);
    const plain = r.success ? this.sealer!.open(r.data.keys) : undefined;
    if (!r.success || !plain || plain.length === 0 || plain.length % TICKET_KEY_BYTES !== 0) {
      this.fail('replicated tls ticket keys could not be opened (a different ha.key_file on the two nodes?): not applied');
      return;
    }
    if (this.fromDisk && this.source === 'file' && r.data.rotatedAt < this.rotatedAt) return;
    const keys: Buffer[] = [];
    for (let i = 0; i < plain.length; i += TICKET_KEY_BYTES) keys.push(plain.subarray(i, i + TICKET_KEY_BYTES));
    this.sealed = { of: plain.toString('hex'), value: r.data.keys };
    const changed = !this.sameKeys(keys);
    this.keys = keys;
    this.rotatedAt = r.data.rotatedAt;
    this.provisional = false;
    if (changed) {
      this.source = 'replicated';
      this.apply();
      if (this.cfg.file) this.writeFile();
      this.o.log.info({ current: this.current().subarray(0, 16).toString('hex'), keys: keys.length }, 'tls ticket keys applied from the replicated state');
    }
    this.schedule();
  }
}
