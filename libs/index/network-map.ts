import type { FileEntry, SearchResult } from '../protocol/index.js';
import { fileUrl } from '../protocol/index.js';
import type {
  DeltaResult,
  FullResult,
  IndexedPeer,
  PeerDeltaInput,
  PeerState,
  SearchOutcome,
} from './network-index.js';
import { type Query, tokenize } from './query.js';
import { runSliced, SerialQueue, type SliceOptions } from './slices.js';

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
 * One peer's files as columns: names, sizes, SHA-256 bytes, and a 64-bit signature per file (two bits per
 * token: one for its first character, one for its first two) that rules most files out of a word search
 * without tokenizing their names. Names are found through an open-addressing hash table of slot numbers.
 * Removing a file moves the last one into its slot.
 */
class MapPeer {
  names: string[] = [];
  sizes: Float64Array;
  shas: Buffer;
  signatures: Uint32Array;
  /** slot + 1 per bucket, 0 = empty; length a power of two at least twice the file count. */
  table: Int32Array;
  totalBytes = 0;

  constructor(
    readonly peerId: string,
    public instanceId: string,
    public url: string,
    public seq: number,
    capacity: number,
  ) {
    const slots = Math.max(MIN_SLOTS, capacity);
    this.sizes = new Float64Array(slots);
    this.shas = Buffer.alloc(slots * SHA_BYTES);
    this.signatures = new Uint32Array(slots * 2);
    this.table = new Int32Array(tableSize(slots));
  }

  get count(): number {
    return this.names.length;
  }

  find(name: string): number {
    const mask = this.table.length - 1;
    for (let b = hashText(name) & mask; ; b = (b + 1) & mask) {
      const entry = this.table[b]!;
      if (entry === 0) return -1;
      if (this.names[entry - 1] === name) return entry - 1;
    }
  }

  upsert(file: FileEntry): void {
    let slot = this.find(file.name);
    if (slot < 0) {
      slot = this.names.length;
      if (slot >= this.sizes.length) this.grow(Math.ceil(slot * 1.5) + MIN_SLOTS);
      this.names.push(file.name);
      this.sizes[slot] = 0;
      this.tableInsert(file.name, slot);
      const signature = signatureOf(file.name);
      this.signatures[2 * slot] = signature[0]!;
      this.signatures[2 * slot + 1] = signature[1]!;
    }
    this.totalBytes += file.size - this.sizes[slot]!;
    this.sizes[slot] = file.size;
    this.shas.write(file.sha256.toLowerCase(), slot * SHA_BYTES, SHA_BYTES, 'hex');
  }

  remove(name: string): void {
    const slot = this.find(name);
    if (slot < 0) return;
    this.tableDelete(name);
    this.totalBytes -= this.sizes[slot]!;
    const last = this.names.length - 1;
    if (slot !== last) {
      const moved = this.names[last]!;
      this.tableDelete(moved);
      this.names[slot] = moved;
      this.sizes[slot] = this.sizes[last]!;
      this.shas.copy(this.shas, slot * SHA_BYTES, last * SHA_BYTES, last * SHA_BYTES + SHA_BYTES);
      this.signatures[2 * slot] = this.signatures[2 * last]!;
      this.signatures[2 * slot + 1] = this.signatures[2 * last + 1]!;
      this.tableInsert(moved, slot);
    }
    this.names.pop();
    // Give memory back once three quarters of the columns are empty.
    if (this.sizes.length > MIN_SLOTS * 4 && this.names.length * 4 < this.sizes.length)
      this.grow(this.names.length * 2 + MIN_SLOTS);
  }

  sha(slot: number): string {
    return this.shas.toString('hex', slot * SHA_BYTES, slot * SHA_BYTES + SHA_BYTES);
  }

  /** Resizes the columns to `slots` (at least the file count) and rebuilds the table. */
  private grow(slots: number): void {
    const n = this.names.length;
    const sizes = new Float64Array(slots);
    sizes.set(this.sizes.subarray(0, n));
    this.sizes = sizes;
    const shas = Buffer.alloc(slots * SHA_BYTES);
    this.shas.copy(shas, 0, 0, n * SHA_BYTES);
    this.shas = shas;
    const signatures = new Uint32Array(slots * 2);
    signatures.set(this.signatures.subarray(0, 2 * n));
    this.signatures = signatures;
    this.table = new Int32Array(tableSize(slots));
    for (let slot = 0; slot < n; slot++) this.tableInsert(this.names[slot]!, slot);
  }

  private tableInsert(name: string, slot: number): void {
    const mask = this.table.length - 1;
    let b = hashText(name) & mask;
    while (this.table[b] !== 0) b = (b + 1) & mask;
    this.table[b] = slot + 1;
  }

  /** Linear-probing deletion by backward shift: no tombstones, so lookups stay short. */
  private tableDelete(name: string): void {
    const table = this.table;
    const mask = table.length - 1;
    let b = hashText(name) & mask;
    while (table[b] !== 0 && this.names[table[b]! - 1] !== name) b = (b + 1) & mask;
    if (table[b] === 0) return;
    let hole = b;
    for (let next = (hole + 1) & mask; table[next] !== 0; next = (next + 1) & mask) {
      const home = hashText(this.names[table[next]! - 1]!) & mask;
      // Move `next` into the hole unless its home lies cyclically in (hole, next].
      const between = hole <= next ? home > hole && home <= next : home > hole || home <= next;
      if (!between) {
        table[hole] = table[next]!;
        hole = next;
      }
    }
    table[hole] = 0;
  }
}

function tableSize(slots: number): number {
  let size = MIN_SLOTS * 2;
  while (size < slots * 2) size *= 2;
  return size;
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

function compareText(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
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
export class NetworkMap {
  private readonly peersById = new Map<string, MapPeer>();
  private readonly updates = new SerialQueue();
  private files = 0;
  private readonly workBudget: number;

  constructor(options: NetworkMapOptions = {}) {
    this.workBudget = options.searchWorkBudget ?? 1_500_000;
  }

  get fileCount(): number {
    return this.files;
  }

  get peerCount(): number {
    return this.peersById.size;
  }

  /** Async updates queued or running. */
  get pendingUpdates(): number {
    return this.updates.size;
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

  /** A peer's files in the order the map holds them (not sorted). */
  peerFiles(peerId: string): Omit<FileEntry, 'mtimeMs'>[] {
    const peer = this.peersById.get(peerId);
    if (peer === undefined) return [];
    return peer.names.map((name, slot) => ({ name, size: peer.sizes[slot]!, sha256: peer.sha(slot) }));
  }

  /** See `NetworkIndex.applyFull`. The peer's columns are rebuilt from `files`. */
  applyFull(state: PeerState): FullResult {
    const result = this.fullResult(state);
    if (result === 'stale') return result;
    const peer = this.newPeer(state);
    for (const file of state.files) peer.upsert(file);
    this.install(peer);
    return result;
  }

  /** `applyFull` in slices; the previous state stays searchable until the new one is complete. */
  applyFullAsync(state: PeerState, options: SliceOptions = {}): Promise<FullResult> {
    return this.updates.run(async () => {
      const result = this.fullResult(state);
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
    const peer = this.peersById.get(delta.peerId);
    if (peer === undefined) return 'unknown-peer';
    if (peer.instanceId !== delta.instanceId) return 'gap';
    if (delta.seq <= peer.seq) return 'duplicate';
    if (delta.seq > peer.seq + 1) return 'gap';
    const before = peer.count;
    for (const name of delta.removed) peer.remove(name);
    for (const file of delta.upserted) peer.upsert(file);
    this.files += peer.count - before;
    peer.seq = delta.seq;
    return 'applied';
  }

  /** `applyDelta` after the async updates before it (a delta is at most a message's worth of files). */
  applyDeltaAsync(delta: PeerDeltaInput): Promise<DeltaResult> {
    return this.updates.run(() => this.applyDelta(delta));
  }

  /** See `NetworkIndex.removePeer`. */
  removePeer(peerId: string, instanceId?: string): boolean {
    const peer = this.peersById.get(peerId);
    if (peer === undefined) return false;
    if (instanceId !== undefined && instanceId !== peer.instanceId) return false;
    this.peersById.delete(peerId);
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
    const peers = [...this.peersById.values()];
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
    // Exact-name matches first, each group by name then peer id; cut to the limit after ordering the exact.
    const order = (a: (typeof found)[number], b: (typeof found)[number]) =>
      compareText(a.peer.names[a.slot]!, b.peer.names[b.slot]!) || compareText(a.peer.peerId, b.peer.peerId);
    const sorted = [
      ...found.filter((f) => f.exact).sort(order),
      ...found.filter((f) => !f.exact).sort(order),
    ];
    const results = sorted.slice(0, max).map(({ peer, slot }): SearchResult => {
      const name = peer.names[slot]!;
      return {
        name,
        size: peer.sizes[slot]!,
        sha256: peer.sha(slot),
        peerId: peer.peerId,
        url: fileUrl(peer.url, name),
      };
    });
    return { results, truncated, partial };
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
        const tokens = tokenize(peer.names[slot]!);
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

  private fullResult(state: PeerState): FullResult {
    const existing = this.peersById.get(state.peerId);
    if (existing === undefined || existing.instanceId !== state.instanceId) return 'applied';
    if (state.seq < existing.seq) return 'stale';
    return state.seq === existing.seq && state.url === existing.url ? 'unchanged' : 'applied';
  }

  private newPeer(state: PeerState): MapPeer {
    return new MapPeer(state.peerId, state.instanceId, state.url, state.seq, state.files.length);
  }

  private install(peer: MapPeer): void {
    const previous = this.peersById.get(peer.peerId);
    if (previous !== undefined) this.files -= previous.count;
    this.peersById.set(peer.peerId, peer);
    this.files += peer.count;
  }
}

function summary(peer: MapPeer): IndexedPeer {
  return {
    peerId: peer.peerId,
    instanceId: peer.instanceId,
    url: peer.url,
    seq: peer.seq,
    fileCount: peer.count,
    totalBytes: peer.totalBytes,
  };
}
