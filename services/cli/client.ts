import { z } from 'zod';
import { describeError, P2PError } from '../../libs/errors/index.js';
import type { Log } from '../../libs/logging/index.js';
import { Broker, type RpcClient } from '../../libs/messaging/index.js';
import {
  collectPeerPages,
  ErrorReplySchema,
  type ListedPeer,
  PEER_LIST_FROM_SUPERPEER,
  PeerApiErrorSchema,
  PeerListAnswerSchema,
  type PeerSearchAnswer,
  PeerSearchAnswerSchema,
  PeersReplySchema,
  PROTOCOL_VERSION,
  SearchReplySchema,
  type SharedQueueType,
  type SharedTopologyOptions,
  sharedTopology,
  topologyNames,
} from '../../libs/protocol/index.js';

/** What a search found and who answered (a superpeer, or a peer: its own view when `stale`). */
export interface SearchOutcome extends PeerSearchAnswer {
  /** The superpeer that answered, when one did over AMQP. */
  superpeerId?: string;
}

/** How the CLI reaches the network: AMQP RPC to the superpeers, or one peer's HTTP API. */
export interface NetworkClient {
  search(query: string, limit: number): Promise<SearchOutcome>;
  /** Every peer; `lastSeenAgoMs` is absent where nobody who answered knows it (a peer's own view). */
  peers(): Promise<ListedPeer[]>;
  close(): Promise<void>;
}

export interface AmqpClientOptions {
  amqpUrl: string;
  namespace: string;
  /** Type of the shared queues. Default classic. */
  queueType?: SharedQueueType;
  timeoutMs: number;
  logger: Log;
}

/** A CLI command's connection to the broker: it fails fast instead of retrying like a service. */
export interface CliBrokerOptions {
  amqpUrl: string;
  namespace: string;
  /** Shown in the management UI. */
  connectionName: string;
  logger: Log;
  /**
   * The shared objects to declare (or, with `declareShared: false`, check) on connecting. Absent: nothing is
   * declared (under the roles a client may not), and where no superpeer ever set the network up, requests
   * go unanswered ("superpeer unavailable").
   */
  topology?: SharedTopologyOptions;
}

/** Connects, declaring `topology` if given, with an RPC client to the superpeers' queue. */
export async function openCliBroker(options: CliBrokerOptions): Promise<{ broker: Broker; rpc: RpcClient }> {
  const names = topologyNames(options.namespace);
  const { topology } = options;
  const broker = new Broker({
    url: options.amqpUrl,
    connectionName: options.connectionName,
    logger: options.logger,
    initialConnectRetries: 0,
    ...(topology ? { setup: (session) => session.assertTopology(sharedTopology(names, topology)) } : {}),
  });
  const rpc = broker.createRpcClient(names.rpcQueue);
  try {
    await broker.start();
  } catch (err) {
    await broker.close();
    throw err;
  }
  return { broker, rpc };
}

/**
 * Declares a network's shared objects (exchanges, the RPC and dead-letter queues, their binding) and
 * returns: what a superpeer does on every connect, for an operator who runs peers before any superpeer or
 * wants the topology in place under an account allowed to configure it.
 */
export async function setupNetwork(options: {
  amqpUrl: string;
  namespace: string;
  queueType?: SharedQueueType;
  logger: Log;
}): Promise<void> {
  const { broker } = await openCliBroker({
    ...options,
    connectionName: `cli setup ${process.pid}`,
    topology: { declareShared: true, queueType: options.queueType },
  });
  await broker.close();
}

const AnyReplySchema = z.union([SearchReplySchema, PeersReplySchema, ErrorReplySchema]);

/** Talks to the superpeers over the broker, failing fast when the broker is unreachable. */
export async function connectAmqpClient(options: AmqpClientOptions): Promise<NetworkClient> {
  const { broker, rpc } = await openCliBroker({ ...options, connectionName: `cli ${process.pid}` });

  const call = async (request: object) => {
    try {
      const reply = await rpc.call(request, AnyReplySchema, { timeoutMs: options.timeoutMs });
      if (!reply.ok) throw new P2PError('RPC_ERROR', `superpeer refused the request: ${reply.error.message}`);
      return reply;
    } catch (err) {
      if (err instanceof P2PError && err.code === 'RPC_TIMEOUT') {
        throw new P2PError(
          'SUPERPEER_UNAVAILABLE',
          `superpeer unavailable: none answered within ${options.timeoutMs} ms (--peer <url> asks a peer, which answers from its own view)`,
          {
            cause: err,
          },
        );
      }
      throw err;
    }
  };

  return {
    async search(query, limit) {
      const reply = await call({ v: PROTOCOL_VERSION, type: 'rpc.search', query, limit });
      if (reply.type !== 'rpc.search') throw new P2PError('RPC_ERROR', 'unexpected reply type');
      return {
        results: reply.results,
        truncated: reply.truncated,
        source: 'superpeer',
        stale: false,
        superpeerId: reply.superpeerId,
      };
    },
    peers() {
      return collectPeerPages(async (cursor) => {
        const reply = await call({ v: PROTOCOL_VERSION, type: 'rpc.peers', ...(cursor ? { cursor } : {}) });
        if (reply.type !== 'rpc.peers') throw new P2PError('RPC_ERROR', 'unexpected reply type');
        return reply;
      });
    },
    async close() {
      rpc.close();
      await broker.close();
    },
  };
}

/** Asks one peer's HTTP API: it searches locally, then a superpeer, else its own network view. */
export function peerHttpClient(peerUrl: string, timeoutMs: number): NetworkClient {
  const base = peerUrl.endsWith('/') ? peerUrl.slice(0, -1) : peerUrl;
  const get = async (path: string): Promise<unknown> => {
    let response: Response;
    try {
      // The peer itself waits up to its own search timeout for a superpeer; allow for that.
      response = await fetch(`${base}${path}`, { signal: AbortSignal.timeout(timeoutMs + 5000) });
    } catch (err) {
      throw new P2PError('SUPERPEER_UNAVAILABLE', `peer at ${base} did not answer: ${describeError(err)}`);
    }
    const body: unknown = await response.json().catch(() => undefined);
    if (!response.ok) {
      const refusal = PeerApiErrorSchema.safeParse(body);
      const message = refusal.success ? refusal.data.error.message : response.statusText;
      throw new P2PError(response.status === 400 ? 'USAGE' : 'RPC_ERROR', `peer at ${base}: ${message}`);
    }
    return body;
  };
  return {
    async search(query, limit) {
      const body = await get(`/api/search?q=${encodeURIComponent(query)}&limit=${limit}`);
      const parsed = PeerSearchAnswerSchema.safeParse(body);
      if (!parsed.success) throw new P2PError('RPC_ERROR', `peer at ${base} sent an invalid answer`);
      return parsed.data;
    },
    async peers() {
      // The peer asks the superpeers, which know when each peer was last heard from; its view does not.
      const parsed = PeerListAnswerSchema.safeParse(
        await get(`/api/peers?source=${PEER_LIST_FROM_SUPERPEER}`),
      );
      if (!parsed.success) throw new P2PError('RPC_ERROR', `peer at ${base} sent an invalid answer`);
      return parsed.data.peers;
    },
    async close() {},
  };
}
