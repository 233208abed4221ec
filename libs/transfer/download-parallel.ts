import type { Log } from '../logging/index.js';
import { BatchWriter } from './batch-writer.js';
import type { DownloadSource } from './download.js';
import type { BusyWaits } from './download-busy.js';
import { checkRangeAnswer } from './download-checks.js';
import { type DownloadFailureCode, SourceFailure, TakenOver } from './download-failure.js';
import { digestPieces, type PieceDigest } from './download-pieces.js';
import { type RequestLimits, SourceRequest } from './download-request.js';
import { ioError, type TempFile } from './download-temp.js';
import type { HashWorker } from './hash-worker.js';
import { type Segment, SegmentPlan } from './parallel.js';
import { SourceRamp } from './parallel-ramp.js';
import { PrefixHasher } from './prefix-hash.js';

/** In a parallel download, a source is dropped after this many failed segments (busy answers excluded). */
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
  'TOO_SLOW',
]);
/** Read size when hashing the temp file back from disk (one request to the hashing thread). */
const HASH_READ_BYTES = 4 * 1024 * 1024;
/** How many segments' worth a source fetching alone asks for in one request. */
const ALONE_SEGMENTS = 64;
/** An idle source looks again for work to take over at least this often (a stalled source sends no news). */
const IDLE_RECHECK_MS = 250;

export type ParallelOutcome =
  | { kind: 'verified'; contributors: string[] }
  | { kind: 'bad-bytes'; contributors: string[]; digest: string; pieces: PieceDigest[] }
  /** The sources could not deliver every segment (nothing was hashed). */
  | { kind: 'unreachable' };

/** What the parallel attempt shares with `downloadFile`. */
export interface ParallelContext {
  file: TempFile;
  /** Hashes the file in order, off this thread (reset here). */
  hashing: HashWorker;
  /** One per peer, in preference order. */
  sources: DownloadSource[];
  sha256: string;
  size: number;
  segmentBytes: number;
  maxParallelSources: number;
  limits: RequestLimits;
  signal: AbortSignal | undefined;
  logger: Log;
  busy: BusyWaits;
  record: (source: DownloadSource, failure: SourceFailure, offset: number) => void;
  reportProgress: (receivedBytes: number, peerId: string) => void;
  /** Bytes [0, startAt) of the temp file are kept from before (hashed back from disk, not fetched). */
  startAt: number;
  /** Kept up to date with the bytes [0, bytes) on disk: what can be kept if the download stops. */
  prefix: { bytes: number };
  /** How often another source may join (see `SourceRamp`); 0 starts them all at once. */
  rampIntervalMs: number;
}

/**
 * One attempt at the whole file from several sources at once (see `downloadFile`). Leaves the temp file
 * holding the attempt's bytes; settles only once every request, write and read it started is over, so the
 * caller may truncate, close or remove the file. Throws the abort reason or `IO_ERROR`.
 */
export async function fetchInParallel(ctx: ParallelContext): Promise<ParallelOutcome> {
  const { file, size, signal, logger } = ctx;
  const plan = new SegmentPlan({ sizeBytes: size, segmentBytes: ctx.segmentBytes, startBytes: ctx.startAt });
  ctx.prefix.bytes = ctx.startAt;
  // Not sized up front: the size is a claim until the bytes verify, and a file extended to a liar's 2^53-1
  // bytes fails (EFBIG) or, where files are not sparse, takes that much disk. Writes at any offset extend
  // it as the bytes arrive. Cut to the prefix kept from before: a longer file must not keep a stale tail.
  await file.truncate(ctx.startAt);

  // Aborted when the attempt is over, for whatever reason: wakes sleepers and waiters, cancels requests.
  // Whoever waits on the plan checks phaseSignal first, synchronously, so no waiter misses this wake-up.
  const over = new AbortController();
  const phaseSignal = signal ? AbortSignal.any([signal, over.signal]) : over.signal;
  phaseSignal.addEventListener('abort', () => plan.interrupt(), { once: true });
  /** Each segment's own cancel: a source cut off for being slow, or the loser of a race. */
  const cancels = new Map<Segment, AbortController>();
  const cancel = (segment: Segment | undefined, reason: unknown): void => {
    if (segment !== undefined) cancels.get(segment)?.abort(reason);
  };

  /**
   * Hashes the file in order while the segments come in: from memory as the bytes arrive (see
   * `PrefixHasher`), from the temp file for what memory could not hold.
   */
  const hasher = new PrefixHasher(size, ctx.hashing);
  const hashFile = async (): Promise<string | undefined> => {
    while (hasher.hashedBytes < size) {
      // Once every segment is in, `over` is aborted while this still has to run: only the caller stops it.
      if (signal?.aborted) return undefined;
      const ready = plan.contiguousBytes;
      if (!hasher.gapAt(ready)) {
        if (phaseSignal.aborted && ready < size) return undefined;
        await plan.changed();
        continue;
      }
      await hasher.hashFile(file.fd, Math.min(HASH_READ_BYTES, ready - hasher.hashedBytes));
    }
    return hasher.digest();
  };

  /** The sources' connections: one at first, more as the ramp lets them join. */
  const slots: Array<Promise<void>> = [];
  let started = 0;
  /** Fetches segments from `source` until none is left ('done') or the source is dropped ('retired'). */
  const runSource = async (source: DownloadSource): Promise<'done' | 'retired'> => {
    let failuresLeft = MAX_PARALLEL_SOURCE_FAILURES;
    for (;;) {
      if (signal?.aborted) throw signal.reason;
      if (over.signal.aborted) return 'done';
      // Alone, a source takes many segments at once (few requests); they are shared out again when one joins.
      const alone = ctx.rampIntervalMs > 0 && started === 1;
      const segment = plan.take(source.peerId, alone ? ALONE_SEGMENTS * plan.segmentBytes : undefined);
      if (segment === undefined) {
        if (plan.complete) return 'done';
        await plan.changed(IDLE_RECHECK_MS);
        continue;
      }
      if (segment.revoked !== undefined) {
        const slowPeer = segment.revoked.peerId;
        logger.info('a source too slow to keep; its range goes to a faster one', {
          slowPeer,
          to: source.peerId,
          bytes: segment.end - segment.start,
        });
        cancel(
          segment.revoked,
          new SourceFailure('TOO_SLOW', `far slower than ${source.peerId}, which took its range over`),
        );
      }
      const mine = new AbortController();
      cancels.set(segment, mine);
      let failure: SourceFailure;
      try {
        const beaten = await fetchSegment(
          ctx,
          plan,
          hasher,
          segment,
          source,
          AbortSignal.any([phaseSignal, mine.signal]),
        );
        cancel(beaten, new TakenOver());
        for (const race of plan.racesOn(segment)) cancel(race, new TakenOver());
        plan.release(segment);
        // Nothing is left to fetch: wake a source sleeping on a Retry-After.
        if (plan.complete) over.abort();
        continue;
      } catch (err) {
        // Races on a segment that failed (or was revoked) can win nothing: its rest went back to the plan,
        // or to the source that took it over. Left running, a racer on a trickling source held its range,
        // which no one may steal, until its own rate window failed it (10 s).
        for (const race of plan.racesOn(segment)) cancel(race, new TakenOver());
        plan.release(segment);
        if (signal?.aborted) throw signal.reason;
        // Another task ended the attempt (and reports why).
        if (over.signal.aborted) return 'done';
        if (err instanceof TakenOver) continue;
        if (!(err instanceof SourceFailure)) throw err;
        failure = err;
      } finally {
        cancels.delete(segment);
      }
      ctx.record(source, failure, segment.written);
      if (failure.code === 'BUSY') {
        const waitMs = ctx.busy.plan(source, failure.retryAfterMs ?? 0);
        if (waitMs !== undefined) {
          await ctx.busy.wait(source, waitMs, phaseSignal).catch(() => {});
          continue;
        }
      }
      failuresLeft -= 1;
      if (RETIRE_AT_ONCE.has(failure.code) || failuresLeft <= 0 || failure.code === 'BUSY') {
        logger.info('source dropped from the parallel download', {
          peerId: source.peerId,
          code: failure.code,
        });
        return 'retired';
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
  started += 1;
  slots.push(slot());
  const addSlot = (): void => {
    if (slots.length >= ctx.maxParallelSources || waiting.length === 0) return;
    plan.shareFresh(plan.segmentBytes);
    started += 1;
    slots.push(slot());
  };
  // The others join one by one while this machine keeps up (see SourceRamp), or at once without a ramp.
  let ramping: NodeJS.Timeout | undefined;
  if (ctx.rampIntervalMs > 0) {
    const ramp = new SourceRamp(ctx.hashing);
    ramping = setInterval(() => {
      const { room, here, thread } = ramp.roomForAnother();
      if (!room || slots.length >= ctx.maxParallelSources || waiting.length === 0) return;
      logger.debug('another source joins', { busy: here.toFixed(2), hashingBusy: thread.toFixed(2) });
      addSlot();
    }, ctx.rampIntervalMs);
  } else while (slots.length < ctx.maxParallelSources && waiting.length > 0) addSlot();
  try {
    // Slots may join while the others run: done once a pass finds no new one.
    for (let settled = 0; settled < slots.length; ) {
      const count = slots.length;
      await Promise.all(slots);
      settled = count;
    }
  } catch (err) {
    clearInterval(ramping);
    over.abort(err);
    await Promise.allSettled([hashing, ...slots]);
    throw err;
  } finally {
    clearInterval(ramping);
  }
  over.abort();
  const digest = await hashing;
  signal?.throwIfAborted();
  if (!plan.complete || digest === undefined) return { kind: 'unreachable' };
  const contributors = [...plan.contributors];
  logger.debug('parallel attempt complete', { contributors, pieces: plan.pieces.length });
  if (digest === ctx.sha256) return { kind: 'verified', contributors };
  const pieces = await digestPieces(file, plan.pieces, signal);
  return { kind: 'bad-bytes', contributors, digest, pieces };
}

/**
 * Fetches the rest of `segment` from `source` into the temp file at its offset; returns once its bytes are
 * on disk or another source took over the rest. A race segment gathers its bytes in memory and writes
 * them only if it wins; it then returns the segment it beat (whose request is to be cancelled). Throws
 * SourceFailure, TakenOver, the abort reason or `IO_ERROR`.
 */
async function fetchSegment(
  ctx: ParallelContext,
  plan: SegmentPlan,
  hasher: PrefixHasher,
  segment: Segment,
  source: DownloadSource,
  segmentSignal: AbortSignal,
): Promise<Segment | undefined> {
  const { size } = ctx;
  const expectedEtag = `"${ctx.sha256}"`;
  const request = new SourceRequest(segmentSignal, ctx.limits, ctx.hashing.slabs);
  const first = segment.next;
  const last = segment.end - 1;
  const racing = segment.racing !== undefined;
  const headers = {
    'accept-encoding': 'identity',
    range: `bytes=${first}-${last}`,
    // A source holding other content answers 200 (and its ETag gives it away) instead of wrong bytes.
    'if-range': expectedEtag,
  };
  try {
    const response = await request.open(source.url, headers);
    const refused = checkRangeAnswer(response, first, last, size, expectedEtag);
    if (refused !== undefined) {
      response.cancel();
      throw refused;
    }
    if (racing) return await race(ctx, plan, hasher, segment, source, request, response.body, first, last);
    const writer = new BatchWriter(ctx.file, ctx.hashing, first, {
      hashIf: (position, bytes) => hasher.claim(position, bytes),
      onWritten: (bytes) => {
        plan.wrote(segment, bytes);
        ctx.prefix.bytes = plan.contiguousBytes;
        ctx.reportProgress(plan.writtenBytes, source.peerId);
      },
    });
    let failure: unknown;
    try {
      // Bytes are claimed as they arrive and written (then offered to the hash) in batches; on a failure,
      // what was received is still written first, so what goes back to the plan starts exactly at the
      // first byte not on disk.
      for await (const chunk of request.chunks(response.body)) {
        const claimed = plan.claim(segment, chunk.byteLength);
        if (claimed > 0) {
          const piece = claimed === chunk.byteLength ? chunk : chunk.subarray(0, claimed);
          const full = writer.push(piece);
          if (full !== undefined) await full;
        }
        if (segment.next < segment.end) continue;
        // Another source took over the tail: the rest of this body is theirs.
        if (segment.end <= last) break;
        if (claimed < chunk.byteLength)
          throw new SourceFailure(
            'SIZE_MISMATCH',
            `body longer than the ${last - first + 1} bytes asked for`,
          );
        // The range is in: an end the source never sends (no length, a connection held open) is not
        // waited for.
        break;
      }
    } catch (err) {
      failure = request.classify(err, 'CONNECTION_LOST');
    }
    await writer.flush();
    if (failure !== undefined) throw failure;
    if (segment.written < segment.end)
      throw new SourceFailure('CONNECTION_LOST', `body ended at byte ${segment.written} of ${first}-${last}`);
    return undefined;
  } finally {
    request.close();
  }
}

/** The end game: the same bytes as another source, into memory; written only by the first to have them. */
async function race(
  ctx: ParallelContext,
  plan: SegmentPlan,
  hasher: PrefixHasher,
  segment: Segment,
  source: DownloadSource,
  request: SourceRequest,
  body: AsyncIterable<Buffer>,
  first: number,
  last: number,
): Promise<Segment | undefined> {
  const buffer = Buffer.allocUnsafe(last - first + 1);
  let got = 0;
  try {
    for await (const chunk of request.chunks(body)) {
      if (got + chunk.byteLength > buffer.length)
        throw new SourceFailure('SIZE_MISMATCH', `body longer than the ${buffer.length} bytes asked for`);
      buffer.set(chunk, got);
      got += chunk.byteLength;
      if (got === buffer.length) break;
    }
  } catch (err) {
    throw request.classify(err, 'CONNECTION_LOST');
  }
  if (got < buffer.length)
    throw new SourceFailure('CONNECTION_LOST', `body ended at byte ${first + got} of ${first}-${last}`);
  const rival = segment.racing;
  const from = plan.winRace(segment);
  if (from === undefined || rival === undefined) return undefined;
  ctx.logger.debug('end game race won', {
    peerId: source.peerId,
    from,
    end: segment.end,
    beat: rival.peerId,
  });
  const claimed = plan.claim(segment, segment.end - from);
  const won = buffer.subarray(from - first, from - first + claimed);
  try {
    await ctx.hashing.write(ctx.file.fd, [won], from, hasher.claim(from, claimed));
  } catch (err) {
    throw ioError(`cannot write ${ctx.file.path}`, err);
  }
  plan.wrote(segment, claimed);
  ctx.prefix.bytes = plan.contiguousBytes;
  ctx.reportProgress(plan.writtenBytes, source.peerId);
  return rival;
}
