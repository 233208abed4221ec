import { v4 as uuidv4 } from 'uuid';
import { describeError } from '../../libs/errors/index.js';
import { BurstLog, type Log } from '../../libs/logging/index.js';
import { type Broker, type BrokerSession, consumeValidated } from '../../libs/messaging/index.js';
import {
  encode,
  type FileEntry,
  type PeerDelta,
  PROTOCOL_VERSION,
  superpeerWatchQueueName,
  type TopologyNames,
  type WatchControl,
  WatchControlSchema,
  type WatchResyncRequest,
} from '../../libs/protocol/index.js';
import {
  type DeltaResult,
  type FullResult,
  forEachSliced,
  type NetworkIndex,
  runSliced,
  type SliceOptions,
} from '../../libs/search/index.js';
import {
  type ChangedPeer,
  type MatchPass,
  type Outgoing,
  WatchRegistry,
  type WatchRegistryOptions,
} from './watches.js';

export interface WatchHubOptions extends Omit<WatchRegistryOptions, 'superpeerId' | 'namespace'> {
  namespace: string;
  names: TopologyNames;
  superpeerId: string;
  instanceId: string;
  broker: Broker;
  index: NetworkIndex;
  logger: Log;
  /**
   * True while the superpeer is still rebuilding its index after a (re)start: the full states it receives
   * then are not news (other superpeers, or this one before its restart, already reported them), so they
   * match nothing.
   */
  rebuilding: () => boolean;
  /** The display name a registered peer announced. */
  nameOf?: (peerId: string) => string | undefined;
  /**
   * How reading, comparing and matching a peer's files is divided so that a large peer does not hold the
   * event loop (see `SliceOptions`; default its defaults).
   */
  slices?: SliceOptions;
}

/** Notices published per turn of the event loop; the rest wait for the next turn. */
const SEND_BATCH = 256;
/** Notices waiting to be published, at most (more are dropped, and logged). */
const MAX_OUTBOX = 20_000;

/**
 * Moves standing searches in and out of the superpeer: consumes the watches fanout into the registry,
 * matches each change the superpeer applies, and publishes notices to the watchers' queues. The superpeer
 * calls it around each change it applies (`fullState`, `delta`, `peerRemoved`) and from its sweep (`tick`).
 */
export class WatchHub {
  readonly registry: WatchRegistry;
  private readonly options: WatchHubOptions;
  /** Notices not yet published, from `outboxHead` on (see `send`). */
  private outbox: Outgoing[] = [];
  private outboxHead = 0;
  private draining = false;
  private readonly droppedLog: BurstLog;

  constructor(options: WatchHubOptions) {
    this.options = options;
    this.registry = new WatchRegistry({ ...options });
    this.droppedLog = new BurstLog(options.logger, {
      message: 'watch notices dropped: too many waiting',
      summary: 'more watch notices dropped',
      level: 'warn',
    });
    // A notice to a queue that no longer exists comes back (mandatory): its watcher is gone.
    options.broker.on('returned', (info) => {
      if (info.exchange !== '' || !info.routingKey.startsWith(`${options.namespace}.watch.`)) return;
      const dropped = this.registry.dropQueue(info.routingKey);
      if (dropped > 0)
        options.logger.info('watcher gone; dropped its watches', { queue: info.routingKey, dropped });
    });
    // A (re)started superpeer knows no watch: ask every watcher to register again now, not at its next refresh.
    options.broker.on('connected', () => {
      const request: WatchResyncRequest = {
        v: PROTOCOL_VERSION,
        type: 'watch.resync-request',
        superpeerId: options.superpeerId,
      };
      void options.broker
        .publish(options.names.watchersExchange, '', encode(request), {
          // No watcher listening is normal.
          properties: { messageId: uuidv4(), type: request.type, mandatory: false },
        })
        .catch((err) =>
          options.logger.warn('could not ask watchers to register again', { reason: describeError(err) }),
        );
    });
  }

  /** Declares this superpeer's copy of the watches fanout and consumes it. Part of the broker setup. */
  async setup(session: BrokerSession): Promise<void> {
    const queue = superpeerWatchQueueName(
      this.options.namespace,
      this.options.superpeerId,
      this.options.instanceId,
    );
    await session.assertTopology({
      exchanges: [],
      queues: [
        {
          name: queue,
          durable: false,
          exclusive: true,
          arguments: {
            'x-dead-letter-exchange': this.options.names.deadLetterExchange,
            // A flood of registrations waits here at most this deep; past it publishes are refused (the
            // watcher's next refresh sends them again), never dead-lettered.
            'x-max-length': 20_000,
            'x-overflow': 'reject-publish',
          },
        },
      ],
      bindings: [{ queue, exchange: this.options.names.watchesExchange, pattern: '' }],
    });
    await consumeValidated(session, {
      queue,
      schema: WatchControlSchema,
      prefetch: 64,
      maxBytes: 4096,
      deadLetter: {
        exchange: this.options.names.deadLetterExchange,
        rejectedBy: `superpeer ${this.options.superpeerId}`,
      },
      handler: (message) => this.onControl(message),
    });
  }

  private onControl(message: WatchControl): void {
    if (message.type === 'watch.cancel') {
      if (this.registry.cancel(message))
        this.options.logger.debug('watch cancelled', { watchId: message.watchId });
      return;
    }
    const outcome = this.registry.register(message, Date.now());
    switch (outcome.kind) {
      case 'accepted':
        this.options.logger.info('watch registered', {
          watchId: message.watchId,
          queue: message.queue,
          watches: this.registry.size,
        });
        this.send([outcome.notice]);
        return;
      case 'refreshed':
        return;
      case 'refused':
        this.options.logger.warn('refused a watch', {
          watchId: message.watchId,
          queue: message.queue,
          code: outcome.code,
          reason: outcome.message,
        });
        if (outcome.notice) this.send([outcome.notice]);
        return;
    }
  }

  /**
   * Wraps the application of a peer's full state (synchronous or sliced): reports what it added and
   * removed. The peer's files before and after are read and compared in slices, and only the files before
   * are held meanwhile (those after are only counted where new, by position, and read again to be
   * matched): a large peer joining makes no list of its files. The caller keeps other changes of the
   * index out until it settles.
   */
  async fullState(
    peerId: string,
    apply: () => FullResult | Promise<FullResult>,
    name?: string,
  ): Promise<FullResult> {
    if (this.registry.size === 0) return apply();
    const { index, slices } = this.options;
    const before = new Map<string, FileEntry>();
    await index.forEachPeerFileAsync(peerId, (file) => before.set(file.name, file), slices);
    const result = await apply();
    if (result === 'stale' || this.options.rebuilding()) return result;
    const peer = this.peer(peerId, name);
    if (!peer) return result;
    // By content, not by run: a peer that restarted with the same files brings nothing new. What is left
    // of `before` went away or changed.
    const added: number[] = [];
    await index.forEachPeerFileAsync(
      peerId,
      (file, position) => {
        if (before.get(file.name)?.sha256 === file.sha256) before.delete(file.name);
        else added.push(position);
      },
      slices,
    );
    const removed = [...before.values()];
    const notices: Outgoing[] = [];
    const pass = this.registry.pass();
    await this.match(peer, 'removed', removed.length, (i) => removed[i], notices, pass);
    await this.match(
      peer,
      'added',
      added.length,
      (i) => index.peerFiles(peerId, added[i]!, 1)[0],
      notices,
      pass,
    );
    this.registry.endPass(pass);
    await this.sendSliced(notices);
    return result;
  }

  /**
   * Wraps the application of a peer's delta (synchronous or sliced): an upsert with new content is an
   * addition (and the old content a removal). Only the files the delta names are looked up.
   */
  async delta(event: PeerDelta, apply: () => DeltaResult | Promise<DeltaResult>): Promise<DeltaResult> {
    if (this.registry.size === 0) return apply();
    const { index, slices } = this.options;
    const names = [...event.removed, ...event.upserted.map((file) => file.name)];
    let concerned = false;
    await forEachSliced(names, (name) => (concerned ||= this.registry.mayConcern(name)), slices);
    const before = concerned ? await index.peerFilesNamedAsync(event.peerId, names, slices) : undefined;
    const beforeSeq = index.getPeer(event.peerId)?.seq;
    const result = await apply();
    const peer = this.peer(event.peerId);
    // Only an applied delta moves the peer's seq.
    if (!before || !peer || peer.seq === beforeSeq) return result;
    // Sets, not scans of the lists: a delta holds up to 2,000 names of each kind. A SHA-256 has 64 digits,
    // so the hash followed by the name is one key per pair.
    const contentOf = (name: string, sha256: string) => `${sha256}${name}`;
    const upserted = new Set(event.upserted.map((file) => contentOf(file.name, file.sha256)));
    const removedNames = new Set(event.removed);
    const removed: FileEntry[] = [];
    for (const name of event.removed) {
      const old = before.get(name);
      if (old && !upserted.has(contentOf(name, old.sha256))) removed.push(old);
    }
    const added: FileEntry[] = [];
    for (const file of event.upserted) {
      const old = before.get(file.name);
      if (old?.sha256 === file.sha256) continue;
      if (old && !removedNames.has(file.name)) removed.push(old);
      added.push(file);
    }
    await this.emit(peer, removed, added);
    return result;
  }

  /**
   * Wraps the removal of a peer (left or timed out; synchronous or sliced): all its files went away. Only
   * the files some watch matches are held until the removal is done (a watch registered meanwhile misses
   * the others).
   */
  async peerRemoved(peerId: string, remove: () => boolean | Promise<boolean>): Promise<boolean> {
    const peer = this.registry.size > 0 ? this.peer(peerId) : undefined;
    const files: FileEntry[] = [];
    const keep = (file: FileEntry) => {
      if (this.registry.concerns(file)) files.push(file);
    };
    if (peer) await this.options.index.forEachPeerFileAsync(peerId, keep, this.options.slices);
    const removed = await remove();
    if (removed && peer) await this.emit(peer, files, []);
    return removed;
  }

  /** Expires leases and sends overflow notices; call it from the superpeer's periodic sweep. */
  tick(): void {
    const { expired, notices } = this.registry.tick(Date.now());
    if (expired > 0) this.options.logger.info('watches expired', { expired, watches: this.registry.size });
    this.send(notices);
  }

  private peer(peerId: string, name = this.options.nameOf?.(peerId)): ChangedPeer | undefined {
    const peer = this.options.index.getPeer(peerId);
    return peer && { peerId: peer.peerId, name, instanceId: peer.instanceId, url: peer.url, seq: peer.seq };
  }

  private async emit(peer: ChangedPeer, removed: FileEntry[], added: FileEntry[]): Promise<void> {
    const notices: Outgoing[] = [];
    const pass = this.registry.pass();
    await this.match(peer, 'removed', removed.length, (i) => removed[i], notices, pass);
    await this.match(peer, 'added', added.length, (i) => added[i], notices, pass);
    this.registry.endPass(pass);
    await this.sendSliced(notices);
  }

  /** Matches files 0 to `count` - 1 (as `fileAt` reads them) one by one in slices: each costs a tokenization. */
  private async match(
    peer: ChangedPeer,
    event: 'added' | 'removed',
    count: number,
    fileAt: (i: number) => FileEntry | undefined,
    notices: Outgoing[],
    pass: MatchPass,
  ): Promise<void> {
    const now = Date.now();
    const matchOne = (i: number) => {
      const file = fileAt(i);
      if (file)
        for (const notice of this.registry.match(peer, event, [file], now, pass)) notices.push(notice);
    };
    await runSliced(() => count, matchOne, this.options.slices);
  }

  private async sendSliced(notices: Outgoing[]): Promise<void> {
    await forEachSliced(notices, (notice) => this.send([notice]), this.options.slices);
  }

  /**
   * Publishes notices a batch per turn (the first at once): a change that matches thousands of watches must
   * not hold the loop while its notices go out. The queue is bounded; what does not fit is dropped.
   */
  private send(notices: Outgoing[]): void {
    const room = MAX_OUTBOX - (this.outbox.length - this.outboxHead);
    if (notices.length > room)
      this.droppedLog.record({ dropped: notices.length - Math.max(0, room), waiting: MAX_OUTBOX });
    for (let i = 0; i < Math.min(room, notices.length); i++) this.outbox.push(notices[i]!);
    // The first batch leaves now, unless earlier ones are still waiting their turn.
    if (!this.draining) this.drain();
  }

  private drain(): void {
    this.draining = true;
    const end = Math.min(this.outbox.length, this.outboxHead + SEND_BATCH);
    for (; this.outboxHead < end; this.outboxHead++) this.publish(this.outbox[this.outboxHead]!);
    if (this.outboxHead < this.outbox.length) {
      setImmediate(() => this.drain());
      return;
    }
    this.outbox = [];
    this.outboxHead = 0;
    this.draining = false;
  }

  private publish({ queue, notice }: Outgoing): void {
    // Fire and forget through the default exchange; `mandatory` brings it back if the queue is gone.
    void this.options.broker
      .publish('', queue, encode(notice), {
        confirm: false,
        properties: {
          messageId: uuidv4(),
          type: notice.type,
          appId: `superpeer ${this.options.superpeerId}`,
          mandatory: true,
        },
      })
      .catch(() => undefined);
  }
}
