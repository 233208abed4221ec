import { randomBytes } from 'node:crypto';
import { readFile, rename, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import pLimit from 'p-limit';
import { z } from 'zod';
import { makeDirs } from '../fs/index.js';
import { STATE_DIR_NAME } from '../identity/index.js';
import type { Log } from '../logging/index.js';
import { FileNameSchema, Sha256Schema } from '../protocol/index.js';
import type { FileVersion } from './hash.js';

export const HASH_CACHE_FILE_NAME = 'hash-cache.json';
/**
 * 2 added ctime and dev. Version 1 records cannot tell a same-size rewrite with its mtime set back from the
 * file they hashed, so a version 1 file is dropped as a whole (everything is re-hashed once).
 */
const HASH_CACHE_VERSION = 2;

export interface HashCacheRecord extends FileVersion {
  sha256: string;
}

const HashCacheRecordSchema = z.object({
  size: z.number().int().min(0),
  mtimeMs: z.number().min(0),
  ctimeMs: z.number().min(0),
  ino: z.number().min(0),
  dev: z.number().min(0),
  sha256: Sha256Schema,
});

/** The file's frame; its records are checked one by one, a piece at a time (see loadHashCache). */
const HashCacheFileSchema = z.object({
  version: z.literal(HASH_CACHE_VERSION),
  files: z.record(z.string(), z.unknown()),
});

/** Records made into text, or checked, per piece of a save or a load: one piece is a short task. */
export const PIECE_RECORDS = 1000;

const nextTurn = () => new Promise<void>((resolve) => setImmediate(resolve));

function hashCachePath(root: string): string {
  return path.join(root, STATE_DIR_NAME, HASH_CACHE_FILE_NAME);
}

/**
 * Reads the cache a previous run left. Missing means empty; an older format, anything unreadable or
 * malformed is also treated as empty (with a log line): the cache only saves work, so losing it costs time,
 * never correctness.
 */
export async function loadHashCache(root: string, logger: Log): Promise<Map<string, HashCacheRecord>> {
  const file = hashCachePath(root);
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') {
      logger.warn('hash cache unreadable, re-hashing', { file, error: (err as Error).message });
    }
    return new Map();
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    logger.warn('hash cache corrupt, ignoring it and re-hashing', {
      file,
      error: (err as Error).message.slice(0, 500),
    });
    return new Map();
  }
  const version = (json as { version?: unknown } | null)?.version;
  if (typeof version === 'number' && version < HASH_CACHE_VERSION) {
    logger.info('hash cache from an older format, re-hashing once', { file, version });
    return new Map();
  }
  const corrupt = (error: string) => {
    logger.warn('hash cache corrupt, ignoring it and re-hashing', { file, error: error.slice(0, 500) });
    return new Map<string, HashCacheRecord>();
  };
  const parsed = HashCacheFileSchema.safeParse(json);
  if (!parsed.success) return corrupt(z.prettifyError(parsed.error));
  // Checked a piece at a time, the event loop turning between pieces: 20,000 records checked in one task
  // held it for 137 ms as the peer started.
  const records = new Map<string, HashCacheRecord>();
  const entries = Object.entries(parsed.data.files);
  for (let i = 0; i < entries.length; i++) {
    const [name, value] = entries[i]!;
    const checkedName = FileNameSchema.safeParse(name);
    if (!checkedName.success) {
      return corrupt(`files.${name.slice(0, 200)}: ${z.prettifyError(checkedName.error)}`);
    }
    const record = HashCacheRecordSchema.safeParse(value);
    if (!record.success) return corrupt(`files.${name.slice(0, 200)}: ${z.prettifyError(record.error)}`);
    records.set(name, record.data);
    if ((i + 1) % PIECE_RECORDS === 0) await nextTurn();
  }
  return records;
}

/**
 * Atomic replace (temp file + rename) so a crash mid-write leaves the old cache, never half a file. The
 * text is made and written a piece at a time, the event loop turning between pieces: a cache of 40,000
 * files made and encoded in one task held the loop for 140 ms, and as long again in garbage collection.
 * `records` is read across those turns; each record describes one version of its file, so one that changed
 * meanwhile is at worst hashed again at the next start.
 */
async function saveHashCache(root: string, records: Iterable<[string, HashCacheRecord]>): Promise<void> {
  const file = hashCachePath(root);
  makeDirs(path.dirname(file), 0o700);
  const tmp = `${file}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
  try {
    await writeFile(tmp, cacheText(records), { mode: 0o600 });
    await rename(tmp, file);
  } catch (err) {
    await rm(tmp, { force: true }).catch(() => undefined);
    throw err;
  }
}

/** `{"version":…,"files":{…}}`, in pieces of PIECE_RECORDS records, each made in its own turn. */
async function* cacheText(records: Iterable<[string, HashCacheRecord]>): AsyncGenerator<string> {
  yield `{"version":${HASH_CACHE_VERSION},"files":{`;
  let piece: string[] = [];
  let separator = '';
  for (const [name, record] of records) {
    piece.push(`${separator}${JSON.stringify(name)}:${JSON.stringify(record)}`);
    separator = ',';
    if (piece.length >= PIECE_RECORDS) {
      yield piece.join('');
      piece = [];
      await nextTurn();
    }
  }
  yield `${piece.join('')}}}`;
}

/**
 * Writes the cache some time after it was marked dirty (many changes, one write), and once more on
 * `flush()`. Saves never overlap, so an older snapshot cannot land last.
 */
export class HashCacheWriter {
  private dirty = false;
  private timer: NodeJS.Timeout | undefined;
  /** Saves run one at a time, in order. */
  private readonly saves = pLimit(1);
  private closed = false;

  constructor(
    private readonly root: () => string | undefined,
    private readonly snapshot: () => Iterable<[string, HashCacheRecord]>,
    private readonly logger: Log,
    private readonly delayMs: number,
  ) {}

  markDirty(): void {
    this.dirty = true;
  }

  /** Saves within `delayMs` if anything changed since the last save. */
  schedule(): void {
    if (!this.dirty || this.timer !== undefined || this.closed) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      void this.flush();
    }, this.delayMs);
    this.timer.unref();
  }

  /** Saves now if dirty; after `close()` no timer is set again but a flush still writes. */
  flush(): Promise<void> {
    return this.saves(async () => {
      const root = this.root();
      if (!this.dirty || root === undefined) return;
      this.dirty = false;
      try {
        await saveHashCache(root, this.snapshot());
      } catch (err) {
        // Next change retries; until then a restart merely re-hashes.
        this.dirty = true;
        this.logger.warn('could not save hash cache', { error: (err as Error).message });
      }
    });
  }

  close(): Promise<void> {
    this.closed = true;
    clearTimeout(this.timer);
    this.timer = undefined;
    return this.flush();
  }
}
