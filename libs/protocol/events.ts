import { z } from 'zod';
import {
  FileListSchema,
  FileNameListSchema,
  HttpUrlSchema,
  InstanceIdSchema,
  messageSchema,
  NodeNameSchema,
  PeerIdSchema,
  PROTOCOL_VERSION,
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
  peerId: PeerIdSchema,
  instanceId: InstanceIdSchema,
};

/**
 * The fields of a peer's full state, before the check that its id is derived from its key; the superpeers'
 * `network.peer-state` carries the same fields.
 */
export const PeerAnnounceFieldsSchema = messageSchema('peer.announce', {
  ...base,
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
  files: FileListSchema,
});

/** Full state of a peer: sent on join, on every (re)connect and when a superpeer asks (resync). */
export const PeerAnnounceSchema = PeerAnnounceFieldsSchema.refine(...refinePeerKey);
export type PeerAnnounce = z.infer<typeof PeerAnnounceSchema>;

/** A change of the share since the state numbered seq-1. */
export const PeerDeltaSchema = messageSchema('peer.delta', {
  ...base,
  seq: SeqSchema,
  upserted: FileListSchema,
  removed: FileNameListSchema,
});
export type PeerDelta = z.infer<typeof PeerDeltaSchema>;

/** Liveness; `seq` is the sender's latest, so a receiver that is behind can tell and ask for a resync. */
export const PeerHeartbeatSchema = messageSchema('peer.heartbeat', {
  ...base,
  seq: SeqSchema,
  fileCount: z.number().int().min(0),
  /**
   * This heartbeat's number in its run (1, 2, 3…): a superpeer counts a heartbeat only when its number is
   * above the last it counted for that run, so a copy replayed later keeps nobody alive. Optional for
   * clients written before it; a run that sent one must send it on every heartbeat.
   */
  beat: SeqSchema.optional(),
});
export type PeerHeartbeat = z.infer<typeof PeerHeartbeatSchema>;

/** Orderly leave (SIGTERM/SIGINT): the peer's files disappear at once. */
export const PeerLeaveSchema = messageSchema('peer.leave', base);
export type PeerLeave = z.infer<typeof PeerLeaveSchema>;
/** A message's own fields: what its builder adds is the protocol version and the type. */
type Fields<T> = Omit<T, 'v' | 'type'>;

/** Builds each peer event with the protocol version and its type. */
export const peerEvent = {
  announce: (fields: Fields<PeerAnnounce>): PeerAnnounce => ({
    v: PROTOCOL_VERSION,
    type: 'peer.announce',
    ...fields,
  }),
  delta: (fields: Fields<PeerDelta>): PeerDelta => ({ v: PROTOCOL_VERSION, type: 'peer.delta', ...fields }),
  heartbeat: (fields: Fields<PeerHeartbeat>): PeerHeartbeat => ({
    v: PROTOCOL_VERSION,
    type: 'peer.heartbeat',
    ...fields,
  }),
  leave: (fields: Fields<PeerLeave>): PeerLeave => ({ v: PROTOCOL_VERSION, type: 'peer.leave', ...fields }),
};
