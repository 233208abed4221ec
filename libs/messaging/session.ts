import type { Channel, ChannelModel, ConfirmChannel, Options } from 'amqplib';
import { describeError, P2PError } from '../errors/index.js';
import type { Log } from '../logging/index.js';
import { mergeTopology, type TopologySpec } from '../protocol/index.js';
import type { Broker } from './broker.js';
import type { DeliveryMemory } from './delivery-memory.js';
import type { ReplyPublisher } from './reply-publisher.js';
import { bind, TopologyProbe } from './topology-guard.js';

/**
 * The channels of one connection. Created by the broker for every (re)connect and handed to `setup`.
 * An unexpected channel close drops the whole connection so that recovery re-applies everything.
 */
export class BrokerSession {
  open = true;
  private confirmChannel: ConfirmChannel | undefined;
  /** What `assertTopology` declared, checked and declared again by the broker's topology guard. */
  private readonly specs: TopologySpec[] = [];
  private probe: TopologyProbe | undefined;
  private readonly closeHooks: Array<() => void> = [];
  private drainWaiters: Array<() => void> = [];
  /** Set when the socket buffer is full: publishers wait for `drain` before writing more. */
  private mustDrain = false;

  constructor(
    readonly model: ChannelModel,
    readonly generation: number,
    private readonly broker: Broker,
  ) {}

  get logger(): Log {
    return this.broker.logger;
  }

  /** The broker's memory of interrupted deliveries (consumers use it against poison messages). */
  get interruptedDeliveries(): DeliveryMemory {
    return this.broker.interruptedDeliveries;
  }

  /** Where RPC replies are published: never on this session's connection. */
  get replies(): ReplyPublisher {
    return this.broker.replies;
  }

  /** Runs `hook` once when this session ends (its connection closed or was dropped). */
  onClose(hook: () => void): void {
    if (!this.open) hook();
    else this.closeHooks.push(hook);
  }

  markClosed(): void {
    this.open = false;
    for (const resolve of this.drainWaiters.splice(0)) resolve();
    for (const hook of this.closeHooks.splice(0)) {
      try {
        hook();
      } catch (err) {
        this.broker.logger.error('error in a session close hook', { reason: describeError(err) });
      }
    }
    void this.probe?.close();
  }

  /** A channel whose unexpected close tears the connection down (so setup runs again). */
  async createChannel(label: string): Promise<Channel> {
    const channel = await this.model.createChannel();
    this.watch(channel, label);
    return channel;
  }

  /** Declares `spec` (idempotent) and remembers it for the topology checks. */
  async assertTopology(spec: TopologySpec): Promise<void> {
    await this.declare(spec);
    this.specs.push(spec);
  }

  /** Declares again everything asserted on this session. */
  async reassertTopology(): Promise<void> {
    await this.declare(mergeTopology(...this.specs));
  }

  /** What of the asserted topology is missing on the broker (see TopologyProbe). */
  async findMissingTopology(): Promise<string[]> {
    if (this.specs.length === 0) return [];
    this.probe ??= new TopologyProbe(this.model);
    return this.probe.findMissing(mergeTopology(...this.specs));
  }

  private async declare(spec: TopologySpec): Promise<void> {
    const channel = await this.model.createChannel();
    // A missing object (404) or a refused permission (403) closes this channel: the rejected call carries it.
    channel.on('error', () => undefined);
    try {
      for (const exchange of spec.exchanges) {
        if (exchange.passive) await channel.checkExchange(exchange.name);
        else
          await channel.assertExchange(exchange.name, exchange.type, {
            durable: exchange.durable,
            autoDelete: exchange.autoDelete ?? false,
          });
      }
      for (const queue of spec.queues) {
        if (queue.passive) {
          await channel.checkQueue(queue.name);
          continue;
        }
        await channel.assertQueue(queue.name, {
          durable: queue.durable,
          exclusive: queue.exclusive,
          autoDelete: false,
          ...(queue.arguments ? { arguments: queue.arguments } : {}),
        });
      }
      for (const binding of spec.bindings) await bind(channel, binding);
    } finally {
      await channel.close().catch(() => undefined);
    }
  }

  async publishConfirmed(
    exchange: string,
    routingKey: string,
    body: Buffer,
    properties: Options.Publish,
  ): Promise<void> {
    const channel = await this.getConfirmChannel();
    while (this.mustDrain && this.open) await this.waitForDrain();
    if (!this.open) throw new P2PError('BROKER_CLOSED', 'session closed');
    await new Promise<void>((resolve, reject) => {
      const writable = channel.publish(exchange, routingKey, body, properties, (err) =>
        err ? reject(err instanceof Error ? err : new Error(String(err))) : resolve(),
      );
      if (!writable) this.mustDrain = true;
    });
  }

  /** Best effort: dropped while the socket buffer is full, since a later heartbeat supersedes it. */
  publishUnconfirmed(exchange: string, routingKey: string, body: Buffer, properties: Options.Publish): void {
    if (this.mustDrain) return;
    void this.getConfirmChannel()
      .then((channel) => {
        if (!channel.publish(exchange, routingKey, body, properties)) this.mustDrain = true;
      })
      .catch(() => undefined);
  }

  /** Closes the connection; recovery then reconnects and runs setup again. */
  async restart(reason: string): Promise<void> {
    if (!this.open) return;
    this.broker.logger.warn('restarting broker connection', { reason });
    this.markClosed();
    await this.model.close().catch(() => undefined);
  }

  private confirmChannelPromise: Promise<ConfirmChannel> | undefined;

  private getConfirmChannel(): Promise<ConfirmChannel> {
    if (this.confirmChannel) return Promise.resolve(this.confirmChannel);
    if (!this.open) return Promise.reject(new P2PError('BROKER_CLOSED', 'session closed'));
    this.confirmChannelPromise ??= this.model.createConfirmChannel().then((channel) => {
      this.watch(channel, 'publisher');
      channel.on('drain', () => {
        this.mustDrain = false;
        for (const resolve of this.drainWaiters.splice(0)) resolve();
      });
      channel.on('return', (message) =>
        this.broker.notifyReturned({
          exchange: message.fields.exchange,
          routingKey: message.fields.routingKey,
          messageId: message.properties.messageId as string | undefined,
          type: message.properties.type as string | undefined,
        }),
      );
      this.confirmChannel = channel;
      return channel;
    });
    return this.confirmChannelPromise;
  }

  private waitForDrain(): Promise<void> {
    return new Promise((resolve) => this.drainWaiters.push(resolve));
  }

  private watch(channel: Channel, label: string): void {
    channel.on('error', (err: Error) =>
      this.broker.logger.warn('channel error', { channel: label, reason: err.message }),
    );
    channel.on('handler-error', (err: Error, event: string) =>
      this.broker.logger.error('error in a channel listener', { channel: label, event, reason: err.message }),
    );
    channel.on('close', () => {
      if (this.open) void this.restart(`channel ${label} closed`);
    });
  }
}
