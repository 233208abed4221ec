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
 * Superpeer → every peer, published to the network exchange (fanout). Several superpeers may publish the
 * same change; receivers apply a change once, by (peerId, instanceId, seq).
 */

const base = {
  v: z.literal(1),
  /** The superpeer that published this. */
  superpeerId: NodeNameSchema,
};

/**
 * A peer's whole state, as the superpeer accepted it (after a join or a resync). May span several chunks.
 * Carries the peer's public key, so every receiver checks that the id is derived from it.
 */
export const NetworkPeerStateSchema = z
  .object({
    ...base,
    type: z.literal('network.peer-state'),
    peerId: PeerIdSchema,
    publicKey: PublicKeySchema,
    name: NodeNameSchema.optional(),
    instanceId: InstanceIdSchema,
    url: HttpUrlSchema,
    seq: SeqSchema,
    chunkIndex: z.number().int().min(0),
    chunkCount: z.number().int().min(1).max(100_000),
    files: z.array(FileEntrySchema).max(2000),
  })
  .superRefine(refinePeerKey);
export type NetworkPeerState = z.infer<typeof NetworkPeerStateSchema>;

/** A peer's change, as the superpeer accepted it. */
export const NetworkPeerDeltaSchema = z.object({
  ...base,
  type: z.literal('network.peer-delta'),
  peerId: PeerIdSchema,
  instanceId: InstanceIdSchema,
  seq: SeqSchema,
  upserted: z.array(FileEntrySchema).max(2000),
  removed: z.array(FileNameSchema).max(2000),
});
export type NetworkPeerDelta = z.infer<typeof NetworkPeerDeltaSchema>;

/** A peer left (orderly) or went silent past the timeout. */
export const NetworkPeerLeftSchema = z.object({
  ...base,
  type: z.literal('network.peer-left'),
  peerId: PeerIdSchema,
  instanceId: InstanceIdSchema,
  reason: z.enum(['leave', 'timeout']),
});
export type NetworkPeerLeft = z.infer<typeof NetworkPeerLeftSchema>;

/**
 * A superpeer asks peers to publish their full state again (peer.announce): all of them when `peerIds` is
 * absent (a superpeer that just started or reconnected), or the listed ones (a gap in their sequence).
 */
export const NetworkResyncRequestSchema = z.object({
  ...base,
  type: z.literal('network.resync-request'),
  peerIds: z.array(PeerIdSchema).max(10_000).optional(),
});
export type NetworkResyncRequest = z.infer<typeof NetworkResyncRequestSchema>;

/**
 * A superpeer's liveness on the network stream, every `intervalMs`. A peer that heard ticks and then hears
 * none for a few intervals knows its copy of the stream is broken (its binding or the exchange was deleted,
 * or no superpeer runs): its view is stale until the stream is back and the view reloaded.
 */
export const NetworkTickSchema = z.object({
  ...base,
  type: z.literal('network.tick'),
  /** Counts this superpeer process's ticks from 1: a number skipped means ticks were lost on the way. */
  seq: z.number().int().min(1),
  intervalMs: z.number().int().min(100).max(600_000),
});
export type NetworkTick = z.infer<typeof NetworkTickSchema>;

export const NetworkMessageSchema = z.discriminatedUnion('type', [
  NetworkPeerStateSchema,
  NetworkPeerDeltaSchema,
  NetworkPeerLeftSchema,
  NetworkResyncRequestSchema,
  NetworkTickSchema,
]);
export type NetworkMessage = z.infer<typeof NetworkMessageSchema>;
