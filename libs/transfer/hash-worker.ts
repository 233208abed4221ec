import type { EventLoopUtilization } from 'node:perf_hooks';
import { Worker } from 'node:worker_threads';
import { P2PError } from '../errors/index.js';
import { ReadSlabs } from './read-slabs.js';

/** One run of bytes for the hashing thread: `length` bytes of `buffer` from `offset`. */
export interface HashChunk {
  /** Transferred, or shared (a slab of `HashWorker.slabs`: read in place, neither copied nor moved). */
  buffer: ArrayBuffer | SharedArrayBuffer;
  offset: number;
  length: number;
  /** A copy made in one of this side's pool buffers: the thread sends it back for reuse. */
  pooled: boolean;
}

export type HashRequest =
  | { type: 'update'; chunks: HashChunk[] }
  | { type: 'write'; fd: number; position: number; hash: boolean; chunks: HashChunk[] }
  | { type: 'hash-range'; fd: number; position: number; length: number }
  | { type: 'reset' }
  | { type: 'digest' };

/** Every request but `reset` gets one reply, in the order of the requests. */
export type HashReply =
  | { type: 'done'; bytes: number; pooled: ArrayBuffer[]; error?: { message: string; code?: string } }
  | { type: 'digest'; hex: string };

export interface HashWorkerOptions {
  /**
   * Bytes sent to the thread and not hashed (or written) yet above which `update` returns a promise to wait
   * on and `whenRoom` one (the caller's backpressure: it stops reading its socket). Default 16 MiB.
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

/** A request waiting for its reply; `awaited` when a caller holds its promise (the process stays alive). */
interface Pending {
  bytes: number;
  /** Views on `slabs` the thread reads: released once it answered. */
  shared: Uint8Array[];
  awaited: boolean;
  resolve: (hex: string | undefined) => void;
  reject: (err: unknown) => void;
}

const ignore = (): void => {};

/**
 * SHA-256 in a worker thread, off the thread that receives the bytes, and the file writes of those bytes
 * (`write`): the thread writes a run of bytes and hashes it while it is still in its cache, so the
 * receiving thread only reads its sockets. Requests run in the order they are made. A Buffer that owns its
 * whole ArrayBuffer is transferred (no copy: the Buffer is then empty); any other is copied into a pool
 * buffer first. Long-lived: `close()` it (a download does, in its `finally`).
 *
 * `write` and `hashRange` use the caller's file descriptor from the thread: the caller keeps it open until
 * every such request has settled, or until `close()` has resolved (after which the thread touches nothing).
 *
 * A thread that dies makes every pending and later call throw `P2PError` `IO_ERROR` with
 * `details.reason` 'hash-thread'. A write or read that fails rejects that request only, with the system
 * error (its `code` kept).
 */
export class HashWorker {
  /** Memory for sockets to read into: the thread reads a body there, without a copy or a transfer. */
  readonly slabs = new ReadSlabs();
  private readonly worker: Worker;
  private readonly maxQueuedBytes: number;
  private queuedBytes = 0;
  private failure: P2PError | undefined;
  private closed = false;
  private readonly pool: ArrayBuffer[] = [];
  /** In the order the thread answers. */
  private readonly pending: Pending[] = [];
  private awaitedCount = 0;
  private readonly drainWaiters: Array<{ resolve: () => void; reject: (err: unknown) => void }> = [];

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

  /** Bytes sent to the thread, not hashed (or written) yet. */
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
    const { out, transfer, shared, bytes } = this.pack(chunks, keep);
    if (bytes === 0) return undefined;
    this.send({ type: 'update', chunks: out }, transfer, bytes, false, shared).catch(ignore);
    return this.whenRoom();
  }

  /**
   * Writes `chunks`, in order, into the file `fd` from `position`, from the thread; then, with `hash`,
   * appends them to the hash. Transferable chunks are taken (left empty). Resolves once written (and
   * hashed); rejects with the write's error. Throws once the thread has failed. Does not wait for room:
   * see `whenRoom`.
   */
  write(fd: number, chunks: readonly Buffer[], position: number, hash: boolean): Promise<void> {
    if (this.failure !== undefined) throw this.failure;
    const { out, transfer, shared, bytes } = this.pack(chunks, false);
    if (bytes === 0) return Promise.resolve();
    return this.send({ type: 'write', fd, position, hash, chunks: out }, transfer, bytes, true, shared).then(
      ignore,
    );
  }

  /** Appends bytes [position, position + length) of the file `fd` to the hash, read by the thread. */
  hashRange(fd: number, position: number, length: number): Promise<void> {
    if (this.failure !== undefined) return Promise.reject(this.failure);
    return this.send({ type: 'hash-range', fd, position, length }, [], 0, true).then(ignore);
  }

  /** Undefined while at most `maxQueuedBytes` wait in the thread; else resolves once that is so again. */
  whenRoom(): Promise<void> | undefined {
    if (this.failure !== undefined) throw this.failure;
    if (this.queuedBytes <= this.maxQueuedBytes) return undefined;
    const drained = new Promise<void>((resolve, reject) => this.drainWaiters.push({ resolve, reject }));
    this.holdWhileWaited();
    return drained;
  }

  /** The thread's event loop utilization (since `previous` when given), as `performance.eventLoopUtilization`. */
  utilization(previous?: EventLoopUtilization): EventLoopUtilization {
    return this.worker.performance.eventLoopUtilization(previous);
  }

  /** Starts a new hash (what was sent before is dropped). */
  reset(): void {
    if (this.failure !== undefined) throw this.failure;
    const request: HashRequest = { type: 'reset' };
    this.worker.postMessage(request);
  }

  /** The hex SHA-256 of every byte sent since the start or the last reset or digest; then starts anew. */
  async digest(): Promise<string> {
    if (this.failure !== undefined) throw this.failure;
    return (await this.send({ type: 'digest' }, [], 0, true)) ?? '';
  }

  /** Stops the thread; pending calls reject. Once it resolves, the thread uses no file descriptor. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.rejectAll(
      this.failure ?? new P2PError('IO_ERROR', 'hashing stopped', { details: { reason: 'closed' } }),
    );
    await this.worker.terminate();
  }

  private pack(
    chunks: readonly Buffer[],
    keep: boolean,
  ): { out: HashChunk[]; transfer: ArrayBuffer[]; shared: Uint8Array[]; bytes: number } {
    const out: HashChunk[] = [];
    const transfer: ArrayBuffer[] = [];
    const shared: Uint8Array[] = [];
    let bytes = 0;
    for (const chunk of chunks) {
      if (chunk.length === 0) continue;
      bytes += chunk.length;
      const owned = chunk.buffer;
      const whole = chunk.byteOffset === 0 && chunk.byteLength === owned.byteLength;
      if (!keep && owned instanceof SharedArrayBuffer && this.slabs.owns(chunk)) {
        out.push({ buffer: owned, offset: chunk.byteOffset, length: chunk.length, pooled: false });
        shared.push(chunk);
      } else if (!keep && whole && owned instanceof ArrayBuffer && !transfer.includes(owned)) {
        out.push({ buffer: owned, offset: 0, length: chunk.length, pooled: false });
        transfer.push(owned);
      } else {
        for (let at = 0; at < chunk.length; at += POOL_BUFFER_BYTES) {
          const piece = chunk.subarray(at, at + POOL_BUFFER_BYTES);
          const buffer = this.pool.pop() ?? new ArrayBuffer(POOL_BUFFER_BYTES);
          new Uint8Array(buffer).set(piece);
          out.push({ buffer, offset: 0, length: piece.length, pooled: true });
          transfer.push(buffer);
        }
      }
    }
    return { out, transfer, shared, bytes };
  }

  private send(
    request: HashRequest,
    transfer: ArrayBuffer[],
    bytes: number,
    awaited: boolean,
    shared: Uint8Array[] = [],
  ): Promise<string | undefined> {
    const reply = new Promise<string | undefined>((resolve, reject) =>
      this.pending.push({ bytes, shared, awaited, resolve, reject }),
    );
    if (awaited) this.awaitedCount += 1;
    this.queuedBytes += bytes;
    this.worker.postMessage(request, transfer);
    this.holdWhileWaited();
    return reply;
  }

  private onReply(reply: HashReply): void {
    const request = this.pending.shift();
    if (request === undefined) return;
    if (request.awaited) this.awaitedCount -= 1;
    if (reply.type === 'digest') {
      request.resolve(reply.hex);
    } else {
      this.queuedBytes -= request.bytes;
      for (const view of request.shared) this.slabs.release(view);
      for (const buffer of reply.pooled) if (this.pool.length < MAX_POOL_BUFFERS) this.pool.push(buffer);
      if (reply.error === undefined) request.resolve(undefined);
      else request.reject(Object.assign(new Error(reply.error.message), { code: reply.error.code }));
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
    if (this.closed || this.drainWaiters.length + this.awaitedCount === 0) this.worker.unref();
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
    for (let request = this.pending.shift(); request !== undefined; request = this.pending.shift())
      request.reject(err);
    this.awaitedCount = 0;
    this.holdWhileWaited();
  }
}
