import { PIECE_BITS, PIECE_MASK, Uint32Column } from './big-arrays.js';

/** Fewest buckets (a power of two). */
const MIN_BUCKETS = 1024;
/** Buckets merge once there are more than this many per id. */
const MAX_BUCKETS_PER_ID = 4;

/**
 * A multimap from a 32-bit hash to ids, in typed arrays: a bucket head per bucket and a chain through the
 * ids, so adding an id costs O(1) and nothing is allocated per id (a `Map` entry, or a `Set` for a shared
 * key, costs tens of bytes and garbage-collector work per id). Callers compare the full key of each id a
 * bucket yields: different keys may share a bucket.
 *
 * The bucket count follows the number of ids by linear hashing: each `add` that takes the ids past the
 * buckets splits one bucket in two, and each `delete` that leaves more than `MAX_BUCKETS_PER_ID` buckets an
 * id merges the last bucket into its twin (a few per call), so no call rehashes more than one bucket.
 * Buckets and the per-id links live in pieces (see `Column`): growing and shrinking add or drop pieces,
 * copying nothing. Links and heads hold an id + 1 (0 for none), so a new piece needs no filling.
 *
 * The chains are singly linked, each node (next, hash) in one place: adding an id writes only its own node
 * and its bucket's head, and a split deals a chain into two by rewriting each node it walks, where a
 * doubly linked chain also wrote each neighbour's back link (a cache miss per id at a million ids, a
 * third of the cost of indexing a state). Deleting walks its bucket to find the id's predecessor: buckets
 * hold one id on average.
 */
export class IdChains {
  /** Per id: next + 1, hash. */
  private readonly nodes = new Uint32Column(2);
  private readonly heads = new Uint32Column();
  /** Buckets in use: `low + split` (`low` a power of two), where buckets below `split` are split already. */
  private low = MIN_BUCKETS;
  private split = 0;
  private ids = 0;
  /** Buckets the heads have room for (`heads.limit`, kept at hand for the hot path). */
  private headRoom = 0;

  constructor(idLimit = 1) {
    this.nodes.setLimit(idLimit);
    this.heads.setLimit(MIN_BUCKETS);
    this.headRoom = this.heads.limit;
  }

  get size(): number {
    return this.ids;
  }

  get bucketCount(): number {
    return this.low + this.split;
  }

  /** The first id whose hash falls in `hash`'s bucket, or -1; go on with `after`. */
  first(hash: number): number {
    return this.head(this.bucket(hash)) - 1;
  }

  after(id: number): number {
    return this.node(id)[(id & PIECE_MASK) * 2]! - 1;
  }

  hashOf(id: number): number {
    return this.node(id)[(id & PIECE_MASK) * 2 + 1]!;
  }

  add(id: number, hash: number): void {
    const bucket = this.bucket(hash);
    const heads = this.heads.pieces[bucket >>> PIECE_BITS]!;
    const slot = bucket & PIECE_MASK;
    const node = this.node(id);
    const at = (id & PIECE_MASK) * 2;
    node[at] = heads[slot]!;
    node[at + 1] = hash;
    heads[slot] = id + 1;
    if (++this.ids > this.bucketCount) this.splitOne();
  }

  delete(id: number): void {
    this.unlink(id, this.bucket(this.hashOf(id)));
    this.ids--;
    // As many merges as keep the ratio from drifting while ids keep leaving.
    for (
      let i = 0;
      i < MAX_BUCKETS_PER_ID &&
      this.bucketCount > MIN_BUCKETS &&
      this.ids * MAX_BUCKETS_PER_ID < this.bucketCount;
      i++
    )
      this.mergeOne();
  }

  /** Room for ids below `limit`; every id at or above it must have been deleted. */
  setIdLimit(limit: number): void {
    this.nodes.setLimit(Math.max(1, limit));
  }

  private node(id: number): Uint32Array {
    return this.nodes.pieces[id >>> PIECE_BITS]!;
  }

  private head(bucket: number): number {
    return this.heads.pieces[bucket >>> PIECE_BITS]![bucket & PIECE_MASK]!;
  }

  private setHead(bucket: number, id: number): void {
    this.heads.pieces[bucket >>> PIECE_BITS]![bucket & PIECE_MASK] = id + 1;
  }

  private bucket(hash: number): number {
    const low = this.low;
    const wide = hash & ((low << 1) - 1);
    return wide < low + this.split ? wide : hash & (low - 1);
  }

  /**
   * Moves the ids of bucket `split` whose hash has the next bit set into a new bucket: one walk that deals
   * the chain into two (each id goes in front of its new chain), touching no node outside it.
   */
  private splitOne(): void {
    const low = this.low;
    const from = this.split;
    const to = low + from;
    if (to >= this.headRoom) {
      this.heads.setLimit(to + 1);
      this.headRoom = this.heads.limit;
    }
    const mask = (low << 1) - 1;
    const pieces = this.nodes.pieces;
    let keep = 0;
    let move = 0;
    for (let link = this.head(from); link !== 0; ) {
      const id = link - 1;
      const node = pieces[id >>> PIECE_BITS]!;
      const at = (id & PIECE_MASK) * 2;
      link = node[at]!;
      if ((node[at + 1]! & mask) === to) {
        node[at] = move;
        move = id + 1;
      } else {
        node[at] = keep;
        keep = id + 1;
      }
    }
    this.setHead(from, keep - 1);
    this.setHead(to, move - 1);
    if (++this.split === low) {
      this.low = low << 1;
      this.split = 0;
    }
  }

  /** Puts the chain of the last bucket in front of its twin's and drops the last bucket. */
  private mergeOne(): void {
    if (this.split === 0) {
      this.low >>>= 1;
      this.split = this.low;
    }
    this.split--;
    const into = this.split;
    const from = this.low + into;
    const moving = this.head(from) - 1;
    if (moving >= 0) {
      // The moving chain goes in front of `into`'s: its tail is found by walking it.
      let tail = moving;
      for (let next = this.after(tail); next >= 0; next = this.after(tail)) tail = next;
      this.setNext(tail, this.head(into) - 1);
      this.setHead(into, moving);
    }
    this.setHead(from, -1);
    // Give back the heads' top piece once it is empty (or halve a lone first piece).
    if (from <= this.headRoom >>> 1 || (from & PIECE_MASK) === 0) {
      this.heads.setLimit(from);
      this.headRoom = this.heads.limit;
    }
  }

  private setNext(id: number, next: number): void {
    this.node(id)[(id & PIECE_MASK) * 2] = next + 1;
  }

  /** Takes `id` out of `bucket`'s chain, found by walking it from the head. */
  private unlink(id: number, bucket: number): void {
    const after = this.after(id);
    let previous = this.head(bucket) - 1;
    if (previous === id) {
      this.setHead(bucket, after);
      return;
    }
    for (let next = this.after(previous); next !== id; next = this.after(previous)) {
      if (next < 0) throw new Error(`IdChains: id ${id} is not in its bucket`);
      previous = next;
    }
    this.setNext(previous, after);
  }
}
