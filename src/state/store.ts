import { EventEmitter } from 'node:events';
import { mkdirSync, readFileSync, renameSync, writeFileSync, openSync, fsyncSync, closeSync } from 'node:fs';
import { dirname, join } from 'node:path';
import type { Logger } from '../log.js';

/**
 * Runtime state that must survive a restart, a reload and a failover: named sections, each owned by
 * one module (backends overlay, scaler clones…). The store persists all sections atomically
 * (write temp file, fsync, rename) and is what the HA pair replicates master → backup.
 *
 *   section provider: export() → JSON value, import(value) → apply it
 *   'change' event:   a section changed (the HA module sends it to the peer)
 */
export interface StateSection {
  export(): unknown;
  import(value: unknown): void;
}

export interface StateDoc { version: number; node?: string; savedAt: string; sections: Record<string, unknown> }

export class StateStore extends EventEmitter {
  private sections = new Map<string, StateSection>();
  private saveTimer: NodeJS.Timeout | undefined;
  private loaded: StateDoc | undefined;
  version = 0;

  constructor(private readonly dir: string | undefined, private readonly log: Logger, private readonly node?: string) {
    super();
  }

  get file(): string | undefined { return this.dir ? join(this.dir, 'runtime.json') : undefined; }

  /** Read the persisted document (if any). Sections registered later are imported from it. */
  load(): void {
    if (!this.file) return;
    try {
      this.loaded = JSON.parse(readFileSync(this.file, 'utf8')) as StateDoc;
      this.version = this.loaded.version ?? 0;
      this.log.info({ file: this.file, version: this.version }, 'runtime state loaded');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') this.log.error({ err: e, file: this.file }, 'runtime state unreadable; starting from config only');
    }
  }

  register(name: string, section: StateSection): void {
    this.sections.set(name, section);
    const v = this.loaded?.sections[name];
    if (v !== undefined) section.import(v);
  }

  /** A section owner calls this after changing its state. */
  changed(name: string): void {
    this.version++;
    this.emit('change', name);
    this.scheduleSave();
  }

  snapshot(): StateDoc {
    const sections: Record<string, unknown> = {};
    for (const [n, s] of this.sections) sections[n] = s.export();
    return { version: this.version, node: this.node, savedAt: new Date().toISOString(), sections };
  }

  /** Apply a document from the peer (or a file): every known section is replaced. */
  apply(doc: StateDoc): void {
    for (const [n, s] of this.sections) if (doc.sections[n] !== undefined) s.import(doc.sections[n]);
    this.version = doc.version;
    this.scheduleSave();
  }

  private scheduleSave(): void {
    if (!this.file || this.saveTimer) return;
    this.saveTimer = setTimeout(() => { this.saveTimer = undefined; this.saveNow(); }, 20);
  }

  saveNow(): void {
    if (this.saveTimer) { clearTimeout(this.saveTimer); this.saveTimer = undefined; }
    const file = this.file;
    if (!file) return;
    try {
      mkdirSync(dirname(file), { recursive: true, mode: 0o750 });
      const tmp = file + '.tmp';
      writeFileSync(tmp, JSON.stringify(this.snapshot(), null, 1), { mode: 0o640 });
      const fd = openSync(tmp, 'r'); fsyncSync(fd); closeSync(fd);
      renameSync(tmp, file);
    } catch (e) {
      this.log.error({ err: e, file }, 'could not persist runtime state');
    }
  }

  close(): void { this.saveNow(); }
}
