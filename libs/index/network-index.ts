import type { FileEntry, SearchResult } from '../protocol/index.js';
import { fileUrl } from '../protocol/index.js';
import { TokenDictionary, type TokenPostings } from './dictionary.js';
import { type Query, tokenize } from './query.js';

/** A peer's whole state (a join, a resync, or one peer of a snapshot). */
export interface PeerState {
  peerId: string;
  instanceId: string;
  url: string;
  seq: number;
  files: FileEntry[];
}

/** One change of a peer: its sequence number and the files added/changed or removed (by name). */
export interface PeerDeltaInput {
  peerId: string;
  instanceId: string;
  seq: number;
  upserted: FileEntry[];
  removed: string[];
}

export type FullResult = 'applied' | 'unchanged' | 'stale';
export type DeltaResult = 'applied' | 'duplicate' | 'gap' | 'unknown-peer';

export interface IndexedPeer {
  peerId: string;
  instanceId: string;
  url: string;
  seq: number;
  fileCount: number;
  /** Sum of the sizes of its files. */
  totalBytes: number;
}

/*
 * Files live in parallel arrays indexed by a numeric file id (no object per file), and ids of removed
 * files are reused. A token's postings hold "posting codes" = generation * ID_SPACE + id; removing a file
 * bumps the generation of its id, which makes every code pointing at it stale at once without visiting
 * the postings. Both parts stay below 2^53, so codes are exact doubles.
 */
const ID_BITS = 26;
const ID_SPACE = 2 ** ID_BITS;
const GENERATION_SPACE = 2 ** 27;
/** Posting lists with fewer stale codes than this are not worth compacting. */
const MIN_DEAD_TO_COMPACT = 8;
/** Above this many tokens per name, removing duplicates goes through a Set instead of a scan. */
const SMALL_TOKEN_LIST = 16;

class PeerRecord {
  /** name → file id */
  readonly byName = new Map<string, number>();
  totalBytes = 0;
  /** File ids sorted by name, for paging; dropped whenever a name comes or goes. */
  sortedIds: number[] | undefined;

  constructor(
    readonly peerId: string,
    public instanceId: string,
    public url: string,
    public seq: number,
  ) {}
}

/** Maps a key to one file id or, when several files share it, a set of them. */
type IdBag = Map<string, number | Set<number>>;

function bagAdd(bag: IdBag, key: string, id: number): void {
  const current = bag.get(key);
  if (current === undefined) bag.set(key, id);
  else if (typeof current === 'number') bag.set(key, new Set([current, id]));
  else current.add(id);
}

function bagDelete(bag: IdBag, key: string, id: number): void {
  const current = bag.get(key);
  if (current === undefined) return;
  if (typeof current === 'number') {
    if (current === id) bag.delete(key);
    return;
  }
  current.delete(id);
  if (current.size === 1) bag.set(key, current.values().next().value!);
}

/** `tokens` joined with NUL before each one: "\0holiday\0photos\0jpg". Empty when there is no token. */
function tokenKey(tokens: readonly string[]): string {
  if (tokens.length === 0) return '';
  // join() gives one flat string; `'\0' + joined` would keep a rope node per file alive.
  const parts = [''];
  for (const token of tokens) parts.push(token);
  return parts.join('\0');
}

function distinct(tokens: string[]): string[] {
  if (tokens.length > SMALL_TOKEN_LIST) return [...new Set(tokens)];
  return tokens.filter((token, i) => tokens.indexOf(token) === i);
}

function compareText(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/**
 * Who has which file, for the whole network, held in memory with fast search. The superpeer keeps one for
 * every peer it hears from; a peer keeps one as its own view of the network, for searching when no
 * superpeer answers. Pure logic: no I/O, no timers, not thread-aware (call it from one place).
 *
 * Search semantics:
 * - Names are tokenized with `tokenize()`: NFKC, lowercase, maximal runs of Unicode letters and digits.
 *   The name is the relative path, so folder names count: `music/Holiday Photos 2024.JPG` has the tokens
 *   music, holiday, photos, 2024, jpg.
 * - A `words` query matches a file when every query word is a prefix of some token of its name (words are
 *   run through `tokenize()` again, so any case works). `holi pho` and `2024 jpg` match the file above;
 *   `oliday` does not (words match at the start of a token only). Query words may hit the same token.
 * - A `sha256` query matches every file with that hash, on every peer.
 * - One result per (peer, file), `url` pointing at that peer.
 * - Order: files whose name has exactly the query's words, in the same order and nothing else (so a
 *   case-insensitive `name === query text`, and also the same name spelled with other punctuation) come
 *   first; then the other matches. Each group is sorted by name then peer id (code-unit order).
 * - When more than `limit` files match, `truncated` is true and the results are the exact-name matches
 *   followed by the first other matches found: tokens of the word with the fewest candidate files in
 *   alphabetical order, and for each token its files in the order they entered the index. This choice is
 *   deterministic for a given history of updates, but is not "the alphabetically first `limit` matches".
 *
 * Cost: a query looks only at the tokens starting with its words and at the files of the most selective
 * word, and stops after `limit + 1` matches; it never scans every file. Updates cost in proportion to the
 * files they add, change or remove.
 */
export class NetworkIndex {
  private readonly peersById = new Map<string, PeerRecord>();
  private readonly dictionary = new TokenDictionary();
  /** sha256 → files with that content */
  private readonly bySha = new Map<string, number | Set<number>>();
  /** token key (see `tokenKey`) → files whose names have exactly those tokens; finds exact-name matches. */
  private readonly byTokenKey = new Map<string, number | Set<number>>();

  private names: string[] = [];
  private shas: string[] = [];
  private keys: string[] = [];
  private owners: (PeerRecord | undefined)[] = [];
  private sizes = new Float64Array(1024);
  private mtimes = new Float64Array(1024);
  private generations = new Uint32Array(1024);
  /** Scratch marks for one operation at a time: `marks[id] === epoch` means "seen in this operation". */
  private marks = new Uint32Array(1024);
  private epoch = 0;
  private readonly freeIds: number[] = [];
  private liveFiles = 0;

  get fileCount(): number {
    return this.liveFiles;
  }

  get peerCount(): number {
    return this.peersById.size;
  }

  /** Distinct tokens over all names (a size figure for metrics). */
  get tokenCount(): number {
    return this.dictionary.size;
  }

  /**
   * Replaces a peer's whole state. Same instanceId and seq < current → 'stale' (ignored); same instanceId,
   * same seq and same url → 'unchanged' (files are still replaced, in case they differ); otherwise
   * 'applied'. A different instanceId always replaces (the peer restarted and its seq began again). Files
   * keep their place in the index when a file of the same name is in the new state, so a resync of an
   * unchanged peer does not churn the postings. When a name appears twice in `files`, the last one wins.
   */
  applyFull(state: PeerState): FullResult {
    const existing = this.peersById.get(state.peerId);
    if (existing === undefined) {
      const peer = new PeerRecord(state.peerId, state.instanceId, state.url, state.seq);
      this.peersById.set(state.peerId, peer);
      for (const file of state.files) this.upsertFile(peer, file);
      return 'applied';
    }
    let result: FullResult = 'applied';
    if (existing.instanceId === state.instanceId) {
      if (state.seq < existing.seq) return 'stale';
      if (state.seq === existing.seq && state.url === existing.url) result = 'unchanged';
    }
    existing.instanceId = state.instanceId;
    existing.url = state.url;
    existing.seq = state.seq;
    this.replaceFiles(existing, state.files);
    return result;
  }

  /**
   * Applies one change when instanceId matches and seq === current seq + 1 ('applied'). seq <= current →
   * 'duplicate' (ignored); seq > current + 1 or another instanceId → 'gap' (ignored: the caller should
   * fetch the full state); unknown peer → 'unknown-peer'. Removals are applied before upserts, so a name in
   * both lists ends up present; an upsert replaces the file of the same name; removing an absent name is
   * not an error.
   */
  applyDelta(delta: PeerDeltaInput): DeltaResult {
    const peer = this.peersById.get(delta.peerId);
    if (peer === undefined) return 'unknown-peer';
    if (peer.instanceId !== delta.instanceId) return 'gap';
    if (delta.seq <= peer.seq) return 'duplicate';
    if (delta.seq > peer.seq + 1) return 'gap';
    for (const name of delta.removed) {
      const id = peer.byName.get(name);
      if (id === undefined) continue;
      peer.byName.delete(name);
      this.removeFile(id);
    }
    for (const file of delta.upserted) this.upsertFile(peer, file);
    peer.seq = delta.seq;
    return 'applied';
  }

  /**
   * Removes a peer and all its files; returns whether it was known. When `instanceId` is given and is not
   * the stored one nothing happens and the result is false: a late "left" of an old run must not remove the
   * peer's new run.
   */
  removePeer(peerId: string, instanceId?: string): boolean {
    const peer = this.peersById.get(peerId);
    if (peer === undefined) return false;
    if (instanceId !== undefined && instanceId !== peer.instanceId) return false;
    for (const id of peer.byName.values()) this.removeFile(id);
    peer.byName.clear();
    this.peersById.delete(peerId);
    return true;
  }

  hasPeer(peerId: string): boolean {
    return this.peersById.has(peerId);
  }

  getPeer(peerId: string): IndexedPeer | undefined {
    const peer = this.peersById.get(peerId);
    return peer === undefined ? undefined : summary(peer);
  }

  /** Every peer, sorted by peer id. */
  peers(): IndexedPeer[] {
    return [...this.peersById.values()].sort((a, b) => compareText(a.peerId, b.peerId)).map(summary);
  }

  /**
   * Files of one peer sorted by name (code-unit order), from `offset` (default 0), at most `limit` (default
   * all). Unknown peer → []. The sorted order is cached until the peer's names change, so paging through a
   * large peer costs one sort.
   */
  peerFiles(peerId: string, offset = 0, limit = Number.POSITIVE_INFINITY): FileEntry[] {
    const peer = this.peersById.get(peerId);
    if (peer === undefined) return [];
    if (peer.sortedIds === undefined) {
      const names = [...peer.byName.keys()].sort();
      peer.sortedIds = names.map((name) => peer.byName.get(name)!);
    }
    const start = Math.max(0, Math.floor(offset) || 0);
    const count = limit >= 0 ? Math.floor(limit) : 0;
    const ids = peer.sortedIds.slice(start, start + count);
    return ids.map((id) => ({
      name: this.names[id]!,
      size: this.sizes[id]!,
      sha256: this.shas[id]!,
      mtimeMs: this.mtimes[id]!,
    }));
  }

  /**
   * At most `limit` matches, and whether more matched. See the class comment for what matches and in
   * which order.
   */
  search(query: Query, limit: number): { results: SearchResult[]; truncated: boolean } {
    const max = limit >= 0 ? Math.floor(limit) : 0;
    const found: number[] = [];
    let exactCount = 0;
    if (query.kind === 'sha256') {
      const ids = this.bySha.get(query.sha256.toLowerCase());
      if (typeof ids === 'number') found.push(ids);
      else if (ids !== undefined) {
        for (const id of ids) {
          found.push(id);
          if (found.length > max) break;
        }
      }
    } else {
      exactCount = this.findWords(query.words.flatMap(tokenize), max, found);
    }
    const truncated = found.length > max;
    if (truncated) found.length = max;
    const byNameThenPeer = (a: number, b: number) =>
      compareText(this.names[a]!, this.names[b]!) ||
      compareText(this.owners[a]!.peerId, this.owners[b]!.peerId);
    const exact = found.slice(0, exactCount).sort(byNameThenPeer);
    const others = found.slice(exactCount).sort(byNameThenPeer);
    const results = [...exact, ...others].map((id): SearchResult => {
      const peer = this.owners[id]!;
      const name = this.names[id]!;
      return {
        name,
        size: this.sizes[id]!,
        sha256: this.shas[id]!,
        peerId: peer.peerId,
        url: fileUrl(peer.url, name),
      };
    });
    return { results, truncated };
  }

  /** Pushes matching file ids (up to max + 1) to `found`; returns how many of them, first, are exact. */
  private findWords(words: string[], max: number, found: number[]): number {
    if (words.length === 0) return 0;
    const epoch = this.nextEpoch();
    const exact = this.byTokenKey.get(tokenKey(words));
    if (exact !== undefined) {
      for (const id of typeof exact === 'number' ? [exact] : exact) {
        this.marks[id] = epoch;
        found.push(id);
        if (found.length > max) return found.length;
      }
    }
    const exactCount = found.length;

    // A word that starts another query word is implied by it: whatever token the longer one starts, the
    // shorter one starts too.
    const unique = distinct(words);
    const needed = unique.filter((word) => !unique.some((other) => other !== word && other.startsWith(word)));

    // The driver is the word with the fewest candidate files; counting stops at the best count so far, so
    // estimating a short, common word costs no more than the selective word already found. Longer words
    // go first because they tend to be the selective ones.
    needed.sort((a, b) => b.length - a.length);
    let driver = needed[0]!;
    if (needed.length > 1) {
      let best = Number.POSITIVE_INFINITY;
      for (const word of needed) {
        const count = this.dictionary.countWithPrefix(word, best);
        if (count < best) {
          best = count;
          driver = word;
        }
        if (best === 0) return exactCount;
      }
    }
    const checks = needed.filter((word) => word !== driver).map((word) => `\0${word}`);

    const { generations, marks, keys } = this;
    this.dictionary.forEachWithPrefix(driver, (entry: TokenPostings) => {
      for (const code of entry.codes) {
        const id = code % ID_SPACE;
        if (generations[id] !== (code - id) / ID_SPACE || marks[id] === epoch) continue;
        marks[id] = epoch;
        const key = keys[id]!;
        let ok = true;
        for (const check of checks) {
          if (!key.includes(check)) {
            ok = false;
            break;
          }
        }
        if (ok) {
          found.push(id);
          if (found.length > max) return false;
        }
      }
      return true;
    });
    return exactCount;
  }

  private replaceFiles(peer: PeerRecord, files: readonly FileEntry[]): void {
    const epoch = this.nextEpoch();
    for (const file of files) {
      const id = peer.byName.get(file.name);
      if (id !== undefined) this.marks[id] = epoch;
    }
    const gone: string[] = [];
    for (const [name, id] of peer.byName) if (this.marks[id] !== epoch) gone.push(name);
    for (const name of gone) {
      this.removeFile(peer.byName.get(name)!);
      peer.byName.delete(name);
    }
    for (const file of files) this.upsertFile(peer, file);
  }

  private upsertFile(peer: PeerRecord, file: FileEntry): void {
    const existing = peer.byName.get(file.name);
    if (existing !== undefined) {
      // Same name, same tokens: only the content fields can differ, and the postings stay as they are.
      if (this.shas[existing] !== file.sha256) {
        bagDelete(this.bySha, this.shas[existing]!, existing);
        bagAdd(this.bySha, file.sha256, existing);
        this.shas[existing] = file.sha256;
      }
      peer.totalBytes += file.size - this.sizes[existing]!;
      this.sizes[existing] = file.size;
      this.mtimes[existing] = file.mtimeMs;
      return;
    }
    const id = this.allocateId();
    const tokens = tokenize(file.name);
    const key = tokenKey(tokens);
    this.names[id] = file.name;
    this.shas[id] = file.sha256;
    this.keys[id] = key;
    this.owners[id] = peer;
    this.sizes[id] = file.size;
    this.mtimes[id] = file.mtimeMs;
    const code = this.generations[id]! * ID_SPACE + id;
    for (const token of distinct(tokens)) {
      const entry = this.dictionary.acquire(token);
      entry.codes.push(code);
      entry.live++;
    }
    bagAdd(this.bySha, file.sha256, id);
    if (key !== '') bagAdd(this.byTokenKey, key, id);
    peer.byName.set(file.name, id);
    peer.totalBytes += file.size;
    peer.sortedIds = undefined;
    this.liveFiles++;
  }

  /** Frees a file id and everything pointing at it, except the owner's `byName` entry (the caller's job). */
  private removeFile(id: number): void {
    const peer = this.owners[id]!;
    this.generations[id] = (this.generations[id]! + 1) % GENERATION_SPACE;
    const key = this.keys[id]!;
    if (key !== '') {
      for (const token of distinct(key.slice(1).split('\0'))) {
        const entry = this.dictionary.get(token)!;
        entry.live--;
        entry.dead++;
        if (entry.live === 0) this.dictionary.release(entry);
        else if (entry.dead > entry.live && entry.dead >= MIN_DEAD_TO_COMPACT) this.compact(entry);
      }
      bagDelete(this.byTokenKey, key, id);
    }
    bagDelete(this.bySha, this.shas[id]!, id);
    peer.totalBytes -= this.sizes[id]!;
    peer.sortedIds = undefined;
    this.names[id] = '';
    this.shas[id] = '';
    this.keys[id] = '';
    this.owners[id] = undefined;
    this.freeIds.push(id);
    this.liveFiles--;
  }

  private compact(entry: TokenPostings): void {
    const generations = this.generations;
    entry.codes = entry.codes.filter((code) => {
      const id = code % ID_SPACE;
      return generations[id] === (code - id) / ID_SPACE;
    });
    entry.dead = 0;
  }

  private allocateId(): number {
    const reused = this.freeIds.pop();
    if (reused !== undefined) return reused;
    const id = this.names.length;
    if (id >= ID_SPACE) throw new RangeError(`NetworkIndex holds at most ${ID_SPACE} files`);
    if (id >= this.sizes.length) {
      const capacity = this.sizes.length * 2;
      this.sizes = grow(this.sizes, new Float64Array(capacity));
      this.mtimes = grow(this.mtimes, new Float64Array(capacity));
      this.generations = grow(this.generations, new Uint32Array(capacity));
      this.marks = grow(this.marks, new Uint32Array(capacity));
    }
    this.names.push('');
    this.shas.push('');
    this.keys.push('');
    this.owners.push(undefined);
    return id;
  }

  private nextEpoch(): number {
    if (this.epoch === 0xffffffff) {
      this.marks.fill(0);
      this.epoch = 0;
    }
    return ++this.epoch;
  }
}

function grow<T extends Float64Array | Uint32Array>(from: T, to: T): T {
  to.set(from);
  return to;
}

function summary(peer: PeerRecord): IndexedPeer {
  return {
    peerId: peer.peerId,
    instanceId: peer.instanceId,
    url: peer.url,
    seq: peer.seq,
    fileCount: peer.byName.size,
    totalBytes: peer.totalBytes,
  };
}
