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

export const FNV_OFFSET = 0x811c9dc5;
export const FNV_PRIME = 0x01000193;

/**
 * FNV-1a of a token's code units from a state seeded with `seed`: for an ASCII token, the `tokenHash` that
 * `scanAsciiTokens` gives for its bytes with that `tokenSeed`, so that a token read off bytes is looked up
 * without making its string. Seeded per index (as its other hashes), so that names written to collide in
 * one index's table do not collide in another's.
 */
export function hashToken(token: string, seed = 0): number {
  let hash = FNV_OFFSET ^ seed;
  for (let i = 0; i < token.length; i++) hash = Math.imul(hash ^ token.charCodeAt(i), FNV_PRIME);
  return hash | 0;
}

/**
 * Called for each token of an ASCII text: its bytes are `[first, end)`, `upper` when it has capitals (the
 * token is those bytes lowercased), `tokenHash` the FNV-1a of the lowercased bytes, seeded (see
 * `scanAsciiTokens`).
 */
export type AsciiTokenVisitor = (first: number, end: number, upper: boolean, tokenHash: number) => void;

/**
 * Walks the tokens of an ASCII text `bytes[start, start + length)`: its runs of letters and digits, which
 * lowercased are what `tokenize` gives for ASCII, in order, duplicates kept. Returns `hashBytes` of the
 * UTF-8 of their `tokenKey` with `seed`, without building the key; each token's hash starts from
 * `tokenSeed` (see `hashToken`).
 */
export function scanAsciiTokens(
  bytes: Uint8Array,
  start: number,
  length: number,
  seed: number,
  visit: AsciiTokenVisitor,
  tokenSeed = 0,
): number {
  let keyHash = FNV_OFFSET ^ seed;
  const tokenOffset = FNV_OFFSET ^ tokenSeed;
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
    let tokenHash = tokenOffset;
    keyHash = Math.imul(keyHash, FNV_PRIME); // the NUL before each token
    do {
      if (byte >= 65 && byte <= 90) {
        upper = true;
        byte += 32;
      }
      keyHash = Math.imul(keyHash ^ byte, FNV_PRIME);
      tokenHash = Math.imul(tokenHash ^ byte, FNV_PRIME);
      byte = ++i < end ? bytes[i]! : 0;
    } while (isWordByte(byte));
    visit(first, i, upper, tokenHash);
  }
  return (keyHash ^ (keyHash >>> 15)) >>> 0;
}

/**
 * The tokens of an ASCII text, read off its bytes `bytes[start, start + length)` (`text` is the same text as
 * a string), pushed to `out` (see `scanAsciiTokens`, whose key hash it returns).
 */
export function asciiTokens(
  text: string,
  bytes: Uint8Array,
  start: number,
  length: number,
  seed: number,
  out: string[],
): number {
  return scanAsciiTokens(bytes, start, length, seed, (first, end, upper) => {
    const token = text.slice(first - start, end - start);
    out.push(upper ? token.toLowerCase() : token);
  });
}

function isWordByte(byte: number): boolean {
  return (byte >= 97 && byte <= 122) || (byte >= 48 && byte <= 57) || (byte >= 65 && byte <= 90);
}
