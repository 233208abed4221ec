import { type FileEntry, PackedFiles } from '../protocol/index.js';
import { Uint32Column } from './big-arrays.js';
import { compactIfSparse, compactIndex, trimIfSparse } from './index-compaction.js';
import { IndexFiles } from './index-files.js';
import { IndexPeer } from './index-peer.js';
import { PeerOrders } from './peer-order.js';
import type { DeltaResult, FullResult, PeerDeltaInput, PeerState, SearchOutcome } from './peer-table.js';
import { orderedResults, PeerStore } from './peer-table.js';
import { type Query, tokenize } from './query.js';
import { forEachSliced, runSliced, type SliceOptions, whileSliced } from './slices.js';
import { WordSearch } from './word-search.js';

/**
 * A peer's whole state as the index applies it: its files as entries, or packed in columns by a decoding
 * thread (see PackedFiles), which go in without an object per file.
 */
export interface IndexState extends Omit<PeerState, 'files'> {
  files: readonly FileEntry[] | PackedFiles;
}

/** Work units a search may always spend, and the passes over the id space it may make when that is more. */
const MIN_SEARCH_WORK_BUDGET = 250_000;
const SEARCH_BITMAP_PASSES = 16;

export interface NetworkIndexOptions {
  /**
   * Most work one search may do, in postings and bitmap words visited (about a nanosecond to a few each)
   * and tokens walked (four units each); past it the search stops and says `partial`. Default 250,000,
   * or 16 passes over the id space's bitmap words when that is more (a word that starts several common
   * tokens costs a pass each).
   */
  searchWorkBudget?: number;
  /** A token held by at least this many files (and 1/64 of the id space) gets a bitmap. Default 1024. */
  bitmapMinFiles?: number;
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
 * Memory: no JS object or string per file. Per file the index keeps typed-array columns (owner, size,
 * mtime, 32 bytes of SHA-256, hash chains for the SHA-256 and the exact tokens), its name and tokens as
 * UTF-8 in its owner's pool, and 4 bytes per token in the sorted id lists of rare tokens (common tokens
 * share one bitmap over the id space): about 200 bytes a file.
 *
 * Updates: the synchronous `applyFull`, `applyDelta` and `removePeer` cost in proportion to the files they
 * touch. The `…Async` versions do the same work in slices that yield to the event loop (for states of a
 * million files) and run one at a time in call order; do not mix them with synchronous updates of the same
 * peer while one is running. Removals give memory back: the id space is compacted and trimmed once it is
 * mostly free. A peer's files in name order (for `peerFiles`) are kept up to date by each change once read
 * (see `PeerOrders`); an async update that leaves a large peer without one sorts its names in slices.
 */
export class NetworkIndex extends PeerStore<IndexPeer> {
  private readonly files: IndexFiles;
  private readonly words: WordSearch;
  private readonly orders: PeerOrders;
  /** Marks of the update under way (a search between two slices of an update must not disturb them). */
  private readonly updateMarks = new Uint32Column();
  private updateEpoch = 0;
  private readonly workBudget: number | undefined;

  constructor(options: NetworkIndexOptions = {}) {
    super();
    this.workBudget = options.searchWorkBudget;
    this.files = new IndexFiles(
      Math.max(1, options.bitmapMinFiles ?? 1024),
      (number) => this.peerTable.at(number)!,
      (capacity) => this.onCapacity(capacity),
    );
    this.words = new WordSearch(this.files.tokens.dictionary, this.files.searchFiles());
    this.orders = new PeerOrders(this.files);
    this.updateMarks.setLimit(this.files.table.capacity);
  }

  get fileCount(): number {
    return this.files.table.liveCount;
  }

  /** Distinct tokens over all names (a size figure for metrics). */
  get tokenCount(): number {
    return this.files.tokens.dictionary.size;
  }

  /** Sizes of the inner structures, for tests and diagnostics (counts, except `textBytes`). */
  get stats(): {
    idSlots: number;
    capacity: number;
    bitmapTokens: number;
    postings: number;
    textBytes: number;
  } {
    return {
      idSlots: this.files.table.idCount,
      capacity: this.files.table.capacity,
      bitmapTokens: this.files.tokens.bitmapCount,
      postings: this.files.tokens.listedIds,
      textBytes: this.files.texts.byteSize,
    };
  }

  /**
   * Replaces a peer's whole state. Same instanceId and seq < current → 'stale' (ignored); same instanceId,
   * same seq and same url → 'unchanged' (files are still replaced, in case they differ); otherwise
   * 'applied'. A different instanceId always replaces (the peer restarted and its seq began again). Files
   * keep their place in the index when a file of the same name is in the new state, so a resync of an
   * unchanged peer does not churn the postings. When a name appears twice in `files`, the last one wins
   * (unless `distinctNames` claims otherwise).
   */
  applyFull(state: IndexState): FullResult {
    const { peer, result } = this.beginFull(state);
    if (result === 'stale') return result;
    const { files } = state;
    let kept = 0;
    let gone: number[] = [];
    if (peer.fileCount > 0) {
      const epoch = this.nextUpdateEpoch();
      for (let i = 0; i < files.length; i++) kept += this.markName(peer, nameAt(files, i), epoch);
      gone = this.unmarkedIds(peer, epoch);
    }
    this.orders.expectChanges(peer, gone.length + files.length - kept);
    for (const id of gone) this.files.remove(id);
    const absent = this.startFilling(peer, state);
    for (let i = 0; i < files.length; i++) this.upsertAt(peer, files, i, absent);
    trimIfSparse(this.files);
    return result;
  }

  /** `applyFull` in slices (see `SliceOptions`), after the async updates before it. */
  applyFullAsync(state: IndexState, options: SliceOptions = {}): Promise<FullResult> {
    return this.updates.run(async () => {
      const { peer, result } = this.beginFull(state);
      if (result === 'stale') return result;
      const { files } = state;
      const count = () => files.length;
      let kept = 0;
      let gone: number[] = [];
      if (peer.fileCount > 0) {
        await this.chainNamesAsync(peer, options);
        const epoch = this.nextUpdateEpoch();
        await runSliced(count, (i) => (kept += this.markName(peer, nameAt(files, i), epoch)), options);
        gone = this.unmarkedIds(peer, epoch);
      }
      this.orders.expectChanges(peer, gone.length + files.length - kept);
      await forEachSliced(gone, (id) => this.files.remove(id), options);
      const absent = this.startFilling(peer, state);
      await runSliced(count, (i) => this.upsertAt(peer, files, i, absent), options);
      await this.orders.prepareAsync(peer, options);
      await compactIfSparse(this.files, options);
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
    const { peer, result } = this.peerTable.deltaTarget(delta);
    if (peer === undefined) return result;
    this.orders.expectChanges(peer, delta.removed.length + delta.upserted.length);
    for (const name of delta.removed) this.removeName(peer, name);
    for (const file of delta.upserted) this.files.upsert(peer, file);
    peer.seq = delta.seq;
    return result;
  }

  /** `applyDelta` in slices, after the async updates before it. */
  applyDeltaAsync(delta: PeerDeltaInput, options: SliceOptions = {}): Promise<DeltaResult> {
    return this.updates.run(async () => {
      const { peer, result } = this.peerTable.deltaTarget(delta);
      if (peer === undefined) return result;
      peer.seq = delta.seq;
      await this.chainNamesAsync(peer, options);
      this.orders.expectChanges(peer, delta.removed.length + delta.upserted.length);
      await forEachSliced(delta.removed, (name) => this.removeName(peer, name), options);
      await forEachSliced(delta.upserted, (file) => this.files.upsert(peer, file), options);
      await this.orders.prepareAsync(peer, options);
      return result;
    });
  }

  /**
   * Removes a peer and all its files; returns whether it was known. When `instanceId` is given and is not
   * the stored one nothing happens and the result is false: a late "left" of an old run must not remove the
   * peer's new run.
   */
  removePeer(peerId: string, instanceId?: string): boolean {
    const peer = this.peerTable.detach(peerId, instanceId);
    if (peer === undefined) return false;
    while (peer.first >= 0) this.files.remove(peer.first);
    this.peerTable.release(peer);
    trimIfSparse(this.files);
    return true;
  }

  /**
   * `removePeer` in slices, after the async updates before it. The peer and its files leave the results at
   * once; their memory is freed slice by slice, and the id space is compacted afterwards when mostly free.
   */
  removePeerAsync(peerId: string, instanceId?: string, options: SliceOptions = {}): Promise<boolean> {
    return this.updates.run(async () => {
      const peer = this.peerTable.detach(peerId, instanceId);
      if (peer === undefined) return false;
      await whileSliced(
        () => peer.first >= 0,
        () => this.files.remove(peer.first),
        options,
      );
      this.peerTable.release(peer);
      await compactIfSparse(this.files, options);
      return true;
    });
  }

  /**
   * Moves live files down into free ids and gives back the top of the id space, then moves names out of
   * mostly empty text chunks, in slices.
   */
  compactAsync(options: SliceOptions = {}): Promise<void> {
    return this.updates.run(() => compactIndex(this.files, options));
  }

  /**
   * Files of one peer sorted by name (code-unit order), from `offset` (default 0), at most `limit` (default
   * all). Unknown peer → []. The order is kept up to date by each change once read, so a read after a
   * change sorts nothing; a peer without one (never read, or after a change of many files) is sorted on its
   * read, or in slices by the async update that left a large peer without one.
   */
  peerFiles(peerId: string, offset = 0, limit = Number.POSITIVE_INFINITY): FileEntry[] {
    const peer = this.peerTable.get(peerId);
    return peer === undefined ? [] : this.orders.page(peer, offset, limit);
  }

  /**
   * Visits the files of `peerFiles(peerId)` with their positions, read (and sorted, if need be) in slices
   * after the async updates before it; the peer must not change until it settles.
   */
  forEachPeerFileAsync(
    peerId: string,
    visit: (file: FileEntry, position: number) => void,
    options: SliceOptions = {},
  ): Promise<void> {
    return this.updates.run(async () => {
      const peer = this.peerTable.get(peerId);
      if (peer !== undefined) await this.orders.forEachAsync(peer, visit, options);
    });
  }

  /** The files of a peer named in `names`, by name, looked up in slices after the async updates before it. */
  peerFilesNamedAsync(
    peerId: string,
    names: readonly string[],
    options: SliceOptions = {},
  ): Promise<Map<string, FileEntry>> {
    return this.updates.run(async () => {
      const found = new Map<string, FileEntry>();
      const peer = this.peerTable.get(peerId);
      if (peer === undefined) return found;
      await this.chainNamesAsync(peer, options);
      await forEachSliced(
        names,
        (name) => {
          const id = this.files.find(peer, name);
          if (id >= 0) found.set(name, this.files.entry(id));
        },
        options,
      );
      return found;
    });
  }

  /** The budget of a search (see `NetworkIndexOptions.searchWorkBudget`). */
  private defaultWorkBudget(): number {
    return (
      this.workBudget ??
      Math.max(MIN_SEARCH_WORK_BUDGET, SEARCH_BITMAP_PASSES * Math.ceil(this.files.table.idCount / 32))
    );
  }

  /**
   * At most `limit` matches, whether more matched, and whether the work budget cut the search short. See
   * the class comment for what matches and in which order. `workBudget` overrides the index's default.
   */
  search(query: Query, limit: number, workBudget: number = this.defaultWorkBudget()): SearchOutcome {
    const max = limit >= 0 ? Math.floor(limit) : 0;
    const found: number[] = [];
    let exactCount = 0;
    let partial = false;
    if (query.kind === 'sha256') {
      this.files.findSha(query.sha256.toLowerCase(), max, found);
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
    const matches = found.map((id) => this.files.match(id));
    const results = orderedResults(matches.slice(0, exactCount), matches.slice(exactCount), max);
    return { results, truncated, partial };
  }

  private beginFull(state: IndexState): { peer: IndexPeer; result: FullResult } {
    const { peerId, instanceId, url, seq } = state;
    const result = this.peerTable.fullResult({ peerId, instanceId, url, seq, files: [] });
    const existing = this.peerTable.get(state.peerId);
    if (result === 'stale') return { peer: existing!, result };
    if (existing !== undefined) {
      existing.instanceId = state.instanceId;
      existing.url = state.url;
      existing.seq = state.seq;
      return { peer: existing, result };
    }
    const number = this.peerTable.nextNumber();
    const peer = new IndexPeer(state.peerId, number, state.instanceId, state.url, state.seq);
    this.peerTable.add(peer);
    return { peer, result };
  }

  /**
   * Whether `state`'s files go into `peer` without their names looked up: when it has no files left and the
   * state's names are distinct, none can be found. Such a state also goes in without name chains, built
   * only when a name of the peer is first looked up (a join of a thousand peers looks none up).
   */
  private upsertAt(peer: IndexPeer, files: IndexState['files'], i: number, absent: boolean): void {
    if (files instanceof PackedFiles) this.files.upsertPacked(peer, files, i, absent);
    else this.files.upsert(peer, files[i]!, absent);
  }

  private startFilling(peer: IndexPeer, state: IndexState): boolean {
    if (peer.fileCount > 0) return false;
    const absent = state.distinctNames === true;
    this.files.setUnchained(peer, absent);
    return absent;
  }

  /** `IndexFiles.chainNames` in slices (its list walked in them too: a peer may hold 100,000 files). */
  private async chainNamesAsync(peer: IndexPeer, options: SliceOptions): Promise<void> {
    if (peer.namesChained) return;
    let id = peer.first;
    await whileSliced(
      () => id >= 0,
      () => {
        this.files.chainName(id);
        id = this.files.nextOf(id);
      },
      options,
    );
    peer.namesChained = true;
  }

  /** Marks the file of `peer` named `name`; 1 when it was there and not marked yet, else 0. */
  private markName(peer: IndexPeer, name: string, epoch: number): number {
    const id = this.files.find(peer, name);
    if (id < 0 || this.updateMarks.get(id) === epoch) return 0;
    this.updateMarks.set(id, epoch);
    return 1;
  }

  private unmarkedIds(peer: IndexPeer, epoch: number): number[] {
    return this.files.ids(peer).filter((id) => this.updateMarks.get(id) !== epoch);
  }

  private removeName(peer: IndexPeer, name: string): void {
    const id = this.files.find(peer, name);
    if (id >= 0) this.files.remove(id);
  }

  private onCapacity(capacity: number): void {
    this.words.resize(capacity);
    this.updateMarks.setLimit(capacity);
  }

  private nextUpdateEpoch(): number {
    if (this.updateEpoch === 0xffffffff) {
      for (const piece of this.updateMarks.pieces) piece.fill(0);
      this.updateEpoch = 0;
    }
    return ++this.updateEpoch;
  }
}

function nameAt(files: IndexState['files'], i: number): string {
  return files instanceof PackedFiles ? files.name(i) : files[i]!.name;
}
