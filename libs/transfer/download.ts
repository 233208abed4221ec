import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { isP2PError, P2PError } from '../errors/index.js';
// The logging lib's index would load winston, which a get that logs nothing does not need.
import { childLog, type Log, silentLog } from '../logging/log.js';
import { Sha256Schema } from '../protocol/index.js';
import { BusyWaits } from './download-busy.js';
import type { DownloadFailure, SourceFailure } from './download-failure.js';
import { SourceLedger } from './download-ledger.js';
import { fetchInParallel } from './download-parallel.js';
import { type PieceDigest, piecesThatDiffer } from './download-pieces.js';
import type { RequestLimits } from './download-request.js';
import { DEFAULT_RESUME_MAX_AGE_MS, keepPrefix, keptPaths, sweepKept, takeKept } from './download-resume.js';
import { runSequentialAttempt, type SequentialContext } from './download-sequential.js';
import { existingContent, TempFile, tempFileName } from './download-temp.js';
import { HashWorker, type HashWorkerOptions } from './hash-worker.js';

export type { DownloadFailure, DownloadFailureCode } from './download-failure.js';

export interface DownloadSource {
  /** Direct file URL (see `fileUrl()` in libs/protocol). */
  url: string;
  peerId: string;
}

export interface DownloadProgress {
  /** Bytes of the file in the temp file so far (falls back when an attempt starts over). */
  receivedBytes: number;
  totalBytes: number;
  /** The source currently sending (in a parallel download, the one that wrote last). */
  peerId: string;
}

/** The download is waiting before asking a source again. */
export interface DownloadWait {
  peerId: string;
  /** Why: the source answered 503 (all its upload slots taken). */
  reason: 'busy';
  waitMs: number;
}

export interface DownloadOptions {
  /**
   * In preference order. With sources from two peers or more, a non-empty file (of at least
   * `parallelMinBytes`) is fetched in segments from several at once; otherwise one at a time, the next
   * continuing from the byte reached (Range).
   */
  sources: DownloadSource[];
  /** Expected SHA-256, 64 lowercase hex digits. */
  sha256: string;
  /**
   * Expected size in bytes. A holder's claim, untrusted like the bytes: nothing is allocated by it, and a
   * source whose answer disagrees with it fails (SIZE_MISMATCH). Holders that disagree on it are for
   * `downloadFromHolders`, which tries each claimed size in turn.
   */
  size: number;
  /** Final path; its parent directory is created if missing. */
  destPath: string;
  /** Time allowed until a source's response headers. Default 5_000. */
  connectTimeoutMs?: number;
  /**
   * The window over which a source's body rate is judged: no byte in it is IDLE_TIMEOUT, fewer than
   * `minRateBytesPerSecond` on average is TOO_SLOW. Default 10_000.
   */
  idleTimeoutMs?: number;
  /** The slowest a source may send and be kept, whatever the others do. Default 4_096 (4 KiB/s). */
  minRateBytesPerSecond?: number;
  /**
   * How long the download may spend, in all, waiting for busy (503) sources to have a free slot: each
   * wait honours the source's Retry-After and backs off on repeated refusals. Default 60_000.
   */
  busyWaitMs?: number;
  /**
   * Default false: an existing `destPath` is an `IO_ERROR` (`details.reason` 'exists'), unless it already
   * holds the expected content, in which case it is returned without downloading. True replaces it
   * (atomically, by rename).
   */
  overwrite?: boolean;
  /** With sources from at least two peers, a file of at least this many bytes is fetched in parallel. Default 1. */
  parallelMinBytes?: number;
  /**
   * Size of the ranges fetched in parallel; raised when a file would have more than 4096 of them.
   * Default 4 MiB.
   */
  segmentBytes?: number;
  /** How many sources a parallel download fetches from at once; 1 turns parallel downloads off. Default 4. */
  maxParallelSources?: number;
  /**
   * A parallel download starts with one source; another joins every this many ms while this machine keeps
   * up with those fetching (a source that alone keeps it busy gains nothing from company). 0 starts them
   * all at once. Default 200.
   */
  parallelRampMs?: number;
  /**
   * fsync the file before it takes its final name (and its directory after). Default false, as curl, wget
   * and browsers do: the SHA-256 is checked on the bytes written, and waiting for the disk makes a download
   * as slow as the disk's write speed (on loopback, several times slower than the transfer itself). After
   * a crash without it, the file may hold unwritten blocks; a peer re-hashes a file before sharing it.
   */
  durable?: boolean;
  /** The hashing thread's options (see `HashWorker`); defaults there. */
  hashing?: HashWorkerOptions;
  /**
   * Keep what an interrupted download got for a later one to resume (see download-resume): on abort, or
   * when the sources could not deliver the file (DOWNLOAD_FAILED), the temp file's contiguous prefix is
   * kept beside `destPath` as `.p2p-<key>.part` with a small `.p2p-<key>.resume` sidecar; a later
   * download of the same file (sha256 and size) to the same `destPath` re-hashes it and continues from
   * there. Default false (nothing is left behind).
   */
  resume?: boolean;
  /** With `resume`, a kept prefix older than this is removed by any later download into its directory. Default 7 days. */
  resumeMaxAgeMs?: number;
  /** With `resume`: told how much was kept when the download stopped, or resumed when it started. */
  onResume?: (event: ResumeEvent) => void;
  /** Called as bytes reach the temp file. */
  onProgress?: (progress: DownloadProgress) => void;
  /** Called before each wait for a busy source. */
  onWait?: (wait: DownloadWait) => void;
  /** Aborting removes the temp file and rejects with `signal.reason`. */
  signal?: AbortSignal;
  /** Default: silent. */
  logger?: Log;
}

/** A kept prefix: `kept` when a download stopped, `resumed` when a later one took it over. */
export interface ResumeEvent {
  kind: 'kept' | 'resumed';
  /** Bytes of the file's start on disk. */
  bytes: number;
  /** Where they are (the kept prefix; for `resumed`, the temp file it became). */
  path: string;
}

export interface DownloadResult {
  path: string;
  sha256: string;
  size: number;
  /** Peers whose bytes are in the verified file, in the order they sent them (empty if it already existed). */
  servedBy: string[];
  /** True when `path` already held the file and nothing was downloaded. */
  alreadyPresent: boolean;
  /** Every source failure along the way, in order, including those of sources that later succeeded. */
  failures: DownloadFailure[];
  /** Peers proven to have served bytes that do not match the hash. */
  badSources: string[];
}

const DEFAULT_CONNECT_TIMEOUT_MS = 5_000;
const DEFAULT_IDLE_TIMEOUT_MS = 10_000;
const DEFAULT_MIN_RATE_BYTES_PER_SECOND = 4 * 1024;
/** `busyWaitMs` when not given. */
export const DEFAULT_BUSY_WAIT_MS = 60_000;
const DEFAULT_PARALLEL_MIN_BYTES = 1;
const DEFAULT_SEGMENT_BYTES = 4 * 1024 * 1024;
const DEFAULT_MAX_PARALLEL_SOURCES = 4;
const DEFAULT_PARALLEL_RAMP_MS = 200;

/**
 * Downloads a file peer to peer into a temp file beside `destPath` (`.p2p-<sha256 prefix>-<random>.part`,
 * short whatever the name) and gives it its final name only after its size and SHA-256 verified, so a
 * partial or wrong file never carries the final name; on any failure or abort the temp file is removed
 * (with `resume`, an abort or DOWNLOAD_FAILED keeps its in-order prefix for a later download instead).
 *
 * A non-empty file offered by two peers or more is first fetched in segments from up to
 * `maxParallelSources` of them at once (see `fetchInParallel`), the first at once, the others joining one
 * by one while this machine keeps up (`parallelRampMs`): a source that finishes takes the next
 * segment, and at the end the work of the source that will finish last, the whole of it when that source
 * delivers less than an eighth of the taker's rate (it is cut off, TOO_SLOW), the last small pieces raced
 * (asked of two sources, the first to have them wins and the other is cancelled). If the parallel attempt
 * does not verify, its contributors become suspects and the sequential path takes over; once that path has
 * verified the file, every contributor whose segments differ from it is proven bad. If the sources cannot
 * complete it, the sequential path starts over with all of them.
 *
 * The sequential path tries the sources in order, resuming on the next with `Range`/`If-Range` from the
 * byte reached. A result that does not verify is discarded and the whole file fetched again on sources
 * that did not take part (see `SourceLedger`). Busy (503) sources are waited for (see `BusyWaits`). Every
 * source must keep at least `minRateBytesPerSecond`.
 *
 * Throws `P2PError`: `NO_SOURCES` (empty list), `USAGE` (malformed sha256/size/options), `IO_ERROR`
 * (destination exists with other content, local disk errors), `HASH_MISMATCH` (every attempt made ended
 * in bytes that did not verify) or `DOWNLOAD_FAILED` (otherwise, e.g. sources unreachable or busy);
 * `details` carries `failures` and `badSources`. Redirects are refused: a peer URL is direct, and following
 * one would let a peer point this client at any other address.
 */
export async function downloadFile(options: DownloadOptions): Promise<DownloadResult> {
  const { sources, sha256, size, signal } = options;
  const logger = childLog(options.logger ?? silentLog, 'download');
  const overwrite = options.overwrite ?? false;
  const parallelMinBytes = options.parallelMinBytes ?? DEFAULT_PARALLEL_MIN_BYTES;
  const segmentBytes = options.segmentBytes ?? DEFAULT_SEGMENT_BYTES;
  const maxParallelSources = options.maxParallelSources ?? DEFAULT_MAX_PARALLEL_SOURCES;
  const rampIntervalMs = options.parallelRampMs ?? DEFAULT_PARALLEL_RAMP_MS;
  const limits: RequestLimits = {
    connectTimeoutMs: options.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS,
    idleTimeoutMs: options.idleTimeoutMs ?? DEFAULT_IDLE_TIMEOUT_MS,
    minRateBytesPerSecond: options.minRateBytesPerSecond ?? DEFAULT_MIN_RATE_BYTES_PER_SECOND,
  };
  if (!Sha256Schema.safeParse(sha256).success)
    throw new P2PError('USAGE', 'sha256 must be 64 lowercase hex digits', { details: { sha256 } });
  if (!Number.isSafeInteger(size) || size < 0)
    throw new P2PError('USAGE', 'size must be a non-negative integer', { details: { size } });
  for (const [name, value, min] of [
    ['parallelMinBytes', parallelMinBytes, 0],
    ['segmentBytes', segmentBytes, 1],
    ['maxParallelSources', maxParallelSources, 1],
    ['parallelRampMs', rampIntervalMs, 0],
    ['minRateBytesPerSecond', limits.minRateBytesPerSecond, 0],
  ] as const) {
    if (!Number.isSafeInteger(value) || value < min)
      throw new P2PError('USAGE', `${name} must be an integer of at least ${min}`, {
        details: { [name]: value },
      });
  }
  if (sources.length === 0)
    throw new P2PError('NO_SOURCES', 'no peer offers this file', { details: { sha256, failures: [] } });
  signal?.throwIfAborted();

  const destPath = path.resolve(options.destPath);
  const existing = await existingContent(destPath, sha256, size);
  if (existing === 'same') {
    logger.info('destination already holds the file', { path: destPath });
    return { path: destPath, sha256, size, servedBy: [], alreadyPresent: true, failures: [], badSources: [] };
  }
  if (existing === 'different' && !overwrite)
    throw new P2PError('IO_ERROR', `${destPath} already exists`, {
      details: { path: destPath, reason: 'exists' },
    });

  const dir = path.dirname(destPath);
  const tempName = tempFileName(sha256, randomBytes(6).toString('hex'));
  const resume = options.resume ?? false;
  let resumeFrom = 0;
  if (resume && size > 0) {
    await sweepKept(dir, options.resumeMaxAgeMs ?? DEFAULT_RESUME_MAX_AGE_MS, logger);
    resumeFrom = await takeKept(destPath, sha256, size, path.join(dir, tempName), logger);
  }
  const file =
    resumeFrom > 0 ? await TempFile.reopen(path.join(dir, tempName)) : await TempFile.create(dir, tempName);
  const prefix = { bytes: resumeFrom };
  // One hashing thread for the whole download, reset by each attempt; closed in the `finally` below.
  const hashing = new HashWorker(options.hashing);
  const tell = (event: ResumeEvent): void => {
    logger.info(`${event.kind} a prefix`, { ...event });
    try {
      options.onResume?.(event);
    } catch (err) {
      logger.warn('onResume threw', { error: (err as Error).message });
    }
  };
  if (resumeFrom > 0) tell({ kind: 'resumed', bytes: resumeFrom, path: file.path });
  const ledger = new SourceLedger(sources, logger);
  const busy = new BusyWaits(options.busyWaitMs ?? DEFAULT_BUSY_WAIT_MS, (wait) => {
    logger.info('waiting for a busy source', { ...wait });
    try {
      options.onWait?.(wait);
    } catch (err) {
      logger.warn('onWait threw', { error: (err as Error).message });
    }
  });
  const reportProgress = (receivedBytes: number, peerId: string): void => {
    if (!options.onProgress) return;
    try {
      options.onProgress({ receivedBytes, totalBytes: size, peerId });
    } catch (err) {
      logger.warn('onProgress threw', { error: (err as Error).message });
    }
  };
  const record = (source: DownloadSource, failure: SourceFailure, offset: number): void =>
    ledger.record(source, failure, offset);

  const commit = async (contributors: string[]): Promise<DownloadResult> => {
    await file.commit(destPath, overwrite, options.durable ?? false);
    logger.info('verified', { path: destPath, size, servedBy: contributors });
    return {
      path: destPath,
      sha256,
      size,
      servedBy: contributors,
      alreadyPresent: false,
      failures: ledger.failures,
      badSources: [...ledger.bad],
    };
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
        hashing,
        sources: peers,
        sha256,
        size,
        segmentBytes,
        maxParallelSources,
        limits,
        signal,
        logger,
        busy,
        record,
        reportProgress,
        startAt: resumeFrom,
        prefix,
        rampIntervalMs,
      });
      if (outcome.kind === 'verified') return await commit(outcome.contributors);
      if (outcome.kind === 'bad-bytes' && resumeFrom > 0) {
        // The kept prefix may be what is wrong: nobody is blamed, and the file is fetched again whole.
        logger.info('the resumed file did not verify; downloading it again from byte 0');
        resumeFrom = 0;
      } else if (outcome.kind === 'bad-bytes') {
        parallelPieces = outcome.pieces;
        // In preference order, not arrival order: that is the order the suspects are then asked alone.
        const contributors = peers.map((s) => s.peerId).filter((id) => outcome.contributors.includes(id));
        ledger.blame(peers, contributors, outcome.digest, contributors.length === 1);
      } else {
        logger.info(
          'download: the parallel attempt could not complete; downloading from one source at a time',
        );
        // What is on disk in order is as good a start as a kept prefix (and as unproven).
        resumeFrom = prefix.bytes;
      }
    }

    const sequential: SequentialContext = {
      file,
      hashing,
      sha256,
      size,
      limits,
      signal,
      logger,
      ledger,
      busy,
      reportProgress,
      prefix,
    };
    for (let plan = ledger.nextPlan(); plan !== undefined; plan = ledger.nextPlan()) {
      signal?.throwIfAborted();
      let outcome = await runSequentialAttempt(sequential, plan.sources, resumeFrom);
      if (outcome.kind === 'bad-bytes' && resumeFrom > 0) {
        logger.info('the resumed file did not verify; downloading it again from byte 0');
        resumeFrom = 0;
        outcome = await runSequentialAttempt(sequential, plan.sources);
      }
      resumeFrom = 0;
      if (outcome.kind === 'verified') {
        if (parallelPieces !== undefined) {
          for (const peerId of await piecesThatDiffer(file, parallelPieces, signal)) {
            if (ledger.bad.has(peerId)) continue;
            logger.warn('peer proven bad: its segments differ from the verified file', { peerId });
            ledger.convict(peerId);
          }
        }
        return await commit(outcome.contributors);
      }
      if (outcome.kind === 'unreachable') ledger.unreachable(plan);
      else
        ledger.blame(
          plan.sources,
          outcome.contributors,
          outcome.digest,
          plan.solo !== undefined || outcome.contributors.length === 1,
        );
    }
    throw ledger.finalError(sha256, size);
  } catch (err) {
    const stopped = signal?.aborted === true || isP2PError(err, 'DOWNLOAD_FAILED');
    // The last byte is always fetched again: a resumed download then always has a source vouch for the file.
    const keep = Math.min(prefix.bytes, size - 1);
    // The hashing thread writes and reads with the file's descriptor: stopped before the file is closed.
    await hashing.close();
    if (resume && stopped && keep > 0 && (await keepPrefix(file, destPath, { sha256, size, bytes: keep })))
      tell({ kind: 'kept', bytes: keep, path: keptPaths(destPath).part });
    throw err;
  } finally {
    // Before the file is closed: once this resolves, the thread uses its descriptor no more.
    await hashing.close();
    // After a rename this finds nothing; after a link it drops the second name; otherwise it is the cleanup.
    await file.remove().catch((err: unknown) => {
      logger.warn('cannot remove temp file', { path: file.path, error: (err as Error).message });
    });
  }
}
