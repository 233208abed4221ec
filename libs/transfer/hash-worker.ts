import { Worker } from 'node:worker_threads';
import { P2PError } from '../errors/index.js';

/** One run of bytes for the hashing thread: the first `length` bytes of `buffer`. */
export interface HashChunk {
  buffer: ArrayBuffer;
  length: number;
  /** A copy made in one of this side's pool buffers: the thread sends it back for reuse. */
  pooled: boolean;
}

export type HashRequest = { type: 'update'; chunks: HashChunk[] } | { type: 'reset' } | { type: 'digest' };

export type HashReply =
  | { type: 'hashed'; bytes: number; pooled: ArrayBuffer[] }
  | { type: 'digest'; hex: string };

export interface HashWorkerOptions {
  /**
   * Bytes sent to the thread and not hashed yet above which `update` returns a promise to wait on (the
   * caller's backpressure: it stops reading its socket). Default 16 MiB.
   */
  maxQueuedBytes?: number;
  /** The thread's script. Default: `hash-thread.js` beside this module (tests swap in a failing one). */
  script?: URL;
}

const DEFAULT_MAX_QUEUED_BYTES = 16 * 1024 * 1024;
/** Size of a pool buffer that holds copies of chunks that cannot be transferred. */
const POOL_BUFFER_BYTES = 256 * 1024;
/** Pool buffers kept for reuse; more are dropped to the garbage collector. */
const MAX_POOL_BUFFERS = 32;

/**
 * SHA-256 in a worker thread, off the thread that receives and writes the bytes. Chunks go to the thread in
 * order and are hashed in that order. A Buffer that owns its whole ArrayBuffer is transferred (no copy:
 * the Buffer is then empty, so hand over only bytes already written); any other is copied into a pool
 * buffer first. Long-lived: `close()` it (a download does, in its `finally`).
 *
 * A thread that dies makes every pending and later call throw `P2PError` `IO_ERROR` with
 * `details.reason` 'hash-thread'.
 */
export class HashWorker {
  private readonly worker: Worker;
  private readonly maxQueuedBytes: number;
  private queuedBytes = 0;
  private failure: P2PError | undefined;
  private closed = false;
  private readonly pool: ArrayBuffer[] = [];
  private readonly drainWaiters: Array<{ resolve: () => void; reject: (err: unknown) => void }> = [];
  private readonly digestWaiters: Array<{ resolve: (hex: string) => void; reject: (err: unknown) => void }> =
    [];

  constructor(options: HashWorkerOptions = {}) {
    this.maxQueuedBytes = options.maxQueuedBytes ?? DEFAULT_MAX_QUEUED_BYTES;
    // No inherited node flags: the thread only hashes (a flag such as --input-type would stop it loading).
    this.worker = new Worker(options.script ?? new URL('./hash-thread.js', import.meta.url), {
      execArgv: [],
    });
    // Keeps the process alive only while a caller waits on it (see `holdWhileWaited`).
    this.worker.unref();
    this.worker.on('message', (reply: HashReply) => this.onReply(reply));
    this.worker.on('error', (err) => this.fail(err));
    this.worker.on('exit', (code) => {
      if (!this.closed) this.fail(new Error(`hash thread exited with code ${code}`));
    });
  }

  /** Bytes sent to the thread, not hashed yet. */
  get pendingBytes(): number {
    return this.queuedBytes;
  }

  /**
   * Appends `chunks` to the hash. Transferable ones are taken (left empty) unless `keep` (for a buffer the
   * caller reuses: copied into the pool instead). Returns a promise (await it) while more than
   * `maxQueuedBytes` wait in the thread; throws once the thread has failed.
   */
  update(chunks: readonly Buffer[], keep = false): Promise<void> | undefined {
    if (this.failure !== undefined) throw this.failure;
    const out: HashChunk[] = [];
    const transfer: ArrayBuffer[] = [];
    let bytes = 0;
    for (const chunk of chunks) {
      if (chunk.length === 0) continue;
      bytes += chunk.length;
      const owned = chunk.buffer;
      const whole = chunk.byteOffset === 0 && chunk.byteLength === owned.byteLength;
      if (!keep && whole && owned instanceof ArrayBuffer) {
        out.push({ buffer: owned, length: chunk.length, pooled: false });
        transfer.push(owned);
      } else {
        for (let at = 0; at < chunk.length; at += POOL_BUFFER_BYTES) {
          const piece = chunk.subarray(at, at + POOL_BUFFER_BYTES);
          const buffer = this.pool.pop() ?? new ArrayBuffer(POOL_BUFFER_BYTES);
          new Uint8Array(buffer).set(piece);
          out.push({ buffer, length: piece.length, pooled: true });
          transfer.push(buffer);
        }
      }
    }
    if (bytes === 0) return undefined;
    this.queuedBytes += bytes;
    const request: HashRequest = { type: 'update', chunks: out };
    this.worker.postMessage(request, transfer);
    if (this.queuedBytes <= this.maxQueuedBytes) return undefined;
    const drained = new Promise<void>((resolve, reject) => this.drainWaiters.push({ resolve, reject }));
    this.holdWhileWaited();
    return drained;
  }

  /** Starts a new hash (what was sent before is dropped). */
  reset(): void {
    if (this.failure !== undefined) throw this.failure;
    const request: HashRequest = { type: 'reset' };
    this.worker.postMessage(request);
  }

  /** The hex SHA-256 of every byte sent since the start or the last reset or digest; then starts anew. */
  digest(): Promise<string> {
    if (this.failure !== undefined) return Promise.reject(this.failure);
    const request: HashRequest = { type: 'digest' };
    this.worker.postMessage(request);
    const digest = new Promise<string>((resolve, reject) => this.digestWaiters.push({ resolve, reject }));
    this.holdWhileWaited();
    return digest;
  }

  /** Stops the thread; pending calls reject. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.rejectAll(
      this.failure ?? new P2PError('IO_ERROR', 'hashing stopped', { details: { reason: 'closed' } }),
    );
    await this.worker.terminate();
  }

  private onReply(reply: HashReply): void {
    if (reply.type === 'digest') {
      this.digestWaiters.shift()?.resolve(reply.hex);
    } else {
      this.queuedBytes -= reply.bytes;
      for (const buffer of reply.pooled) if (this.pool.length < MAX_POOL_BUFFERS) this.pool.push(buffer);
      if (this.queuedBytes <= this.maxQueuedBytes)
        for (let waiter = this.drainWaiters.shift(); waiter !== undefined; waiter = this.drainWaiters.shift())
          waiter.resolve();
    }
    this.holdWhileWaited();
  }

  /**
   * A reply awaited with nothing else pending (the last write done, the digest asked for) must keep the
   * process alive; an idle thread must not.
   */
  private holdWhileWaited(): void {
    if (this.closed || this.drainWaiters.length + this.digestWaiters.length === 0) this.worker.unref();
    else this.worker.ref();
  }

  private fail(err: unknown): void {
    if (this.failure !== undefined || this.closed) return;
    this.failure = new P2PError('IO_ERROR', `the hashing thread failed: ${(err as Error)?.message ?? err}`, {
      cause: err,
      details: { reason: 'hash-thread' },
    });
    this.rejectAll(this.failure);
  }

  private rejectAll(err: unknown): void {
    for (let waiter = this.drainWaiters.shift(); waiter !== undefined; waiter = this.drainWaiters.shift())
      waiter.reject(err);
    for (let waiter = this.digestWaiters.shift(); waiter !== undefined; waiter = this.digestWaiters.shift())
      waiter.reject(err);
    this.holdWhileWaited();
  }
}
