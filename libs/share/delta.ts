import type { FileEntry } from '../protocol/index.js';
import type { FileVersion } from './hash.js';

/** Net difference between two states of the share: new or modified files, and names no longer shared. */
export interface ShareChange {
  upserted: FileEntry[];
  removed: string[];
}

/** Past this many touched paths in one batch a full walk is cheaper than one subtree pass per path. */
const MAX_TARGETED_PATHS = 64;

/** Per shared file: its entry (shared with every list()) and the rest of the state it was hashed in. */
export interface FileRecord {
  entry: FileEntry;
  ctimeMs: number;
  ino: number;
  dev: number;
}

export interface ScanState {
  /** State of each name before this scan (or this announced batch of it) first touched it. */
  before: Map<string, FileEntry | undefined>;
  /** Names that vanished or turned into symlinks while read: look again soon. */
  retry: Set<string>;
  lastEmitAt: number;
}

export function newState(): ScanState {
  return { before: new Map(), retry: new Set(), lastEmitAt: Date.now() };
}

/** The net delta since `state.before` was last cleared; clears it. */
export function takeDelta(state: ScanState, files: ReadonlyMap<string, FileRecord>): ShareChange {
  const change: ShareChange = { upserted: [], removed: [] };
  for (const [name, previous] of state.before) {
    const current = files.get(name)?.entry;
    if (current === undefined) {
      if (previous !== undefined) change.removed.push(name);
    } else if (
      previous === undefined ||
      previous.sha256 !== current.sha256 ||
      previous.size !== current.size ||
      previous.mtimeMs !== current.mtimeMs
    ) {
      change.upserted.push(current);
    }
  }
  state.before.clear();
  change.upserted.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  change.removed.sort();
  return change;
}

export function recordVersion(record: FileRecord): FileVersion {
  const { entry } = record;
  return {
    size: entry.size,
    mtimeMs: entry.mtimeMs,
    ctimeMs: record.ctimeMs,
    ino: record.ino,
    dev: record.dev,
  };
}

export function isUnder(name: string, prefix: string): boolean {
  return prefix === '' || name === prefix || name.startsWith(`${prefix}/`);
}

/** Drops targets inside other targets; too many targets (or a null set) become one full walk. */
export function topmostTargets(targets: ReadonlySet<string> | null): string[] {
  if (targets === null || targets.has('') || targets.size > MAX_TARGETED_PATHS) return [''];
  return [...targets].filter((target) => {
    const segments = target.split('/');
    for (let i = 1; i < segments.length; i++) {
      if (targets.has(segments.slice(0, i).join('/'))) return false;
    }
    return true;
  });
}
