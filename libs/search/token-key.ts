/** A name's tokens as one text, and small helpers over token lists. */

/** Above this many tokens per name, removing duplicates goes through a Set instead of a scan. */
const SMALL_TOKEN_LIST = 16;

/**
 * `tokens` joined with NUL before each one: "\0holiday\0photos\0jpg". Empty when there is no token. A word
 * starts some token exactly when "\0" + word occurs in the key, and two names have the same tokens in the
 * same order exactly when their keys are equal.
 */
export function tokenKey(tokens: readonly string[]): string {
  if (tokens.length === 0) return '';
  // join() gives one flat string; `'\0' + joined` would keep a rope node alive.
  const parts = [''];
  for (const token of tokens) parts.push(token);
  return parts.join('\0');
}

/** The tokens of a key made by `tokenKey`. */
export function keyTokens(key: string): string[] {
  return key === '' ? [] : key.slice(1).split('\0');
}

export function distinct(tokens: string[]): string[] {
  if (tokens.length > SMALL_TOKEN_LIST) return [...new Set(tokens)];
  return tokens.filter((token, i) => tokens.indexOf(token) === i);
}

/**
 * The tokens of an ASCII text, read off its bytes `bytes[start, start + length)` (`text` is the same
 * text as a string): its runs of letters and digits, lowercased, which is what `tokenize` gives for ASCII.
 * Pushes them to `out` in order, duplicates kept, and returns `hashBytes` of the UTF-8 of their
 * `tokenKey` with `seed`, without building the key.
 */
export function asciiTokens(
  text: string,
  bytes: Uint8Array,
  start: number,
  length: number,
  seed: number,
  out: string[],
): number {
  let hash = 0x811c9dc5 ^ seed;
  const end = start + length;
  let i = start;
  while (i < end) {
    let byte = bytes[i]!;
    if (!isWordByte(byte)) {
      i++;
      continue;
    }
    const first = i;
    let upper = false;
    hash = Math.imul(hash, 0x01000193);
    do {
      if (byte >= 65 && byte <= 90) {
        upper = true;
        byte += 32;
      }
      hash = Math.imul(hash ^ byte, 0x01000193);
      byte = ++i < end ? bytes[i]! : 0;
    } while (isWordByte(byte));
    const token = text.slice(first - start, i - start);
    out.push(upper ? token.toLowerCase() : token);
  }
  return (hash ^ (hash >>> 15)) >>> 0;
}

function isWordByte(byte: number): boolean {
  return (byte >= 97 && byte <= 122) || (byte >= 48 && byte <= 57) || (byte >= 65 && byte <= 90);
}
