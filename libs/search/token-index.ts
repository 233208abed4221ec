import { uint32s } from './big-arrays.js';
import { clearBit, forEachBit, resized, setBit, wordsFor } from './bitmap.js';
import { TokenDictionary, type TokenPostings } from './dictionary.js';
import { fromIds, insertId, removeId } from './postings.js';
import { scanAsciiTokens } from './token-key.js';

/** Marks stay small integers. */
const MAX_MARK = 2 ** 30 - 1;
/**
 * Files added between two bitmaps grown ahead of the next doubling of the id space (see TokenIndex): a
 * slice looks at the clock every 64 files, and growing one bitmap (a new mapping, its pages touched) takes
 * up to half a millisecond on a slow machine.
 */
const FILES_PER_GROWTH = 32;

/**
 * The inverted index: for every token, the files holding it, as a sorted id list or, for a token held by a
 * large share of the files, a bitmap over the id space (`capacity` bits). A token gets its bitmap at
 * `bitmapMinFiles` files and at least 1/64 of the capacity (there the bitmap costs at most twice the list
 * and makes intersections word-wise ANDs), and goes back to a list below a quarter of that.
 *
 * Every bitmap covers at least the id space's capacity (readers scan up to the id count without bounds
 * checks). When the capacity doubles, the bitmaps already cover the new one: after each doubling they are
 * grown ahead to the next, one every `FILES_PER_GROWTH` files added, instead of all of them at once when
 * it comes (81 bitmaps at a million files, 20-27 ms in one task on a slow machine). The price is bitmaps
 * one doubling larger than needed while the id space grows.
 */
export class TokenIndex {
  readonly dictionary: TokenDictionary;
  private readonly bitmapTokens = new Set<TokenPostings>();
  /** Words every bitmap has at least: the id space's capacity. */
  private bitmapWords = 0;
  /** Words new bitmaps get, and those in `behind` are grown to: the next capacity once the space grew. */
  private aheadWords = 0;
  /** Bitmaps not yet grown to `aheadWords` (some may be lists again, or released, by their turn). */
  private behind: TokenPostings[] = [];
  /** Files still to add before the next bitmap of `behind` is grown. */
  private untilGrowth = FILES_PER_GROWTH;
  private mark = 0;

  /** `seed` goes into every token's hash (an index passes its own random one). */
  constructor(
    private readonly bitmapMinFiles: number,
    private readonly seed = 0,
  ) {
    this.dictionary = new TokenDictionary({ seed });
  }

  get bitmapCount(): number {
    return this.bitmapTokens.size;
  }

  /** Ids held in lists (not bitmaps), over all tokens. */
  get listedIds(): number {
    let total = 0;
    this.dictionary.forEachWithPrefix('', (entry) => {
      total += entry.count;
      return true;
    });
    return total;
  }

  /** Adds file `id` under each of `tokens` (repeats are skipped); `capacity` is the id space's. */
  add(id: number, tokens: readonly string[], capacity: number): void {
    if (this.behind.length > 0 && --this.untilGrowth <= 0) this.growAhead();
    const mark = this.nextMark();
    for (let i = 0; i < tokens.length; i++)
      this.addTo(this.dictionary.acquire(tokens[i]!), id, mark, capacity);
  }

  /**
   * `add(id, tokens, capacity)` with the tokens of an ASCII text, read off its bytes as `asciiTokens` does
   * (no string is made for a token), returning what `asciiTokens` returns with `keySeed`: the hash of the
   * text's token key.
   */
  addAscii(
    id: number,
    bytes: Uint8Array,
    start: number,
    length: number,
    keySeed: number,
    capacity: number,
  ): number {
    if (this.behind.length > 0 && --this.untilGrowth <= 0) this.growAhead();
    const mark = this.nextMark();
    return scanAsciiTokens(
      bytes,
      start,
      length,
      keySeed,
      (first, end, _upper, tokenHash) => {
        this.addTo(this.dictionary.acquireAscii(bytes, first, end, tokenHash), id, mark, capacity);
      },
      this.seed,
    );
  }

  /**
   * Adds file `id` to token `h` unless this update (`mark`) did already. A token's first file is a number in
   * the dictionary; its second makes it a postings object.
   */
  private addTo(h: number, id: number, mark: number, capacity: number): void {
    const { dictionary } = this;
    const entry = dictionary.postings(h);
    if (entry === undefined) {
      const single = dictionary.single(h);
      if (single === id) return;
      if (single < 0) {
        dictionary.setSingle(h, id);
        return;
      }
      const postings: TokenPostings = {
        ids: single < id ? [single, id] : [id, single],
        count: 2,
        live: 2,
        mark,
      };
      dictionary.setPostings(h, postings);
      if (postings.live >= this.threshold(capacity)) this.toBitmap(postings, capacity);
      return;
    }
    if (entry.mark === mark) return;
    entry.mark = mark;
    entry.live++;
    if (entry.bits !== undefined) setBit(entry.bits, id);
    else {
      insertId(entry, id);
      if (entry.live >= this.threshold(capacity)) this.toBitmap(entry, capacity);
    }
  }

  /** Takes file `id` out of each of `tokens` (repeats are skipped); ids in use lie below `idCount`. */
  remove(id: number, tokens: readonly string[], capacity: number, idCount: number): void {
    const { dictionary } = this;
    const listBelow = this.threshold(capacity) >> 2;
    const mark = this.nextMark();
    for (let i = 0; i < tokens.length; i++) {
      const h = dictionary.find(tokens[i]!);
      if (h < 0) continue;
      const entry = dictionary.postings(h);
      if (entry === undefined) {
        if (dictionary.single(h) === id) dictionary.release(h);
        continue;
      }
      if (entry.mark === mark) continue;
      entry.mark = mark;
      entry.live--;
      if (entry.bits !== undefined) clearBit(entry.bits, id);
      else removeId(entry, id);
      if (entry.live === 0) {
        this.bitmapTokens.delete(entry);
        dictionary.release(h);
        continue;
      }
      if (entry.bits !== undefined && entry.live < listBelow) this.toList(entry, idCount);
      if (entry.bits === undefined && entry.count === 1) dictionary.setSingle(h, entry.ids[0]!);
    }
  }

  /** A mark no entry holds: on wrapping, every entry's mark is cleared first (once per 2^30 updates). */
  private nextMark(): number {
    if (this.mark === MAX_MARK) {
      this.dictionary.forEachPostings((entry) => {
        entry.mark = 0;
      });
      this.mark = 0;
    }
    return ++this.mark;
  }

  /**
   * The id space now has room for `capacity` ids: every bitmap covers it at once (most already do, grown
   * ahead); growing, the bitmaps are then grown ahead to twice `capacity`, one every few files added; shrinking,
   * they shrink to `capacity` at once, and nothing is grown ahead until the space grows again.
   */
  resize(capacity: number): void {
    const words = wordsFor(capacity);
    const growing = words > this.bitmapWords;
    this.bitmapWords = words;
    this.aheadWords = growing ? wordsFor(2 * capacity) : words;
    this.behind = [];
    for (const entry of this.bitmapTokens) {
      const length = entry.bits!.length;
      if (length < words && this.listIfFew(entry, capacity)) continue;
      if (length < words || (!growing && length !== words)) entry.bits = resized(entry.bits!, capacity);
      if (entry.bits!.length < this.aheadWords) this.behind.push(entry);
    }
  }

  /** Bitmaps not yet grown ahead (tests). */
  get bitmapsBehind(): number {
    return this.behind.length;
  }

  /** Grows the next bitmap of `behind` to `aheadWords`, skipping those that are no longer bitmaps. */
  private growAhead(): void {
    this.untilGrowth = FILES_PER_GROWTH;
    while (this.behind.length > 0) {
      const entry = this.behind.pop()!;
      if (entry.bits === undefined || !this.bitmapTokens.has(entry) || entry.bits.length >= this.aheadWords)
        continue;
      if (!this.listIfFew(entry, this.bitmapWords * 32))
        entry.bits = resized(entry.bits, this.aheadWords * 32);
      return;
    }
  }

  /**
   * A bitmap whose token has fewer files than a quarter of the threshold at `capacity` goes back to a list
   * instead of growing. A token gets its bitmap at 1,024 files while the space is small, and peers that
   * join after it rarely bring it as many files again: at a million files 65 of the 81 bitmaps of
   * bench:swarm's names were of tokens of 2,000 files (256 KiB each, where the list is 8 KiB).
   */
  private listIfFew(entry: TokenPostings, capacity: number): boolean {
    if (entry.live >= this.threshold(capacity) >> 2) return false;
    this.toList(entry, capacity);
    return true;
  }

  private threshold(capacity: number): number {
    return Math.max(this.bitmapMinFiles, capacity >>> 6);
  }

  private toBitmap(entry: TokenPostings, capacity: number): void {
    const bits = uint32s(Math.max(wordsFor(capacity), this.aheadWords));
    for (let i = 0; i < entry.count; i++) setBit(bits, entry.ids[i]!);
    entry.bits = bits;
    entry.ids = [];
    entry.count = 0;
    this.bitmapTokens.add(entry);
  }

  private toList(entry: TokenPostings, idCount: number): void {
    const ids: number[] = [];
    forEachBit(entry.bits!, 0, Math.min(wordsFor(idCount), entry.bits!.length), (id) => {
      ids.push(id);
      return true;
    });
    const list = fromIds(ids);
    entry.ids = list.ids;
    entry.count = list.count;
    entry.bits = undefined;
    this.bitmapTokens.delete(entry);
  }
}
