/** Small-integer and text keys of files, and the bags of file ids kept under them. */

/** Above this many tokens per name, removing duplicates goes through a Set instead of a scan. */
const SMALL_TOKEN_LIST = 16;

export const BAG_SHARDS = 64;

/**
 * Maps a key to one file id or, when several files share it, a set of them. Spread over 64 Maps so that
 * no single Map holds a million entries: growing one rehashes it in one go, and at that size that is a
 * task of hundreds of milliseconds.
 */
export class IdBags<K extends string | number> {
  private readonly shards = Array.from({ length: BAG_SHARDS }, () => new Map<K, number | Set<number>>());

  constructor(private readonly shardOf: (key: K) => number) {}

  get(key: K): number | Set<number> | undefined {
    return this.shards[this.shardOf(key)]!.get(key);
  }

  add(key: K, id: number): void {
    const bag = this.shards[this.shardOf(key)]!;
    const current = bag.get(key);
    if (current === undefined) bag.set(key, id);
    else if (typeof current === 'number') bag.set(key, new Set([current, id]));
    else current.add(id);
  }

  delete(key: K, id: number): void {
    const bag = this.shards[this.shardOf(key)]!;
    const current = bag.get(key);
    if (current === undefined) return;
    if (typeof current === 'number') {
      if (current === id) bag.delete(key);
      return;
    }
    current.delete(id);
    if (current.size === 1) bag.set(key, current.values().next().value!);
  }
}

/** A shard for a token key ("\0tok\0tok…"): its first token's first character, its last, its length. */
export function textShard(key: string): number {
  return (key.charCodeAt(1) + 7 * key.length + 13 * key.charCodeAt(key.length - 1)) & (BAG_SHARDS - 1);
}

/**
 * A small-integer key of a SHA-256 (the full hash is compared on lookup): 30 bits of a seeded FNV-1a over
 * the hex text. Seeded per index so that a peer cannot announce hashes chosen to share one key (hashes are
 * whatever a peer says, not necessarily random) and make every lookup walk them.
 */
export function shaKey(sha256: string, seed: number): number {
  let hash = 0x811c9dc5 ^ seed;
  for (let i = 0; i < sha256.length; i++) hash = Math.imul(hash ^ sha256.charCodeAt(i), 0x01000193);
  return (hash ^ (hash >>> 15)) & 0x3fffffff;
}

/** `tokens` joined with NUL before each one: "\0holiday\0photos\0jpg". Empty when there is no token. */
export function tokenKey(tokens: readonly string[]): string {
  if (tokens.length === 0) return '';
  // join() gives one flat string; `'\0' + joined` would keep a rope node per file alive.
  const parts = [''];
  for (const token of tokens) parts.push(token);
  return parts.join('\0');
}

export function distinct(tokens: string[]): string[] {
  if (tokens.length > SMALL_TOKEN_LIST) return [...new Set(tokens)];
  return tokens.filter((token, i) => tokens.indexOf(token) === i);
}
