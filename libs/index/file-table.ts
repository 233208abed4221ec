import { IdPool } from './id-pool.js';

/*
 * Files live in parallel arrays indexed by a numeric file id (no object per file). A token's postings hold
 * "posting codes" = generation * ID_SPACE + id; removing a file bumps the generation of its id, which
 * makes every code pointing at it stale at once without visiting the postings. Both parts stay below
 * 2^53, so codes are exact doubles.
 */
export const ID_BITS = 26;
export const ID_SPACE = 2 ** ID_BITS;
const GENERATION_SPACE = 2 ** 27;
const MIN_CAPACITY = 1024;
const SHA_BYTES = 32;

/** The owner of a file, as the table sees it. */
export interface FileOwner {
  readonly peerId: string;
  /** Set when the owner is being removed: its files are no longer results. */
  removed: boolean;
}

/**
 * The per-file columns of the index. Ids are reused lowest first, and the top of the id space is given
 * back (`trim`) once it is free, so the columns shrink when many files leave.
 */
export class FileTable<Owner extends FileOwner> {
  names: string[] = [];
  /** Tokens of the name joined with NUL before each one (see `tokenKey`). */
  keys: string[] = [];
  owners: (Owner | undefined)[] = [];
  sizes = new Float64Array(MIN_CAPACITY);
  mtimes = new Float64Array(MIN_CAPACITY);
  /** SHA-256 of each file, 32 bytes each: less than half of a 64-character string. */
  shas = Buffer.alloc(MIN_CAPACITY * SHA_BYTES);
  /** Never shrinks: a stale posting code of a trimmed id must stay stale when the id comes back. */
  generations = new Uint32Array(MIN_CAPACITY);
  private readonly free = new IdPool();
  private live = 0;

  constructor(private readonly onCapacity: (capacity: number) => void) {}

  /** Ids in use or free below the top: the length of every column. */
  get idCount(): number {
    return this.names.length;
  }

  get liveCount(): number {
    return this.live;
  }

  get capacity(): number {
    return this.sizes.length;
  }

  code(id: number): number {
    return this.generations[id]! * ID_SPACE + id;
  }

  /** The id a posting code points at, or -1 when the code is stale. */
  liveId(code: number): number {
    const id = code % ID_SPACE;
    return this.generations[id] === (code - id) / ID_SPACE ? id : -1;
  }

  sha(id: number): string {
    return this.shas.toString('hex', id * SHA_BYTES, id * SHA_BYTES + SHA_BYTES);
  }

  setSha(id: number, sha256: string): void {
    this.shas.write(sha256, id * SHA_BYTES, SHA_BYTES, 'hex');
  }

  /** Whether file `id` has the SHA-256 whose 32 bytes are `bytes`. */
  shaEquals(id: number, bytes: Uint8Array): boolean {
    const base = id * SHA_BYTES;
    for (let i = 0; i < SHA_BYTES; i++) if (this.shas[base + i] !== bytes[i]) return false;
    return true;
  }

  allocate(): number {
    this.live++;
    const reused = this.free.pop();
    if (reused !== undefined) return reused;
    const id = this.names.length;
    if (id >= ID_SPACE) {
      this.live--;
      throw new RangeError(`NetworkIndex holds at most ${ID_SPACE} files`);
    }
    if (id >= this.sizes.length) this.resize(this.sizes.length * 2);
    this.names.push('');
    this.keys.push('');
    this.owners.push(undefined);
    return id;
  }

  release(id: number): void {
    this.generations[id] = (this.generations[id]! + 1) % GENERATION_SPACE;
    this.names[id] = '';
    this.keys[id] = '';
    this.owners[id] = undefined;
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
    let top = this.names.length;
    while (top > 0 && this.owners[top - 1] === undefined) top--;
    if (top === this.names.length) return;
    this.names.length = top;
    this.keys.length = top;
    this.owners.length = top;
    this.free.trimTo(top);
    let capacity = MIN_CAPACITY;
    while (capacity < top) capacity *= 2;
    if (capacity < this.sizes.length) this.resize(capacity);
  }

  private resize(capacity: number): void {
    const keep = Math.min(capacity, this.sizes.length);
    this.sizes = copyInto(this.sizes, new Float64Array(capacity), keep);
    this.mtimes = copyInto(this.mtimes, new Float64Array(capacity), keep);
    const shas = Buffer.alloc(capacity * SHA_BYTES);
    this.shas.copy(shas, 0, 0, keep * SHA_BYTES);
    this.shas = shas;
    if (capacity > this.generations.length)
      this.generations = copyInto(this.generations, new Uint32Array(capacity), this.generations.length);
    this.onCapacity(capacity);
  }
}

function copyInto<T extends Float64Array | Uint32Array>(from: T, to: T, count: number): T {
  to.set(from.subarray(0, count));
  return to;
}
