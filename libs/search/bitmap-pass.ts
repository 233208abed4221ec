import type { SortedIds } from './postings.js';

/*
 * The inner loops of the word search over bitmaps (`Uint32Array`, bit `id` in word `id >>> 5`): a fused AND
 * pass over up to three bitmaps, and a posting list filtered by bitmap checks. Written over locals, one
 * function per count of bitmaps: V8 compiles a loop over an array of typed arrays many times slower.
 */

/** Work done by one search, against its budget (see `WordSearch`). */
export interface Work {
  used: number;
  readonly budget: number;
}

/**
 * `andEachBit` over as many words as the budget has units left, one unit a word; sets `state.partial` when
 * the budget, not the end of the id space or the visitor's stop, ended it.
 */
export function andWithin(
  sets: readonly Uint32Array[],
  words: number,
  work: Work,
  visit: (id: number) => boolean,
  state: { partial: boolean; stop: boolean },
): void {
  const limit = Math.max(0, Math.min(words, work.budget - work.used));
  const looked = andEachBit(sets, limit, visit);
  work.used += looked;
  if (looked === limit && limit < words && !state.stop) state.partial = true;
}

/**
 * Calls `visit(id)` for each bit set in each of the first three of `sets` (at least one) over words
 * [0, words), in increasing order, until it returns false; returns the number of words looked at. One pass,
 * no bitmap written: a word of the id space costs one read when the first set has it 0, so the first set
 * should be the sparsest. Sets past the third are the visitor's to check. A loop per count of sets, over
 * locals: V8 compiles an inner loop over an array of typed arrays many times slower.
 */
function andEachBit(sets: readonly Uint32Array[], words: number, visit: (id: number) => boolean): number {
  const [a, b, c] = sets;
  if (b === undefined) return and1(a!, words, visit);
  if (c === undefined) return and2(a!, b, words, visit);
  return and3(a!, b, c, words, visit);
}

function and1(a: Uint32Array, words: number, visit: (id: number) => boolean): number {
  for (let w = 0; w < words; w++) {
    const word = a[w]!;
    if (word !== 0 && !visitBits(word, w, visit)) return w + 1;
  }
  return words;
}

function and2(a: Uint32Array, b: Uint32Array, words: number, visit: (id: number) => boolean): number {
  for (let w = 0; w < words; w++) {
    let word = a[w]!;
    if (word === 0) continue;
    word &= b[w]!;
    if (word !== 0 && !visitBits(word, w, visit)) return w + 1;
  }
  return words;
}

function and3(
  a: Uint32Array,
  b: Uint32Array,
  c: Uint32Array,
  words: number,
  visit: (id: number) => boolean,
): number {
  for (let w = 0; w < words; w++) {
    let word = a[w]!;
    if (word === 0) continue;
    word &= b[w]!;
    if (word === 0) continue;
    word &= c[w]!;
    if (word !== 0 && !visitBits(word, w, visit)) return w + 1;
  }
  return words;
}

/** Visits the set bits of word `w` of a bitmap (its value `word`), lowest first; false when `visit` stopped. */
function visitBits(word: number, w: number, visit: (id: number) => boolean): boolean {
  let rest = word;
  while (rest !== 0) {
    const low = rest & -rest;
    if (!visit((w << 5) | (31 - Math.clz32(low)))) return false;
    rest ^= low;
  }
  return true;
}

/**
 * Visits the ids of a posting list that pass up to two bitmap checks, until `visit` returns false; tests
 * them here, in a loop over locals, because most candidates fail them. Charges one unit to `work` for each
 * id that fails (`visit` charges the others) and stops once the budget is spent.
 */
export function visitPassing(
  list: SortedIds,
  first: Uint32Array | undefined,
  second: Uint32Array | undefined,
  work: Work,
  visit: (id: number) => boolean,
): void {
  const { ids, count } = list;
  for (let i = 0; i < count; i++) {
    const id = ids[i]!;
    const w = id >>> 5;
    const bit = 1 << (id & 31);
    if (
      (first !== undefined && (first[w]! & bit) === 0) ||
      (second !== undefined && (second[w]! & bit) === 0)
    ) {
      if (++work.used > work.budget) return;
      continue;
    }
    if (!visit(id)) return;
  }
}
