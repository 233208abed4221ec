import express from 'express';
import { z } from 'zod';
import { describeError, isP2PError } from '../../libs/errors/index.js';
import { DEFAULT_SEARCH_LIMIT, MAX_SEARCH_LIMIT } from '../../libs/protocol/index.js';
import type { Peer, PeerSearchAnswer } from './peer.js';

export interface ApiHooks {
  /** Called once per answered search, with the time the peer took (for metrics). */
  onSearch?: (source: PeerSearchAnswer['source'], seconds: number) => void;
}

const SearchQuerySchema = z.object({
  q: z.string().trim().min(1).max(256),
  limit: z.coerce.number().int().min(1).max(MAX_SEARCH_LIMIT).default(DEFAULT_SEARCH_LIMIT),
});

/**
 * The peer's JSON API, beside the file routes: what the CLI (`--peer`) and a web page use.
 * GET /api/search?q=&limit=, GET /api/peers, GET /api/status, GET /healthz.
 */
export function createApiRouter(
  peer: Peer,
  info: () => Record<string, unknown>,
  hooks: ApiHooks = {},
): express.Router {
  const router = express.Router();

  router.get('/api/search', async (req, res) => {
    const parsed = SearchQuerySchema.safeParse(req.query);
    if (!parsed.success) {
      res
        .status(400)
        .json({ error: { code: 'USAGE', message: parsed.error.issues[0]?.message ?? 'bad query' } });
      return;
    }
    try {
      const startedAt = performance.now();
      const answer = await peer.search(parsed.data.q, parsed.data.limit);
      hooks.onSearch?.(answer.source, (performance.now() - startedAt) / 1000);
      res.json(answer);
    } catch (err) {
      const status = isP2PError(err, 'USAGE') ? 400 : 500;
      res
        .status(status)
        .json({ error: { code: isP2PError(err) ? err.code : 'INTERNAL', message: describeError(err) } });
    }
  });

  router.get('/api/peers', (_req, res) => {
    res.json({ stale: peer.view.stale, peers: peer.view.peers() });
  });

  router.get('/api/status', (_req, res) => {
    res.json({
      peerId: peer.peerId,
      name: peer.name,
      instanceId: peer.instanceId,
      seq: peer.currentSeq,
      brokerConnected: peer.connected,
      viewStale: peer.view.stale,
      viewPeers: peer.view.index.peerCount,
      viewFiles: peer.view.index.fileCount,
      ...info(),
    });
  });

  router.get('/healthz', (_req, res) => {
    res.status(peer.connected ? 200 : 503).json({ ok: peer.connected });
  });

  return router;
}
