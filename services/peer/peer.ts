import { randomBytes } from 'node:crypto';
import pLimit from 'p-limit';
import { v4 as uuidv4 } from 'uuid';
import { describeError } from '../../libs/errors/index.js';
import { type PeerIdentity, signBody } from '../../libs/identity/index.js';
import { childLog, type Log } from '../../libs/logging/index.js';
import {
  Broker,
  type BrokerSession,
  consumeValidated,
  type RpcClient,
  Throttle,
} from '../../libs/messaging/index.js';
import {
  chunk,
  decodeWithFileList,
  decodeWithFileLists,
  EACH_PEERS_FILES,
  encode,
  followerQueue,
  HEADERS,
  mergeTopology,
  type NetworkMessage,
  NetworkMessageSchema,
  type PackedFiles,
  type PeerEvent,
  type PeerListAnswer,
  type PeerSearchAnswer,
  peerEvent,
  SnapshotReplySchema,
  sharedTopology,
  type TopologyNames,
  topologyNames,
} from '../../libs/protocol/index.js';
import type { Share, ShareChange } from '../../libs/share/index.js';
import { OwnFiles } from './own-files.js';
import { listNetworkPeers, type QuerySources, searchNetwork } from './queries.js';
import { NetworkTicks } from './ticks.js';
import { NetworkView, nextTurn } from './view.js';

export interface PeerOptions {
  amqpUrl: string;
  namespace: string;
  identity: PeerIdentity;
  share: Share;
  /** HTTP base URL other peers use to reach this one. */
  publicUrl: string;
  logger: Log;
  /** Default 2000. */
  heartbeatIntervalMs?: number;
  /** Time a search waits for a superpeer before answering from the local view. Default 2000. */
  searchTimeoutMs?: number;
  /**
   * At most one full announce per this interval, whatever asks for it (resync requests, forged or not,
   * reconnects): later requests wait for the interval to end and count once. Default 3000.
   */
  announceMinIntervalMs?: number;
}

/** Delay that lets several superpeers' resync requests coalesce into one announce. */
const RESYNC_COALESCE_MS = 50;
/**
 * The random part of a resync announce's delay grows with the network, so that 1,000 peers asked at once
 * spread over 2 s instead of answering in the same millisecond; small networks answer well inside a
 * superpeer's warm-up (before the first announce it waits 1 s, then until 300 ms pass without one).
 */
export function resyncJitterWindowMs(peersInView: number): number {
  return Math.min(2000, Math.max(200, 2 * peersInView));
}
/** After a superpeer's resync request: longer than its warm-up (at most 2.5 s) before it serves snapshots. */
const VIEW_REFRESH_AFTER_RESYNC_MS = 3000;
/** A whole-view reload asked for by the network happens at most this often (each one pages the whole index). */
const VIEW_REFRESH_MIN_INTERVAL_MS = 10_000;
const STREAM_SILENCE_CHECK_MS = 1000;
/**
 * One snapshot page (up to 2,000 files) may take longer than a search: a superpeer in the middle of a join
 * serves it between the events it applies. A page is given at least this long, whatever the search timeout.
 */
const SNAPSHOT_PAGE_TIMEOUT_MS = 10_000;
/** Network messages delivered and not yet handled, at most (see `setup`). */
const NETWORK_PREFETCH = 8;

/**
 * A peer's network side: announces its share and changes, heartbeats, follows the network, searches.
 * HTTP serving lives beside it in the composition root.
 */
export class Peer {
  readonly instanceId = uuidv4();
  /** Part of this peer's queue name, so no other client can publish into that queue by name. */
  private readonly queueSecret = randomBytes(16).toString('hex');
  readonly view: NetworkView;
  private readonly local: OwnFiles;
  private readonly names: TopologyNames;
  private readonly broker: Broker;
  private readonly rpc: RpcClient;
  private readonly options: Required<PeerOptions>;
  private seq = 1;
  /** Heartbeats sent by this run: each carries the next number (`beat`), so a replayed copy counts for nothing. */
  private beats = 0;
  private heartbeatTimer: NodeJS.Timeout | undefined;
  private silenceTimer: NodeJS.Timeout | undefined;
  private readonly announces: Throttle;
  private readonly viewRefreshes: Throttle;
  private readonly ticks = new NetworkTicks();
  /** Outgoing events leave in order, one at a time. */
  private readonly outgoing = pLimit(1);
  private closed = false;

  constructor(options: PeerOptions) {
    this.options = {
      heartbeatIntervalMs: 2000,
      searchTimeoutMs: 2000,
      announceMinIntervalMs: 3000,
      ...options,
    };
    this.names = topologyNames(options.namespace);
    this.broker = new Broker({
      url: options.amqpUrl,
      connectionName: `peer ${options.identity.name} ${options.identity.peerId}`,
      logger: options.logger,
      setup: (session) => this.setup(session),
    });
    this.rpc = this.broker.createRpcClient(this.names.rpcQueue);
    this.local = new OwnFiles(options.logger);
    this.view = new NetworkView(
      // Each peer's files read straight into columns when written canonically (as superpeers write them).
      (request) =>
        this.rpc.callDecoded(
          request,
          (body) =>
            decodeWithFileLists(SnapshotReplySchema, body, EACH_PEERS_FILES, {
              spare: this.view.spare,
              json: false,
              distinctNames: false,
            }),
          { timeoutMs: Math.max(this.options.searchTimeoutMs, SNAPSHOT_PAGE_TIMEOUT_MS) },
        ),
      childLog(options.logger, 'view'),
    );
    this.announces = new Throttle(() => this.enqueue(() => this.announce()), {
      minIntervalMs: this.options.announceMinIntervalMs,
      // Three back to back: the announce on connect, the request of the superpeer that saw us connect, and
      // one more superpeer that starts right after and asks within its warm-up (which ends after 300 ms
      // without an announce, so a throttled answer would come too late); a flood still gets one per interval.
      burst: 3,
      delayMs: RESYNC_COALESCE_MS,
      jitterMs: () => resyncJitterWindowMs(this.view.index.peerCount),
    });
    this.viewRefreshes = new Throttle(() => this.refreshView(), {
      minIntervalMs: VIEW_REFRESH_MIN_INTERVAL_MS,
      // Two back to back: a superpeer restarted soon after another one (or after a broker restart made it
      // ask) is not kept waiting for the interval; a flood still gets one reload per interval.
      burst: 2,
      delayMs: VIEW_REFRESH_AFTER_RESYNC_MS,
    });
    this.broker.on('connected', () => {
      this.announces.request({ immediate: true });
      this.reloadView('connected');
    });
    // Changes broadcast while our copy of the network stream was cut off are lost: reload the view.
    this.broker.on('topology-repaired', ({ reason }) => this.reloadView(`topology repaired: ${reason}`));
  }

  get peerId(): string {
    return this.options.identity.peerId;
  }

  /** Display name (not unique; the id is). */
  get name(): string {
    return this.options.identity.name;
  }

  get connected(): boolean {
    return this.broker.connected;
  }

  get currentSeq(): number {
    return this.seq;
  }

  async start(): Promise<void> {
    const { share } = this.options;
    // The state and the listener in one task: a change while the load runs is queued after it, not lost.
    const loading = this.local.load(this.ownState());
    share.on('change', (change) => this.onShareChange(change));
    await loading;
    await this.broker.start();
    this.heartbeatTimer = setInterval(() => this.heartbeat(), this.options.heartbeatIntervalMs);
    this.heartbeatTimer.unref();
    this.silenceTimer = setInterval(() => this.checkStreamSilence(), STREAM_SILENCE_CHECK_MS);
    this.silenceTimer.unref();
  }

  /** Announces the leave (so the peer's files vanish at once), then disconnects. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.heartbeatTimer) clearInterval(this.heartbeatTimer);
    if (this.silenceTimer) clearInterval(this.silenceTimer);
    this.announces.cancel();
    this.viewRefreshes.cancel();
    await this.outgoing(() => undefined);
    if (this.broker.connected) {
      await this.publishEvent(peerEvent.leave({ peerId: this.peerId, instanceId: this.instanceId })).catch(
        (err) => this.options.logger.warn('could not announce the leave', { reason: describeError(err) }),
      );
    }
    this.rpc.close();
    await this.broker.close();
  }

  /** Local matches first, then the network's, from a superpeer or else this peer's view. */
  search(text: string, limit: number): Promise<PeerSearchAnswer> {
    return searchNetwork(this.querySources(), text, limit);
  }

  /** The superpeers' listing of the peers (with last-seen ages), else this peer's view. */
  listPeers(): Promise<PeerListAnswer> {
    return listNetworkPeers(this.querySources());
  }

  private querySources(): QuerySources {
    return {
      rpc: this.rpc,
      local: this.local.index,
      view: this.view,
      peerId: this.peerId,
      name: this.name,
      timeoutMs: this.options.searchTimeoutMs,
      logger: this.options.logger,
    };
  }

  private async setup(session: BrokerSession): Promise<void> {
    const queue = this.names.peerQueue(this.peerId, this.queueSecret);
    // The shared objects are a superpeer's (or `p2p setup`'s) to declare: a peer only checks they exist, and
    // the connection retries until they do. Under the roles a peer may configure its own queue only.
    await session.assertTopology(
      mergeTopology(
        sharedTopology(this.names, { declareShared: false }),
        followerQueue(this.names, queue, this.names.networkExchange),
      ),
    );
    await consumeValidated(session, {
      queue,
      schema: NetworkMessageSchema,
      // A state's files written canonically (as superpeers write them) are read into columns at once.
      decode: (content, maxBytes) =>
        decodeWithFileList(NetworkMessageSchema, content, {
          maxBytes,
          spare: this.view.spare,
          json: false,
          distinctNames: false,
        }),
      // Messages wait here, unparsed, while the one before them is applied: a peer-state of 2,000 files is
      // ~300 KB, so at most ~2.5 MB of them; each takes milliseconds, far longer than the broker's refill.
      prefetch: NETWORK_PREFETCH,
      deadLetter: { exchange: this.names.deadLetterExchange, rejectedBy: `peer ${this.peerId}` },
      // Each change is applied once per (peer, run, seq): one handled again is ignored.
      batchAcks: true,
      handler: ({ value, packed }) => this.onNetworkMessage(value, packed),
    });
  }

  /**
   * A message with files resolves once they are applied, and after a turn of the event loop: the consumer
   * takes the next message only then, so a burst read from the socket at once (a dozen states of 1,000
   * files) is parsed and applied one message per task, not in one long task.
   */
  private async onNetworkMessage(message: NetworkMessage, packed?: PackedFiles): Promise<void> {
    switch (message.type) {
      case 'network.peer-state':
        await this.view.applyState(message, packed);
        await nextTurn();
        return;
      case 'network.peer-delta':
        await this.view.applyDelta(message);
        await nextTurn();
        return;
      case 'network.peer-left':
        this.view.applyLeft(message);
        return;
      case 'network.resync-request':
        // Anyone who may publish to the network exchange can send these, as often as they like: they are
        // coalesced, jittered and bounded (one announce per interval), never obeyed one by one.
        if (this.closed) return;
        if (message.peerIds === undefined || message.peerIds.includes(this.peerId)) this.announces.request();
        // A superpeer that (re)started has rebuilt its index from the peers alive now: peers that died
        // meanwhile will never get a peer-left, so reload the whole view once it has settled.
        if (message.peerIds === undefined) this.viewRefreshes.request();
        return;
      case 'network.tick':
        this.onTick(message.superpeerId, message.seq, message.intervalMs);
        return;
    }
  }

  private onTick(superpeerId: string, seq: number, intervalMs: number): void {
    const back = this.ticks.onTick(superpeerId, seq, intervalMs);
    if (!back) return;
    this.options.logger.info('network stream is back', { superpeerId, missedTicks: back.missedTicks });
    this.reloadView(back.reason);
  }

  /**
   * Ticks stopped: our binding or the network exchange may be gone (deleted, then declared again by someone
   * else, which no passive check sees), or no superpeer runs. Either way the view can no longer follow the
   * network: it says so, and our part of the topology is declared again once.
   */
  private checkStreamSilence(): void {
    if (this.closed || !this.broker.connected) return;
    const silentMs = this.ticks.checkSilence();
    if (silentMs === undefined) return;
    this.view.markStale();
    this.options.logger.warn('no network.tick from any superpeer; the network view is stale', { silentMs });
    void this.broker.repairTopology(`no network.tick for ${silentMs} ms`);
  }

  /** The view is stale from now until a whole reload completed. */
  private reloadView(reason: string): void {
    if (this.closed) return;
    this.view.markStale();
    this.options.logger.info('reloading the network view', { reason });
    void this.view.refreshUntilDone(() => this.closed || !this.broker.connected, 2000);
  }

  private refreshView(): void {
    if (this.closed) return;
    void this.view
      .refresh()
      .catch((err) =>
        this.options.logger.warn('could not reload the network view', { reason: describeError(err) }),
      );
  }

  private onShareChange(change: ShareChange): void {
    if (change.upserted.length === 0 && change.removed.length === 0) return;
    // Deltas are numbered as they happen, even offline: after a reconnect the full announce supersedes them.
    const upserts = chunk(change.upserted);
    const removals = chunk(change.removed);
    const pieces = Math.max(upserts.length, removals.length);
    for (let i = 0; i < pieces; i++) {
      const upserted = upserts[i] ?? [];
      const removed = removals[i] ?? [];
      if (upserted.length === 0 && removed.length === 0) continue;
      const seq = ++this.seq;
      this.local.change({ peerId: this.peerId, instanceId: this.instanceId, seq, upserted, removed });
      this.enqueue(() =>
        this.publishEvent(
          peerEvent.delta({ peerId: this.peerId, instanceId: this.instanceId, seq, upserted, removed }),
        ),
      );
    }
    this.options.logger.info('share changed', {
      upserted: change.upserted.map((file) => file.name).slice(0, 20),
      removed: change.removed.slice(0, 20),
      seq: this.seq,
    });
  }

  private ownState() {
    return {
      peerId: this.peerId,
      instanceId: this.instanceId,
      url: this.options.publicUrl,
      seq: this.seq,
      files: this.options.share.list(),
    };
  }

  /** Publishes the full state at the current seq, in chunks. */
  private async announce(): Promise<void> {
    const state = this.ownState();
    const pieces = chunk(state.files);
    for (const [chunkIndex, files] of pieces.entries()) {
      await this.publishEvent(
        peerEvent.announce({
          peerId: this.peerId,
          name: this.name,
          instanceId: this.instanceId,
          url: state.url,
          seq: state.seq,
          publicKey: this.options.identity.publicKeyDer,
          chunkIndex,
          chunkCount: pieces.length,
          files,
        }),
      );
    }
    this.options.logger.info('announced', { seq: state.seq, files: state.files.length, url: state.url });
  }

  private heartbeat(): void {
    const body = encode(
      peerEvent.heartbeat({
        peerId: this.peerId,
        instanceId: this.instanceId,
        seq: this.seq,
        fileCount: this.options.share.fileCount,
        beat: ++this.beats,
      }),
    );
    void this.broker.publish(this.names.eventsExchange, 'peer.heartbeat', body, {
      confirm: false,
      // No superpeer to hear it is normal for a heartbeat (the announce already reported it): not mandatory.
      properties: { ...this.eventProperties('peer.heartbeat', body), mandatory: false },
    });
  }

  private async publishEvent(event: PeerEvent): Promise<void> {
    const body = encode(event);
    // Keyed by type: a superpeer's liveness copy takes only heartbeats (docs/protocol.md).
    await this.broker.publish(this.names.eventsExchange, event.type, body, {
      properties: this.eventProperties(event.type, body),
    });
  }

  private eventProperties(type: string, body: Buffer) {
    return {
      messageId: uuidv4(),
      type,
      appId: `peer ${this.name} ${this.peerId}`,
      headers: { [HEADERS.signature]: signBody(this.options.identity.privateKey, body) },
    };
  }

  /** Outgoing events leave in order, one at a time; a failure is logged and later repaired by a resync. */
  private enqueue(task: () => Promise<void>): void {
    this.outgoing(task).catch((err) => {
      if (!this.closed)
        this.options.logger.warn('could not publish an event', { reason: describeError(err) });
    });
  }
}
