import { uint32s } from './big-arrays.js';
import { forEachBit, setBit, wordsFor } from './bitmap.js';
import { utf8 } from './bytes.js';
import type { TokenDictionary } from './dictionary.js';
import { distinct } from './token-key.js';

/** A driver word with at most this many candidate files is scanned rather than intersected as bitmaps. */
const SCAN_MAX_CANDIDATES = 1024;

/** Work done by one search, against its budget. */
export interface Work {
  used: number;
  readonly budget: number;
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
    let partial: boolean | undefined;
    if (others.length > 0 && best > SCAN_MAX_CANDIDATES) {
      partial = this.intersect(driver, others, { max, found, epoch, work });
    }
    partial ??= this.scanDriver(driver, others, { max, found, epoch, work });
    return { exactCount, partial };
  }

  /** Live files over all tokens starting with `prefix`, counted only up to `cap`. */
  private countWithPrefix(prefix: string, cap: number, work: Work): number {
    let total = 0;
    this.dictionary.forEachWithPrefix(prefix, (entry) => {
      work.used++;
      total += entry.live;
      return total < cap && work.used < work.budget;
    });
    return total;
  }

  /**
   * Visits a candidate file: skips it when already seen or leaving, checks the other words against its
   * token key, keeps it when all match. Returns false to stop (limit reached).
   */
  private consider(id: number, checks: readonly Uint8Array[], { max, found, epoch }: Pass): boolean {
    if (this.marks[id] === epoch) return true;
    this.marks[id] = epoch;
    if (!this.files.visible(id)) return true;
    for (const check of checks) if (!this.files.hasTokenStarting(id, check)) return true;
    found.push(id);
    return found.length <= max;
  }

  /** A visitor of candidate files that charges one unit each and stops at the budget or the limit. */
  private visitor(
    checks: readonly Uint8Array[],
    pass: Pass,
  ): { visit: (id: number) => boolean; state: { partial: boolean; stop: boolean } } {
    const state = { partial: false, stop: false };
    const { work } = pass;
    const visit = (id: number): boolean => {
      if (++work.used > work.budget) {
        state.partial = true;
        return false;
      }
      state.stop = !this.consider(id, checks, pass);
      return !state.stop;
    };
    return { visit, state };
  }

  /** Checks the driver's files one by one; returns whether the budget cut it short. */
  private scanDriver(driver: string, others: readonly string[], pass: Pass): boolean {
    const { work } = pass;
    const words = wordsFor(this.files.idCount);
    const { visit, state } = this.visitor(others.map(needle), pass);
    this.dictionary.forEachWithPrefix(driver, (entry) => {
      work.used++;
      if (entry.bits !== undefined) {
        work.used += forEachBit(entry.bits, 0, words, visit);
      } else {
        const { ids, count } = entry;
        for (let i = 0; i < count; i++) if (!visit(ids[i]!)) break;
      }
      if (work.used > work.budget) state.partial = true;
      return !state.stop && !state.partial;
    });
    return state.partial && !state.stop;
  }

  /**
   * Intersects the candidate sets of the driver and of each other word that is cheap enough to build as a
   * bitmap (at most two bitmap passes); the words left are checked per file on what remains. Returns
   * whether the budget cut it short, or undefined when the driver itself is too costly to build.
   */
  private intersect(driver: string, others: readonly string[], pass: Pass): boolean | undefined {
    const { work } = pass;
    const words = wordsFor(this.files.idCount);
    const acc = this.scratchA;
    const verify: Uint8Array[] = [];
    // The first word cheap enough to build as a bitmap starts the intersection (a prefix such as `day` may
    // start many small tokens besides `day` itself); the words passed over are checked per file.
    const all = [driver, ...others];
    let first = 0;
    while (first < all.length && !this.buildCandidates(all[first]!, acc, words, 2 * words, work)) {
      verify.push(needle(all[first]!));
      first++;
      if (work.used + 3 * words >= work.budget) return undefined;
    }
    if (first === all.length) return undefined;
    for (const word of all.slice(first + 1)) {
      const single = this.singleBitmap(word, work);
      if (single !== undefined) {
        for (let w = 0; w < words; w++) acc[w]! &= single[w]!;
        work.used += words;
        continue;
      }
      const scratch = this.scratchB;
      if (
        work.used + 3 * words < work.budget &&
        this.buildCandidates(word, scratch, words, 2 * words, work)
      ) {
        for (let w = 0; w < words; w++) acc[w]! &= scratch[w]!;
        work.used += words;
      } else verify.push(needle(word));
    }
    const { visit, state } = this.visitor(verify, pass);
    work.used += forEachBit(acc, 0, words, visit);
    return state.partial && !state.stop;
  }

  /** The bitmap of `word` when the word starts exactly one token and that token has a bitmap. */
  private singleBitmap(word: string, work: Work): Uint32Array | undefined {
    let single: Uint32Array | undefined;
    let count = 0;
    this.dictionary.forEachWithPrefix(word, (entry) => {
      work.used++;
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
      work.used++;
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
