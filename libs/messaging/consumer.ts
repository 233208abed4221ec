import type { Channel, ConsumeMessage } from 'amqplib';
import pLimit from 'p-limit';
import type { z } from 'zod';
import { describeError } from '../errors/index.js';
import {
  DEAD_LETTER_BODY_BYTES,
  type DecodeResult,
  decode,
  HEADERS,
  MAX_MESSAGE_BYTES,
} from '../protocol/index.js';
import { DeliveryMemory } from './delivery-memory.js';
import type { BrokerSession } from './session.js';

export interface DeadLetterTarget {
  /** Exchange that receives refused messages (the namespace's dead-letter exchange). */
  exchange: string;
  /** Written into `x-p2p-rejected-by`: which service refused the message. */
  rejectedBy: string;
}

export interface ConsumeOptions<S extends z.ZodType, T = z.output<S>> {
  queue: string;
  schema: S;
  /** Unacknowledged deliveries this consumer holds at once (per channel, never global). */
  prefetch: number;
  deadLetter: DeadLetterTarget;
  /** Larger bodies are refused unparsed. Default MAX_MESSAGE_BYTES. */
  maxBytes?: number;
  /**
   * Handles one valid message; the delivery is acknowledged when it resolves. A throw dead-letters the
   * message (it would fail again), so handlers throw only for messages that are wrong, not for outages.
   */
  handler: (value: T, message: ConsumeMessage, channel: Channel) => Promise<void> | void;
  /**
   * Decodes a delivery on arrival instead of in its turn (e.g. in worker threads: up to `prefetch` at
   * once), with the same outcome as validating it against `schema`; its result is awaited in the turn.
   * It must settle (a rejection refuses the message). Default: `schema`, in the turn.
   */
  decodeAhead?: (message: ConsumeMessage) => Promise<DecodeResult<T>>;
  /**
   * Decodes a delivery in its turn instead of `schema` alone, with the same outcome as validating it
   * against `schema` (a faster reading of some messages, say). Ignored with `decodeAhead`.
   */
  decode?: (content: Buffer, maxBytes: number) => DecodeResult<T>;
  /**
   * Handle deliveries one at a time, in queue order (default true): event streams depend on it. False lets
   * up to `prefetch` handlers run at once (RPC requests, which have no order).
   */
  ordered?: boolean;
  /** Called for each refused message (metrics, RPC error replies). */
  onRefused?: (reason: string, message: ConsumeMessage, channel: Channel) => void;
  /**
   * Ordered consumers only: acknowledge handled deliveries several at a time, with one multiple-ack (up to
   * half the prefetch, at most `MAX_ACK_BATCH`), sent at once whenever no delivery waits behind the one
   * handled, so an idle consumer holds nothing unacknowledged. Each ack is otherwise a write to the socket
   * of its own (the loop turns between deliveries), and a superpeer handles hundreds of heartbeats a
   * second. A delivery handled but not yet acknowledged when the connection goes comes back and is handled
   * again: only for idempotent handlers. Default false.
   */
  batchAcks?: boolean;
}

/** Deliveries one multiple-ack settles, at most (see `batchAcks`). */
export const MAX_ACK_BATCH = 16;

/** The reason given for a redelivered message whose earlier handling was cut short by a lost connection. */
export const POISON_REASON =
  'redelivered after an attempt that never completed (the connection was lost while handling it)';

/**
 * Consumes with manual acks: validate against the schema, handle, ack. What fails validation or handling
 * is republished to the dead-letter exchange with the reason in headers, then acknowledged, so it neither
 * loops nor disappears. A message whose handling was under way when the connection died comes back
 * `redelivered`; the second time it is dead-lettered unhandled, so a message that kills the connection
 * costs one redelivery, not a reconnect loop. Call it from the broker's setup: it is bound to that
 * session's channel.
 */
export async function consumeValidated<S extends z.ZodType, T = z.output<S>>(
  session: BrokerSession,
  options: ConsumeOptions<S, T>,
): Promise<void> {
  const channel = await session.createChannel(`consumer:${options.queue}`);
  await channel.prefetch(options.prefetch, false);
  const logger = session.logger;
  const ordered = options.ordered ?? true;
  /** Ordered consumers settle one delivery at a time, in arrival order. */
  const inOrder = pLimit(1);
  /** Deliveries being handled now: if the session dies under them, they are remembered as suspects. */
  const handling = new Set<ConsumeMessage>();
  session.onClose(() => {
    for (const message of handling) {
      session.interruptedDeliveries.remember(DeliveryMemory.key(options.queue, message));
    }
    handling.clear();
  });

  const ackBatch =
    ordered && options.batchAcks === true ? Math.max(1, Math.min(MAX_ACK_BATCH, options.prefetch >> 1)) : 1;
  /** The last delivery handled and not yet acknowledged, and how many are (ordered: all before it are settled). */
  let unacked: ConsumeMessage | undefined;
  let unackedCount = 0;
  const flushAcks = (): void => {
    if (unacked !== undefined && session.open) channel.ack(unacked, true);
    unacked = undefined;
    unackedCount = 0;
  };
  const ack = (message: ConsumeMessage): void => {
    if (!session.open) return;
    if (ackBatch === 1) {
      channel.ack(message);
      return;
    }
    unacked = message;
    if (++unackedCount >= ackBatch || inOrder.pendingCount === 0) flushAcks();
  };

  const refuse = async (message: ConsumeMessage, reason: string): Promise<void> => {
    logger.warn('refused a message', {
      queue: options.queue,
      messageId: message.properties.messageId,
      correlationId: message.properties.correlationId,
      type: message.properties.type,
      reason,
    });
    options.onRefused?.(reason, message, channel);
    try {
      try {
        await deadLetter(session, options, message, reason, true);
      } catch (err) {
        // The sender's own headers can make the copy unpublishable (a header table too big to re-encode):
        // the reason matters more than they do.
        logger.warn('dead-lettering with the original headers failed; retrying without them', {
          queue: options.queue,
          messageId: message.properties.messageId,
          reason: describeError(err),
        });
        await deadLetter(session, options, message, reason, false);
      }
      ack(message);
    } catch (err) {
      // With the connection gone there is nothing to settle: the broker redelivers, and we refuse again.
      if (!session.open) return;
      logger.warn('could not republish a refused message; nacking it to the queue dead-letter exchange', {
        queue: options.queue,
        messageId: message.properties.messageId,
        reason: describeError(err),
      });
      // The queue's own x-dead-letter-exchange catches it: nack without requeue, never a loop. The
      // deliveries before it go first, by the multiple-ack of the last of them.
      flushAcks();
      channel.nack(message, false, false);
    }
  };

  await channel.consume(
    options.queue,
    (message) => {
      if (message === null) {
        void session.restart(`consumer of ${options.queue} cancelled by the broker`);
        return;
      }
      const poison =
        message.fields.redelivered &&
        session.interruptedDeliveries.take(DeliveryMemory.key(options.queue, message));
      const decodedAhead =
        poison || options.decodeAhead === undefined ? undefined : decodeEarly(options.decodeAhead, message);
      const settle = async () => {
        if (poison) {
          await refuse(message, POISON_REASON);
          return;
        }
        if (!session.open) return; // not handled: it comes back on the next connection
        handling.add(message);
        try {
          await handle();
        } finally {
          handling.delete(message);
        }
      };
      const handle = async () => {
        // Without `decodeAhead`, T is the schema's output (its default).
        const maxBytes = options.maxBytes ?? MAX_MESSAGE_BYTES;
        const decoded = decodedAhead
          ? await decodedAhead
          : options.decode
            ? options.decode(message.content, maxBytes)
            : (decode(options.schema, message.content, maxBytes) as DecodeResult<T>);
        if (!decoded.ok) {
          await refuse(message, decoded.reason);
          return;
        }
        try {
          await options.handler(decoded.value, message, channel);
        } catch (err) {
          await refuse(message, `handler: ${describeError(err)}`.slice(0, 500));
          return;
        }
        // Handled. If the channel closed meanwhile the ack cannot be sent; the broker redelivers the
        // message on the next connection, and handlers are idempotent.
        ack(message);
      };
      const onFailure = (err: unknown): void => {
        logger.error('consumer failed to settle a message', {
          queue: options.queue,
          reason: describeError(err),
        });
      };
      if (ordered) inOrder(settle).catch(onFailure);
      else settle().catch(onFailure);
    },
    { noAck: false },
  );
}

/** Starts `decodeAhead`; what it throws or rejects with becomes a refusal (it is awaited later, or never). */
function decodeEarly<T>(
  decodeAhead: (message: ConsumeMessage) => Promise<DecodeResult<T>>,
  message: ConsumeMessage,
): Promise<DecodeResult<T>> {
  const refusal = (err: unknown): DecodeResult<T> => ({
    ok: false,
    reason: `decode: ${describeError(err)}`.slice(0, 500),
  });
  try {
    return decodeAhead(message).catch(refusal);
  } catch (err) {
    return Promise.resolve(refusal(err));
  }
}

async function deadLetter<S extends z.ZodType, T>(
  session: BrokerSession,
  options: ConsumeOptions<S, T>,
  message: ConsumeMessage,
  reason: string,
  keepHeaders: boolean,
): Promise<void> {
  const { properties, content } = message;
  const cut = content.length > DEAD_LETTER_BODY_BYTES;
  const body = cut ? content.subarray(0, DEAD_LETTER_BODY_BYTES) : content;
  await session.publishConfirmed(options.deadLetter.exchange, '', body, {
    contentType: properties.contentType,
    messageId: properties.messageId,
    correlationId: properties.correlationId,
    type: properties.type,
    timestamp: properties.timestamp,
    appId: properties.appId,
    headers: {
      ...(keepHeaders ? (properties.headers ?? {}) : {}),
      [HEADERS.rejectReason]: reason,
      [HEADERS.rejectedBy]: options.deadLetter.rejectedBy,
      [HEADERS.rejectedFrom]: options.queue,
      ...(cut ? { [HEADERS.originalBytes]: content.length } : {}),
    },
  });
}
