import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import { registerRuntimeMetrics } from '../event-loop-gauges.js';

export interface SuperpeerMetrics {
  registry: Registry;
  eventsReceived: Counter<'type'>;
  messagesRefused: Counter<'queue'>;
  indexedPeers: Gauge;
  indexedFiles: Gauge;
  rpcSeconds: Histogram<'type'>;
  /** `rpcSeconds.observe` for one request type, through a child kept per type (no label hashing per call). */
  observeRpc(type: string, seconds: number): void;
  pendingAnnounces: Gauge;
  /** Stops the event-loop delay monitor. */
  close(): void;
}

export function createSuperpeerMetrics(): SuperpeerMetrics {
  const registry = new Registry();
  const loopGauges = registerRuntimeMetrics(registry, 'p2p_superpeer_');
  const rpcSeconds = new Histogram({
    name: 'p2p_superpeer_rpc_seconds',
    help: 'Time to serve an RPC request inside the superpeer, by type',
    labelNames: ['type'],
    buckets: [0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.05, 0.25],
    registers: [registry],
  });
  /** Request types are the schema's few (validated before they get here). */
  const rpcChildren = new Map<string, ReturnType<typeof rpcSeconds.labels>>();
  return {
    close: () => loopGauges.close(),
    pendingAnnounces: new Gauge({
      name: 'p2p_superpeer_pending_announces',
      help: 'Chunked announces being assembled',
      registers: [registry],
    }),
    registry,
    eventsReceived: new Counter({
      name: 'p2p_superpeer_events_received_total',
      help: 'Valid peer events consumed, by type',
      labelNames: ['type'],
      registers: [registry],
    }),
    messagesRefused: new Counter({
      name: 'p2p_superpeer_messages_refused_total',
      help: 'Messages refused (dead-lettered), by queue',
      labelNames: ['queue'],
      registers: [registry],
    }),
    indexedPeers: new Gauge({
      name: 'p2p_superpeer_indexed_peers',
      help: 'Peers in the index',
      registers: [registry],
    }),
    indexedFiles: new Gauge({
      name: 'p2p_superpeer_indexed_files',
      help: 'Files in the index',
      registers: [registry],
    }),
    rpcSeconds,
    observeRpc: (type, seconds) => {
      let child = rpcChildren.get(type);
      if (child === undefined) {
        child = rpcSeconds.labels({ type });
        rpcChildren.set(type, child);
      }
      child.observe(seconds);
    },
  };
}
