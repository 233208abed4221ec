import os from 'node:os';
import express from 'express';
import { loadPeerConfig } from '../../libs/config/index.js';
import { createLogger } from '../../libs/logging/index.js';
import { loadOrCreateIdentity, Share, writeDemoFiles } from '../../libs/share/index.js';
import { createFilesRouter, startHttpServer } from '../../libs/transfer/index.js';
import { installShutdown } from '../shutdown.js';
import { createApiRouter } from './api.js';
import { createPeerMetrics } from './metrics.js';
import { Peer } from './peer.js';
import { createWebRouter } from './web.js';

/**
 * Composition root of a peer: config → identity → logger → share → HTTP → network → shutdown.
 * Closing runs in reverse: leave the network first (files vanish from searches), then HTTP, then the share.
 */
export async function runPeer(env: Record<string, string | undefined>, options: { iniFile?: string } = {}) {
  const config = loadPeerConfig(env, options);
  const identity = await loadOrCreateIdentity(config.shareDir, config.name);
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
  app.use(
    createFilesRouter({
      share,
      maxConcurrentTransfers: config.maxTransfers,
      logger,
      onTransfer: metrics.onTransfer,
    }),
  );
  app.use(createWebRouter());
  app.use(metrics.router());
  const http = await startHttpServer(app, {
    host: config.httpHost,
    port: config.httpPort,
    idleTimeoutMs: config.httpIdleTimeoutMs,
  });
  const publicUrl = config.publicUrl ?? derivePublicUrl(config.httpHost, http.port);

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

  installShutdown(logger, async () => {
    await peer.close();
    await http.close();
    await share.close();
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
 * The URL other peers use when PEER_PUBLIC_URL is unset: a loopback bind advertises 127.0.0.1; otherwise
 * the first non-internal IPv4 address, which in a compose network is the container's own address (each
 * scaled replica gets its own).
 */
export function derivePublicUrl(host: string, port: number): string {
  if (host === '127.0.0.1' || host === 'localhost' || host === '::1') return `http://127.0.0.1:${port}`;
  if (host !== '0.0.0.0' && host !== '::') return `http://${host.includes(':') ? `[${host}]` : host}:${port}`;
  for (const addresses of Object.values(os.networkInterfaces())) {
    for (const address of addresses ?? []) {
      if (address.family === 'IPv4' && !address.internal) return `http://${address.address}:${port}`;
    }
  }
  return `http://127.0.0.1:${port}`;
}
