import { randomBytes } from 'node:crypto';
import { mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { z } from 'zod';
import type { Log } from '../logging/index.js';
import { FileNameSchema, Sha256Schema } from '../protocol/index.js';

/** Folder inside a share where the peer keeps its private state; a dot segment, so it is never shared. */
export const STATE_DIR_NAME = '.p2p';
export const HASH_CACHE_FILE_NAME = 'hash-cache.json';
const HASH_CACHE_VERSION = 1;

export interface HashCacheRecord {
  size: number;
  mtimeMs: number;
  ino: number;
  sha256: string;
}

const HashCacheFileSchema = z.object({
  version: z.literal(HASH_CACHE_VERSION),
  files: z.record(
    FileNameSchema,
    z.object({
      size: z.number().int().min(0),
      mtimeMs: z.number().min(0),
      ino: z.number().min(0),
      sha256: Sha256Schema,
    }),
  ),
});

export function hashCachePath(root: string): string {
  return path.join(root, STATE_DIR_NAME, HASH_CACHE_FILE_NAME);
}

/**
 * Reads the cache a previous run left. Missing means empty; anything unreadable or malformed is also treated
 * as empty (with a warning): the cache only saves work, so losing it costs time, never correctness.
 */
export async function loadHashCache(root: string, logger: Log): Promise<Map<string, HashCacheRecord>> {
  const file = hashCachePath(root);
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') {
      logger.warn('share: hash cache unreadable, re-hashing', { file, error: (err as Error).message });
    }
    return new Map();
  }
  let parsed: z.infer<typeof HashCacheFileSchema>;
  try {
    parsed = HashCacheFileSchema.parse(JSON.parse(text));
  } catch (err) {
    logger.warn('share: hash cache corrupt, ignoring it and re-hashing', {
      file,
      error: (err as Error).message.slice(0, 500),
    });
    return new Map();
  }
  return new Map(Object.entries(parsed.files));
}

/** Atomic replace (temp file + rename) so a crash mid-write leaves the old cache, never half a file. */
export async function saveHashCache(
  root: string,
  records: Iterable<[string, HashCacheRecord]>,
): Promise<void> {
  const file = hashCachePath(root);
  await mkdir(path.dirname(file), { recursive: true, mode: 0o700 });
  const files: Record<string, HashCacheRecord> = {};
  for (const [name, record] of records) files[name] = record;
  const tmp = `${file}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
  try {
    await writeFile(tmp, JSON.stringify({ version: HASH_CACHE_VERSION, files }), { mode: 0o600 });
    await rename(tmp, file);
  } catch (err) {
    await rm(tmp, { force: true }).catch(() => undefined);
    throw err;
  }
}
