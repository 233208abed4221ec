import { OrderedTokens } from './ordered-tokens.js';
import type { SortedIds } from './postings.js';
import { keyOf, prefixKeyEnd } from './sort-keys.js';
import { TokenStore } from './token-store.js';

/** A token's value in the store from here up is a postings slot (file ids + 1 stay below 2^26 + 1). */
const POSTINGS = 2 ** 31;
/**
 * New tokens held back from the order at most: a batch is merged chunk by chunk (see
 * `OrderedTokens.insertMany`), which costs a few milliseconds at this size. A batch is merged in the task
 * that adds its last token, and a batch of tokens that share their first seven units is sorted by
 * comparing them: among a million tokens written that way the longest flush took 35 ms at 4,096, 65 at
 * 8,192 and 142 at 16,384. Larger batches save less than 0.1 µs a token otherwise (a million tokens of 12
 * hexadecimal digits: the order's share 521-625 ms at 4,096, 437-507 at 16,384 to 65,536).
 */
const PENDING_MAX = 4096;
/** Tokens moved down per release while the handles in use are sparse (see `TokenStore.sparse`). */
const MOVES_PER_RELEASE = 2;

/**
 * The files holding a token held by more than one file: a sorted list of file ids (see `postings.ts`), or
 * for a token held by a large share of the files a bitmap with one bit per file id. A token held by one
 * file has no such object: its file id is a number in the dictionary's columns.
 */
export interface TokenPostings extends SortedIds {
  /**
   * For a token held by a large share of the files: one bit per file id, exact (set on add, cleared on
   * removal), so intersections are word-wise ANDs; the list is empty meanwhile. Maintained by `TokenIndex`.
   */
  bits?: Uint32Array;
  /** Files that hold the token now. */
  live: number;
  /** The last update that touched the token (`TokenIndex` uses it to skip a name's repeated tokens). */
  mark: number;
}

/** The files of one token as a walk shows them: its postings, or a list of its one file. */
export interface PostingsView extends SortedIds {
  readonly bits?: Uint32Array;
  readonly live: number;
}

export interface TokenDictionaryOptions {
  /** Goes into every token's hash (see `hashToken`); an index passes its own random seed. Default 0. */
  seed?: number;
  /** A chunk splits above this many tokens; an insert shifts at most this many slots. Default 2048. */
  chunkMaxTokens?: number;
  /**
   * A chunk smaller than this joins a neighbour, so mass removals leave no trail of tiny chunks. Default
   * 128; keep it well under half of `chunkMaxTokens`.
   */
  chunkMinTokens?: number;
}

/**
 * Every distinct token with the files holding it, both by exact token and in code-unit order for prefix
 * lookups. Tokens are handles into a `TokenStore` (typed arrays, nothing per token on V8's heap); a token
 * held by one file keeps that file's id in the store's value column (id + 1), and only a token held by
 * more gets a `TokenPostings` object. Most distinct tokens are held by one file, and when every name holds
 * a word of its own there are as many of them as files.
 *
 * The order is kept by `OrderedTokens` (sorted chunks of handles with their sort keys). A token leaves the
 * dictionary as soon as no file holds it.
 */
export class TokenDictionary {
  private readonly store: TokenStore;
  /**
   * The postings objects, in slots (a freed one is reused first); a token's value in the store is
   * `POSTINGS` + its slot, or its one file's id + 1, or 0 while it has no file.
   */
  private lists: Array<TokenPostings | undefined> = [];
  private freeSlots: number[] = [];
  private readonly order: OrderedTokens;
  /** New tokens not yet in the order: they join it in a batch (`flush`) before it is read or changed. */
  private pending: number[] = [];
  /** What a walk shows for a token of one file (the same object each time: valid during the call only). */
  private readonly one = { ids: [0], count: 1, bits: undefined, live: 1 };

  constructor(options: TokenDictionaryOptions = {}) {
    this.store = new TokenStore(options.seed);
    const chunkMax = Math.max(2, options.chunkMaxTokens ?? 2048);
    this.order = new OrderedTokens(
      this.store,
      chunkMax,
      Math.min(options.chunkMinTokens ?? 128, chunkMax >> 1),
    );
  }

  get size(): number {
    return this.store.size;
  }

  /** No handle at or above this is in use (the columns hold room for about as many). */
  get handleLimit(): number {
    return this.store.handleLimit;
  }

  /** The handle of `token`, or -1. */
  find(token: string): number {
    return this.store.find(token);
  }

  /** The handle of `token`, added (held by no file) when the token is new. */
  acquire(token: string): number {
    const hash = this.store.hash(token);
    const found = this.store.find(token, hash);
    if (found >= 0) return found;
    const h = this.store.add(token, hash);
    this.hold(h);
    return h;
  }

  /** `acquire` of the lowercased ASCII token `bytes[from, to)`, whose `hashToken` with the seed is `hash`. */
  acquireAscii(bytes: Uint8Array, from: number, to: number, hash: number): number {
    const found = this.store.findAscii(bytes, from, to, hash);
    if (found >= 0) return found;
    const h = this.store.addAscii(bytes, from, to, hash);
    this.hold(h);
    return h;
  }

  /**
   * Drops a token no file holds any more. Other tokens' handles may change (the top ones move down once
   * the handles in use are sparse): a caller holds no handle across a release.
   */
  release(h: number): void {
    if (!this.store.inUse(h)) return;
    this.flush();
    this.order.remove(h);
    this.freeSlot(h);
    this.store.release(h);
    for (let moves = 0; moves < MOVES_PER_RELEASE && this.store.sparse; moves++) {
      const from = this.store.topInUse();
      if (from >= 0) this.moveDown(from);
    }
  }

  tokenOf(h: number): string {
    return this.store.tokenOf(h);
  }

  /** The one file holding token `h` when it has no postings object, else -1 (also for a token of no file). */
  single(h: number): number {
    const value = this.store.value(h);
    return value < POSTINGS ? value - 1 : -1;
  }

  /** Token `h` is held by file `id` alone (its postings object, if any, is dropped). */
  setSingle(h: number, id: number): void {
    this.freeSlot(h);
    this.store.setValue(h, id + 1);
  }

  postings(h: number): TokenPostings | undefined {
    const value = this.store.value(h);
    return value >= POSTINGS ? this.lists[value - POSTINGS] : undefined;
  }

  /** Token `h` is held by the files of `postings`. */
  setPostings(h: number, postings: TokenPostings): void {
    const value = this.store.value(h);
    if (value >= POSTINGS) {
      this.lists[value - POSTINGS] = postings;
      return;
    }
    const slot = this.freeSlots.pop() ?? this.lists.length;
    this.lists[slot] = postings;
    this.store.setValue(h, POSTINGS + slot);
  }

  /** The files of `token` as a copy to keep (tests and diagnostics), or undefined when it is not held. */
  get(token: string): PostingsView | undefined {
    const h = this.store.find(token);
    return h < 0 ? undefined : this.copyOf(h);
  }

  /**
   * Calls `visit` with the files of each token starting with `prefix`, in code-unit order, until it returns
   * false. The view is only valid during the call; the dictionary must not change during the walk.
   */
  forEachWithPrefix(prefix: string, visit: (entry: PostingsView, h: number) => boolean): void {
    this.flush();
    // A short prefix is told by the sort keys beside the handles alone, with no token's units read.
    const end = prefixKeyEnd(prefix);
    if (end !== undefined)
      this.order.forEachFrom(prefix, keyOf(prefix), (h, key) => key < end && visit(this.viewOf(h), h));
    else
      this.order.forEachFrom(
        prefix,
        keyOf(prefix),
        (h) => this.store.startsWith(h, prefix) && visit(this.viewOf(h), h),
      );
  }

  /** Calls `visit` with every postings object (tokens held by more than one file). */
  forEachPostings(visit: (postings: TokenPostings) => void): void {
    for (const postings of this.lists) if (postings !== undefined) visit(postings);
  }

  /** Every token in order (for tests and diagnostics; costs a copy of the dictionary). */
  tokens(): string[] {
    this.flush();
    return this.order.handles().map((h) => this.store.tokenOf(h));
  }

  /** Throws when the ordered view disagrees with itself or with the store; for tests. */
  checkConsistency(): void {
    this.store.checkConsistency();
    this.flush();
    this.order.checkConsistency();
    const handles = this.order.handles();
    handles.forEach((h, i) => {
      const token = this.store.tokenOf(h);
      const previous = i > 0 ? handles[i - 1]! : -1;
      if (previous >= 0 && !(this.store.compare(previous, h) < 0 && this.store.tokenOf(previous) < token))
        throw new Error(`${token} out of order`);
      const value = this.store.value(h);
      if (value >= POSTINGS && this.lists[value - POSTINGS] === undefined)
        throw new Error(`${token} has an empty postings slot`);
    });
    if (handles.length !== this.size) throw new Error('sizes differ');
  }

  private viewOf(h: number): PostingsView {
    const value = this.store.value(h);
    if (value >= POSTINGS) return this.lists[value - POSTINGS]!;
    const id = value - 1;
    const { one } = this;
    one.ids[0] = id;
    one.count = id < 0 ? 0 : 1;
    one.live = one.count;
    return one;
  }

  private copyOf(h: number): PostingsView {
    const view = this.viewOf(h);
    return view.bits !== undefined
      ? { ids: [], count: 0, bits: view.bits, live: view.live }
      : { ids: Array.from(view.ids.slice(0, view.count)), count: view.count, live: view.live };
  }

  /** Token `from` takes the lowest free handle, in the order and in the store (its value with it). */
  private moveDown(from: number): void {
    const to = this.store.lowestFree();
    this.order.rename(from, to);
    this.store.moveDown(from, to);
  }

  /** New token `h` waits to join the order with others (see `PENDING_MAX`). */
  private hold(h: number): void {
    this.pending.push(h);
    if (this.pending.length >= PENDING_MAX) this.flush();
  }

  /** The pending new tokens join the order. */
  private flush(): void {
    if (this.pending.length === 0) return;
    const pending = this.pending;
    this.pending = [];
    this.order.insertMany(pending);
  }

  /** Frees the postings slot of token `h`, if it has one; all slots free, the list starts anew. */
  private freeSlot(h: number): void {
    const value = this.store.value(h);
    if (value < POSTINGS) return;
    this.lists[value - POSTINGS] = undefined;
    this.freeSlots.push(value - POSTINGS);
    this.store.setValue(h, 0);
    if (this.freeSlots.length === this.lists.length) {
      this.lists = [];
      this.freeSlots = [];
    }
  }
}
