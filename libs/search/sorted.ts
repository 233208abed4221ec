/**
 * First position in `items` whose key is >= `key` (code-unit order), or `items.length`. `items` must be
 * sorted by `keyOf` in that order: a binary search, O(log n) keys read.
 */
export function lowerBoundBy<T>(items: readonly T[], key: string, keyOf: (item: T) => string): number {
  let low = 0;
  let high = items.length;
  while (low < high) {
    const mid = (low + high) >>> 1;
    if (keyOf(items[mid]!) < key) low = mid + 1;
    else high = mid;
  }
  return low;
}
