import type { TopologyNames } from './names.js';

/**
 * Broker topology as data: what each kind of node declares, applied by the messaging lib on every (re)connect.
 * Every queue is durable or exclusive (RabbitMQ 4.3 refuses transient non-exclusive queues).
 */
export interface ExchangeSpec {
  name: string;
  type: 'fanout' | 'direct' | 'topic';
  durable: boolean;
  /** Only check that it exists (passive declare), for nodes not allowed to configure it. Default false. */
  passive?: boolean;
  /** The broker deletes it once the last binding from it is gone (its queue's, say). Default false. */
  autoDelete?: boolean;
}
export interface QueueSpec {
  name: string;
  durable: boolean;
  exclusive: boolean;
  arguments?: Record<string, unknown>;
  /** Only check that it exists (passive declare), for nodes not allowed to configure it. Default false. */
  passive?: boolean;
}
/** What `exchange` routes to `queue` (or, exchange to exchange, to `toExchange`) by routing key `pattern`. */
export type BindingSpec =
  | { queue: string; exchange: string; pattern: string }
  | { toExchange: string; exchange: string; pattern: string };
export interface TopologySpec {
  exchanges: ExchangeSpec[];
  queues: QueueSpec[];
  bindings: BindingSpec[];
}

/** Refused messages kept for inspection; the oldest are dropped past this many. */
export const DEAD_LETTER_MAX_MESSAGES = 10_000;

/**
 * Type of the shared durable queues (`N.rpc`, `N.dead-letter`): `classic` on one broker, `quorum` on a
 * cluster (replicated, so they survive the loss of a node). Every node of a network must use the same type:
 * RabbitMQ refuses a declaration that differs from the queue it has.
 */
export type SharedQueueType = 'classic' | 'quorum';

export interface SharedTopologyOptions {
  /**
   * True (the default): declare the shared objects and their binding, as a superpeer or `p2p setup` does.
   * False: only check that they exist (a missing one fails the setup, which the connection retries), as a
   * peer or client does; under the least-privilege roles they may not configure shared objects.
   */
  declareShared?: boolean;
  /** Type of the shared queues when declared. Default classic. */
  queueType?: SharedQueueType;
}

/** What every node of a network needs: both fanouts, the dead-letter pair and the shared RPC queue. */
export function sharedTopology(names: TopologyNames, options: SharedTopologyOptions = {}): TopologySpec {
  const spec = declaredSharedTopology(names, options.queueType ?? 'classic');
  if (options.declareShared ?? true) return spec;
  return {
    exchanges: spec.exchanges.map((exchange) => ({ ...exchange, passive: true })),
    queues: spec.queues.map((queue) => ({ ...queue, passive: true })),
    bindings: [],
  };
}

function declaredSharedTopology(names: TopologyNames, queueType: SharedQueueType): TopologySpec {
  return {
    exchanges: [
      { name: names.eventsExchange, type: 'fanout', durable: true },
      { name: names.networkExchange, type: 'fanout', durable: true },
      { name: names.deadLetterExchange, type: 'fanout', durable: true },
      // Standing searches (watch.ts): watchers publish here, every superpeer consumes a copy.
      { name: names.watchesExchange, type: 'fanout', durable: true },
      { name: names.watchersExchange, type: 'fanout', durable: true },
    ],
    queues: [
      {
        name: names.deadLetterQueue,
        durable: true,
        exclusive: false,
        arguments: { 'x-max-length': DEAD_LETTER_MAX_MESSAGES, 'x-queue-type': queueType },
      },
      // No dead-lettering here: requests that expire unanswered are meant to die quietly.
      { name: names.rpcQueue, durable: true, exclusive: false, arguments: { 'x-queue-type': queueType } },
    ],
    bindings: [{ queue: names.deadLetterQueue, exchange: names.deadLetterExchange, pattern: '' }],
  };
}

/** A consumer's own exclusive copy of a fanout, dead-lettering what it nacks. */
export function followerQueue(names: TopologyNames, queue: string, exchange: string): TopologySpec {
  return {
    exchanges: [],
    queues: [
      {
        name: queue,
        durable: false,
        exclusive: true,
        arguments: { 'x-dead-letter-exchange': names.deadLetterExchange },
      },
    ],
    bindings: [{ queue, exchange, pattern: '' }],
  };
}

/**
 * Routing keys of the events a superpeer's liveness copy takes: heartbeats, and whatever is published
 * without a key (clients written before peers were asked to key their events by type, whose heartbeats
 * must count on arrival too).
 */
export const LIVENESS_ROUTING_KEYS = ['peer.heartbeat', ''] as const;

/**
 * A superpeer's liveness copy of the events stream (`name`, an exclusive queue bounded by `arguments`),
 * behind a direct exchange of the same name bound to `N.events`: peers key each event by its type, so the
 * announces (up to 4 MiB each) stay out of this copy instead of crossing the network a second time to be
 * skipped. The exchange is auto-deleted with the queue's bindings when the superpeer's connection goes.
 */
export function livenessTopology(
  names: TopologyNames,
  name: string,
  queueArguments: Record<string, unknown>,
): TopologySpec {
  return {
    exchanges: [
      { name: names.eventsExchange, type: 'fanout', durable: true },
      { name, type: 'direct', durable: false, autoDelete: true },
    ],
    queues: [{ name, durable: false, exclusive: true, arguments: queueArguments }],
    // The queue's bindings first: the broker deletes an auto-delete exchange only once it had one, so
    // until then a superpeer that dies leaves it behind.
    bindings: [
      ...LIVENESS_ROUTING_KEYS.map((pattern) => ({ queue: name, exchange: name, pattern })),
      { toExchange: name, exchange: names.eventsExchange, pattern: '' },
    ],
  };
}

export function mergeTopology(...specs: TopologySpec[]): TopologySpec {
  return {
    exchanges: specs.flatMap((spec) => spec.exchanges),
    queues: specs.flatMap((spec) => spec.queues),
    bindings: specs.flatMap((spec) => spec.bindings),
  };
}
