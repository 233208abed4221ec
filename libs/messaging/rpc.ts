import type { Channel, ConsumeMessage } from 'amqplib';
import { v4 as uuidv4 } from 'uuid';
import type { z } from 'zod';
import { describeError, P2PError } from '../errors/index.js';
import type { Log } from '../logging/index.js';
import { type DecodeResult, decode, encode } from '../protocol/index.js';
import type { Broker } from './broker.js';
import { consumeValidated, type DeadLetterTarget, POISON_REASON } from './consumer.js';
import { replyToProblem } from './reply-to.js';
import type { BrokerSession } from './session.js';

/** RabbitMQ's direct reply-to pseudo-queue: no queue to declare or clean up, lowest latency. */
const DIRECT_REPLY_TO = 'amq.rabbitmq.reply-to';

export interface RpcServerOptions<S extends z.ZodType> {
  queue: string;
  schema: S;
  prefetch: number;
  deadLetter: DeadLetterTarget;
  /** Returns the reply body. A throw becomes an error reply with the error's code. */
  handle: (request: z.output<S>, message: ConsumeMessage) => Promise<unknown> | unknown;
  /** Builds the body of an error reply (bad request or failed handler). */
  errorReply: (code: string, message: string) => unknown;
  /** Larger request bodies are refused unparsed (with an error reply). Default MAX_MESSAGE_BYTES. */
  maxRequestBytes?: number;
}

/**
 * Serves requests from a queue shared with other servers (competing consumers). Every request with a
 * usable `reply_to` gets exactly one reply: the answer, or an error reply when the request is invalid.
 * Replies leave on the broker's reply connection, never on the consuming one (see ReplyPublisher); a
 * request whose `reply_to` fails the cheap checks, or whose reply the broker refused, is dead-lettered
 * with the reason and acknowledged: one warning line, no reconnect.
 */
export async function serveRpc<S extends z.ZodType>(session: BrokerSession, options: RpcServerOptions<S>) {
  const replies = session.replies;
  replies.warm();
  /** Requests that must get no reply at all: the reply itself is what failed. */
  const unanswerable = new WeakSet<ConsumeMessage>();
  const reply = async (request: ConsumeMessage, body: unknown): Promise<void> => {
    const { replyTo, correlationId } = request.properties;
    await replies.send(replyTo as string, encode(body), {
      correlationId,
      contentType: 'application/json',
      type: 'rpc.reply',
    });
  };
  await consumeValidated(session, {
    queue: options.queue,
    schema: options.schema,
    prefetch: options.prefetch,
    deadLetter: options.deadLetter,
    ...(options.maxRequestBytes === undefined ? {} : { maxBytes: options.maxRequestBytes }),
    ordered: false,
    handler: async (request, message) => {
      const problem = replyToProblem(message.properties.replyTo);
      if (problem) {
        unanswerable.add(message);
        throw new P2PError('MESSAGE_INVALID', problem);
      }
      const started = process.hrtime.bigint();
      let body: unknown;
      let errorCode: string | undefined;
      try {
        body = await options.handle(request, message);
      } catch (err) {
        errorCode = err instanceof P2PError ? err.code : 'RPC_ERROR';
        body = options.errorReply(errorCode, err instanceof Error ? err.message : String(err));
      }
      try {
        await reply(message, body);
      } catch (err) {
        unanswerable.add(message);
        throw new P2PError(
          'RPC_ERROR',
          `reply to ${String(message.properties.replyTo).slice(0, 80)} failed`,
          {
            cause: err,
          },
        );
      }
      if (debugEnabled(session.logger))
        session.logger.debug('served a request', {
          type: message.properties.type,
          correlationId: message.properties.correlationId,
          durationMs: Number(process.hrtime.bigint() - started) / 1e6,
          ...(errorCode ? { errorCode } : {}),
        });
    },
    onRefused: (reason, message) => {
      if (reason === POISON_REASON || unanswerable.has(message)) return;
      if (replyToProblem(message.properties.replyTo)) return;
      reply(message, options.errorReply('MESSAGE_INVALID', reason)).catch((err) =>
        session.logger.debug('could not send an error reply', { reason: describeError(err) }),
      );
    },
  });
}

/**
 * Whether `logger` writes debug lines: winston's `isDebugEnabled` where there is one. Winston runs its whole
 * format (timestamp, JSON) before its transports drop a line below their level, some microseconds a call,
 * so a line written for every request is built only when it will be written.
 */
function debugEnabled(logger: Log): boolean {
  const probe = (logger as Log & { isDebugEnabled?: () => boolean }).isDebugEnabled;
  return typeof probe === 'function' ? probe.call(logger) : true;
}

export interface RpcCallOptions {
  timeoutMs: number;
  /** Defaults to a new UUID; pass one to correlate logs across services. */
  correlationId?: string;
}

interface Pending {
  resolve: (body: Buffer) => void;
  reject: (err: Error) => void;
  timer: NodeJS.Timeout;
}

/**
 * Request/reply over AMQP with direct reply-to. Requests carry an `expiration` equal to their timeout so a
 * request nobody took in time dies in the broker instead of being answered to nobody.
 */
export class RpcClient {
  private channel: Channel | undefined;
  private readonly pending = new Map<string, Pending>();

  constructor(
    private readonly broker: Broker,
    private readonly queue: string,
  ) {}

  /** Opens this session's reply channel; `Broker.createRpcClient` makes clients that it calls on every session. */
  async setup(session: BrokerSession): Promise<void> {
    const channel = await session.createChannel('rpc-client');
    await channel.consume(DIRECT_REPLY_TO, (message) => this.onReply(message), { noAck: true });
    this.channel = channel;
    // Replies for requests sent on the previous connection can no longer arrive.
    for (const [id, pending] of this.pending) {
      clearTimeout(pending.timer);
      pending.reject(new P2PError('BROKER_CLOSED', 'connection lost while waiting for a reply'));
      this.pending.delete(id);
    }
  }

  /** Sends `request` and resolves with the reply parsed by `schema`; RPC_TIMEOUT when none comes in time. */
  call<S extends z.ZodType>(request: unknown, schema: S, options: RpcCallOptions): Promise<z.output<S>> {
    return this.callDecoded(request, (body) => decode(schema, body), options);
  }

  /**
   * `call` with the reply read by `read` (which must decide what `decode` with the reply's schema would: a
   * snapshot page read into columns, say); RPC_ERROR when it refuses the reply.
   */
  async callDecoded<T>(
    request: unknown,
    read: (body: Buffer) => DecodeResult<T>,
    options: RpcCallOptions,
  ): Promise<T> {
    const started = Date.now();
    await this.broker.currentSession(options.timeoutMs);
    const channel = this.channel;
    if (!channel) throw new P2PError('BROKER_UNREACHABLE', 'no reply channel');
    const remainingMs = Math.max(1, options.timeoutMs - (Date.now() - started));
    const correlationId = options.correlationId ?? uuidv4();
    const body = await new Promise<Buffer>((resolve, reject) => {
      const timer = setTimeout(() => {
        // After a task that held the event loop past the deadline, timers run before the loop reads its
        // sockets: a reply that came in time would lose to this timer. It gets one more read first.
        setImmediate(() => {
          if (this.pending.get(correlationId) !== entry) return;
          this.pending.delete(correlationId);
          reject(new P2PError('RPC_TIMEOUT', `no reply from ${this.queue} within ${options.timeoutMs} ms`));
        });
      }, remainingMs);
      const entry: Pending = { resolve, reject, timer };
      this.pending.set(correlationId, entry);
      try {
        channel.sendToQueue(this.queue, encode(request), {
          replyTo: DIRECT_REPLY_TO,
          correlationId,
          messageId: correlationId,
          expiration: String(remainingMs),
          contentType: 'application/json',
          type: (request as { type?: string }).type,
          timestamp: Math.floor(Date.now() / 1000),
        });
      } catch (err) {
        clearTimeout(timer);
        this.pending.delete(correlationId);
        reject(new P2PError('BROKER_UNREACHABLE', 'could not send the request', { cause: err }));
      }
    });
    const decoded = read(body);
    if (!decoded.ok) throw new P2PError('RPC_ERROR', `invalid reply: ${decoded.reason}`);
    return decoded.value;
  }

  close(): void {
    for (const pending of this.pending.values()) {
      clearTimeout(pending.timer);
      pending.reject(new P2PError('BROKER_CLOSED', 'client closed'));
    }
    this.pending.clear();
  }

  private onReply(message: ConsumeMessage | null): void {
    if (!message) return;
    const id = message.properties.correlationId;
    const pending = typeof id === 'string' ? this.pending.get(id) : undefined;
    if (!pending) return; // late reply after a timeout: nobody waits any more
    this.pending.delete(id);
    clearTimeout(pending.timer);
    pending.resolve(message.content);
  }
}
