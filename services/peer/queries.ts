import { v4 as uuidv4 } from 'uuid';
import { describeError } from '../../libs/errors/index.js';
import type { Log } from '../../libs/logging/index.js';
import type { RpcClient } from '../../libs/messaging/index.js';
import {
  collectPeerPages,
  type PeerListAnswer,
  type PeerSearchAnswer,
  PeersReplySchema,
  PROTOCOL_VERSION,
  SearchReplySchema,
  type SearchResult,
} from '../../libs/protocol/index.js';
import { type NetworkIndex, parseQuery } from '../../libs/search/index.js';
import type { NetworkView } from './view.js';

/** What a peer's searches and listings read: its RPC client, its own files, its view of the network. */
export interface QuerySources {
  rpc: Pick<RpcClient, 'call'>;
  /** This peer's own files. */
  local: NetworkIndex;
  view: NetworkView;
  peerId: string;
  name: string;
  /** How long a superpeer has to answer (each page of a listing) before the view answers. */
  timeoutMs: number;
  logger: Log;
}

function named(view: NetworkView, result: SearchResult): SearchResult {
  const peerName = view.nameOf(result.peerId);
  return peerName === undefined ? result : { ...result, peerName };
}

/** Local matches first (as the seed did), then the network's, from a superpeer or else this peer's view. */
export async function searchNetwork(
  sources: QuerySources,
  text: string,
  limit: number,
): Promise<PeerSearchAnswer> {
  const { view, logger } = sources;
  const query = parseQuery(text);
  const local = sources.local.search(query, limit);
  const correlationId = uuidv4();
  let remote: { results: SearchResult[]; truncated: boolean };
  let answer: Omit<PeerSearchAnswer, 'results' | 'truncated'>;
  try {
    remote = await sources.rpc.call(
      { v: PROTOCOL_VERSION, type: 'rpc.search', query: text, limit },
      SearchReplySchema,
      { timeoutMs: sources.timeoutMs, correlationId },
    );
    answer = { source: 'superpeer', stale: false };
  } catch (err) {
    const fromView = view.index.search(query, limit);
    remote = { ...fromView, results: fromView.results.map((result) => named(view, result)) };
    answer = { source: 'network-view', stale: true, superpeerError: describeError(err) };
    logger.warn('no superpeer answered; searched this peer’s own view', {
      correlationId,
      reason: describeError(err),
    });
  }
  logger.debug('searched', { correlationId, source: answer.source, local: local.results.length });
  const merged = [
    ...local.results.map((result) => ({ ...result, peerName: sources.name })),
    ...remote.results.filter((result) => result.peerId !== sources.peerId),
  ];
  return {
    ...answer,
    results: merged.slice(0, limit),
    truncated: local.truncated || remote.truncated || merged.length > limit,
  };
}

/** The peers of this peer's view of the network (no superpeer asked, so no last-seen ages). */
export function viewPeers(view: NetworkView): PeerListAnswer {
  return { source: 'network-view', stale: view.stale, peers: view.peers() };
}

/**
 * The superpeers' listing of the network, which says when each peer was last heard from; this peer's view
 * (without ages) when no superpeer answers.
 */
export async function listNetworkPeers(sources: QuerySources): Promise<PeerListAnswer> {
  try {
    const peers = await collectPeerPages((cursor) =>
      sources.rpc.call(
        { v: PROTOCOL_VERSION, type: 'rpc.peers', ...(cursor ? { cursor } : {}) },
        PeersReplySchema,
        { timeoutMs: sources.timeoutMs },
      ),
    );
    return { source: 'superpeer', stale: false, peers };
  } catch (err) {
    sources.logger.warn('no superpeer listed the peers; answering from this peer’s own view', {
      reason: describeError(err),
    });
    return { ...viewPeers(sources.view), superpeerError: describeError(err) };
  }
}
