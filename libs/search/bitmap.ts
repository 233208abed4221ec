import { uint32s } from './big-arrays.js';

/** Helpers for `Uint32Array` bitmaps: bit `id` lives in word `id >>> 5`. */

export function wordsFor(capacity: number): number {
  return (capacity + 31) >>> 5;
}

export function setBit(bits: Uint32Array, id: number): void {
  bits[id >>> 5]! |= 1 << (id & 31);
}

export function clearBit(bits: Uint32Array, id: number): void {
  bits[id >>> 5]! &= ~(1 << (id & 31));
}

export function hasBit(bits: Uint32Array, id: number): boolean {
  return (bits[id >>> 5]! & (1 << (id & 31))) !== 0;
}

/** A copy of `bits` with room for `capacity` ids (growing or shrinking). */
export function resized(bits: Uint32Array, capacity: number): Uint32Array {
  const out = uint32s(wordsFor(capacity));
  out.set(bits.length <= out.length ? bits : bits.subarray(0, out.length));
  return out;
}

/**
 * Calls `visit(id)` for each set bit of words [from, to) in increasing order until it returns false;
 * returns the number of words looked at.
 */
export function forEachBit(
  bits: Uint32Array,
  from: number,
  to: number,
  visit: (id: number) => boolean,
): number {
  for (let w = from; w < to; w++) {
    let word = bits[w]!;
    while (word !== 0) {
      const low = word & -word;
      if (!visit((w << 5) | (31 - Math.clz32(low)))) return w - from + 1;
      word ^= low;
    }
  }
  return to - from;
}
