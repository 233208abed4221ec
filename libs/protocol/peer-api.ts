import { z } from 'zod';
import { P2PError } from '../errors/index.js';
import { ErrorBodySchema } from './common.js';
import { PeerSummarySchema, type PeersReply, SearchResultSchema } from './rpc.js';

/*
 * A peer's HTTP JSON API (GET /api/search, GET /api/peers), as the CLI's `--peer` and the page read it.
 * The peer answers with these shapes and the CLI checks them, so both sides hold to one contract.
 */

/** Where an answer came from: a superpeer, or the peer's own view of the network (no superpeer answered). */
export const AnswerSourceSchema = z.enum(['superpeer', 'network-view']);
export type AnswerSource = z.infer<typeof AnswerSourceSchema>;

const answer = {
  source: AnswerSourceSchema,
  /** True when the answer may miss recent changes (the view is not known to be current). */
  stale: z.boolean(),
  /** Why no superpeer answered, when none did. */
  superpeerError: z.string().max(2000).optional(),
};

/** GET /api/search?q=&limit=: the peer's own matches first, then the network's. */
export const PeerSearchAnswerSchema = z.object({
  ...answer,
  results: z.array(SearchResultSchema),
  /** True when more matches existed than `limit` (or a search ran out of its work budget). */
  truncated: z.boolean(),
});
export type PeerSearchAnswer = z.infer<typeof PeerSearchAnswerSchema>;

/** A peer as a listing shows it; `lastSeenAgoMs` only when a superpeer answered (a view does not know it). */
export const ListedPeerSchema = PeerSummarySchema.extend({
  lastSeenAgoMs: PeerSummarySchema.shape.lastSeenAgoMs.optional(),
});
export type ListedPeer = z.infer<typeof ListedPeerSchema>;

/**
 * GET /api/peers: the peers of this peer's view. With `?source=superpeer`, the superpeers' listing, which
 * says when each peer was last heard from, falling back to the view when no superpeer answers.
 */
export const PeerListAnswerSchema = z.object({
  ...answer,
  peers: z.array(ListedPeerSchema),
});
export type PeerListAnswer = z.infer<typeof PeerListAnswerSchema>;

/** The query value of GET /api/peers that asks the superpeers. */
export const PEER_LIST_FROM_SUPERPEER = 'superpeer';

/** What a peer's API answers on a refused or failed request (4xx, 5xx). */
export const PeerApiErrorSchema = z.object({ error: ErrorBodySchema });
export type PeerApiError = z.infer<typeof PeerApiErrorSchema>;

/** Pages of `rpc.peers` (1000 peers each) a listing may take. */
export const MAX_PEERS_PAGES = 10_000;

/**
 * Every peer a superpeer knows, page by page (each page may come from another superpeer). A cursor must
 * move forward; a page starting before it (another superpeer's view) is cut there.
 */
export async function collectPeerPages(
  fetchPage: (cursor: { peerId: string } | undefined) => Promise<PeersReply>,
  maxPages: number = MAX_PEERS_PAGES,
): Promise<PeersReply['peers']> {
  const peers: PeersReply['peers'] = [];
  let cursor: { peerId: string } | undefined;
  for (let page = 0; page < maxPages; page++) {
    const reply = await fetchPage(cursor);
    const from = cursor;
    peers.push(...reply.peers.filter((peer) => !from || peer.peerId >= from.peerId));
    const next = reply.next;
    if (!next) return peers;
    if (from && next.peerId <= from.peerId) {
      throw new P2PError('RPC_ERROR', 'superpeer sent a peers cursor that does not move forward');
    }
    cursor = next;
  }
  throw new P2PError('RPC_ERROR', `more than ${maxPages} pages of peers`);
}
