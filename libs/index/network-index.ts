import { randomInt } from 'node:crypto';
import type { FileEntry, SearchResult } from '../protocol/index.js';
import { fileUrl } from '../protocol/index.js';
import { clearBit, forEachBit, resized, setBit, wordsFor } from './bitmap.js';
import { TokenDictionary, type TokenPostings } from './dictionary.js';
import { FileTable } from './file-table.js';
import { BAG_SHARDS, distinct, IdBags, shaKey, textShard, tokenKey } from './id-bags.js';
import { type Query, tokenize } from './query.js';
import { forEachOfSliced, forEachSliced, runSliced, SerialQueue, type SliceOptions } from './slices.js';
import { WordSearch } from './word-search.js';

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

/** What a search found. */
export interface SearchOutcome {
  results: SearchResult[];
  /** The results are not every match: more than `limit` matched, or the search was `partial`. */
  truncated: boolean;
  /** The search used up its work budget before it had looked at every candidate: other matches may exist. */
  partial: boolean;
}

export interface NetworkIndexOptions {
  /**
   * Most work one search may do, in postings and bitmap words visited (about a nanosecond to a few each);
   * past it the search stops and says `partial`. Default 250,000.
   */
  searchWorkBudget?: number;
  /** A token held by at least this many files (and 1/64 of the id space) gets a bitmap. Default 1024. */
  bitmapMinFiles?: number;
}

/** Posting lists with fewer stale codes than this are not worth compacting. */
const MIN_DEAD_TO_COMPACT = 8;
/** The id space is compacted (live files moved down) once fewer than half of its ids are live. */
const COMPACT_BELOW_LIVE_SHARE = 0.5;
const COMPACT_MIN_IDS = 4096;

class PeerRecord {
  /** name → file id */
  readonly byName = new Map<string, number>();
  totalBytes = 0;
  removed = false;
  /** File ids sorted by name, for paging; dropped whenever a name comes or goes. */
  sortedIds: number[] | undefined;

  constructor(
    readonly peerId: string,
    public instanceId: string,
    public url: string,
    public seq: number,
  ) {}
}

function compareText(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/**
 * Who has which file, for the whole network, held in memory with fast search. The superpeer keeps one for
 * every peer it hears from. Pure logic: no I/O, no timers, not thread-aware (call it from one place).
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
 *   followed by the first other matches found (deterministic for a given history of updates, but not "the
 *   alphabetically first `limit` matches").
 *
 * Cost: every search has a work budget (`searchWorkBudget`); one that runs out stops and says `partial`
 * (and `truncated`). The word with the fewest candidate files drives: when it has few, its files are
 * checked one by one; when every word is common (the words are frequent but rare together), the words'
 * candidate sets are intersected as bitmaps, one 32-bit word per 32 files. Tokens held by a large share of
 * the files keep an exact bitmap instead of a posting list, which also costs less memory.
 *
 * Updates: the synchronous `applyFull`, `applyDelta` and `removePeer` cost in proportion to the files they
 * touch. The `…Async` versions do the same work in slices that yield to the event loop (for states of a
 * million files) and run one at a time in call order; do not mix them with synchronous updates of the same
 * peer while one is running. Removals give memory back: the id space is compacted and trimmed once it is
 * mostly free.
 */
export class NetworkIndex {
  private readonly peersById = new Map<string, PeerRecord>();
  private readonly dictionary = new TokenDictionary();
  /** first 28 bits of a sha256 → files whose sha256 starts so */
  private readonly bySha = new IdBags<number>((key) => key & (BAG_SHARDS - 1));
  /** token key (see `tokenKey`) → files whose names have exactly those tokens; finds exact-name matches. */
  private readonly byTokenKey = new IdBags<string>(textShard);
  private readonly bitmapTokens = new Set<TokenPostings>();
  private readonly files: FileTable<PeerRecord>;
  private readonly words: WordSearch;
  /** The same for updates, apart so that a search between two slices of an update cannot disturb it. */
  private updateMarks = new Uint32Array(1024);
  private updateEpoch = 0;
  private readonly updates = new SerialQueue();
  private readonly workBudget: number;
  private readonly bitmapMinFiles: number;
  private readonly shaSeed = randomInt(2 ** 30);

  constructor(options: NetworkIndexOptions = {}) {
    this.workBudget = options.searchWorkBudget ?? 250_000;
    this.bitmapMinFiles = Math.max(1, options.bitmapMinFiles ?? 1024);
    this.files = new FileTable<PeerRecord>((capacity) => this.onCapacity(capacity));
    this.words = new WordSearch(this.dictionary, this.files, this.byTokenKey);
  }

  get fileCount(): number {
    return this.files.liveCount;
  }

  get peerCount(): number {
    return this.peersById.size;
  }

  /** Distinct tokens over all names (a size figure for metrics). */
  get tokenCount(): number {
    return this.dictionary.size;
  }

  /** Sizes of the inner structures, for tests and diagnostics (counts, not bytes). */
  get stats(): { idSlots: number; capacity: number; bitmapTokens: number; postings: number } {
    let postings = 0;
    this.dictionary.forEachWithPrefix('', (entry) => {
      postings += entry.codes.length;
      return true;
    });
    return {
      idSlots: this.files.idCount,
      capacity: this.files.capacity,
      bitmapTokens: this.bitmapTokens.size,
      postings,
    };
  }

  /** Async updates queued or running. */
  get pendingUpdates(): number {
    return this.updates.size;
  }

  /**
   * Replaces a peer's whole state. Same instanceId and seq < current → 'stale' (ignored); same instanceId,
   * same seq and same url → 'unchanged' (files are still replaced, in case they differ); otherwise
   * 'applied'. A different instanceId always replaces (the peer restarted and its seq began again). Files
   * keep their place in the index when a file of the same name is in the new state, so a resync of an
   * unchanged peer does not churn the postings. When a name appears twice in `files`, the last one wins.
   */
  applyFull(state: PeerState): FullResult {
    const { peer, result } = this.beginFull(state);
    if (result === 'stale') return result;
    const epoch = this.nextUpdateEpoch();
    for (const file of state.files) this.markName(peer, file.name, epoch);
    for (const name of this.unmarkedNames(peer, epoch)) this.removeName(peer, name);
    for (const file of state.files) this.upsertFile(peer, file);
    this.trimIfSparse();
    return result;
  }

  /** `applyFull` in slices (see `SliceOptions`), after the async updates before it. */
  applyFullAsync(state: PeerState, options: SliceOptions = {}): Promise<FullResult> {
    return this.updates.run(async () => {
      const { peer, result } = this.beginFull(state);
      if (result === 'stale') return result;
      const epoch = this.nextUpdateEpoch();
      if (peer.byName.size > 0) {
        await forEachSliced(state.files, (file) => this.markName(peer, file.name, epoch), options);
        const gone: string[] = [];
        await forEachOfSliced(
          peer.byName,
          ([name, id]) => {
            if (this.updateMarks[id] !== epoch) gone.push(name);
          },
          options,
        );
        await forEachSliced(gone, (name) => this.removeName(peer, name), options);
      }
      await forEachSliced(state.files, (file) => this.upsertFile(peer, file), options);
      await this.compactIfSparse(options);
      return result;
    });
  }

  /**
   * Applies one change when instanceId matches and seq === current seq + 1 ('applied'). seq <= current →
   * 'duplicate' (ignored); seq > current + 1 or another instanceId → 'gap' (ignored: the caller should
   * fetch the full state); unknown peer → 'unknown-peer'. Removals are applied before upserts, so a name in
   * both lists ends up present; an upsert replaces the file of the same name; removing an absent name is
   * not an error.
   */
  applyDelta(delta: PeerDeltaInput): DeltaResult {
    const { peer, result } = this.checkDelta(delta);
    if (peer === undefined) return result;
    for (const name of delta.removed) this.removeName(peer, name);
    for (const file of delta.upserted) this.upsertFile(peer, file);
    peer.seq = delta.seq;
    return result;
  }

  /** `applyDelta` in slices, after the async updates before it. */
  applyDeltaAsync(delta: PeerDeltaInput, options: SliceOptions = {}): Promise<DeltaResult> {
    return this.updates.run(async () => {
      const { peer, result } = this.checkDelta(delta);
      if (peer === undefined) return result;
      peer.seq = delta.seq;
      await forEachSliced(delta.removed, (name) => this.removeName(peer, name), options);
      await forEachSliced(delta.upserted, (file) => this.upsertFile(peer, file), options);
      return result;
    });
  }

  /**
   * Removes a peer and all its files; returns whether it was known. When `instanceId` is given and is not
   * the stored one nothing happens and the result is false: a late "left" of an old run must not remove the
   * peer's new run.
   */
  removePeer(peerId: string, instanceId?: string): boolean {
    const peer = this.detachPeer(peerId, instanceId);
    if (peer === undefined) return false;
    for (const id of peer.byName.values()) this.removeFile(id);
    peer.byName.clear();
    this.trimIfSparse();
    return true;
  }

  /**
   * `removePeer` in slices, after the async updates before it. The peer and its files leave the results at
   * once; their memory is freed slice by slice, and the id space is compacted afterwards when mostly free.
   */
  removePeerAsync(peerId: string, instanceId?: string, options: SliceOptions = {}): Promise<boolean> {
    return this.updates.run(async () => {
      const peer = this.detachPeer(peerId, instanceId);
      if (peer === undefined) return false;
      await forEachOfSliced(peer.byName.values(), (id) => this.removeFile(id), options);
      peer.byName.clear();
      await this.compactIfSparse(options);
      return true;
    });
  }

  /** Moves live files down into free ids and gives back the top of the id space, in slices. */
  compactAsync(options: SliceOptions = {}): Promise<void> {
    return this.updates.run(() => this.compact(options));
  }

  /** Resolves once the async updates queued so far have run. */
  async idle(): Promise<void> {
    await this.updates.run(() => undefined);
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
    const { names, sizes, mtimes } = this.files;
    return ids.map((id) => ({
      name: names[id]!,
      size: sizes[id]!,
      sha256: this.files.sha(id),
      mtimeMs: mtimes[id]!,
    }));
  }

  /**
   * At most `limit` matches, whether more matched, and whether the work budget cut the search short. See
   * the class comment for what matches and in which order. `workBudget` overrides the index's default.
   */
  search(query: Query, limit: number, workBudget: number = this.workBudget): SearchOutcome {
    const max = limit >= 0 ? Math.floor(limit) : 0;
    const found: number[] = [];
    let exactCount = 0;
    let partial = false;
    if (query.kind === 'sha256') {
      this.findSha(query.sha256.toLowerCase(), max, found);
    } else {
      const outcome = this.words.find(query.words.flatMap(tokenize), max, found, {
        used: 0,
        budget: workBudget,
      });
      exactCount = outcome.exactCount;
      partial = outcome.partial;
    }
    const truncated = found.length > max || partial;
    if (found.length > max) found.length = max;
    const { names, owners, sizes } = this.files;
    const byNameThenPeer = (a: number, b: number) =>
      compareText(names[a]!, names[b]!) || compareText(owners[a]!.peerId, owners[b]!.peerId);
    const exact = found.slice(0, exactCount).sort(byNameThenPeer);
    const others = found.slice(exactCount).sort(byNameThenPeer);
    const results = [...exact, ...others].map((id): SearchResult => {
      const peer = owners[id]!;
      const name = names[id]!;
      return {
        name,
        size: sizes[id]!,
        sha256: this.files.sha(id),
        peerId: peer.peerId,
        url: fileUrl(peer.url, name),
      };
    });
    return { results, truncated, partial };
  }

  // ---- search ------------------------------------------------------------------------------------------

  private findSha(sha256: string, max: number, found: number[]): void {
    if (!/^[0-9a-f]{64}$/.test(sha256)) return;
    const ids = this.bySha.get(shaKey(sha256, this.shaSeed));
    if (ids === undefined) return;
    const bytes = Buffer.from(sha256, 'hex');
    for (const id of typeof ids === 'number' ? [ids] : ids) {
      if (this.files.owners[id]!.removed || !this.files.shaEquals(id, bytes)) continue;
      found.push(id);
      if (found.length > max) return;
    }
  }

  // ---- updates -----------------------------------------------------------------------------------------

  private beginFull(state: PeerState): { peer: PeerRecord; result: FullResult } {
    const existing = this.peersById.get(state.peerId);
    if (existing === undefined) {
      const peer = new PeerRecord(state.peerId, state.instanceId, state.url, state.seq);
      this.peersById.set(state.peerId, peer);
      return { peer, result: 'applied' };
    }
    let result: FullResult = 'applied';
    if (existing.instanceId === state.instanceId) {
      if (state.seq < existing.seq) return { peer: existing, result: 'stale' };
      if (state.seq === existing.seq && state.url === existing.url) result = 'unchanged';
    }
    existing.instanceId = state.instanceId;
    existing.url = state.url;
    existing.seq = state.seq;
    return { peer: existing, result };
  }

  private checkDelta(delta: PeerDeltaInput): { peer?: PeerRecord; result: DeltaResult } {
    const peer = this.peersById.get(delta.peerId);
    if (peer === undefined) return { result: 'unknown-peer' };
    if (peer.instanceId !== delta.instanceId) return { result: 'gap' };
    if (delta.seq <= peer.seq) return { result: 'duplicate' };
    if (delta.seq > peer.seq + 1) return { result: 'gap' };
    return { peer, result: 'applied' };
  }

  private detachPeer(peerId: string, instanceId: string | undefined): PeerRecord | undefined {
    const peer = this.peersById.get(peerId);
    if (peer === undefined) return undefined;
    if (instanceId !== undefined && instanceId !== peer.instanceId) return undefined;
    this.peersById.delete(peerId);
    peer.removed = true;
    return peer;
  }

  private markName(peer: PeerRecord, name: string, epoch: number): void {
    const id = peer.byName.get(name);
    if (id !== undefined) this.updateMarks[id] = epoch;
  }

  private unmarkedNames(peer: PeerRecord, epoch: number): string[] {
    const gone: string[] = [];
    for (const [name, id] of peer.byName) if (this.updateMarks[id] !== epoch) gone.push(name);
    return gone;
  }

  private removeName(peer: PeerRecord, name: string): void {
    const id = peer.byName.get(name);
    if (id === undefined) return;
    peer.byName.delete(name);
    this.removeFile(id);
  }

  private upsertFile(peer: PeerRecord, file: FileEntry): void {
    const files = this.files;
    const existing = peer.byName.get(file.name);
    if (existing !== undefined) {
      // Same name, same tokens: only the content fields can differ, and the postings stay as they are.
      const sha256 = file.sha256.toLowerCase();
      if (files.sha(existing) !== sha256) {
        this.bySha.delete(shaKey(files.sha(existing), this.shaSeed), existing);
        files.setSha(existing, sha256);
        this.bySha.add(shaKey(sha256, this.shaSeed), existing);
      }
      peer.totalBytes += file.size - files.sizes[existing]!;
      files.sizes[existing] = file.size;
      files.mtimes[existing] = file.mtimeMs;
      return;
    }
    const id = files.allocate();
    const tokens = tokenize(file.name);
    const key = tokenKey(tokens);
    files.names[id] = file.name;
    files.keys[id] = key;
    files.owners[id] = peer;
    files.setSha(id, file.sha256.toLowerCase());
    files.sizes[id] = file.size;
    files.mtimes[id] = file.mtimeMs;
    const code = files.code(id);
    for (const token of distinct(tokens)) {
      const entry = this.dictionary.acquire(token);
      entry.live++;
      if (entry.bits !== undefined) setBit(entry.bits, id);
      else {
        entry.codes.push(code);
        if (entry.live >= this.bitmapThreshold()) this.toBitmap(entry);
      }
    }
    this.bySha.add(shaKey(file.sha256.toLowerCase(), this.shaSeed), id);
    if (key !== '') this.byTokenKey.add(key, id);
    peer.byName.set(file.name, id);
    peer.totalBytes += file.size;
    peer.sortedIds = undefined;
  }

  /** Frees a file id and everything pointing at it, except the owner's `byName` entry (the caller's job). */
  private removeFile(id: number): void {
    const files = this.files;
    const peer = files.owners[id]!;
    const key = files.keys[id]!;
    if (key !== '') {
      const listBelow = this.bitmapThreshold() >> 2;
      for (const token of distinct(key.slice(1).split('\0'))) {
        const entry = this.dictionary.get(token)!;
        entry.live--;
        if (entry.bits !== undefined) clearBit(entry.bits, id);
        else entry.dead++;
        if (entry.live === 0) {
          this.bitmapTokens.delete(entry);
          this.dictionary.release(entry);
        } else if (entry.bits !== undefined) {
          if (entry.live < listBelow) this.toList(entry, id);
        } else if (entry.dead > entry.live && entry.dead >= MIN_DEAD_TO_COMPACT) this.compactPostings(entry);
      }
      this.byTokenKey.delete(key, id);
    }
    this.bySha.delete(shaKey(files.sha(id), this.shaSeed), id);
    peer.totalBytes -= files.sizes[id]!;
    peer.sortedIds = undefined;
    files.release(id);
  }

  private bitmapThreshold(): number {
    return Math.max(this.bitmapMinFiles, this.files.capacity >>> 6);
  }

  private toBitmap(entry: TokenPostings): void {
    const bits = new Uint32Array(wordsFor(this.files.capacity));
    for (const code of entry.codes) {
      const id = this.files.liveId(code);
      if (id >= 0) setBit(bits, id);
    }
    entry.bits = bits;
    entry.codes = [];
    entry.dead = 0;
    this.bitmapTokens.add(entry);
  }

  /** Back to a posting list; `leaving` is a file being removed (its bit is clear, its id still live). */
  private toList(entry: TokenPostings, leaving: number): void {
    const codes: number[] = [];
    forEachBit(entry.bits!, 0, wordsFor(this.files.idCount), (id) => {
      if (id !== leaving) codes.push(this.files.code(id));
      return true;
    });
    entry.codes = codes;
    entry.bits = undefined;
    entry.dead = 0;
    this.bitmapTokens.delete(entry);
  }

  private compactPostings(entry: TokenPostings): void {
    entry.codes = entry.codes.filter((code) => this.files.liveId(code) >= 0);
    entry.dead = 0;
  }

  private onCapacity(capacity: number): void {
    for (const entry of this.bitmapTokens) entry.bits = resized(entry.bits!, capacity);
    this.words.resize(capacity);
    const updateMarks = new Uint32Array(capacity);
    updateMarks.set(this.updateMarks.subarray(0, Math.min(capacity, this.updateMarks.length)));
    this.updateMarks = updateMarks;
  }

  private isSparse(): boolean {
    const ids = this.files.idCount;
    return ids >= COMPACT_MIN_IDS && this.files.liveCount < ids * COMPACT_BELOW_LIVE_SHARE;
  }

  /** The synchronous updates only give back a free top; moving files is left to `compactAsync`. */
  private trimIfSparse(): void {
    if (this.isSparse()) this.files.trim();
  }

  private async compactIfSparse(options: SliceOptions): Promise<void> {
    if (this.isSparse()) await this.compact(options);
  }

  /** Moves the live files above the live count down into free ids, then trims the free top. */
  private async compact(options: SliceOptions): Promise<void> {
    const target = this.files.liveCount;
    const high: number[] = [];
    const owners = this.files.owners;
    await runSliced(
      () => this.files.idCount - target,
      (i) => {
        if (owners[target + i] !== undefined) high.push(target + i);
      },
      { ...options, maxItemsPerSlice: (options.maxItemsPerSlice ?? 2000) * 8 },
    );
    await forEachSliced(high, (id) => this.relocate(id), options);
    this.files.trim();
  }

  /** Re-inserts live file `id` at the lowest free id, when that is lower. */
  private relocate(id: number): void {
    const files = this.files;
    const peer = files.owners[id];
    const lowest = files.lowestFree();
    if (peer === undefined || peer.removed || lowest === undefined || lowest > id) return;
    const file: FileEntry = {
      name: files.names[id]!,
      size: files.sizes[id]!,
      sha256: files.sha(id),
      mtimeMs: files.mtimes[id]!,
    };
    this.removeName(peer, file.name);
    this.upsertFile(peer, file);
  }

  private nextUpdateEpoch(): number {
    if (this.updateEpoch === 0xffffffff) {
      this.updateMarks.fill(0);
      this.updateEpoch = 0;
    }
    return ++this.updateEpoch;
  }
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
