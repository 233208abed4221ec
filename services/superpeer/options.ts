import type { Log } from '../../libs/logging/index.js';
import type { AssemblerLimits, SharedQueueType } from '../../libs/protocol/index.js';
import type { SliceOptions } from '../../libs/search/index.js';
import { defaultDecodeWorkers } from './event-decoder.js';
import type { FairQueueOptions } from './fair-queue.js';
import type { SuperpeerMetrics } from './metrics.js';
import type { SuperpeerTransport } from './transport.js';

export interface SuperpeerOptions {
  amqpUrl: string;
  namespace: string;
  /** Type of the shared queues. Default classic. */
  queueType?: SharedQueueType;
  superpeerId: string;
  logger: Log;
  /** A peer silent for this long is dropped. Default 6000. */
  peerTimeoutMs?: number;
  /** How often silent peers are looked for. Default 1000. */
  sweepIntervalMs?: number;
  /** RPC requests handled at once. Default 64. */
  rpcPrefetch?: number;
  /** After a (re)start the superpeer waits for peers to re-announce before answering searches: until no announce came for this long… Default 300. */
  warmupQuietMs?: number;
  /**
   * …counted from the first announce; before it, for this long from the start. Longer than a small
   * network's answer to the resync request (a peer delays it by up to 250 ms at random, see
   * `resyncJitterWindowMs`, and a loaded machine adds to that). Default 1000.
   */
  warmupFirstAnnounceMs?: number;
  /** …or at most this long. Default 2500. */
  warmupMaxMs?: number;
  /**
   * When a sibling superpeer answers searches meanwhile, the warm-up also lasts until every peer the
   * sibling lists (`rpc.peers`) is in the index, at most this long from the start. Default 30000.
   */
  warmupSiblingMaxMs?: number;
  /** A peer announcing more files than this is refused whole. Default 100_000. */
  maxFilesPerPeer?: number;
  /** Bounds of the chunked announces in progress (see ChunkAssembler). */
  assemblerLimits?: Partial<Omit<AssemblerLimits, 'maxItemsPerList'>>;
  /** Most peers asked to resync per second. Default 250. */
  maxResyncsPerSecond?: number;
  /** A `network.tick` goes to every peer this often, so they can tell their network stream works. Default 2000. */
  tickIntervalMs?: number;
  /**
   * A broadcast resync request (after a (re)connect or a repaired topology) goes out at most this often,
   * however often the connection comes back: a reconnect loop must not become a re-announce storm.
   * Default 5000.
   */
  resyncBroadcastMinIntervalMs?: number;
  /**
   * The broker; default the AMQP one built from the options above. Unit tests pass a fake, and then the
   * superpeer serves no standing searches (they need a broker connection of their own).
   */
  transport?: SuperpeerTransport;
  metrics?: SuperpeerMetrics;
  /** How applies and removals of peers are sliced (default: the index's, at most 8 ms a slice). */
  slices?: SliceOptions;
  /** Fairness between RPC clients (see FairQueue): requests each may have waiting, and in all. */
  rpcFairness?: FairQueueOptions;
  /**
   * Threads that parse, validate and verify the peers' events off the main thread (see EventDecoder);
   * 0: each event is decoded in its turn on the main thread. Unused with a `transport` given. Default:
   * one less than the cores, between 1 and 4.
   */
  decodeWorkers?: number;
}

export type Settings = Required<
  Omit<
    SuperpeerOptions,
    | 'metrics'
    | 'transport'
    | 'assemblerLimits'
    | 'amqpUrl'
    | 'namespace'
    | 'queueType'
    | 'slices'
    | 'rpcFairness'
  >
>;

/** The options with their defaults filled in. */
export function settingsOf(options: SuperpeerOptions): Settings {
  return {
    peerTimeoutMs: 6000,
    sweepIntervalMs: 1000,
    rpcPrefetch: 64,
    warmupQuietMs: 300,
    warmupFirstAnnounceMs: 1000,
    warmupMaxMs: 2500,
    warmupSiblingMaxMs: 30_000,
    maxFilesPerPeer: 100_000,
    maxResyncsPerSecond: 250,
    tickIntervalMs: 2000,
    resyncBroadcastMinIntervalMs: 5000,
    decodeWorkers: defaultDecodeWorkers(),
    superpeerId: options.superpeerId,
    logger: options.logger,
    ...definedOnly(options),
  };
}

/** The options that are set (an explicit `undefined` must not override a default). */
function definedOnly<T extends object>(options: T): Partial<T> {
  return Object.fromEntries(Object.entries(options).filter(([, value]) => value !== undefined)) as Partial<T>;
}
