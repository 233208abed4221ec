/**
 * Every exchange and queue name of one network, derived from its namespace. This is the only place that
 * spells them; docs/protocol.md describes the same names.
 */
export interface TopologyNames {
  /** fanout, durable: peers publish their events (announce, delta, heartbeat, leave). */
  eventsExchange: string;
  /** fanout, durable: superpeers publish network changes every peer follows. */
  networkExchange: string;
  /** fanout, durable: where refused messages go, with the reason in headers. */
  deadLetterExchange: string;
  /** durable, bounded: holds refused messages for inspection. */
  deadLetterQueue: string;
  /** durable, shared by all superpeers as competing consumers: search, peers and snapshot RPC requests. */
  rpcQueue: string;
  /** fanout, durable: watchers register standing searches here; every superpeer consumes it (watch.ts). */
  watchesExchange: string;
  /** fanout, durable: superpeers ask every watcher to register its watches again (watch.resync-request). */
  watchersExchange: string;
  /** exclusive: one superpeer's copy of the events stream. */
  superpeerQueue(superpeerId: string, instanceId: string): string;
  /**
   * exclusive: one peer's copy of the network stream. `secret` is random and told to nobody: whoever may
   * publish to the default exchange (every role sending RPC requests) can deliver to any queue it can name,
   * so a peer's queue must not be nameable by others.
   */
  peerQueue(peerId: string, secret: string): string;
}

export const NamespaceSchemaPattern = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;

export function topologyNames(namespace: string): TopologyNames {
  return {
    eventsExchange: `${namespace}.events`,
    networkExchange: `${namespace}.network`,
    deadLetterExchange: `${namespace}.dead-letter`,
    deadLetterQueue: `${namespace}.dead-letter`,
    rpcQueue: `${namespace}.rpc`,
    watchesExchange: `${namespace}.watches`,
    watchersExchange: `${namespace}.watchers`,
    superpeerQueue: (superpeerId, instanceId) =>
      `${namespace}.superpeer.${superpeerId}.${instanceId.slice(0, 8)}`,
    peerQueue: (peerId, secret) => `${namespace}.peer.${peerId}.${secret}`,
  };
}

/**
 * A refused message keeps at most this much of its body on `N.dead-letter` (enough to see what it was): the
 * queue holds 10,000 messages, and a broker accepts bodies far larger than any consumer here reads, so
 * without a cut a client could store 10,000 of its largest bodies there.
 */
export const DEAD_LETTER_BODY_BYTES = 64 * 1024;

/** Headers the project sets on AMQP messages. */
export const HEADERS = {
  /** On dead-lettered messages: why it was refused. */
  rejectReason: 'x-p2p-reject-reason',
  /** On dead-lettered messages: which service refused it. */
  rejectedBy: 'x-p2p-rejected-by',
  /** On dead-lettered messages: the queue it was consumed from. */
  rejectedFrom: 'x-p2p-rejected-from',
  /** On dead-lettered messages whose body was cut to DEAD_LETTER_BODY_BYTES: the body's length before. */
  originalBytes: 'x-p2p-original-bytes',
  /** On peer events: Ed25519 signature (base64) of the exact body bytes, by the key in the peer's announce. */
  signature: 'x-p2p-signature',
} as const;
