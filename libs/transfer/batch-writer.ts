import { ioError, type TempFile } from './download-temp.js';
import type { HashWorker } from './hash-worker.js';

/**
 * A write batch: few messages to the hashing thread and few syscalls per GiB, small enough that the kernel
 * copies bytes still in the CPU cache (with 1 MiB batches that copy took twice the CPU time of the whole
 * rest of the download).
 */
const DEFAULT_BATCH_BYTES = 256 * 1024;
/**
 * Bytes one writer may have accepted and not yet seen written (as much as the hashing thread queues): with
 * 4 MiB the thread ran dry while the receiving thread waited for a core, and a 1 GiB get took longer.
 */
const DEFAULT_HIGH_WATER_BYTES = 16 * 1024 * 1024;

export interface BatchWriterHooks {
  /**
   * Asked as a batch of `bytes` at `position` leaves for the thread, in order: whether the thread is to hash
   * it once written (it must then extend exactly what was sent to the hash before).
   */
  hashIf(position: number, bytes: number): boolean;
  /** Told, in order, of every run of bytes that reached the file; never after a write failed. */
  onWritten(bytes: number, position: number): void;
}

/**
 * Writes a run of consecutive bytes into a TempFile in batches, through the hashing thread (`HashWorker`
 * `write`: the receiving thread only reads its socket; the buffers are handed over, not copied, when they
 * own their memory). Several batches may be on their way at once. `push` returns a promise when this
 * writer has more than `highWaterBytes` unwritten, or the thread more than its own bound queued: await it,
 * that is the backpressure. Await `flush()` before the file is closed or the bytes counted as written.
 */
export class BatchWriter {
  private pending: Buffer[] = [];
  private pendingBytes = 0;
  private position: number;
  /** Sent and not yet written, in order. */
  private readonly inFlight: Array<Promise<void>> = [];
  private unwritten = 0;
  private failure: unknown;

  constructor(
    private readonly file: TempFile,
    private readonly hashing: HashWorker,
    position: number,
    private readonly hooks: BatchWriterHooks,
    private readonly batchBytes = DEFAULT_BATCH_BYTES,
    private readonly highWaterBytes = DEFAULT_HIGH_WATER_BYTES,
  ) {
    this.position = position;
  }

  /** Bytes accepted but not yet on disk. */
  get unwrittenBytes(): number {
    return this.unwritten;
  }

  /** Takes `buffer` (it must not be used after: it may be handed over to the thread). */
  push(buffer: Buffer): Promise<void> | undefined {
    if (this.failure !== undefined) throw this.failure;
    if (buffer.length === 0) return undefined;
    this.pending.push(buffer);
    this.pendingBytes += buffer.length;
    this.unwritten += buffer.length;
    if (this.pendingBytes >= this.batchBytes) this.send();
    if (this.unwritten > this.highWaterBytes) return this.drain();
    return this.room();
  }

  /** Resolves once everything pushed is on disk; throws the write error, if any. */
  async flush(): Promise<void> {
    if (this.pendingBytes > 0 && this.failure === undefined) this.send();
    while (this.inFlight.length > 0) await this.inFlight[0];
    if (this.failure !== undefined) throw this.failure;
  }

  private async drain(): Promise<void> {
    while (this.unwritten > this.highWaterBytes && this.inFlight.length > 0) await this.inFlight[0];
    if (this.failure !== undefined) throw this.failure;
    await this.room();
  }

  private room(): Promise<void> | undefined {
    try {
      return this.hashing.whenRoom();
    } catch (err) {
      this.failure ??= ioError(`cannot write ${this.file.path}`, err);
      throw this.failure;
    }
  }

  private send(): void {
    const buffers = this.pending;
    const bytes = this.pendingBytes;
    this.pending = [];
    this.pendingBytes = 0;
    const at = this.position;
    this.position += bytes;
    let written: Promise<void>;
    try {
      written = this.hashing.write(this.file.fd, buffers, at, this.hooks.hashIf(at, bytes));
    } catch (err) {
      written = Promise.reject(err);
    }
    const settled = written.then(
      () => {
        this.unwritten -= bytes;
        if (this.failure === undefined) this.hooks.onWritten(bytes, at);
      },
      (err: unknown) => {
        this.unwritten -= bytes;
        this.failure ??= ioError(`cannot write ${this.file.path}`, err);
      },
    );
    const tracked: Promise<void> = settled
      .catch((err: unknown) => {
        this.failure ??= err;
      })
      .finally(() => this.inFlight.splice(this.inFlight.indexOf(tracked), 1));
    this.inFlight.push(tracked);
  }
}
