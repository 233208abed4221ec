import type { Channel, ConsumeMessage } from 'amqplib';
import { v4 as uuidv4 } from 'uuid';
import { describeError } from '../../libs/errors/index.js';
import type { Log } from '../../libs/logging/index.js';
import {
  Broker,
  type BrokerSession,
  consumeValidated,
  type RpcClient,
  serveRpc,
} from '../../libs/messaging/index.js';
import {
  encode,
  followerQueue,
  HEADERS,
  livenessTopology,
  MAX_RPC_REQUEST_BYTES,
  mergeTopology,
  type NetworkMessage,
  type PeerEvent,
  PeerEventSchema,
  type PeersReply,
  PeersReplySchema,
  type PeersRequest,
  PROTOCOL_VERSION,
  type RpcRequest,
  RpcRequestSchema,
  type SharedQueueType,
  sharedTopology,
  type TopologyNames,
  topologyNames,
} from '../../libs/protocol/index.js';
import { AheadWindow } from './ahead-window.js';
import { EventDecoder } from './event-decoder.js';
import { type ArrivalCheck, type EventProof, MAX_ARRIVAL_BODY_BYTES } from './event-decoding.js';

/** What the superpeer's logic needs from the broker, and what it answers with. */
export interface TransportHandlers {
  /**
   * One valid peer event, in queue order; a throw dead-letters it. `proof`: what the decoding threads
   * found (absent when the event was decoded in this thread).
   */
  onEvent(event: PeerEvent, message: ConsumeMessage, proof?: EventProof): Promise<void>;
  /**
   * Every message of the events stream as it reaches the superpeer, from a copy of the stream that no
   * backlog holds up (liveness only; it must be cheap and must not throw). `arrival`: what a decoding
   * thread read of it (absent: nothing was, the handler reads it itself).
   */
  onDelivery(message: ConsumeMessage, arrival?: ArrivalCheck): void;
  onEventRefused(): void;
  /**
   * One valid RPC request from `client` (who the reply goes to); the result is the reply body, a throw an
   * error reply.
   */
  onRpc(request: RpcRequest, client: string): unknown;
  /** After every (re)connect, once the events queue is consumed. */
  onConnected(): void;
  /** After the broker found part of the topology gone and declared it again (events may have been lost). */
  onTopologyRepaired(): void;
}

/**
 * The superpeer's view of the broker: it can be replaced by a fake in unit tests. The AMQP one below is
 * what runs.
 */
export interface SuperpeerTransport {
  start(handlers: TransportHandlers): Promise<void>;
  close(): Promise<void>;
  readonly connected: boolean;
  /** Start consuming RPC requests, now and after every reconnect (after the warm-up). */
  serveRpc(): Promise<void>;
  /**
   * Publishes to every peer; fails only on a broker failure. Without `confirm` (ticks) it is fire and
   * forget, dropped while disconnected.
   */
  publishNetwork(message: NetworkMessage, options?: PublishNetworkOptions): Promise<void>;
  /** Declares this superpeer's topology again: a binding deleted and re-created by someone else is invisible. */
  repairTopology(reason: string): Promise<void>;
  /**
   * Takes back the buffer of a file list a decoding thread packed (`EventProof.packed`) once nothing reads
   * it any more, for the threads to pack into again. It is detached: any view of it left reads nothing.
   */
  recycle?(buffer: ArrayBuffer): void;
  /** Messages waiting in the broker for the events consumer; undefined when unknown (disconnected). */
  eventBacklog(): Promise<number | undefined>;
  /**
   * Asks the superpeers' queue for a page of `rpc.peers` while this superpeer does not consume it (its
   * warm-up): a sibling superpeer answers, or nobody does and the request dies in the broker after
   * `timeoutMs`. Undefined when no answer came in time, or an error reply did.
   */
  askSiblings(request: PeersRequest, timeoutMs: number): Promise<PeersReply | undefined>;
}

export interface PublishNetworkOptions {
  /** Wait for the broker's confirm. Default true. */
  confirm?: boolean;
  /** `encode(message)`, when the caller has it already (see `encodeWithField`). */
  body?: Buffer;
}

/** The signature header of a delivery (checked where it is used). */
function signatureOf(message: ConsumeMessage): unknown {
  return message.properties.headers?.[HEADERS.signature];
}

/**
 * Peer events decoded ahead of their turn, at most: enough to keep the decoding threads busy while the
 * main thread applies (an announce costs it about twice its decoding), far fewer than the prefetch.
 */
const DECODE_AHEAD_WINDOW = 16;

/** Copies of events waiting for the liveness consumer, at most. */
const LIVENESS_MAX_MESSAGES = 10_000;
/**
 * Bytes of them, at most. Liveness reads heartbeats only (a few hundred bytes): what else reaches it (an
 * event published without a routing key) is skipped. Only a backlog is bounded: a message the consumer can
 * take at once is delivered whatever its size.
 */
const LIVENESS_MAX_BYTES = 64 * 1024;

export interface AmqpTransportOptions {
  amqpUrl: string;
  namespace: string;
  superpeerId: string;
  /** This run of the superpeer (names its events queue). */
  instanceId: string;
  logger: Log;
  rpcPrefetch: number;
  /** Type of the shared queues (quorum in a cluster). */
  queueType: SharedQueueType;
  /**
   * Unacknowledged peer events held at once. Default 64: enough to keep the consumer busy, while a
   * heartbeat waits behind at most this many announces (up to 4 MiB each) in the broker and the socket.
   */
  eventPrefetch?: number;
  /**
   * Threads that parse, validate and verify the peer events (see EventDecoder), up to a prefetch at once,
   * while the events are handled in order. 0 (the default): each is decoded in its turn, in this thread.
   */
  decodeWorkers?: number;
}

export class AmqpSuperpeerTransport implements SuperpeerTransport {
  private readonly names: TopologyNames;
  private readonly broker: Broker;
  /**
   * Searches have a connection of their own: on the events connection a reply-worthy request would wait in
   * the socket behind up to a prefetch of large announces.
   */
  private readonly rpcBroker: Broker;
  /**
   * A second copy of the events stream, consumed without acks on a connection of its own, for liveness:
   * a heartbeat is seen when it arrives, however many announces wait in the events queue before it.
   */
  private readonly livenessBroker: Broker;
  private handlers: TransportHandlers | undefined;
  private rpcWanted = false;
  private readonly rpcSessions = new WeakSet<BrokerSession>();
  private rpcSession: BrokerSession | undefined;
  private checkChannel: Channel | undefined;
  private readonly decoder: EventDecoder | undefined;
  /** Requests to the superpeers' queue, on the searches' connection (see `askSiblings`). */
  private readonly siblings: RpcClient;

  constructor(private readonly options: AmqpTransportOptions) {
    this.names = topologyNames(options.namespace);
    if ((options.decodeWorkers ?? 0) > 0) {
      this.decoder = new EventDecoder({ workers: options.decodeWorkers!, logger: options.logger });
    }
    this.broker = new Broker({
      url: options.amqpUrl,
      connectionName: `superpeer ${options.superpeerId}`,
      logger: options.logger,
      setup: (session) => this.setup(session),
    });
    this.broker.on('connected', () => this.handlers?.onConnected());
    this.broker.on('topology-repaired', () => this.handlers?.onTopologyRepaired());
    this.livenessBroker = new Broker({
      url: options.amqpUrl,
      connectionName: `superpeer ${options.superpeerId} liveness`,
      logger: options.logger,
      setup: (session) => this.setupLiveness(session),
    });
    this.rpcBroker = new Broker({
      url: options.amqpUrl,
      connectionName: `superpeer ${options.superpeerId} rpc`,
      logger: options.logger,
      setup: (session) => this.setupRpc(session),
    });
    this.siblings = this.rpcBroker.createRpcClient(this.names.rpcQueue);
  }

  async askSiblings(request: PeersRequest, timeoutMs: number): Promise<PeersReply | undefined> {
    try {
      return await this.siblings.call(request, PeersReplySchema, { timeoutMs });
    } catch (err) {
      // Nobody answered (no sibling), or not with a page: the warm-up goes by what it sees alone.
      this.options.logger.debug('no sibling superpeer answered rpc.peers', { reason: describeError(err) });
      return undefined;
    }
  }

  get connected(): boolean {
    return this.broker.connected;
  }

  private get eventsQueue(): string {
    return this.names.superpeerQueue(this.options.superpeerId, this.options.instanceId);
  }

  async start(handlers: TransportHandlers): Promise<void> {
    this.handlers = handlers;
    this.decoder?.start();
    await this.rpcBroker.start();
    await this.livenessBroker.start();
    await this.broker.start();
  }

  async close(): Promise<void> {
    await this.rpcBroker.close();
    await this.livenessBroker.close();
    await this.broker.close();
    await this.decoder?.close();
  }

  private async setup(session: BrokerSession): Promise<void> {
    const handlers = this.handlers;
    if (!handlers) throw new Error('transport not started');
    const queue = this.eventsQueue;
    await session.assertTopology(
      mergeTopology(
        sharedTopology(this.names, { queueType: this.options.queueType }),
        followerQueue(this.names, queue, this.names.eventsExchange),
      ),
    );
    const common = {
      queue,
      schema: PeerEventSchema,
      prefetch: this.options.eventPrefetch ?? 64,
      deadLetter: this.deadLetter,
      onRefused: () => handlers.onEventRefused(),
      // Handling an event again changes nothing (a state or delta already held, a heartbeat's beat counted).
      batchAcks: true,
    };
    const decoder = this.decoder;
    if (decoder === undefined) {
      await consumeValidated(session, {
        ...common,
        handler: (event, message) => handlers.onEvent(event, message),
      });
    } else {
      // Decoded in the threads as they arrive (a window of them at once), handled in their order. A
      // delivery leaves the window when its turn opens it (a refusal at once); per session: one cut short
      // by a lost connection never opens what it held.
      const window = new AheadWindow(DECODE_AHEAD_WINDOW);
      await consumeValidated(session, {
        ...common,
        decodeAhead: async (message) => {
          await window.enter();
          const decoded = await decoder.decodeEvent(message.content, signatureOf(message));
          if (!decoded.ok) {
            window.leave();
            return decoded;
          }
          let inWindow = true;
          const open = () => {
            if (inWindow) window.leave();
            inWindow = false;
            return decoded.open();
          };
          return { ok: true, value: open };
        },
        handler: (open, message) => {
          const { event, proof } = open(); // its objects are made in its turn
          return handlers.onEvent(event, message, proof);
        },
      });
    }
    this.checkChannel = await session.createChannel('checks');
  }

  private async setupLiveness(session: BrokerSession): Promise<void> {
    const handlers = this.handlers;
    if (!handlers) throw new Error('transport not started');
    const queue = `${this.eventsQueue}.liveness`;
    await session.assertTopology(
      // Bounded: should this consumer ever fall behind, the oldest copies go (nothing here is state;
      // drop-head, never reject-publish, which would refuse the peer's publish to every queue).
      livenessTopology(this.names, queue, {
        'x-max-length': LIVENESS_MAX_MESSAGES,
        'x-max-length-bytes': LIVENESS_MAX_BYTES,
      }),
    );
    const channel = await session.createChannel('liveness');
    await channel.consume(
      queue,
      (message) => {
        if (message === null) {
          void session.restart(`consumer of ${queue} cancelled by the broker`);
          return;
        }
        const decoder = this.decoder;
        if (decoder === undefined) {
          handlers.onDelivery(message);
        } else if (message.content.length > MAX_ARRIVAL_BODY_BYTES) {
          handlers.onDelivery(message, { heartbeat: false });
        } else {
          void decoder
            .checkArrival(message.content, signatureOf(message))
            .then((check) => handlers.onDelivery(message, check === 'busy' ? undefined : check));
        }
      },
      { noAck: true },
    );
  }

  private async setupRpc(session: BrokerSession): Promise<void> {
    await session.assertTopology(sharedTopology(this.names, { queueType: this.options.queueType }));
    this.rpcSession = session;
    if (this.rpcWanted) await this.serveRpcOn(session);
  }

  async serveRpc(): Promise<void> {
    this.rpcWanted = true;
    const session = this.rpcSession;
    if (session?.open) await this.serveRpcOn(session);
  }

  private async serveRpcOn(session: BrokerSession): Promise<void> {
    if (this.rpcSessions.has(session)) return;
    this.rpcSessions.add(session);
    const handlers = this.handlers!;
    await serveRpc(session, {
      queue: this.names.rpcQueue,
      schema: RpcRequestSchema,
      prefetch: this.options.rpcPrefetch,
      deadLetter: this.deadLetter,
      maxRequestBytes: MAX_RPC_REQUEST_BYTES,
      // The reply address tells clients apart: the broker names each channel's direct reply-to itself
      // (the app id is the sender's word, and would let one client pose as many).
      handle: (request, message) => handlers.onRpc(request, String(message.properties.replyTo)),
      errorReply: (code, message) => ({
        v: PROTOCOL_VERSION,
        ok: false,
        superpeerId: this.options.superpeerId,
        error: { code, message: message.slice(0, 1000) },
      }),
    });
  }

  private get deadLetter() {
    return { exchange: this.names.deadLetterExchange, rejectedBy: `superpeer ${this.options.superpeerId}` };
  }

  recycle(buffer: ArrayBuffer): void {
    this.decoder?.recycle(buffer);
  }

  async publishNetwork(message: NetworkMessage, options: PublishNetworkOptions = {}): Promise<void> {
    // Keyed by type, like peer events: a client that wants only some kinds binds through an exchange of its own.
    await this.broker.publish(this.names.networkExchange, message.type, options.body ?? encode(message), {
      confirm: options.confirm ?? true,
      // A network with no peers yet routes nowhere, and that is normal: not `mandatory`.
      properties: {
        messageId: uuidv4(),
        type: message.type,
        appId: `superpeer ${this.options.superpeerId}`,
        mandatory: false,
      },
    });
  }

  repairTopology(reason: string): Promise<void> {
    return this.broker.repairTopology(reason);
  }

  async eventBacklog(): Promise<number | undefined> {
    const channel = this.checkChannel;
    if (!channel || !this.broker.connected) return undefined;
    try {
      return (await channel.checkQueue(this.eventsQueue)).messageCount;
    } catch {
      return undefined; // the channel closes with it, and the session restarts
    }
  }
}
