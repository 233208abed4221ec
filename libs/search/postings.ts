/**
 * Sorted lists of file ids. A short list is a plain array (a typed array costs over a hundred bytes of
 * wrappers before its first element, and most tokens are rare); a longer one is a `Uint32Array`, 4 bytes an
 * id with at most half of it spare. Sorted and exact: removing a file takes its id out (a binary search and
 * a shift of at most the list), so no stale entry stays behind and no generation is needed per id.
 */
export type IdList = number[] | Uint32Array;

/** A list holding up to this many ids stays a plain array. */
export const SMALL_LIST = 32;

export interface SortedIds {
  ids: IdList;
  /** Ids in `ids` (the first `count` elements of a typed array; the length of a plain one). */
  count: number;
}

/** First position in `list[0, count)` whose id is >= `id`, or `count`. */
export function lowerBound(list: IdList, count: number, id: number): number {
  let lo = 0;
  let hi = count;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (list[mid]! < id) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/** Adds `id` (not in the list yet) in order. */
export function insertId(list: SortedIds, id: number): void {
  const { ids, count } = list;
  const at = count > 0 && ids[count - 1]! < id ? count : lowerBound(ids, count, id);
  if (Array.isArray(ids)) {
    if (count === 0) {
      // A list of one, sized to it: a push would reserve room for 17 (most tokens are held by one file).
      list.ids = [id];
      list.count = 1;
      return;
    }
    if (count < SMALL_LIST) {
      if (at === count) ids.push(id);
      else ids.splice(at, 0, id);
      list.count++;
      return;
    }
    list.ids = Uint32Array.from(ids, (value) => value);
  }
  let typed = list.ids as Uint32Array;
  if (count === typed.length) {
    const grown = new Uint32Array(Math.ceil(count * 1.5) + 1);
    grown.set(typed);
    typed = grown;
    list.ids = grown;
  }
  if (at < count) typed.copyWithin(at + 1, at, count);
  typed[at] = id;
  list.count++;
}

/** Takes `id` out; returns whether it was there. */
export function removeId(list: SortedIds, id: number): boolean {
  const { ids, count } = list;
  const at = lowerBound(ids, count, id);
  if (at === count || ids[at] !== id) return false;
  list.count--;
  if (Array.isArray(ids)) {
    ids.splice(at, 1);
    return true;
  }
  ids.copyWithin(at, at + 1, count);
  if (list.count <= SMALL_LIST >> 1) list.ids = Array.from(ids.subarray(0, list.count));
  else if (list.count * 4 < ids.length) list.ids = ids.slice(0, list.count * 2);
  return true;
}

/** The ids as a list of exactly `ids` (typed once past `SMALL_LIST`). */
export function fromIds(ids: number[]): SortedIds {
  return ids.length <= SMALL_LIST
    ? { ids, count: ids.length }
    : { ids: Uint32Array.from(ids), count: ids.length };
}
