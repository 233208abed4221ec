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
