import type { FileEntry, SearchResult } from '../protocol/index.js';
import { fileUrl } from '../protocol/index.js';
import { SerialQueue } from './slices.js';

/** A peer's whole state (a join, a resync, or one peer of a snapshot). */
export interface PeerState {
  peerId: string;
  instanceId: string;
  url: string;
  seq: number;
  files: FileEntry[];
  /**
   * True only when the caller has checked that no name appears twice in `files` (a decoding thread does):
   * a peer's first state then goes in without looking each name up. A false claim breaks "the last one
   * wins" for that state. Default false.
   */
  distinctNames?: boolean;
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

/** What `PeerTable` needs of a peer record. */
export interface PeerEntry {
  readonly peerId: string;
  /** The peer's number in its table, for typed arrays that point at their owner. */
  readonly number: number;
  instanceId: string;
  url: string;
  seq: number;
  /** Set when the peer is leaving: its files are no longer results. */
  removed: boolean;
  readonly fileCount: number;
  readonly totalBytes: number;
}

/** The fields every peer record has; a store adds how it holds the peer's files. */
export abstract class PeerRecord implements PeerEntry {
  removed = false;
  totalBytes = 0;

  constructor(
    readonly peerId: string,
    readonly number: number,
    public instanceId: string,
    public url: string,
    public seq: number,
  ) {}

  abstract get fileCount(): number;
}

export function compareText(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/**
 * The peers of a store, by id and by a small number (reused once the peer's files are gone, so that a file
 * can name its owner in 4 bytes). Holds the update rules that the index and the map share.
 */
export class PeerTable<P extends PeerEntry> {
  private readonly byId = new Map<string, P>();
  private readonly byNumber: (P | undefined)[] = [];
  private readonly freeNumbers: number[] = [];

  get size(): number {
    return this.byId.size;
  }

  get(peerId: string): P | undefined {
    return this.byId.get(peerId);
  }

  /** The peer of number `number`, also while it is leaving. */
  at(number: number): P | undefined {
    return this.byNumber[number];
  }

  /** A number for a new peer; pass it to the record and then `add` the record. */
  nextNumber(): number {
    return this.freeNumbers.pop() ?? this.byNumber.length;
  }

  /** Adds a new peer, or puts a record in place of the current one of the same id (whose number goes). */
  add(peer: P): void {
    const previous = this.byId.get(peer.peerId);
    if (previous !== undefined && previous !== peer) this.release(previous);
    this.byId.set(peer.peerId, peer);
    this.byNumber[peer.number] = peer;
  }

  /**
   * Takes a peer out of the table when `instanceId` is absent or its own; it is marked `removed` and keeps
   * its number until `release`.
   */
  detach(peerId: string, instanceId?: string): P | undefined {
    const peer = this.byId.get(peerId);
    if (peer === undefined || (instanceId !== undefined && instanceId !== peer.instanceId)) return undefined;
    this.byId.delete(peerId);
    peer.removed = true;
    return peer;
  }

  /** Frees the number of a detached or replaced peer, whose files are gone. */
  release(peer: P): void {
    if (this.byNumber[peer.number] !== peer) return;
    this.byNumber[peer.number] = undefined;
    this.freeNumbers.push(peer.number);
  }

  /**
   * What a full state does to the current record: same instanceId and seq < current → 'stale'; same
   * instanceId, same seq and same url → 'unchanged'; otherwise 'applied'.
   */
  fullResult(state: PeerState): FullResult {
    const existing = this.byId.get(state.peerId);
    if (existing === undefined || existing.instanceId !== state.instanceId) return 'applied';
    if (state.seq < existing.seq) return 'stale';
    return state.seq === existing.seq && state.url === existing.url ? 'unchanged' : 'applied';
  }

  /** The record a delta applies to, or why it does not apply (see `NetworkIndex.applyDelta`). */
  deltaTarget(delta: PeerDeltaInput): { peer?: P; result: DeltaResult } {
    const peer = this.byId.get(delta.peerId);
    if (peer === undefined) return { result: 'unknown-peer' };
    if (peer.instanceId !== delta.instanceId) return { result: 'gap' };
    if (delta.seq <= peer.seq) return { result: 'duplicate' };
    if (delta.seq > peer.seq + 1) return { result: 'gap' };
    return { peer, result: 'applied' };
  }

  summary(peerId: string): IndexedPeer | undefined {
    const peer = this.byId.get(peerId);
    return peer === undefined ? undefined : summary(peer);
  }

  /** Every peer, sorted by peer id. */
  list(): IndexedPeer[] {
    return [...this.byId.values()].sort((a, b) => compareText(a.peerId, b.peerId)).map(summary);
  }

  values(): IterableIterator<P> {
    return this.byId.values();
  }
}

function summary(peer: PeerEntry): IndexedPeer {
  return {
    peerId: peer.peerId,
    instanceId: peer.instanceId,
    url: peer.url,
    seq: peer.seq,
    fileCount: peer.fileCount,
    totalBytes: peer.totalBytes,
  };
}

/** A match before it becomes a result. */
export interface Match {
  name: string;
  size: number;
  sha256: string;
  peer: { readonly peerId: string; readonly url: string };
}

/**
 * The results of a search: the exact-name matches, then the others, each group sorted by name then peer
 * id, at most `max` in all.
 */
export function orderedResults(exact: Match[], others: Match[], max: number): SearchResult[] {
  const order = (a: Match, b: Match) =>
    compareText(a.name, b.name) || compareText(a.peer.peerId, b.peer.peerId);
  exact.sort(order);
  others.sort(order);
  const results: SearchResult[] = [];
  for (const group of [exact, others]) {
    for (const { name, size, sha256, peer } of group) {
      if (results.length >= max) return results;
      results.push({ name, size, sha256, peerId: peer.peerId, url: fileUrl(peer.url, name) });
    }
  }
  return results;
}
/** What the index and the map share: their peers and the queue their async updates run through. */
export abstract class PeerStore<P extends PeerEntry> {
  protected readonly peerTable = new PeerTable<P>();
  protected readonly updates = new SerialQueue();

  get peerCount(): number {
    return this.peerTable.size;
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
    return this.peerTable.get(peerId) !== undefined;
  }

  getPeer(peerId: string): IndexedPeer | undefined {
    return this.peerTable.summary(peerId);
  }

  /** Every peer, sorted by peer id. */
  peers(): IndexedPeer[] {
    return this.peerTable.list();
  }
}
