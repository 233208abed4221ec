import { z } from 'zod';
import { ErrorBodySchema, messageSchema, NodeNameSchema } from './common.js';
import { SearchResultSchema } from './rpc.js';

/*
 * Standing searches ("tell me when someone shares this"). A watcher owns an exclusive, auto-delete queue
 * named `<namespace>.watch.<random>` and publishes `watch.register` / `watch.cancel` to the watches fanout
 * (`N.watches`), which every superpeer consumes through its own queue, so every superpeer knows every
 * watch. Superpeers publish `watch.accepted`, `watch.refused`, `watch.match` and `watch.overflow` to the
 * watcher's queue through the default exchange (routing key = queue name). See docs/protocol.md, "Watches".
 */

/** Same bound as rpc.search's query. */
export const MAX_WATCH_QUERY_LENGTH = 256;
/** A watch is forgotten this long after its last (re)registration unless refreshed; bounds of `leaseMs`. */
export const MIN_WATCH_LEASE_MS = 3000;
export const MAX_WATCH_LEASE_MS = 600_000;
export const DEFAULT_WATCH_LEASE_MS = 30_000;

/** Random id chosen by the watcher, unique within its queue. */
export const WatchIdSchema = z.string().regex(/^[A-Za-z0-9-]{8,64}$/, 'watch id: 8-64 of A-Z a-z 0-9 -');

/** The watcher's own queue: `<namespace>.watch.<suffix>`; superpeers check the namespace part. */
export const WatchQueueSchema = z
  .string()
  .regex(
    /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}\.watch\.[A-Za-z0-9_-]{8,64}$/,
    'queue: <namespace>.watch.<8-64 of A-Z a-z 0-9 _ ->',
  );

/** Start (or refresh) a watch: publish again every `leaseMs`/3 or it expires. Idempotent. */
export const WatchRegisterSchema = messageSchema('watch.register', {
  watchId: WatchIdSchema,
  /** Same syntax as rpc.search: words (each must start a word of the name) or a 64-hex SHA-256. */
  query: z.string().trim().min(1).max(MAX_WATCH_QUERY_LENGTH),
  /** Where superpeers send this watch's notices. */
  queue: WatchQueueSchema,
  leaseMs: z.number().int().min(MIN_WATCH_LEASE_MS).max(MAX_WATCH_LEASE_MS),
  /** Also report files that stop matching (removed, changed, or their peer left). */
  includeRemoved: z.boolean(),
});
export type WatchRegister = z.infer<typeof WatchRegisterSchema>;

/** End a watch at once (otherwise it ends when its lease runs out). */
export const WatchCancelSchema = messageSchema('watch.cancel', {
  watchId: WatchIdSchema,
  queue: WatchQueueSchema,
});
export type WatchCancel = z.infer<typeof WatchCancelSchema>;

/** What the watches exchange carries. */
export const WatchControlSchema = z.discriminatedUnion('type', [WatchRegisterSchema, WatchCancelSchema]);
export type WatchControl = z.infer<typeof WatchControlSchema>;

const reply = { superpeerId: NodeNameSchema, watchId: WatchIdSchema };

/** A superpeer took a watch it did not have (sent once per superpeer and watch, not on every refresh). */
export const WatchAcceptedSchema = messageSchema('watch.accepted', {
  ...reply,
  /** Milliseconds the superpeer keeps the watch without a refresh. */
  leaseMs: z.number().int().min(0),
});
export type WatchAccepted = z.infer<typeof WatchAcceptedSchema>;

/** A superpeer refused a registration: too many watches, a query without words, a foreign queue. */
export const WatchRefusedSchema = messageSchema('watch.refused', { ...reply, error: ErrorBodySchema });
export type WatchRefused = z.infer<typeof WatchRefusedSchema>;

/**
 * A file started (`added`) or stopped (`removed`) matching. Every superpeer sends its own copy: the
 * watcher keeps the first and drops the others by (watchId, event, peerId, instanceId, seq, name, sha256).
 */
export const WatchMatchSchema = messageSchema('watch.match', {
  ...reply,
  event: z.enum(['added', 'removed']),
  file: SearchResultSchema,
  /** The holder's run and the sequence number of the change that made it match (dedup key). */
  instanceId: z.string().max(64),
  seq: z.number().int().min(0),
});
export type WatchMatch = z.infer<typeof WatchMatchSchema>;

/** Matches were dropped because the watch went over its rate; `dropped` counts them since the last notice. */
export const WatchOverflowSchema = messageSchema('watch.overflow', {
  ...reply,
  dropped: z.number().int().min(1),
});
export type WatchOverflow = z.infer<typeof WatchOverflowSchema>;

/**
 * A superpeer that (re)started knows no watch: it asks every watcher, through the watchers fanout
 * (`N.watchers`), to register its watches again now rather than at the next refresh.
 */
export const WatchResyncRequestSchema = messageSchema('watch.resync-request', {
  superpeerId: NodeNameSchema,
});
export type WatchResyncRequest = z.infer<typeof WatchResyncRequestSchema>;

/** A watcher queue name for `namespace` with a random suffix. */
export function watcherQueueName(namespace: string, suffix: string): string {
  return `${namespace}.watch.${suffix}`;
}

/** One superpeer's copy of the watches fanout. */
export function superpeerWatchQueueName(namespace: string, superpeerId: string, instanceId: string): string {
  return `${namespace}.superpeer-watches.${superpeerId}.${instanceId.slice(0, 8)}`;
}
