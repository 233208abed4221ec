import { BytesColumn, Float64Column, PIECE_BITS, PIECE_MASK, Uint32Column } from './big-arrays.js';
import { bytesEqual, hashBytes } from './bytes.js';
import { IdPool } from './id-pool.js';

/** Most files one table holds (ids fit in 26 bits, so a bitmap of every id is at most 8 MiB). */
export const ID_SPACE = 2 ** 26;
const MIN_CAPACITY = 1024;
const SHA_BYTES = 32;

/**
 * The per-file columns of the index, indexed by a numeric file id: no object and no JS string per file,
 * only typed arrays (a file's name and tokens are in `TextChunks`). Ids are reused lowest first, and the
 * top of the id space is given back (`trim`) once it is free. The capacity (a power of two, the size of
 * every array sized by the id space, via `onCapacity`) follows: the columns are kept in pieces (see
 * `Column`), so growing and shrinking add or drop pieces, copy nothing, and return the memory of the
 * dropped ones.
 */
export class FileTable {
  /** The owner's number + 1 (see `PeerTable`); 0 for a free id. */
  readonly owners = new Uint32Column();
  /** The address of the file's name and token key in the index's `TextChunks`. */
  readonly texts = new Uint32Column();
  readonly sizes = new Float64Column();
  readonly mtimes = new Float64Column();
  /** SHA-256 of each file, 32 bytes each. */
  private readonly shas = new BytesColumn(SHA_BYTES);
  private readonly free = new IdPool();
  private top = 0;
  private live = 0;
  private capacityIds = MIN_CAPACITY;

  constructor(private readonly onCapacity: (capacity: number) => void) {
    this.setColumnLimits(MIN_CAPACITY);
  }

  /** Ids in use or free below the top. */
  get idCount(): number {
    return this.top;
  }

  get liveCount(): number {
    return this.live;
  }

  get capacity(): number {
    return this.capacityIds;
  }

  /** The owner number + 1 of file `id`, 0 when the id is free. */
  owner(id: number): number {
    return this.owners.pieces[id >>> PIECE_BITS]![id & PIECE_MASK]!;
  }

  sha(id: number): string {
    const at = this.shas.offsetOf(id);
    return this.shas.pieceOf(id).toString('hex', at, at + SHA_BYTES);
  }

  /** Stores `sha256` (64 hex digits, any case) as file `id`'s SHA-256; returns the seeded hash of its bytes. */
  setSha(id: number, sha256: string, seed: number): number {
    const piece = this.shas.pieceOf(id);
    const at = this.shas.offsetOf(id);
    if (!writeHex(piece, at, sha256)) {
      piece.fill(0, at, at + SHA_BYTES);
      piece.write(sha256, at, SHA_BYTES, 'hex');
    }
    return hashBytes(piece, at, SHA_BYTES, seed);
  }

  /** Copies the SHA-256 `bytes[at, at + 32)` as file `id`'s; returns the seeded hash of those bytes. */
  setShaBytes(id: number, bytes: Uint8Array, at: number, seed: number): number {
    const piece = this.shas.pieceOf(id);
    const to = this.shas.offsetOf(id);
    for (let i = 0; i < SHA_BYTES; i++) piece[to + i] = bytes[at + i]!;
    return hashBytes(piece, to, SHA_BYTES, seed);
  }

  /** A seeded hash of file `id`'s SHA-256 bytes (same as `hashBytes` of those bytes). */
  shaHash(id: number, seed: number): number {
    return hashBytes(this.shas.pieceOf(id), this.shas.offsetOf(id), SHA_BYTES, seed);
  }

  /** Whether file `id` has the SHA-256 whose 32 bytes are `bytes[at, at + 32)`. */
  shaEquals(id: number, bytes: Uint8Array, at = 0): boolean {
    return bytesEqual(this.shas.pieceOf(id), this.shas.offsetOf(id), bytes, at, SHA_BYTES);
  }

  /** A free id for a file of owner number `owner`. */
  allocate(owner: number): number {
    let id = this.free.pop();
    if (id === undefined) {
      id = this.top;
      if (id >= ID_SPACE) throw new RangeError(`NetworkIndex holds at most ${ID_SPACE} files`);
      if (id >= this.capacityIds) this.resize(this.capacityIds * 2);
      this.top++;
    }
    this.owners.set(id, owner + 1);
    this.live++;
    return id;
  }

  release(id: number): void {
    this.owners.set(id, 0);
    this.free.push(id);
    this.live--;
  }

  /** Lowest free id, if any. */
  lowestFree(): number | undefined {
    return this.free.peek();
  }

  /**
   * Gives back the free top of the id space: the capacity shrinks to the next power of two above the
   * highest live id, and the columns drop their pieces above it. Costs a pass over the free top's ids.
   */
  trim(): void {
    let top = this.top;
    while (top > 0 && this.owner(top - 1) === 0) top--;
    if (top === this.top) return;
    this.free.trimTo(top);
    this.top = top;
    let capacity = MIN_CAPACITY;
    while (capacity < top) capacity *= 2;
    if (capacity < this.capacityIds) this.resize(capacity);
  }

  private resize(capacity: number): void {
    this.capacityIds = capacity;
    this.setColumnLimits(capacity);
    this.onCapacity(capacity);
  }

  private setColumnLimits(limit: number): void {
    this.owners.setLimit(limit);
    this.texts.setLimit(limit);
    this.sizes.setLimit(limit);
    this.mtimes.setLimit(limit);
    this.shas.setLimit(limit);
  }
}

const HEX_VALUES = (() => {
  const values = new Int8Array(128).fill(-1);
  for (let digit = 0; digit < 16; digit++) {
    values['0123456789abcdef'.charCodeAt(digit)] = digit;
    values['0123456789ABCDEF'.charCodeAt(digit)] = digit;
  }
  return values;
})();

/**
 * Writes the 32 bytes of a 64-digit hex text at `bytes[at]`; false when the text is not that (the bytes
 * written are then meaningless). A loop here costs less than `Buffer.write`'s call into C++ for 32 bytes.
 */
function writeHex(bytes: Uint8Array, at: number, hex: string): boolean {
  if (hex.length !== SHA_BYTES * 2) return false;
  let bad = 0;
  for (let i = 0; i < SHA_BYTES; i++) {
    const highCode = hex.charCodeAt(2 * i);
    const lowCode = hex.charCodeAt(2 * i + 1);
    const high = HEX_VALUES[highCode & 127]!;
    const low = HEX_VALUES[lowCode & 127]!;
    bad |= high | low | ((highCode | lowCode) > 127 ? -1 : 0);
    bytes[at + i] = (high << 4) | low;
  }
  return bad >= 0;
}
