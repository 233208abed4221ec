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

export function uint32s(length: number): Uint32Array {
  return new Uint32Array(buffer(length * 4), 0, length);
}

export function int32s(length: number): Int32Array {
  return new Int32Array(buffer(length * 4), 0, length);
}

export function float64s(length: number): Float64Array {
  return new Float64Array(buffer(length * 8), 0, length);
}

/** A copy of the first `count` elements of `from` in a new array of `length` (zeros after them). */
export function regrown<T extends Uint8Array | Uint32Array | Int32Array | Float64Array>(
  from: T,
  length: number,
  count: number,
  make: (length: number) => T,
): T {
  const to = make(length);
  to.set(from.subarray(0, Math.min(count, length)));
  return to;
}
