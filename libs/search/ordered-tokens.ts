import type { TokenStore } from './token-store.js';

/** Sort keys are `KEY_DIGITS` digits of `DIGIT_BITS` bits (see sort-keys.ts). */
const KEY_DIGITS = 7;
const DIGIT_BITS = 7;
const DIGITS = 2 ** DIGIT_BITS;
/** A key's low four digits and its high three are sorted from two 28- and 21-bit integers. */
const LOW_DIGITS = 4;
const LOW_SCALE = 2 ** (LOW_DIGITS * DIGIT_BITS);

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
   * Tokens `hs` (new, in any order) take their places: sorted (by key in linear time, see `sortByKey`),
   * then shared out among the chunks in one walk beside them, and each chunk's share merged into it in one
   * pass (from its end, or into new chunks when they do not fit). A chunk is read and moved once per batch,
   * not searched and shifted once per token.
   */
  insertMany(hs: readonly number[]): void {
    const n = hs.length;
    if (n < 8 || this.chunks.length === 0) {
      for (const h of hs) this.insert(h);
      return;
    }
    const { store } = this;
    const keys = new Float64Array(n);
    for (let i = 0; i < n; i++) keys[i] = store.key(hs[i]!);
    const order = sortByKey(keys);
    sortTies(order, keys, (a, b) => store.compare(hs[a]!, hs[b]!));
    // Each item goes to the first chunk whose greatest token is not before it (the last when none is).
    const last = this.chunks.length - 1;
    const shares: number[] = []; // chunk, first item, end, for each chunk that gets any
    let ci = 0;
    for (let i = 0; i < n; ) {
      while (ci < last && this.afterMax(ci, keys[order[i]!]!, hs[order[i]!]!)) ci++;
      let j = i + 1;
      if (ci === last) j = n;
      else while (j < n && !this.afterMax(ci, keys[order[j]!]!, hs[order[j]!]!)) j++;
      shares.push(ci, i, j);
      i = j;
    }
    // The last chunk first: replacing a chunk by several shifts only the chunks after it.
    for (let k = shares.length - 3; k >= 0; k -= 3)
      this.mergeInto(shares[k]!, hs, keys, order.subarray(shares[k + 1]!, shares[k + 2]!));
  }

  /** Whether token `h` (key `key`) sorts after the greatest token of chunk `ci`. */
  private afterMax(ci: number, key: number, h: number): boolean {
    const max = this.maxKeys[ci]!;
    return max < key || (max === key && this.store.compare(this.maxHandles[ci]!, h) < 0);
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
    if (total > this.chunkMax) {
      this.mergeSplitting(ci, hs, keys, order);
      return;
    }
    const { handles, keys: chunkKeys } = chunk;
    let end = chunk.size;
    for (let j = order.length - 1; j >= 0; j--) {
      const item = order[j]!;
      const h = hs[item]!;
      const key = keys[item]!;
      const pos = lowerBound(chunkKeys, handles, end, key, (other) => store.compare(other, h));
      handles.copyWithin(pos + j + 1, pos, end);
      chunkKeys.copyWithin(pos + j + 1, pos, end);
      handles[pos + j] = h;
      chunkKeys[pos + j] = key;
      end = pos;
    }
    chunk.size = total;
    this.setMax(ci);
  }

  /**
   * `mergeInto` where the chunk's tokens and the items are more than a chunk holds: they are merged from the
   * greatest, slot by slot, into pieces of equal size, the first the chunk's own arrays (a slot is written
   * there only once what it held has been read) and the others new chunks. No array is made but theirs.
   */
  private mergeSplitting(ci: number, hs: readonly number[], keys: Float64Array, order: Int32Array): void {
    const { store } = this;
    const chunk = this.chunks[ci]!;
    const total = chunk.size + order.length;
    const pieces = Math.ceil(total / this.chunkMax);
    const per = Math.ceil(total / pieces);
    const targets = [chunk];
    for (let k = 1; k < pieces; k++) targets.push(this.newChunk());
    let src = chunk.size - 1;
    let j = order.length - 1;
    for (let p = total - 1; p >= 0 && (j >= 0 || p >= per); p--) {
      let h: number;
      let key: number;
      const item = j >= 0 ? order[j]! : -1;
      if (
        item >= 0 &&
        (src < 0 ||
          keys[item]! > chunk.keys[src]! ||
          (keys[item] === chunk.keys[src] && store.compare(chunk.handles[src]!, hs[item]!) < 0))
      ) {
        h = hs[item]!;
        key = keys[item]!;
        j--;
      } else {
        h = chunk.handles[src]!;
        key = chunk.keys[src]!;
        src--;
      }
      const target = targets[Math.floor(p / per)]!;
      const at = p % per;
      target.handles[at] = h;
      target.keys[at] = key;
    }
    for (let k = 0; k < pieces; k++) targets[k]!.size = Math.min(per, total - k * per);
    this.chunks.splice(ci + 1, 0, ...targets.slice(1));
    this.maxHandles.splice(ci + 1, 0, ...targets.slice(1).map(() => 0));
    this.maxKeys.splice(ci + 1, 0, ...targets.slice(1).map(() => 0));
    for (let k = 0; k < pieces; k++) this.setMax(ci + k);
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

/**
 * Indexes 0 to n - 1 of `keys` (sort keys: seven 7-bit digits) in key order, ties in index order: a
 * least-significant-digit radix sort, one pass per digit where the digits differ. Linear whatever order
 * the tokens came in (a comparison sort of a batch cost as much as merging it).
 */
export function sortByKey(keys: Float64Array): Int32Array {
  const n = keys.length;
  const low = new Int32Array(n);
  const high = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    const top = Math.floor(keys[i]! / LOW_SCALE);
    high[i] = top;
    low[i] = keys[i]! - top * LOW_SCALE;
  }
  let order = new Int32Array(n);
  for (let i = 0; i < n; i++) order[i] = i;
  let next = new Int32Array(n);
  const counts = new Int32Array(DIGITS);
  for (let digit = 0; digit < KEY_DIGITS; digit++) {
    const words = digit < LOW_DIGITS ? low : high;
    const shift = DIGIT_BITS * (digit < LOW_DIGITS ? digit : digit - LOW_DIGITS);
    counts.fill(0);
    for (let i = 0; i < n; i++) counts[(words[i]! >>> shift) & (DIGITS - 1)]!++;
    if (counts[(words[0]! >>> shift) & (DIGITS - 1)] === n) continue; // one digit for all: no move
    for (let d = 0, sum = 0; d < DIGITS; d++) {
      const count = counts[d]!;
      counts[d] = sum;
      sum += count;
    }
    for (let i = 0; i < n; i++) {
      const item = order[i]!;
      next[counts[(words[item]! >>> shift) & (DIGITS - 1)]!++] = item;
    }
    [order, next] = [next, order];
  }
  return order;
}

/**
 * Orders by `compare` each run of `order` (sorted by key) whose keys tie: tokens that share their first
 * seven units. `Array.sort`: n log n for a batch a client aimed at one key, linear for a run in order.
 */
function sortTies(order: Int32Array, keys: Float64Array, compare: (a: number, b: number) => number): void {
  for (let i = 0; i < order.length; ) {
    const key = keys[order[i]!]!;
    let j = i + 1;
    while (j < order.length && keys[order[j]!] === key) j++;
    if (j - i > 1) order.set(Array.from(order.subarray(i, j)).sort(compare), i);
    i = j;
  }
}
