import { EventEmitter } from 'node:events';
import { v4 as uuidv4 } from 'uuid';
import { describeError } from '../errors/index.js';
import { childLog, type Log } from '../logging/index.js';
import { Broker, type BrokerSession, consumeValidated } from '../messaging/index.js';
import {
  DEFAULT_WATCH_LEASE_MS,
  encode,
  PROTOCOL_VERSION,
  type SearchResult,
  sharedTopology,
  type TopologyNames,
  topologyNames,
  type WatchCancel,
  type WatchMatch,
  type WatchNotice,
  WatchNoticeSchema,
  type WatchRegister,
  watcherQueueName,
} from '../protocol/index.js';
import { parseQuery } from '../search/index.js';
import { SeenSet } from './seen.js';

export interface WatcherOptions {
  amqpUrl: string;
  namespace: string;
  logger: Log;
  /** Shown in the broker's management UI. */
  connectionName: string;
  /** How long superpeers keep a watch without a refresh; refreshed every third of it. Default 30_000. */
  leaseMs?: number;
  /** Connection attempts before `start()` fails (BROKER_UNREACHABLE). Default Infinity. */
  initialConnectRetries?: number;
  /** Distinct notices remembered to drop the copies other superpeers send. Default 10_000. */
  dedupEntries?: number;
}

export interface WatchEvents {
  /** A file started (`added`) or stopped (`removed`) matching; each change once, however many superpeers sent it. */
  match: [event: 'added' | 'removed', file: SearchResult];
  /** A superpeer took the watch. */
  accepted: [superpeerId: string];
  /** A superpeer refused it (code WATCH_LIMIT, QUERY_INVALID…). */
  refused: [superpeerId: string, code: string, message: string];
  /** A superpeer dropped this many matches over the watch's rate. */
  overflow: [superpeerId: string, dropped: number];
}

/** One standing search; `cancel()` ends it. */
export class Watch extends EventEmitter<WatchEvents> {
  constructor(
    readonly watchId: string,
    readonly query: string,
    readonly includeRemoved: boolean,
    private readonly owner: Watcher,
  ) {
    super();
  }

  cancel(): Promise<void> {
    return this.owner.cancel(this);
  }
}

/** An immediate re-registration (asked by a restarted superpeer) happens at most this often. */
const MIN_REFRESH_INTERVAL_MS = 1000;

/**
 * A client of the watch protocol (docs/protocol.md, "Watches"): its own connection and exclusive queue,
 * registers watches with every superpeer through the watches fanout, refreshes them before their lease
 * runs out, and hands each match to its watch once (several superpeers each send a copy).
 */
export class Watcher {
  private readonly options: Required<WatcherOptions>;
  private readonly names: TopologyNames;
  private readonly broker: Broker;
  readonly queue: string;
  private readonly watches = new Map<string, Watch>();
  private readonly seen: SeenSet;
  private refreshTimer: NodeJS.Timeout | undefined;
  private soonTimer: NodeJS.Timeout | undefined;
  private lastRefreshMs = 0;

  constructor(options: WatcherOptions) {
    this.options = {
      leaseMs: DEFAULT_WATCH_LEASE_MS,
      initialConnectRetries: Number.POSITIVE_INFINITY,
      dedupEntries: 10_000,
      ...options,
      logger: childLog(options.logger, 'watch'),
    };
    this.names = topologyNames(options.namespace);
    this.queue = watcherQueueName(options.namespace, uuidv4().replaceAll('-', ''));
    this.seen = new SeenSet(this.options.dedupEntries);
    this.broker = new Broker({
      url: options.amqpUrl,
      connectionName: options.connectionName,
      logger: this.options.logger,
      initialConnectRetries: this.options.initialConnectRetries,
      setup: (session) => this.setup(session),
    });
    // Our queue is new after every reconnect, and superpeers dropped our watches when notices bounced.
    this.broker.on('connected', () => this.refreshAll());
  }

  get connected(): boolean {
    return this.broker.connected;
  }

  get size(): number {
    return this.watches.size;
  }

  async start(): Promise<void> {
    await this.broker.start();
    this.refreshTimer = setInterval(() => this.refreshAll(), Math.floor(this.options.leaseMs / 3));
    this.refreshTimer.unref();
  }

  /** Starts a standing search. Throws USAGE for a query with nothing to look for. */
  watch(query: string, options: { includeRemoved?: boolean } = {}): Watch {
    parseQuery(query);
    const watch = new Watch(uuidv4(), query, options.includeRemoved ?? false, this);
    this.watches.set(watch.watchId, watch);
    void this.register(watch);
    return watch;
  }

  async cancel(watch: Watch): Promise<void> {
    if (!this.watches.delete(watch.watchId)) return;
    const message: WatchCancel = {
      v: PROTOCOL_VERSION,
      type: 'watch.cancel',
      watchId: watch.watchId,
      queue: this.queue,
    };
    await this.publishControl(message);
  }

  /** Cancels every watch (superpeers forget them at once) and disconnects. */
  async close(): Promise<void> {
    if (this.refreshTimer) clearInterval(this.refreshTimer);
    if (this.soonTimer) clearTimeout(this.soonTimer);
    if (this.broker.connected)
      await Promise.all([...this.watches.values()].map((watch) => this.cancel(watch)));
    this.watches.clear();
    await this.broker.close();
  }

  private async setup(session: BrokerSession): Promise<void> {
    await session.assertTopology({
      // Watchers check the shared objects without declaring them (under the roles they may not).
      ...sharedTopology(this.names, { declareShared: false }),
      queues: [
        {
          name: this.queue,
          durable: false,
          exclusive: true,
          // A burst of matches waits here at most this deep; past it the newest are dropped (not
          // dead-lettered: a slow watcher must not fill the dead-letter queue).
          arguments: {
            'x-max-length': 10_000,
            'x-overflow': 'reject-publish',
            'x-dead-letter-exchange': this.names.deadLetterExchange,
          },
        },
      ],
      bindings: [{ queue: this.queue, exchange: this.names.watchersExchange, pattern: '' }],
    });
    await consumeValidated(session, {
      queue: this.queue,
      schema: WatchNoticeSchema,
      prefetch: 64,
      maxBytes: 16 * 1024,
      deadLetter: { exchange: this.names.deadLetterExchange, rejectedBy: this.options.connectionName },
      handler: (notice) => this.onNotice(notice),
    });
  }

  private onNotice(notice: WatchNotice): void {
    if (notice.type === 'watch.resync-request') {
      this.refreshSoon();
      return;
    }
    const watch = this.watches.get(notice.watchId);
    if (!watch) return; // cancelled, or not ours
    switch (notice.type) {
      case 'watch.accepted':
        watch.emit('accepted', notice.superpeerId);
        return;
      case 'watch.refused':
        watch.emit('refused', notice.superpeerId, notice.error.code, notice.error.message);
        return;
      case 'watch.overflow':
        watch.emit('overflow', notice.superpeerId, notice.dropped);
        return;
      case 'watch.match':
        if (this.seen.add(dedupKey(notice))) watch.emit('match', notice.event, notice.file);
        return;
    }
  }

  /** A restarted superpeer asked: re-register now, but no more than once a second whoever asks. */
  private refreshSoon(): void {
    if (this.soonTimer) return;
    const waitMs = Math.max(0, this.lastRefreshMs + MIN_REFRESH_INTERVAL_MS - Date.now());
    this.soonTimer = setTimeout(() => {
      this.soonTimer = undefined;
      this.refreshAll();
    }, waitMs);
    this.soonTimer.unref();
  }

  private refreshAll(): void {
    this.lastRefreshMs = Date.now();
    for (const watch of this.watches.values()) void this.register(watch);
  }

  private async register(watch: Watch): Promise<void> {
    const message: WatchRegister = {
      v: PROTOCOL_VERSION,
      type: 'watch.register',
      watchId: watch.watchId,
      query: watch.query,
      queue: this.queue,
      leaseMs: this.options.leaseMs,
      includeRemoved: watch.includeRemoved,
    };
    await this.publishControl(message);
  }

  private async publishControl(message: WatchRegister | WatchCancel): Promise<void> {
    try {
      await this.broker.publish(this.names.watchesExchange, '', encode(message), {
        // No superpeer running is not an error: the watch is registered again at every refresh.
        properties: { messageId: uuidv4(), type: message.type, mandatory: false },
      });
    } catch (err) {
      this.options.logger.warn('could not publish a watch message; the next refresh retries', {
        type: message.type,
        reason: describeError(err),
      });
    }
  }
}

/** The same change reported by several superpeers has the same key. */
function dedupKey(match: WatchMatch): string {
  const { file } = match;
  return [match.watchId, match.event, file.peerId, match.instanceId, match.seq, file.sha256, file.name].join(
    '\u0000',
  );
}
