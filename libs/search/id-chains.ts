import { PIECE_BITS, PIECE_MASK, Uint32Column } from './big-arrays.js';

/** Fewest buckets (a power of two). */
const MIN_BUCKETS = 1024;
/** Buckets merge once there are more than this many per id. */
const MAX_BUCKETS_PER_ID = 4;
/** Ids may run this many ahead of the buckets; then as many buckets split at once (see `splitBatch`). */
export const SPLIT_BATCH = 256;
/** Per bucket of a batch being split: the walk's next link, and the heads of the two chains it deals into. */
const walking = new Uint32Array(SPLIT_BATCH);
const keeping = new Uint32Array(SPLIT_BATCH);
const moving = new Uint32Array(SPLIT_BATCH);
/** Per bucket of a batch being split: whether its chain is threaded (see `THREADED`). */
const threading = new Uint8Array(SPLIT_BATCH);

/**
 * A bucket head's top bit: its chain is threaded, each id of it holding a back link. Below it the head
 * holds the first id + 1, as links do (ids stay below 2^31).
 */
const THREADED = 0x8000_0000;
const LINK = 0x7fff_ffff;
/** A deletion that walks more links than this to find its id's predecessor threads the chain. */
const LONG_WALK = 32;

/**
 * A multimap from a 32-bit hash to ids, in typed arrays: a bucket head per bucket and a chain through the
 * ids, so adding an id costs O(1) and nothing is allocated per id (a `Map` entry, or a `Set` for a shared
 * key, costs tens of bytes and garbage-collector work per id). Callers compare the full key of each id a
 * bucket yields: different keys may share a bucket.
 *
 * The bucket count follows the number of ids by linear hashing: once `add` takes the ids `SPLIT_BATCH`
 * past the buckets, that many buckets split in two (`splitBatch`), and each `delete` that leaves more than
 * `MAX_BUCKETS_PER_ID` buckets an id merges the last bucket into its twin (a few per call), so no call
 * rehashes more than `SPLIT_BATCH` buckets.
 * Buckets and the per-id links live in pieces (see `Column`): growing and shrinking add or drop pieces,
 * copying nothing. Links and heads hold an id + 1 (0 for none), so a new piece needs no filling.
 *
 * The chains are singly linked, each node (next, hash) in one place: adding an id writes only its own node
 * and its bucket's head, and a split deals a chain into two by rewriting each node it walks, where a
 * doubly linked chain also wrote each neighbour's back link (a cache miss per id at a million ids: back
 * links on every chain made a join of 1000 × 1000 spend 0.8-1.5 CPU-s more on the superpeer's main
 * thread, in four runs alternated with four without). Deleting walks its bucket to find the id's
 * predecessor: buckets hold one id on average.
 *
 * A chain is long only where a key is shared (a million copies of one empty file, a peer's 100,000 files
 * of one content), and walking it for each deletion costs n²/2 steps for n of them (100,000 took 69 s).
 * So a deletion that walks more than `LONG_WALK` links threads its chain: every id of it gets a back link
 * (one walk), and the head says so (`THREADED`). From then on, that chain's deletions cost O(1), its adds
 * write a back link, and its splits and merges keep them (a merge with an unthreaded chain drops them,
 * until a long walk threads it again). Chains never walked long pay nothing.
 */
export class IdChains {
  /** Per id: next + 1, hash. */
  private readonly nodes = new Uint32Column(2);
  /**
   * Per id of a threaded chain: previous + 1 (0: it heads the chain). Written only in threaded chains:
   * pieces of ids that are in none are never touched (their pages are not even resident).
   */
  private readonly previous = new Uint32Column();
  private readonly heads = new Uint32Column();
  /** Buckets in use: `low + split` (`low` a power of two), where buckets below `split` are split already. */
  private low = MIN_BUCKETS;
  private split = 0;
  private ids = 0;
  /** Buckets the heads have room for (`heads.limit`, kept at hand for the hot path). */
  private headRoom = 0;

  constructor(idLimit = 1) {
    this.nodes.setLimit(idLimit);
    this.previous.setLimit(idLimit);
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
    const head = heads[slot]!;
    const link = head & LINK;
    node[at] = link;
    node[at + 1] = hash;
    heads[slot] = (id + 1) | (head & THREADED);
    if ((head & THREADED) !== 0) {
      this.previous.set(id, 0);
      if (link !== 0) this.previous.set(link - 1, id + 1);
    }
    if (++this.ids > this.low + this.split + SPLIT_BATCH) this.splitBatch();
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
    this.previous.setLimit(Math.max(1, limit));
  }

  /** Whether `hash`'s chain is threaded (see `THREADED`; for tests). */
  threaded(hash: number): boolean {
    return this.headWord(this.bucket(hash)) >= THREADED;
  }

  private node(id: number): Uint32Array {
    return this.nodes.pieces[id >>> PIECE_BITS]!;
  }

  /** The first id + 1 of `bucket`'s chain (0: empty). */
  private head(bucket: number): number {
    return this.headWord(bucket) & LINK;
  }

  private headWord(bucket: number): number {
    return this.heads.pieces[bucket >>> PIECE_BITS]![bucket & PIECE_MASK]!;
  }

  /** Makes `id` (-1: none) the first of `bucket`'s chain, which is `threaded` or not. */
  private setHead(bucket: number, id: number, threaded = this.headWord(bucket) >= THREADED): void {
    this.heads.pieces[bucket >>> PIECE_BITS]![bucket & PIECE_MASK] = (id + 1) | (threaded ? THREADED : 0);
  }

  private bucket(hash: number): number {
    const low = this.low;
    const wide = hash & ((low << 1) - 1);
    return wide < low + this.split ? wide : hash & (low - 1);
  }

  /**
   * Splits the next `SPLIT_BATCH` buckets: moves the ids of bucket `split` whose hash has the next bit set
   * into a new bucket, and so on, touching no node outside those chains (each id goes in front of its new
   * chain). The chains are walked side by side, one link of each per round: a walk reads each node before
   * it knows the next, a memory access at a random place (a cache miss at a million ids), while the reads of
   * a round do not wait on each other, so the processor fetches many at once. Measured on 2026-12-01,
   * `NetworkIndex.applyFull` of 1000 × 1000 files alone in a process: 1.26-1.50 µs a file against
   * 1.40-1.63 with one bucket split, walked alone, at each `add`. With the buckets sized ahead (no split at
   * all) the chains of a file took a third of what they took with one split per `add`.
   */
  private splitBatch(): void {
    let left = SPLIT_BATCH;
    while (left > 0) {
      const low = this.low;
      const from = this.split;
      const count = Math.min(left, low - from);
      const to = low + from;
      if (to + count > this.headRoom) {
        this.heads.setLimit(to + count);
        this.headRoom = this.heads.limit;
      }
      const mask = (low << 1) - 1;
      const pieces = this.nodes.pieces;
      const previous = this.previous;
      for (let j = 0; j < count; j++) {
        const head = this.headWord(from + j);
        walking[j] = head & LINK;
        threading[j] = head >= THREADED ? 1 : 0;
        keeping[j] = 0;
        moving[j] = 0;
      }
      for (let active = count; active > 0; ) {
        active = 0;
        for (let j = 0; j < count; j++) {
          const link = walking[j]!;
          if (link === 0) continue;
          const id = link - 1;
          const node = pieces[id >>> PIECE_BITS]!;
          const at = (id & PIECE_MASK) * 2;
          const next = node[at]!;
          // The id goes in front of its new chain; in a threaded one, the former front links back to it.
          const front = (node[at + 1]! & mask) === to + j ? moving : keeping;
          const former = front[j]!;
          node[at] = former;
          front[j] = link;
          if (threading[j] !== 0) {
            previous.set(id, 0);
            if (former !== 0) previous.set(former - 1, link);
          }
          walking[j] = next;
          if (next !== 0) active++;
        }
      }
      for (let j = 0; j < count; j++) {
        this.setHead(from + j, keeping[j]! - 1, threading[j] !== 0);
        this.setHead(to + j, moving[j]! - 1, threading[j] !== 0);
      }
      this.split += count;
      if (this.split === low) {
        this.low = low << 1;
        this.split = 0;
      }
      left -= count;
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
      // The moving chain goes in front of `into`'s: its tail is found by walking it. The merged chain is
      // threaded only if both were (else some of its ids lack back links).
      let tail = moving;
      for (let next = this.after(tail); next >= 0; next = this.after(tail)) tail = next;
      const intoFirst = this.head(into) - 1;
      const threaded = this.headWord(from) >= THREADED && this.headWord(into) >= THREADED;
      this.setNext(tail, intoFirst);
      if (threaded && intoFirst >= 0) this.previous.set(intoFirst, tail + 1);
      this.setHead(into, moving, threaded || intoFirst < 0 ? this.headWord(from) >= THREADED : false);
    }
    this.setHead(from, -1, false);
    // Give back the heads' top piece once it is empty (or halve a lone first piece).
    if (from <= this.headRoom >>> 1 || (from & PIECE_MASK) === 0) {
      this.heads.setLimit(from);
      this.headRoom = this.heads.limit;
    }
  }

  private setNext(id: number, next: number): void {
    this.node(id)[(id & PIECE_MASK) * 2] = next + 1;
  }

  /**
   * Takes `id` out of `bucket`'s chain: its predecessor found by its back link in a threaded chain, else by
   * walking the chain from the head (and a long walk threads the chain).
   */
  private unlink(id: number, bucket: number): void {
    const after = this.after(id);
    const first = this.head(bucket) - 1;
    if (this.headWord(bucket) >= THREADED) {
      const before = first === id ? -1 : this.previous.get(id) - 1;
      if (before < 0) {
        if (first !== id) throw new Error(`IdChains: id ${id} is not in its bucket`);
        this.setHead(bucket, after);
      } else {
        if (this.after(before) !== id) throw new Error(`IdChains: id ${id} is not linked where it says`);
        this.setNext(before, after);
      }
      if (after >= 0) this.previous.set(after, before + 1);
      return;
    }
    if (first === id) {
      this.setHead(bucket, after);
      return;
    }
    let previous = first;
    let steps = 0;
    for (let next = this.after(previous); next !== id; next = this.after(previous)) {
      if (next < 0) throw new Error(`IdChains: id ${id} is not in its bucket`);
      previous = next;
      steps++;
    }
    this.setNext(previous, after);
    if (steps > LONG_WALK) this.thread(bucket);
  }

  /** Gives every id of `bucket`'s chain its back link, and marks the chain threaded. */
  private thread(bucket: number): void {
    let before = -1;
    for (let id = this.head(bucket) - 1; id >= 0; id = this.after(id)) {
      this.previous.set(id, before + 1);
      before = id;
    }
    this.setHead(bucket, this.head(bucket) - 1, true);
  }
}
