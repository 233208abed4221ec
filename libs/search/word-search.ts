import { uint32s } from './big-arrays.js';
import { setBit, wordsFor } from './bitmap.js';
import { andWithin, visitPassing, type Work } from './bitmap-pass.js';
import { utf8 } from './bytes.js';
import type { TokenDictionary } from './dictionary.js';
import { distinct } from './token-key.js';

/**
 * Work units charged for each token a prefix walk visits: a token costs a read of its own columns at
 * random (about 100-150 ns among a million tokens of their own), where a posting or a bitmap word costs a
 * nanosecond to a few. Charged one unit, three one-letter words among a million such tokens spent 39 ms
 * of a search's 250,000 units on walks; charged four, 3.6 ms (and such a search stops sooner, partial).
 */
const TOKEN_VISIT_UNITS = 4;
/** A driver word with at most this many candidate files is scanned rather than intersected as bitmaps. */
const SCAN_MAX_CANDIDATES = 1024;

/** How a candidate file is checked for the words other than the driver. */
interface Checks {
  /** Bitmaps the file's bit must be set in (words that start a single token with a bitmap). */
  readonly bits: Uint32Array[];
  /** Token-key needles (see `needle`) of the other words. */
  readonly needles: Uint8Array[];
}

/** One search under way: its limit, what it found, its mark epoch and its work. */
interface Pass {
  readonly max: number;
  readonly found: number[];
  readonly epoch: number;
  readonly work: Work;
}

/** What the word search needs to know of the files beyond the dictionary. */
export interface SearchFiles {
  /** Ids in use or free below the top. */
  readonly idCount: number;
  /** Whether file `id` may be a result (its owner is not leaving). */
  visible(id: number): boolean;
  /** Whether a token of file `id`'s name starts with the word whose UTF-8 bytes follow a 0 byte in `needle`. */
  hasTokenStarting(id: number, needle: Uint8Array): boolean;
  /** Calls `visit` with each file whose name has exactly the tokens `words`, until it returns false. */
  forEachExact(words: readonly string[], visit: (id: number) => boolean): void;
}

/**
 * The word search of `NetworkIndex` (see its class comment for what matches and what it costs), over the
 * index's dictionary and files. Holds its own scratch marks and bitmaps.
 */
export class WordSearch {
  /** Scratch marks for one search at a time: `marks[id] === epoch` means "seen in this search". */
  private marks: Uint32Array = uint32s(1024);
  private epoch = 0;
  private scratchA: Uint32Array = uint32s(wordsFor(1024));
  private scratchB: Uint32Array = uint32s(wordsFor(1024));

  constructor(
    private readonly dictionary: TokenDictionary,
    private readonly files: SearchFiles,
  ) {}

  /** The file columns now have room for `capacity` ids. */
  resize(capacity: number): void {
    this.marks = uint32s(capacity);
    this.epoch = 0;
    this.scratchA = uint32s(wordsFor(capacity));
    this.scratchB = uint32s(wordsFor(capacity));
  }

  /** Pushes matching file ids (up to max + 1) to `found`; says how many of them, first, are exact. */
  find(words: string[], max: number, found: number[], work: Work): { exactCount: number; partial: boolean } {
    if (words.length === 0) return { exactCount: 0, partial: false };
    const epoch = this.nextEpoch();
    const { marks } = this;
    this.files.forEachExact(words, (id) => {
      if (!this.files.visible(id)) return true;
      marks[id] = epoch;
      found.push(id);
      return found.length <= max;
    });
    const exactCount = found.length;
    if (found.length > max) return { exactCount, partial: false };

    // A word that starts another query word is implied by it: whatever token the longer one starts, the
    // shorter one starts too.
    const unique = distinct(words);
    const needed = unique.filter((word) => !unique.some((other) => other !== word && other.startsWith(word)));

    // The driver is the word with the fewest candidate files; counting stops at the best count so far, so
    // estimating a short, common word costs no more than the selective word already found. Longer words
    // go first because they tend to be the selective ones.
    needed.sort((a, b) => b.length - a.length);
    const counts = new Map<string, number>();
    let driver = needed[0]!;
    let best = Number.POSITIVE_INFINITY;
    if (needed.length > 1) {
      for (const word of needed) {
        const count = this.countWithPrefix(word, best, work);
        counts.set(word, count);
        if (count < best) {
          best = count;
          driver = word;
        }
        if (best === 0) return { exactCount, partial: false };
      }
    }
    const others = needed.filter((word) => word !== driver);
    others.sort((a, b) => counts.get(a)! - counts.get(b)!);
    const pass: Pass = { max, found, epoch, work };
    const checks = this.checksFor(others, work);
    let partial: boolean | undefined;
    if (others.length > 0 && best > SCAN_MAX_CANDIDATES && !this.scanIsCheaper(driver, best, checks, work)) {
      partial = this.intersect(driver, others, pass);
    }
    partial ??= this.scanDriver(driver, checks, pass);
    return { exactCount, partial };
  }

  /** Live files over all tokens starting with `prefix`, counted only up to `cap`. */
  private countWithPrefix(prefix: string, cap: number, work: Work): number {
    let total = 0;
    this.dictionary.forEachWithPrefix(prefix, (entry) => {
      work.used += TOKEN_VISIT_UNITS;
      total += entry.live;
      return total < cap && work.used < work.budget;
    });
    return total;
  }

  /**
   * A visitor of candidate files that charges one unit each and stops at the budget or the limit. A file is
   * skipped when a bitmap check fails, when already seen or leaving; it is kept when the remaining words
   * are found in its token key. Written as one closure over locals: it runs once per candidate.
   */
  private visitor(
    checks: Checks,
    { max, found, epoch, work }: Pass,
  ): { visit: (id: number) => boolean; state: { partial: boolean; stop: boolean } } {
    const state = { partial: false, stop: false };
    const { marks, files } = this;
    const { bits, needles } = checks;
    const bitCount = bits.length;
    const needleCount = needles.length;
    const visit = (id: number): boolean => {
      if (++work.used > work.budget) {
        state.partial = true;
        return false;
      }
      // A bitmap check does not depend on which driver token led here: testing it before the mark is exact.
      const word = id >>> 5;
      const bit = 1 << (id & 31);
      for (let j = 0; j < bitCount; j++) if ((bits[j]![word]! & bit) === 0) return true;
      if (marks[id] === epoch) return true;
      marks[id] = epoch;
      if (!files.visible(id)) return true;
      for (let j = 0; j < needleCount; j++) if (!files.hasTokenStarting(id, needles[j]!)) return true;
      found.push(id);
      if (found.length <= max) return true;
      state.stop = true;
      return false;
    };
    return { visit, state };
  }

  /**
   * How each of `words` is checked on a candidate file: a bit test when the word starts a single token that
   * has a bitmap (a few nanoseconds), else a search of the file's token key.
   */
  private checksFor(words: readonly string[], work: Work): Checks {
    const checks: Checks = { bits: [], needles: [] };
    for (const word of words) {
      const single = this.singleBitmap(word, work);
      if (single !== undefined) checks.bits.push(single);
      else checks.needles.push(needle(word));
    }
    return checks;
  }

  /**
   * Whether checking each of the driver's `candidates` files with bit tests costs less than intersecting
   * bitmaps: when every other word is a bitmap check and the driver has no bitmap of its own, building one
   * would set a bit per candidate anyway, plus a pass over the id space; up to the cost that building is
   * allowed (two words of work per word of the id space), scanning wins.
   */
  private scanIsCheaper(driver: string, candidates: number, checks: Checks, work: Work): boolean {
    if (checks.needles.length > 0) return false;
    if (candidates > 2 * wordsFor(this.files.idCount)) return false;
    return this.singleBitmap(driver, work) === undefined;
  }

  /** Checks the driver's files one by one; returns whether the budget cut it short. */
  private scanDriver(driver: string, checks: Checks, pass: Pass): boolean {
    const { work } = pass;
    const words = wordsFor(this.files.idCount);
    const { visit, state } = this.visitor(checks, pass);
    this.dictionary.forEachWithPrefix(driver, (entry) => {
      work.used += TOKEN_VISIT_UNITS;
      if (entry.bits !== undefined) {
        // The bitmap checks are ANDed in word by word: only the files passing them are visited.
        andWithin([entry.bits, ...checks.bits], words, work, visit, state);
      } else {
        const [first, second] = checks.bits;
        visitPassing(entry, first, second, work, visit);
      }
      if (work.used > work.budget) state.partial = true;
      return !state.stop && !state.partial;
    });
    return state.partial && !state.stop;
  }

  /**
   * Intersects the candidate sets of the driver and of the other words as bitmaps, in one pass over the id
   * space that ANDs them word by word: a word that starts a single token with a bitmap takes part as that
   * bitmap; the others are built (OR of their tokens) when cheap enough, all of them ANDed into one scratch
   * bitmap; the words left are checked per file on what remains. Returns whether the budget cut it short,
   * or undefined when no word is cheap enough to take part as a bitmap.
   */
  private intersect(driver: string, others: readonly string[], pass: Pass): boolean | undefined {
    const { work } = pass;
    const words = wordsFor(this.files.idCount);
    const sets: Uint32Array[] = [];
    const verify: Uint8Array[] = [];
    let built = false;
    // In order of fewer candidates first: the pass skips a word of the id space at the first set that is 0.
    for (const word of [driver, ...others]) {
      const single = this.singleBitmap(word, work);
      if (single !== undefined) {
        sets.push(single);
        continue;
      }
      const out = built ? this.scratchB : this.scratchA;
      if (work.used + 3 * words < work.budget && this.buildCandidates(word, out, words, 2 * words, work)) {
        if (built) {
          const acc = this.scratchA;
          for (let w = 0; w < words; w++) acc[w]! &= out[w]!;
          work.used += words;
        } else {
          built = true;
        }
      } else verify.push(needle(word));
    }
    // The built intersection is the most selective set: it goes first.
    if (built) sets.unshift(this.scratchA);
    if (sets.length === 0) return undefined;
    const { visit, state } = this.visitor({ bits: sets.slice(3), needles: verify }, pass);
    andWithin(sets, words, work, visit, state);
    return state.partial && !state.stop;
  }

  /** The bitmap of `word` when the word starts exactly one token and that token has a bitmap. */
  private singleBitmap(word: string, work: Work): Uint32Array | undefined {
    let single: Uint32Array | undefined;
    let count = 0;
    this.dictionary.forEachWithPrefix(word, (entry) => {
      work.used += TOKEN_VISIT_UNITS;
      single = entry.bits;
      return ++count < 2;
    });
    return count === 1 ? single : undefined;
  }

  /**
   * Sets in `out` (its first `words` words) the files holding a token that starts with `word`. Gives up,
   * returning false, past `cost` units of work or the budget.
   */
  private buildCandidates(word: string, out: Uint32Array, words: number, cost: number, work: Work): boolean {
    out.fill(0, 0, words);
    const limit = Math.min(work.budget, work.used + cost + words);
    work.used += words;
    let ok = true;
    this.dictionary.forEachWithPrefix(word, (entry) => {
      work.used += TOKEN_VISIT_UNITS;
      const bits = entry.bits;
      if (bits !== undefined) {
        for (let w = 0; w < words; w++) out[w]! |= bits[w]!;
        work.used += words;
      } else {
        const { ids, count } = entry;
        for (let i = 0; i < count; i++) setBit(out, ids[i]!);
        work.used += count;
      }
      ok = work.used <= limit;
      return ok;
    });
    return ok;
  }

  private nextEpoch(): number {
    if (this.epoch === 0xffffffff) {
      this.marks.fill(0);
      this.epoch = 0;
    }
    return ++this.epoch;
  }
}

/** The bytes a file's token key holds where a token starts with `word`: a 0 byte, then the word. */
function needle(word: string): Uint8Array {
  return utf8(`\0${word}`);
}
