import type { FileEntry } from '../protocol/index.js';
import type { FileRecord, ScanState } from './delta.js';
import type { FileVersion } from './hash.js';

/** The files a share lists now, by name; the sorted listing is built once per change. */
export class FileTable {
  /** By name (what `takeDelta` compares a scan's `before` with). */
  readonly records = new Map<string, FileRecord>();
  private sorted: FileEntry[] | null = null;

  get size(): number {
    return this.records.size;
  }

  get(name: string): FileRecord | undefined {
    return this.records.get(name);
  }

  has(name: string): boolean {
    return this.records.has(name);
  }

  /** Current entries, sorted by name (a copy the caller may keep). */
  list(): FileEntry[] {
    if (this.sorted === null) {
      this.sorted = [...this.records.values()]
        .map((record) => record.entry)
        .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    }
    return [...this.sorted];
  }

  /** Sets `name` to the state it was hashed in (undefined: no longer shared), noting in `state` what it was. */
  set(state: ScanState, name: string, next: (FileVersion & { sha256: string }) | undefined): void {
    if (!state.before.has(name)) state.before.set(name, this.records.get(name)?.entry);
    if (next === undefined) {
      this.records.delete(name);
    } else {
      const entry: FileEntry = Object.freeze({
        name,
        size: next.size,
        sha256: next.sha256,
        mtimeMs: next.mtimeMs,
      });
      this.records.set(name, { entry, ctimeMs: next.ctimeMs, ino: next.ino, dev: next.dev });
    }
    this.sorted = null;
  }
}
