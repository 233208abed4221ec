import express from 'express';
import { z } from 'zod';
import { describeError, isP2PError } from '../../libs/errors/index.js';
import {
  type AnswerSource,
  DEFAULT_SEARCH_LIMIT,
  MAX_SEARCH_LIMIT,
  PEER_LIST_FROM_SUPERPEER,
  type PeerApiError,
  type PeerListAnswer,
  type PeerSearchAnswer,
} from '../../libs/protocol/index.js';
import type { Peer } from './peer.js';
import { viewPeers } from './queries.js';

export interface ApiHooks {
  /** Called once per answered search, with the time the peer took (for metrics). */
  onSearch?: (source: AnswerSource, seconds: number) => void;
}

const SearchQuerySchema = z.object({
  q: z.string().trim().min(1).max(256),
  limit: z.coerce.number().int().min(1).max(MAX_SEARCH_LIMIT).default(DEFAULT_SEARCH_LIMIT),
});
const PeersQuerySchema = z.object({ source: z.literal(PEER_LIST_FROM_SUPERPEER).optional() });

/** Answers a refused or failed request with the API's error body (PeerApiErrorSchema). */
export function refuse(res: express.Response, status: number, code: string, message: string): void {
  res.status(status).json({ error: { code, message } } satisfies PeerApiError);
}

/**
 * The peer's JSON API, beside the file routes: what the CLI (`--peer`) and a web page use.
 * GET /api/search?q=&limit=, GET /api/peers[?source=superpeer], GET /api/status, GET /healthz. The
 * shapes of search and peers are the protocol lib's (PeerSearchAnswerSchema, PeerListAnswerSchema).
 */
export function createApiRouter(
  peer: Peer,
  info: () => Record<string, unknown>,
  hooks: ApiHooks = {},
): express.Router {
  const router = express.Router();

  router.get('/api/search', async (req, res) => {
    const parsed = SearchQuerySchema.safeParse(req.query);
    if (!parsed.success) return refuse(res, 400, 'USAGE', parsed.error.issues[0]?.message ?? 'bad query');
    try {
      const startedAt = performance.now();
      const answer = await peer.search(parsed.data.q, parsed.data.limit);
      hooks.onSearch?.(answer.source, (performance.now() - startedAt) / 1000);
      res.json(answer satisfies PeerSearchAnswer);
    } catch (err) {
      const status = isP2PError(err, 'USAGE') ? 400 : 500;
      refuse(res, status, isP2PError(err) ? err.code : 'INTERNAL', describeError(err));
    }
  });

  router.get('/api/peers', async (req, res) => {
    const parsed = PeersQuerySchema.safeParse(req.query);
    if (!parsed.success) return refuse(res, 400, 'USAGE', parsed.error.issues[0]?.message ?? 'bad query');
    const answer = parsed.data.source ? await peer.listPeers() : viewPeers(peer.view);
    res.json(answer satisfies PeerListAnswer);
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
