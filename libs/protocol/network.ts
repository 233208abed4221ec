import { z } from 'zod';
import { messageSchema, NodeNameSchema, PeerIdSchema, refinePeerKey } from './common.js';
import { PeerAnnounceFieldsSchema, PeerDeltaSchema, PeerLeaveSchema } from './events.js';

/*
 * Superpeer → every peer, published to the network exchange (fanout). Several superpeers may publish the
 * same change; receivers apply a change once, by (peerId, instanceId, seq). A peer's state, change and
 * leave travel on as the peer sent them (the `peer.*` fields), with the superpeer that accepted them.
 */

const base = {
  /** The superpeer that published this. */
  superpeerId: NodeNameSchema,
};

/**
 * A peer's whole state, as the superpeer accepted it (after a join or a resync). May span several chunks.
 * Carries the peer's public key, so every receiver checks that the id is derived from it.
 */
export const NetworkPeerStateSchema = PeerAnnounceFieldsSchema.extend({
  ...base,
  type: z.literal('network.peer-state'),
}).refine(...refinePeerKey);
export type NetworkPeerState = z.infer<typeof NetworkPeerStateSchema>;

/** A peer's change, as the superpeer accepted it. */
export const NetworkPeerDeltaSchema = PeerDeltaSchema.extend({
  ...base,
  type: z.literal('network.peer-delta'),
});
export type NetworkPeerDelta = z.infer<typeof NetworkPeerDeltaSchema>;

/** A peer left (orderly) or went silent past the timeout. */
export const NetworkPeerLeftSchema = PeerLeaveSchema.extend({
  ...base,
  type: z.literal('network.peer-left'),
  reason: z.enum(['leave', 'timeout']),
});
export type NetworkPeerLeft = z.infer<typeof NetworkPeerLeftSchema>;

/**
 * A superpeer asks peers to publish their full state again (peer.announce): all of them when `peerIds` is
 * absent (a superpeer that just started or reconnected), or the listed ones (a gap in their sequence).
 */
export const NetworkResyncRequestSchema = messageSchema('network.resync-request', {
  ...base,
  peerIds: z.array(PeerIdSchema).max(10_000).optional(),
});
export type NetworkResyncRequest = z.infer<typeof NetworkResyncRequestSchema>;

/**
 * A superpeer's liveness on the network stream, every `intervalMs`. A peer that heard ticks and then hears
 * none for a few intervals knows its copy of the stream is broken (its binding or the exchange was deleted,
 * or no superpeer runs): its view is stale until the stream is back and the view reloaded.
 */
export const NetworkTickSchema = messageSchema('network.tick', {
  ...base,
  /** Counts this superpeer process's ticks from 1: a number skipped means ticks were lost on the way. */
  seq: z.number().int().min(1),
  intervalMs: z.number().int().min(100).max(600_000),
});
export type NetworkTick = z.infer<typeof NetworkTickSchema>;
