import { EventEmitter } from 'node:events';
import amqp, { type ChannelModel, type Options } from 'amqplib';
import { describeError, P2PError, redactCredentials } from '../errors/index.js';
import { BurstLog, childLog, type Log } from '../logging/index.js';
import { coalesceWrites } from './coalesce-writes.js';
import { DeliveryMemory } from './delivery-memory.js';
import { readFramesInPlace } from './read-frames.js';
import { ReplyPublisher } from './reply-publisher.js';
import { RpcClient } from './rpc.js';
import { BrokerSession } from './session.js';

export interface BrokerOptions {
  /** amqp:// or amqps:// URL. */
  url: string;
  /** Shown in the management UI (client property `connection_name`): service and id. */
  connectionName: string;
  logger: Log;
  /**
   * Declares topology and starts consumers. Runs after every (re)connect, on a fresh connection, before
   * `connected` is emitted; if it throws, the connection is dropped and recovery tries again.
   */
  setup?: (session: BrokerSession) => Promise<void>;
  /** AMQP heartbeat, so a dead broker is noticed quickly. Default 5. */
  heartbeatIntervalSeconds?: number;
  /** First reconnect delay. Default 200. */
  reconnectInitialDelayMs?: number;
  /** Longest reconnect delay. Default 2000: recovery must be quick after a broker restart. */
  reconnectMaxDelayMs?: number;
  /** Connection attempts before `start()` gives up (BROKER_UNREACHABLE). Default Infinity (services wait). */
  initialConnectRetries?: number;
  /** How long `publish` waits for a connection and its confirm before failing (PUBLISH_FAILED). Default 10_000. */
  publishTimeoutMs?: number;
  /** Confirms outstanding at once; further publishes wait. Default 256. */
  maxInFlightPublishes?: number;
  /**
   * How often the topology asserted in `setup` is checked on the broker (passive declares on a throwaway
   * channel); what is missing is declared again and `topology-repaired` is emitted. Default 3000; 0: never.
   */
  topologyCheckIntervalMs?: number;
}

export interface PublishOptions {
  /** AMQP properties; `contentType`, `timestamp` and `appId` are filled in when absent. */
  properties?: Options.Publish;
  /** Wait for the broker's confirm (default true). False: fire and forget, for heartbeats. */
  confirm?: boolean;
}

interface BrokerEvents {
  connected: [session: BrokerSession];
  disconnected: [error: Error];
  returned: [
    info: { exchange: string; routingKey: string; messageId: string | undefined; type: string | undefined },
  ];
  /** Something of the topology was gone (deleted by someone) and has been declared again. */
  'topology-repaired': [info: { reason: string; missing: string[] }];
}

/** A returned message triggers a topology check at most this often. */
const RETURN_CHECK_MIN_INTERVAL_MS = 1000;

/**
 * One AMQP connection with amqplib's built-in recovery. Topology and consumers live in `setup`, which runs
 * again on every reconnect; channels belong to a `BrokerSession` (one per connection) and die with it.
 */
export class Broker extends EventEmitter<BrokerEvents> {
  private readonly options: Required<Omit<BrokerOptions, 'logger' | 'setup'>> &
    Pick<BrokerOptions, 'logger' | 'setup'>;
  private connection: amqp.RecoveringChannelModel | undefined;
  private session: BrokerSession | undefined;
  private generation = 0;
  private closing = false;
  private inFlight = 0;
  private readonly inFlightWaiters: Array<() => void> = [];
  private topologyTimer: NodeJS.Timeout | undefined;
  private checking: Promise<void> | undefined;
  private lastReturnCheckMs = 0;
  /** Notices to watchers that left come back by the thousand: a few lines and a count (see BurstLog). */
  private readonly unroutable: BurstLog;
  private replyPublisher: ReplyPublisher | undefined;
  /** RPC clients made by `createRpcClient`: each opens its reply channel on every session. */
  private readonly rpcClients: RpcClient[] = [];
  /** Deliveries interrupted by a lost connection; survives reconnects (see DeliveryMemory). */
  readonly interruptedDeliveries = new DeliveryMemory();

  constructor(options: BrokerOptions) {
    super();
    this.options = {
      heartbeatIntervalSeconds: 5,
      reconnectInitialDelayMs: 200,
      reconnectMaxDelayMs: 2000,
      initialConnectRetries: Number.POSITIVE_INFINITY,
      publishTimeoutMs: 10_000,
      maxInFlightPublishes: 256,
      topologyCheckIntervalMs: 3000,
      ...options,
      logger: childLog(options.logger, 'broker'),
    };
    this.unroutable = new BurstLog(this.options.logger, {
      message: 'message was unroutable',
      summary: 'more messages were unroutable',
      level: 'warn',
    });
  }

  get connected(): boolean {
    return this.session?.open === true;
  }

  /** Resolves once connected and set up; rejects with BROKER_UNREACHABLE when the initial retries run out. */
  async start(): Promise<void> {
    const { logger } = this.options;
    const connection = await amqp.connect(
      withHeartbeat(this.options.url, this.options.heartbeatIntervalSeconds),
      {
        clientProperties: { connection_name: this.options.connectionName },
        // Nagle's algorithm holds small frames back waiting for ACKs: tens of ms on every RPC without this.
        noDelay: true,
        recovery: {
          initialDelay: this.options.reconnectInitialDelayMs,
          maxDelay: this.options.reconnectMaxDelayMs,
          initialMaxRetries: this.options.initialConnectRetries,
          maxRetries: Number.POSITIVE_INFINITY,
          waitForConnect: false,
          setup: async (model: ChannelModel) => {
            // Until recovery binds its own listeners (after setup), a connection error during setup (a refused
            // permission, say) would be an unhandled 'error' event and kill the process. Setup's own
            // rejection carries the failure to recovery, which retries.
            // Kept for the model's life (recovery adds its own listener, which logs at warn level).
            model.on('error', (err: Error) =>
              logger.debug('broker connection error', { reason: err.message }),
            );
            coalesceWrites(model);
            readFramesInPlace(model);
            const session = new BrokerSession(model, ++this.generation, this);
            try {
              await this.options.setup?.(session);
              for (const client of this.rpcClients) await client.setup(session);
            } catch (err) {
              // Recovery drops this connection and tries again: the channels opened so far close with it,
              // which must not read as a live session's channel failing (a restart, logged as one).
              session.markClosed();
              throw err;
            }
            this.session = session;
          },
        },
      },
    );
    this.connection = connection;
    connection.on('connect', () => {
      const session = this.session;
      if (!session) return;
      logger.info('broker connected', { generation: session.generation });
      this.emit('connected', session);
    });
    connection.on('disconnect', (err: Error) => {
      this.session?.markClosed();
      this.session = undefined;
      if (!this.closing) logger.warn('broker connection lost; reconnecting', { reason: err.message });
      this.emit('disconnected', err);
    });
    connection.on('connect-failed', (err: Error) =>
      logger.warn('broker connect failed', { reason: err.message }),
    );
    connection.on('error', (err: Error) => logger.warn('broker connection error', { reason: err.message }));
    connection.on('handler-error', (err: Error, event: string) =>
      logger.error('error in a connection listener', { event, reason: err.message }),
    );
    connection.on('blocked', (reason: string) => logger.warn('broker blocked publishing', { reason }));
    if (this.options.topologyCheckIntervalMs > 0) {
      this.topologyTimer = setInterval(() => void this.checkTopology(), this.options.topologyCheckIntervalMs);
      this.topologyTimer.unref();
    }
    try {
      await connection.waitForConnect();
    } catch (err) {
      const reason = err instanceof Error ? `: ${err.message}` : '';
      throw new P2PError(
        'BROKER_UNREACHABLE',
        `cannot reach RabbitMQ at ${redactCredentials(this.options.url)}${reason}`,
        {
          cause: err,
        },
      );
    }
  }

  /**
   * An RPC client for requests to `queue`, wired to this broker: it opens its reply channel on every
   * (re)connect, after `setup`, and fails its pending calls when the broker closes. Call before start().
   */
  createRpcClient(queue: string): RpcClient {
    const client = new RpcClient(this, queue);
    this.rpcClients.push(client);
    return client;
  }

  async close(): Promise<void> {
    this.closing = true;
    this.unroutable.flush();
    for (const client of this.rpcClients) client.close();
    if (this.topologyTimer) clearInterval(this.topologyTimer);
    await this.replyPublisher?.close();
    const connection = this.connection;
    this.connection = undefined;
    this.session?.markClosed();
    this.session = undefined;
    await connection?.close().catch(() => undefined);
  }

  /** The live session, waiting up to `timeoutMs` for a (re)connect. */
  async currentSession(timeoutMs: number = this.options.publishTimeoutMs): Promise<BrokerSession> {
    if (this.session?.open) return this.session;
    if (this.closing) throw new P2PError('BROKER_CLOSED', 'broker connection is closed');
    return new Promise((resolve, reject) => {
      const onConnected = (session: BrokerSession) => {
        clearTimeout(timer);
        resolve(session);
      };
      const timer = setTimeout(() => {
        this.off('connected', onConnected);
        reject(new P2PError('BROKER_UNREACHABLE', `no broker connection within ${timeoutMs} ms`));
      }, timeoutMs);
      this.once('connected', onConnected);
    });
  }

  /**
   * Publishes with `mandatory` set (unroutable messages are reported through `returned`). With confirms
   * (the default) it resolves once the broker has the message, retrying on the next connection when the
   * current one drops first: at-least-once, so receivers must be idempotent.
   */
  async publish(
    exchange: string,
    routingKey: string,
    body: Buffer,
    options: PublishOptions = {},
  ): Promise<void> {
    const deadline = Date.now() + this.options.publishTimeoutMs;
    const properties: Options.Publish = {
      contentType: 'application/json',
      timestamp: Math.floor(Date.now() / 1000),
      mandatory: true,
      ...options.properties,
    };
    if (options.confirm === false) {
      const session = this.session;
      if (!session?.open) return; // fire-and-forget while disconnected: dropped, by design
      session.publishUnconfirmed(exchange, routingKey, body, properties);
      return;
    }
    await this.acquireInFlight();
    try {
      let lastError: unknown;
      while (Date.now() < deadline) {
        let session: BrokerSession;
        try {
          session = await this.currentSession(Math.max(1, deadline - Date.now()));
        } catch (err) {
          lastError = err;
          break;
        }
        try {
          await session.publishConfirmed(exchange, routingKey, body, properties);
          return;
        } catch (err) {
          lastError = err;
          if (session.open) break; // a nack from a live broker: retrying would not help
        }
      }
      throw new P2PError('PUBLISH_FAILED', `publish to ${exchange} not confirmed`, { cause: lastError });
    } finally {
      this.releaseInFlight();
    }
  }

  /** Called by sessions. */
  notifyReturned(info: BrokerEvents['returned'][0]): void {
    this.unroutable.record(info);
    this.emit('returned', info);
    // Nobody bound is normal for some messages, but it is also what a deleted exchange or binding looks like.
    const now = Date.now();
    if (now - this.lastReturnCheckMs >= RETURN_CHECK_MIN_INTERVAL_MS) {
      this.lastReturnCheckMs = now;
      void this.checkTopology();
    }
  }

  /**
   * Publishes RPC replies on a connection of their own (see ReplyPublisher), opened on first use and again
   * after a failure, so that whatever a requester's `reply_to` does to it never reaches this connection.
   */
  get replies(): ReplyPublisher {
    this.replyPublisher ??= new ReplyPublisher({
      url: withHeartbeat(this.options.url, this.options.heartbeatIntervalSeconds),
      connectionName: `${this.options.connectionName} (replies)`,
      logger: this.options.logger,
    });
    return this.replyPublisher;
  }

  /**
   * Checks that everything the current session asserted still exists on the broker, and declares again
   * what does not (then emits `topology-repaired`). Runs every `topologyCheckIntervalMs`, after a returned
   * message, and whenever a service suspects a loss; concurrent calls share one check.
   */
  checkTopology(): Promise<void> {
    this.checking ??= this.runCheck().finally(() => {
      this.checking = undefined;
    });
    return this.checking;
  }

  /**
   * Declares the current session's topology again, without asking what is missing: for a loss no passive
   * check can see (a binding, deleted and declared again by someone else). Emits `topology-repaired`.
   */
  async repairTopology(reason: string): Promise<void> {
    const session = this.session;
    if (!session?.open) return;
    await this.repair(session, reason, []);
  }

  private async runCheck(): Promise<void> {
    const session = this.session;
    if (!session?.open || this.closing) return;
    let missing: string[];
    try {
      missing = await session.findMissingTopology();
    } catch (err) {
      this.options.logger.debug('topology check failed', { reason: describeError(err) });
      return;
    }
    if (missing.length > 0 && session.open) await this.repair(session, 'missing on the broker', missing);
  }

  private async repair(session: BrokerSession, reason: string, missing: string[]): Promise<void> {
    this.options.logger.warn('broker topology lost; declaring it again', { reason, missing });
    try {
      await session.reassertTopology();
    } catch (err) {
      // What cannot be declared again in place (a queue of ours, an argument clash) needs a fresh session.
      await session.restart(`topology repair failed: ${describeError(err)}`);
      return;
    }
    this.emit('topology-repaired', { reason, missing });
  }

  get logger(): Log {
    return this.options.logger;
  }

  private acquireInFlight(): Promise<void> {
    if (this.inFlight < this.options.maxInFlightPublishes) {
      this.inFlight++;
      return Promise.resolve();
    }
    return new Promise((resolve) =>
      this.inFlightWaiters.push(() => {
        this.inFlight++;
        resolve();
      }),
    );
  }

  private releaseInFlight(): void {
    this.inFlight--;
    this.inFlightWaiters.shift()?.();
  }
}

/** amqplib takes the heartbeat from the URL; an explicit `heartbeat` query parameter in the URL wins. */
function withHeartbeat(url: string, seconds: number): string {
  const parsed = new URL(url);
  if (!parsed.searchParams.has('heartbeat')) parsed.searchParams.set('heartbeat', String(seconds));
  return parsed.toString();
}
