import { uint8s } from './big-arrays.js';
import { bytesEqual, hashBytes } from './bytes.js';
import { compareUtf16Order } from './name-order.js';

const CHUNK_BITS = 20;
/** Bytes of one chunk (1 MiB): entries never span two. */
export const CHUNK_BYTES = 2 ** CHUNK_BITS;
const OFFSET_MASK = CHUNK_BYTES - 1;
/** id (4 bytes), name length (2), extra length (2). */
const HEADER_BYTES = 8;
/** Longest name, and longest extra text, in UTF-8 bytes (file names are at most 1024 characters). */
export const MAX_TEXT_BYTES = 0xffff;
/** Most chunks: addresses are 32-bit (chunk number, offset), so 4 GiB of text. */
const MAX_CHUNKS = 2 ** (32 - CHUNK_BITS);

/**
 * The names of the index's files (each followed by an extra text, the index's token key) as UTF-8 in 1 MiB
 * chunks, each entry addressed by a 32-bit number and tagged with its file id. Entries are appended to the
 * newest chunk; releasing one only counts its bytes as dead. A chunk whose entries are all released is
 * dropped at once (its memory goes back to the system, see `big-arrays.ts`), and `moveChunk` moves the live
 * entries out of a sparse one so that it can be dropped: memory follows the live files down when peers
 * leave, whatever order they leave in.
 */
export class TextChunks {
  private readonly chunks: (Buffer | undefined)[] = [];
  /** Bytes written to each chunk, and bytes of entries still live in it. */
  private readonly written: number[] = [];
  private readonly live: number[] = [];
  private readonly freeChunks: number[] = [];
  /** Where `moveChunk` goes on in each chunk being moved out. */
  private readonly moveFrom: number[] = [];
  private current = -1;
  private liveTotal = 0;

  /** Chunks held. */
  get chunkCount(): number {
    return this.chunks.length - this.freeChunks.length;
  }

  /** Bytes held in chunks. */
  get byteSize(): number {
    return this.chunkCount * CHUNK_BYTES;
  }

  get liveBytes(): number {
    return this.liveTotal;
  }

  /**
   * Stores a name, given as its `nameLength` UTF-8 bytes at `nameBytes[nameStart]` (the caller's encoding,
   * which this does not overwrite), then `extra`, for file `id`; returns the entry's address.
   */
  add(id: number, nameBytes: Uint8Array, nameStart: number, nameLength: number, extra: string): number {
    const extraLength = extra === '' ? 0 : Buffer.byteLength(extra, 'utf8');
    if (nameLength > MAX_TEXT_BYTES || extraLength > MAX_TEXT_BYTES)
      throw new RangeError(`a name holds at most ${MAX_TEXT_BYTES} UTF-8 bytes`);
    const address = this.reserve(HEADER_BYTES + nameLength + extraLength);
    const chunk = this.chunks[address >>> CHUNK_BITS]!;
    const at = address & OFFSET_MASK;
    chunk.writeUInt32LE(id, at);
    chunk.writeUInt16LE(nameLength, at + 4);
    chunk.writeUInt16LE(extraLength, at + 6);
    for (let i = 0; i < nameLength; i++) chunk[at + HEADER_BYTES + i] = nameBytes[nameStart + i]!;
    if (extraLength > 0) chunk.write(extra, at + HEADER_BYTES + nameLength, extraLength, 'utf8');
    return address;
  }

  /** Releases the entry at `address`; drops its chunk once nothing in it is live. */
  release(address: number): void {
    const c = address >>> CHUNK_BITS;
    const size = this.entryBytes(this.chunks[c]!, address & OFFSET_MASK);
    this.live[c]! -= size;
    this.liveTotal -= size;
    if (this.live[c] === 0) this.drop(c);
  }

  /** The chunk holding `address`, for byte-level reads at `nameStart`/`extraStart`. */
  chunkOf(address: number): Buffer {
    return this.chunks[address >>> CHUNK_BITS]!;
  }

  nameStart(address: number): number {
    return (address & OFFSET_MASK) + HEADER_BYTES;
  }

  nameLength(address: number): number {
    return readUint16(this.chunkOf(address), (address & OFFSET_MASK) + 4);
  }

  extraStart(address: number): number {
    return this.nameStart(address) + this.nameLength(address);
  }

  extraLength(address: number): number {
    return readUint16(this.chunkOf(address), (address & OFFSET_MASK) + 6);
  }

  name(address: number): string {
    const start = this.nameStart(address);
    return this.chunkOf(address).toString('utf8', start, start + this.nameLength(address));
  }

  extra(address: number): string {
    const start = this.extraStart(address);
    return this.chunkOf(address).toString('utf8', start, start + this.extraLength(address));
  }

  hashExtra(address: number, seed: number): number {
    return hashBytes(this.chunkOf(address), this.extraStart(address), this.extraLength(address), seed);
  }

  /** Whether the name at `address` is the UTF-8 `bytes[start, start + length)`. */
  nameEquals(address: number, bytes: Uint8Array, start: number, length: number): boolean {
    return (
      this.nameLength(address) === length &&
      bytesEqual(this.chunkOf(address), this.nameStart(address), bytes, start, length)
    );
  }

  /** Compares the names at addresses `a` and `b` in code-unit order (see `compareUtf16Order`). */
  compareNames(a: number, b: number): number {
    return compareUtf16Order(
      this.chunkOf(a),
      this.nameStart(a),
      this.nameLength(a),
      this.chunkOf(b),
      this.nameStart(b),
      this.nameLength(b),
    );
  }

  /** Chunks (not the one being filled) less than half live: worth moving out with `moveChunk`. */
  sparseChunks(): number[] {
    const sparse: number[] = [];
    this.chunks.forEach((chunk, c) => {
      if (chunk !== undefined && c !== this.current && this.live[c]! * 2 < this.written[c]!) sparse.push(c);
    });
    return sparse;
  }

  /**
   * Moves the live entries of chunk `c` to the newest chunk, at most `maxEntries` of them (entries are
   * looked at in order; the next call goes on where this one stopped), and drops `c` once all are moved;
   * returns whether it did. `isLive(id, address)` says whether an entry still belongs to its file;
   * `moved(id, address)` gives the file its new address.
   */
  moveChunk(
    c: number,
    isLive: (id: number, address: number) => boolean,
    moved: (id: number, address: number) => void,
    maxEntries = Number.POSITIVE_INFINITY,
  ): boolean {
    const chunk = this.chunks[c];
    if (chunk === undefined || c === this.current) return false;
    let at = this.moveFrom[c] ?? 0;
    for (let looked = 0; at < this.written[c]! && looked < maxEntries; looked++) {
      const size = this.entryBytes(chunk, at);
      const id = chunk.readUInt32LE(at);
      if (isLive(id, c * CHUNK_BYTES + at)) {
        const address = this.reserve(size);
        chunk.copy(this.chunks[address >>> CHUNK_BITS]!, address & OFFSET_MASK, at, at + size);
        this.live[c]! -= size;
        this.liveTotal -= size;
        moved(id, address);
      }
      at += size;
    }
    if (at < this.written[c]!) {
      this.moveFrom[c] = at;
      return false;
    }
    this.liveTotal -= this.live[c]!;
    this.drop(c);
    return true;
  }

  private entryBytes(chunk: Buffer, at: number): number {
    return HEADER_BYTES + readUint16(chunk, at + 4) + readUint16(chunk, at + 6);
  }

  /** Room for `size` bytes in the newest chunk (a new one when it is full); counts them live. */
  private reserve(size: number): number {
    let c = this.current;
    if (c < 0 || this.written[c]! + size > CHUNK_BYTES) {
      c = this.freeChunks.pop() ?? this.chunks.length;
      if (c >= MAX_CHUNKS) throw new RangeError('the index holds at most 4 GiB of names');
      const bytes = uint8s(CHUNK_BYTES);
      this.chunks[c] = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length);
      this.written[c] = 0;
      this.live[c] = 0;
      const previous = this.current;
      this.current = c;
      if (previous >= 0 && this.live[previous] === 0) this.drop(previous);
    }
    const address = c * CHUNK_BYTES + this.written[c]!;
    this.written[c]! += size;
    this.live[c]! += size;
    this.liveTotal += size;
    return address;
  }

  private drop(c: number): void {
    this.chunks[c] = undefined;
    this.written[c] = 0;
    this.live[c] = 0;
    this.moveFrom[c] = 0;
    this.freeChunks.push(c);
    if (c === this.current) this.current = -1;
  }
}

/** A little-endian 16-bit number (`readUInt16LE` without its argument checks, for the hot paths). */
function readUint16(bytes: Uint8Array, at: number): number {
  return bytes[at]! | (bytes[at + 1]! << 8);
}
