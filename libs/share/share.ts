import { EventEmitter } from 'node:events';
import type { Dirent, Stats } from 'node:fs';
import { lstat, mkdir, readdir, realpath } from 'node:fs/promises';
import path from 'node:path';
import { type FSWatcher, watch } from 'chokidar';
import { z } from 'zod';
import { P2PError } from '../errors/index.js';
import { type Log, silentLog } from '../logging/index.js';
import { type FileEntry, FileNameSchema } from '../protocol/index.js';
import { type FileVersion, forEachLimit, hashIfStable, sameVersion, versionOf } from './hash.js';
import { type HashCacheRecord, loadHashCache, saveHashCache } from './hash-cache.js';

export interface ShareOptions {
  /** Absolute or relative path of the shared directory; created if missing. */
  dir: string;
  /** Periodic full rescan as a safety net behind the watcher. Default 10_000. 0 disables. */
  rescanIntervalMs?: number;
  /** Quiet time after a watcher event before re-scanning the touched paths (coalesces bursts). Default 150. */
  debounceMs?: number;
  /** Files hashed at once. Default 2. */
  hashConcurrency?: number;
  /** Optional logger with warn/info/debug(message, meta) — winston-compatible; default: silent. */
  logger?: Log;
}

/** Net difference between two states of the share: new or modified files, and names no longer shared. */
export interface ShareChange {
  upserted: FileEntry[];
  removed: string[];
}

export interface SharedFile {
  entry: FileEntry;
  /** Where the bytes are, under `Share.root`. */
  absPath: string;
}

export interface ShareEvents {
  change: [ShareChange];
  error: [Error];
}

const OptionsSchema = z.object({
  dir: z.string().min(1),
  rescanIntervalMs: z.number().int().min(0).default(10_000),
  debounceMs: z.number().int().min(0).default(150),
  hashConcurrency: z.number().int().min(1).max(64).default(2),
});

/** A continuous stream of watcher events must not postpone the announcement forever (the goal is < 2 s). */
const MIN_MAX_BATCH_WAIT_MS = 1000;
/** Past this many touched paths in one batch a full walk is cheaper than one subtree pass per path. */
const MAX_TARGETED_PATHS = 64;
const CACHE_SAVE_DELAY_MS = 1000;
/** lstat calls in flight while walking one directory. */
const STAT_CONCURRENCY = 32;

interface FileRecord {
  entry: FileEntry;
  ino: number;
}

interface ScanState {
  /** State of each name before this scan first touched it (undefined: was not shared). */
  before: Map<string, FileEntry | undefined>;
  /** Names whose hash could not be trusted (file changing while read): scan them again soon. */
  retry: Set<string>;
}

/**
 * One shared directory: its regular files (recursively) with their SHA-256, kept current by a watcher plus a
 * periodic rescan, and announced as net deltas through the 'change' event.
 *
 * What is shared:
 * - regular files only; any path segment starting with `.` is skipped (the peer's state in `.p2p/`, partial
 *   downloads, VCS folders…);
 * - symlinks are never followed, whether they point inside or outside the share: a link's target can change
 *   between our check and a later HTTP read, and directory links can form cycles. Only real files under the
 *   real root are shared, so no walk can loop;
 * - names that fail `FileNameSchema` are skipped with one warning per name.
 *
 * The initial scan in `start()` emits no 'change' (read `list()` after it); every later scan emits one
 * 'change' per batch, only when something changed. 'error' is emitted only if someone listens for it;
 * otherwise the problem is logged as a warning, so a missing listener never crashes the process.
 */
export class Share extends EventEmitter<ShareEvents> {
  private readonly dir: string;
  private readonly rescanIntervalMs: number;
  private readonly debounceMs: number;
  private readonly maxBatchWaitMs: number;
  private readonly hashConcurrency: number;
  private readonly logger: Log;

  private realRoot: string | undefined;
  private readonly files = new Map<string, FileRecord>();
  private sorted: FileEntry[] | null = null;
  /** What the previous run persisted; consulted by the initial scan only. */
  private loadedCache = new Map<string, HashCacheRecord>();
  private readonly warnedNames = new Set<string>();
  private readonly loggedSymlinks = new Set<string>();
  private hashCount = 0;

  private startPromise: Promise<void> | undefined;
  private closePromise: Promise<void> | undefined;
  private closed = false;
  private readonly abort = new AbortController();
  private watcher: FSWatcher | undefined;
  private rescanTimer: NodeJS.Timeout | undefined;

  /** Scans run one at a time so each sees the state the previous one left. */
  private queue: Promise<unknown> = Promise.resolve();
  private queuedFullScan: Promise<ShareChange> | null = null;

  private pendingPaths = new Set<string>();
  private debounceTimer: NodeJS.Timeout | undefined;
  private batchStartedAt: number | null = null;

  private cacheDirty = false;
  private saveTimer: NodeJS.Timeout | undefined;
  private saving: Promise<void> = Promise.resolve();

  constructor(options: ShareOptions) {
    super();
    const parsed = OptionsSchema.safeParse(options);
    if (!parsed.success) {
      throw new P2PError('CONFIG_INVALID', `share options: ${z.prettifyError(parsed.error)}`, {
        cause: parsed.error,
      });
    }
    this.dir = path.resolve(parsed.data.dir);
    this.rescanIntervalMs = parsed.data.rescanIntervalMs;
    this.debounceMs = parsed.data.debounceMs;
    this.maxBatchWaitMs = Math.max(MIN_MAX_BATCH_WAIT_MS, this.debounceMs);
    this.hashConcurrency = parsed.data.hashConcurrency;
    this.logger = options.logger ?? silentLog;
  }

  /** Real path of the share root (after realpath); before `start()`, the resolved `dir`. */
  get root(): string {
    return this.realRoot ?? this.dir;
  }

  /** Files whose content has been read to compute a hash since this object was created. */
  get hashesComputed(): number {
    return this.hashCount;
  }

  get fileCount(): number {
    return this.files.size;
  }

  /** Current files, sorted by name. */
  list(): FileEntry[] {
    if (this.sorted === null) {
      this.sorted = [...this.files.values()]
        .map((record) => record.entry)
        .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    }
    return [...this.sorted];
  }

  /** Lookup by exact name; undefined for anything not currently shared. */
  get(name: string): SharedFile | undefined {
    if (typeof name !== 'string') return undefined;
    const record = this.files.get(name);
    if (record === undefined) return undefined;
    return { entry: record.entry, absPath: this.absPath(name) };
  }

  /** Initial full scan (resolves when every file is hashed), then starts watching + periodic rescan. */
  start(): Promise<void> {
    this.startPromise ??= this.doStart();
    return this.startPromise;
  }

  private async doStart(): Promise<void> {
    try {
      await mkdir(this.dir, { recursive: true });
      this.realRoot = await realpath(this.dir);
    } catch (err) {
      throw new P2PError('IO_ERROR', `share directory ${this.dir} is not usable: ${(err as Error).message}`, {
        cause: err,
        details: { dir: this.dir },
      });
    }
    this.loadedCache = await loadHashCache(this.root, this.logger);
    const loadedCount = this.loadedCache.size;
    if (this.closed) return;

    // Watch before the initial scan: whatever changes while we hash is then queued, not missed.
    await this.startWatcher();
    if (this.closed) return;

    const hashesBefore = this.hashCount;
    await this.enqueue(() => this.scan(null, false));
    // Closed mid-scan: keep the loaded records (persistCache merges them) so the next start loses nothing.
    if (this.closed) return;
    // Every record now comes from the loaded cache or a fresh hash; the file needs rewriting only if any
    // record was hashed or a cached one disappeared.
    this.cacheDirty = this.hashCount > hashesBefore || this.files.size !== loadedCount;
    this.loadedCache = new Map();
    this.scheduleCacheSave();

    if (this.rescanIntervalMs > 0 && !this.closed) {
      this.rescanTimer = setInterval(() => {
        this.rescan().catch((err) => this.reportError(err));
      }, this.rescanIntervalMs);
      this.rescanTimer.unref();
    }
    this.logger.info('share: ready', { root: this.root, files: this.files.size, hashed: this.hashCount });
  }

  close(): Promise<void> {
    this.closePromise ??= this.doClose();
    return this.closePromise;
  }

  private async doClose(): Promise<void> {
    this.closed = true;
    this.abort.abort(new P2PError('IO_ERROR', 'share closed'));
    clearInterval(this.rescanTimer);
    clearTimeout(this.debounceTimer);
    clearTimeout(this.saveTimer);
    this.pendingPaths.clear();
    // start() notices `closed` at its next step; only then is the watcher it may be creating known.
    if (this.startPromise) await this.startPromise.catch(() => undefined);
    await this.watcher?.close();
    await this.queue;
    await this.persistCache();
  }

  /** Re-scan now (used by the periodic timer and callable by tests); emits 'change' if anything changed; resolves with the change (empty arrays if none). */
  rescan(): Promise<ShareChange> {
    if (this.realRoot === undefined) {
      return Promise.reject(new P2PError('USAGE', 'Share.rescan() called before start() finished'));
    }
    if (this.closed) return Promise.resolve({ upserted: [], removed: [] });
    // A full scan that has not begun yet will see everything this caller wants to see.
    if (this.queuedFullScan !== null) return this.queuedFullScan;
    const run = this.enqueue(() => {
      this.queuedFullScan = null;
      return this.scan(null, true);
    });
    this.queuedFullScan = run;
    return run;
  }

  // ---- watching -------------------------------------------------------------------------------------------

  private async startWatcher(): Promise<void> {
    const watcher = watch(this.root, {
      ignoreInitial: true,
      followSymlinks: false,
      // Stability is checked around hashing instead (hashIfStable), which also covers the periodic rescan.
      awaitWriteFinish: false,
      ignored: (p: string) => this.isIgnoredAbsPath(p),
    });
    this.watcher = watcher;
    watcher.on('all', (_event, p) => this.onWatchEvent(p));
    watcher.on('error', (err) => this.reportError(err instanceof Error ? err : new Error(String(err))));
    await new Promise<void>((resolve) => {
      watcher.once('ready', resolve);
      // close() during start must not wait for a walk of the whole tree.
      this.abort.signal.addEventListener('abort', () => resolve(), { once: true });
    });
  }

  private isIgnoredAbsPath(absPath: string): boolean {
    const rel = path.relative(this.root, absPath);
    // Paths outside the root begin with '..', which the dot-segment rule already rejects.
    return rel !== '' && rel.split(path.sep).some((segment) => segment.startsWith('.'));
  }

  private onWatchEvent(absPath: string): void {
    const rel = path.relative(this.root, absPath);
    if (path.isAbsolute(rel) || rel.startsWith('..')) return;
    this.touch(rel.split(path.sep).join('/'));
  }

  /** Marks a relative path ('' = everything) for the next coalesced scan. */
  private touch(relPath: string): void {
    if (this.closed) return;
    this.pendingPaths.add(relPath);
    const now = Date.now();
    this.batchStartedAt ??= now;
    const delayMs = Math.max(0, Math.min(this.debounceMs, this.batchStartedAt + this.maxBatchWaitMs - now));
    clearTimeout(this.debounceTimer);
    this.debounceTimer = setTimeout(() => this.flushPending(), delayMs);
  }

  private flushPending(): void {
    this.debounceTimer = undefined;
    this.batchStartedAt = null;
    const targets = this.pendingPaths;
    this.pendingPaths = new Set();
    if (targets.size === 0 || this.closed) return;
    this.enqueue(() => this.scan(targets, true)).catch((err) => this.reportError(err));
  }

  // ---- scanning -------------------------------------------------------------------------------------------

  private enqueue<T>(task: () => Promise<T>): Promise<T> {
    const run = this.queue.then(task);
    this.queue = run.then(
      () => undefined,
      () => undefined,
    );
    return run;
  }

  /** Scans `targets` (relative paths; null = the whole share) and returns, and optionally emits, the net delta. */
  private async scan(targets: ReadonlySet<string> | null, emit: boolean): Promise<ShareChange> {
    const state: ScanState = { before: new Map(), retry: new Set() };
    if (this.closed) return { upserted: [], removed: [] };
    for (const target of topmostTargets(targets)) {
      if (this.closed) break;
      await this.scanSubtree(target, state);
    }

    const change: ShareChange = { upserted: [], removed: [] };
    for (const [name, previous] of state.before) {
      const current = this.files.get(name)?.entry;
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
    change.upserted.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    change.removed.sort();

    if (this.closed) return change;
    for (const name of state.retry) this.touch(name);
    this.scheduleCacheSave();
    if (emit && (change.upserted.length > 0 || change.removed.length > 0)) {
      this.logger.debug('share: changed', {
        upserted: change.upserted.length,
        removed: change.removed.length,
      });
      this.emit('change', change);
    }
    return change;
  }

  private async scanSubtree(target: string, state: ScanState): Promise<void> {
    const segments = target === '' ? [] : target.split('/');
    if (segments.some((segment) => segment === '' || segment.startsWith('.'))) return;

    // Events can name a path under something that has since become a file, a symlink or nothing; then the
    // highest such ancestor is what really changed.
    let effective = target;
    for (let i = 1; i < segments.length; i++) {
      const prefix = segments.slice(0, i).join('/');
      const stats = await this.lstatOrUndefined(prefix);
      if (stats === undefined || !stats.isDirectory()) {
        effective = prefix;
        break;
      }
    }

    const found = new Map<string, FileVersion>();
    if (effective === '') {
      await this.walk('', found, true);
    } else {
      const stats = await this.lstatOrUndefined(effective);
      if (stats?.isDirectory()) await this.walk(effective, found, false);
      else if (stats !== undefined) this.consider(effective, stats, found);
    }
    if (this.closed) return;

    for (const name of this.files.keys()) {
      if (isUnder(name, effective) && !found.has(name)) this.setFile(state, name, undefined);
    }

    const toHash: [string, FileVersion][] = [];
    for (const [name, version] of found) {
      const current = this.files.get(name);
      if (current !== undefined && sameVersion(recordVersion(current), version)) continue;
      const cached = this.loadedCache.get(name);
      if (cached !== undefined && sameVersion(cached, version)) {
        this.setFile(state, name, { ...version, sha256: cached.sha256 });
        continue;
      }
      toHash.push([name, version]);
    }

    await forEachLimit(toHash, this.hashConcurrency, async ([name, version]) => {
      if (this.closed) return;
      this.hashCount++;
      try {
        const result = await hashIfStable(this.absPath(name), version, this.abort.signal);
        if (result.stable) {
          this.setFile(state, name, { ...version, sha256: result.sha256 });
          return;
        }
        // Its old hash no longer describes the bytes on disk, and the new one is not known yet.
        this.logger.debug('share: file changed while hashing, will retry', { name });
        state.retry.add(name);
      } catch (err) {
        if (this.closed) return;
        const code = (err as NodeJS.ErrnoException).code;
        this.logger.warn('share: skipping file that could not be read', {
          name,
          code,
          error: (err as Error).message,
        });
        // Vanished or swapped for a symlink (ELOOP from O_NOFOLLOW): a later event will tell what it became.
        if (code === 'ENOENT' || code === 'ELOOP') state.retry.add(name);
      }
      if (this.files.has(name)) this.setFile(state, name, undefined);
    });
  }

  /** Collects shareable regular files under `relDir` into `found`. Never follows symlinks. */
  private async walk(relDir: string, found: Map<string, FileVersion>, isRoot: boolean): Promise<void> {
    const dirs = [relDir];
    while (dirs.length > 0 && !this.closed) {
      const dir = dirs.pop() as string;
      let dirents: Dirent[];
      try {
        dirents = await readdir(this.absPath(dir), { withFileTypes: true });
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        if (isRoot && dir === '') {
          this.reportError(
            new P2PError('IO_ERROR', `cannot read share directory ${this.root}: ${(err as Error).message}`, {
              cause: err,
              details: { root: this.root, code },
            }),
          );
        } else if (code !== 'ENOENT' && code !== 'ENOTDIR') {
          this.logger.warn('share: skipping unreadable directory', { name: dir, code });
        }
        continue;
      }
      const candidates: string[] = [];
      for (const dirent of dirents) {
        if (dirent.name.startsWith('.')) continue;
        const rel = dir === '' ? dirent.name : `${dir}/${dirent.name}`;
        if (dirent.isDirectory()) dirs.push(rel);
        else if (dirent.isFile()) candidates.push(rel);
        else if (dirent.isSymbolicLink()) this.noteSymlink(rel);
      }
      await forEachLimit(candidates, STAT_CONCURRENCY, async (rel) => {
        const stats = await this.lstatOrUndefined(rel);
        if (stats !== undefined) this.consider(rel, stats, found);
      });
    }
  }

  private consider(name: string, stats: Stats, found: Map<string, FileVersion>): void {
    if (stats.isSymbolicLink()) {
      this.noteSymlink(name);
      return;
    }
    if (!stats.isFile()) return;
    if (!FileNameSchema.safeParse(name).success) {
      if (!this.warnedNames.has(name)) {
        this.warnedNames.add(name);
        this.logger.warn('share: skipping file whose name cannot be shared', { name: JSON.stringify(name) });
      }
      return;
    }
    found.set(name, versionOf(stats));
  }

  private noteSymlink(name: string): void {
    if (this.loggedSymlinks.has(name)) return;
    this.loggedSymlinks.add(name);
    this.logger.debug('share: skipping symlink (symlinks are never shared)', { name });
  }

  private async lstatOrUndefined(rel: string): Promise<Stats | undefined> {
    try {
      return await lstat(this.absPath(rel));
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code !== 'ENOENT' && code !== 'ENOTDIR') {
        this.logger.warn('share: cannot stat path, skipping it', { name: rel, code });
      }
      return undefined;
    }
  }

  private setFile(
    state: ScanState,
    name: string,
    next: (FileVersion & { sha256: string }) | undefined,
  ): void {
    if (!state.before.has(name)) state.before.set(name, this.files.get(name)?.entry);
    if (next === undefined) {
      this.files.delete(name);
    } else {
      const entry: FileEntry = Object.freeze({
        name,
        size: next.size,
        sha256: next.sha256,
        mtimeMs: next.mtimeMs,
      });
      this.files.set(name, { entry, ino: next.ino });
    }
    this.sorted = null;
    this.cacheDirty = true;
  }

  private absPath(rel: string): string {
    return rel === '' ? this.root : path.join(this.root, ...rel.split('/'));
  }

  // ---- cache persistence ----------------------------------------------------------------------------------

  private scheduleCacheSave(): void {
    if (!this.cacheDirty || this.saveTimer !== undefined || this.closed) return;
    this.saveTimer = setTimeout(() => {
      this.saveTimer = undefined;
      void this.persistCache();
    }, CACHE_SAVE_DELAY_MS);
    this.saveTimer.unref();
  }

  /** Writes the cache if it changed; saves never overlap, so an older snapshot cannot land last. */
  private persistCache(): Promise<void> {
    this.saving = this.saving.then(async () => {
      if (!this.cacheDirty || this.realRoot === undefined) return;
      this.cacheDirty = false;
      // loadedCache is empty once the initial scan is done; before that it holds what was not checked yet.
      const records: [string, HashCacheRecord][] = [...this.loadedCache].filter(
        ([name]) => !this.files.has(name),
      );
      for (const [name, { entry, ino }] of this.files) {
        records.push([name, { size: entry.size, mtimeMs: entry.mtimeMs, ino, sha256: entry.sha256 }]);
      }
      try {
        await saveHashCache(this.root, records);
      } catch (err) {
        // Next change retries; until then a restart merely re-hashes.
        this.cacheDirty = true;
        this.logger.warn('share: could not save hash cache', { error: (err as Error).message });
      }
    });
    return this.saving;
  }

  private reportError(err: Error): void {
    if (this.closed) return;
    if (this.listenerCount('error') > 0) this.emit('error', err);
    else this.logger.warn('share: error', { error: err.message, code: (err as P2PError).code });
  }
}

function recordVersion(record: FileRecord): FileVersion {
  return { size: record.entry.size, mtimeMs: record.entry.mtimeMs, ino: record.ino };
}

function isUnder(name: string, prefix: string): boolean {
  return prefix === '' || name === prefix || name.startsWith(`${prefix}/`);
}

/** Drops targets inside other targets; too many targets (or a null set) become one full walk. */
function topmostTargets(targets: ReadonlySet<string> | null): string[] {
  if (targets === null || targets.has('') || targets.size > MAX_TARGETED_PATHS) return [''];
  return [...targets].filter((target) => {
    const segments = target.split('/');
    for (let i = 1; i < segments.length; i++) {
      if (targets.has(segments.slice(0, i).join('/'))) return false;
    }
    return true;
  });
}
