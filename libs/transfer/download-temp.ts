import { createHash } from 'node:crypto';
import { constants, createReadStream } from 'node:fs';
import { type FileHandle, link, mkdir, open, rename, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { P2PError } from '../errors/index.js';

/** link() refusals that mean "this filesystem has no hard links", not "destination exists". */
const LINK_UNSUPPORTED = new Set(['EPERM', 'ENOTSUP', 'EOPNOTSUPP', 'ENOSYS', 'EXDEV', 'EMLINK']);
/** Read-write, never through a symlink, never blocking (O_NOFOLLOW/O_NONBLOCK do not exist on Windows). */
const REOPEN_FLAGS = constants.O_RDWR | (constants.O_NOFOLLOW ?? 0) | (constants.O_NONBLOCK ?? 0);
/** Hex digits of the SHA-256 in a temp file's name: enough to tell downloads apart in one directory. */
const TEMP_SHA_CHARS = 16;

/**
 * The temp file's name: `.p2p-<sha256 prefix>-<random>.part`, 44 ASCII bytes whatever the final name is
 * (a name near NAME_MAX, 255 bytes, in a multi-byte script cannot grow into one that does not fit).
 */
export function tempFileName(sha256: string, random: string): string {
  return `.p2p-${sha256.slice(0, TEMP_SHA_CHARS)}-${random}.part`;
}

export function ioError(message: string, err: unknown): P2PError {
  if (err instanceof P2PError) return err;
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  return new P2PError('IO_ERROR', `${message}: ${(err as Error)?.message ?? String(err)}`, {
    cause: err,
    details: { code },
  });
}

/** The download's temp file, open for reading and writing, beside its final name. */
export class TempFile {
  private open = true;

  private constructor(
    readonly path: string,
    readonly handle: FileHandle,
  ) {}

  /**
   * The descriptor, for the hashing thread's writes and reads (see `HashWorker`): every request using it
   * must have settled, or the thread been closed, before `keep`, `commit` or `remove` close it.
   */
  get fd(): number {
    return this.handle.fd;
  }

  /** Creates the file (and its directory); never reuses an existing name. */
  static async create(dir: string, name: string): Promise<TempFile> {
    const tempPath = path.join(dir, name);
    let handle: FileHandle | undefined;
    try {
      await mkdir(dir, { recursive: true });
      // Read-write: a parallel attempt hashes the file back from disk.
      handle = await open(tempPath, 'wx+');
    } catch (err) {
      await handle?.close().catch(() => {});
      throw ioError(`cannot create ${tempPath}`, err);
    }
    return new TempFile(tempPath, handle);
  }

  /**
   * Opens a temp file that already exists (a kept prefix taken over to resume). Only a regular file: a
   * symlink planted under the kept name is refused (O_NOFOLLOW), so the download never writes through it,
   * and a FIFO cannot block the open (O_NONBLOCK).
   */
  static async reopen(tempPath: string): Promise<TempFile> {
    let handle: FileHandle | undefined;
    try {
      handle = await open(tempPath, REOPEN_FLAGS);
      if (!(await handle.stat()).isFile()) throw new Error('not a regular file');
      return new TempFile(tempPath, handle);
    } catch (err) {
      await handle?.close().catch(() => {});
      throw ioError(`cannot open ${tempPath}`, err);
    }
  }

  /** Cuts the file to its first `bytes`, closes it and renames it to `keptPath` (see download-resume). */
  async keep(keptPath: string, bytes: number): Promise<void> {
    try {
      await this.handle.truncate(bytes);
      this.open = false;
      await this.handle.close();
      await rename(this.path, keptPath);
    } catch (err) {
      throw ioError(`cannot keep ${this.path}`, err);
    }
  }

  /**
   * Cuts (or extends) the file to `length` bytes; a file already that long is left alone. Not only a
   * saved syscall: on ext4 (auto_da_alloc) a truncate to 0, even of an empty file, makes the file's close
   * start the writeback of every byte written since, in the caller's time: that close took 0.45-0.48 s
   * after 1 GiB written here (0.1 ms without), a fifth of a whole get, where curl's new file pays nothing.
   */
  async truncate(length: number): Promise<void> {
    try {
      if ((await this.handle.stat()).size === length) return;
      await this.handle.truncate(length);
    } catch (err) {
      throw ioError(`cannot size ${this.path}`, err);
    }
  }

  async readExactly(buffer: Buffer, length: number, position: number): Promise<void> {
    try {
      let read = 0;
      while (read < length) {
        const { bytesRead } = await this.handle.read(buffer, read, length - read, position + read);
        if (bytesRead === 0) throw new Error(`unexpected end of file at byte ${position + read}`);
        read += bytesRead;
      }
    } catch (err) {
      throw ioError(`cannot read ${this.path}`, err);
    }
  }

  /**
   * Closes, then gives the verified file its final name (see `placeFile`). With `durable`, the file is
   * fsynced first and the directory after, so a crash cannot leave the final name on unwritten blocks.
   */
  async commit(destPath: string, overwrite: boolean, durable: boolean): Promise<void> {
    try {
      if (durable) await this.handle.sync();
      this.open = false;
      await this.handle.close();
    } catch (err) {
      throw ioError(`cannot flush ${this.path}`, err);
    }
    await placeFile(this.path, destPath, overwrite);
    if (durable) await syncDirectory(path.dirname(destPath));
  }

  /** Closes and removes it; after a commit it finds nothing (rename) or drops the second name (link). */
  async remove(): Promise<void> {
    if (this.open) {
      this.open = false;
      await this.handle.close().catch(() => {});
    }
    await rm(this.path, { force: true });
  }
}

export async function existingContent(
  destPath: string,
  sha256: string,
  size: number,
): Promise<'absent' | 'same' | 'different'> {
  let stats: Awaited<ReturnType<typeof stat>>;
  try {
    stats = await stat(destPath);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return 'absent';
    throw ioError(`cannot inspect ${destPath}`, err);
  }
  if (!stats.isFile() || stats.size !== size) return 'different';
  const hash = createHash('sha256');
  try {
    await pipeline(createReadStream(destPath), hash);
  } catch (err) {
    throw ioError(`cannot read ${destPath}`, err);
  }
  return hash.digest('hex') === sha256 ? 'same' : 'different';
}

/**
 * Gives the verified temp file its final name. Without overwrite, link() refuses a destination that
 * appeared during the download instead of replacing it; on filesystems without hard links it falls back to
 * a check then rename.
 */
async function placeFile(tempPath: string, destPath: string, overwrite: boolean): Promise<void> {
  try {
    if (!overwrite) {
      try {
        await link(tempPath, destPath);
        return;
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code ?? '';
        if (code === 'EEXIST') throw appeared(destPath);
        if (!LINK_UNSUPPORTED.has(code)) throw err;
      }
      const present = await stat(destPath).then(
        () => true,
        () => false,
      );
      if (present) throw appeared(destPath);
    }
    await rename(tempPath, destPath);
  } catch (err) {
    throw ioError(`cannot move the download to ${destPath}`, err);
  }
}

function appeared(destPath: string): P2PError {
  return new P2PError('IO_ERROR', `${destPath} appeared during the download`, {
    details: { path: destPath, reason: 'exists' },
  });
}

/** Makes the new directory entry durable; best effort (not every platform can open a directory). */
async function syncDirectory(dir: string): Promise<void> {
  let handle: FileHandle | undefined;
  try {
    handle = await open(dir, 'r');
    await handle.sync();
  } catch {
    // The file itself is synced; losing the rename in a crash leaves no partial file, only no file.
  } finally {
    await handle?.close().catch(() => {});
  }
}
