import amqp, { type ChannelModel, type ConfirmChannel, type Options } from 'amqplib';
import { describeError, P2PError } from '../errors/index.js';
import type { Log } from '../logging/index.js';
import { coalesceWrites } from './coalesce-writes.js';

export interface ReplyPublisherOptions {
  /** amqp:// URL with the heartbeat already set. */
  url: string;
  connectionName: string;
  logger: Log;
}

/**
 * Publishes RPC replies on a connection of their own. A reply goes wherever the request's `reply_to` says,
 * which the requester chooses; some broker versions answer a malformed direct reply-to name by closing the
 * whole connection (541), and a name the user may not write to closes the channel (403). Neither may touch
 * the connection that consumes requests and events: here such a failure costs the replies in flight on
 * this connection (each rejects, its request is dead-lettered by the caller), and the next reply opens a
 * new connection. A channel could not isolate a 541: the broker closes the connection, not the channel.
 */
export class ReplyPublisher {
  private channel: Promise<ConfirmChannel> | undefined;
  private connection: ChannelModel | undefined;
  private closed = false;
  private opened = 0;

  constructor(private readonly options: ReplyPublisherOptions) {}

  /** Connections opened so far: more than one means a reply failure cost a connection. */
  get connectionsOpened(): number {
    return this.opened;
  }

  /** Opens the connection ahead of the first reply, so that reply does not wait for it. */
  warm(): void {
    this.open().catch((err) =>
      this.options.logger.debug('reply connection not ready', { reason: describeError(err) }),
    );
  }

  /** Resolves once the broker confirmed the reply; rejects when it could not be published. */
  async send(queue: string, body: Buffer, properties: Options.Publish): Promise<void> {
    const channel = await this.open();
    await new Promise<void>((resolve, reject) => {
      try {
        channel.sendToQueue(queue, body, properties, (err) =>
          err ? reject(err instanceof Error ? err : new Error(String(err))) : resolve(),
        );
      } catch (err) {
        reject(err);
      }
    });
  }

  async close(): Promise<void> {
    this.closed = true;
    const connection = this.connection;
    this.connection = undefined;
    this.channel = undefined;
    await connection?.close().catch(() => undefined);
  }

  private open(): Promise<ConfirmChannel> {
    if (this.closed) return Promise.reject(new P2PError('BROKER_CLOSED', 'reply publisher closed'));
    this.channel ??= this.connect().catch((err) => {
      this.channel = undefined;
      throw new P2PError('BROKER_UNREACHABLE', 'no reply connection', { cause: err });
    });
    return this.channel;
  }

  private async connect(): Promise<ConfirmChannel> {
    const { logger } = this.options;
    const connection = await amqp.connect(this.options.url, {
      clientProperties: { connection_name: this.options.connectionName },
      noDelay: true,
    });
    this.opened++;
    coalesceWrites(connection);
    if (this.closed) {
      await connection.close().catch(() => undefined);
      throw new P2PError('BROKER_CLOSED', 'reply publisher closed');
    }
    this.connection = connection;
    const forget = () => {
      if (this.connection !== connection) return;
      this.connection = undefined;
      this.channel = undefined;
    };
    connection.on('error', (err: Error) => logger.debug('reply connection error', { reason: err.message }));
    connection.on('close', forget);
    const channel = await connection.createConfirmChannel();
    channel.on('error', (err: Error) => logger.debug('reply channel error', { reason: err.message }));
    channel.on('close', () => {
      forget();
      void connection.close().catch(() => undefined);
    });
    return channel;
  }
}
