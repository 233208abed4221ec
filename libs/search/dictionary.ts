import type { SortedIds } from './postings.js';
import { lowerBoundBy } from './sorted.js';

/**
 * The files holding one token: a sorted list of file ids (see `postings.ts`), or for a token held by a
 * large share of the files a bitmap with one bit per file id.
 */
export interface TokenPostings extends SortedIds {
  readonly token: string;
  /**
   * For a token held by a large share of the files: one bit per file id, exact (set on add, cleared on
   * removal), so intersections are word-wise ANDs; the list is empty meanwhile. Maintained by
   * `NetworkIndex`.
   */
  bits?: Uint32Array;
  /** Files that hold the token now. */
  live: number;
  /** The last update that touched the token (`TokenIndex` uses it to skip a name's repeated tokens). */
  mark: number;
}

/** Shards of the exact-token map (a power of two). */
const SHARDS = 256;

/** The shard that holds `token`: by a hash of its code units (FNV-1a). */
function shardOf<T>(shards: T[], token: string): T {
  let hash = 0x811c9dc5;
  for (let i = 0; i < token.length; i++) hash = Math.imul(hash ^ token.charCodeAt(i), 0x01000193);
  return shards[(hash ^ (hash >>> 16)) & (SHARDS - 1)]!;
}

export interface TokenDictionaryOptions {
  /** A chunk splits above this many tokens; an insert shifts at most this many slots. Default 2048. */
  chunkMaxTokens?: number;
  /**
   * A chunk smaller than this joins a neighbour, so mass removals leave no trail of tiny chunks. Default
   * 128; keep it well under half of `chunkMaxTokens`.
   */
  chunkMinTokens?: number;
}

/**
 * Every distinct token with its postings, both by exact token (a hash map) and in code-unit order for
 * prefix lookups. The order is kept as a list of sorted chunks (the layout of Python's
 * `sortedcontainers.SortedList`): finding a prefix is two binary searches, and adding or dropping a token
 * shifts one chunk of at most `chunkMaxTokens` slots instead of the whole dictionary, so steady inserts stay
 * cheap at millions of tokens. A token leaves the dictionary as soon as no file holds it.
 */
export class TokenDictionary {
  /**
   * By exact token, in shards: a Map rehashes all its entries in one call when it grows or shrinks past a
   * power of two (276 ms at a million tokens here, as many as files when every name holds a word of its
   * own); a shard holds a 256th of them.
   */
  private readonly shards = Array.from({ length: SHARDS }, () => new Map<string, TokenPostings>());
  private tokenCount = 0;
  private chunks: TokenPostings[][] = [];
  /** `maxes[i]` is the last (greatest) token of `chunks[i]`. */
  private maxes: string[] = [];
  private readonly chunkMax: number;
  private readonly chunkMin: number;

  constructor(options: TokenDictionaryOptions = {}) {
    this.chunkMax = Math.max(2, options.chunkMaxTokens ?? 2048);
    this.chunkMin = Math.min(options.chunkMinTokens ?? 128, this.chunkMax >> 1);
  }

  get size(): number {
    return this.tokenCount;
  }

  get(token: string): TokenPostings | undefined {
    return shardOf(this.shards, token).get(token);
  }

  /** The entry of `token`, created (with no postings) when the token is new. */
  acquire(token: string): TokenPostings {
    const shard = shardOf(this.shards, token);
    let entry = shard.get(token);
    if (entry === undefined) {
      entry = { token, ids: [], count: 0, bits: undefined, live: 0, mark: 0 };
      shard.set(token, entry);
      this.tokenCount++;
      this.insertOrdered(entry);
    }
    return entry;
  }

  /** Drops a token no file holds any more. */
  release(entry: TokenPostings): void {
    const shard = shardOf(this.shards, entry.token);
    if (shard.get(entry.token) !== entry) return;
    shard.delete(entry.token);
    this.tokenCount--;
    this.removeOrdered(entry);
  }

  /**
   * Calls `visit` for each token starting with `prefix`, in code-unit order, until it returns false. The
   * dictionary must not change during the walk.
   */
  forEachWithPrefix(prefix: string, visit: (entry: TokenPostings) => boolean): void {
    let ci = lowerBoundBy(this.maxes, prefix, maxKey);
    if (ci === this.chunks.length) return;
    let pos = lowerBoundBy(this.chunks[ci]!, prefix, tokenKey);
    for (; ci < this.chunks.length; ci++, pos = 0) {
      const chunk = this.chunks[ci]!;
      for (; pos < chunk.length; pos++) {
        const entry = chunk[pos]!;
        if (!entry.token.startsWith(prefix)) return;
        if (!visit(entry)) return;
      }
    }
  }

  /** Live files over all tokens starting with `prefix`, counted only up to `cap` (the walk stops there). */
  countWithPrefix(prefix: string, cap: number): number {
    let total = 0;
    this.forEachWithPrefix(prefix, (entry) => {
      total += entry.live;
      return total < cap;
    });
    return total;
  }

  /** Every token in order (for tests and diagnostics; costs a copy of the dictionary). */
  tokens(): string[] {
    return this.chunks.flatMap((chunk) => chunk.map((entry) => entry.token));
  }

  /** Throws when the ordered view disagrees with itself or with the map; for tests. */
  checkConsistency(): void {
    let previous: string | undefined;
    let count = 0;
    this.chunks.forEach((chunk, ci) => {
      if (chunk.length === 0 || chunk.length > this.chunkMax)
        throw new Error(`chunk ${ci} has ${chunk.length} tokens`);
      if (this.maxes[ci] !== chunk[chunk.length - 1]!.token) throw new Error(`chunk ${ci} has a wrong max`);
      for (const entry of chunk) {
        if (previous !== undefined && !(previous < entry.token))
          throw new Error(`${entry.token} out of order`);
        if (this.get(entry.token) !== entry) throw new Error(`${entry.token} not in the map`);
        previous = entry.token;
        count++;
      }
    });
    if (this.maxes.length !== this.chunks.length || count !== this.tokenCount)
      throw new Error('sizes differ');
  }

  private insertOrdered(entry: TokenPostings): void {
    const token = entry.token;
    if (this.chunks.length === 0) {
      this.chunks.push([entry]);
      this.maxes.push(token);
      return;
    }
    let ci = lowerBoundBy(this.maxes, token, maxKey);
    if (ci === this.chunks.length) ci--;
    const chunk = this.chunks[ci]!;
    chunk.splice(lowerBoundBy(chunk, token, tokenKey), 0, entry);
    this.maxes[ci] = chunk[chunk.length - 1]!.token;
    this.splitIfLarge(ci);
  }

  private removeOrdered(entry: TokenPostings): void {
    const ci = lowerBoundBy(this.maxes, entry.token, maxKey);
    const chunk = this.chunks[ci];
    if (chunk === undefined) return;
    const pos = lowerBoundBy(chunk, entry.token, tokenKey);
    if (chunk[pos] !== entry) return;
    chunk.splice(pos, 1);
    if (chunk.length === 0) {
      this.chunks.splice(ci, 1);
      this.maxes.splice(ci, 1);
      return;
    }
    this.maxes[ci] = chunk[chunk.length - 1]!.token;
    if (chunk.length < this.chunkMin && this.chunks.length > 1) {
      const left = ci + 1 < this.chunks.length ? ci : ci - 1;
      this.chunks[left] = this.chunks[left]!.concat(this.chunks[left + 1]!);
      this.chunks.splice(left + 1, 1);
      // The joined chunk ends where the right one did, so the left one's max is the one to drop.
      this.maxes.splice(left, 1);
      this.splitIfLarge(left);
    }
  }

  private splitIfLarge(ci: number): void {
    const chunk = this.chunks[ci]!;
    if (chunk.length <= this.chunkMax) return;
    const right = chunk.splice(chunk.length >> 1);
    this.chunks.splice(ci + 1, 0, right);
    this.maxes[ci] = chunk[chunk.length - 1]!.token;
    this.maxes.splice(ci + 1, 0, right[right.length - 1]!.token);
  }
}

/** Sort keys for `lowerBoundBy`: a chunk's max is a token itself; an entry sorts by its token. */
const maxKey = (max: string): string => max;
const tokenKey = (entry: TokenPostings): string => entry.token;
