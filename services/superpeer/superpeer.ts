import { v4 as uuidv4 } from 'uuid';
import { Broker, Throttle } from '../../libs/messaging/index.js';
import {
  ChunkAssembler,
  PackedFiles,
  type PeersReply,
  PROTOCOL_VERSION,
  type RpcRequest,
  type SearchReply,
  type SnapshotReply,
  topologyNames,
} from '../../libs/protocol/index.js';
import { NetworkIndex } from '../../libs/search/index.js';
import type { AnnounceAssembler } from './announce-assembly.js';
import { Broadcaster } from './broadcaster.js';
import { FairQueue } from './fair-queue.js';
import { IndexGate } from './index-gate.js';
import { countHeartbeatOnArrival } from './liveness.js';
import type { SuperpeerMetrics } from './metrics.js';
import { type Settings, type SuperpeerOptions, settingsOf } from './options.js';
import { answerRpc } from './paging.js';
import { PeerEvents, yieldToEventLoop } from './peer-events.js';
import { PeerRegistry } from './registry.js';
import { ResyncBatcher } from './resync-batcher.js';
import { AmqpSuperpeerTransport, type SuperpeerTransport } from './transport.js';
import { VerifiedSignatures } from './verified-signatures.js';
import { warmUp } from './warmup.js';
import { WatchHub } from './watch-hub.js';

export type { SuperpeerOptions } from './options.js';

/** Peers looked at per round of a sweep (each removal is sliced on its own). */
const SWEEP_SLICE_PEERS = 200;
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
  /** Heartbeats verified on arrival are not verified again in their turn. */
  private readonly verified = new VerifiedSignatures();
  /** Every change of the index and registry goes through it; searches read between changes. */
  readonly gate = new IndexGate();
  readonly assembler: AnnounceAssembler;
  private readonly events: PeerEvents;
  private readonly rpcQueue: FairQueue;
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
    this.settings = settingsOf(options);
    this.metrics = options.metrics;
    this.assembler = new ChunkAssembler(
      { ...options.assemblerLimits, maxItemsPerList: this.settings.maxFilesPerPeer },
      Date.now,
      // A state never completed: its packed chunks' buffers go back to the decoding threads all the same.
      (pieces) => {
        for (const piece of pieces) if (piece instanceof PackedFiles) this.transport.recycle?.(piece.buffer);
      },
    );
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
        decodeWorkers: this.settings.decodeWorkers,
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
        slices: options.slices ?? {},
      });
      this.watchBroker = watchBroker;
      this.watches = watches;
    }
    this.broadcaster = new Broadcaster(this.transport, this.settings.logger);
    this.resyncBroadcast = new Throttle(
      () =>
        void this.broadcaster.publish({
          v: PROTOCOL_VERSION,
          type: 'network.resync-request',
          superpeerId: this.settings.superpeerId,
        }),
      { minIntervalMs: this.settings.resyncBroadcastMinIntervalMs },
    );
    this.resync = new ResyncBatcher({
      maxIdsPerSecond: this.settings.maxResyncsPerSecond,
      publish: (peerIds) =>
        void this.broadcaster.publish({
          v: PROTOCOL_VERSION,
          type: 'network.resync-request',
          superpeerId: this.settings.superpeerId,
          peerIds,
        }),
    });
    this.events = new PeerEvents({
      superpeerId: this.settings.superpeerId,
      index: this.index,
      registry: this.registry,
      gate: this.gate,
      assembler: this.assembler,
      broadcaster: this.broadcaster,
      resync: this.resync,
      watches: this.watches,
      maxFilesPerPeer: this.settings.maxFilesPerPeer,
      logger: this.settings.logger,
      metrics: this.metrics,
      slices: options.slices ?? {},
      onAnnounceSeen: () => {
        this.lastAnnounceMs = Date.now();
      },
      verified: this.verified,
      recycle: (files) => this.transport.recycle?.(files.buffer),
    });
    this.rpcQueue = new FairQueue(options.rpcFairness);
  }

  get id(): string {
    return this.settings.superpeerId;
  }

  async start(): Promise<void> {
    await this.transport.start({
      onEvent: (event, message, proof) => {
        this.lastEventMs = Date.now();
        return this.events.handle(event, message, proof);
      },
      onDelivery: (message, arrival) =>
        void countHeartbeatOnArrival(this.registry, message, Date.now(), this.verified, arrival),
      onEventRefused: () => {
        this.lastEventMs = Date.now();
        this.metrics?.messagesRefused.inc({ queue: 'events' });
      },
      onRpc: (request, client) => this.onRpc(request, client),
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
    this.broadcaster.close();
    if (this.sweepTimer) clearInterval(this.sweepTimer);
    if (this.tickTimer) clearInterval(this.tickTimer);
    this.resyncBroadcast.cancel();
    this.resync.close();
    this.events.close();
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
          v: PROTOCOL_VERSION,
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
    // Set by each announce; below `started` while none came in this warm-up.
    this.lastAnnounceMs = 0;
    const { settings } = this;
    try {
      const outcome = await warmUp(
        {
          lastAnnounceMs: () => this.lastAnnounceMs,
          closed: () => this.closed,
          hasPeer: (peerId) => this.index.getPeer(peerId) !== undefined,
          askSiblings: (request, timeoutMs) => this.transport.askSiblings(request, timeoutMs),
        },
        {
          quietMs: settings.warmupQuietMs,
          firstAnnounceMs: settings.warmupFirstAnnounceMs,
          maxMs: settings.warmupMaxMs,
          siblingMaxMs: settings.warmupSiblingMaxMs,
        },
      );
      if (this.closed) return;
      await this.transport.serveRpc();
      this.warm = true;
      settings.logger.info('superpeer serving searches', {
        peers: this.index.peerCount,
        files: this.index.fileCount,
        warmupMs: Date.now() - started,
        ...outcome,
      });
    } catch (err) {
      settings.logger.warn('could not start serving searches; will retry on reconnect', {
        reason: err instanceof Error ? err.message : String(err),
      });
    } finally {
      this.warming = false;
    }
  }

  /**
   * Drops the peers silent past the timeout, one sliced removal at a time (queued behind the changes
   * already waiting), so that a thousand peers leaving at once blocks nothing.
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
      // Each round drops what is overdue now (removals are sliced and queued behind other changes); a
      // peer heard while its removal waited is kept. Bounded: a round that drops nobody ends the sweep.
      const rounds = Math.ceil(this.registry.size / SWEEP_SLICE_PEERS) + 1;
      for (let round = 0; round < rounds; round++) {
        const overdue = this.registry.overdue(deadline, SWEEP_SLICE_PEERS);
        let dropped = 0;
        for (const peer of overdue) {
          if (this.closed) return;
          if (
            await this.events.dropPeer(peer.peerId, peer.instanceId, 'timeout', { silentSinceMs: deadline })
          )
            dropped++;
        }
        if (dropped === 0) return;
        await yieldToEventLoop();
      }
    } finally {
      this.sweeping = false;
    }
  }

  /**
   * Answers in the client's turn (one request of each client in turn: a flood delays nobody else by more
   * than a request), between two changes of the index (never half through a sliced apply).
   */
  private onRpc(request: RpcRequest, client: string): Promise<SearchReply | PeersReply | SnapshotReply> {
    return this.rpcQueue.run(client, () =>
      this.gate.read(() => {
        const started = process.hrtime.bigint();
        try {
          return answerRpc(this.index, this.registry, this.settings.superpeerId, request);
        } finally {
          const seconds = Number(process.hrtime.bigint() - started) / 1e9;
          this.metrics?.observeRpc(request.type, seconds);
        }
      }),
    );
  }
}
