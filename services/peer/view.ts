import { describeError, P2PError } from '../../libs/errors/index.js';
import type { Log } from '../../libs/logging/index.js';
import {
  type NetworkPeerDelta,
  type NetworkPeerLeft,
  type NetworkPeerState,
  type PackedFiles,
  PROTOCOL_VERSION,
  type SnapshotReply,
  type SnapshotRequest,
  type WithFileLists,
} from '../../libs/protocol/index.js';
import { NetworkMap } from '../../libs/search/index.js';

/**
 * States being received in pieces at once, at most (their peers are those the superpeers broadcast at the
 * same time: a few); past it the oldest is dropped (a resync or a reload repairs it).
 */
const MAX_ASSEMBLIES = 1024;

/** Resolves after a turn of the event loop: what follows runs in a task of its own. */
export const nextTurn = () => new Promise<void>((resolve) => setImmediate(resolve));

/** Leaves, and states, remembered while a snapshot loads, at most each (peer ids: a few MB at most). */
const MAX_REMEMBERED_DURING_LOADS = 100_000;

/** Adds `peerId` to a bounded set of the most recent. */
function remember(peers: Set<string>, peerId: string): void {
  peers.delete(peerId);
  if (peers.size >= MAX_REMEMBERED_DURING_LOADS) peers.delete(peers.values().next().value!);
  peers.add(peerId);
}

/** A peer's state being received in pieces, its files already in the map's compact columns. */
type StagedPeer = ReturnType<NetworkMap['stage']>;

/**
 * Fetches one snapshot page from a superpeer (an RPC in the peer): the reply, with each peer's files in
 * columns when they were read canonically (`packed[k]` for `value.peers[k]`, whose `files` is then empty).
 */
export type SnapshotFetcher = (request: SnapshotRequest) => Promise<WithFileLists<SnapshotReply>>;

type SnapshotCursor = NonNullable<SnapshotRequest['cursor']>;

/** True when `next` comes after `cursor` in a snapshot's order (peer id, then file offset). */
function cursorAfter(next: SnapshotCursor, cursor: SnapshotCursor): boolean {
  return (
    next.peerId > cursor.peerId || (next.peerId === cursor.peerId && next.fileOffset > cursor.fileOffset)
  );
}

/**
 * A peer that changed between two snapshot pages is read again from its first file this many times in a row
 * at most; past it (a peer whose list changes faster than pages come) it is skipped in this load, keeping
 * what the view holds of it (its broadcasts keep that current).
 */
const MAX_PEER_REREADS = 3;
/** A cursor past every file of its peer: the superpeer answers from the next peer on. */
const PAST_ITS_FILES = Number.MAX_SAFE_INTEGER;

/** True when `page` goes on with the files of `assembly` where its previous page stopped, in the same list. */
function continues(
  assembly: Assembly & { peerId: string; total: number },
  page: SnapshotReply['peers'][number],
): boolean {
  const { header } = assembly.staged;
  return (
    page.peerId === assembly.peerId &&
    page.instanceId === header.instanceId &&
    page.seq === header.seq &&
    page.fileOffset === assembly.next &&
    page.fileTotal === assembly.total
  );
}

interface Assembly {
  name: string | undefined;
  staged: StagedPeer;
  /** The next chunk expected (a broadcast), or the files received so far (a snapshot). */
  next: number;
}

/**
 * A peer's live view of the network: a snapshot from a superpeer, kept current by the superpeers'
 * broadcasts. Changes apply once, in sequence per peer; a gap is repaired by fetching that peer's state.
 * The map is compact (no inverted index: about 130 bytes a file) and updated in slices, one change at a time
 * in arrival order, so a million files in the network cost a peer neither its memory nor its event loop.
 */
export class NetworkView {
  readonly index = new NetworkMap();
  /** A buffer to pack a message's files into (see `NetworkMap.spare`). */
  readonly spare = (bytes: number): ArrayBuffer | undefined => this.index.spare(bytes);
  /** Display names of the peers in the map (ids are derived from keys and checked by the schemas). */
  private readonly names = new Map<string, string>();
  private readonly assemblies = new Map<string, Assembly>();
  /** When the view was last known complete (a full snapshot, then only in-order changes). */
  private syncedAtMs: number | undefined;
  private refreshing: Promise<void> | undefined;
  /** Bumped by `markStale`: a reload that began before it cannot make the view current. */
  private staleEpoch = 0;
  /** Peer-left messages applied so far. */
  private leaves = 0;
  /** Snapshot loads running, and the peers that left meanwhile (with the number of their leave). */
  private loadsRunning = 0;
  private readonly leftDuringLoads = new Map<string, { leave: number; instanceId: string | undefined }>();
  /** Peers whose whole state a broadcast brought while a snapshot loaded: newer than any page of it. */
  private readonly statedDuringLoads = new Set<string>();

  constructor(
    private readonly fetchSnapshot: SnapshotFetcher,
    private readonly logger: Log,
  ) {}

  /** True until a full snapshot has been loaded since the last connect. */
  get stale(): boolean {
    return this.syncedAtMs === undefined;
  }

  markStale(): void {
    this.syncedAtMs = undefined;
    this.staleEpoch++;
  }

  /** The peers in the view, with their display names. */
  peers(): Array<ReturnType<NetworkMap['peers']>[number] & { name?: string }> {
    return this.index.peers().map((peer) => {
      const name = this.names.get(peer.peerId);
      return name === undefined ? peer : { ...peer, name };
    });
  }

  /** The display name a peer announced, if any. */
  nameOf(peerId: string): string | undefined {
    return this.names.get(peerId);
  }

  private async applyFull(peerId: string, assembly: Assembly): Promise<void> {
    const result = await this.index.applyStagedAsync(assembly.staged);
    if (result === 'stale') return;
    if (assembly.name === undefined) this.names.delete(peerId);
    else this.names.set(peerId, assembly.name);
  }

  private async removePeer(peerId: string, instanceId?: string): Promise<void> {
    await this.index.removePeerAsync(peerId, instanceId);
    if (!this.index.hasPeer(peerId)) this.names.delete(peerId);
  }

  /**
   * One chunk of a peer's state: its files go into the staged peer as they come (in slices, so the parsed
   * message dies young and no list of a million entries waits); the whole is applied after the last chunk.
   * Resolves once the chunk is staged: the caller takes the next message only then. `packed`: the
   * message's files, read into columns already (its `files` is then empty).
   */
  async applyState(message: NetworkPeerState, packed?: PackedFiles): Promise<void> {
    const files = packed ?? message.files;
    let assembly = this.assemblies.get(message.peerId);
    if (message.chunkIndex === 0) {
      assembly = {
        name: message.name,
        // Reserved for the files at hand only: a chunk count is a claim, and 1024 assemblies may be open.
        staged: this.index.stage(message, files.length),
        next: 0,
      };
      this.assemblies.delete(message.peerId);
      if (this.assemblies.size >= MAX_ASSEMBLIES) {
        const oldest = this.assemblies.keys().next().value;
        if (oldest !== undefined) this.assemblies.delete(oldest);
      }
      this.assemblies.set(message.peerId, assembly);
    }
    if (
      !assembly ||
      assembly.staged.header.instanceId !== message.instanceId ||
      assembly.staged.header.seq !== message.seq ||
      assembly.next !== message.chunkIndex
    ) {
      return; // a chunk out of order: another superpeer's copy, or the start was missed
    }
    assembly.next++;
    // The message was parsed and checked in this task: its files go in from the next one.
    await nextTurn();
    if (this.assemblies.get(message.peerId) !== assembly) return; // left or restarted meanwhile
    await this.index.addStagedAsync(assembly.staged, files);
    if (this.assemblies.get(message.peerId) !== assembly) return; // left or restarted meanwhile
    if (assembly.next < message.chunkCount) return;
    this.assemblies.delete(message.peerId);
    if (this.loadsRunning > 0) remember(this.statedDuringLoads, message.peerId);
    void this.applyFull(message.peerId, assembly);
  }

  /** Resolves once the delta is applied (after the updates before it). */
  async applyDelta(message: NetworkPeerDelta): Promise<void> {
    const result = await this.index.applyDeltaAsync(message);
    if (result === 'gap' || result === 'unknown-peer') {
      this.logger.debug('gap in a peer sequence; fetching its state', { peerId: message.peerId, result });
      void this.refresh(message.peerId).catch(() => undefined);
    }
  }

  applyLeft(message: NetworkPeerLeft): void {
    this.assemblies.delete(message.peerId);
    this.leaves++;
    if (this.loadsRunning > 0) {
      const left = this.leftDuringLoads;
      left.delete(message.peerId);
      if (left.size >= MAX_REMEMBERED_DURING_LOADS) left.delete(left.keys().next().value!);
      left.set(message.peerId, { leave: this.leaves, instanceId: message.instanceId });
      this.statedDuringLoads.delete(message.peerId);
    }
    void this.removePeer(message.peerId, message.instanceId);
  }

  /**
   * True when `peerId` left after its snapshot page was received (`leavesBefore` leaves ago): the page is
   * older than the leave, so applying it would bring the peer back for good.
   */
  private leftSince(peerId: string, instanceId: string, leavesBefore: number): boolean {
    const left = this.leftDuringLoads.get(peerId);
    if (left === undefined || left.leave <= leavesBefore) return false;
    return left.instanceId === undefined || left.instanceId === instanceId;
  }

  /** Resolves once every change received so far is applied. */
  settled(): Promise<void> {
    return this.index.idle();
  }

  /**
   * Loads the superpeer's index page by page (all peers, or one). A full refresh also drops peers the
   * superpeer no longer knows. Concurrent full refreshes share one run.
   */
  refresh(peerId?: string): Promise<void> {
    if (peerId === undefined) {
      this.refreshing ??= this.load(undefined).finally(() => {
        this.refreshing = undefined;
      });
      return this.refreshing;
    }
    return this.load(peerId);
  }

  private async load(peerId: string | undefined): Promise<void> {
    this.loadsRunning++;
    try {
      await this.loadPages(peerId);
    } finally {
      if (--this.loadsRunning === 0) {
        this.leftDuringLoads.clear();
        this.statedDuringLoads.clear();
      }
    }
  }

  private async loadPages(peerId: string | undefined): Promise<void> {
    const epoch = this.staleEpoch;
    const received = new Set<string>();
    let assembly: (Assembly & { peerId: string; total: number; leavesBefore: number }) | undefined;
    let cursor: SnapshotRequest['cursor'];
    /** The peer read again from its start, how often in a row; and the one skipped (its pages ignored). */
    let rereads = { peerId: '', count: 0 };
    let skipped: string | undefined;
    do {
      // A leave applied after the request went out may be newer than the page that answers it.
      const leavesBefore = this.leaves;
      const { value: reply, packed } = await this.fetchSnapshot({
        v: PROTOCOL_VERSION,
        type: 'rpc.snapshot',
        ...(peerId ? { peerId } : {}),
        ...(cursor ? { cursor } : {}),
      });
      await nextTurn(); // the page was parsed and checked in this task: its files go in from the next one
      let reread: SnapshotCursor | undefined;
      for (const [k, page] of reply.peers.entries()) {
        const files = packed?.[k] ?? page.files;
        received.add(page.peerId);
        if (page.peerId === skipped) continue;
        if (page.fileOffset === 0) {
          assembly = {
            peerId: page.peerId,
            name: page.name,
            staged: this.index.stage(page, page.fileTotal),
            next: 0,
            total: page.fileTotal,
            leavesBefore,
          };
        } else if (!assembly || !continues(assembly, page)) {
          // The peer changed at the superpeer between two pages (a change shifts the offsets of its files):
          // the pages of it before this one are of another list. It is read again from its first file.
          assembly = undefined;
          rereads = { peerId: page.peerId, count: rereads.peerId === page.peerId ? rereads.count + 1 : 1 };
          if (rereads.count > MAX_PEER_REREADS) {
            skipped = page.peerId;
            reread = { peerId: page.peerId, fileOffset: PAST_ITS_FILES };
            this.logger.warn('a peer changed between snapshot pages too often; skipped in this load', {
              peerId: page.peerId,
            });
          } else {
            reread = { peerId: page.peerId, fileOffset: 0 };
          }
          break;
        }
        if (assembly.next + files.length > assembly.total)
          throw new P2PError('RPC_ERROR', 'a snapshot page holds more of a peer’s files than its total');
        assembly.next += files.length;
        await this.index.addStagedAsync(assembly.staged, files);
        // Each peer is applied as soon as it is whole, unless it left meanwhile (its page was older).
        if (assembly.next >= page.fileTotal) {
          const { peerId: id, staged, leavesBefore: before } = assembly;
          if (!this.leftSince(id, staged.header.instanceId, before)) await this.applyFull(id, assembly);
          assembly = undefined;
        }
      }
      if (reread) {
        cursor = reread;
        continue;
      }
      // Pages walk peers in id order, files by offset: a cursor that does not move on would loop forever.
      if (reply.next && cursor && !cursorAfter(reply.next, cursor))
        throw new P2PError('RPC_ERROR', 'a snapshot page sent back a cursor that does not move on');
      cursor = reply.next;
    } while (cursor);

    // A peer missing from the pages is gone, unless a broadcast brought its state during the load (it
    // joined after the superpeer took the pages).
    const gone = (id: string) => !received.has(id) && !this.statedDuringLoads.has(id);
    if (peerId === undefined) {
      for (const known of this.index.peers()) {
        if (gone(known.peerId)) await this.removePeer(known.peerId);
      }
      if (epoch === this.staleEpoch) this.syncedAtMs = Date.now();
      this.logger.info('network view loaded', { peers: this.index.peerCount, files: this.index.fileCount });
    } else if (gone(peerId)) {
      await this.removePeer(peerId);
    }
  }

  /** Retries a full refresh until it succeeds or `shouldStop` says so. */
  async refreshUntilDone(shouldStop: () => boolean, retryDelayMs: number): Promise<void> {
    for (let attempt = 1; !shouldStop(); attempt++) {
      try {
        await this.refresh();
        if (!this.stale) return;
        attempt = 0; // a reload that began before the view went stale again: one more, at once
      } catch (err) {
        // Said once at warn level; the retries after it would only repeat it.
        const log = attempt === 1 ? this.logger.warn : this.logger.debug;
        log.call(this.logger, 'could not load the network view from a superpeer; retrying', {
          attempt,
          reason: describeError(err),
          retryDelayMs,
        });
        await new Promise((resolve) => setTimeout(resolve, retryDelayMs).unref());
      }
    }
  }
}
