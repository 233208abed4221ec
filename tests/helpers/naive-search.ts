import type { FileEntry } from '../../libs/protocol/index.js';
import { type Query, tokenize } from '../../libs/search/index.js';

const naiveTokens = new Map<string, string[]>();

/** The definition of a match, written the slow, obvious way: `peerId:name` of every matching file. */
export function naiveMatches(files: Map<string, Map<string, FileEntry>>, query: Query): Set<string> {
  const out = new Set<string>();
  const words = query.kind === 'words' ? query.words.flatMap(tokenize) : [];
  for (const [peerId, byName] of files) {
    for (const entry of byName.values()) {
      let hit: boolean;
      if (query.kind === 'sha256') hit = entry.sha256 === query.sha256;
      else {
        let tokens = naiveTokens.get(entry.name);
        if (tokens === undefined) {
          tokens = tokenize(entry.name);
          naiveTokens.set(entry.name, tokens);
        }
        hit = words.length > 0 && words.every((word) => tokens.some((token) => token.startsWith(word)));
      }
      if (hit) out.add(`${peerId}:${entry.name}`);
    }
  }
  return out;
}
