/**
 * Memory the sockets read into and the hashing thread reads from without a copy or a transfer: slabs of
 * SharedArrayBuffer, each carved by one reader into consecutive socket reads. A slab goes back to the pool
 * for reuse once it is carved out (or its reader closed) and every body byte read into it was `release`d
 * (by `HashWorker`, when the thread has written it); a slab with bytes never released (copied by a caller,
 * dropped after a failure) is left to the garbage collector, so a missed release costs an allocation,
 * never a byte overwritten while still in use.
 */

/** One slab. */
const SLAB_BYTES = 4 * 1024 * 1024;
/** The largest single socket read: loopback delivers up to this at once. */
const MAX_READ_BYTES = 1024 * 1024;
/** A slab with less than this left is done with: the next read starts a new one. */
const MIN_READ_BYTES = 64 * 1024;
/** Free slabs kept for reuse (a download has a few readers at most). */
const MAX_FREE_SLABS = 8;

interface Slab {
  memory: SharedArrayBuffer;
  /** Body bytes read into it and not released yet. */
  unreleased: number;
  /** No reader carves it any more. */
  retired: boolean;
}

export class ReadSlabs {
  private readonly free: SharedArrayBuffer[] = [];
  /** Weak: a slab whose bytes are never all released is collected with its last view. */
  private readonly inUse = new WeakMap<SharedArrayBuffer, Slab>();

  /** A reader for one socket: consecutive reads into slabs of this pool. */
  reader(): SlabReader {
    return new SlabReader(this);
  }

  /** Whether `view` is on a slab of this pool still in use. */
  owns(view: Uint8Array): boolean {
    return view.buffer instanceof SharedArrayBuffer && this.inUse.has(view.buffer);
  }

  /** Marks `view` (body bytes a reader handed out) as no longer needed. Other views are ignored. */
  release(view: Uint8Array): void {
    if (!(view.buffer instanceof SharedArrayBuffer)) return;
    const slab = this.inUse.get(view.buffer);
    if (slab === undefined) return;
    slab.unreleased -= view.byteLength;
    this.recycle(slab);
  }

  /** @internal */
  take(): Slab {
    const slab: Slab = {
      memory: this.free.pop() ?? new SharedArrayBuffer(SLAB_BYTES),
      unreleased: 0,
      retired: false,
    };
    this.inUse.set(slab.memory, slab);
    return slab;
  }

  /** @internal */
  recycle(slab: Slab): void {
    if (!slab.retired || slab.unreleased > 0) return;
    this.inUse.delete(slab.memory);
    if (this.free.length < MAX_FREE_SLABS) this.free.push(slab.memory);
  }
}

/**
 * One socket's reads: `next()` is the memory for the next read (as `net` `onread.buffer` asks for it),
 * `commit` says how much of it the read filled and how much of that is body (counted until released).
 */
export class SlabReader {
  private slab: Slab | undefined;
  private used = 0;

  constructor(private readonly pool: ReadSlabs) {}

  next(): Uint8Array {
    if (this.slab === undefined || SLAB_BYTES - this.used < MIN_READ_BYTES) {
      this.retire();
      this.slab = this.pool.take();
      this.used = 0;
    }
    return new Uint8Array(this.slab.memory, this.used, Math.min(MAX_READ_BYTES, SLAB_BYTES - this.used));
  }

  /** The last `next()` view got `bytes`, of which `bodyBytes` are handed out (and to be released). */
  commit(bytes: number, bodyBytes: number): void {
    this.used += bytes;
    if (this.slab !== undefined) this.slab.unreleased += bodyBytes;
  }

  /** No more reads: the current slab is recycled once its bytes are released. */
  close(): void {
    this.retire();
    this.slab = undefined;
  }

  private retire(): void {
    if (this.slab === undefined) return;
    this.slab.retired = true;
    this.pool.recycle(this.slab);
  }
}
