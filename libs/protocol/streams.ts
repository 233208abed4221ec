import { z } from 'zod';
import * as events from './events.js';
import * as network from './network.js';
import * as watch from './watch.js';

/**
 * What each stream carries, in one table: its consumer decodes the stream's union by `type`, and a message
 * of a type not listed for that stream is refused there.
 */
export const STREAMS = {
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

/**
 * Each stream's union is compiled (`z.compile`: zod's generated fast path, which gives the runtime parser's
 * result for every input and hands an invalid one to that parser for its issues). A join validates a
 * million file entries on the superpeer and again on every peer; compiled, a 1000-file announce
 * validates in 0.36-0.40 ms instead of 0.47-0.52 ms here. Strict: a schema zod could not compile would
 * fail here, at load, instead of quietly running uncompiled.
 */
const STRICT = { strict: true } as const;
export const PeerEventSchema = z.compile(z.discriminatedUnion('type', STREAMS.peerEvents), STRICT);
export type PeerEvent = z.infer<typeof PeerEventSchema>;
export const NetworkMessageSchema = z.compile(z.discriminatedUnion('type', STREAMS.network), STRICT);
export type NetworkMessage = z.infer<typeof NetworkMessageSchema>;
export const WatchNoticeSchema = z.compile(z.discriminatedUnion('type', STREAMS.watchNotices), STRICT);
export type WatchNotice = z.infer<typeof WatchNoticeSchema>;
