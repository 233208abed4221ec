import type { ConsumeMessage } from 'amqplib';
import { v4 as uuidv4 } from 'uuid';
import { P2PError } from '../../libs/errors/index.js';
import { NetworkIndex } from '../../libs/index/index.js';
import type { Log } from '../../libs/logging/index.js';
import { Broker, Throttle } from '../../libs/messaging/index.js';
import {
  type AssemblerLimits,
  ChunkAssembler,
  chunk,
  type FileEntry,
  HEADERS,
  type PeerAnnounce,
  type PeerDelta,
  type PeerEvent,
  type PeerHeartbeat,
  type PeerLeave,
  type PeersReply,
  peerIdMatchesKey,
  type RpcRequest,
  type SearchReply,
  type SharedQueueType,
  type SnapshotReply,
  topologyNames,
} from '../../libs/protocol/index.js';
import { verifyBody } from '../../libs/share/index.js';
import { Broadcaster } from './broadcaster.js';
import { countHeartbeatOnArrival } from './liveness.js';
import type { SuperpeerMetrics } from './metrics.js';
import { answerRpc } from './paging.js';
import { PeerRegistry } from './registry.js';
import { ResyncBatcher } from './resync-batcher.js';
import { AmqpSuperpeerTransport, type SuperpeerTransport } from './transport.js';
import { WatchHub } from './watch-hub.js';

export interface SuperpeerOptions {
  amqpUrl: string;
  namespace: string;
  /** Type of the shared queues. Default classic. */
  queueType?: SharedQueueType;
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
  /** A peer announcing more files than this is refused whole. Default 100_000. */
  maxFilesPerPeer?: number;
  /** Bounds of the chunked announces in progress (see ChunkAssembler). */
  assemblerLimits?: Partial<Omit<AssemblerLimits, 'maxItemsPerList'>>;
  /** Most peers asked to resync per second. Default 250. */
  maxResyncsPerSecond?: number;
  /** A `network.tick` goes to every peer this often, so they can tell their network stream works. Default 2000. */
  tickIntervalMs?: number;
  /**
   * A broadcast resync request (after a (re)connect or a repaired topology) goes out at most this often,
   * however often the connection comes back: a reconnect loop must not become a re-announce storm.
   * Default 5000.
   */
  resyncBroadcastMinIntervalMs?: number;
  /**
   * The broker; default the AMQP one built from the options above. Unit tests pass a fake, and then the
   * superpeer serves no standing searches (they need a broker connection of their own).
   */
  transport?: SuperpeerTransport;
  metrics?: SuperpeerMetrics;
}

type Settings = Required<
  Omit<SuperpeerOptions, 'metrics' | 'transport' | 'assemblerLimits' | 'amqpUrl' | 'namespace' | 'queueType'>
>;

interface AnnounceMeta {
  instanceId: string;
  seq: number;
  url: string;
  publicKey: string;
  name: string | undefined;
}

/** Peers removed per slice of a sweep; a slice also ends after SLICE_BUDGET_MS. */
const SWEEP_SLICE_PEERS = 200;
/** Longest run of work a slice may take before yielding to the event loop. */
const SLICE_BUDGET_MS = 20;
/** While the events queue has a backlog, silence is forgiven at most this many peer timeouts. */
const MAX_BACKLOG_GRACE_TIMEOUTS = 4;
/** With peers registered, no event at all for this long (they heartbeat every 2 s) means the stream broke. */
const EVENTS_SILENCE_MS = 3500;

/**
 * Keeps the index of who shares what, from the events peers publish; rebroadcasts accepted changes to every
 * peer; answers search, peers and snapshot requests. Several superpeers may run at once: each consumes the
 * whole event stream through its own queue and they share the RPC queue.
 */
export class Superpeer {
  readonly index = new NetworkIndex();
  readonly registry = new PeerRegistry();
  readonly assembler: ChunkAssembler<AnnounceMeta, FileEntry>;
  private readonly instanceId = uuidv4();
  private readonly transport: SuperpeerTransport;
  private readonly resync: ResyncBatcher;
  private readonly settings: Settings;
  private readonly metrics: SuperpeerMetrics | undefined;
  private sweepTimer: NodeJS.Timeout | undefined;
  private sweeping = false;
  private warm = false;
  private warming = false;
  private closed = false;
  private lastAnnounceMs = 0;
  private lastSweepMs = Date.now();
  /** Since when the events queue has had a backlog (undefined: none at the last sweep). */
  private backlogSinceMs: number | undefined;
  private readonly broadcaster: Broadcaster;
  private tickTimer: NodeJS.Timeout | undefined;
  private tickSeq = 0;
  private readonly resyncBroadcast: Throttle;
  private lastEventMs = Date.now();
  private lastSilenceRepairMs = 0;
  /** Standing searches (watch-hub.ts), on a connection of their own; each applied change goes through it. */
  readonly watches: WatchHub | undefined;
  private readonly watchBroker: Broker | undefined;

  constructor(options: SuperpeerOptions) {
    this.settings = {
      peerTimeoutMs: 6000,
      sweepIntervalMs: 1000,
      rpcPrefetch: 64,
      warmupQuietMs: 300,
      warmupMaxMs: 2500,
      maxFilesPerPeer: 100_000,
      maxResyncsPerSecond: 250,
      tickIntervalMs: 2000,
      resyncBroadcastMinIntervalMs: 5000,
      superpeerId: options.superpeerId,
      logger: options.logger,
      ...definedOnly(options),
    };
    this.metrics = options.metrics;
    this.assembler = new ChunkAssembler({
      ...options.assemblerLimits,
      maxItemsPerList: this.settings.maxFilesPerPeer,
    });
    this.transport =
      options.transport ??
      new AmqpSuperpeerTransport({
        amqpUrl: options.amqpUrl,
        namespace: options.namespace,
        superpeerId: options.superpeerId,
        instanceId: this.instanceId,
        logger: options.logger,
        rpcPrefetch: this.settings.rpcPrefetch,
        queueType: options.queueType ?? 'classic',
      });
    if (!options.transport) {
      const watchBroker: Broker = new Broker({
        url: options.amqpUrl,
        connectionName: `superpeer ${options.superpeerId} watches`,
        logger: options.logger,
        setup: (session): Promise<void> => watches.setup(session),
      });
      const watches: WatchHub = new WatchHub({
        namespace: options.namespace,
        names: topologyNames(options.namespace),
        superpeerId: options.superpeerId,
        instanceId: this.instanceId,
        broker: watchBroker,
        index: this.index,
        logger: options.logger,
        rebuilding: () => !this.warm,
        nameOf: (peerId) => this.registry.get(peerId)?.name,
      });
      this.watchBroker = watchBroker;
      this.watches = watches;
    }
    this.broadcaster = new Broadcaster(this.transport, this.settings.logger);
    this.resyncBroadcast = new Throttle(
      () =>
        void this.broadcaster.publish({
          v: 1,
          type: 'network.resync-request',
          superpeerId: this.settings.superpeerId,
        }),
      { minIntervalMs: this.settings.resyncBroadcastMinIntervalMs },
    );
    this.resync = new ResyncBatcher({
      maxIdsPerSecond: this.settings.maxResyncsPerSecond,
      publish: (peerIds) =>
        void this.broadcaster.publish({
          v: 1,
          type: 'network.resync-request',
          superpeerId: this.settings.superpeerId,
          peerIds,
        }),
    });
  }

  get id(): string {
    return this.settings.superpeerId;
  }

  async start(): Promise<void> {
    await this.transport.start({
      onEvent: (event, message) => {
        this.lastEventMs = Date.now();
        return this.onPeerEvent(event, message);
      },
      onDelivery: (message) => void countHeartbeatOnArrival(this.registry, message, Date.now()),
      onEventRefused: () => {
        this.lastEventMs = Date.now();
        this.metrics?.messagesRefused.inc({ queue: 'events' });
      },
      onRpc: (request) => this.onRpc(request),
      onConnected: () => this.onConnected(),
      // Events may have been lost while our copy of the stream was cut off.
      onTopologyRepaired: () => this.resyncBroadcast.request({ immediate: true }),
    });
    await this.watchBroker?.start();
    this.sweepTimer = setInterval(() => void this.sweep(), this.settings.sweepIntervalMs);
    this.sweepTimer.unref();
    this.tickTimer = setInterval(() => this.tick(), this.settings.tickIntervalMs);
    this.tickTimer.unref();
  }

  async close(): Promise<void> {
    this.closed = true;
    if (this.sweepTimer) clearInterval(this.sweepTimer);
    if (this.tickTimer) clearInterval(this.tickTimer);
    this.resyncBroadcast.cancel();
    this.resync.close();
    await this.watchBroker?.close();
    await this.transport.close();
  }

  /** True once searches are being served (after the warm-up that follows the first connect). */
  get serving(): boolean {
    return this.warm;
  }

  private onConnected(): void {
    // Peers could not reach us while we were away: their silence then says nothing about them.
    const now = Date.now();
    this.registry.refreshAll(now);
    this.lastEventMs = now;
    // Whatever happened while we were away (or before we started), ask every peer for its full state:
    // at once the first time, then at most once per interval (the last reconnect of a burst included).
    this.resyncBroadcast.request({ immediate: true });
    if (!this.warm) void this.warmUp();
  }

  /** Liveness on the network stream: peers that stop hearing it know their view is stale. */
  private tick(): void {
    if (!this.transport.connected) return;
    void this.transport
      .publishNetwork(
        {
          v: 1,
          type: 'network.tick',
          superpeerId: this.settings.superpeerId,
          seq: ++this.tickSeq,
          intervalMs: this.settings.tickIntervalMs,
        },
        { confirm: false },
      )
      .catch(() => undefined);
  }

  /**
   * Registered peers heartbeat every 2 s, so a silent event stream means our binding (or the exchange) was
   * deleted and declared again by someone else, which no passive check can see: declare ours again.
   */
  private checkEventsSilence(now: number): void {
    if (this.registry.size === 0 || now - this.lastEventMs < EVENTS_SILENCE_MS) return;
    if (now - this.lastSilenceRepairMs < EVENTS_SILENCE_MS) return;
    this.lastSilenceRepairMs = now;
    void this.transport
      .repairTopology(`no peer event for ${now - this.lastEventMs} ms`)
      .catch(() => undefined);
  }

  /** Answer searches only once the peers' re-announcements have settled, so the first answers are whole. */
  private async warmUp(): Promise<void> {
    if (this.warming) return;
    this.warming = true;
    const started = Date.now();
    this.lastAnnounceMs = started;
    await new Promise<void>((resolve) => {
      const check = setInterval(() => {
        const now = Date.now();
        if (
          this.closed ||
          now - this.lastAnnounceMs >= this.settings.warmupQuietMs ||
          now - started >= this.settings.warmupMaxMs
        ) {
          clearInterval(check);
          resolve();
        }
      }, 50);
    });
    try {
      if (this.closed) return;
      await this.transport.serveRpc();
      this.warm = true;
      this.settings.logger.info('superpeer serving searches', {
        peers: this.index.peerCount,
        files: this.index.fileCount,
        warmupMs: Date.now() - started,
      });
    } catch (err) {
      this.settings.logger.warn('could not start serving searches; will retry on reconnect', {
        reason: err instanceof Error ? err.message : String(err),
      });
    } finally {
      this.warming = false;
    }
  }

  // ---- events from peers -------------------------------------------------------------------------------

  private async onPeerEvent(event: PeerEvent, message: ConsumeMessage): Promise<void> {
    // The consumer chains ordered deliveries through promises: without this, a backlog of announces would
    // run as one long microtask chain, and searches and heartbeats would wait for all of it.
    await yieldToEventLoop();
    this.metrics?.eventsReceived.inc({ type: event.type });
    this.authenticate(event, message);
    switch (event.type) {
      case 'peer.announce':
        return this.onAnnounce(event, message.content.length);
      case 'peer.delta':
        return this.onDelta(event);
      case 'peer.heartbeat':
        return this.onHeartbeat(event);
      case 'peer.leave':
        return this.onLeave(event);
    }
  }

  /**
   * A peer id is derived from the peer's public key, and every event is signed by that key: an announce
   * carries the key (the id must be derived from it, the signature must verify with it); later events are
   * verified with the key of the registered id. No memory of "who came first" is involved, so no restart,
   * timeout or second superpeer opens a window to take an id over. A refused event is thrown (hence
   * dead-lettered with the reason) and changes nothing.
   */
  private authenticate(event: PeerEvent, message: ConsumeMessage): void {
    const signature = message.properties.headers?.[HEADERS.signature];
    if (typeof signature !== 'string') throw new P2PError('MESSAGE_INVALID', 'unsigned event');
    const key = event.type === 'peer.announce' ? event.publicKey : this.registry.get(event.peerId)?.publicKey;
    if (key === undefined) return; // not registered: handlers ignore it and ask for a full state
    // The announce schema checks this too; kept here so this function alone states the rule.
    if (!peerIdMatchesKey(event.peerId, key)) {
      throw new P2PError('MESSAGE_INVALID', `peer id ${event.peerId} is not derived from the event's key`);
    }
    if (!verifyBody(key, message.content, signature)) throw new P2PError('MESSAGE_INVALID', 'bad signature');
  }

  private async onAnnounce(event: PeerAnnounce, bytes: number): Promise<void> {
    this.lastAnnounceMs = Date.now();
    if (event.chunkIndex >= event.chunkCount)
      throw new P2PError('MESSAGE_INVALID', 'chunkIndex >= chunkCount');
    const assembled = this.assembler.add({
      key: event.peerId,
      version: `${event.instanceId}/${event.seq}`,
      chunkIndex: event.chunkIndex,
      chunkCount: event.chunkCount,
      items: event.files,
      bytes,
      meta: {
        instanceId: event.instanceId,
        seq: event.seq,
        url: event.url,
        publicKey: event.publicKey,
        name: event.name,
      },
    });
    this.metrics?.pendingAnnounces.set(this.assembler.pending);
    if (assembled.status === 'too-large') {
      // Not asked again until it restarts: its next heartbeats would otherwise earn a resync each time.
      this.registry.markOverLimit(event.peerId, event.instanceId);
      this.settings.logger.warn('refused a peer over the file limit', {
        peerId: event.peerId,
        files: assembled.items,
        maxFilesPerPeer: this.settings.maxFilesPerPeer,
      });
      throw new P2PError(
        'LIMIT_EXCEEDED',
        `peer ${event.peerId} announces more than ${this.settings.maxFilesPerPeer} files (SUPERPEER_MAX_FILES_PER_PEER)`,
      );
    }
    // Pending: more chunks to come. Orphan: the start of this state was lost; the peer will be asked again.
    if (assembled.status !== 'complete') return;
    const pending = assembled.meta;
    // Parsing this message was one task; indexing it is another, so that heartbeats arriving meanwhile
    // are counted (a whole state of many chunks is still indexed in one: the index applies it whole).
    await yieldToEventLoop();

    const existing = this.registry.get(event.peerId);
    const isNew = !this.index.hasPeer(event.peerId);
    const apply = () =>
      this.index.applyFull({
        peerId: event.peerId,
        instanceId: pending.instanceId,
        url: pending.url,
        seq: pending.seq,
        files: assembled.items,
      });
    const result = this.watches ? this.watches.fullState(event.peerId, apply, pending.name) : apply();
    if (result === 'stale') return;
    this.registry.bind(event.peerId, {
      publicKey: pending.publicKey,
      name: pending.name,
      instanceId: pending.instanceId,
      lastSeenMs: Date.now(),
    });
    if (isNew || existing?.instanceId !== pending.instanceId) {
      this.settings.logger.info('peer joined', {
        peerId: event.peerId,
        name: pending.name,
        url: pending.url,
        files: this.index.getPeer(event.peerId)?.fileCount,
      });
    }
    if (result === 'applied' || isNew) await this.broadcastPeerState(event.peerId);
    this.updateGauges();
  }

  private async onDelta(event: PeerDelta): Promise<void> {
    this.registry.touch(event.peerId, event.instanceId, Date.now());
    const known = this.index.getPeer(event.peerId);
    if (
      known &&
      known.instanceId === event.instanceId &&
      known.fileCount + event.upserted.length > this.settings.maxFilesPerPeer
    ) {
      // Might stay under once applied (upserts of known names), but only a full state can say: refuse it,
      // and the peer's next heartbeat shows a gap that asks for one.
      throw new P2PError(
        'LIMIT_EXCEEDED',
        `peer ${event.peerId} would share more than ${this.settings.maxFilesPerPeer} files (SUPERPEER_MAX_FILES_PER_PEER)`,
      );
    }
    const apply = () => this.index.applyDelta(event);
    const result = this.watches ? this.watches.delta(event, apply) : apply();
    if (result === 'applied') {
      this.broadcaster.publishInOrder({
        v: 1,
        type: 'network.peer-delta',
        superpeerId: this.settings.superpeerId,
        peerId: event.peerId,
        instanceId: event.instanceId,
        seq: event.seq,
        upserted: event.upserted,
        removed: event.removed,
      });
      await this.broadcaster.settle();
      this.updateGauges();
    } else if (result === 'gap' || result === 'unknown-peer') {
      this.requestResync(event.peerId, event.instanceId, result);
    }
  }

  private async onHeartbeat(event: PeerHeartbeat): Promise<void> {
    const known = this.index.getPeer(event.peerId);
    if (!known || known.instanceId !== event.instanceId) {
      this.requestResync(event.peerId, event.instanceId, known ? 'new instance' : 'unknown peer');
      return;
    }
    this.registry.touch(event.peerId, event.instanceId, Date.now());
    if (event.seq > known.seq) this.requestResync(event.peerId, event.instanceId, 'behind');
  }

  private async onLeave(event: PeerLeave): Promise<void> {
    this.assembler.delete(event.peerId);
    await this.dropPeer(event.peerId, event.instanceId, 'leave');
  }

  private async dropPeer(peerId: string, instanceId: string, reason: 'leave' | 'timeout'): Promise<void> {
    const remove = () => this.index.removePeer(peerId, instanceId);
    if (!(this.watches ? this.watches.peerRemoved(peerId, remove) : remove())) return;
    this.registry.delete(peerId);
    this.resync.forget(peerId);
    this.settings.logger.info(reason === 'leave' ? 'peer left' : 'peer timed out', { peerId });
    this.updateGauges();
    await this.broadcaster.publish({
      v: 1,
      type: 'network.peer-left',
      superpeerId: this.settings.superpeerId,
      peerId,
      instanceId,
      reason,
    });
  }

  /**
   * Drops the peers silent past the timeout, a slice at a time (each slice at most SWEEP_SLICE_PEERS peers
   * or SLICE_BUDGET_MS, then the event loop runs), so that a thousand peers leaving at once blocks nothing.
   * While our own events queue has a backlog, the heartbeats waiting in it are not silence: the deadline
   * moves back by as long as the backlog has lasted (at least one timeout, at most MAX_BACKLOG_GRACE_TIMEOUTS timeouts).
   */
  async sweep(): Promise<void> {
    const now = Date.now();
    const sinceLastSweepMs = now - this.lastSweepMs;
    this.lastSweepMs = now;
    this.watches?.tick();
    if (this.sweeping || this.closed || !this.transport.connected) return;
    if (sinceLastSweepMs > 2 * this.settings.sweepIntervalMs + 1000) {
      // This process was stalled (paused, swapped out): the peers' heartbeats wait unread in our queue,
      // so their silence is ours. Give them a fresh period instead of dropping them all.
      this.registry.refreshAll(now);
      this.lastEventMs = now;
      return;
    }
    this.checkEventsSilence(now);
    this.sweeping = true;
    try {
      let deadline = now - this.settings.peerTimeoutMs;
      if (this.registry.overdue(deadline, 1).length === 0) {
        this.backlogSinceMs = undefined;
        return;
      }
      const backlog = await this.transport.eventBacklog();
      if (backlog !== undefined && backlog > 0) {
        this.backlogSinceMs ??= now;
        // The backlog may have begun before we looked: at least one more timeout.
        const graceMs = Math.min(
          Math.max(Date.now() - this.backlogSinceMs, this.settings.peerTimeoutMs),
          MAX_BACKLOG_GRACE_TIMEOUTS * this.settings.peerTimeoutMs,
        );
        deadline -= graceMs;
      } else {
        this.backlogSinceMs = undefined;
      }
      for (;;) {
        const sliceStarted = performance.now();
        const overdue = this.registry.overdue(deadline, SWEEP_SLICE_PEERS);
        if (overdue.length === 0) return;
        for (const peer of overdue) {
          // A heartbeat may have arrived since the list was made.
          if ((this.registry.get(peer.peerId)?.lastSeenMs ?? 0) >= deadline) continue;
          void this.dropPeer(peer.peerId, peer.instanceId, 'timeout');
          if (performance.now() - sliceStarted > SLICE_BUDGET_MS) break;
        }
        await yieldToEventLoop();
        if (this.closed) return;
      }
    } finally {
      this.sweeping = false;
    }
  }

  private requestResync(peerId: string, instanceId: string, reason: string): void {
    if (this.registry.isOverLimit(peerId, instanceId)) return;
    if (this.resync.request(peerId)) {
      this.settings.logger.debug('asking a peer for its full state', { peerId, reason });
    }
  }

  private async broadcastPeerState(peerId: string): Promise<void> {
    const peer = this.index.getPeer(peerId);
    const binding = this.registry.get(peerId);
    if (!peer || !binding) return;
    const pieces = chunk(this.index.peerFiles(peerId));
    for (const [chunkIndex, files] of pieces.entries()) {
      this.broadcaster.publishInOrder({
        v: 1,
        type: 'network.peer-state',
        superpeerId: this.settings.superpeerId,
        peerId,
        publicKey: binding.publicKey,
        ...(binding.name !== undefined ? { name: binding.name } : {}),
        instanceId: peer.instanceId,
        url: peer.url,
        seq: peer.seq,
        chunkIndex,
        chunkCount: pieces.length,
        files,
      });
      await this.broadcaster.settle();
      if (pieces.length > 1) await yieldToEventLoop();
    }
  }

  private updateGauges(): void {
    this.metrics?.indexedPeers.set(this.index.peerCount);
    this.metrics?.indexedFiles.set(this.index.fileCount);
  }

  private onRpc(request: RpcRequest): SearchReply | PeersReply | SnapshotReply {
    const started = process.hrtime.bigint();
    try {
      return answerRpc(this.index, this.registry, this.settings.superpeerId, request);
    } finally {
      const seconds = Number(process.hrtime.bigint() - started) / 1e9;
      this.metrics?.rpcSeconds.observe({ type: request.type }, seconds);
    }
  }
}

function yieldToEventLoop(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

/** The options that are set (an explicit `undefined` must not override a default). */
function definedOnly<T extends object>(options: T): Partial<T> {
  return Object.fromEntries(Object.entries(options).filter(([, value]) => value !== undefined)) as Partial<T>;
}
