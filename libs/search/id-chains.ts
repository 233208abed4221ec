import { int32s, regrown, uint32s } from './big-arrays.js';

/** Buckets split by each `add` while the table is growing (two, so a split ends before the next growth). */
const SPLITS_PER_ADD = 2;

/**
 * A multimap from a 32-bit hash to file ids, in typed arrays: one bucket head per id slot of capacity and
 * a doubly linked chain through the ids, so adding and removing an id cost O(1) and nothing is allocated
 * per file (a `Map` entry, or a `Set` for a shared key, costs tens of bytes and garbage-collector work per
 * file). Callers compare the full key of each id a bucket yields: different keys may share a bucket.
 *
 * Growing does not rehash every id at once (a pause of tens of milliseconds at a million ids): the
 * buckets double and each old bucket is split into its two new ones later, a few per `add` (linear
 * hashing). Until bucket b is split, the ids of both its halves stay in it.
 */
export class IdChains {
  private heads: Int32Array;
  private next: Int32Array;
  private prev: Int32Array;
  private hashes: Uint32Array;
  /** Buckets below `splitNext` (of the lower half) are split; `lowMask` addresses the unsplit ones. */
  private splitNext = 0;
  private lowMask: number;

  constructor(capacity: number) {
    this.heads = int32s(capacity).fill(-1);
    this.next = int32s(capacity);
    this.prev = int32s(capacity);
    this.hashes = uint32s(capacity);
    this.lowMask = capacity - 1;
  }

  /** The first id whose hash falls in `hash`'s bucket, or -1; go on with `after`. */
  first(hash: number): number {
    return this.heads[this.bucket(hash)]!;
  }

  after(id: number): number {
    return this.next[id]!;
  }

  hashOf(id: number): number {
    return this.hashes[id]!;
  }

  add(id: number, hash: number): void {
    this.hashes[id] = hash;
    this.link(id, this.bucket(hash));
    for (let i = 0; i < SPLITS_PER_ADD && this.splitting(); i++) this.splitOne();
  }

  delete(id: number): void {
    const before = this.prev[id]!;
    const after = this.next[id]!;
    if (before >= 0) this.next[before] = after;
    else this.heads[this.bucket(this.hashes[id]!)] = after;
    if (after >= 0) this.prev[after] = before;
  }

  /**
   * Moves to `capacity` (a power of two) buckets and id slots; `live(id)` says which ids below `idCount`
   * (at most `capacity`) are in a chain. Growing copies the links and leaves the rehashing to later adds;
   * halving merges bucket pairs; any other change chains the live ids again (one pass).
   */
  resize(capacity: number, idCount: number, live: (id: number) => boolean): void {
    const keep = Math.min(idCount, capacity);
    this.next = regrown(this.next, capacity, keep, int32s);
    this.prev = regrown(this.prev, capacity, keep, int32s);
    this.hashes = regrown(this.hashes, capacity, keep, uint32s);
    if (capacity === this.heads.length * 2) {
      while (this.splitting()) this.splitOne();
      const heads = int32s(capacity);
      heads.set(this.heads);
      heads.fill(-1, this.heads.length);
      this.heads = heads;
      this.splitNext = 0;
      return;
    }
    if (capacity * 2 === this.heads.length && !this.splitting()) {
      this.mergeHalves();
      return;
    }
    this.heads = int32s(capacity).fill(-1);
    this.lowMask = capacity - 1;
    this.splitNext = 0;
    for (let id = 0; id < keep; id++) if (live(id)) this.link(id, this.bucket(this.hashes[id]!));
  }

  /**
   * Halves the buckets by appending each upper bucket's chain to its lower twin: no id is rehashed (the
   * chains hold only ids below the new capacity, the others were deleted before).
   */
  private mergeHalves(): void {
    const half = this.heads.length >>> 1;
    const heads = int32s(half);
    for (let b = 0; b < half; b++) {
      const lower = this.heads[b]!;
      const upper = this.heads[b + half]!;
      heads[b] = lower >= 0 ? lower : upper;
      if (lower < 0 || upper < 0) continue;
      let tail = lower;
      while (this.next[tail]! >= 0) tail = this.next[tail]!;
      this.next[tail] = upper;
      this.prev[upper] = tail;
    }
    this.heads = heads;
    this.lowMask = half - 1;
    this.splitNext = 0;
  }

  private splitting(): boolean {
    return this.lowMask < this.heads.length - 1;
  }

  private bucket(hash: number): number {
    const low = hash & this.lowMask;
    return low < this.splitNext ? hash & (this.heads.length - 1) : low;
  }

  /** Moves the ids of bucket `splitNext` whose hash has the next bit set into its new twin bucket. */
  private splitOne(): void {
    const from = this.splitNext;
    const mask = this.heads.length - 1;
    let id = this.heads[from]!;
    while (id >= 0) {
      const following = this.next[id]!;
      if ((this.hashes[id]! & mask) !== from) {
        this.delete(id);
        this.link(id, this.hashes[id]! & mask);
      }
      id = following;
    }
    this.splitNext++;
    if (this.splitNext > this.lowMask) {
      this.lowMask = mask;
      this.splitNext = 0;
    }
  }

  private link(id: number, bucket: number): void {
    const head = this.heads[bucket]!;
    this.prev[id] = -1;
    this.next[id] = head;
    if (head >= 0) this.prev[head] = id;
    this.heads[bucket] = id;
  }
}
