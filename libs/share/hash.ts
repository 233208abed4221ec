import { createHash } from 'node:crypto';
import { constants, type Stats } from 'node:fs';
import { type FileHandle, open } from 'node:fs/promises';

/** What identifies one version of a file's content without reading it. */
export interface FileVersion {
  size: number;
  mtimeMs: number;
  ino: number;
}

export function sameVersion(a: FileVersion, b: FileVersion): boolean {
  return a.size === b.size && a.mtimeMs === b.mtimeMs && a.ino === b.ino;
}

export function versionOf(stats: Stats): FileVersion {
  return { size: stats.size, mtimeMs: stats.mtimeMs, ino: stats.ino };
}

/** Big enough to keep syscalls few, small enough that other work runs between chunks. */
const READ_CHUNK_BYTES = 1024 * 1024;

// O_NOFOLLOW does not exist on Windows; there the symlink check done by the scan has to suffice.
const OPEN_FLAGS = constants.O_RDONLY | (constants.O_NOFOLLOW ?? 0);

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

export type StableHash = { stable: true; sha256: string } | { stable: false };

/**
 * Streams the file through SHA-256, but only vouches for the result if the file is the same version before
 * and after reading (same inode, size and mtime as `expected`, and exactly `expected.size` bytes read). A
 * file still being written gives `{ stable: false }` so the caller can try again later instead of
 * publishing a hash of bytes that never existed together. I/O errors are thrown.
 */
export async function hashIfStable(
  absPath: string,
  expected: FileVersion,
  signal?: AbortSignal,
): Promise<StableHash> {
  const handle = await open(absPath, OPEN_FLAGS);
  try {
    const before = await handle.stat();
    if (!before.isFile() || !sameVersion(versionOf(before), expected)) return { stable: false };
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

/** Runs `task` over `items` with at most `limit` in flight. `task` must not reject. */
export async function forEachLimit<T>(
  items: readonly T[],
  limit: number,
  task: (item: T) => Promise<void>,
): Promise<void> {
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      const item = items[next++] as T;
      await task(item);
    }
  };
  await Promise.all(Array.from({ length: Math.min(Math.max(1, limit), items.length) }, worker));
}
