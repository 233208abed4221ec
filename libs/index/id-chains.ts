import { int32s, uint32s } from './big-arrays.js';

/**
 * A multimap from a 32-bit hash to file ids, in typed arrays: one bucket head per id slot of capacity and
 * a doubly linked chain through the ids, so adding and removing an id cost O(1) and nothing is allocated
 * per file (a `Map` entry, or a `Set` for a shared key, costs tens of bytes and garbage-collector work per
 * file). Callers compare the full key of each id a bucket yields: different keys may share a bucket.
 */
export class IdChains {
  private heads: Int32Array;
  private next: Int32Array;
  private prev: Int32Array;
  private hashes: Uint32Array;

  constructor(capacity: number) {
    this.heads = int32s(capacity).fill(-1);
    this.next = int32s(capacity);
    this.prev = int32s(capacity);
    this.hashes = uint32s(capacity);
  }

  /** The first id whose hash falls in `hash`'s bucket, or -1; go on with `after`. */
  first(hash: number): number {
    return this.heads[hash & (this.heads.length - 1)]!;
  }

  after(id: number): number {
    return this.next[id]!;
  }

  hashOf(id: number): number {
    return this.hashes[id]!;
  }

  add(id: number, hash: number): void {
    const bucket = hash & (this.heads.length - 1);
    const head = this.heads[bucket]!;
    this.hashes[id] = hash;
    this.prev[id] = -1;
    this.next[id] = head;
    if (head >= 0) this.prev[head] = id;
    this.heads[bucket] = id;
  }

  delete(id: number): void {
    const before = this.prev[id]!;
    const after = this.next[id]!;
    if (before >= 0) this.next[before] = after;
    else this.heads[this.hashes[id]! & (this.heads.length - 1)] = after;
    if (after >= 0) this.prev[after] = before;
  }

  /**
   * Moves to `capacity` (a power of two) buckets and id slots; `live(id)` says which ids below `idCount`
   * (at most `capacity`) are in a chain, and those are chained again. Costs one pass over the ids.
   */
  resize(capacity: number, idCount: number, live: (id: number) => boolean): void {
    const hashes = uint32s(capacity);
    hashes.set(this.hashes.subarray(0, Math.min(idCount, capacity)));
    this.hashes = hashes;
    this.heads = int32s(capacity).fill(-1);
    this.next = int32s(capacity);
    this.prev = int32s(capacity);
    for (let id = 0; id < idCount; id++) if (live(id)) this.add(id, hashes[id]!);
  }
}
