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
}
export interface QueueSpec {
  name: string;
  durable: boolean;
  exclusive: boolean;
  arguments?: Record<string, unknown>;
  /** Only check that it exists (passive declare), for nodes not allowed to configure it. Default false. */
  passive?: boolean;
}
export interface BindingSpec {
  queue: string;
  exchange: string;
  pattern: string;
}
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

export function mergeTopology(...specs: TopologySpec[]): TopologySpec {
  return {
    exchanges: specs.flatMap((spec) => spec.exchanges),
    queues: specs.flatMap((spec) => spec.queues),
    bindings: specs.flatMap((spec) => spec.bindings),
  };
}
