import { PIECE_BITS, PIECE_MASK, Uint32Column } from './big-arrays.js';

/** Fewest buckets (a power of two). */
const MIN_BUCKETS = 1024;
/** Buckets merge once there are more than this many per id. */
const MAX_BUCKETS_PER_ID = 4;

/**
 * A multimap from a 32-bit hash to ids, in typed arrays: a bucket head per bucket and a doubly linked
 * chain through the ids, so adding and removing an id cost O(1) and nothing is allocated per id (a `Map`
 * entry, or a `Set` for a shared key, costs tens of bytes and garbage-collector work per id). Callers
 * compare the full key of each id a bucket yields: different keys may share a bucket.
 *
 * The bucket count follows the number of ids by linear hashing: each `add` that takes the ids past the
 * buckets splits one bucket in two, and each `delete` that leaves more than `MAX_BUCKETS_PER_ID` buckets an
 * id merges the last bucket into its twin (a few per call, O(1) each), so no call rehashes more than one
 * bucket. Buckets and
 * the per-id links live in pieces (see `Column`): growing and shrinking add or drop pieces, copying
 * nothing. Links and heads hold an id + 1 (0 for none), so a new piece needs no filling. A chain's head
 * has no previous: linking an id in front of it then reads only the bucket (the old head's node is only
 * written, which does not wait on memory), and a merge walks the moving chain to its tail instead (merges
 * happen below one id per `MAX_BUCKETS_PER_ID` buckets, where chains are short).
 */
export class IdChains {
  /** Per id: next + 1, previous + 1, hash. */
  private readonly nodes = new Uint32Column(3);
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
    return this.node(id)[(id & PIECE_MASK) * 3]! - 1;
  }

  hashOf(id: number): number {
    return this.node(id)[(id & PIECE_MASK) * 3 + 2]!;
  }

  add(id: number, hash: number): void {
    this.node(id)[(id & PIECE_MASK) * 3 + 2] = hash;
    this.link(id, this.bucket(hash));
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
   * the chain into two, touching no node outside it.
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
    let keepFirst = -1;
    let keepLast = -1;
    let moveFirst = -1;
    let moveLast = -1;
    for (let id = this.head(from) - 1; id >= 0; ) {
      const node = pieces[id >>> PIECE_BITS]!;
      const at = (id & PIECE_MASK) * 3;
      const next = node[at]! - 1;
      if ((node[at + 2]! & mask) === to) {
        if (moveLast < 0) moveFirst = id;
        else {
          this.setNext(moveLast, id);
          node[at + 1] = moveLast + 1;
        }
        moveLast = id;
      } else {
        if (keepLast < 0) keepFirst = id;
        else {
          this.setNext(keepLast, id);
          node[at + 1] = keepLast + 1;
        }
        keepLast = id;
      }
      id = next;
    }
    this.closeChain(from, keepFirst, keepLast);
    this.closeChain(to, moveFirst, moveLast);
    if (++this.split === low) {
      this.low = low << 1;
      this.split = 0;
    }
  }

  /** Makes `first`..`last` (linked forward already) the chain of `bucket`. */
  private closeChain(bucket: number, first: number, last: number): void {
    this.setHead(bucket, first);
    if (first < 0) return;
    this.setNext(last, -1);
    this.setPrev(first, -1);
  }

  /** Appends the chain of the last bucket to its twin's and drops the last bucket. */
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
      const first = this.head(into) - 1;
      if (first >= 0) {
        let tail = moving;
        for (let next = this.after(tail); next >= 0; next = this.after(tail)) tail = next;
        this.setNext(tail, first);
        this.setPrev(first, tail);
      }
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
    this.node(id)[(id & PIECE_MASK) * 3] = next + 1;
  }

  private setPrev(id: number, prev: number): void {
    this.node(id)[(id & PIECE_MASK) * 3 + 1] = prev + 1;
  }

  private link(id: number, bucket: number): void {
    const heads = this.heads.pieces[bucket >>> PIECE_BITS]!;
    const slot = bucket & PIECE_MASK;
    const head = heads[slot]! - 1;
    const node = this.node(id);
    const at = (id & PIECE_MASK) * 3;
    node[at] = head + 1;
    node[at + 1] = 0;
    if (head >= 0) this.node(head)[(head & PIECE_MASK) * 3 + 1] = id + 1;
    heads[slot] = id + 1;
  }

  private unlink(id: number, bucket: number): void {
    const node = this.node(id);
    const at = (id & PIECE_MASK) * 3;
    const after = node[at]! - 1;
    const before = node[at + 1]! - 1;
    if (before < 0) this.setHead(bucket, after);
    else this.setNext(before, after);
    if (after >= 0) this.setPrev(after, before);
  }
}
