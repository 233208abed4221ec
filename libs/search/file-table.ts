import { float64s, regrown, uint8s, uint32s } from './big-arrays.js';
import { bytesEqual, hashBytes } from './bytes.js';
import { IdPool } from './id-pool.js';

/** Most files one table holds (ids fit in 26 bits, so a bitmap of every id is at most 8 MiB). */
export const ID_SPACE = 2 ** 26;
const MIN_CAPACITY = 1024;
const SHA_BYTES = 32;

/**
 * The per-file columns of the index, indexed by a numeric file id: no object and no JS string per file,
 * only typed arrays (a file's name and tokens are in `TextChunks`). Ids are reused lowest
 * first, and the top of the id space is given back (`trim`) once it is free, so the columns (and every
 * array sized by the capacity, via `onCapacity`) shrink when many files leave: their memory is returned by
 * dropping the large buffers, not left to the allocator.
 */
export class FileTable {
  /** The owner's number + 1 (see `PeerTable`); 0 for a free id. */
  owners = uint32s(MIN_CAPACITY);
  /** The address of the file's name and token key in the index's `TextChunks`. */
  texts = uint32s(MIN_CAPACITY);
  sizes = float64s(MIN_CAPACITY);
  mtimes = float64s(MIN_CAPACITY);
  /** SHA-256 of each file, 32 bytes each. */
  shas = shaColumn(MIN_CAPACITY);
  private readonly free = new IdPool();
  private top = 0;
  private live = 0;

  constructor(private readonly onCapacity: (capacity: number) => void) {}

  /** Ids in use or free below the top. */
  get idCount(): number {
    return this.top;
  }

  get liveCount(): number {
    return this.live;
  }

  get capacity(): number {
    return this.sizes.length;
  }

  sha(id: number): string {
    return this.shas.toString('hex', id * SHA_BYTES, id * SHA_BYTES + SHA_BYTES);
  }

  setSha(id: number, sha256: string): void {
    this.shas.write(sha256, id * SHA_BYTES, SHA_BYTES, 'hex');
  }

  /** A seeded hash of file `id`'s SHA-256 bytes (same as `shaBytesHash` of those bytes). */
  shaHash(id: number, seed: number): number {
    return hashBytes(this.shas, id * SHA_BYTES, SHA_BYTES, seed);
  }

  /** Whether file `id` has the SHA-256 whose 32 bytes are `bytes`. */
  shaEquals(id: number, bytes: Uint8Array): boolean {
    return bytesEqual(this.shas, id * SHA_BYTES, bytes, 0, SHA_BYTES);
  }

  /** A free id for a file of owner number `owner`. */
  allocate(owner: number): number {
    let id = this.free.pop();
    if (id === undefined) {
      id = this.top;
      if (id >= ID_SPACE) throw new RangeError(`NetworkIndex holds at most ${ID_SPACE} files`);
      if (id >= this.sizes.length) this.resize(this.sizes.length * 2);
      this.top++;
    }
    this.owners[id] = owner + 1;
    this.live++;
    return id;
  }

  release(id: number): void {
    this.owners[id] = 0;
    this.free.push(id);
    this.live--;
  }

  /** Lowest free id, if any. */
  lowestFree(): number | undefined {
    return this.free.peek();
  }

  /**
   * Gives back the free top of the id space: the columns shrink to the highest live id (and the
   * capacity to the next power of two). Costs one pass over the free ids.
   */
  trim(): void {
    let top = this.top;
    while (top > 0 && this.owners[top - 1] === 0) top--;
    if (top === this.top) return;
    this.top = top;
    this.free.trimTo(top);
    let capacity = MIN_CAPACITY;
    while (capacity < top) capacity *= 2;
    if (capacity < this.sizes.length) this.resize(capacity);
  }

  private resize(capacity: number): void {
    const keep = Math.min(capacity, this.top);
    this.owners = regrown(this.owners, capacity, keep, uint32s);
    this.texts = regrown(this.texts, capacity, keep, uint32s);
    this.sizes = regrown(this.sizes, capacity, keep, float64s);
    this.mtimes = regrown(this.mtimes, capacity, keep, float64s);
    const shas = shaColumn(capacity);
    this.shas.copy(shas, 0, 0, keep * SHA_BYTES);
    this.shas = shas;
    this.onCapacity(capacity);
  }
}

function shaColumn(capacity: number): Buffer {
  const bytes = uint8s(capacity * SHA_BYTES);
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length);
}
