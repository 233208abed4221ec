import { z } from 'zod';
import {
  FileEntrySchema,
  FileNameSchema,
  HttpUrlSchema,
  InstanceIdSchema,
  NodeNameSchema,
  PeerIdSchema,
  PublicKeySchema,
  refinePeerKey,
  SeqSchema,
} from './common.js';

/*
 * Peer → superpeers, published to the events exchange (fanout). Every body is JSON with `v` and `type`.
 * Every event is signed: header x-p2p-signature holds an Ed25519 signature of the body bytes, made with the
 * key whose public half the peer's announce carries; the peer id is derived from that key (see
 * docs/protocol.md, "Identity").
 */

const base = {
  v: z.literal(1),
  peerId: PeerIdSchema,
  instanceId: InstanceIdSchema,
};

/** Full state of a peer: sent on join, on every (re)connect and when a superpeer asks (resync). */
export const PeerAnnounceSchema = z
  .object({
    ...base,
    type: z.literal('peer.announce'),
    /** Display name chosen by the peer's owner (`PEER_NAME`); not unique, proves nothing. */
    name: NodeNameSchema.optional(),
    /** The peer's HTTP base URL, as other peers reach it. */
    url: HttpUrlSchema,
    /** Sequence number of this state; deltas that follow carry seq+1, seq+2… */
    seq: SeqSchema,
    /** Ed25519 public key, DER (SPKI) in base64; `peerId` must be derived from it. */
    publicKey: PublicKeySchema,
    /** The file list may span several messages: index from 0, count >= 1, all with the same seq. */
    chunkIndex: z.number().int().min(0),
    chunkCount: z.number().int().min(1).max(100_000),
    files: z.array(FileEntrySchema).max(2000),
  })
  .superRefine(refinePeerKey);
export type PeerAnnounce = z.infer<typeof PeerAnnounceSchema>;
export const PEER_ANNOUNCE = 'peer.announce';

/** A change of the share since the state numbered seq-1. */
export const PeerDeltaSchema = z.object({
  ...base,
  type: z.literal('peer.delta'),
  seq: SeqSchema,
  upserted: z.array(FileEntrySchema).max(2000),
  removed: z.array(FileNameSchema).max(2000),
});
export type PeerDelta = z.infer<typeof PeerDeltaSchema>;
export const PEER_DELTA = 'peer.delta';

/** Liveness; `seq` is the sender's latest, so a receiver that is behind can tell and ask for a resync. */
export const PeerHeartbeatSchema = z.object({
  ...base,
  type: z.literal('peer.heartbeat'),
  seq: SeqSchema,
  fileCount: z.number().int().min(0),
});
export type PeerHeartbeat = z.infer<typeof PeerHeartbeatSchema>;
export const PEER_HEARTBEAT = 'peer.heartbeat';

/** Orderly leave (SIGTERM/SIGINT): the peer's files disappear at once. */
export const PeerLeaveSchema = z.object({
  ...base,
  type: z.literal('peer.leave'),
});
export type PeerLeave = z.infer<typeof PeerLeaveSchema>;
export const PEER_LEAVE = 'peer.leave';

export const PeerEventSchema = z.discriminatedUnion('type', [
  PeerAnnounceSchema,
  PeerDeltaSchema,
  PeerHeartbeatSchema,
  PeerLeaveSchema,
]);
export type PeerEvent = z.infer<typeof PeerEventSchema>;
