import { z } from 'zod';
import * as events from './events.js';
import * as network from './network.js';
import * as watch from './watch.js';

/**
 * What each stream carries, in one table: its consumer decodes the stream's union by `type`, and a message
 * of a type not listed for that stream is refused there.
 */
const STREAMS = {
  /** `N.events`: what peers publish. */
  peerEvents: [
    events.PeerAnnounceSchema,
    events.PeerDeltaSchema,
    events.PeerHeartbeatSchema,
    events.PeerLeaveSchema,
  ],
  /** `N.network`: what superpeers broadcast to every peer. */
  network: [
    network.NetworkPeerStateSchema,
    network.NetworkPeerDeltaSchema,
    network.NetworkPeerLeftSchema,
    network.NetworkResyncRequestSchema,
    network.NetworkTickSchema,
  ],
  /** A watcher's queue. */
  watchNotices: [
    watch.WatchAcceptedSchema,
    watch.WatchRefusedSchema,
    watch.WatchMatchSchema,
    watch.WatchOverflowSchema,
    watch.WatchResyncRequestSchema,
  ],
} as const;

export const PeerEventSchema = z.discriminatedUnion('type', STREAMS.peerEvents);
export type PeerEvent = z.infer<typeof PeerEventSchema>;
export const NetworkMessageSchema = z.discriminatedUnion('type', STREAMS.network);
export type NetworkMessage = z.infer<typeof NetworkMessageSchema>;
export const WatchNoticeSchema = z.discriminatedUnion('type', STREAMS.watchNotices);
export type WatchNotice = z.infer<typeof WatchNoticeSchema>;
