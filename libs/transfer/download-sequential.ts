import type { Log } from '../logging/index.js';
import { BatchWriter } from './batch-writer.js';
import type { DownloadSource } from './download.js';
import type { BusyWaits } from './download-busy.js';
import { checkWholeAnswer } from './download-checks.js';
import { SourceFailure } from './download-failure.js';
import type { SourceLedger } from './download-ledger.js';
import { type RequestLimits, SourceRequest } from './download-request.js';
import { ioError, type TempFile } from './download-temp.js';
import type { HashWorker } from './hash-worker.js';

/** Bytes of a kept prefix hashed back from disk per request to the hashing thread (which reads them). */
const HASH_READ_BYTES = 16 * 1024 * 1024;

export type AttemptOutcome =
  | { kind: 'verified'; contributors: string[] }
  | { kind: 'bad-bytes'; contributors: string[]; digest: string }
  | { kind: 'unreachable' };

/** What a sequential attempt shares with `downloadFile`. */
export interface SequentialContext {
  file: TempFile;
  /** Hashes the bytes once written, off this thread; reset by each attempt. */
  hashing: HashWorker;
  sha256: string;
  size: number;
  limits: RequestLimits;
  signal: AbortSignal | undefined;
  logger: Log;
  ledger: SourceLedger;
  busy: BusyWaits;
  reportProgress: (receivedBytes: number, peerId: string) => void;
  /** Bytes [0, bytes) of the temp file are on disk and final for the current attempt: what can be kept. */
  prefix: { bytes: number };
}

/**
 * One attempt at the whole file, one source at a time, from byte 0 (or from `startAt`, the temp file's
 * first bytes being kept from before and re-hashed from disk): when a source fails mid-body the next
 * continues from the byte reached (`Range` + `If-Range`), the hash of the prefix carrying over. Busy
 * sources are asked again after their wait (see `BusyWaits`) once the others failed. Ends with the file's
 * digest, or 'unreachable' when the sources could not deliver every byte.
 */
export async function runSequentialAttempt(
  ctx: SequentialContext,
  plan: DownloadSource[],
  startAt = 0,
): Promise<AttemptOutcome> {
  const attempt = new SequentialAttempt(ctx);
  if (startAt > 0) await attempt.resumeAt(startAt);
  else await attempt.restart();
  const busy: Array<{ source: DownloadSource; readyAtMs: number }> = [];
  const tryOne = async (source: DownloadSource): Promise<boolean> => {
    ctx.signal?.throwIfAborted();
    try {
      await attempt.fetchFrom(source);
      return true;
    } catch (err) {
      if (!(err instanceof SourceFailure)) throw err;
      ctx.ledger.record(source, err, attempt.offset);
      if (err.code === 'BUSY') {
        const waitMs = ctx.busy.plan(source, err.retryAfterMs ?? 0);
        if (waitMs !== undefined) busy.push({ source, readyAtMs: Date.now() + waitMs });
      }
      // A source can fail after the last byte (a reset after the body, a body running long): nothing is missing.
      return attempt.complete;
    }
  };

  let done = false;
  for (const source of plan) {
    if (await tryOne(source)) {
      done = true;
      break;
    }
  }
  while (!done && busy.length > 0) {
    busy.sort((a, b) => a.readyAtMs - b.readyAtMs);
    const next = busy.shift();
    if (next === undefined) break;
    await ctx.busy.wait(next.source, Math.max(0, next.readyAtMs - Date.now()), ctx.signal);
    done = await tryOne(next.source);
  }
  if (!done) return { kind: 'unreachable' };
  return await attempt.outcome();
}

/**
 * The temp file's state during one attempt: its bytes [0, offset) received, written and hashed in order by
 * `ctx.hashing` (so the digest covers exactly the bytes on disk).
 */
class SequentialAttempt {
  offset = 0;
  /** Peers whose bytes are in [0, offset), in order. */
  private contributors: string[] = [];
  /** The last source whose response was taken for this attempt's bytes (matters for 0-byte files). */
  private acceptedFrom: string | undefined;
  private readonly expectedEtag: string;

  constructor(private readonly ctx: SequentialContext) {
    this.expectedEtag = `"${ctx.sha256}"`;
  }

  get complete(): boolean {
    return this.acceptedFrom !== undefined && this.offset === this.ctx.size;
  }

  /** Empties the temp file: a new attempt, or a source that answered a resume with the whole file. */
  async restart(): Promise<void> {
    await this.ctx.file.truncate(0);
    this.offset = 0;
    this.ctx.hashing.reset();
    this.contributors = [];
    this.acceptedFrom = undefined;
    this.ctx.prefix.bytes = 0;
  }

  /** Continues from the temp file's first `bytes` (kept from before): they are hashed back from disk. */
  async resumeAt(bytes: number): Promise<void> {
    const { file, signal, hashing } = this.ctx;
    await file.truncate(bytes);
    // Still keepable if this is interrupted while re-hashing.
    this.ctx.prefix.bytes = bytes;
    hashing.reset();
    for (let at = 0; at < bytes; ) {
      signal?.throwIfAborted();
      const length = Math.min(HASH_READ_BYTES, bytes - at);
      try {
        await hashing.hashRange(file.fd, at, length);
      } catch (err) {
        throw ioError(`cannot read ${file.path}`, err);
      }
      at += length;
    }
    this.offset = bytes;
  }

  async outcome(): Promise<AttemptOutcome> {
    const digest = await this.ctx.hashing.digest();
    // A 0-byte file has no byte to credit; the source that answered is still the one that vouched for it.
    const contributors =
      this.contributors.length > 0 || this.acceptedFrom === undefined
        ? [...this.contributors]
        : [this.acceptedFrom];
    if (digest === this.ctx.sha256) return { kind: 'verified', contributors };
    return { kind: 'bad-bytes', contributors, digest };
  }

  /** Reads one source from `offset` until the file is complete; throws SourceFailure otherwise. */
  async fetchFrom(source: DownloadSource): Promise<void> {
    const { size, logger } = this.ctx;
    const request = new SourceRequest(this.ctx.signal, this.ctx.limits, this.ctx.hashing.slabs);
    const resumeFrom = this.offset;
    const headers: Record<string, string> = { 'accept-encoding': 'identity' };
    if (resumeFrom > 0) {
      headers.range = `bytes=${resumeFrom}-`;
      // A source holding other content answers 200 (and its ETag gives it away) instead of a wrong tail.
      headers['if-range'] = this.expectedEtag;
    }
    try {
      const response = await request.open(source.url, headers);
      const verdict = checkWholeAnswer(response, resumeFrom, size, this.expectedEtag);
      if (!verdict.ok) {
        response.cancel();
        throw verdict.failure;
      }
      if (verdict.bodyStart === 0 && resumeFrom > 0) {
        logger.info('source sent the whole file to a resume; starting over from it', {
          peerId: source.peerId,
          discardedBytes: resumeFrom,
        });
        await this.restart();
      }
      this.acceptedFrom = source.peerId;
      // An empty file (or a tail of nothing) is in at the head: there is no last byte to end the body on
      // (see `receive`), and a source that never ends it is not waited for either.
      if (this.offset < size) await this.receive(request, response.body, source.peerId);
      if (this.offset < size)
        throw new SourceFailure('CONNECTION_LOST', `body ended at byte ${this.offset} of ${size}`);
    } finally {
      request.close();
    }
  }

  /**
   * The body into the temp file, written (then hashed) by the hashing thread in batches while the next ones
   * are read (see `BatchWriter`). On any failure every byte received is still written (and hashed) before this throws, so
   * `offset` (what the next source resumes from) is exactly what the file and the hash hold.
   */
  private async receive(request: SourceRequest, body: AsyncIterable<Buffer>, peerId: string): Promise<void> {
    const { size } = this.ctx;
    let onDisk = this.offset;
    const writer = new BatchWriter(this.ctx.file, this.ctx.hashing, this.offset, {
      hashIf: () => true,
      onWritten: (bytes) => {
        onDisk += bytes;
        this.ctx.prefix.bytes = onDisk;
        this.ctx.reportProgress(onDisk, peerId);
      },
    });
    let failure: unknown;
    try {
      for await (const chunk of request.chunks(body)) {
        const room = size - this.offset;
        const piece = chunk.byteLength <= room ? chunk : chunk.subarray(0, room);
        if (piece.length > 0) {
          this.offset += piece.length;
          if (!this.contributors.includes(peerId)) this.contributors.push(peerId);
          const full = writer.push(piece);
          if (full !== undefined) await full;
        }
        if (chunk.byteLength > room)
          throw new SourceFailure('SIZE_MISMATCH', `body longer than ${size} bytes`);
        // Every byte is in: the hash is the verdict, so an end the source never sends (no length, a
        // connection held open) is not waited for.
        if (this.offset === size) break;
      }
    } catch (err) {
      failure = request.classify(err, 'CONNECTION_LOST');
    }
    // A write error (IO_ERROR) wins over the source's failure: the download cannot go on.
    await writer.flush();
    if (failure !== undefined) throw failure;
  }
}
