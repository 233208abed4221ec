import { P2PError } from '../../libs/errors/index.js';
import {
  MAX_FILES_PER_MESSAGE,
  MAX_PEERS_PER_PAGE,
  type PeerSummary,
  type PeersReply,
  type PeersRequest,
  PROTOCOL_VERSION,
  type RpcRequest,
  type SearchReply,
  type SnapshotPeer,
  type SnapshotReply,
  type SnapshotRequest,
} from '../../libs/protocol/index.js';
import { type IndexedPeer, lowerBoundBy, type NetworkIndex, parseQuery } from '../../libs/search/index.js';
import type { PeerRegistry } from './registry.js';

/** What a snapshot page says of a peer besides its index entry: the key its id derives from, its name. */
export interface PeerIdentityFacts {
  publicKey: string;
  name?: string | undefined;
}

/** Files per snapshot page (a page may hold several small peers). */
export const SNAPSHOT_PAGE_FILES = MAX_FILES_PER_MESSAGE;
/** Peers per `rpc.peers` page. */
export const PEERS_PAGE_SIZE = MAX_PEERS_PER_PAGE;

/** Pages walk peers in id order: `index.peers()` is sorted by id. */
const peerIdOf = (peer: IndexedPeer): string => peer.peerId;

/**
 * One page of the index for `rpc.snapshot`: peers by id order from the cursor, files by name order, at most
 * `pageFiles` files per page; a peer larger than a page spans several (`fileOffset`).
 */
export function snapshotPage(
  index: NetworkIndex,
  request: Pick<SnapshotRequest, 'peerId' | 'cursor'>,
  identityOf: (peerId: string) => PeerIdentityFacts | undefined,
  pageFiles: number = SNAPSHOT_PAGE_FILES,
): Pick<SnapshotReply, 'peers' | 'next'> {
  let all: IndexedPeer[];
  if (request.peerId) {
    const one = index.getPeer(request.peerId);
    all = one ? [one] : [];
  } else {
    all = index.peers();
  }
  let start = 0;
  let fileOffset = 0;
  if (request.cursor) {
    start = lowerBoundBy(all, request.cursor.peerId, peerIdOf);
    if (all[start]?.peerId === request.cursor.peerId) fileOffset = request.cursor.fileOffset;
  }
  const peers: SnapshotPeer[] = [];
  let budget = pageFiles;
  let next: SnapshotReply['next'];
  for (let i = start; i < all.length; i++) {
    const peer = all[i]!;
    const offset = i === start ? fileOffset : 0;
    const identity = identityOf(peer.peerId);
    if (!identity) continue; // registered together with its index entry; never apart
    const files = index.peerFiles(peer.peerId, offset, budget);
    peers.push({
      peerId: peer.peerId,
      publicKey: identity.publicKey,
      ...(identity.name !== undefined ? { name: identity.name } : {}),
      instanceId: peer.instanceId,
      url: peer.url,
      seq: peer.seq,
      fileOffset: offset,
      fileTotal: peer.fileCount,
      files,
    });
    budget -= files.length;
    if (offset + files.length < peer.fileCount) {
      next = { peerId: peer.peerId, fileOffset: offset + files.length };
      break;
    }
    if (budget <= 0 && i + 1 < all.length) {
      next = { peerId: all[i + 1]!.peerId, fileOffset: 0 };
      break;
    }
  }
  return next ? { peers, next } : { peers };
}

/** One page of `rpc.peers`: peers by id order from the cursor's id (inclusive), at most `pageSize`. */
export function peersPage(
  index: NetworkIndex,
  request: Pick<PeersRequest, 'cursor'>,
  lastSeenAgoMs: (peerId: string) => number,
  pageSize: number = PEERS_PAGE_SIZE,
  nameOf: (peerId: string) => { name?: string } = () => ({}),
): { peers: PeerSummary[]; next?: { peerId: string } } {
  const all = index.peers();
  const start = request.cursor ? lowerBoundBy(all, request.cursor.peerId, peerIdOf) : 0;
  const page = all.slice(start, start + pageSize);
  const peers = page.map((peer) => ({
    ...peer,
    ...nameOf(peer.peerId),
    lastSeenAgoMs: lastSeenAgoMs(peer.peerId),
  }));
  const following = all[start + pageSize];
  return following ? { peers, next: { peerId: following.peerId } } : { peers };
}

/** The reply to one RPC request, from the index and the registry. */
export function answerRpc(
  index: NetworkIndex,
  registry: PeerRegistry,
  superpeerId: string,
  request: RpcRequest,
): SearchReply | PeersReply | SnapshotReply {
  const base = { v: PROTOCOL_VERSION, ok: true, superpeerId } as const;
  switch (request.type) {
    case 'rpc.search': {
      const { results, truncated, partial } = index.search(parseQuery(request.query), request.limit);
      // Named in place: the results are this reply's own objects (a copy of each took a third of the search).
      for (const result of results) {
        const name = registry.get(result.peerId)?.name;
        if (name !== undefined) result.peerName = name;
      }
      return {
        ...base,
        type: 'rpc.search',
        results,
        truncated,
        partial,
        indexedFiles: index.fileCount,
        indexedPeers: index.peerCount,
      };
    }
    case 'rpc.peers': {
      const now = Date.now();
      const page = peersPage(
        index,
        request,
        (peerId) => registry.lastSeenAgoMs(peerId, now),
        PEERS_PAGE_SIZE,
        (peerId) => registry.nameOf(peerId),
      );
      return { ...base, type: 'rpc.peers', ...page };
    }
    case 'rpc.snapshot':
      return {
        ...base,
        type: 'rpc.snapshot',
        ...snapshotPage(index, request, (peerId) => registry.get(peerId)),
      };
    default:
      throw new P2PError('MESSAGE_INVALID', 'unknown request type');
  }
}
