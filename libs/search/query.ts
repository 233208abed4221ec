import { P2PError } from '../errors/index.js';

/** What `NetworkIndex.search` looks for; build it with `parseQuery`. */
export type Query = { kind: 'sha256'; sha256: string } | { kind: 'words'; words: string[] };

const SHA256_TEXT = /^[0-9a-fA-F]{64}$/;
const WORD = /[\p{L}\p{N}]+/gu;

/**
 * The words of a text as the index sees them: maximal runs of Unicode letters and digits (`\p{L}\p{N}`)
 * after NFKC normalization and lowercasing, in order, duplicates kept. NFKC first so that full-width or
 * compatibility forms ("ＡＢＣ", "ﬁ") meet their plain spelling; everything else (spaces, punctuation, `/`,
 * `_`, `.`, combining marks) separates words.
 */
export function tokenize(text: string): string[] {
  return text.normalize('NFKC').toLowerCase().match(WORD) ?? [];
}

/**
 * A user's search text as a query: 64 hex digits (any case, surrounding spaces ignored) look up that
 * SHA-256; anything else is the words of `tokenize(text)`. Throws `P2PError('USAGE')` when the text has no
 * letter or digit at all, because such a query could only match nothing or everything.
 */
export function parseQuery(text: string): Query {
  const trimmed = text.trim();
  if (SHA256_TEXT.test(trimmed)) return { kind: 'sha256', sha256: trimmed.toLowerCase() };
  const words = tokenize(text);
  if (words.length === 0) {
    throw new P2PError('USAGE', 'search query has no letter or digit to look for', {
      details: { query: text.slice(0, 100) },
    });
  }
  return { kind: 'words', words };
}
