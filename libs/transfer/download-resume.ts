/**
 * What an interrupted download keeps for a later one to resume: the temp file's contiguous prefix, renamed
 * to `.p2p-<key>.part`, and a sidecar `.p2p-<key>.resume` naming the file it belongs to (sha256, size) and
 * how many of its first bytes are on disk. The key is derived from the destination's name, so there is at
 * most one kept prefix per destination. The hash state itself cannot be saved (node:crypto cannot export
 * it): a resume re-hashes the kept prefix from disk, which is fast, and the whole file is verified at the
 * end as always.
 *
 * Bounds: a prefix is resumed only by a download of the same sha256 and size to the same destination; a
 * download of another file to that destination removes it; a prefix older than `maxAgeMs` is removed by
 * any later download into its directory; resuming consumes it (renames it away), so success leaves nothing.
 */
import { createHash } from 'node:crypto';
import { constants } from 'node:fs';
import { lstat, open, readdir, rename, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { z } from 'zod';
import type { Log } from '../logging/index.js';
import { Sha256Schema } from '../protocol/index.js';
import type { TempFile } from './download-temp.js';

/** A kept prefix is removed by a later download into its directory once it is this old. Default: 7 days. */
export const DEFAULT_RESUME_MAX_AGE_MS = 7 * 24 * 60 * 60 * 1000;
/** The sidecar is a few dozen bytes; anything much bigger is not ours. */
const MAX_SIDECAR_BYTES = 4096;
/** At most this many stale prefixes are removed per download (the rest by later ones). */
const MAX_SWEPT_PER_DOWNLOAD = 64;
const KEPT_NAME = /^\.p2p-[0-9a-f]{16}\.(part|resume)$/;

const SidecarSchema = z.strictObject({
  version: z.literal(1),
  sha256: Sha256Schema,
  size: z.number().int().nonnegative(),
  prefixBytes: z.number().int().positive(),
});
type Sidecar = z.infer<typeof SidecarSchema>;

/** The kept prefix and sidecar paths for `destPath`: short ASCII names whatever its name is. */
export function keptPaths(destPath: string): { part: string; sidecar: string } {
  const key = createHash('sha256').update(path.basename(destPath)).digest('hex').slice(0, 16);
  const dir = path.dirname(destPath);
  return { part: path.join(dir, `.p2p-${key}.part`), sidecar: path.join(dir, `.p2p-${key}.resume`) };
}

/**
 * Takes over the prefix kept for `destPath` when it belongs to this file (sha256 and size): renames it to
 * `tempPath` (a rename is atomic, so of two downloads racing for it one gets it) and returns how many
 * bytes of it to resume from; 0 when there is none. A prefix of another file is removed. Never throws:
 * a kept prefix that cannot be used is only a lost head start.
 */
export async function takeKept(
  destPath: string,
  sha256: string,
  size: number,
  tempPath: string,
  logger: Log,
): Promise<number> {
  const { part, sidecar } = keptPaths(destPath);
  const saved = await readSidecar(sidecar);
  await rm(sidecar, { force: true }).catch(() => {});
  if (saved === undefined || saved.sha256 !== sha256 || saved.size !== size || saved.prefixBytes > size) {
    await rm(part, { force: true }).catch(() => {});
    if (saved !== undefined) logger.info('removed a kept prefix of another file', { path: part });
    return 0;
  }
  try {
    await rename(part, tempPath);
    // lstat: a symlink or special file planted under the kept name is dropped, never followed.
    const kept = await lstat(tempPath);
    if (!kept.isFile() || kept.size < saved.prefixBytes) {
      await rm(tempPath, { force: true });
      return 0;
    }
    return saved.prefixBytes;
  } catch {
    return 0;
  }
}

/** The file (sha256 and size) whose prefix is kept for `destPath`, if any. Never throws. */
export async function keptFile(destPath: string): Promise<{ sha256: string; size: number } | undefined> {
  const saved = await readSidecar(keptPaths(destPath).sidecar);
  return saved === undefined ? undefined : { sha256: saved.sha256, size: saved.size };
}

/**
 * Keeps the temp file's first `kept.bytes` for a later download to resume: cut, closed, renamed to the kept
 * name, with its sidecar. Best effort: false (and nothing left behind) when any step fails.
 */
export async function keepPrefix(
  file: TempFile,
  destPath: string,
  kept: { sha256: string; size: number; bytes: number },
): Promise<boolean> {
  const paths = keptPaths(destPath);
  try {
    await file.keep(paths.part, kept.bytes);
    await writeSidecar(destPath, {
      version: 1,
      sha256: kept.sha256,
      size: kept.size,
      prefixBytes: kept.bytes,
    });
    return true;
  } catch {
    await rm(paths.part, { force: true }).catch(() => {});
    await rm(paths.sidecar, { force: true }).catch(() => {});
    return false;
  }
}

/** Writes the sidecar beside a prefix just renamed to its kept name. */
export async function writeSidecar(destPath: string, sidecar: Sidecar): Promise<void> {
  await writeFile(keptPaths(destPath).sidecar, JSON.stringify(sidecar), { mode: 0o600 });
}

/** Removes kept prefixes (and orphan halves) in `dir` older than `maxAgeMs`; best effort, bounded. */
export async function sweepKept(dir: string, maxAgeMs: number, logger: Log): Promise<void> {
  let names: string[];
  try {
    names = await readdir(dir);
  } catch {
    return;
  }
  const cutoffMs = Date.now() - maxAgeMs;
  let swept = 0;
  for (const name of names) {
    if (swept >= MAX_SWEPT_PER_DOWNLOAD) break;
    if (!KEPT_NAME.test(name)) continue;
    const full = path.join(dir, name);
    try {
      const stats = await lstat(full);
      if (!stats.isFile() || stats.mtimeMs >= cutoffMs) continue;
      await rm(full, { force: true });
      swept += 1;
      logger.info('removed a kept prefix past its age', { path: full });
    } catch {
      // Gone meanwhile, or not ours to remove: either way nothing to do.
    }
  }
}

/** Read-only, never through a symlink, never blocking on a FIFO (the flags do not exist on Windows). */
const SIDECAR_FLAGS = constants.O_RDONLY | (constants.O_NOFOLLOW ?? 0) | (constants.O_NONBLOCK ?? 0);

/** The sidecar, if it is a small regular file holding a valid record; anything else reads as none. */
async function readSidecar(file: string): Promise<Sidecar | undefined> {
  let handle: Awaited<ReturnType<typeof open>> | undefined;
  try {
    handle = await open(file, SIDECAR_FLAGS);
    const stats = await handle.stat();
    if (!stats.isFile() || stats.size > MAX_SIDECAR_BYTES) return undefined;
    const buffer = Buffer.alloc(MAX_SIDECAR_BYTES + 1);
    const { bytesRead } = await handle.read(buffer, 0, buffer.length, 0);
    if (bytesRead > MAX_SIDECAR_BYTES) return undefined; // grew since the fstat
    const parsed = SidecarSchema.safeParse(JSON.parse(buffer.subarray(0, bytesRead).toString('utf8')));
    return parsed.success ? parsed.data : undefined;
  } catch {
    return undefined;
  } finally {
    await handle?.close().catch(() => {});
  }
}
