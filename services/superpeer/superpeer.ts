import type { ConsumeMessage } from 'amqplib';
import { v4 as uuidv4 } from 'uuid';
import { P2PError } from '../../libs/errors/index.js';
import { NetworkIndex, parseQuery } from '../../libs/index/index.js';
import type { Log } from '../../libs/logging/index.js';
import {
  Broker,
  type BrokerSession,
  consumeValidated,
  serveRpc,
  Throttle,
} from '../../libs/messaging/index.js';
import {
  chunk,
  encode,
  type FileEntry,
  followerQueue,
  HEADERS,
  MAX_FILES_PER_MESSAGE,
  mergeTopology,
  type NetworkMessage,
  type PeerAnnounce,
  type PeerDelta,
  type PeerEvent,
  PeerEventSchema,
  type PeerHeartbeat,
  type PeerLeave,
  type PeersReply,
  type RpcRequest,
  RpcRequestSchema,
  type SearchReply,
  type SnapshotPeer,
  type SnapshotReply,
  type SnapshotRequest,
  sharedTopology,
  type TopologyNames,
  topologyNames,
} from '../../libs/protocol/index.js';
import { verifyBody } from '../../libs/share/index.js';
import type { SuperpeerMetrics } from './metrics.js';

export interface SuperpeerOptions {
  amqpUrl: string;
  namespace: string;
  superpeerId: string;
  logger: Log;
  /** A peer silent for this long is dropped. Default 6000. */
  peerTimeoutMs?: number;
  /** How often silent peers are looked for. Default 1000. */
  sweepIntervalMs?: number;
  /** RPC requests handled at once. Default 64. */
  rpcPrefetch?: number;
  /** After a (re)start the superpeer waits for peers to re-announce before answering searches: until no announce came for this long… Default 300. */
  warmupQuietMs?: number;
  /** …or at most this long. Default 2500. */
  warmupMaxMs?: number;
  /** A `network.tick` goes to every peer this often, so they can tell their network stream works. Default 2000. */
  tickIntervalMs?: number;
  /**
   * A broadcast resync request (after a (re)connect or a repaired topology) goes out at most this often,
   * however often the connection comes back: a reconnect loop must not become a re-announce storm.
   * Default 5000.
   */
  resyncBroadcastMinIntervalMs?: number;
  metrics?: SuperpeerMetrics;
}

interface PendingAnnounce {
  instanceId: string;
  seq: number;
  url: string;
  publicKey: string;
  chunks: FileEntry[][];
  received: number;
}

interface PeerBinding {
  publicKey: string;
  instanceId: string;
  lastSeenMs: number;
}

/** Files per snapshot page (a page may hold several small peers). */
const SNAPSHOT_PAGE_FILES = MAX_FILES_PER_MESSAGE;
/** A peer is asked for its full state at most this often. */
const RESYNC_REQUEST_MIN_INTERVAL_MS = 2000;
/** Also the most ids one resync request may carry (the schema's bound). */
const MAX_TRACKED_RESYNC_REQUESTS = 10_000;
const RESYNC_BATCH_MS = 100;
/** With peers registered, no event at all for this long (they heartbeat every 2 s) means the stream broke. */
const EVENTS_SILENCE_MS = 3500;

/**
 * Keeps the index of who shares what, from the events peers publish; rebroadcasts accepted changes to every
 * peer; answers search, peers and snapshot requests. Several superpeers may run at once: each consumes the
 * whole event stream through its own queue and they share the RPC queue.
 */
export class Superpeer {
  readonly index = new NetworkIndex();
  private readonly names: TopologyNames;
  private readonly instanceId = uuidv4();
  private readonly broker: Broker;
  private readonly bindings = new Map<string, PeerBinding>();
  private readonly pendingAnnounces = new Map<string, PendingAnnounce>();
  private readonly lastResyncRequest = new Map<string, number>();
  private readonly pendingResync = new Set<string>();
  private resyncBatchTimer: NodeJS.Timeout | undefined;
  private sweepTimer: NodeJS.Timeout | undefined;
  private tickTimer: NodeJS.Timeout | undefined;
  private tickSeq = 0;
  private readonly resyncBroadcast: Throttle;
  private lastEventMs = Date.now();
  private lastSilenceRepairMs = 0;
  private warm = false;
  private lastAnnounceMs = 0;
  private lastSweepMs = Date.now();
  private readonly options: Required<Omit<SuperpeerOptions, 'metrics'>> & Pick<SuperpeerOptions, 'metrics'>;

  constructor(options: SuperpeerOptions) {
    this.options = {
      peerTimeoutMs: 6000,
      sweepIntervalMs: 1000,
      rpcPrefetch: 64,
      warmupQuietMs: 300,
      warmupMaxMs: 2500,
      tickIntervalMs: 2000,
      resyncBroadcastMinIntervalMs: 5000,
      ...options,
    };
    this.names = topologyNames(options.namespace);
    this.broker = new Broker({
      url: options.amqpUrl,
      connectionName: `superpeer ${options.superpeerId}`,
      logger: options.logger,
      setup: (session) => this.setup(session),
    });
    this.resyncBroadcast = new Throttle(
      () =>
        void this.publishNetwork({
          v: 1,
          type: 'network.resync-request',
          superpeerId: this.options.superpeerId,
        }),
      { minIntervalMs: this.options.resyncBroadcastMinIntervalMs },
    );
    this.broker.on('connected', () => {
      // Peers could not reach us while we were away: their silence then says nothing about them.
      const now = Date.now();
      this.lastEventMs = now;
      for (const binding of this.bindings.values()) binding.lastSeenMs = now;
      // Whatever happened while we were away (or before we started), ask every peer for its full state:
      // at once the first time, then at most once per interval (the last reconnect of a burst included).
      this.resyncBroadcast.request({ immediate: true });
    });
    // Events may have been lost while our copy of the stream was cut off.
    this.broker.on('topology-repaired', () => this.resyncBroadcast.request({ immediate: true }));
  }

  get id(): string {
    return this.options.superpeerId;
  }

  async start(): Promise<void> {
    await this.broker.start();
    this.sweepTimer = setInterval(() => this.sweep(), this.options.sweepIntervalMs);
    this.sweepTimer.unref();
    this.tickTimer = setInterval(() => this.tick(), this.options.tickIntervalMs);
    this.tickTimer.unref();
  }

  async close(): Promise<void> {
    if (this.sweepTimer) clearInterval(this.sweepTimer);
    if (this.tickTimer) clearInterval(this.tickTimer);
    this.resyncBroadcast.cancel();
    if (this.resyncBatchTimer) clearTimeout(this.resyncBatchTimer);
    await this.broker.close();
  }

  /** Resolves once searches are being served (after the warm-up that follows the first connect). */
  get serving(): boolean {
    return this.warm;
  }

  private async setup(session: BrokerSession): Promise<void> {
    const queue = this.names.superpeerQueue(this.options.superpeerId, this.instanceId);
    await session.assertTopology(
      mergeTopology(sharedTopology(this.names), followerQueue(this.names, queue, this.names.eventsExchange)),
    );
    await consumeValidated(session, {
      queue,
      schema: PeerEventSchema,
      prefetch: 256,
      deadLetter: {
        exchange: this.names.deadLetterExchange,
        rejectedBy: `superpeer ${this.options.superpeerId}`,
      },
      handler: (event, message) => {
        this.lastEventMs = Date.now();
        return this.onPeerEvent(event, message);
      },
      onRefused: () => {
        this.lastEventMs = Date.now();
        this.options.metrics?.messagesRefused.inc({ queue: 'events' });
      },
    });
    if (this.warm) {
      await this.serveRpc(session);
    } else {
      void this.warmUp(session);
    }
  }

  /** Liveness on the network stream: peers that stop hearing it know their view is stale. */
  private tick(): void {
    if (!this.broker.connected) return;
    const body = encode({
      v: 1,
      type: 'network.tick',
      superpeerId: this.options.superpeerId,
      seq: ++this.tickSeq,
      intervalMs: this.options.tickIntervalMs,
    } satisfies NetworkMessage);
    void this.broker.publish(this.names.networkExchange, '', body, {
      confirm: false,
      properties: {
        messageId: uuidv4(),
        type: 'network.tick',
        appId: `superpeer ${this.options.superpeerId}`,
        mandatory: false,
      },
    });
  }

  /**
   * Registered peers heartbeat every 2 s, so a silent event stream means our binding (or the exchange) was
   * deleted and declared again by someone else, which no passive check can see: declare ours again.
   */
  private checkEventsSilence(now: number): void {
    if (this.bindings.size === 0 || now - this.lastEventMs < EVENTS_SILENCE_MS) return;
    if (now - this.lastSilenceRepairMs < EVENTS_SILENCE_MS) return;
    this.lastSilenceRepairMs = now;
    void this.broker.repairTopology(`no peer event for ${now - this.lastEventMs} ms`);
  }

  /** Answer searches only once the peers' re-announcements have settled, so the first answers are whole. */
  private async warmUp(session: BrokerSession): Promise<void> {
    const started = Date.now();
    this.lastAnnounceMs = started;
    await new Promise<void>((resolve) => {
      const check = setInterval(() => {
        const now = Date.now();
        if (
          now - this.lastAnnounceMs >= this.options.warmupQuietMs ||
          now - started >= this.options.warmupMaxMs
        ) {
          clearInterval(check);
          resolve();
        }
      }, 50);
    });
    if (!session.open || this.warm) return;
    try {
      await this.serveRpc(session);
      this.warm = true;
      this.options.logger.info('superpeer serving searches', {
        peers: this.index.peerCount,
        files: this.index.fileCount,
        warmupMs: Date.now() - started,
      });
    } catch (err) {
      this.options.logger.warn('could not start serving searches; will retry on reconnect', {
        reason: err instanceof Error ? err.message : String(err),
      });
    }
  }

  private serveRpc(session: BrokerSession): Promise<void> {
    return serveRpc(session, {
      queue: this.names.rpcQueue,
      schema: RpcRequestSchema,
      prefetch: this.options.rpcPrefetch,
      deadLetter: {
        exchange: this.names.deadLetterExchange,
        rejectedBy: `superpeer ${this.options.superpeerId}`,
      },
      handle: (request) => this.onRpc(request),
      errorReply: (code, message) => ({
        v: 1,
        ok: false,
        superpeerId: this.options.superpeerId,
        error: { code, message: message.slice(0, 1000) },
      }),
    });
  }

  // ---- events from peers -------------------------------------------------------------------------------

  private async onPeerEvent(event: PeerEvent, message: ConsumeMessage): Promise<void> {
    this.options.metrics?.eventsReceived.inc({ type: event.type });
    this.authenticate(event, message);
    switch (event.type) {
      case 'peer.announce':
        return this.onAnnounce(event);
      case 'peer.delta':
        return this.onDelta(event);
      case 'peer.heartbeat':
        return this.onHeartbeat(event);
      case 'peer.leave':
        return this.onLeave(event);
    }
  }

  /**
   * A peer's events are signed with the key its announce carries. The first announce binds the peer id to
   * that key for as long as the peer stays registered; a message for that id signed by another key is
   * refused (thrown, hence dead-lettered) and changes nothing.
   */
  private authenticate(event: PeerEvent, message: ConsumeMessage): void {
    const signature = message.properties.headers?.[HEADERS.signature];
    if (typeof signature !== 'string') throw new P2PError('MESSAGE_INVALID', 'unsigned event');
    const bound = this.bindings.get(event.peerId);
    if (event.type === 'peer.announce') {
      if (!verifyBody(event.publicKey, message.content, signature)) {
        throw new P2PError('MESSAGE_INVALID', 'bad signature');
      }
      if (bound && bound.publicKey !== event.publicKey) {
        throw new P2PError('MESSAGE_INVALID', `peer id ${event.peerId} is registered with another key`);
      }
      return;
    }
    if (!bound) return; // not registered: handlers ignore it and ask for a full state
    if (!verifyBody(bound.publicKey, message.content, signature)) {
      throw new P2PError('MESSAGE_INVALID', 'bad signature');
    }
  }

  private async onAnnounce(event: PeerAnnounce): Promise<void> {
    this.lastAnnounceMs = Date.now();
    if (event.chunkIndex >= event.chunkCount)
      throw new P2PError('MESSAGE_INVALID', 'chunkIndex >= chunkCount');
    let pending = this.pendingAnnounces.get(event.peerId);
    if (
      event.chunkIndex === 0 ||
      !pending ||
      pending.instanceId !== event.instanceId ||
      pending.seq !== event.seq
    ) {
      if (event.chunkIndex !== 0) return; // the start of this state was lost; the peer will be asked again
      pending = {
        instanceId: event.instanceId,
        seq: event.seq,
        url: event.url,
        publicKey: event.publicKey,
        chunks: [],
        received: 0,
      };
      this.pendingAnnounces.set(event.peerId, pending);
    }
    if (event.chunkIndex !== pending.received || event.chunkCount < pending.received) {
      this.pendingAnnounces.delete(event.peerId);
      return;
    }
    pending.chunks.push(event.files);
    pending.received++;
    if (pending.received < event.chunkCount) return;
    this.pendingAnnounces.delete(event.peerId);

    const existing = this.bindings.get(event.peerId);
    const isNew = !this.index.hasPeer(event.peerId);
    const result = this.index.applyFull({
      peerId: event.peerId,
      instanceId: pending.instanceId,
      url: pending.url,
      seq: pending.seq,
      files: pending.chunks.flat(),
    });
    if (result === 'stale') return;
    this.bindings.set(event.peerId, {
      publicKey: pending.publicKey,
      instanceId: pending.instanceId,
      lastSeenMs: Date.now(),
    });
    if (isNew || existing?.instanceId !== pending.instanceId) {
      this.options.logger.info('peer joined', {
        peerId: event.peerId,
        url: pending.url,
        files: this.index.getPeer(event.peerId)?.fileCount,
      });
    }
    if (result === 'applied' || isNew) await this.broadcastPeerState(event.peerId);
    this.updateGauges();
  }

  private async onDelta(event: PeerDelta): Promise<void> {
    this.touch(event.peerId, event.instanceId);
    const result = this.index.applyDelta(event);
    if (result === 'applied') {
      await this.publishNetwork({
        v: 1,
        type: 'network.peer-delta',
        superpeerId: this.options.superpeerId,
        peerId: event.peerId,
        instanceId: event.instanceId,
        seq: event.seq,
        upserted: event.upserted,
        removed: event.removed,
      });
      this.updateGauges();
    } else if (result === 'gap' || result === 'unknown-peer') {
      this.requestResync(event.peerId, result);
    }
  }

  private async onHeartbeat(event: PeerHeartbeat): Promise<void> {
    const known = this.index.getPeer(event.peerId);
    if (!known || known.instanceId !== event.instanceId) {
      this.requestResync(event.peerId, known ? 'new instance' : 'unknown peer');
      return;
    }
    this.touch(event.peerId, event.instanceId);
    if (event.seq > known.seq) this.requestResync(event.peerId, 'behind');
  }

  private async onLeave(event: PeerLeave): Promise<void> {
    this.pendingAnnounces.delete(event.peerId);
    await this.dropPeer(event.peerId, event.instanceId, 'leave');
  }

  private touch(peerId: string, instanceId: string): void {
    const binding = this.bindings.get(peerId);
    if (binding && binding.instanceId === instanceId) binding.lastSeenMs = Date.now();
  }

  private async dropPeer(peerId: string, instanceId: string, reason: 'leave' | 'timeout'): Promise<void> {
    if (!this.index.removePeer(peerId, instanceId)) return;
    this.bindings.delete(peerId);
    this.lastResyncRequest.delete(peerId);
    this.options.logger.info(reason === 'leave' ? 'peer left' : 'peer timed out', { peerId });
    this.updateGauges();
    await this.publishNetwork({
      v: 1,
      type: 'network.peer-left',
      superpeerId: this.options.superpeerId,
      peerId,
      instanceId,
      reason,
    });
  }

  private sweep(): void {
    const now = Date.now();
    const sinceLastSweepMs = now - this.lastSweepMs;
    this.lastSweepMs = now;
    if (!this.broker.connected) return;
    if (sinceLastSweepMs > 2 * this.options.sweepIntervalMs + 1000) {
      // This process was stalled (paused, swapped out): the peers' heartbeats wait unread in our queue,
      // so their silence is ours. Give them a fresh period instead of dropping them all.
      for (const binding of this.bindings.values()) binding.lastSeenMs = now;
      this.lastEventMs = now;
      return;
    }
    this.checkEventsSilence(now);
    const deadline = Date.now() - this.options.peerTimeoutMs;
    for (const [peerId, binding] of this.bindings) {
      if (binding.lastSeenMs < deadline) void this.dropPeer(peerId, binding.instanceId, 'timeout');
    }
  }

  /**
   * Asks one peer for its full state. Requests are gathered for RESYNC_BATCH_MS and sent as one message,
   * so however many unknown ids the network names (any client can), the superpeer broadcasts at most one
   * request per batch period.
   */
  private requestResync(peerId: string, reason: string): void {
    const now = Date.now();
    if (now - (this.lastResyncRequest.get(peerId) ?? 0) < RESYNC_REQUEST_MIN_INTERVAL_MS) return;
    // Ids come from the network: keep this memory bounded.
    if (this.lastResyncRequest.size >= MAX_TRACKED_RESYNC_REQUESTS) this.lastResyncRequest.clear();
    if (this.pendingResync.size >= MAX_TRACKED_RESYNC_REQUESTS) return;
    this.lastResyncRequest.set(peerId, now);
    this.pendingResync.add(peerId);
    this.options.logger.debug('asking a peer for its full state', { peerId, reason });
    this.resyncBatchTimer ??= setTimeout(() => {
      this.resyncBatchTimer = undefined;
      const peerIds = [...this.pendingResync];
      this.pendingResync.clear();
      void this.publishNetwork({
        v: 1,
        type: 'network.resync-request',
        superpeerId: this.options.superpeerId,
        peerIds,
      });
    }, RESYNC_BATCH_MS);
  }

  private async broadcastPeerState(peerId: string): Promise<void> {
    const peer = this.index.getPeer(peerId);
    if (!peer) return;
    const pieces = chunk(this.index.peerFiles(peerId));
    for (const [chunkIndex, files] of pieces.entries()) {
      await this.publishNetwork({
        v: 1,
        type: 'network.peer-state',
        superpeerId: this.options.superpeerId,
        peerId,
        instanceId: peer.instanceId,
        url: peer.url,
        seq: peer.seq,
        chunkIndex,
        chunkCount: pieces.length,
        files,
      });
    }
  }

  private async publishNetwork(message: NetworkMessage): Promise<void> {
    try {
      await this.broker.publish(this.names.networkExchange, '', encode(message), {
        // A network with no peers yet routes nowhere, and that is normal: not `mandatory`.
        properties: {
          messageId: uuidv4(),
          type: message.type,
          appId: `superpeer ${this.options.superpeerId}`,
          mandatory: false,
        },
      });
    } catch (err) {
      // Peers repair missed changes from sequence gaps and snapshots; a lost broadcast is not fatal.
      this.options.logger.warn('could not publish a network change', {
        type: message.type,
        reason: err instanceof Error ? err.message : String(err),
      });
    }
  }

  private updateGauges(): void {
    this.options.metrics?.indexedPeers.set(this.index.peerCount);
    this.options.metrics?.indexedFiles.set(this.index.fileCount);
  }

  // ---- RPC ---------------------------------------------------------------------------------------------

  private onRpc(request: RpcRequest): SearchReply | PeersReply | SnapshotReply {
    const started = process.hrtime.bigint();
    try {
      switch (request.type) {
        case 'rpc.search': {
          const { results, truncated } = this.index.search(parseQuery(request.query), request.limit);
          return {
            v: 1,
            ok: true,
            type: 'rpc.search',
            superpeerId: this.options.superpeerId,
            results,
            truncated,
            indexedFiles: this.index.fileCount,
            indexedPeers: this.index.peerCount,
          };
        }
        case 'rpc.peers': {
          const now = Date.now();
          return {
            v: 1,
            ok: true,
            type: 'rpc.peers',
            superpeerId: this.options.superpeerId,
            peers: this.index.peers().map((peer) => ({
              ...peer,
              lastSeenAgoMs: Math.max(0, now - (this.bindings.get(peer.peerId)?.lastSeenMs ?? now)),
            })),
          };
        }
        case 'rpc.snapshot':
          return this.snapshotPage(request);
        default:
          throw new P2PError('MESSAGE_INVALID', 'unknown request type');
      }
    } finally {
      const seconds = Number(process.hrtime.bigint() - started) / 1e9;
      this.options.metrics?.rpcSeconds.observe({ type: request.type }, seconds);
    }
  }

  private snapshotPage(request: SnapshotRequest): SnapshotReply {
    const all = request.peerId
      ? this.index.peers().filter((peer) => peer.peerId === request.peerId)
      : this.index.peers();
    let start = 0;
    let fileOffset = 0;
    if (request.cursor) {
      const cursor = request.cursor;
      start = all.findIndex((peer) => peer.peerId >= cursor.peerId);
      if (start === -1) start = all.length;
      else if (all[start]?.peerId === cursor.peerId) fileOffset = cursor.fileOffset;
    }
    const peers: SnapshotPeer[] = [];
    let budget = SNAPSHOT_PAGE_FILES;
    let next: SnapshotReply['next'];
    for (let i = start; i < all.length; i++) {
      const peer = all[i]!;
      const offset = i === start ? fileOffset : 0;
      const files = this.index.peerFiles(peer.peerId, offset, budget);
      peers.push({
        peerId: peer.peerId,
        instanceId: peer.instanceId,
        url: peer.url,
        seq: peer.seq,
        fileOffset: offset,
        fileTotal: peer.fileCount,
        files,
      });
      budget -= files.length;
      if (offset + files.length < peer.fileCount) {
        next = { peerId: peer.peerId, fileOffset: offset + files.length };
        break;
      }
      if (budget <= 0 && i + 1 < all.length) {
        next = { peerId: all[i + 1]!.peerId, fileOffset: 0 };
        break;
      }
    }
    return {
      v: 1,
      ok: true,
      type: 'rpc.snapshot',
      superpeerId: this.options.superpeerId,
      peers,
      ...(next ? { next } : {}),
    };
  }
}
