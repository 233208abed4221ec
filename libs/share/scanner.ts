import { constants, type Dirent, type Stats } from 'node:fs';
import { type FileHandle, lstat, open, readdir } from 'node:fs/promises';
import path from 'node:path';
import pLimit from 'p-limit';
import type { Log } from '../logging/index.js';
import { FileNameSchema } from '../protocol/index.js';
import { type FileVersion, pathOfDescriptor, versionOf } from './hash.js';

/** Seams for tests that need to change the tree at an exact point of a walk. */
export interface WalkHooks {
  /** Runs after a directory's entries were read, before any of them is looked at. */
  afterReaddir?: (relDir: string) => void | Promise<void>;
}

/** lstat calls in flight while walking one directory. */
const STAT_CONCURRENCY = 32;
/** Names remembered so each unshareable one is logged once; past this the log may repeat. */
const MAX_REMEMBERED_NAMES = 10_000;

// A directory is opened without following a symlink, and never blocks (O_NONBLOCK); missing flags on
// Windows fall back to the identity checks.
const DIR_FLAGS =
  constants.O_RDONLY |
  (constants.O_DIRECTORY ?? 0) |
  (constants.O_NOFOLLOW ?? 0) |
  (constants.O_NONBLOCK ?? 0);

interface PendingDir {
  rel: string;
  /** (dev, ino) seen by lstat inside the parent, which the opened directory must still be. */
  identity?: { dev: number; ino: number };
}

/**
 * Walks a share by directory handles: each directory is opened (O_NOFOLLOW), its descriptor checked to be the
 * directory listed by its parent and to live at its canonical path, and its entries read and lstat'ed through
 * the descriptor (/proc/self/fd on Linux), so a directory swapped for a symlink mid-walk is never entered.
 * Only regular files are collected; symlinks, FIFOs, sockets and devices are skipped without being opened.
 */
export class ShareWalker {
  private readonly warnedNames = new Set<string>();
  private readonly loggedSymlinks = new Set<string>();

  constructor(
    private readonly root: string,
    private readonly logger: Log,
    private readonly isClosed: () => boolean,
    private readonly hooks: WalkHooks = {},
  ) {}

  absPath(rel: string): string {
    return rel === '' ? this.root : path.join(this.root, ...rel.split('/'));
  }

  /** Collects shareable regular files under `relDir` into `found`; `onRootError` hears a root that cannot be read. */
  async walk(
    relDir: string,
    found: Map<string, FileVersion>,
    onRootError?: (err: Error) => void,
  ): Promise<void> {
    const dirs: PendingDir[] = [{ rel: relDir }];
    while (dirs.length > 0 && !this.isClosed()) {
      const dir = dirs.pop() as PendingDir;
      let handle: FileHandle;
      try {
        handle = await open(this.absPath(dir.rel), DIR_FLAGS);
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        if (dir.rel === '' && onRootError) onRootError(err as Error);
        else if (code !== 'ENOENT' && code !== 'ENOTDIR' && code !== 'ELOOP') {
          this.logger.warn('skipping unreadable directory', { name: dir.rel, code });
        }
        continue;
      }
      try {
        await this.readDirectory(handle, dir, dirs, found);
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        if (dir.rel === '' && onRootError) onRootError(err as Error);
        else if (code !== 'ENOENT' && code !== 'ENOTDIR') {
          this.logger.warn('skipping unreadable directory', { name: dir.rel, code });
        }
      } finally {
        await handle.close().catch(() => undefined);
      }
    }
  }

  private async readDirectory(
    handle: FileHandle,
    dir: PendingDir,
    dirs: PendingDir[],
    found: Map<string, FileVersion>,
  ): Promise<void> {
    const stats = await handle.stat();
    if (!stats.isDirectory()) return;
    if (dir.identity !== undefined && (stats.dev !== dir.identity.dev || stats.ino !== dir.identity.ino)) {
      this.logger.debug('directory replaced during the walk, skipping it', { name: dir.rel });
      return;
    }
    const where = await pathOfDescriptor(handle.fd);
    if (where !== undefined && where !== this.absPath(dir.rel)) {
      this.logger.warn('directory is no longer where it was listed, skipping it', { name: dir.rel });
      return;
    }
    // Through the descriptor, entries are those of the directory just checked, whatever its path is now.
    const base = where !== undefined ? `/proc/self/fd/${handle.fd}` : this.absPath(dir.rel);
    const dirents: Dirent[] = await readdir(base, { withFileTypes: true });
    await this.hooks.afterReaddir?.(dir.rel);
    const candidates: Dirent[] = [];
    for (const dirent of dirents) {
      if (dirent.name.startsWith('.')) continue;
      const rel = dir.rel === '' ? dirent.name : `${dir.rel}/${dirent.name}`;
      if (dirent.isSymbolicLink()) this.noteSymlink(rel);
      else if (dirent.isDirectory() || dirent.isFile() || isUnknownType(dirent)) candidates.push(dirent);
      else this.noteSpecial(rel);
    }
    await pLimit(STAT_CONCURRENCY).map(candidates, async (dirent) => {
      const rel = dir.rel === '' ? dirent.name : `${dir.rel}/${dirent.name}`;
      let entry: Stats;
      try {
        entry = await lstat(`${base}/${dirent.name}`);
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        if (code !== 'ENOENT' && code !== 'ENOTDIR')
          this.logger.warn('cannot stat path, skipping it', { name: rel, code });
        return;
      }
      if (entry.isDirectory()) dirs.push({ rel, identity: { dev: entry.dev, ino: entry.ino } });
      else this.consider(rel, entry, found);
    });
  }

  /** Adds `name` to `found` if it is a regular file with a shareable name. */
  consider(name: string, stats: Stats, found: Map<string, FileVersion>): void {
    if (stats.isSymbolicLink()) {
      this.noteSymlink(name);
      return;
    }
    if (!stats.isFile()) {
      if (!stats.isDirectory()) this.noteSpecial(name);
      return;
    }
    if (!FileNameSchema.safeParse(name).success) {
      if (remember(this.warnedNames, name)) {
        this.logger.warn('skipping file whose name cannot be shared', { name: JSON.stringify(name) });
      }
      return;
    }
    found.set(name, versionOf(stats));
  }

  /**
   * Collects the shareable files at or under `target` ('' = the whole share) into `found`, and returns the
   * path that really changed: an event can name a path under something that has since become a file, a
   * symlink or nothing, and then the highest such ancestor is what changed.
   */
  async walkTarget(
    target: string,
    found: Map<string, FileVersion>,
    onRootError?: (err: Error) => void,
  ): Promise<string> {
    const segments = target === '' ? [] : target.split('/');
    let effective = target;
    for (let i = 1; i < segments.length; i++) {
      const prefix = segments.slice(0, i).join('/');
      const stats = await this.lstat(prefix);
      if (stats === undefined || !stats.isDirectory()) {
        effective = prefix;
        break;
      }
    }
    if (effective === '') {
      await this.walk('', found, onRootError);
    } else {
      const stats = await this.lstat(effective);
      if (stats?.isDirectory()) await this.walk(effective, found);
      else if (stats !== undefined) this.consider(effective, stats, found);
    }
    return effective;
  }

  /** lstat by path (for the ancestors of a targeted scan); undefined when missing or unreadable. */
  async lstat(rel: string): Promise<Stats | undefined> {
    try {
      return await lstat(this.absPath(rel));
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code !== 'ENOENT' && code !== 'ENOTDIR') {
        this.logger.warn('cannot stat path, skipping it', { name: rel, code });
      }
      return undefined;
    }
  }

  private noteSymlink(name: string): void {
    if (remember(this.loggedSymlinks, name)) {
      this.logger.debug('skipping symlink (symlinks are never shared)', { name });
    }
  }

  private noteSpecial(name: string): void {
    if (remember(this.loggedSymlinks, name)) {
      this.logger.debug('skipping special file (FIFO, socket or device: never opened)', { name });
    }
  }
}

/** Some file systems report no type in directory entries; those are decided by lstat. */
function isUnknownType(dirent: Dirent): boolean {
  return (
    !dirent.isFile() &&
    !dirent.isDirectory() &&
    !dirent.isSymbolicLink() &&
    !dirent.isFIFO() &&
    !dirent.isSocket() &&
    !dirent.isCharacterDevice() &&
    !dirent.isBlockDevice()
  );
}

/** True the first time `name` is seen (bounded: past the cap, names are not remembered). */
function remember(seen: Set<string>, name: string): boolean {
  if (seen.has(name)) return false;
  if (seen.size < MAX_REMEMBERED_NAMES) seen.add(name);
  return true;
}
