import type { Channel, ChannelModel } from 'amqplib';
import type { BindingSpec, TopologySpec } from '../protocol/index.js';

/**
 * A channel for passive checks. `checkExchange`/`checkQueue` on something missing make the broker close
 * the channel (404): that is the answer, so such a channel is expected to die, never watched, and opened
 * again for the next question.
 */
export class TopologyProbe {
  private channel: Channel | undefined;

  /** Checks run one at a time (the broker serializes them). */
  constructor(private readonly model: ChannelModel) {}

  /**
   * What of `spec` is missing on the broker: exchanges and queues, by passive declares. Bindings cannot be
   * asked for over AMQP, so those of a spec whose exchange and queue exist are declared again (idempotent,
   * one round trip each): a binding deleted alone is back by the next check.
   */
  async findMissing(spec: TopologySpec): Promise<string[]> {
    const missing: string[] = [];
    for (const exchange of spec.exchanges) {
      if (!(await this.ask((channel) => channel.checkExchange(exchange.name))))
        missing.push(`exchange ${exchange.name}`);
    }
    for (const queue of spec.queues) {
      if (!(await this.ask((channel) => channel.checkQueue(queue.name)))) missing.push(`queue ${queue.name}`);
    }
    if (missing.length > 0) return missing;
    for (const binding of spec.bindings) {
      if (!(await this.ask((channel) => bind(channel, binding)))) {
        missing.push(
          `binding ${binding.exchange} -> ${'queue' in binding ? binding.queue : binding.toExchange}`,
        );
      }
    }
    return missing;
  }

  async close(): Promise<void> {
    const channel = this.channel;
    this.channel = undefined;
    await channel?.close().catch(() => undefined);
  }

  /** True when the broker answered OK; false when it closed the channel instead (404). */
  private async ask(question: (channel: Channel) => Promise<unknown>): Promise<boolean> {
    const channel = await this.open();
    try {
      await question(channel);
      return true;
    } catch (err) {
      if (this.channel === channel) this.channel = undefined;
      // A closed connection is no answer about the topology: opening a channel fails too, and that throws.
      await this.open();
      if (isNotFound(err)) return false;
      throw err;
    }
  }

  private async open(): Promise<Channel> {
    if (this.channel) return this.channel;
    const channel = await this.model.createChannel();
    channel.on('error', () => undefined); // the 404 that answers a check
    channel.on('close', () => {
      if (this.channel === channel) this.channel = undefined;
    });
    this.channel = channel;
    return channel;
  }
}

/** Declares `binding`, to a queue or to an exchange (idempotent). */
export function bind(channel: Channel, binding: BindingSpec): Promise<unknown> {
  return 'queue' in binding
    ? channel.bindQueue(binding.queue, binding.exchange, binding.pattern)
    : channel.bindExchange(binding.toExchange, binding.exchange, binding.pattern);
}

/** amqplib puts the broker's reply code on the error. */
function isNotFound(err: unknown): boolean {
  return typeof err === 'object' && err !== null && (err as { code?: unknown }).code === 404;
}
