/** Byte-level helpers for texts kept as UTF-8 in typed arrays instead of one JS string each. */

let scratch = Buffer.alloc(1024);

/**
 * `text` as UTF-8 in a shared scratch buffer, valid until the next call; returns the byte count. Bytes are
 * compared instead of strings because UTF-8 keeps both equality and prefixes (a token starts with a word
 * exactly when its bytes start with the word's bytes).
 */
export function encodeScratch(text: string): { bytes: Buffer; length: number } {
  // A UTF-16 code unit is at most 3 UTF-8 bytes (a surrogate pair, 2 units, is 4 bytes).
  if (text.length * 3 > scratch.length) scratch = Buffer.alloc(text.length * 3 * 2);
  return { bytes: scratch, length: scratch.write(text, 0, 'utf8') };
}

/** FNV-1a over `bytes[start, start + length)`, mixed by `seed`. */
export function hashBytes(bytes: Uint8Array, start: number, length: number, seed = 0): number {
  let hash = 0x811c9dc5 ^ seed;
  for (let i = start; i < start + length; i++) hash = Math.imul(hash ^ bytes[i]!, 0x01000193);
  return (hash ^ (hash >>> 15)) >>> 0;
}

/** Whether `a[aStart, aStart + length)` and `b[bStart, bStart + length)` hold the same bytes. */
export function bytesEqual(
  a: Uint8Array,
  aStart: number,
  b: Uint8Array,
  bStart: number,
  length: number,
): boolean {
  for (let i = 0; i < length; i++) if (a[aStart + i] !== b[bStart + i]) return false;
  return true;
}

/** Whether `needle` occurs in `bytes[start, start + length)`. */
export function includesBytes(bytes: Uint8Array, start: number, length: number, needle: Uint8Array): boolean {
  const last = start + length - needle.length;
  const first = needle[0];
  outer: for (let i = start; i <= last; i++) {
    if (bytes[i] !== first) continue;
    for (let j = 1; j < needle.length; j++) if (bytes[i + j] !== needle[j]) continue outer;
    return true;
  }
  return false;
}

/** Whether `bytes[start, start + length)` are all ASCII. */
export function isAscii(bytes: Uint8Array, start: number, length: number): boolean {
  for (let i = start; i < start + length; i++) if (bytes[i]! >= 0x80) return false;
  return true;
}

function isAsciiAlphanumeric(byte: number): boolean {
  return (byte >= 48 && byte <= 57) || (byte >= 65 && byte <= 90) || (byte >= 97 && byte <= 122);
}

/**
 * Whether a token of the ASCII text `bytes[start, start + length)` starts with the word whose bytes follow
 * the 0 byte in `needle`. The tokens of an ASCII text (see `tokenize`) are its runs of letters and digits,
 * lowercased, so they are read off the bytes without making a string.
 */
export function asciiHasTokenStarting(
  bytes: Uint8Array,
  start: number,
  length: number,
  needle: Uint8Array,
): boolean {
  const end = start + length;
  const wordLength = needle.length - 1;
  let inToken = false;
  for (let i = start; i < end; i++) {
    const byte = bytes[i]!;
    const alphanumeric = isAsciiAlphanumeric(byte);
    if (alphanumeric && !inToken && end - i >= wordLength) {
      let j = 0;
      for (; j < wordLength; j++) {
        const c = bytes[i + j]!;
        if ((c >= 65 && c <= 90 ? c + 32 : c) !== needle[j + 1]) break;
      }
      if (j === wordLength) return true;
    }
    inToken = alphanumeric;
  }
  return false;
}

/** The UTF-8 bytes of `text` in a buffer of their own. */
export function utf8(text: string): Buffer {
  return Buffer.from(text, 'utf8');
}
