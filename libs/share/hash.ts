import { createHash } from 'node:crypto';
import { constants, type Stats } from 'node:fs';
import { type FileHandle, open, readlink, realpath } from 'node:fs/promises';

/**
 * What identifies one version of a file's content without reading it. ctime is part of it because mtime can
 * be set back (`touch -r`, `utimes`) after a same-size rewrite; ctime cannot be set by a user.
 */
export interface FileVersion {
  size: number;
  mtimeMs: number;
  ctimeMs: number;
  ino: number;
  dev: number;
}

export function sameVersion(a: FileVersion, b: FileVersion): boolean {
  return (
    a.size === b.size &&
    a.mtimeMs === b.mtimeMs &&
    a.ctimeMs === b.ctimeMs &&
    a.ino === b.ino &&
    a.dev === b.dev
  );
}

export function versionOf(stats: Stats): FileVersion {
  return { size: stats.size, mtimeMs: stats.mtimeMs, ctimeMs: stats.ctimeMs, ino: stats.ino, dev: stats.dev };
}

/** Big enough to keep syscalls few, small enough that other work runs between chunks. */
const READ_CHUNK_BYTES = 1024 * 1024;

/**
 * Never blocks in open(): O_NONBLOCK makes opening a FIFO return at once (a blocking open of a FIFO with no
 * writer would hold a libuv pool thread forever), O_NOFOLLOW refuses a symlink in the last segment.
 * O_NOFOLLOW/O_NONBLOCK do not exist on Windows; there the type checks below have to suffice.
 */
const OPEN_FILE_FLAGS = constants.O_RDONLY | (constants.O_NOFOLLOW ?? 0) | (constants.O_NONBLOCK ?? 0);

/** Where the open file really is, read from the descriptor itself (Linux); undefined where /proc is absent. */
export async function pathOfDescriptor(fd: number): Promise<string | undefined> {
  if (process.platform !== 'linux') return undefined;
  try {
    return await readlink(`/proc/self/fd/${fd}`);
  } catch {
    return undefined;
  }
}

/** A path in a share that is not (or no longer) a regular file inside it; `code` is errno-like for logs. */
export class UnsafeFileError extends Error {
  readonly code: 'EFTYPE' | 'EESCAPE';
  constructor(code: 'EFTYPE' | 'EESCAPE', message: string) {
    super(message);
    this.name = 'UnsafeFileError';
    this.code = code;
  }
}

/**
 * Opens `absPath` (canonical: under a realpath'd root, no symlink segment) for reading, without any open that
 * can block, and proves the descriptor is a regular file that lives at exactly `absPath` now: no FIFO,
 * device or socket (EFTYPE), nothing reached through a directory swapped for a symlink (EESCAPE, read back
 * from /proc/self/fd on Linux, else realpath + identity). With `identity`, the file must also be that
 * (dev, ino), the one a scan saw. The caller closes the handle.
 */
export async function openRegularFile(
  absPath: string,
  identity?: { dev: number; ino: number },
): Promise<{ handle: FileHandle; stats: Stats }> {
  const handle = await open(absPath, OPEN_FILE_FLAGS);
  try {
    const stats = await handle.stat();
    if (!stats.isFile()) throw new UnsafeFileError('EFTYPE', `${absPath} is not a regular file`);
    if (identity !== undefined && (stats.dev !== identity.dev || stats.ino !== identity.ino)) {
      throw new UnsafeFileError('EESCAPE', `${absPath} is not the file the scan saw`);
    }
    const actual = await pathOfDescriptor(handle.fd);
    if (actual !== undefined) {
      if (actual !== absPath) throw new UnsafeFileError('EESCAPE', `${absPath} resolves elsewhere`);
    } else {
      // Without /proc: the path must be canonical now and name this very file.
      const resolved = await realpath(absPath);
      const again = await open(resolved, OPEN_FILE_FLAGS).then(async (h) => {
        try {
          return await h.stat();
        } finally {
          await h.close();
        }
      });
      if (resolved !== absPath || again.dev !== stats.dev || again.ino !== stats.ino) {
        throw new UnsafeFileError('EESCAPE', `${absPath} resolves elsewhere`);
      }
    }
    return { handle, stats };
  } catch (err) {
    await handle.close().catch(() => undefined);
    throw err;
  }
}

/** Streams an open file through SHA-256 chunk by chunk, so other work runs in between. */
async function hashOpenFile(
  handle: FileHandle,
  signal?: AbortSignal,
): Promise<{ sha256: string; bytesRead: number }> {
  const hash = createHash('sha256');
  let bytesRead = 0;
  const stream = handle.createReadStream({ autoClose: false, highWaterMark: READ_CHUNK_BYTES });
  for await (const chunk of stream as AsyncIterable<Buffer>) {
    if (signal?.aborted) {
      stream.destroy();
      throw signal.reason;
    }
    hash.update(chunk);
    bytesRead += chunk.length;
  }
  return { sha256: hash.digest('hex'), bytesRead };
}

type StableHash = { stable: true; sha256: string } | { stable: false };

/**
 * Streams the file through SHA-256, but only vouches for the result if the file is the same version before
 * and after reading (`expected`, and exactly `expected.size` bytes read). A file still being written gives
 * `{ stable: false }` so the caller can try again later instead of publishing a hash of bytes that never
 * existed together. I/O errors and unsafe files (UnsafeFileError) are thrown.
 */
export async function hashIfStable(
  absPath: string,
  expected: FileVersion,
  signal?: AbortSignal,
): Promise<StableHash> {
  const { handle, stats: before } = await openRegularFile(absPath, expected);
  try {
    if (!sameVersion(versionOf(before), expected)) return { stable: false };
    const { sha256, bytesRead } = await hashOpenFile(handle, signal);
    const after = await handle.stat();
    if (bytesRead !== expected.size || !sameVersion(versionOf(after), expected)) return { stable: false };
    return { stable: true, sha256 };
  } finally {
    await handle.close();
  }
}

/** SHA-256 (lowercase hex) of a whole file, streamed. For verifying downloads; throws on I/O errors. */
export async function sha256File(absPath: string, signal?: AbortSignal): Promise<string> {
  const handle = await open(absPath, constants.O_RDONLY);
  try {
    return (await hashOpenFile(handle, signal)).sha256;
  } finally {
    await handle.close();
  }
}
