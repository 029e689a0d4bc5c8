import { EventEmitter } from 'node:events';
import { copyFileSync, mkdirSync, readFileSync, renameSync, writeFileSync, openSync, fsyncSync, closeSync, unlinkSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import type { Logger } from '../log.js';
import { describeIssues, stateDocSchema } from './schema.js';
import { contentHash, LEGACY_NODE, total, type StateVersion } from './version.js';

/**
 * Runtime state that must survive a restart, a reload and a failover: named sections, each owned by
 * one module (backends overlay, scaler clones…). The store persists all sections atomically
 * (write temp file, fsync, rename) and is what the HA pair replicates master → backup.
 *
 *   section provider: export() → JSON value, import(value) → apply it
 *   'change' event:   a section changed (the HA module sends it to the peer)
 *
 * Versions (src/state/version.ts): a version vector (this node's own changes count under its
 * node name) plus a hash of the content. A document applied from the peer brings the peer's
 * version along unchanged, so two nodes with the same content have the same version.
 */
export interface StateSection {
  export(): unknown;
  import(value: unknown): void;
}

export interface StateDoc {
  /** Total number of changes (sum of vv): what files of the old scalar format carry alone. */
  version: number;
  vv: Record<string, number>;
  hash: string;
  node?: string;
  savedAt: string;
  sections: Record<string, unknown>;
}

/** Validate a parsed document (file or peer) with the zod schema; legacy files get a vector. */
export function parseStateDoc(v: unknown): { ok: true; doc: StateDoc } | { ok: false; error: string } {
  const r = stateDocSchema.safeParse(v);
  if (!r.success) return { ok: false, error: describeIssues(r.error) };
  const d = r.data;
  const sections = d.sections as Record<string, unknown>;
  const vv = d.vv ?? (d.version > 0 ? { [LEGACY_NODE]: d.version } : {});
  return { ok: true, doc: { version: total(vv), vv, hash: d.hash ?? contentHash(sections), node: d.node, savedAt: d.savedAt, sections } };
}

export class StateStore extends EventEmitter {
  private sections = new Map<string, StateSection>();
  private saveTimer: NodeJS.Timeout | undefined;
  private loaded: StateDoc | undefined;
  private vv: Record<string, number> = {};
  /** Hash of the current content; undefined = changed since, computed on demand. */
  private hash: string | undefined;
  /** Imports of a peer's document are not local changes. */
  private applying = false;
  /** Saves are numbered; the file is only ever replaced by a newer one (see saveSoon). */
  private saveSeq = 0;
  private writtenSeq = 0;
  private saving = false;
  private saveAgain = false;

  constructor(private readonly dir: string | undefined, private readonly log: Logger, private readonly node?: string) {
    super();
  }

  get file(): string | undefined { return this.dir ? join(this.dir, 'runtime.json') : undefined; }

  /** Total number of changes (for display; compare with currentVersion()). */
  get version(): number { return total(this.vv); }

  /** The node name this store counts its own changes under. */
  get self(): string { return this.node ?? 'local'; }

  currentVersion(): StateVersion {
    if (this.hash === undefined) this.hash = contentHash(this.exportSections());
    return { vv: { ...this.vv }, hash: this.hash };
  }

  /** Read the persisted document (if any). Sections registered later are imported from it. */
  load(): void {
    if (!this.file) return;
    try {
      const r = parseStateDoc(JSON.parse(readFileSync(this.file, 'utf8')));
      if (!r.ok) {
        // Kept aside: the next save would otherwise overwrite the only copy.
        const aside = `${this.file}.invalid-${new Date().toISOString().replace(/[:.]/g, '-')}`;
        try { copyFileSync(this.file, aside); } catch { /* reported below without it */ }
        this.log.error({ file: this.file, error: r.error, keptAs: aside }, 'runtime state invalid; starting from config only');
        return;
      }
      this.loaded = r.doc;
      this.vv = { ...r.doc.vv };
      this.hash = r.doc.hash;
      this.log.info({ file: this.file, version: this.version, vv: this.vv }, 'runtime state loaded');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') this.log.error({ err: e, file: this.file }, 'runtime state unreadable; starting from config only');
    }
  }

  register(name: string, section: StateSection): void {
    this.sections.set(name, section);
    const v = this.loaded?.sections[name];
    if (v !== undefined) this.importing(() => section.import(v));
  }

  /** A section owner calls this after changing its state. */
  changed(name: string): void {
    if (this.applying) return;
    this.vv[this.self] = (this.vv[this.self] ?? 0) + 1;
    this.hash = undefined;
    this.emit('change', name);
    this.scheduleSave();
  }

  private importing(fn: () => void): void {
    this.applying = true;
    try { fn(); } finally { this.applying = false; }
  }

  private exportSections(): Record<string, unknown> {
    const sections: Record<string, unknown> = {};
    for (const [n, s] of this.sections) sections[n] = s.export();
    return sections;
  }

  snapshot(): StateDoc {
    const v = this.currentVersion();
    return { version: total(v.vv), vv: v.vv, hash: v.hash, node: this.node, savedAt: new Date().toISOString(), sections: this.exportSections() };
  }

  /**
   * Apply a validated document from the peer: every known section is replaced and the document's
   * version is adopted as it is (both nodes then show the same version for the same content).
   */
  apply(doc: StateDoc): void {
    this.importing(() => { for (const [n, s] of this.sections) if (doc.sections[n] !== undefined) s.import(doc.sections[n]); });
    this.vv = { ...doc.vv };
    this.hash = doc.hash;
    this.scheduleSave();
  }

  private scheduleSave(): void {
    if (!this.file || this.saveTimer) return;
    this.saveTimer = setTimeout(() => { this.saveTimer = undefined; this.saveSoon(); }, 20);
  }

  /**
   * The debounced save of every change: the write and the fsync run on libuv's thread pool, off
   * this event loop (an fsync takes 1-30 ms on a real disk, more under load: on the data plane's
   * loop that is a stall of every request). Only the rename runs here, and only when no newer save
   * (saveNow) has replaced the file meanwhile, so the file never goes back to an older state.
   */
  private saveSoon(): void {
    const file = this.file;
    if (!file) return;
    if (this.saving) { this.saveAgain = true; return; }
    this.saving = true;
    const seq = ++this.saveSeq;
    const tmp = `${file}.tmp-${seq}`;
    const text = JSON.stringify(this.snapshot(), null, 1);
    void (async () => {
      mkdirSync(dirname(file), { recursive: true, mode: 0o750 });
      const fh = await open(tmp, 'w', 0o640);
      try { await fh.writeFile(text); await fh.sync(); } finally { await fh.close(); }
      if (seq > this.writtenSeq) { renameSync(tmp, file); this.writtenSeq = seq; } else unlinkSync(tmp);
    })().catch((e) => {
      this.log.error({ err: e, file }, 'could not persist runtime state');
      try { unlinkSync(tmp); } catch { /* not there */ }
    }).finally(() => {
      this.saving = false;
      if (this.saveAgain) { this.saveAgain = false; this.saveSoon(); }
    });
  }

  /** Persist now, synchronously (write, fsync, rename): the scaler's write-ahead before an external step, and the last save at stop. */
  saveNow(): void {
    if (this.saveTimer) { clearTimeout(this.saveTimer); this.saveTimer = undefined; }
    const file = this.file;
    if (!file) return;
    const seq = ++this.saveSeq;
    try {
      mkdirSync(dirname(file), { recursive: true, mode: 0o750 });
      const tmp = file + '.tmp';
      writeFileSync(tmp, JSON.stringify(this.snapshot(), null, 1), { mode: 0o640 });
      const fd = openSync(tmp, 'r'); fsyncSync(fd); closeSync(fd);
      renameSync(tmp, file);
      this.writtenSeq = seq;
    } catch (e) {
      this.log.error({ err: e, file }, 'could not persist runtime state');
    }
  }

  close(): void { this.saveNow(); }
}
