import type { TokenStore } from './token-store.js';

/** A chunk's share of a batch up to this size is sorted by insertion; a larger one by `Array.sort`. */
const SMALL_GROUP = 16;

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

  /**
   * Tokens `hs` (new, in any order) take their places: grouped by the chunk each goes to, and each chunk's
   * group merged into it in one pass (from its end, or into new chunks when they do not fit). Far fewer
   * reads and moves than one insert each: a chunk is read once per batch, not searched and shifted once per
   * token.
   */
  insertMany(hs: readonly number[]): void {
    const n = hs.length;
    if (n < 8 || this.chunks.length === 0) {
      for (const h of hs) this.insert(h);
      return;
    }
    const { store } = this;
    const keys = new Float64Array(n);
    const chunkOfItem = new Int32Array(n);
    const starts = new Int32Array(this.chunks.length + 1);
    for (let i = 0; i < n; i++) {
      const key = store.key(hs[i]!);
      keys[i] = key;
      const ci = Math.min(this.chunkOf(hs[i]!, key), this.chunks.length - 1);
      chunkOfItem[i] = ci;
      starts[ci + 1]!++;
    }
    for (let ci = 0; ci < this.chunks.length; ci++) starts[ci + 1]! += starts[ci]!;
    // Items by chunk (a counting sort), then each chunk's few items in token order.
    const byChunk = new Int32Array(n);
    const fill = starts.slice(0, this.chunks.length);
    for (let i = 0; i < n; i++) byChunk[fill[chunkOfItem[i]!]!++] = i;
    const before = (a: number, b: number) =>
      keys[a]! < keys[b]! || (keys[a] === keys[b] && store.compare(hs[a]!, hs[b]!) < 0);
    for (let ci = 0; ci < this.chunks.length; ci++) {
      const from = starts[ci]!;
      const to = starts[ci + 1]!;
      if (to - from > SMALL_GROUP) {
        // Many new tokens in one chunk (names in a run, or a client that aims them there): n log n.
        const group = Array.from(byChunk.subarray(from, to)).sort((a, b) =>
          before(a, b) ? -1 : before(b, a) ? 1 : 0,
        );
        byChunk.set(group, from);
        continue;
      }
      for (let i = from + 1; i < to; i++) {
        const item = byChunk[i]!;
        let j = i - 1;
        for (; j >= from && before(item, byChunk[j]!); j--) byChunk[j + 1] = byChunk[j]!;
        byChunk[j + 1] = item;
      }
    }
    // The last chunk first: replacing a chunk by several shifts only the chunks after it.
    for (let ci = this.chunks.length - 1; ci >= 0; ci--) {
      const from = starts[ci]!;
      const to = starts[ci + 1]!;
      if (from < to) this.mergeInto(ci, hs, keys, byChunk.subarray(from, to));
    }
  }

  /**
   * Merges the items `order` (indexes into `hs` and `keys`, in token order) into chunk `ci`: from the
   * greatest, each one's place found among the chunk's tokens not yet moved, and those after it moved up
   * in one copy (each slot moves once).
   */
  private mergeInto(ci: number, hs: readonly number[], keys: Float64Array, order: Int32Array): void {
    const { store } = this;
    const chunk = this.chunks[ci]!;
    const total = chunk.size + order.length;
    const fits = total <= this.chunkMax;
    const handles = fits ? chunk.handles : new Int32Array(total);
    const chunkKeys = fits ? chunk.keys : new Float64Array(total);
    let end = chunk.size;
    for (let j = order.length - 1; j >= 0; j--) {
      const item = order[j]!;
      const h = hs[item]!;
      const key = keys[item]!;
      const pos = lowerBound(chunk.keys, chunk.handles, end, key, (other) => store.compare(other, h));
      if (fits) {
        handles.copyWithin(pos + j + 1, pos, end);
        chunkKeys.copyWithin(pos + j + 1, pos, end);
      } else {
        handles.set(chunk.handles.subarray(pos, end), pos + j + 1);
        chunkKeys.set(chunk.keys.subarray(pos, end), pos + j + 1);
      }
      handles[pos + j] = h;
      chunkKeys[pos + j] = key;
      end = pos;
    }
    if (!fits) {
      handles.set(chunk.handles.subarray(0, end));
      chunkKeys.set(chunk.keys.subarray(0, end));
      this.replaceBy(ci, handles, chunkKeys);
      return;
    }
    chunk.size = total;
    this.setMax(ci);
  }

  /** Chunk `ci` is replaced by the sorted `handles` and `keys`, cut into chunks of at most `chunkMax`. */
  private replaceBy(ci: number, handles: Int32Array, keys: Float64Array): void {
    const pieces = Math.ceil(handles.length / this.chunkMax);
    const per = Math.ceil(handles.length / pieces);
    const chunks: Chunk[] = [];
    for (let start = 0; start < handles.length; start += per) {
      const chunk = this.newChunk();
      const end = Math.min(start + per, handles.length);
      chunk.handles.set(handles.subarray(start, end));
      chunk.keys.set(keys.subarray(start, end));
      chunk.size = end - start;
      chunks.push(chunk);
    }
    this.chunks.splice(ci, 1, ...chunks);
    this.maxHandles.splice(ci, 1, ...chunks.map((chunk) => chunk.handles[chunk.size - 1]!));
    this.maxKeys.splice(ci, 1, ...chunks.map((chunk) => chunk.keys[chunk.size - 1]!));
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
   * Calls `visit` with each handle whose token is >= `token` (whose `keyOf` is `key`), and its key, in
   * order, until it returns false.
   */
  forEachFrom(token: string, key: number, visit: (h: number, key: number) => boolean): void {
    const { store } = this;
    let ci = lowerBound(this.maxKeys, this.maxHandles, this.chunks.length, key, (h) =>
      store.compareTo(h, token),
    );
    if (ci === this.chunks.length) return;
    const first = this.chunks[ci]!;
    let pos = lowerBound(first.keys, first.handles, first.size, key, (h) => store.compareTo(h, token));
    for (; ci < this.chunks.length; ci++, pos = 0) {
      const { handles, keys, size } = this.chunks[ci]!;
      for (; pos < size; pos++) if (!visit(handles[pos]!, keys[pos]!)) return;
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
