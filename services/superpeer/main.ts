import http from 'node:http';
import { loadSuperpeerConfig } from '../../libs/config/index.js';
import { createLogger } from '../../libs/logging/index.js';
import { fullCollection, ShrinkCollector } from '../give-back-memory.js';
import {
  growOldGenerationForExternalMemory,
  SUPERPEER_OLD_GENERATION_GROWING_PERCENT,
} from '../old-generation.js';
import { installShutdown } from '../shutdown.js';
import { holdYoungGeneration } from '../young-generation.js';
import { createSuperpeerMetrics } from './metrics.js';
import { Superpeer } from './superpeer.js';

/**
 * Files the index must lose before the superpeer asks V8 to collect (about 20 MB of the index's memory),
 * and how long the count must then stay unchanged (give-back-memory.ts).
 */
const GIVE_BACK_MIN_FILES = 100_000;
const GIVE_BACK_QUIET_MS = 2000;
/** Files lost after which the superpeer collects even while peers are still leaving (about 50 MB). */
const GIVE_BACK_WITHIN_FILES = 250_000;

/** Composition root of the superpeer: config → logger → metrics → superpeer → shutdown. */
export async function runSuperpeer(env: Record<string, string | undefined>): Promise<void> {
  growOldGenerationForExternalMemory(SUPERPEER_OLD_GENERATION_GROWING_PERCENT);
  const config = loadSuperpeerConfig(env);
  const logger = createLogger({
    service: 'superpeer',
    level: config.logLevel,
    format: config.logFormat,
    defaultMeta: { superpeerId: config.superpeerId },
  });
  const metrics = createSuperpeerMetrics();
  const superpeer = new Superpeer({
    amqpUrl: config.amqpUrl,
    namespace: config.namespace,
    queueType: config.queueType,
    superpeerId: config.superpeerId,
    logger,
    peerTimeoutMs: config.peerTimeoutMs,
    sweepIntervalMs: config.sweepIntervalMs,
    rpcPrefetch: config.rpcPrefetch,
    maxFilesPerPeer: config.maxFilesPerPeer,
    decodeWorkers: config.decodeWorkers,
    metrics,
  });

  let metricsServer: http.Server | undefined;
  if (config.metricsPort !== undefined) {
    metricsServer = http.createServer((req, res) => {
      if (req.url !== '/metrics') {
        res.writeHead(404).end();
        return;
      }
      metrics.registry.metrics().then(
        (text) => res.writeHead(200, { 'Content-Type': metrics.registry.contentType }).end(text),
        () => res.writeHead(500).end(),
      );
    });
    const server = metricsServer;
    await new Promise<void>((resolve) => server.listen(config.metricsPort, resolve));
  }

  // Peers that left free the index's memory at V8's next full collection, which an idle process may not run.
  const giveBack = new ShrinkCollector({
    size: () => superpeer.index.fileCount,
    collect: fullCollection(),
    minShrink: GIVE_BACK_MIN_FILES,
    quietMs: GIVE_BACK_QUIET_MS,
    collectWithin: GIVE_BACK_WITHIN_FILES,
    checkIntervalMs: 1000,
  });
  giveBack.start();

  installShutdown(logger, async () => {
    giveBack.stop();
    await superpeer.close();
    metricsServer?.close();
    metrics.close();
  });
  await superpeer.start();
  holdYoungGeneration(); // at the size start-up left (see young-generation.ts)
  const address = metricsServer?.address();
  logger.info('superpeer ready', {
    namespace: config.namespace,
    ...(address && typeof address === 'object' ? { metricsPort: address.port } : {}),
  });
}
