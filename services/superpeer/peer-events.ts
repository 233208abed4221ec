import type { ConsumeMessage } from 'amqplib';
import { P2PError } from '../../libs/errors/index.js';
import { verifyBody } from '../../libs/identity/index.js';
import { BurstLog, type Log } from '../../libs/logging/index.js';
import {
  chunk,
  encodeWithField,
  type FileEntry,
  HEADERS,
  type NetworkPeerState,
  PackedFiles,
  type PeerAnnounce,
  type PeerDelta,
  type PeerEvent,
  type PeerHeartbeat,
  PROTOCOL_VERSION,
  peerIdMatchesKey,
} from '../../libs/protocol/index.js';
import type { FullResult, NetworkIndex, SliceOptions } from '../../libs/search/index.js';
import { type AnnounceAssembler, type AnnounceMeta, assembleAnnounce } from './announce-assembly.js';
import type { Broadcaster } from './broadcaster.js';
import type { EventProof } from './event-decoding.js';
import type { IndexGate } from './index-gate.js';
import type { SuperpeerMetrics } from './metrics.js';
import type { PeerRegistry } from './registry.js';
import type { ResyncBatcher, ResyncLane } from './resync-batcher.js';
import type { VerifiedSignatures } from './verified-signatures.js';
import type { WatchHub } from './watch-hub.js';

export interface PeerEventsOptions {
  superpeerId: string;
  index: NetworkIndex;
  registry: PeerRegistry;
  gate: IndexGate;
  assembler: AnnounceAssembler;
  broadcaster: Broadcaster;
  resync: ResyncBatcher;
  watches: WatchHub | undefined;
  maxFilesPerPeer: number;
  logger: Log;
  metrics: SuperpeerMetrics | undefined;
  /** How the index's sliced updates divide their work. */
  slices: SliceOptions;
  /** Called for every announce chunk (the warm-up waits for them to stop). */
  onAnnounceSeen?: () => void;
  /** Signatures the arrival path already verified (heartbeats are read twice). */
  verified?: VerifiedSignatures;
  /** Given each packed file list once its state is applied and rebroadcast (see `SuperpeerTransport.recycle`). */
  recycle?: (files: PackedFiles) => void;
}

/**
 * Turns the peers' events into changes of the index and the registry, and the accepted changes into
 * broadcasts. Every change goes through the gate, whole: a peer's state is applied in slices that yield
 * to the event loop, and nothing else touches the index (no other change, no search) between two slices
 * of it. The registry entry of a peer changes in the same step as its index entry, so the two never
 * disagree.
 */
export class PeerEvents {
  /** A thousand peers joining or leaving at once write a few lines each and a count (see BurstLog). */
  private readonly joined: BurstLog;
  private readonly left: BurstLog;

  constructor(private readonly options: PeerEventsOptions) {
    this.joined = new BurstLog(options.logger, { message: 'peer joined', summary: 'more peers joined' });
    this.left = new BurstLog(options.logger, { message: 'peer left', summary: 'more peers left' });
  }

  /** Writes the counts of joins and leaves not logged one by one yet. */
  close(): void {
    this.joined.flush();
    this.left.flush();
  }

  /** `proof`: what a decoding thread found, if one decoded the event (see EventProof). */
  async handle(event: PeerEvent, message: ConsumeMessage, proof: EventProof = {}): Promise<void> {
    // The consumer chains ordered deliveries through promises: without this, a backlog of announces would
    // run as one long microtask chain, and searches and heartbeats would wait for all of it.
    await yieldToEventLoop();
    this.options.metrics?.eventsReceived.inc({ type: event.type });
    const { gate } = this.options;
    // An announce carries its key. Other events are checked against the registered key at their turn in
    // the gate, so that a change still being applied (which may register the key) is never overtaken.
    const { verifiedKey } = proof;
    switch (event.type) {
      case 'peer.announce': {
        // Read to the end (applied, rebroadcast with its JSON copied into the body, or refused), unless
        // the assembler keeps it for a state still in pieces: the buffers go back to the decoding threads.
        let done = proof.packed === undefined ? [] : [proof.packed];
        try {
          this.authenticate(event, message, verifiedKey);
          done = await this.onAnnounce(event, message.content.length, proof);
        } finally {
          for (const packed of done) this.options.recycle?.(packed);
        }
        return;
      }
      case 'peer.delta':
        return this.onDelta(event, message, verifiedKey);
      case 'peer.heartbeat':
        return gate.read(() => this.onHeartbeat(event, this.authenticate(event, message, verifiedKey)));
      case 'peer.leave':
        this.options.assembler.delete(event.peerId);
        await this.dropPeer(event.peerId, event.instanceId, 'leave', { message, verifiedKey });
        return;
    }
  }

  /**
   * A peer id is derived from the peer's public key, and every event is signed by that key: an announce
   * carries the key (the id must be derived from it, the signature must verify with it); later events are
   * verified with the key held for the id (registered, or dropped not long ago). No memory of "who came
   * first" is involved, so no restart, timeout or second superpeer opens a window to take an id over. A
   * refused event is thrown (hence dead-lettered with the reason) and changes nothing. `verifiedKey`: a key
   * a decoding thread verified the signature with; it spares the verify only when it is the key that
   * counts here. Returns whether the id's own key signed the event (false: no key known for it).
   */
  private authenticate(
    event: Pick<PeerEvent, 'type' | 'peerId'> & { publicKey?: string },
    message: ConsumeMessage,
    verifiedKey?: string,
  ): boolean {
    const signature = message.properties.headers?.[HEADERS.signature];
    if (typeof signature !== 'string') throw new P2PError('MESSAGE_INVALID', 'unsigned event');
    const key = event.type === 'peer.announce' ? event.publicKey : this.options.registry.keyOf(event.peerId);
    // Unknown here: handlers ignore it and ask for a full state. A decoding thread that learned the id's key
    // from an announce may still vouch for it.
    if (key === undefined) return verifiedKey !== undefined && peerIdMatchesKey(event.peerId, verifiedKey);
    // The announce schema checks this too; kept here so this function alone states the rule.
    if (!peerIdMatchesKey(event.peerId, key)) {
      throw new P2PError('MESSAGE_INVALID', `peer id ${event.peerId} is not derived from the event's key`);
    }
    if (verifiedKey === key || this.options.verified?.take(key, signature, message.content)) return true;
    if (!verifyBody(key, message.content, signature)) throw new P2PError('MESSAGE_INVALID', 'bad signature');
    return true;
  }

  /** Resolves with the packed lists read to the end (the assembler keeps the others). */
  private async onAnnounce(event: PeerAnnounce, bytes: number, proof: EventProof): Promise<PackedFiles[]> {
    const { packed, distinctNames } = proof;
    let done = packed === undefined ? [] : [packed];
    const { assembler, registry, index, watches, logger, maxFilesPerPeer } = this.options;
    this.options.onAnnounceSeen?.();
    if (event.chunkIndex >= event.chunkCount)
      throw new P2PError('MESSAGE_INVALID', 'chunkIndex >= chunkCount');
    const meta: AnnounceMeta = {
      instanceId: event.instanceId,
      seq: event.seq,
      url: event.url,
      publicKey: event.publicKey,
      name: event.name,
      ...(event.chunkCount === 1 && distinctNames === true ? { distinctNames } : {}),
    };
    const assembled = assembleAnnounce(assembler, event, bytes, meta, packed);
    this.options.metrics?.pendingAnnounces.set(assembler.pending);
    if (assembled.status === 'too-large') {
      // Not asked again until it restarts: its next heartbeats would otherwise earn a resync each time.
      registry.markOverLimit(event.peerId, event.instanceId);
      logger.warn('refused a peer over the file limit', {
        peerId: event.peerId,
        files: assembled.items,
        maxFilesPerPeer,
      });
      throw new P2PError(
        'LIMIT_EXCEEDED',
        `peer ${event.peerId} announces more than ${maxFilesPerPeer} files (SUPERPEER_MAX_FILES_PER_PEER)`,
      );
    }
    // Pending: more chunks to come. Orphan: the start of this state was lost; the peer will be asked again.
    if (assembled.status === 'pending') return [];
    if (assembled.status !== 'complete') return done;
    const { meta: pending, files, pieces } = assembled;
    if (pieces !== undefined) done = pieces;
    const peerId = event.peerId;
    const outcome = await this.options.gate.update(async () => {
      const previousRun = registry.get(peerId)?.instanceId;
      // A run the peer has since restarted from, replayed: it must not displace the live one.
      if (registry.wasReplaced(peerId, pending.instanceId))
        return { result: 'stale' as const, isNew: false, newRun: false };
      const isNew = !index.hasPeer(peerId);
      const apply = () =>
        index.applyFullAsync(
          {
            peerId,
            instanceId: pending.instanceId,
            url: pending.url,
            seq: pending.seq,
            files,
            distinctNames: pending.distinctNames === true,
          },
          this.options.slices,
        );
      const result: FullResult = await (watches ? watches.fullState(peerId, apply, pending.name) : apply());
      if (result !== 'stale') {
        // A state the run already had (replayed, say) is no sign of life: a crashed peer would stay listed.
        const before = registry.get(peerId);
        const heard = result === 'unchanged' && before?.instanceId === pending.instanceId;
        registry.bind(peerId, {
          publicKey: pending.publicKey,
          name: pending.name,
          instanceId: pending.instanceId,
          lastSeenMs: heard ? before.lastSeenMs : Date.now(),
        });
      }
      return { result, isNew, newRun: isNew || previousRun !== pending.instanceId };
    });
    if (outcome.result === 'stale') return done;
    if (outcome.newRun) {
      this.joined.record({ peerId, name: pending.name, url: pending.url, files: files.length });
    }
    if (outcome.result === 'applied' || outcome.isNew) {
      await this.broadcastPeerState(peerId, pending, pieces ?? files);
    }
    this.updateGauges();
    return done;
  }

  private async onDelta(event: PeerDelta, message: ConsumeMessage, verifiedKey?: string): Promise<void> {
    const { registry, index, watches, maxFilesPerPeer } = this.options;
    let lane: ResyncLane = 'unknown';
    const result = await this.options.gate.update(() => {
      if (this.authenticate(event, message, verifiedKey)) lane = 'expected';
      const known = index.getPeer(event.peerId);
      if (
        known &&
        known.instanceId === event.instanceId &&
        known.fileCount + event.upserted.length > maxFilesPerPeer
      ) {
        // Might stay under once applied (upserts of known names), but only a full state can say: refuse it,
        // and the peer's next heartbeat shows a gap that asks for one.
        throw new P2PError(
          'LIMIT_EXCEEDED',
          `peer ${event.peerId} would share more than ${maxFilesPerPeer} files (SUPERPEER_MAX_FILES_PER_PEER)`,
        );
      }
      const apply = () => index.applyDeltaAsync(event, this.options.slices);
      return watches ? watches.delta(event, apply) : apply();
    });
    if (result === 'applied') {
      // Only a change not seen before says the peer is there: an old delta replayed is a duplicate.
      registry.touch(event.peerId, event.instanceId, Date.now());
      this.options.broadcaster.publishInOrder({
        v: PROTOCOL_VERSION,
        type: 'network.peer-delta',
        superpeerId: this.options.superpeerId,
        peerId: event.peerId,
        instanceId: event.instanceId,
        seq: event.seq,
        upserted: event.upserted,
        removed: event.removed,
      });
      await this.options.broadcaster.settle();
      this.updateGauges();
    } else if (result === 'gap' || result === 'unknown-peer') {
      this.requestResync(event.peerId, event.instanceId, result, lane);
    }
  }

  /** `vouched`: signed by the id's key (the peer registered, dropped lately, or seen announcing). */
  private onHeartbeat(event: PeerHeartbeat, vouched: boolean): void {
    const lane = vouched ? 'expected' : 'unknown';
    const known = this.options.index.getPeer(event.peerId);
    if (!known || known.instanceId !== event.instanceId) {
      // A replaced run's old heartbeat, replayed: its announce would be stale, so asking is no use.
      this.options.registry.heardReplaced(event.peerId, event.instanceId, event.beat);
      if (this.options.registry.wasReplaced(event.peerId, event.instanceId)) return;
      this.requestResync(event.peerId, event.instanceId, known ? 'new instance' : 'unknown peer', lane);
      return;
    }
    // Counted on arrival already, unless that read was skipped; a replayed copy does not count at all.
    this.options.registry.heartbeat(event.peerId, event.instanceId, event.beat, Date.now());
    if (event.seq > known.seq) this.requestResync(event.peerId, event.instanceId, 'behind', lane);
  }

  /**
   * Removes a peer's run from the index and the registry (in slices), and tells the network. A leave
   * (`message`) is authenticated at its turn; a timeout (`silentSinceMs`) keeps a peer heard since: the
   * decision is made again when the removal's turn comes. Resolves with whether the peer was removed.
   */
  async dropPeer(
    peerId: string,
    instanceId: string,
    reason: 'leave' | 'timeout',
    check: { message?: ConsumeMessage; verifiedKey?: string; silentSinceMs?: number } = {},
  ): Promise<boolean> {
    const { registry, index, watches } = this.options;
    const removed = await this.options.gate.update(async () => {
      if (check.message) this.authenticate({ type: 'peer.leave', peerId }, check.message, check.verifiedKey);
      const heardMs = registry.get(peerId)?.lastSeenMs ?? 0;
      if (check.silentSinceMs !== undefined && heardMs >= check.silentSinceMs) return false;
      const remove = () => index.removePeerAsync(peerId, instanceId, this.options.slices);
      if (!(await (watches ? watches.peerRemoved(peerId, remove) : remove()))) return false;
      registry.delete(peerId);
      this.options.resync.forget(peerId);
      return true;
    });
    if (!removed) return false;
    // A timeout is written always: a healthy peer dropped is what an operator looks for.
    if (reason === 'leave') this.left.record({ peerId });
    else this.options.logger.info('peer timed out', { peerId });
    this.updateGauges();
    this.options.broadcaster.publishInOrder({
      v: PROTOCOL_VERSION,
      type: 'network.peer-left',
      superpeerId: this.options.superpeerId,
      peerId,
      instanceId,
      reason,
    });
    await this.options.broadcaster.settle();
    return true;
  }

  /**
   * `lane`: `expected` only for an event signed by the id's key, so that ids made up by the thousand never
   * hold back a peer the superpeer has reason to expect (see ResyncBatcher).
   */
  requestResync(peerId: string, instanceId: string, reason: string, lane: ResyncLane = 'unknown'): void {
    if (this.options.registry.isOverLimit(peerId, instanceId)) return;
    if (this.options.resync.request(peerId, lane)) {
      this.options.logger.debug('asking a peer for its full state', { peerId, reason, lane });
    }
  }

  /**
   * Rebroadcasts the state just applied, from the announce itself (the index would have to list and sort
   * the peer's files again); peers apply it with the same rule (the last of a repeated name wins). Files
   * packed by a decoding thread go out as the JSON it wrote for them.
   */
  private async broadcastPeerState(
    peerId: string,
    meta: AnnounceMeta,
    files: readonly FileEntry[] | PackedFiles | PackedFiles[],
  ): Promise<void> {
    const packed = files instanceof PackedFiles ? [files] : packedPieces(files);
    if (packed !== undefined) {
      for (const [chunkIndex, piece] of packed.entries()) {
        const message = this.peerStateMessage(peerId, meta, chunkIndex, packed.length, []);
        // The body carries the files (the message's list is empty: the packed list is handed back after this).
        this.options.broadcaster.publishInOrder(message, encodeWithField(message, 'files', piece.json));
        await this.options.broadcaster.settle();
        if (packed.length > 1) await yieldToEventLoop();
      }
      return;
    }
    const pieces = chunk(files as readonly FileEntry[]);
    for (const [chunkIndex, piece] of pieces.entries()) {
      this.options.broadcaster.publishInOrder(
        this.peerStateMessage(peerId, meta, chunkIndex, pieces.length, piece),
      );
      await this.options.broadcaster.settle();
      if (pieces.length > 1) await yieldToEventLoop();
    }
  }

  private peerStateMessage(
    peerId: string,
    meta: AnnounceMeta,
    chunkIndex: number,
    chunkCount: number,
    files: FileEntry[],
  ): NetworkPeerState {
    return {
      v: PROTOCOL_VERSION,
      type: 'network.peer-state',
      superpeerId: this.options.superpeerId,
      peerId,
      publicKey: meta.publicKey,
      ...(meta.name !== undefined ? { name: meta.name } : {}),
      instanceId: meta.instanceId,
      url: meta.url,
      seq: meta.seq,
      chunkIndex,
      chunkCount,
      files,
    };
  }

  private updateGauges(): void {
    this.options.metrics?.indexedPeers.set(this.options.index.peerCount);
    this.options.metrics?.indexedFiles.set(this.options.index.fileCount);
  }
}

/** `files` as the packed pieces of a state in several chunks, if it is that. */
function packedPieces(files: readonly FileEntry[] | PackedFiles[]): PackedFiles[] | undefined {
  return files.length > 0 && files[0] instanceof PackedFiles ? (files as PackedFiles[]) : undefined;
}

export function yieldToEventLoop(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}
