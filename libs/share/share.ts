import { EventEmitter } from 'node:events';
import { realpath } from 'node:fs/promises';
import path from 'node:path';
import type { FSWatcher } from 'chokidar';
import pLimit from 'p-limit';
import { P2PError } from '../errors/index.js';
import { makeDirs } from '../fs/index.js';
import { childLog, type Log, silentLog } from '../logging/index.js';
import { type FileEntry, MAX_FILES_PER_MESSAGE } from '../protocol/index.js';
import { ChangeBatcher } from './batcher.js';
import {
  isUnder,
  newState,
  recordVersion,
  type ScanState,
  type ShareChange,
  takeDelta,
  topmostTargets,
} from './delta.js';
import { FileTable } from './file-table.js';
import { type FileVersion, hashIfStable, sameVersion } from './hash.js';
import { type HashCacheRecord, HashCacheWriter, loadHashCache } from './hash-cache.js';
import { type ParsedShareOptions, parseShareOptions, type ShareOptions } from './options.js';
import { ShareWalker, type WalkHooks } from './scanner.js';
import { QuietTracker } from './settle.js';
import { watchShare } from './watcher.js';

export type { ShareChange } from './delta.js';

export interface SharedFile {
  entry: FileEntry;
  /** Where the bytes are, under `Share.root`. */
  absPath: string;
  /** The file's state when it was hashed: serving it is only honest while the file is still in this state. */
  version: FileVersion;
}

export interface ShareEvents {
  change: [ShareChange];
  error: [Error];
}

/** A continuous stream of watcher events must not postpone the announcement forever (the goal is < 2 s). */
const MIN_MAX_BATCH_WAIT_MS = 1000;
const CACHE_SAVE_DELAY_MS = 1000;
/** Files waiting for a quiet period at once (each holds a timer). */
const MAX_SETTLING_FILES = 4096;

/**
 * One shared directory: its regular files (recursively) with their SHA-256, kept current by a watcher plus a
 * periodic rescan, and announced as net deltas through the 'change' event.
 *
 * What is shared:
 * - regular files only; any path segment starting with `.` is skipped (the peer's state in `.p2p/`, partial
 *   downloads, VCS folders…); FIFOs, sockets and devices are never opened;
 * - symlinks are never followed, whether they point inside or outside the share, and the walk goes by
 *   directory handles (see ShareWalker): nothing outside the real root is ever hashed or announced;
 * - names that fail `FileNameSchema` are skipped with one warning per name.
 *
 * `start()` resolves as soon as the hash cache of the last run is loaded and listed (read `list()` then);
 * the first pass then walks the tree, confirms or corrects each cached entry and hashes the rest, announcing
 * by 'change' events in batches (`hashed()` resolves when it is done). A file is listed only with the hash of the state
 * it has on disk; `get()` returns that state so a server can refuse to serve a file that changed since.
 * 'error' is emitted only if someone listens for it; otherwise the problem is logged as a warning.
 */
export class Share extends EventEmitter<ShareEvents> {
  private readonly dir: string;
  private readonly opts: ParsedShareOptions;
  private readonly logger: Log;
  private readonly hooks: WalkHooks;

  private realRoot: string | undefined;
  private walker: ShareWalker | undefined;
  private readonly files = new FileTable();
  /** What the previous run persisted; consulted until the first pass is done. */
  private loadedCache = new Map<string, HashCacheRecord>();
  private hashCount = 0;
  private readonly batcher: ChangeBatcher;
  private readonly quiet: QuietTracker;
  private readonly cache: HashCacheWriter;

  private startPromise: Promise<void> | undefined;
  private firstPass: Promise<void> | undefined;
  private closePromise: Promise<void> | undefined;
  private closed = false;
  private readonly abort = new AbortController();
  private watcher: FSWatcher | undefined;
  private rescanTimer: NodeJS.Timeout | undefined;

  /** Scans run one at a time so each sees the state the previous one left. */
  private readonly scans = pLimit(1);
  private queuedFullScan: Promise<ShareChange> | null = null;

  constructor(options: ShareOptions) {
    super();
    this.opts = parseShareOptions(options);
    this.dir = path.resolve(this.opts.dir);
    this.logger = childLog(options.logger ?? silentLog, 'share');
    this.hooks = options.hooks ?? {};
    const maxBatchWaitMs = Math.max(MIN_MAX_BATCH_WAIT_MS, this.opts.debounceMs);
    this.batcher = new ChangeBatcher(this.opts.debounceMs, maxBatchWaitMs, (targets) => {
      this.scans(() => this.scan(targets, true)).catch((err) => this.reportError(err));
    });
    this.quiet = new QuietTracker({
      quietMs: this.opts.quietMs,
      maxQuietMs: Math.max(this.opts.quietMs, this.opts.maxQuietMs),
      maxTracked: MAX_SETTLING_FILES,
      onDue: (name) => this.batcher.touch(name),
    });
    this.cache = new HashCacheWriter(
      () => this.realRoot,
      () => this.cacheRecords(),
      this.logger,
      CACHE_SAVE_DELAY_MS,
    );
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
    return this.files.list();
  }

  /** Lookup by exact name; undefined for anything not currently shared. */
  get(name: string): SharedFile | undefined {
    if (typeof name !== 'string') return undefined;
    const record = this.files.get(name);
    if (record === undefined) return undefined;
    return { entry: record.entry, absPath: this.absPath(name), version: recordVersion(record) };
  }

  /** Someone found `name` in another state than listed (e.g. the server before sending it): look again soon. */
  recheck(name: string): void {
    if (typeof name === 'string' && this.files.has(name)) this.batcher.touch(name);
  }

  /** Lists what the hash cache holds; walking and hashing go on after it resolves (see `hashed()`). */
  start(): Promise<void> {
    this.startPromise ??= this.doStart();
    return this.startPromise;
  }

  /** Resolves when every file found by `start()` has been hashed (or skipped) and the watcher is live. */
  hashed(): Promise<void> {
    return (this.startPromise ?? this.start()).then(() => this.firstPass);
  }

  private async doStart(): Promise<void> {
    try {
      makeDirs(this.dir);
      this.realRoot = await realpath(this.dir);
    } catch (err) {
      throw new P2PError('IO_ERROR', `share directory ${this.dir} is not usable: ${(err as Error).message}`, {
        cause: err,
        details: { dir: this.dir },
      });
    }
    this.walker = new ShareWalker(this.realRoot, this.logger, () => this.closed, this.hooks);
    this.loadedCache = await loadHashCache(this.root, this.logger);
    if (this.closed) return;
    // Join at once: list what the last run hashed. The first pass below confirms each entry (same size,
    // mtime, ctime, inode and device) or corrects it with a 'change'; until then a server refuses (409) any
    // entry whose file is no longer in the cached state, so a stale cached hash is never served.
    const seed = newState();
    for (const [name, record] of this.loadedCache) this.setFile(seed, name, record);

    // Watch from before the first walk, without waiting for the watcher's own walk of the tree (tens of
    // seconds for 100k files): a change it could not see yet is caught by one rescan once it is ready.
    const watching = this.opts.watch
      ? watchShare(this.root, this.abort.signal, {
          onPath: (rel) => this.batcher.touch(rel),
          onError: (err) => this.reportError(err),
        })
      : undefined;
    this.watcher = watching?.watcher;
    this.logger.info('listed from the hash cache', { root: this.root, files: this.files.size });

    const hashing = this.scans(async () => {
      const state = newState();
      const toHash = await this.collect(null, state);
      // Cached entries whose files are gone leave now, before the (maybe long) hashing.
      this.emitDelta(state);
      await this.hashAll(toHash, state, true);
      this.finish(state, true);
      if (this.closed) return;
      this.loadedCache = new Map();
      this.logger.info('ready', { root: this.root, files: this.files.size, hashed: this.hashCount });
    });
    // One catch-up rescan once the watcher is live, after the hashing so nothing is hashed twice.
    this.firstPass = Promise.all([watching?.ready, hashing])
      .then(async () => {
        if (!this.closed) await this.rescan();
      })
      .catch((err) => this.reportError(err));

    if (this.opts.rescanIntervalMs > 0 && !this.closed) {
      this.rescanTimer = setInterval(() => {
        this.rescan().catch((err) => this.reportError(err));
      }, this.opts.rescanIntervalMs);
      this.rescanTimer.unref();
    }
  }

  close(): Promise<void> {
    this.closePromise ??= this.doClose();
    return this.closePromise;
  }

  private async doClose(): Promise<void> {
    this.closed = true;
    this.abort.abort(new P2PError('IO_ERROR', 'share closed'));
    clearInterval(this.rescanTimer);
    this.batcher.close();
    this.quiet.close();
    // start() notices `closed` at its next step; only then is the watcher it may be creating known.
    if (this.startPromise) await this.startPromise.catch(() => undefined);
    await this.watcher?.close();
    await this.scans(() => undefined);
    await this.cache.close();
  }

  /** Re-scan now (used by the periodic timer and callable by tests); emits 'change' if anything changed; resolves with the change (empty arrays if none). */
  rescan(): Promise<ShareChange> {
    if (this.realRoot === undefined) {
      return Promise.reject(new P2PError('USAGE', 'Share.rescan() called before start() finished'));
    }
    if (this.closed) return Promise.resolve({ upserted: [], removed: [] });
    // A full scan that has not begun yet will see everything this caller wants to see.
    if (this.queuedFullScan !== null) return this.queuedFullScan;
    const run = this.scans(() => {
      this.queuedFullScan = null;
      return this.scan(null, true);
    });
    this.queuedFullScan = run;
    return run;
  }

  // ---- scanning -------------------------------------------------------------------------------------------

  /** Scans `targets` (relative paths; null = the whole share) and returns, and optionally emits, the net delta. */
  private async scan(targets: ReadonlySet<string> | null, emit: boolean): Promise<ShareChange> {
    const state = newState();
    if (this.closed) return { upserted: [], removed: [] };
    const toHash = await this.collect(targets, state);
    await this.hashAll(toHash, state, emit);
    return this.finish(state, emit);
  }

  /** Walks the targets, drops what is gone, takes what the cache vouches for; returns what needs hashing. */
  private async collect(
    targets: ReadonlySet<string> | null,
    state: ScanState,
  ): Promise<[string, FileVersion][]> {
    const toHash: [string, FileVersion][] = [];
    for (const target of topmostTargets(targets)) {
      if (this.closed) break;
      toHash.push(...(await this.collectSubtree(target, state)));
    }
    return toHash;
  }

  private async collectSubtree(target: string, state: ScanState): Promise<[string, FileVersion][]> {
    if (target !== '' && target.split('/').some((segment) => segment === '' || segment.startsWith('.'))) {
      return [];
    }
    const found = new Map<string, FileVersion>();
    const effective = await (this.walker as ShareWalker).walkTarget(target, found, (err) =>
      this.reportError(
        new P2PError('IO_ERROR', `cannot read share directory ${this.root}: ${err.message}`, {
          cause: err,
          details: { root: this.root, code: (err as NodeJS.ErrnoException).code },
        }),
      ),
    );
    if (this.closed) return [];

    for (const name of this.files.records.keys()) {
      if (isUnder(name, effective) && !found.has(name)) {
        this.quiet.forget(name);
        this.setFile(state, name, undefined);
      }
    }

    const toHash: [string, FileVersion][] = [];
    for (const [name, version] of found) {
      const current = this.files.get(name);
      if (current !== undefined && sameVersion(recordVersion(current), version)) {
        this.quiet.forget(name);
        continue;
      }
      const cached = this.loadedCache.get(name);
      if (cached !== undefined && sameVersion(cached, version)) {
        this.setFile(state, name, { ...version, sha256: cached.sha256 });
        continue;
      }
      // An entry only listed from the cache is checked at once: waiting would keep its stale hash listed.
      const known = current !== undefined && !this.loadedCache.has(name);
      if (this.quiet.ready(name, version, known)) toHash.push([name, version]);
    }
    return toHash;
  }

  private async hashAll(toHash: [string, FileVersion][], state: ScanState, emit: boolean): Promise<void> {
    await pLimit(this.opts.hashConcurrency).map(toHash, async ([name, version]) => {
      if (this.closed) return;
      this.hashCount++;
      try {
        const result = await hashIfStable(this.absPath(name), version, this.abort.signal);
        if (result.stable) {
          this.quiet.forget(name);
          this.setFile(state, name, { ...version, sha256: result.sha256 });
        } else {
          // Its old hash no longer describes the bytes on disk, and the new one is not known yet.
          this.logger.debug('file changed while hashing, will look again once it is quiet', { name });
          this.quiet.unstable(name, version);
          if (this.files.has(name)) this.setFile(state, name, undefined);
        }
      } catch (err) {
        if (this.closed) return;
        const code = (err as NodeJS.ErrnoException).code;
        this.logger.warn('skipping file that could not be read', {
          name,
          code,
          error: (err as Error).message,
        });
        this.quiet.forget(name);
        // Vanished or swapped for a symlink (ELOOP from O_NOFOLLOW): a later event will tell what it became.
        if (code === 'ENOENT' || code === 'ELOOP') state.retry.add(name);
        if (this.files.has(name)) this.setFile(state, name, undefined);
      }
      if (
        emit &&
        (state.before.size >= MAX_FILES_PER_MESSAGE ||
          Date.now() - state.lastEmitAt >= this.opts.announceBatchMs)
      ) {
        this.emitDelta(state);
      }
    });
  }

  /** Ends a scan: emits what is left of its delta, schedules retries and the cache save. */
  private finish(state: ScanState, emit: boolean): ShareChange {
    const change = emit ? this.emitDelta(state) : takeDelta(state, this.files.records);
    if (this.closed) return change;
    for (const name of state.retry) this.batcher.touch(name);
    this.cache.schedule();
    return change;
  }

  private emitDelta(state: ScanState): ShareChange {
    const change = takeDelta(state, this.files.records);
    state.lastEmitAt = Date.now();
    if (this.closed || (change.upserted.length === 0 && change.removed.length === 0)) return change;
    this.logger.debug('changed', { upserted: change.upserted.length, removed: change.removed.length });
    this.emit('change', change);
    return change;
  }

  private setFile(
    state: ScanState,
    name: string,
    next: (FileVersion & { sha256: string }) | undefined,
  ): void {
    this.files.set(state, name, next);
    this.cache.markDirty();
  }

  private absPath(rel: string): string {
    return rel === '' ? this.root : path.join(this.root, ...rel.split('/'));
  }

  /** loadedCache is empty once the first pass is done; before that it holds what was not checked yet. */
  private *cacheRecords(): Iterable<[string, HashCacheRecord]> {
    for (const [name, record] of this.loadedCache) if (!this.files.has(name)) yield [name, record];
    for (const [name, record] of this.files.records) {
      yield [name, { ...recordVersion(record), sha256: record.entry.sha256 }];
    }
  }

  private reportError(err: Error): void {
    if (this.closed) return;
    if (this.listenerCount('error') > 0) this.emit('error', err);
    else this.logger.warn('error', { error: err.message, code: (err as P2PError).code });
  }
}
