/**
 * Large typed arrays whose memory goes back to the operating system when they are dropped.
 *
 * An ordinary `ArrayBuffer` comes from `malloc`. glibc serves a block from its own mapping only while the
 * block is above a threshold that it raises, up to 32 MiB, each time such a mapping is freed; after the
 * first large column has been replaced, every buffer below that size lands in the heap, and freeing it
 * there leaves the pages resident (measured: 400 MiB of 1-4 MiB buffers freed, RSS unchanged). A
 * `WebAssembly.Memory` is mapped by V8 itself and unmapped when collected, whatever its size, so arrays
 * of at least `MAPPED_MIN_BYTES` are carved from one of those (one per array; its pages are zeroed). The
 * index holds a few hundred such arrays at a million files (columns, 1 MiB text chunks, bitmaps).
 */
export const MAPPED_MIN_BYTES = 64 * 1024;
const WASM_PAGE_BYTES = 64 * 1024;

/** The part of the WebAssembly API used here (the project's TypeScript libs do not declare it). */
const { Memory } = (
  globalThis as unknown as {
    WebAssembly: {
      Memory: new (descriptor: { initial: number; maximum: number }) => { buffer: ArrayBuffer };
    };
  }
).WebAssembly;

function buffer(bytes: number): ArrayBuffer {
  if (bytes < MAPPED_MIN_BYTES) return new ArrayBuffer(bytes);
  const pages = Math.ceil(bytes / WASM_PAGE_BYTES);
  try {
    return new Memory({ initial: pages, maximum: pages }).buffer;
  } catch {
    // V8 reserves address space for each memory and refuses past some thousands of them: fall back to the
    // allocator (memory still works, it is only less surely returned).
    return new ArrayBuffer(bytes);
  }
}

export function uint8s(length: number): Uint8Array {
  return new Uint8Array(buffer(length), 0, length);
}

export function uint16s(length: number): Uint16Array {
  return new Uint16Array(buffer(length * 2), 0, length);
}

export function uint32s(length: number): Uint32Array {
  return new Uint32Array(buffer(length * 4), 0, length);
}

export function int32s(length: number): Int32Array {
  return new Int32Array(buffer(length * 4), 0, length);
}

export function float64s(length: number): Float64Array {
  return new Float64Array(buffer(length * 8), 0, length);
}

/** Ids per piece of a `Column`: a column grows and shrinks by whole pieces. */
export const PIECE_BITS = 16;
export const PIECE_IDS = 2 ** PIECE_BITS;
export const PIECE_MASK = PIECE_IDS - 1;

/** Ids of the smallest first piece. */
const MIN_FIRST_PIECE_IDS = 1024;

/** Pieces needed to hold ids below `limit`. */
export function piecesFor(limit: number): number {
  return Math.ceil(limit / PIECE_IDS);
}

/**
 * Numbers indexed by id, `width` per id, in pieces of `PIECE_IDS` ids: growing adds zeroed pieces and
 * shrinking drops the top ones, so at most one piece is ever copied (a whole column copied at a million
 * ids was a pause of tens of milliseconds) and a dropped piece's memory goes back to the system. The subclasses
 * carry the accessors, so that each keeps its own monomorphic inline caches.
 */
abstract class Column<T extends Uint8Array | Uint32Array | Int32Array | Float64Array> {
  readonly pieces: T[] = [];

  constructor(
    private readonly make: (length: number) => T,
    readonly width = 1,
  ) {}

  /** Ids the pieces hold room for. */
  get limit(): number {
    return this.pieces.length <= 1
      ? (this.pieces[0]?.length ?? 0) / this.width
      : this.pieces.length * PIECE_IDS;
  }

  /**
   * Holds room for ids below `limit`: adds zeroed pieces or drops the top ones. Below one piece, the one
   * piece is sized to the next power of two and copied when that changes (at most one piece's worth), so
   * that a small or emptied column holds little.
   */
  setLimit(limit: number): void {
    const count = Math.max(1, piecesFor(limit));
    if (this.pieces.length > count) this.pieces.length = count;
    let firstIds = PIECE_IDS;
    if (count === 1) {
      firstIds = MIN_FIRST_PIECE_IDS;
      while (firstIds < limit) firstIds *= 2;
    }
    const first = this.pieces[0];
    if (first === undefined || first.length !== firstIds * this.width) {
      const piece = this.make(firstIds * this.width);
      if (first !== undefined)
        piece.set(first.length <= piece.length ? first : first.subarray(0, piece.length));
      this.pieces[0] = piece;
    }
    while (this.pieces.length < count) this.pieces.push(this.make(PIECE_IDS * this.width));
  }
}

export class Uint32Column extends Column<Uint32Array> {
  constructor(width = 1) {
    super(uint32s, width);
  }

  get(id: number): number {
    return this.pieces[id >>> PIECE_BITS]![id & PIECE_MASK]!;
  }

  set(id: number, value: number): void {
    this.pieces[id >>> PIECE_BITS]![id & PIECE_MASK] = value;
  }
}

export class Float64Column extends Column<Float64Array> {
  constructor() {
    super(float64s);
  }

  get(id: number): number {
    return this.pieces[id >>> PIECE_BITS]![id & PIECE_MASK]!;
  }

  set(id: number, value: number): void {
    this.pieces[id >>> PIECE_BITS]![id & PIECE_MASK] = value;
  }
}

/** `width` bytes per id, as Buffers (for `toString`, `write` and `copy`). */
export class BytesColumn extends Column<Uint8Array> {
  constructor(width: number) {
    super((length) => {
      const bytes = uint8s(length);
      return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length);
    }, width);
  }

  /** The piece holding id `id`'s bytes, which start at `offsetOf(id)`. */
  pieceOf(id: number): Buffer {
    return this.pieces[id >>> PIECE_BITS] as Buffer;
  }

  offsetOf(id: number): number {
    return (id & PIECE_MASK) * this.width;
  }
}
