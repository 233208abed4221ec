import os from 'node:os';
import express from 'express';
import { loadPeerConfig } from '../../libs/config/index.js';
import { createFilesRouter, startHttpServer } from '../../libs/file-server/index.js';
import { loadOrCreateIdentity } from '../../libs/identity/index.js';
import { createLogger } from '../../libs/logging/index.js';
import { MAX_SEARCH_LIMIT } from '../../libs/protocol/index.js';
import { Share, writeDemoFiles } from '../../libs/share/index.js';
import { Watcher } from '../../libs/watch/index.js';
import {
  growOldGenerationForExternalMemory,
  PEER_OLD_GENERATION_GROWING_PERCENT,
} from '../old-generation.js';
import { installShutdown } from '../shutdown.js';
import { createApiRouter } from './api.js';
import { containerName } from './container-name.js';
import { createPeerMetrics } from './metrics.js';
import { Peer } from './peer.js';
import { createWebRouter } from './web.js';
import { createCsrfToken, createWebApiRouter, lazyWatcher, ServingNow, webAccessGuard } from './web-api.js';
import { DownloadJobs } from './web-downloads.js';

/**
 * Composition root of a peer: config → identity → logger → share → HTTP → network → shutdown.
 * Closing runs in reverse: leave the network first (files vanish from searches), then HTTP, then the share.
 */
export async function runPeer(env: Record<string, string | undefined>, options: { iniFile?: string } = {}) {
  // V8's young generation is held before the modules load (bin/p2p.js, ../young-generation.ts).
  growOldGenerationForExternalMemory(PEER_OLD_GENERATION_GROWING_PERCENT);
  const config = loadPeerConfig(env, options);
  // In a compose network, without PEER_NAME: the name `docker-compose ps` shows (peer_3).
  const identity = await loadOrCreateIdentity(config.shareDir, config.name ?? (await containerName()));
  const logger = createLogger({
    service: 'peer',
    level: config.logLevel,
    format: config.logFormat,
    defaultMeta: { peerId: identity.peerId, name: identity.name },
  });
  for (const warning of config.warnings) logger.warn(warning);

  if (config.demoFiles) {
    const written = await writeDemoFiles(config.shareDir, identity.name);
    if (written.length > 0) logger.info('wrote demo files into an empty share', { files: written });
  }
  const share = new Share({ dir: config.shareDir, rescanIntervalMs: config.rescanIntervalMs, logger });
  await share.start();

  const metrics = createPeerMetrics();
  const app = express();
  app.disable('x-powered-by');
  app.use(metrics.trackInFlight);
  // The page (web.ts, web-api.ts): loopback-only when asked; a token only the page itself can read.
  const csrfToken = createCsrfToken();
  const serving = new ServingNow();
  app.use(webAccessGuard(config.webLoopbackOnly));
  app.use(serving.track);
  app.use(
    createFilesRouter({
      share,
      maxConcurrentTransfers: config.maxTransfers,
      maxTransfersPerClient: config.maxTransfersPerClient,
      minClientBytesPerWindow: config.slowReaderMinBytes,
      slowReaderWindowMs: config.slowReaderWindowMs,
      logger,
      onTransfer: metrics.onTransfer,
    }),
  );
  app.use(createWebRouter({ csrfToken }));
  app.use(metrics.router());
  const http = await startHttpServer(app, {
    host: config.httpHost,
    port: config.httpPort,
    idleTimeoutMs: config.httpIdleTimeoutMs,
  });
  const publicUrl = config.publicUrl ?? derivePublicUrl(config.httpHost, http.port, config.advertiseHost);

  const peer = new Peer({
    amqpUrl: config.amqpUrl,
    namespace: config.namespace,
    identity,
    share,
    publicUrl,
    logger,
    heartbeatIntervalMs: config.heartbeatIntervalMs,
    searchTimeoutMs: config.searchTimeoutMs,
  });
  metrics.sampleFrom(() => ({
    sharedFiles: share.fileCount,
    brokerConnected: peer.connected,
    viewPeers: peer.view.index.peerCount,
    viewFiles: peer.view.index.fileCount,
    viewStale: peer.view.stale,
  }));
  app.use(
    createApiRouter(peer, () => ({ url: publicUrl, shareDir: share.root, files: share.fileCount }), {
      onSearch: metrics.observeSearch,
    }),
  );

  // The page's watches, downloads, own files and transfers (web-api.ts).
  const watcher = lazyWatcher(
    () =>
      new Watcher({
        amqpUrl: config.amqpUrl,
        namespace: config.namespace,
        logger,
        connectionName: `peer ${identity.name} ${identity.peerId} watches`,
        initialConnectRetries: 5,
      }),
  );
  const jobs = new DownloadJobs({
    shareRoot: share.root,
    ownPeerId: identity.peerId,
    findHolders: async (sha256) => (await peer.search(sha256, MAX_SEARCH_LIMIT)).results,
    logger,
  });
  const webApi = createWebApiRouter({
    csrfToken,
    watcher: () => watcher.get(),
    jobs,
    ownFiles: () => share.list(),
    serving,
  });
  app.use(webApi.router);

  installShutdown(logger, async () => {
    webApi.close();
    jobs.close();
    await watcher.close();
    await peer.close();
    await http.close();
    await share.close();
    metrics.close();
  });
  await peer.start();
  logger.info('peer ready', {
    url: publicUrl,
    port: http.port,
    shareDir: share.root,
    files: share.fileCount,
  });
}

/**
 * The URL other peers use when PEER_PUBLIC_URL is unset: PEER_ADVERTISE_HOST when set; a loopback bind
 * advertises 127.0.0.1; a bind to one address advertises it; a bind to every interface advertises this
 * machine's host name, which is deterministic where "the first IPv4 address" is not (a container on several
 * networks): in a compose network it is the container's host name, which the network's DNS resolves for
 * every other container, each scaled replica its own.
 */
export function derivePublicUrl(host: string, port: number, advertiseHost?: string): string {
  if (advertiseHost !== undefined) return `http://${advertiseHost}:${port}`;
  if (host === '127.0.0.1' || host === 'localhost' || host === '::1') return `http://127.0.0.1:${port}`;
  if (host !== '0.0.0.0' && host !== '::') return `http://${host.includes(':') ? `[${host}]` : host}:${port}`;
  return `http://${os.hostname()}:${port}`;
}
