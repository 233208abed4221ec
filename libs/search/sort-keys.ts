/** Code units a sort key holds, 7 bits each (49 bits: exact in a double). */
const KEY_UNITS = 7;

/**
 * A token's sort key: its first `KEY_UNITS` code units as digits in base 128, ordered as the tokens are
 * wherever two keys differ, so that most comparisons of a binary search read no token units. A digit is 0
 * past the token's end, the unit + 1 for units below 126, and 127 for any other, after which every digit is
 * 0 (two tokens with equal keys are compared unit by unit). Seven units, not three: tokens often share a
 * long prefix (a zero-padded counter, a date).
 */
export function keyOf(token: string): number {
  return keyOfUnits((i) => token.charCodeAt(i), token.length);
}

/**
 * The end of the keys of the tokens that start with `prefix`: those tokens are exactly the ones whose key
 * lies in [keyOf(prefix), end), when the prefix has at most `KEY_UNITS` units, all below 126 (the digits
 * of its key are then its units); undefined otherwise (the tokens' units must be read).
 */
export function prefixKeyEnd(prefix: string): number | undefined {
  if (prefix.length > KEY_UNITS) return undefined;
  for (let i = 0; i < prefix.length; i++) if (prefix.charCodeAt(i) >= 126) return undefined;
  return keyOf(prefix) + 128 ** (KEY_UNITS - prefix.length);
}

/** `keyOf` of the `length` units that `unitAt` gives. */
export function keyOfUnits(unitAt: (i: number) => number, length: number): number {
  let key = 0;
  let escaped = false;
  for (let i = 0; i < KEY_UNITS; i++) {
    let digit = 0;
    if (i < length && !escaped) {
      const unit = unitAt(i);
      digit = unit < 126 ? unit + 1 : 127;
      escaped = digit === 127;
    }
    key = key * 128 + digit;
  }
  return key;
}
