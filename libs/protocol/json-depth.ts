/**
 * Deepest nesting of objects and arrays a message of this protocol may have. Its messages nest five
 * levels at most (a snapshot page: the reply, its peers, a peer, its files, a file); anything far deeper
 * is not a message of ours. `JSON.parse` builds every level of a deep text before any schema sees it: a
 * 4 MiB body of nested arrays took a superpeer 2 s of its event loop.
 */
export const MAX_JSON_DEPTH = 32;

/**
 * Whether the JSON text `text` nests objects and arrays deeper than `maxDepth`, read in one pass that skips
 * strings (a bracket inside a string does not count). Says nothing of whether the text is valid JSON:
 * `JSON.parse` decides that after.
 */
export function nestsDeeperThan(text: string, maxDepth: number = MAX_JSON_DEPTH): boolean {
  let depth = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const unit = text.charCodeAt(i);
    if (inString) {
      if (unit === 0x5c)
        i++; // a backslash escapes the unit after it (`\"`, `\\`)
      else if (unit === 0x22) inString = false;
    } else if (unit === 0x22) inString = true;
    else if (unit === 0x5b || unit === 0x7b) {
      if (++depth > maxDepth) return true;
    } else if (unit === 0x5d || unit === 0x7d) depth--;
  }
  return false;
}
