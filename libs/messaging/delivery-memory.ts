import { createHash } from 'node:crypto';
import type { ConsumeMessage } from 'amqplib';

/**
 * Remembers deliveries whose handling was under way when their connection or channel died: they come back
 * with `redelivered` set, and if one of them is what killed the connection, handling it again would kill it
 * again, forever (classic queues keep no delivery count). The consumer dead-letters a redelivered message
 * it finds here instead of handling it, so a poison message costs at most one redelivery. Bounded in count;
 * the oldest entries go first. It lives as long as the process (across reconnects), not across restarts.
 */
export class DeliveryMemory {
  private readonly keys = new Map<string, number>();

  constructor(private readonly maxEntries = 1000) {}

  get size(): number {
    return this.keys.size;
  }

  /** A delivery's identity across redeliveries: queue, message id, correlation id and body. */
  static key(queue: string, message: ConsumeMessage): string {
    const { messageId, correlationId } = message.properties;
    return createHash('sha256')
      .update(`${queue}\0${String(messageId ?? '')}\0${String(correlationId ?? '')}\0`)
      .update(message.content)
      .digest('base64');
  }

  remember(key: string, nowMs = Date.now()): void {
    this.keys.delete(key);
    this.keys.set(key, nowMs);
    while (this.keys.size > this.maxEntries) {
      const oldest = this.keys.keys().next().value;
      if (oldest === undefined) break;
      this.keys.delete(oldest);
    }
  }

  /** True (once) when this delivery was interrupted before: the entry is consumed. */
  take(key: string): boolean {
    return this.keys.delete(key);
  }
}
