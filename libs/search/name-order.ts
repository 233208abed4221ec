/** Compares two files (by id) by name; 0 only for the same name. */
export type CompareIds = (a: number, b: number) => number;

/** Ids a sort merges in one `IdSort.step` (a name compare each, a few µs at most for names of 1,024 characters). */
export const SORT_STEP_IDS = 32;

/**
 * Compares two names given as UTF-8, `a[aStart, aStart + aLength)` and `b[bStart, bStart + bLength)`, in the
 * order of their UTF-16 code units (JavaScript's `<`, the order `rpc.snapshot` pages promise), reading the
 * bytes where they are. The bytes must be well-formed UTF-8 (the index stores nothing else: names are
 * encoded from strings, or read with a fatal decoder).
 */
export function compareUtf16Order(
  a: Uint8Array,
  aStart: number,
  aLength: number,
  b: Uint8Array,
  bStart: number,
  bLength: number,
): number {
  const length = Math.min(aLength, bLength);
  let i = 0;
  while (i < length && a[aStart + i] === b[bStart + i]) i++;
  return i === length ? aLength - bLength : firstDifferenceOrder(a[aStart + i]!, b[bStart + i]!);
}

/**
 * The order of two names that first differ in bytes `x` and `y`. UTF-8 byte order is code-point order; it
 * parts from code-unit order only where that byte leads U+E000..U+FFFF (0xEE or 0xEF) in one name and a
 * character above U+FFFF (0xF0 to 0xF4: a surrogate pair in UTF-16, which sorts first there) in the other.
 * The names agree before it, so it starts a character in both or in neither.
 */
function firstDifferenceOrder(x: number, y: number): number {
  if (x >= 0xf0 && (y === 0xee || y === 0xef)) return -1;
  if (y >= 0xf0 && (x === 0xee || x === 0xef)) return 1;
  return x - y;
}

/**
 * One peer's file ids sorted by name, kept up to date one change at a time: a binary search by name and a
 * shift of the ids after it (a memmove), instead of a sort of every name after each change.
 */
export class NameOrder {
  private ids: Uint32Array;
  private count: number;

  /** `ids[0, count)`, sorted by name (the array is kept and grown in place). */
  constructor(ids: Uint32Array, count = ids.length) {
    this.ids = ids;
    this.count = count;
  }

  get length(): number {
    return this.count;
  }

  /** The id at `position`. */
  at(position: number): number {
    return this.ids[position]!;
  }

  /** The ids at positions [start, end), a view valid until the next change. */
  slice(start: number, end: number): Uint32Array {
    return this.ids.subarray(Math.min(start, this.count), Math.min(end, this.count));
  }

  /** The position of file `id`, or -1 when it is not in the order. */
  indexOf(id: number, compare: CompareIds): number {
    const at = this.lowerBound(id, compare);
    return at < this.count && this.ids[at] === id ? at : -1;
  }

  /** Adds file `id`, whose name no other file of the order has. */
  insert(id: number, compare: CompareIds): void {
    const at = this.lowerBound(id, compare);
    if (this.count === this.ids.length) {
      const grown = new Uint32Array(Math.max(16, this.ids.length * 2));
      grown.set(this.ids);
      this.ids = grown;
    }
    this.ids.copyWithin(at + 1, at, this.count);
    this.ids[at] = id;
    this.count++;
  }

  /** Takes file `id` out; false when it was not in the order. */
  remove(id: number, compare: CompareIds): boolean {
    const at = this.indexOf(id, compare);
    if (at < 0) return false;
    this.ids.copyWithin(at, at + 1, this.count);
    this.count--;
    if (this.ids.length > 64 && this.count * 4 < this.ids.length)
      this.ids = this.ids.slice(0, this.count * 2);
    return true;
  }

  /** Puts `id` at `position` (a file moved to another id, same name). */
  set(position: number, id: number): void {
    this.ids[position] = id;
  }

  /** The first position whose name is not below file `id`'s. */
  private lowerBound(id: number, compare: CompareIds): number {
    let low = 0;
    let high = this.count;
    while (low < high) {
      const mid = (low + high) >>> 1;
      if (compare(this.ids[mid]!, id) < 0) low = mid + 1;
      else high = mid;
    }
    return low;
  }
}

/** Where names are: the UTF-8 of the name at `address` is `chunkOf(address)[nameStart, + nameLength)`. */
export interface NameTexts {
  chunkOf(address: number): Uint8Array;
  nameStart(address: number): number;
  nameLength(address: number): number;
}

/**
 * A merge sort of file ids by name that runs a bounded step at a time (`step`), so that sorting a large
 * peer can be sliced: bottom-up, runs of 1, 2, 4… merged pass after pass between two arrays. It keeps the
 * longest common prefix (in bytes) of each name with the one before it in its run (LCP merge sort, Ng and
 * Kakehi): most merge steps are decided by those lengths alone, and a compare starts after the prefix the
 * two names are known to share, so names with a long common prefix are not read again and again (a sort
 * reads about the bytes that tell the names apart, plus a few per file and pass).
 */
export class IdSort {
  private readonly ids: Uint32Array;
  private added = 0;
  /** Each file's name (by its position in `ids`): chunk, start and length of its UTF-8. */
  private readonly chunks: Uint8Array[];
  private readonly starts: Uint32Array;
  private readonly lengths: Uint32Array;
  /** Positions in `ids`, in runs sorted by name; the common prefix of each with the one before it in its run. */
  private source: Uint32Array;
  private target: Uint32Array;
  private sourceCommon: Uint32Array;
  private targetCommon: Uint32Array;
  private width = 1;
  /** The merge under way: its two runs [left, leftEnd) and [right, rightEnd), written from `out`. */
  private merging = false;
  private start = 0;
  private left = 0;
  private leftEnd = 0;
  private right = 0;
  private rightEnd = 0;
  private out = 0;
  /** The common prefix of each run's next name with the name written last. */
  private leftCommon = 0;
  private rightCommon = 0;
  /** The common prefix found by the last `compareFrom`. */
  private common = 0;

  /** A sort of `count` files (`add` each, then `step` until `done`), whose names are in `texts`. */
  constructor(
    count: number,
    private readonly texts: NameTexts,
  ) {
    this.ids = new Uint32Array(count);
    this.chunks = new Array<Uint8Array>(count);
    this.starts = new Uint32Array(count);
    this.lengths = new Uint32Array(count);
    this.source = new Uint32Array(count);
    this.target = new Uint32Array(count);
    // Runs of one: nothing before a name in its run.
    this.sourceCommon = new Uint32Array(count);
    this.targetCommon = new Uint32Array(count);
  }

  /** Adds file `id`, whose name is at `address` (at most `count` files, all before the first `step`). */
  add(id: number, address: number): void {
    const i = this.added++;
    this.ids[i] = id;
    this.chunks[i] = this.texts.chunkOf(address);
    this.starts[i] = this.texts.nameStart(address);
    this.lengths[i] = this.texts.nameLength(address);
    this.source[i] = i;
  }

  get done(): boolean {
    return this.width >= this.added;
  }

  /** The ids added, sorted by name, once `done`. */
  sorted(): Uint32Array {
    const sorted = new Uint32Array(this.added);
    for (let i = 0; i < sorted.length; i++) sorted[i] = this.ids[this.source[i]!]!;
    return sorted;
  }

  /** Writes up to `maxIds` ids to their place in the next run (each compares two names at most). */
  step(maxIds: number = SORT_STEP_IDS): void {
    const n = this.added;
    let budget = maxIds;
    while (budget > 0 && this.width < n) {
      const { source, target, sourceCommon, targetCommon } = this;
      if (!this.merging) {
        this.left = this.start;
        this.leftEnd = Math.min(this.start + this.width, n);
        this.right = this.leftEnd;
        this.rightEnd = Math.min(this.start + 2 * this.width, n);
        this.out = this.start;
        // Nothing written yet: as if after an empty name.
        this.leftCommon = 0;
        this.rightCommon = 0;
        this.merging = true;
      }
      for (; budget > 0 && this.left < this.leftEnd && this.right < this.rightEnd; budget--) {
        let takeLeft: boolean;
        // The names written are in order: the next name that shares more with the last one comes first.
        if (this.leftCommon !== this.rightCommon) takeLeft = this.leftCommon > this.rightCommon;
        else {
          takeLeft = this.compareFrom(source[this.left]!, source[this.right]!, this.leftCommon) < 0;
          if (takeLeft) this.rightCommon = this.common;
          else this.leftCommon = this.common;
        }
        if (takeLeft) {
          target[this.out] = source[this.left]!;
          targetCommon[this.out++] = this.leftCommon;
          if (++this.left < this.leftEnd) this.leftCommon = sourceCommon[this.left]!;
        } else {
          target[this.out] = source[this.right]!;
          targetCommon[this.out++] = this.rightCommon;
          if (++this.right < this.rightEnd) this.rightCommon = sourceCommon[this.right]!;
        }
      }
      if (this.left < this.leftEnd && this.right < this.rightEnd) return;
      // One run is out: the rest of the other follows, its first name with its prefix shared with the last.
      if (this.left < this.leftEnd) this.copyRest(this.left, this.leftEnd, this.leftCommon);
      else if (this.right < this.rightEnd) this.copyRest(this.right, this.rightEnd, this.rightCommon);
      this.merging = false;
      this.start += 2 * this.width;
      if (this.start >= n) {
        this.source = target;
        this.target = source;
        this.sourceCommon = targetCommon;
        this.targetCommon = sourceCommon;
        this.width *= 2;
        this.start = 0;
      }
    }
  }

  private copyRest(from: number, end: number, common: number): void {
    this.target.set(this.source.subarray(from, end), this.out);
    this.targetCommon.set(this.sourceCommon.subarray(from, end), this.out);
    this.targetCommon[this.out] = common;
    this.out += end - from;
  }

  /** Compares the names of positions `p` and `q`, known to share their first `from` bytes; sets `common`. */
  private compareFrom(p: number, q: number, from: number): number {
    const a = this.chunks[p]!;
    const b = this.chunks[q]!;
    const aStart = this.starts[p]!;
    const bStart = this.starts[q]!;
    const aLength = this.lengths[p]!;
    const bLength = this.lengths[q]!;
    const length = Math.min(aLength, bLength);
    let i = from;
    while (i < length && a[aStart + i] === b[bStart + i]) i++;
    this.common = i;
    return i === length ? aLength - bLength : firstDifferenceOrder(a[aStart + i]!, b[bStart + i]!);
  }
}
