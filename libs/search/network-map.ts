import type { FileEntry } from '../protocol/index.js';
import { NamedSlots } from './named-slots.js';
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

const SHA_BYTES = 32;
/** Work units of checking one name by tokenizing it (about fifty signature checks). */
const VERIFY_COST = 50;
const MIN_SLOTS = 8;

/*
 * One peer's files as columns: names (UTF-8 in a pooled buffer, see `NamedSlots`), sizes, SHA-256 bytes,
 * and a 64-bit signature per file (two bits per token: one for its first character, one for its first two)
 * that rules most files out of a word search without tokenizing their names. Removing a file moves the
 * last one into its slot.
 */
class MapPeer extends PeerRecord {
  readonly names = new NamedSlots((from, to) => this.move(from, to));
  sizes: Float64Array;
  shas: Buffer;
  signatures: Uint32Array;

  constructor(state: PeerState, number: number) {
    super(state.peerId, number, state.instanceId, state.url, state.seq);
    const capacity = state.files.length;
    // Name lengths in UTF-16 units: the exact UTF-8 size of ASCII names, and a start for the others.
    let bytes = 0;
    for (const file of state.files) bytes += file.name.length;
    this.names.reserve(capacity, bytes);
    const slots = Math.max(MIN_SLOTS, capacity);
    this.sizes = new Float64Array(slots);
    this.shas = Buffer.alloc(slots * SHA_BYTES);
    this.signatures = new Uint32Array(slots * 2);
  }

  get count(): number {
    return this.names.count;
  }

  get fileCount(): number {
    return this.names.count;
  }

  upsert(file: FileEntry): void {
    let slot = this.names.find(file.name);
    if (slot < 0) {
      slot = this.names.add(file.name);
      if (slot >= this.sizes.length) this.resize(Math.ceil(slot * 1.5) + MIN_SLOTS);
      this.sizes[slot] = 0;
      const signature = signatureOf(file.name);
      this.signatures[2 * slot] = signature[0]!;
      this.signatures[2 * slot + 1] = signature[1]!;
    }
    this.totalBytes += file.size - this.sizes[slot]!;
    this.sizes[slot] = file.size;
    this.shas.write(file.sha256.toLowerCase(), slot * SHA_BYTES, SHA_BYTES, 'hex');
  }

  remove(name: string): void {
    const slot = this.names.find(name);
    if (slot < 0) return;
    this.totalBytes -= this.sizes[slot]!;
    this.names.remove(slot);
    // Give memory back once three quarters of the columns are empty.
    if (this.sizes.length > MIN_SLOTS * 4 && this.count * 4 < this.sizes.length)
      this.resize(this.count * 2 + MIN_SLOTS);
  }

  name(slot: number): string {
    return this.names.name(slot);
  }

  sha(slot: number): string {
    return this.shas.toString('hex', slot * SHA_BYTES, slot * SHA_BYTES + SHA_BYTES);
  }

  /** Gives back spare memory once the peer's files are in. */
  fit(): void {
    this.names.fit();
    if (this.sizes.length > this.count + MIN_SLOTS) this.resize(this.count + MIN_SLOTS);
  }

  private move(from: number, to: number): void {
    this.sizes[to] = this.sizes[from]!;
    this.shas.copy(this.shas, to * SHA_BYTES, from * SHA_BYTES, from * SHA_BYTES + SHA_BYTES);
    this.signatures[2 * to] = this.signatures[2 * from]!;
    this.signatures[2 * to + 1] = this.signatures[2 * from + 1]!;
  }

  /** Resizes the columns to `slots` (at least the file count). */
  private resize(slots: number): void {
    const n = this.count;
    const sizes = new Float64Array(slots);
    sizes.set(this.sizes.subarray(0, n));
    this.sizes = sizes;
    const shas = Buffer.alloc(slots * SHA_BYTES);
    this.shas.copy(shas, 0, 0, n * SHA_BYTES);
    this.shas = shas;
    const signatures = new Uint32Array(slots * 2);
    signatures.set(this.signatures.subarray(0, 2 * n));
    this.signatures = signatures;
  }
}

/** FNV-1a over UTF-16 code units. */
function hashText(text: string): number {
  let hash = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) hash = Math.imul(hash ^ text.charCodeAt(i), 0x01000193);
  return hash >>> 0;
}

/** Bit (0-63) standing for "some token starts with `prefix`" (one or two characters). */
function prefixBit(prefix: string): number {
  return hashText(prefix) % 61;
}

function signatureOf(name: string): [number, number] {
  const signature: [number, number] = [0, 0];
  for (const token of tokenize(name)) {
    for (const prefix of token.length > 1 ? [token.slice(0, 1), token.slice(0, 2)] : [token]) {
      const bit = prefixBit(prefix);
      signature[bit >>> 5]! |= 1 << (bit & 31);
    }
  }
  return signature;
}

/** The signature bits every file matching `words` must have. */
function wordsSignature(words: readonly string[]): [number, number] {
  const signature: [number, number] = [0, 0];
  for (const word of words) {
    const bit = prefixBit(word.slice(0, 2));
    signature[bit >>> 5]! |= 1 << (bit & 31);
  }
  return signature;
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
    const peer = this.peerTable.get(peerId);
    if (peer === undefined) return [];
    return Array.from({ length: peer.count }, (_, slot) => ({
      name: peer.name(slot),
      size: peer.sizes[slot]!,
      sha256: peer.sha(slot),
    }));
  }

  /** See `NetworkIndex.applyFull`. The peer's columns are rebuilt from `files`. */
  applyFull(state: PeerState): FullResult {
    const result = this.peerTable.fullResult(state);
    if (result === 'stale') return result;
    const peer = this.newPeer(state);
    for (const file of state.files) peer.upsert(file);
    this.install(peer);
    return result;
  }

  /** `applyFull` in slices; the previous state stays searchable until the new one is complete. */
  applyFullAsync(state: PeerState, options: SliceOptions = {}): Promise<FullResult> {
    return this.updates.run(async () => {
      const result = this.peerTable.fullResult(state);
      if (result === 'stale') return result;
      const peer = this.newPeer(state);
      await runSliced(
        () => state.files.length,
        (i) => peer.upsert(state.files[i]!),
        options,
      );
      this.install(peer);
      return result;
    });
  }

  /** See `NetworkIndex.applyDelta`. */
  applyDelta(delta: PeerDeltaInput): DeltaResult {
    const { peer, result } = this.peerTable.deltaTarget(delta);
    if (peer === undefined) return result;
    const before = peer.count;
    for (const name of delta.removed) peer.remove(name);
    for (const file of delta.upserted) peer.upsert(file);
    this.files += peer.count - before;
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
    this.files -= peer.count;
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
          const shas = peer.shas;
          for (let slot = 0; slot < peer.count; slot++) {
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
      name: peer.name(slot),
      size: peer.sizes[slot]!,
      sha256: peer.sha(slot),
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
      const signatures = peer.signatures;
      for (let slot = 0; slot < peer.count; slot++) {
        if (++work > budget) return true;
        if ((signatures[2 * slot]! & low) !== low || (signatures[2 * slot + 1]! & high) !== high) continue;
        work += VERIFY_COST;
        const tokens = tokenize(peer.name(slot));
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

  private newPeer(state: PeerState): MapPeer {
    return new MapPeer(state, this.peerTable.nextNumber());
  }

  private install(peer: MapPeer): void {
    peer.fit();
    const previous = this.peerTable.get(peer.peerId);
    if (previous !== undefined) this.files -= previous.count;
    this.peerTable.add(peer);
    this.files += peer.count;
  }
}
