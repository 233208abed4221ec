import { z } from 'zod';
import {
  ErrorBodySchema,
  FileEntrySchema,
  FileNameSchema,
  HttpUrlSchema,
  messageSchema,
  NodeNameSchema,
  PeerIdSchema,
  PublicKeySchema,
  refinePeerKey,
  Sha256Schema,
  VersionSchema,
} from './common.js';
import { PeerAnnounceFieldsSchema } from './events.js';

/*
 * Requests go to the rpc queue with `reply_to` and `correlation_id` (AMQP properties) and an `expiration`
 * equal to the caller's timeout. The reply goes to `reply_to` with the same `correlation_id`.
 */

/**
 * A request body larger than this is refused unparsed (bytes). The largest request is a search of 256
 * characters, some hundreds of bytes; the 4 MiB bound of other messages let one request hold the
 * superpeer's thread for the whole parse.
 */
export const MAX_RPC_REQUEST_BYTES = 64 * 1024;

export const DEFAULT_SEARCH_LIMIT = 50;
export const MAX_SEARCH_LIMIT = 1000;
/** Most peers in one `rpc.peers` page (docs/protocol.md); a reply with more is refused. */
export const MAX_PEERS_PER_PAGE = 1000;

/** Words (every word must start a word of the file name, case-insensitive) or a 64-hex SHA-256. */
export const SearchRequestSchema = messageSchema('rpc.search', {
  query: z.string().trim().min(1).max(256),
  limit: z.number().int().min(1).max(MAX_SEARCH_LIMIT).default(DEFAULT_SEARCH_LIMIT),
});
export type SearchRequest = z.input<typeof SearchRequestSchema>;

/**
 * The peers the superpeer knows, a page at a time by peer id order (at most 1000 per page). Start with no
 * cursor; pass the reply's `next` as `cursor` until a reply has no `next`.
 */
export const PeersRequestSchema = messageSchema('rpc.peers', {
  cursor: z.object({ peerId: PeerIdSchema }).optional(),
});
export type PeersRequest = z.infer<typeof PeersRequestSchema>;

/**
 * A page of the superpeer's whole index, for a peer building its view. Pages go by peer id order; a peer
 * with more files than a page spans several (`fileOffset`). Start with no cursor; stop when `next` is absent.
 */
export const SnapshotRequestSchema = messageSchema('rpc.snapshot', {
  /** Only this peer (used to repair a gap in one peer's sequence). */
  peerId: PeerIdSchema.optional(),
  cursor: z.object({ peerId: PeerIdSchema, fileOffset: z.number().int().min(0) }).optional(),
});
export type SnapshotRequest = z.infer<typeof SnapshotRequestSchema>;

export const RpcRequestSchema = z.discriminatedUnion('type', [
  SearchRequestSchema,
  PeersRequestSchema,
  SnapshotRequestSchema,
]);
export type RpcRequest = z.infer<typeof RpcRequestSchema>;

export const SearchResultSchema = z.object({
  name: FileNameSchema,
  /** Bytes. */
  size: z.number().int().min(0),
  sha256: Sha256Schema,
  peerId: PeerIdSchema,
  /** The holder's display name, when it announced one. */
  peerName: NodeNameSchema.optional(),
  /** Direct download URL (HTTP GET, Range supported). */
  url: HttpUrlSchema,
});
export type SearchResult = z.infer<typeof SearchResultSchema>;

/** What a peer's listing and a snapshot page say of each peer, as the peer announced it. */
const PeerStateSchema = PeerAnnounceFieldsSchema.pick({
  peerId: true,
  name: true,
  instanceId: true,
  url: true,
  seq: true,
});

export const PeerSummarySchema = PeerStateSchema.extend({
  fileCount: z.number().int().min(0),
  totalBytes: z.number().int().min(0),
  /** Milliseconds since the superpeer last heard from the peer. */
  lastSeenAgoMs: z.number().min(0),
});
export type PeerSummary = z.infer<typeof PeerSummarySchema>;

export const SnapshotPeerSchema = PeerStateSchema.extend({
  /** The key the id is derived from: the receiver checks it. */
  publicKey: PublicKeySchema,
  /** Offset of `files` in the peer's whole list, and that list's length. */
  fileOffset: z.number().int().min(0),
  fileTotal: z.number().int().min(0),
  files: z.array(FileEntrySchema),
}).refine(...refinePeerKey);
export type SnapshotPeer = z.infer<typeof SnapshotPeerSchema>;

const ok = { ok: z.literal(true), superpeerId: NodeNameSchema };

export const SearchReplySchema = messageSchema('rpc.search', {
  ...ok,
  results: z.array(SearchResultSchema),
  /** True when `results` may not hold every match: more matches existed than `limit`, or `partial`. */
  truncated: z.boolean(),
  /**
   * True when the search ran out of its work budget before it had looked at every candidate, so other
   * matches may exist (then `truncated` is true too). Absent from older superpeers: read absent as false.
   */
  partial: z.boolean().optional(),
  /** Files and peers in the index that answered. */
  indexedFiles: z.number().int().min(0),
  indexedPeers: z.number().int().min(0),
});
export type SearchReply = z.infer<typeof SearchReplySchema>;

export const PeersReplySchema = messageSchema('rpc.peers', {
  ...ok,
  peers: z.array(PeerSummarySchema).max(MAX_PEERS_PER_PAGE),
  /** Where the next page starts; absent on the last page. */
  next: z.object({ peerId: PeerIdSchema }).optional(),
});
export type PeersReply = z.infer<typeof PeersReplySchema>;

/** Compiled like the streams' unions (streams.ts): a peer loading a snapshot reads a million files too. */
export const SnapshotReplySchema = z.compile(
  messageSchema('rpc.snapshot', {
    ...ok,
    peers: z.array(SnapshotPeerSchema),
    next: z.object({ peerId: PeerIdSchema, fileOffset: z.number().int().min(0) }).optional(),
  }),
  { strict: true },
);
export type SnapshotReply = z.infer<typeof SnapshotReplySchema>;

/** Any request that could not be served: invalid, unknown type, or a failure while serving. */
export const ErrorReplySchema = z.object({
  v: VersionSchema,
  ok: z.literal(false),
  superpeerId: NodeNameSchema.optional(),
  error: ErrorBodySchema,
});
export type ErrorReply = z.infer<typeof ErrorReplySchema>;

export const RpcReplySchema = z.union([
  SearchReplySchema,
  PeersReplySchema,
  SnapshotReplySchema,
  ErrorReplySchema,
]);
export type RpcReply = z.infer<typeof RpcReplySchema>;
