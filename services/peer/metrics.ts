import express from 'express';
import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { TransferInfo } from '../../libs/file-server/index.js';
import { registerRuntimeMetrics } from '../event-loop-gauges.js';

/** What the scrape-time gauges read; the composition root supplies it once the peer exists. */
export interface PeerMetricsSample {
  sharedFiles: number;
  brokerConnected: boolean;
  viewPeers: number;
  viewFiles: number;
  viewStale: boolean;
}

export type SearchSource = 'superpeer' | 'network-view';

export interface PeerMetrics {
  registry: Registry;
  /** Pass as `onTransfer` of `createFilesRouter`. */
  onTransfer(info: TransferInfo): void;
  /** One answered search through the HTTP API, by where its network results came from. */
  observeSearch(source: SearchSource, seconds: number): void;
  /**
   * Express middleware, mounted before the files router: counts `GET /files/*` requests until their
   * response closes. Done here because the router's own slot counter is private to libs/transfer.
   */
  trackInFlight: express.RequestHandler;
  /** Where the gauges read at scrape time; until it is set they report 0. */
  sampleFrom(sample: () => PeerMetricsSample): void;
  /** `GET /metrics` in the Prometheus text format. */
  router(): express.Router;
  /** Stops the event-loop monitors. */
  close(): void;
}

/** The statuses the files router answers with (libs/transfer/router.ts). */
const TRANSFER_STATUSES = [200, 206, 304, 400, 404, 416, 500, 503] as const;

export function createPeerMetrics(): PeerMetrics {
  const registry = new Registry();
  // A peer applies the whole network's changes to its map: those must not block its event loop either.
  const loopGauges = registerRuntimeMetrics(registry, 'p2p_peer_');
  let sample: (() => PeerMetricsSample) | undefined;

  // Every metric of this peer goes to its own registry, never prom-client's global one.
  const counter = <L extends string = never>(name: string, help: string, labelNames: readonly L[] = []) =>
    new Counter<L>({ name, help, labelNames, registers: [registry] });

  const transfers = counter(
    'p2p_peer_transfers_total',
    'Answered GET/HEAD requests for a shared file, by HTTP status',
    ['status'],
  );
  const transfersIncomplete = counter(
    'p2p_peer_transfers_incomplete_total',
    'File transfers whose body was cut short (client went away, read error)',
  );
  const servedBytes = counter('p2p_peer_served_bytes_total', 'File body bytes handed to the socket');
  const inFlight = new Gauge({
    name: 'p2p_peer_file_requests_in_flight',
    help: 'GET /files/* requests not yet finished (body transfers in progress, plus short-lived refusals)',
    registers: [registry],
  });
  const searches = counter(
    'p2p_peer_searches_total',
    'Searches answered through the HTTP API, by source (superpeer or this peer’s network view)',
    ['source'],
  );
  const searchSeconds = new Histogram({
    name: 'p2p_peer_search_seconds',
    help: 'Time to answer a search through the HTTP API, by source',
    labelNames: ['source'],
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
    registers: [registry],
  });
  // Every status a files request can end with exists from the first scrape (so does each search source
  // below): a rate() never starts from a missing series, and a misspelt series is an error, not a 0.
  for (const status of TRANSFER_STATUSES) transfers.inc({ status: String(status) }, 0);
  for (const source of ['superpeer', 'network-view'] satisfies SearchSource[]) {
    searches.inc({ source }, 0);
    searchSeconds.zero({ source });
  }
  // Read at scrape time: the share and the view change on their own, and a scrape is rarer than a change.
  const scraped = (name: string, help: string, read: (s: PeerMetricsSample) => number | boolean) =>
    new Gauge({
      name,
      help,
      registers: [registry],
      collect() {
        if (sample) this.set(Number(read(sample())));
      },
    });
  scraped('p2p_peer_shared_files', 'Files this peer shares', (s) => s.sharedFiles);
  scraped(
    'p2p_peer_broker_connected',
    '1 when the peer is connected to RabbitMQ, else 0',
    (s) => s.brokerConnected,
  );
  scraped('p2p_peer_view_peers', 'Peers in this peer’s view of the network', (s) => s.viewPeers);
  scraped('p2p_peer_view_files', 'Files in this peer’s view of the network', (s) => s.viewFiles);
  scraped(
    'p2p_peer_view_stale',
    '1 until a full snapshot has been loaded since the last connect, else 0',
    (s) => s.viewStale,
  );

  return {
    registry,
    onTransfer(info) {
      transfers.inc({ status: String(info.status) });
      if (info.bytes > 0) servedBytes.inc(info.bytes);
      if (!info.complete) transfersIncomplete.inc();
    },
    observeSearch(source, seconds) {
      searches.inc({ source });
      searchSeconds.observe({ source }, seconds);
    },
    trackInFlight(req, res, next) {
      if (req.method === 'GET' && req.path.startsWith('/files/')) {
        inFlight.inc();
        // 'close' fires for a finished answer and for a client that went away alike.
        res.once('close', () => inFlight.dec());
      }
      next();
    },
    sampleFrom(read) {
      sample = read;
    },
    close: () => loopGauges.close(),
    router() {
      const router = express.Router();
      router.get('/metrics', async (_req, res, next) => {
        try {
          const text = await registry.metrics();
          res.set('Content-Type', registry.contentType).set('Cache-Control', 'no-store').send(text);
        } catch (err) {
          next(err);
        }
      });
      return router;
    },
  };
}
