import { randomBytes } from 'node:crypto';
import { v4 as uuidv4 } from 'uuid';
import { describeError } from '../../libs/errors/index.js';
import { NetworkIndex, parseQuery } from '../../libs/index/index.js';
import type { Log } from '../../libs/logging/index.js';
import { Broker, type BrokerSession, consumeValidated, RpcClient } from '../../libs/messaging/index.js';
import {
  chunk,
  encode,
  followerQueue,
  HEADERS,
  mergeTopology,
  type NetworkMessage,
  NetworkMessageSchema,
  type PeerEvent,
  SearchReplySchema,
  type SearchResult,
  SnapshotReplySchema,
  sharedTopology,
  type TopologyNames,
  topologyNames,
} from '../../libs/protocol/index.js';
import { type PeerIdentity, type Share, type ShareChange, signBody } from '../../libs/share/index.js';
import { NetworkView } from './view.js';

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
}

export interface PeerSearchAnswer {
  results: SearchResult[];
  /** `superpeer`: the index answered; `network-view`: no superpeer answered, this peer's own view did. */
  source: 'superpeer' | 'network-view';
  /** True when the answer may miss recent changes (the view is not known to be current). */
  stale: boolean;
  truncated: boolean;
  /** Why the superpeer was not used, when it was not. */
  superpeerError?: string;
}

/** Delay that lets several superpeers' resync requests coalesce into one announce. */
const RESYNC_COALESCE_MS = 100;
/** After a superpeer's resync request: longer than its warm-up (at most 2.5 s) before it serves snapshots. */
const VIEW_REFRESH_AFTER_RESYNC_MS = 3000;

/**
 * A peer's network side: announces its share and changes, heartbeats, follows the network, searches.
 * HTTP serving lives beside it in the composition root.
 */
export class Peer {
  readonly instanceId = uuidv4();
  /** Part of this peer's queue name, so no other client can publish into that queue by name. */
  private readonly queueSecret = randomBytes(16).toString('hex');
  readonly view: NetworkView;
  /** This peer's own files, searchable like the network (local results come first). */
  private readonly local = new NetworkIndex();
  private readonly names: TopologyNames;
  private readonly broker: Broker;
  private readonly rpc: RpcClient;
  private readonly options: Required<PeerOptions>;
  private seq = 1;
  private heartbeatTimer: NodeJS.Timeout | undefined;
  private resyncTimer: NodeJS.Timeout | undefined;
  private viewRefreshTimer: NodeJS.Timeout | undefined;
  private outgoing: Promise<void> = Promise.resolve();
  private closed = false;

  constructor(options: PeerOptions) {
    this.options = { heartbeatIntervalMs: 2000, searchTimeoutMs: 2000, ...options };
    this.names = topologyNames(options.namespace);
    this.broker = new Broker({
      url: options.amqpUrl,
      connectionName: `peer ${options.identity.name} ${options.identity.peerId}`,
      logger: options.logger,
      setup: (session) => this.setup(session),
    });
    this.rpc = new RpcClient(this.broker, this.names.rpcQueue);
    this.view = new NetworkView(
      (request) => this.rpc.call(request, SnapshotReplySchema, { timeoutMs: this.options.searchTimeoutMs }),
      options.logger,
    );
    this.broker.on('connected', () => {
      this.enqueue(() => this.announce());
      this.view.markStale();
      void this.view.refreshUntilDone(() => this.closed || !this.broker.connected, 2000);
    });
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
    this.local.applyFull(this.ownState());
    share.on('change', (change) => this.onShareChange(change));
    await this.broker.start();
    this.heartbeatTimer = setInterval(() => this.heartbeat(), this.options.heartbeatIntervalMs);
    this.heartbeatTimer.unref();
  }

  /** Announces the leave (so the peer's files vanish at once), then disconnects. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.heartbeatTimer) clearInterval(this.heartbeatTimer);
    if (this.resyncTimer) clearTimeout(this.resyncTimer);
    if (this.viewRefreshTimer) clearTimeout(this.viewRefreshTimer);
    await this.outgoing;
    if (this.broker.connected) {
      await this.publishEvent({
        v: 1,
        type: 'peer.leave',
        peerId: this.peerId,
        instanceId: this.instanceId,
      }).catch((err) =>
        this.options.logger.warn('could not announce the leave', { reason: describeError(err) }),
      );
    }
    this.rpc.close();
    await this.broker.close();
  }

  /** Local matches first (as the seed did), then the network's, from a superpeer or else this peer's view. */
  async search(text: string, limit: number): Promise<PeerSearchAnswer> {
    const query = parseQuery(text);
    const local = this.local.search(query, limit);
    const correlationId = uuidv4();
    let remote: { results: SearchResult[]; truncated: boolean };
    let answer: Omit<PeerSearchAnswer, 'results' | 'truncated'>;
    try {
      const reply = await this.rpc.call({ v: 1, type: 'rpc.search', query: text, limit }, SearchReplySchema, {
        timeoutMs: this.options.searchTimeoutMs,
        correlationId,
      });
      remote = reply;
      answer = { source: 'superpeer', stale: false };
    } catch (err) {
      const fromView = this.view.index.search(query, limit);
      remote = { ...fromView, results: fromView.results.map((result) => this.named(result)) };
      answer = { source: 'network-view', stale: true, superpeerError: describeError(err) };
      this.options.logger.warn('no superpeer answered; searched this peer’s own view', {
        correlationId,
        reason: describeError(err),
      });
    }
    this.options.logger.debug('searched', {
      correlationId,
      source: answer.source,
      local: local.results.length,
    });
    const merged = [
      ...local.results.map((result) => ({ ...result, peerName: this.name })),
      ...remote.results.filter((result) => result.peerId !== this.peerId),
    ];
    return {
      ...answer,
      results: merged.slice(0, limit),
      truncated: local.truncated || remote.truncated || merged.length > limit,
    };
  }

  private named(result: SearchResult): SearchResult {
    const peerName = this.view.nameOf(result.peerId);
    return peerName === undefined ? result : { ...result, peerName };
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
    await this.rpc.setup(session);
    await consumeValidated(session, {
      queue,
      schema: NetworkMessageSchema,
      prefetch: 256,
      deadLetter: { exchange: this.names.deadLetterExchange, rejectedBy: `peer ${this.peerId}` },
      handler: (message) => this.onNetworkMessage(message),
    });
  }

  private onNetworkMessage(message: NetworkMessage): void {
    switch (message.type) {
      case 'network.peer-state':
        this.view.applyState(message);
        return;
      case 'network.peer-delta':
        this.view.applyDelta(message);
        return;
      case 'network.peer-left':
        this.view.applyLeft(message);
        return;
      case 'network.resync-request':
        if (message.peerIds === undefined || message.peerIds.includes(this.peerId)) this.scheduleResync();
        // A superpeer that (re)started has rebuilt its index from the peers alive now: peers that died
        // meanwhile will never get a peer-left, so reload the whole view once it has settled.
        if (message.peerIds === undefined) this.scheduleViewRefresh();
        return;
    }
  }

  private scheduleResync(): void {
    if (this.resyncTimer || this.closed) return;
    this.resyncTimer = setTimeout(() => {
      this.resyncTimer = undefined;
      this.enqueue(() => this.announce());
    }, RESYNC_COALESCE_MS);
  }

  private scheduleViewRefresh(): void {
    if (this.viewRefreshTimer || this.closed) return;
    this.viewRefreshTimer = setTimeout(() => {
      this.viewRefreshTimer = undefined;
      void this.view
        .refresh()
        .catch((err) =>
          this.options.logger.warn('could not reload the network view', { reason: describeError(err) }),
        );
    }, VIEW_REFRESH_AFTER_RESYNC_MS);
    this.viewRefreshTimer.unref();
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
      this.local.applyDelta({ peerId: this.peerId, instanceId: this.instanceId, seq, upserted, removed });
      this.enqueue(() =>
        this.publishEvent({
          v: 1,
          type: 'peer.delta',
          peerId: this.peerId,
          instanceId: this.instanceId,
          seq,
          upserted,
          removed,
        }),
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
      await this.publishEvent({
        v: 1,
        type: 'peer.announce',
        peerId: this.peerId,
        name: this.name,
        instanceId: this.instanceId,
        url: state.url,
        seq: state.seq,
        publicKey: this.options.identity.publicKeyDer,
        chunkIndex,
        chunkCount: pieces.length,
        files,
      });
    }
    this.options.logger.info('announced', { seq: state.seq, files: state.files.length, url: state.url });
  }

  private heartbeat(): void {
    const body = encode({
      v: 1,
      type: 'peer.heartbeat',
      peerId: this.peerId,
      instanceId: this.instanceId,
      seq: this.seq,
      fileCount: this.options.share.fileCount,
    } satisfies PeerEvent);
    void this.broker.publish(this.names.eventsExchange, '', body, {
      confirm: false,
      // No superpeer to hear it is normal for a heartbeat (the announce already reported it): not mandatory.
      properties: { ...this.eventProperties('peer.heartbeat', body), mandatory: false },
    });
  }

  private async publishEvent(event: PeerEvent): Promise<void> {
    const body = encode(event);
    await this.broker.publish(this.names.eventsExchange, '', body, {
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
    this.outgoing = this.outgoing.then(task).catch((err) => {
      if (!this.closed)
        this.options.logger.warn('could not publish an event', { reason: describeError(err) });
    });
  }
}
