import { type FileEntry, PackedFiles, packFiles } from '../protocol/index.js';
import { MapFiles, SHA_BYTES, wordsSignature } from './map-files.js';
import type {
  DeltaResult,
  FullResult,
  Match,
  PeerDeltaInput,
  PeerState,
  SearchOutcome,
} from './peer-table.js';
import { orderedResults, PeerRecord, PeerStore } from './peer-table.js';
import { type Query, tokenize } from './query.js';
import { runSliced, type SliceOptions } from './slices.js';

export interface NetworkMapOptions {
  /**
   * Most work one search may do: one unit per file whose signature is looked at, `VERIFY_COST` per file
   * whose name is tokenized; past it the search stops and says `partial`. Default 1,500,000 (a network of
   * a million files is looked at whole, with twenty thousand names checked).
   */
  searchWorkBudget?: number;
}

/** Work units of checking one name by tokenizing it (about fifty signature checks). */
const VERIFY_COST = 50;
/**
 * Most files a staged peer reserves room for before they arrive (about 3 MB; a bigger peer's columns grow
 * as its files come), so that a state announcing many chunks and sending one costs little.
 */
const MAX_RESERVED_FILES = 32_000;

/** Largest buffer `SpareBuffers` keeps (a state of 1000 files with 40-byte names packs into about 100 KB). */
const MAX_SPARE_BYTES = 1 << 20;

/**
 * Buffers that packed a message's files, kept for the next: two at most (a broadcast and a snapshot page
 * may be staged at once), of at most MAX_SPARE_BYTES each.
 */
class SpareBuffers {
  private readonly buffers: ArrayBuffer[] = [];

  /** A kept buffer of at least `bytes`, or undefined. */
  take(bytes: number): ArrayBuffer | undefined {
    const at = this.buffers.findIndex((buffer) => buffer.byteLength >= bytes);
    return at < 0 ? undefined : this.buffers.splice(at, 1)[0];
  }

  give(buffer: ArrayBuffer): void {
    if (this.buffers.length < 2 && buffer.byteLength <= MAX_SPARE_BYTES) this.buffers.push(buffer);
  }
}

/** A peer of the map: its record and its files' columns. */
class MapPeer extends PeerRecord {
  constructor(
    state: PeerHeader,
    number: number,
    readonly files: MapFiles,
  ) {
    super(state.peerId, number, state.instanceId, state.url, state.seq);
    this.totalBytes = files.totalBytes;
  }

  get fileCount(): number {
    return this.files.count;
  }
}

/** A peer's state without its files. */
export type PeerHeader = Omit<PeerState, 'files'>;

/**
 * A peer's whole state while it arrives in pieces (the chunks of a broadcast, the pages of a snapshot): each
 * piece goes into compact columns as it comes, so that no list of parsed entries waits for the rest (a
 * million of those would cost the peer hundreds of MB of heap). Not in the map until `applyStagedAsync`.
 */
export interface StagedPeer {
  readonly header: PeerHeader;
  /** Files announced in all (an estimate: room is reserved for them). */
  readonly expectedFiles: number;
  /** @internal */
  readonly files: MapFiles;
}

/**
 * The whole network's map of who has what, compact: what a peer keeps as its view. No inverted index: per
 * peer, columns of names, sizes and SHA-256 bytes (about 130 bytes a file with the name), so a million
 * files cost about 130 MB instead of the ~400 of a `NetworkIndex`. Searching scans with a per-file
 * signature that rules most names out, under a work budget (`partial` past it): it serves as the
 * fallback when no superpeer answers, not as the network's search.
 *
 * Same update semantics as `NetworkIndex` (`applyFull`, `applyDelta`, `removePeer`, their results); the
 * `…Async` versions run one at a time in call order, in slices (use only those while one may be running).
 * Removing a peer drops its columns at once.
 */
export class NetworkMap extends PeerStore<MapPeer> {
  private files = 0;
  private readonly spares = new SpareBuffers();
  private readonly workBudget: number;

  constructor(options: NetworkMapOptions = {}) {
    super();
    this.workBudget = options.searchWorkBudget ?? 1_500_000;
  }

  get fileCount(): number {
    return this.files;
  }

  /** A peer's files in the order the map holds them (not sorted). */
  peerFiles(peerId: string): Omit<FileEntry, 'mtimeMs'>[] {
    const files = this.peerTable.get(peerId)?.files;
    if (files === undefined) return [];
    return Array.from({ length: files.count }, (_, slot) => ({
      name: files.name(slot),
      size: files.sizes[slot]!,
      sha256: files.sha(slot),
    }));
  }

  /** See `NetworkIndex.applyFull`. The peer's columns are rebuilt from `files`. */
  applyFull(state: PeerState): FullResult {
    const result = this.peerTable.fullResult(state);
    if (result === 'stale') return result;
    const staged = this.stage(state, state.files.length);
    this.addStaged(staged, state.files);
    this.install(staged);
    return result;
  }

  /** `applyFull` in slices; the previous state stays searchable until the new one is complete. */
  applyFullAsync(state: PeerState, options: SliceOptions = {}): Promise<FullResult> {
    return this.updates.run(async () => {
      const result = this.peerTable.fullResult(state);
      if (result === 'stale') return result;
      const staged = this.stage(state, state.files.length);
      await this.addStagedAsync(staged, state.files, options);
      this.install(staged);
      return result;
    });
  }

  /**
   * Starts a peer's full state that arrives in pieces of at most a message's worth of files each
   * (`addStaged`), applied by `applyStagedAsync` once whole. The map does not change meanwhile.
   */
  stage(header: PeerHeader, expectedFiles: number): StagedPeer {
    const { peerId, instanceId, url, seq } = header;
    const expected = Math.max(0, Math.min(Math.floor(expectedFiles), MAX_RESERVED_FILES));
    return {
      header: { peerId, instanceId, url, seq },
      expectedFiles: expected,
      files: new MapFiles(expected),
    };
  }

  /**
   * Adds a piece of a staged peer's files at once (at most a message's worth), as objects or packed
   * (whose buffer the map then keeps as a spare: it must not be read again).
   */
  addStaged(staged: StagedPeer, files: readonly FileEntry[] | PackedFiles): void {
    this.reserveStaged(staged, files);
    const packed = this.pack(files);
    for (let i = 0; i < packed.length; i++) staged.files.upsertPacked(packed, i);
    this.spares.give(packed.buffer);
  }

  /** `addStaged` in slices (the map does not change meanwhile: the staged peer is not in it yet). */
  async addStagedAsync(
    staged: StagedPeer,
    files: readonly FileEntry[] | PackedFiles,
    options: SliceOptions = {},
  ): Promise<void> {
    this.reserveStaged(staged, files);
    const packed = this.pack(files);
    await runSliced(
      () => packed.length,
      (i) => staged.files.upsertPacked(packed, i),
      options,
    );
    this.spares.give(packed.buffer);
  }

  /**
   * A message's files (validated already) in columns, so that they go in without a call into Buffer's
   * native code per name and per hash (packFiles writes them all in one call each).
   */
  private pack(files: readonly FileEntry[] | PackedFiles): PackedFiles {
    return files instanceof PackedFiles ? files : packFiles(files, '', this.spare);
  }

  /**
   * A buffer of at least `bytes` that a packed list was read from, to pack another into (a new 100 KB
   * buffer per message makes the peer collect more often), or undefined.
   */
  readonly spare = (bytes: number): ArrayBuffer | undefined => this.spares.take(bytes);

  /** Before the first piece: room for the whole at once, with names as long on average as this piece's. */
  private reserveStaged(staged: StagedPeer, files: readonly FileEntry[] | PackedFiles): void {
    if (staged.files.count > 0 || files.length === 0) return;
    let bytes = 0;
    if (files instanceof PackedFiles) bytes = files.names.length;
    else for (const file of files) bytes += file.name.length;
    const expected = Math.max(staged.expectedFiles, files.length);
    staged.files.reserve(expected, Math.ceil((bytes / files.length) * expected));
  }

  /** Puts a staged peer in the map (after the async updates before it), as `applyFull` would. */
  applyStagedAsync(staged: StagedPeer): Promise<FullResult> {
    return this.updates.run(() => {
      const result = this.peerTable.fullResult({ ...staged.header, files: [] });
      if (result !== 'stale') this.install(staged);
      return result;
    });
  }

  /** See `NetworkIndex.applyDelta`. */
  applyDelta(delta: PeerDeltaInput): DeltaResult {
    const { peer, result } = this.peerTable.deltaTarget(delta);
    if (peer === undefined) return result;
    const files = peer.files;
    const before = files.count;
    for (const name of delta.removed) files.remove(name);
    for (const file of delta.upserted) files.upsert(file);
    this.files += files.count - before;
    peer.totalBytes = files.totalBytes;
    peer.seq = delta.seq;
    return result;
  }

  /** `applyDelta` after the async updates before it (a delta is at most a message's worth of files). */
  applyDeltaAsync(delta: PeerDeltaInput): Promise<DeltaResult> {
    return this.updates.run(() => this.applyDelta(delta));
  }

  /** See `NetworkIndex.removePeer`. */
  removePeer(peerId: string, instanceId?: string): boolean {
    const peer = this.peerTable.detach(peerId, instanceId);
    if (peer === undefined) return false;
    this.peerTable.release(peer);
    this.files -= peer.fileCount;
    return true;
  }

  /** `removePeer` after the async updates before it. */
  removePeerAsync(peerId: string, instanceId?: string): Promise<boolean> {
    return this.updates.run(() => this.removePeer(peerId, instanceId));
  }

  /**
   * Same matches and order as `NetworkIndex.search`, found by a scan: at most `limit`, `truncated` when
   * more matched or the work budget ran out (`partial`).
   */
  search(query: Query, limit: number, workBudget: number = this.workBudget): SearchOutcome {
    const max = limit >= 0 ? Math.floor(limit) : 0;
    const found: { peer: MapPeer; slot: number; exact: boolean }[] = [];
    let partial = false;
    const peers = [...this.peerTable.values()];
    if (query.kind === 'sha256') {
      const sha256 = query.sha256.toLowerCase();
      if (/^[0-9a-f]{64}$/.test(sha256)) {
        const bytes = Buffer.from(sha256, 'hex');
        scan: for (const peer of peers) {
          const { shas, count } = peer.files;
          for (let slot = 0; slot < count; slot++) {
            const base = slot * SHA_BYTES;
            if (shas[base] !== bytes[0] || shas.compare(bytes, 0, SHA_BYTES, base, base + SHA_BYTES) !== 0)
              continue;
            found.push({ peer, slot, exact: false });
            if (found.length > max) break scan;
          }
        }
      }
    } else {
      const words = query.words.flatMap(tokenize);
      if (words.length > 0) partial = this.scanWords(peers, words, max, found, workBudget);
    }
    const truncated = found.length > max || partial;
    const match = ({ peer, slot }: (typeof found)[number]): Match => ({
      name: peer.files.name(slot),
      size: peer.files.sizes[slot]!,
      sha256: peer.files.sha(slot),
      peer,
    });
    const exact = found.filter((f) => f.exact).map(match);
    const others = found.filter((f) => !f.exact).map(match);
    return { results: orderedResults(exact, others, max), truncated, partial };
  }

  private scanWords(
    peers: readonly MapPeer[],
    words: string[],
    max: number,
    found: { peer: MapPeer; slot: number; exact: boolean }[],
    budget: number,
  ): boolean {
    const [low, high] = wordsSignature(words);
    const exactKey = words.join('\0');
    let work = 0;
    let nonExact = 0;
    for (const peer of peers) {
      const files = peer.files;
      const { signatures, count } = files;
      for (let slot = 0; slot < count; slot++) {
        if (++work > budget) return true;
        if ((signatures[2 * slot]! & low) !== low || (signatures[2 * slot + 1]! & high) !== high) continue;
        work += VERIFY_COST;
        const tokens = tokenize(files.name(slot));
        if (!words.every((word) => tokens.some((token) => token.startsWith(word)))) continue;
        const exact = tokens.join('\0') === exactKey;
        found.push({ peer, slot, exact });
        if (!exact) nonExact++;
        // Exact matches come first whatever the limit, so only other matches can end the scan early.
        if (nonExact > max) return false;
      }
    }
    return false;
  }

  private install(staged: StagedPeer): void {
    staged.files.fit();
    const peer = new MapPeer(staged.header, this.peerTable.nextNumber(), staged.files);
    const previous = this.peerTable.get(peer.peerId);
    if (previous !== undefined) this.files -= previous.fileCount;
    this.peerTable.add(peer);
    this.files += peer.fileCount;
  }
}
