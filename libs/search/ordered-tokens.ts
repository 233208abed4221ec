import type { TokenStore } from './token-store.js';

/** A sorted run of handles, with each one's sort key beside it (the first `size` slots are in use). */
interface Chunk {
  readonly handles: Int32Array;
  readonly keys: Float64Array;
  size: number;
}

/**
 * The handles of a `TokenStore` in their tokens' code-unit order, as a list of sorted chunks (the layout of
 * Python's `sortedcontainers.SortedList`): finding a token or a prefix is two binary searches, and adding or
 * dropping one shifts one chunk of at most `chunkMax` slots. Each chunk holds its handles' sort keys beside
 * them, and the list holds each chunk's greatest key: a search reads keys laid out one after another, and
 * a token's units only where two keys tie.
 */
export class OrderedTokens {
  private chunks: Chunk[] = [];
  /** The greatest handle of each chunk, and its key. */
  private maxHandles: number[] = [];
  private maxKeys: number[] = [];

  constructor(
    private readonly store: TokenStore,
    private readonly chunkMax: number,
    private readonly chunkMin: number,
  ) {}

  /** Token `h` (new) takes its place. */
  insert(h: number): void {
    const key = this.store.key(h);
    if (this.chunks.length === 0) {
      this.chunks.push(this.newChunk());
      this.maxHandles.push(h);
      this.maxKeys.push(key);
    }
    let ci = this.chunkOf(h, key);
    if (ci === this.chunks.length) ci--;
    const chunk = this.chunks[ci]!;
    const pos = this.positionOf(chunk, h, key);
    const { handles, keys, size } = chunk;
    handles.copyWithin(pos + 1, pos, size);
    keys.copyWithin(pos + 1, pos, size);
    handles[pos] = h;
    keys[pos] = key;
    chunk.size++;
    this.setMax(ci);
    if (chunk.size > this.chunkMax) this.split(ci);
  }

  /** Token `h` (still in the store) leaves. */
  remove(h: number): void {
    const key = this.store.key(h);
    const ci = this.chunkOf(h, key);
    const chunk = this.chunks[ci];
    if (chunk === undefined) return;
    const pos = this.positionOf(chunk, h, key);
    if (pos === chunk.size || chunk.handles[pos] !== h) return;
    chunk.handles.copyWithin(pos, pos + 1, chunk.size);
    chunk.keys.copyWithin(pos, pos + 1, chunk.size);
    chunk.size--;
    if (chunk.size === 0) {
      this.chunks.splice(ci, 1);
      this.maxHandles.splice(ci, 1);
      this.maxKeys.splice(ci, 1);
      return;
    }
    this.setMax(ci);
    if (chunk.size < this.chunkMin && this.chunks.length > 1)
      this.join(ci + 1 < this.chunks.length ? ci : ci - 1);
  }

  /** Token `from` is now under handle `to` (same token, same place). */
  rename(from: number, to: number): void {
    const key = this.store.key(from);
    const ci = this.chunkOf(from, key);
    const chunk = this.chunks[ci]!;
    chunk.handles[this.positionOf(chunk, from, key)] = to;
    if (this.maxHandles[ci] === from) this.maxHandles[ci] = to;
  }

  /**
   * Calls `visit` with each handle whose token is >= `token` (whose `keyOf` is `key`), in order, until it
   * returns false.
   */
  forEachFrom(token: string, key: number, visit: (h: number) => boolean): void {
    const { store } = this;
    let ci = lowerBound(this.maxKeys, this.maxHandles, this.chunks.length, key, (h) =>
      store.compareTo(h, token),
    );
    if (ci === this.chunks.length) return;
    const first = this.chunks[ci]!;
    let pos = lowerBound(first.keys, first.handles, first.size, key, (h) => store.compareTo(h, token));
    for (; ci < this.chunks.length; ci++, pos = 0) {
      const { handles, size } = this.chunks[ci]!;
      for (; pos < size; pos++) if (!visit(handles[pos]!)) return;
    }
  }

  /** Every handle in order (tests and diagnostics). */
  handles(): number[] {
    return this.chunks.flatMap((chunk) => Array.from(chunk.handles.subarray(0, chunk.size)));
  }

  /** Throws when chunks are out of bounds or their keys and maxes disagree with the store; for tests. */
  checkConsistency(): void {
    this.chunks.forEach((chunk, ci) => {
      if (chunk.size === 0 || chunk.size > this.chunkMax)
        throw new Error(`chunk ${ci} has ${chunk.size} tokens`);
      if (
        this.maxHandles[ci] !== chunk.handles[chunk.size - 1] ||
        this.maxKeys[ci] !== chunk.keys[chunk.size - 1]
      )
        throw new Error(`chunk ${ci} has a wrong max`);
      for (let pos = 0; pos < chunk.size; pos++)
        if (chunk.keys[pos] !== this.store.key(chunk.handles[pos]!))
          throw new Error(`chunk ${ci} has a wrong key`);
    });
    if (this.maxHandles.length !== this.chunks.length || this.maxKeys.length !== this.chunks.length)
      throw new Error('maxes and chunks differ');
  }

  private newChunk(): Chunk {
    return { handles: new Int32Array(this.chunkMax + 1), keys: new Float64Array(this.chunkMax + 1), size: 0 };
  }

  /** The chunk where token `h` (key `key`) is or would go: the first whose greatest token is >= it. */
  private chunkOf(h: number, key: number): number {
    const { store } = this;
    return lowerBound(this.maxKeys, this.maxHandles, this.chunks.length, key, (other) =>
      store.compare(other, h),
    );
  }

  private positionOf(chunk: Chunk, h: number, key: number): number {
    const { store } = this;
    return lowerBound(chunk.keys, chunk.handles, chunk.size, key, (other) => store.compare(other, h));
  }

  private setMax(ci: number): void {
    const chunk = this.chunks[ci]!;
    this.maxHandles[ci] = chunk.handles[chunk.size - 1]!;
    this.maxKeys[ci] = chunk.keys[chunk.size - 1]!;
  }

  private split(ci: number): void {
    const chunk = this.chunks[ci]!;
    const half = chunk.size >> 1;
    const right = this.newChunk();
    right.handles.set(chunk.handles.subarray(half, chunk.size));
    right.keys.set(chunk.keys.subarray(half, chunk.size));
    right.size = chunk.size - half;
    chunk.size = half;
    this.chunks.splice(ci + 1, 0, right);
    this.maxHandles.splice(ci + 1, 0, 0);
    this.maxKeys.splice(ci + 1, 0, 0);
    this.setMax(ci);
    this.setMax(ci + 1);
  }

  /** Joins chunks `left` and `left + 1`, or when too many for one, has them share their handles evenly. */
  private join(left: number): void {
    const a = this.chunks[left]!;
    const b = this.chunks[left + 1]!;
    const total = a.size + b.size;
    if (total <= this.chunkMax) {
      a.handles.set(b.handles.subarray(0, b.size), a.size);
      a.keys.set(b.keys.subarray(0, b.size), a.size);
      a.size = total;
      this.chunks.splice(left + 1, 1);
      this.maxHandles.splice(left + 1, 1);
      this.maxKeys.splice(left + 1, 1);
      this.setMax(left);
      return;
    }
    const half = total >> 1;
    if (a.size < half) {
      const n = half - a.size;
      a.handles.set(b.handles.subarray(0, n), a.size);
      a.keys.set(b.keys.subarray(0, n), a.size);
      b.handles.copyWithin(0, n, b.size);
      b.keys.copyWithin(0, n, b.size);
    } else {
      const n = a.size - half;
      b.handles.copyWithin(n, 0, b.size);
      b.keys.copyWithin(n, 0, b.size);
      b.handles.set(a.handles.subarray(half, a.size));
      b.keys.set(a.keys.subarray(half, a.size));
    }
    a.size = half;
    b.size = total - half;
    this.setMax(left);
    this.setMax(left + 1);
  }
}

/**
 * First position below `size` whose entry sorts at or after the target, entries sorted by `keys` and, where
 * keys tie, by `compare(handle)` (negative when the handle's token sorts before the target's).
 */
function lowerBound(
  keys: ArrayLike<number>,
  handles: ArrayLike<number>,
  size: number,
  key: number,
  compare: (h: number) => number,
): number {
  let low = 0;
  let high = size;
  while (low < high) {
    const mid = (low + high) >>> 1;
    const k = keys[mid]!;
    if (k < key || (k === key && compare(handles[mid]!) < 0)) low = mid + 1;
    else high = mid;
  }
  return low;
}
