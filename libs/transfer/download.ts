import { createHash, type Hash, randomBytes } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { type FileHandle, link, mkdir, open, rename, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { setTimeout as delay } from 'node:timers/promises';
import { P2PError } from '../errors/index.js';
import { type Log, silentLog } from '../logging/index.js';
import { Sha256Schema } from '../protocol/index.js';
import { type Piece, type Segment, SegmentPlan } from './parallel.js';

export interface DownloadSource {
  /** Direct file URL (see `fileUrl()` in libs/protocol). */
  url: string;
  peerId: string;
}

/** Why one source did not (fully) serve the file; stable, for logs and tests. */
export type DownloadFailureCode =
  /** No response: refused, unreachable, reset before the headers, redirect. */
  | 'CONNECT_FAILED'
  /** No response headers within `connectTimeoutMs`. */
  | 'CONNECT_TIMEOUT'
  /** No body bytes for `idleTimeoutMs`. */
  | 'IDLE_TIMEOUT'
  /** The body broke off (connection reset or closed early). */
  | 'CONNECTION_LOST'
  /** 503: the peer is serving as many transfers as it allows. */
  | 'BUSY'
  /** Any other status than 200/206/503. */
  | 'HTTP_STATUS'
  /** The source's ETag names other content than the expected SHA-256. */
  | 'ETAG_MISMATCH'
  /** Content-Length or Content-Range total is not the expected size, or the body ran past it. */
  | 'SIZE_MISMATCH'
  /**
   * A 206 for other bytes than those asked for (or answering a request without Range), or the whole file
   * (200) answering a request for one segment of a parallel download.
   */
  | 'BAD_RANGE'
  /** The source served bytes of an attempt whose result did not hash to the expected SHA-256. */
  | 'HASH_MISMATCH';

export interface DownloadFailure {
  peerId: string;
  url: string;
  code: DownloadFailureCode;
  message: string;
}

export interface DownloadProgress {
  /** Bytes of the file in the temp file so far (falls back when an attempt starts over). */
  receivedBytes: number;
  totalBytes: number;
  /** The source currently sending (in a parallel download, the one that wrote last). */
  peerId: string;
}

export interface DownloadOptions {
  /**
   * Tried in order; on failure the next source continues from the byte reached (Range). A large file with
   * several sources is first fetched from several of them at once (see `parallelMinBytes`).
   */
  sources: DownloadSource[];
  /** Expected SHA-256, 64 lowercase hex digits. */
  sha256: string;
  /** Expected size in bytes. */
  size: number;
  /** Final path; its parent directory is created if missing. */
  destPath: string;
  /** Time allowed until a source's response headers. Default 5_000. */
  connectTimeoutMs?: number;
  /** A source that sends no body bytes for this long is treated as failed. Default 10_000. */
  idleTimeoutMs?: number;
  /**
   * Default false: an existing `destPath` is an `IO_ERROR`, unless it already holds the expected content, in
   * which case it is returned without downloading. True replaces it (atomically, by rename).
   */
  overwrite?: boolean;
  /**
   * With sources from at least two peers, a file of at least this many bytes is fetched in segments from
   * several of them at once. Default 8 MiB.
   */
  parallelMinBytes?: number;
  /**
   * Size of the ranges fetched in parallel; raised when a file would have more than 4096 of them.
   * Default 4 MiB.
   */
  segmentBytes?: number;
  /** How many sources a parallel download fetches from at once; 1 turns parallel downloads off. Default 4. */
  maxParallelSources?: number;
  /** Called after every chunk written. */
  onProgress?: (progress: DownloadProgress) => void;
  /** Aborting removes the temp file and rejects with `signal.reason`. */
  signal?: AbortSignal;
  /** Default: silent. */
  logger?: Log;
}

export interface DownloadResult {
  path: string;
  sha256: string;
  size: number;
  /** Peers whose bytes are in the verified file, in the order they sent them (empty if it already existed). */
  servedBy: string[];
  /** Every source failure along the way, in order, including those of sources that later succeeded. */
  failures: DownloadFailure[];
  /** Peers proven to have served bytes that do not match the hash. */
  badSources: string[];
}

const DEFAULT_CONNECT_TIMEOUT_MS = 5_000;
const DEFAULT_IDLE_TIMEOUT_MS = 10_000;
const DEFAULT_PARALLEL_MIN_BYTES = 8 * 1024 * 1024;
const DEFAULT_SEGMENT_BYTES = 4 * 1024 * 1024;
const DEFAULT_MAX_PARALLEL_SOURCES = 4;
/** In a parallel download, a source is dropped after this many failed segments (busy answers included). */
const MAX_PARALLEL_SOURCE_FAILURES = 3;
/**
 * Failures that will not go away by asking the same source again: the source is dropped from the parallel
 * download at once (it may still serve the whole file in the sequential fallback).
 */
const RETIRE_AT_ONCE = new Set<DownloadFailureCode>([
  'HTTP_STATUS',
  'ETAG_MISMATCH',
  'SIZE_MISMATCH',
  'BAD_RANGE',
]);
/** Read size when hashing the temp file back from disk. */
const HASH_READ_BYTES = 1024 * 1024;
/** When a 503 carries no usable Retry-After. */
const DEFAULT_RETRY_AFTER_MS = 1_000;
/** A peer cannot park us longer than this with a large Retry-After. */
const MAX_RETRY_AFTER_MS = 30_000;
/** Keeps `.<basename>.<random>.part` under the usual 255-byte name limit. */
const MAX_TEMP_BASENAME_CHARS = 100;
/** link() refusals that mean "this filesystem has no hard links", not "destination exists". */
const LINK_UNSUPPORTED = new Set(['EPERM', 'ENOTSUP', 'EOPNOTSUPP', 'ENOSYS', 'EXDEV', 'EMLINK']);

/** One source's failure; `retryAfterMs` is set for BUSY. */
class SourceFailure extends Error {
  constructor(
    readonly code: DownloadFailureCode,
    message: string,
    readonly retryAfterMs?: number,
  ) {
    super(message);
    this.name = 'SourceFailure';
  }
}

/** The temp file's state during one attempt: its bytes [0, offset) hashed into `hash`. */
interface Attempt {
  offset: number;
  hash: Hash;
  /** Peers whose bytes are in [0, offset), in order. */
  contributors: string[];
  /** The last source whose response was taken for this attempt's bytes (matters for 0-byte files). */
  acceptedFrom: string | undefined;
}

type AttemptOutcome =
  | { kind: 'verified'; contributors: string[] }
  | { kind: 'bad-bytes'; contributors: string[]; digest: string }
  | { kind: 'unreachable' };

/**
 * Downloads a file peer to peer into a dotfile beside `destPath` and renames it into place only after its
 * size and SHA-256 verified, so a partial or wrong file never carries the final name.
 *
 * Sources are tried in order; when one fails mid-body the next continues from the byte reached with
 * `Range`/`If-Range`, the hash of the prefix carrying over. A 503 source is retried once, after its
 * Retry-After, when the others are exhausted. A result that does not verify is discarded and the whole file
 * fetched again from 0 on sources that did not take part:
 * - a peer that alone served a failed attempt is proven bad (`badSources`) and not asked again;
 * - peers that shared a failed attempt become suspects: not accused, and only asked again once the other
 *   sources are used up, each alone, so a bad one gets proven and a good one can still deliver.
 *
 * A file of at least `parallelMinBytes` offered by two peers or more is first fetched in segments from up
 * to `maxParallelSources` of them at once (`Range: bytes=a-b` + `If-Range`, positional writes into the temp
 * file). A source that finishes a segment takes the next one, and at the end half of the largest segment
 * still in flight; a failing source's unfinished range goes to another; a source is dropped after
 * `MAX_PARALLEL_SOURCE_FAILURES` failures, at once when it cannot serve ranges at all, and is asked again
 * after its Retry-After when busy. The protocol has no per-segment hashes, so the whole file is hashed as
 * its contiguous prefix lands and checked at the end. If it does not verify, its contributors become
 * suspects of a failed attempt as above and the sequential path takes over; once that path has verified
 * the file, every contributor whose segments differ from it is proven bad. If the sources cannot complete
 * the parallel attempt, the sequential path starts over with all of them.
 *
 * Throws `P2PError`: `NO_SOURCES` (empty list), `USAGE` (malformed sha256/size), `IO_ERROR` (destination
 * exists with other content, local disk errors), `HASH_MISMATCH` (every attempt made ended in bytes that
 * did not verify) or `DOWNLOAD_FAILED` (otherwise, e.g. sources unreachable); `details` carries `failures`
 * and `badSources`. Redirects are refused: a peer URL is direct, and following one would let a peer point
 * this client at any other address.
 */
export async function downloadFile(options: DownloadOptions): Promise<DownloadResult> {
  const { sources, sha256, size, signal } = options;
  const logger = options.logger ?? silentLog;
  const connectTimeoutMs = options.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS;
  const idleTimeoutMs = options.idleTimeoutMs ?? DEFAULT_IDLE_TIMEOUT_MS;
  const overwrite = options.overwrite ?? false;
  const parallelMinBytes = options.parallelMinBytes ?? DEFAULT_PARALLEL_MIN_BYTES;
  const segmentBytes = options.segmentBytes ?? DEFAULT_SEGMENT_BYTES;
  const maxParallelSources = options.maxParallelSources ?? DEFAULT_MAX_PARALLEL_SOURCES;
  if (!Sha256Schema.safeParse(sha256).success)
    throw new P2PError('USAGE', 'sha256 must be 64 lowercase hex digits', { details: { sha256 } });
  if (!Number.isSafeInteger(size) || size < 0)
    throw new P2PError('USAGE', 'size must be a non-negative integer', { details: { size } });
  if (!Number.isSafeInteger(parallelMinBytes) || parallelMinBytes < 0)
    throw new P2PError('USAGE', 'parallelMinBytes must be a non-negative integer', {
      details: { parallelMinBytes },
    });
  if (!Number.isSafeInteger(segmentBytes) || segmentBytes < 1)
    throw new P2PError('USAGE', 'segmentBytes must be a positive integer', { details: { segmentBytes } });
  if (!Number.isSafeInteger(maxParallelSources) || maxParallelSources < 1)
    throw new P2PError('USAGE', 'maxParallelSources must be a positive integer', {
      details: { maxParallelSources },
    });
  if (sources.length === 0)
    throw new P2PError('NO_SOURCES', 'no peer offers this file', { details: { sha256, failures: [] } });
  signal?.throwIfAborted();

  const destPath = path.resolve(options.destPath);
  const existing = await existingContent(destPath, sha256, size);
  if (existing === 'same') {
    logger.info('download: destination already holds the file', { path: destPath });
    return { path: destPath, sha256, size, servedBy: [], failures: [], badSources: [] };
  }
  if (existing === 'different' && !overwrite)
    throw new P2PError('IO_ERROR', `${destPath} already exists`, { details: { path: destPath } });

  const dir = path.dirname(destPath);
  const tempPath = path.join(
    dir,
    `.${path.basename(destPath).slice(0, MAX_TEMP_BASENAME_CHARS)}.${randomBytes(6).toString('hex')}.part`,
  );
  let handle: FileHandle | undefined;
  try {
    await mkdir(dir, { recursive: true });
    // Read-write: a parallel attempt hashes the file back from disk.
    handle = await open(tempPath, 'wx+');
  } catch (err) {
    await handle?.close().catch(() => {});
    throw ioError(`cannot create ${tempPath}`, err);
  }
  const file = handle;
  const expectedEtag = `"${sha256}"`;
  const failures: DownloadFailure[] = [];
  const bad = new Set<string>();
  const suspects = new Set<string>();
  const soloTried = new Set<string>();
  const busyRetried = new Set<DownloadSource>();
  const attemptKinds: Array<'bad-bytes' | 'unreachable'> = [];
  const attempt: Attempt = {
    offset: 0,
    hash: createHash('sha256'),
    contributors: [],
    acceptedFrom: undefined,
  };

  const record = (source: DownloadSource, failure: SourceFailure, offset = attempt.offset): void => {
    failures.push({ peerId: source.peerId, url: source.url, code: failure.code, message: failure.message });
    logger.info('download: source failed', {
      peerId: source.peerId,
      url: source.url,
      code: failure.code,
      message: failure.message,
      offset,
    });
  };

  const reportProgress = (receivedBytes: number, peerId: string): void => {
    if (!options.onProgress) return;
    try {
      options.onProgress({ receivedBytes, totalBytes: size, peerId });
    } catch (err) {
      logger.warn('download: onProgress threw', { error: (err as Error).message });
    }
  };

  /** Empties the temp file: a new attempt, or a source that answered a resume with the whole file. */
  const restart = async (): Promise<void> => {
    try {
      await file.truncate(0);
    } catch (err) {
      throw ioError(`cannot truncate ${tempPath}`, err);
    }
    attempt.offset = 0;
    attempt.hash = createHash('sha256');
    attempt.contributors = [];
    attempt.acceptedFrom = undefined;
  };

  const write = async (piece: Buffer, peerId: string): Promise<void> => {
    await writeAll(file, piece, attempt.offset, tempPath);
    // Only after the write: the hash must always describe exactly the bytes on disk.
    attempt.hash.update(piece);
    attempt.offset += piece.length;
    if (!attempt.contributors.includes(peerId)) attempt.contributors.push(peerId);
    reportProgress(attempt.offset, peerId);
  };

  /** Reads one source from `attempt.offset` until the file is complete; throws SourceFailure otherwise. */
  const fetchFrom = async (source: DownloadSource): Promise<void> => {
    const request = new SourceRequest(signal, connectTimeoutMs, idleTimeoutMs);
    const resumeFrom = attempt.offset;
    const headers: Record<string, string> = { 'accept-encoding': 'identity' };
    if (resumeFrom > 0) {
      headers.range = `bytes=${resumeFrom}-`;
      // A source holding other content answers 200 (and its ETag gives it away) instead of a wrong tail.
      headers['if-range'] = expectedEtag;
    }
    try {
      const response = await request.open(source.url, headers);
      const bodyStart = checkResponse(response, resumeFrom, size, expectedEtag);
      if (bodyStart === undefined) {
        const failure = refusal(response, resumeFrom, size, expectedEtag);
        await response.body?.cancel().catch(() => {});
        throw failure;
      }
      if (bodyStart === 0 && resumeFrom > 0) {
        logger.info('download: source sent the whole file to a resume; starting over from it', {
          peerId: source.peerId,
          discardedBytes: resumeFrom,
        });
        await restart();
      }
      attempt.acceptedFrom = source.peerId;
      if (response.body === null) return;
      try {
        // A plain loop, not stream.pipeline: pipeline settles as soon as the source errors, while the sink may
        // still be writing, and the next source would then start from an offset that is about to move. Here a
        // read error surfaces only at the next pull, after the write in progress is done and counted; and
        // awaiting each write is the backpressure (nothing more is pulled until the chunk is on disk).
        for await (const chunk of request.chunks(response.body)) {
          const room = size - attempt.offset;
          const piece = Buffer.from(chunk.buffer, chunk.byteOffset, Math.min(chunk.byteLength, room));
          await write(piece, source.peerId);
          if (chunk.byteLength > room)
            throw new SourceFailure('SIZE_MISMATCH', `body longer than ${size} bytes`);
        }
      } catch (err) {
        throw request.classify(err, 'CONNECTION_LOST');
      }
      if (attempt.offset < size)
        throw new SourceFailure('CONNECTION_LOST', `body ended at byte ${attempt.offset} of ${size}`);
    } finally {
      request.close();
    }
  };

  const runAttempt = async (plan: DownloadSource[]): Promise<AttemptOutcome> => {
    await restart();
    const busy: Array<{ source: DownloadSource; retryAfterMs: number }> = [];
    const complete = (): boolean => attempt.acceptedFrom !== undefined && attempt.offset === size;
    const tryOne = async (source: DownloadSource): Promise<boolean> => {
      signal?.throwIfAborted();
      try {
        await fetchFrom(source);
        return true;
      } catch (err) {
        if (!(err instanceof SourceFailure)) throw err;
        record(source, err);
        if (err.code === 'BUSY' && !busyRetried.has(source))
          busy.push({ source, retryAfterMs: err.retryAfterMs ?? DEFAULT_RETRY_AFTER_MS });
        // A source can fail after the last byte (a reset after the body, a body running long): nothing is missing.
        return complete();
      }
    };

    let done = false;
    for (const source of plan) {
      if (await tryOne(source)) {
        done = true;
        break;
      }
    }
    for (const { source, retryAfterMs } of busy) {
      if (done) break;
      busyRetried.add(source);
      try {
        await delay(retryAfterMs, undefined, signal ? { signal } : undefined);
      } catch (err) {
        throw signal?.aborted ? signal.reason : err;
      }
      done = await tryOne(source);
    }
    if (!done) return { kind: 'unreachable' };

    const digest = attempt.hash.digest('hex');
    // A 0-byte file has no byte to credit; the source that answered is still the one that vouched for it.
    const contributors =
      attempt.contributors.length > 0 || attempt.acceptedFrom === undefined
        ? [...attempt.contributors]
        : [attempt.acceptedFrom];
    if (digest === sha256) return { kind: 'verified', contributors };
    return { kind: 'bad-bytes', contributors, digest };
  };

  let committed = false;
  let fileOpen = true;

  const commit = async (contributors: string[]): Promise<DownloadResult> => {
    try {
      await file.sync();
      fileOpen = false;
      await file.close();
    } catch (err) {
      throw ioError(`cannot flush ${tempPath}`, err);
    }
    await placeFile(tempPath, destPath, overwrite);
    committed = true;
    await syncDirectory(dir);
    logger.info('download: verified', { path: destPath, size, servedBy: contributors });
    return { path: destPath, sha256, size, servedBy: contributors, failures, badSources: [...bad] };
  };

  /** Bytes of a failed attempt: its only contributor is proven bad, several become suspects. */
  const blame = (plan: DownloadSource[], contributors: string[], digest: string, proven: boolean): void => {
    logger.warn('download: bytes did not verify', {
      expected: sha256,
      got: digest,
      peers: contributors,
      proven,
    });
    for (const peerId of contributors) {
      const source = plan.find((s) => s.peerId === peerId) ?? { peerId, url: '' };
      record(source, new SourceFailure('HASH_MISMATCH', `served bytes of an attempt hashing to ${digest}`));
      if (proven) {
        bad.add(peerId);
        suspects.delete(peerId);
      } else {
        suspects.add(peerId);
      }
    }
  };

  // One source per peer: blame and suspicion are per peer, and a peer's uplink is shared by its addresses.
  const peers = sources.filter((s, i) => sources.findIndex((other) => other.peerId === s.peerId) === i);
  const parallel = maxParallelSources >= 2 && peers.length >= 2 && size > 0 && size >= parallelMinBytes;

  try {
    /** The failed parallel attempt's pieces, to convict their senders once the file has verified. */
    let parallelPieces: PieceDigest[] | undefined;
    if (parallel) {
      const outcome = await fetchInParallel({
        file,
        tempPath,
        sources: peers,
        sha256,
        size,
        segmentBytes,
        maxParallelSources,
        connectTimeoutMs,
        idleTimeoutMs,
        signal,
        logger,
        record,
        reportProgress,
      });
      if (outcome.kind === 'verified') return await commit(outcome.contributors);
      if (outcome.kind === 'bad-bytes') {
        attemptKinds.push('bad-bytes');
        parallelPieces = outcome.pieces;
        // In preference order, not arrival order: that is the order the suspects are then asked alone.
        const contributors = peers.map((s) => s.peerId).filter((id) => outcome.contributors.includes(id));
        blame(peers, contributors, outcome.digest, contributors.length === 1);
      } else {
        logger.info(
          'download: the parallel attempt could not complete; downloading from one source at a time',
        );
      }
    }

    let cleanExhausted = false;
    for (;;) {
      signal?.throwIfAborted();
      const clean = sources.filter((s) => !bad.has(s.peerId) && !suspects.has(s.peerId));
      let solo: string | undefined;
      let plan: DownloadSource[];
      if (!cleanExhausted && clean.length > 0) {
        plan = clean;
      } else {
        solo = [...suspects].find((peerId) => !soloTried.has(peerId));
        if (solo === undefined) break;
        soloTried.add(solo);
        const peer = solo;
        plan = sources.filter((s) => s.peerId === peer);
      }

      const outcome = await runAttempt(plan);
      if (outcome.kind === 'verified') {
        if (parallelPieces !== undefined) {
          for (const peerId of await piecesThatDiffer(file, parallelPieces, tempPath, signal)) {
            if (bad.has(peerId)) continue;
            logger.warn('download: peer proven bad: its segments differ from the verified file', { peerId });
            bad.add(peerId);
            suspects.delete(peerId);
          }
        }
        return await commit(outcome.contributors);
      }

      attemptKinds.push(outcome.kind);
      if (outcome.kind === 'unreachable') {
        if (solo === undefined) cleanExhausted = true;
        continue;
      }
      blame(
        plan,
        outcome.contributors,
        outcome.digest,
        solo !== undefined || outcome.contributors.length === 1,
      );
    }

    const allBad = attemptKinds.length > 0 && attemptKinds.every((kind) => kind === 'bad-bytes');
    const details = { sha256, size, failures, badSources: [...bad], suspects: [...suspects] };
    if (allBad)
      throw new P2PError('HASH_MISMATCH', `no source delivered bytes matching sha256 ${sha256}`, { details });
    throw new P2PError('DOWNLOAD_FAILED', `could not download the file from ${sources.length} source(s)`, {
      details,
    });
  } finally {
    if (fileOpen) await file.close().catch(() => {});
    // After a rename this finds nothing; after a link it drops the second name; otherwise it is the cleanup.
    await rm(tempPath, { force: true }).catch((err: unknown) => {
      logger.warn('download: cannot remove temp file', { path: tempPath, error: (err as Error).message });
    });
    if (!committed) logger.debug('download: temp file removed', { path: tempPath });
  }
}

interface PieceDigest extends Piece {
  sha256: string;
}

type ParallelOutcome =
  | { kind: 'verified'; contributors: string[] }
  | { kind: 'bad-bytes'; contributors: string[]; digest: string; pieces: PieceDigest[] }
  /** The sources could not deliver every segment (nothing was hashed). */
  | { kind: 'unreachable' };

/** What the parallel attempt shares with `downloadFile`. */
interface ParallelContext {
  /** The temp file, open for reading and writing. */
  file: FileHandle;
  tempPath: string;
  /** One per peer, in preference order. */
  sources: DownloadSource[];
  sha256: string;
  size: number;
  segmentBytes: number;
  maxParallelSources: number;
  connectTimeoutMs: number;
  idleTimeoutMs: number;
  signal: AbortSignal | undefined;
  logger: Log;
  record: (source: DownloadSource, failure: SourceFailure, offset: number) => void;
  reportProgress: (receivedBytes: number, peerId: string) => void;
}

/**
 * One attempt at the whole file from several sources at once (see `downloadFile`). Leaves the temp file
 * holding the attempt's bytes; settles only once every request, write and read it started is over, so the
 * caller may truncate, close or remove the file. Throws the abort reason or `IO_ERROR`.
 */
async function fetchInParallel(ctx: ParallelContext): Promise<ParallelOutcome> {
  const { file, tempPath, size, signal, logger } = ctx;
  const plan = new SegmentPlan({ sizeBytes: size, segmentBytes: ctx.segmentBytes });
  try {
    // Sized up front so every segment can be written at its offset in any order.
    await file.truncate(size);
  } catch (err) {
    throw ioError(`cannot size ${tempPath}`, err);
  }

  // Aborted when the attempt is over, for whatever reason: wakes sleepers and waiters, cancels requests.
  // Whoever waits on the plan checks phaseSignal first, synchronously, so no waiter misses this wake-up.
  const over = new AbortController();
  const phaseSignal = signal ? AbortSignal.any([signal, over.signal]) : over.signal;
  phaseSignal.addEventListener('abort', () => plan.interrupt(), { once: true });

  /** Hashes the temp file in order, as far as it is contiguous on disk, while the segments come in. */
  const hashFile = async (): Promise<string | undefined> => {
    const hash = createHash('sha256');
    const buffer = Buffer.allocUnsafe(HASH_READ_BYTES);
    let hashed = 0;
    while (hashed < size) {
      // Once every segment is in, `over` is aborted while this still has to run: only the caller stops it.
      if (signal?.aborted) return undefined;
      const ready = plan.contiguousBytes;
      if (ready < size && ready - hashed < HASH_READ_BYTES) {
        if (phaseSignal.aborted) return undefined;
        await plan.changed();
        continue;
      }
      const length = Math.min(HASH_READ_BYTES, ready - hashed);
      await readExactly(file, buffer, length, hashed, tempPath);
      hash.update(buffer.subarray(0, length));
      hashed += length;
    }
    return hash.digest('hex');
  };

  /** Fetches segments from `source` until none is left ('done') or the source is dropped ('retired'). */
  const runSource = async (source: DownloadSource): Promise<'done' | 'retired'> => {
    let failuresLeft = MAX_PARALLEL_SOURCE_FAILURES;
    for (;;) {
      if (signal?.aborted) throw signal.reason;
      if (over.signal.aborted) return 'done';
      const segment = plan.take(source.peerId);
      if (segment === undefined) {
        if (plan.complete) return 'done';
        await plan.changed();
        continue;
      }
      let failure: SourceFailure;
      try {
        await fetchSegment(ctx, plan, segment, source, phaseSignal);
        plan.release(segment);
        // Nothing is left to fetch: wake a source sleeping on a Retry-After.
        if (plan.complete) over.abort();
        continue;
      } catch (err) {
        plan.release(segment);
        if (signal?.aborted) throw signal.reason;
        // Another task ended the attempt (and reports why).
        if (over.signal.aborted) return 'done';
        if (!(err instanceof SourceFailure)) throw err;
        failure = err;
      }
      ctx.record(source, failure, segment.written);
      failuresLeft -= 1;
      if (RETIRE_AT_ONCE.has(failure.code) || failuresLeft === 0) {
        logger.info('download: source dropped from the parallel download', {
          peerId: source.peerId,
          code: failure.code,
        });
        return 'retired';
      }
      if (failure.code === 'BUSY') {
        await delay(failure.retryAfterMs ?? DEFAULT_RETRY_AFTER_MS, undefined, { signal: phaseSignal }).catch(
          () => {},
        );
      }
    }
  };

  const waiting = [...ctx.sources];
  /** One connection at a time; a dropped source's place goes to the next source not yet asked. */
  const slot = async (): Promise<void> => {
    for (let source = waiting.shift(); source !== undefined; source = waiting.shift())
      if ((await runSource(source)) === 'done') return;
  };

  const hashing = hashFile().catch((err: unknown) => {
    over.abort(err);
    throw err;
  });
  // Awaited below; this only keeps an early rejection from counting as unhandled meanwhile.
  hashing.catch(() => {});
  const slots = Array.from({ length: Math.min(ctx.maxParallelSources, waiting.length) }, () => slot());
  try {
    await Promise.all(slots);
  } catch (err) {
    over.abort(err);
    await Promise.allSettled([hashing, ...slots]);
    throw err;
  }
  over.abort();
  const digest = await hashing;
  signal?.throwIfAborted();
  if (!plan.complete || digest === undefined) return { kind: 'unreachable' };
  const contributors = [...plan.contributors];
  logger.debug('download: parallel attempt complete', { contributors, pieces: plan.pieces.length });
  if (digest === ctx.sha256) return { kind: 'verified', contributors };
  const pieces = await digestPieces(file, plan.pieces, tempPath, signal);
  return { kind: 'bad-bytes', contributors, digest, pieces };
}

/**
 * Fetches the rest of `segment` from `source` into the temp file at its offset; returns once its bytes are
 * on disk or another source took over the rest. Throws SourceFailure, the abort reason or `IO_ERROR`.
 */
async function fetchSegment(
  ctx: ParallelContext,
  plan: SegmentPlan,
  segment: Segment,
  source: DownloadSource,
  phaseSignal: AbortSignal,
): Promise<void> {
  const { size, connectTimeoutMs, idleTimeoutMs } = ctx;
  const expectedEtag = `"${ctx.sha256}"`;
  const request = new SourceRequest(phaseSignal, connectTimeoutMs, idleTimeoutMs);
  const first = segment.next;
  const last = segment.end - 1;
  const headers = {
    'accept-encoding': 'identity',
    range: `bytes=${first}-${last}`,
    // A source holding other content answers 200 (and its ETag gives it away) instead of wrong bytes.
    'if-range': expectedEtag,
  };
  try {
    const response = await request.open(source.url, headers);
    const refused = segmentRefusal(response, first, last, size, expectedEtag);
    if (refused !== undefined) {
      await response.body?.cancel().catch(() => {});
      throw refused;
    }
    if (response.body === null) throw new SourceFailure('CONNECTION_LOST', 'a 206 without a body');
    try {
      // As in the sequential path: a read error surfaces only at the next pull, after the write in progress
      // is done and counted, so what goes back to the plan starts exactly at the first byte not on disk.
      for await (const chunk of request.chunks(response.body)) {
        const claimed = plan.claim(segment, chunk.byteLength);
        if (claimed > 0) {
          const at = segment.next - claimed;
          await writeAll(ctx.file, Buffer.from(chunk.buffer, chunk.byteOffset, claimed), at, ctx.tempPath);
          plan.wrote(segment, claimed);
          ctx.reportProgress(plan.writtenBytes, source.peerId);
        }
        if (segment.next < segment.end) continue;
        // Another source took over the tail: the rest of this body is theirs.
        if (segment.end <= last) break;
        if (claimed < chunk.byteLength)
          throw new SourceFailure(
            'SIZE_MISMATCH',
            `body longer than the ${last - first + 1} bytes asked for`,
          );
      }
    } catch (err) {
      throw request.classify(err, 'CONNECTION_LOST');
    }
    if (segment.written < segment.end)
      throw new SourceFailure('CONNECTION_LOST', `body ended at byte ${segment.written} of ${first}-${last}`);
  } finally {
    request.close();
  }
}

/** Why an answer to `Range: bytes=<first>-<last>` cannot be taken, or undefined when it can. */
function segmentRefusal(
  response: Response,
  first: number,
  last: number,
  size: number,
  expectedEtag: string,
): SourceFailure | undefined {
  const refused = answerRefusal(response, expectedEtag);
  if (refused !== undefined) return refused;
  if (response.status === 200)
    return new SourceFailure('BAD_RANGE', `the whole file (200) for a request of bytes ${first}-${last}`);
  const contentRange = response.headers.get('content-range');
  const range = parseContentRange(contentRange);
  if (range?.total !== undefined && range.total !== size)
    return new SourceFailure('SIZE_MISMATCH', `Content-Range ${contentRange} is not for ${size} bytes`);
  if (range === undefined || range.start !== first || range.end !== last)
    return new SourceFailure(
      'BAD_RANGE',
      `206 with Content-Range ${String(contentRange).slice(0, 80)} for bytes ${first}-${last}`,
    );
  return undefined;
}

/** The SHA-256 of each piece's bytes as the temp file holds them now, sorted by offset. */
async function digestPieces(
  file: FileHandle,
  pieces: Piece[],
  tempPath: string,
  signal: AbortSignal | undefined,
): Promise<PieceDigest[]> {
  const buffer = Buffer.allocUnsafe(HASH_READ_BYTES);
  const digests: PieceDigest[] = [];
  for (const piece of [...pieces].sort((a, b) => a.start - b.start)) {
    const hash = createHash('sha256');
    for (let at = piece.start; at < piece.end; ) {
      signal?.throwIfAborted();
      const length = Math.min(HASH_READ_BYTES, piece.end - at);
      await readExactly(file, buffer, length, at, tempPath);
      hash.update(buffer.subarray(0, length));
      at += length;
    }
    digests.push({ ...piece, sha256: hash.digest('hex') });
  }
  return digests;
}

/** Peers that wrote any piece whose bytes differ from what the temp file (now verified) holds there. */
async function piecesThatDiffer(
  file: FileHandle,
  pieces: PieceDigest[],
  tempPath: string,
  signal: AbortSignal | undefined,
): Promise<string[]> {
  const now = await digestPieces(file, pieces, tempPath, signal);
  const peers = new Set<string>();
  for (const [i, piece] of pieces.entries()) if (now[i]?.sha256 !== piece.sha256) peers.add(piece.peerId);
  return [...peers];
}

async function writeAll(file: FileHandle, piece: Buffer, position: number, tempPath: string): Promise<void> {
  try {
    let written = 0;
    while (written < piece.length) {
      const { bytesWritten } = await file.write(piece, written, piece.length - written, position + written);
      written += bytesWritten;
    }
  } catch (err) {
    throw ioError(`cannot write ${tempPath}`, err);
  }
}

async function readExactly(
  file: FileHandle,
  buffer: Buffer,
  length: number,
  position: number,
  tempPath: string,
): Promise<void> {
  try {
    let read = 0;
    while (read < length) {
      const { bytesRead } = await file.read(buffer, read, length - read, position + read);
      if (bytesRead === 0) throw new Error(`unexpected end of file at byte ${position + read}`);
      read += bytesRead;
    }
  } catch (err) {
    throw ioError(`cannot read ${tempPath}`, err);
  }
}

/**
 * The offset the response body starts at (0 or the requested one) when it can be taken, else undefined
 * (`refusal` says why).
 */
function checkResponse(
  response: Response,
  resumeFrom: number,
  size: number,
  expectedEtag: string,
): number | undefined {
  if (response.status !== 200 && response.status !== 206) return undefined;
  const etag = response.headers.get('etag');
  if (etag !== null && etag !== expectedEtag) return undefined;
  if (response.status === 200) {
    const length = response.headers.get('content-length');
    return length === null || Number(length) === size ? 0 : undefined;
  }
  const range = parseContentRange(response.headers.get('content-range'));
  if (resumeFrom === 0 || range === undefined) return undefined;
  if (range.start !== resumeFrom || range.end !== size - 1) return undefined;
  if (range.total !== undefined && range.total !== size) return undefined;
  return resumeFrom;
}

/** What rules out any answer, whatever was asked: busy, an error status, an ETag naming other content. */
function answerRefusal(response: Response, expectedEtag: string): SourceFailure | undefined {
  const status = response.status;
  if (status === 503)
    return new SourceFailure('BUSY', 'HTTP 503', parseRetryAfterMs(response.headers.get('retry-after')));
  if (status !== 200 && status !== 206) return new SourceFailure('HTTP_STATUS', `HTTP ${status}`);
  const etag = response.headers.get('etag');
  if (etag !== null && etag !== expectedEtag)
    return new SourceFailure('ETAG_MISMATCH', `ETag ${etag.slice(0, 80)} is not ${expectedEtag}`);
  return undefined;
}

function refusal(response: Response, resumeFrom: number, size: number, expectedEtag: string): SourceFailure {
  const refused = answerRefusal(response, expectedEtag);
  if (refused !== undefined) return refused;
  const status = response.status;
  if (status === 200)
    return new SourceFailure(
      'SIZE_MISMATCH',
      `Content-Length ${response.headers.get('content-length')} is not ${size}`,
    );
  const contentRange = response.headers.get('content-range');
  const range = parseContentRange(contentRange);
  if (resumeFrom > 0 && range?.total !== undefined && range.total !== size)
    return new SourceFailure('SIZE_MISMATCH', `Content-Range ${contentRange} is not for ${size} bytes`);
  return new SourceFailure(
    'BAD_RANGE',
    `206 with Content-Range ${String(contentRange).slice(0, 80)} for a request from byte ${resumeFrom}`,
  );
}

/** `bytes <start>-<end>/<total|*>` (RFC 9110 §14.4); total undefined for `*`. */
function parseContentRange(value: string | null): { start: number; end: number; total?: number } | undefined {
  const match = /^bytes (\d+)-(\d+)\/(\d+|\*)$/.exec(value?.trim() ?? '');
  if (!match) return undefined;
  const [, start, end, total] = match;
  return { start: Number(start), end: Number(end), total: total === '*' ? undefined : Number(total) };
}

/** Retry-After is seconds or an HTTP date (RFC 9110 §10.2.3); clamped to [0, MAX_RETRY_AFTER_MS]. */
function parseRetryAfterMs(value: string | null): number {
  if (value === null) return DEFAULT_RETRY_AFTER_MS;
  const trimmed = value.trim();
  const ms = /^\d+$/.test(trimmed) ? Number(trimmed) * 1000 : Date.parse(trimmed) - Date.now();
  if (Number.isNaN(ms)) return DEFAULT_RETRY_AFTER_MS;
  return Math.min(Math.max(ms, 0), MAX_RETRY_AFTER_MS);
}

/** undici puts the useful part (ECONNREFUSED, ECONNRESET…) in `cause`. */
/**
 * One HTTP request to a source, as both download paths make it: a deadline for the response headers, then
 * one between body chunks, every error classified as the failure the caller should record.
 */
class SourceRequest {
  private readonly controller = new AbortController();
  private readonly signal: AbortSignal;
  private timedOut: SourceFailure | undefined;
  private timer: NodeJS.Timeout | undefined;

  constructor(
    /** The whole download's (or phase's) signal: its abort wins over any source failure. */
    private readonly parent: AbortSignal | undefined,
    private readonly connectTimeoutMs: number,
    private readonly idleTimeoutMs: number,
  ) {
    this.signal = parent ? AbortSignal.any([parent, this.controller.signal]) : this.controller.signal;
  }

  async open(url: string, headers: Record<string, string>): Promise<Response> {
    this.arm('CONNECT_TIMEOUT', `no response within ${this.connectTimeoutMs} ms`, this.connectTimeoutMs);
    try {
      return await fetch(url, { headers, signal: this.signal, redirect: 'error' });
    } catch (err) {
      throw this.classify(err, 'CONNECT_FAILED');
    } finally {
      clearTimeout(this.timer);
    }
  }

  /** The body's chunks; the idle deadline restarts with each one. */
  async *chunks(body: ReadableStream<Uint8Array>): AsyncGenerator<Uint8Array> {
    const idle = () => this.arm('IDLE_TIMEOUT', `no data for ${this.idleTimeoutMs} ms`, this.idleTimeoutMs);
    idle();
    for await (const chunk of body) {
      idle();
      yield chunk;
    }
  }

  /** Whatever went wrong, as the error this source's caller should see. */
  classify(err: unknown, fallback: DownloadFailureCode): unknown {
    if (this.parent?.aborted) return this.parent.reason;
    if (err instanceof SourceFailure || err instanceof P2PError) return err;
    if (this.timedOut) return this.timedOut;
    return new SourceFailure(fallback, describeFetchError(err));
  }

  /** Frees the connection whatever state the body is in; a no-op once it was read to the end. */
  close(): void {
    clearTimeout(this.timer);
    this.controller.abort();
  }

  private arm(code: DownloadFailureCode, message: string, ms: number): void {
    clearTimeout(this.timer);
    this.timer = setTimeout(() => {
      this.timedOut = new SourceFailure(code, message);
      this.controller.abort(this.timedOut);
    }, ms);
  }
}

function describeFetchError(err: unknown): string {
  if (err instanceof Error) {
    const cause = err.cause;
    if (cause instanceof Error) return `${err.message}: ${cause.message}`;
    return err.message;
  }
  return String(err);
}

function ioError(message: string, err: unknown): P2PError {
  if (err instanceof P2PError) return err;
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  return new P2PError('IO_ERROR', `${message}: ${(err as Error)?.message ?? String(err)}`, {
    cause: err,
    details: { code },
  });
}

async function existingContent(
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
        if (code === 'EEXIST')
          throw new P2PError('IO_ERROR', `${destPath} appeared during the download`, {
            details: { path: destPath },
          });
        if (!LINK_UNSUPPORTED.has(code)) throw err;
      }
      const present = await stat(destPath).then(
        () => true,
        () => false,
      );
      if (present)
        throw new P2PError('IO_ERROR', `${destPath} appeared during the download`, {
          details: { path: destPath },
        });
    }
    await rename(tempPath, destPath);
  } catch (err) {
    throw ioError(`cannot move the download to ${destPath}`, err);
  }
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
