import {
  type FileEntry,
  fileUrl,
  PROTOCOL_VERSION,
  type WatchCancel,
  type WatchNotice,
  type WatchRegister,
} from '../../libs/protocol/index.js';
import { parseQuery, type Query, tokenize } from '../../libs/search/index.js';

/*
 * The superpeer's registry of standing searches: pure state and matching, no I/O and no timers (the hub in
 * watch-hub.ts moves messages in and out). Every map here is keyed by what remote clients send, so every
 * one is bounded: watches per queue, watches in all, a lease per watch, a match budget per watch.
 */

export interface WatchRegistryOptions {
  /** Watcher queues must be `<namespace>.watch.…`: a watch cannot aim notices at another network's queues. */
  namespace: string;
  superpeerId: string;
  /** Watches one watcher queue may hold. Default 16. */
  maxPerQueue?: number;
  /** Watches in all. Default 10_000. */
  maxTotal?: number;
  /** Matches one watch may receive in a burst… Default 500. */
  matchBurst?: number;
  /** …refilled at this many per second. Default 100. */
  matchesPerSecond?: number;
}

/** The peer a change comes from, as the index holds it. */
export interface ChangedPeer {
  peerId: string;
  /** The display name the peer announced, if any. */
  name?: string | undefined;
  instanceId: string;
  url: string;
  seq: number;
}

/** One notice for one watcher queue. */
export interface Outgoing {
  queue: string;
  notice: WatchNotice;
}

export type RegisterOutcome =
  | { kind: 'accepted'; notice: Outgoing }
  | { kind: 'refreshed' }
  | {
      kind: 'refused';
      code: 'WATCH_LIMIT' | 'QUERY_INVALID' | 'QUEUE_FOREIGN';
      message: string;
      notice?: Outgoing;
    };

interface Watch {
  key: string;
  watchId: string;
  queue: string;
  query: Query;
  queryText: string;
  includeRemoved: boolean;
  leaseMs: number;
  expiresAtMs: number;
  /** Token bucket of the match budget. */
  tokens: number;
  refilledAtMs: number;
  dropped: number;
}

/** Length of the prefix of a watch's first word that buckets it. */
const BUCKET_CHARS = 3;

function watchKey(queue: string, watchId: string): string {
  return `${queue}\u0000${watchId}`;
}

export class WatchRegistry {
  private readonly options: Required<WatchRegistryOptions>;
  private readonly watches = new Map<string, Watch>();
  private readonly perQueue = new Map<string, Set<string>>();
  /** Words watches, by the first BUCKET_CHARS characters of their first word (or the whole word if shorter). */
  private readonly byPrefix = new Map<string, Set<Watch>>();
  private readonly bySha = new Map<string, Set<Watch>>();

  constructor(options: WatchRegistryOptions) {
    this.options = { maxPerQueue: 16, maxTotal: 10_000, matchBurst: 500, matchesPerSecond: 100, ...options };
  }

  get size(): number {
    return this.watches.size;
  }

  get queueCount(): number {
    return this.perQueue.size;
  }

  /** Registers a new watch or refreshes (and possibly replaces the query of) an existing one. */
  register(message: WatchRegister, nowMs: number): RegisterOutcome {
    const { queue, watchId } = message;
    if (!queue.startsWith(`${this.options.namespace}.watch.`)) {
      // Never answer into a queue outside this network.
      return {
        kind: 'refused',
        code: 'QUEUE_FOREIGN',
        message: `queue is not ${this.options.namespace}.watch.…`,
      };
    }
    let query: Query;
    try {
      query = parseQuery(message.query);
    } catch {
      return this.refusal(message, 'QUERY_INVALID', 'query has no letter or digit to look for');
    }
    const key = watchKey(queue, watchId);
    const existing = this.watches.get(key);
    if (existing) {
      existing.expiresAtMs = nowMs + message.leaseMs;
      existing.leaseMs = message.leaseMs;
      existing.includeRemoved = message.includeRemoved;
      if (existing.queryText !== message.query) {
        this.unindex(existing);
        existing.query = query;
        existing.queryText = message.query;
        this.index(existing);
      }
      return { kind: 'refreshed' };
    }
    const mine = this.perQueue.get(queue);
    if ((mine?.size ?? 0) >= this.options.maxPerQueue) {
      return this.refusal(message, 'WATCH_LIMIT', `at most ${this.options.maxPerQueue} watches per queue`);
    }
    if (this.watches.size >= this.options.maxTotal) {
      return this.refusal(
        message,
        'WATCH_LIMIT',
        `this superpeer holds its maximum of ${this.options.maxTotal} watches`,
      );
    }
    const watch: Watch = {
      key,
      watchId,
      queue,
      query,
      queryText: message.query,
      includeRemoved: message.includeRemoved,
      leaseMs: message.leaseMs,
      expiresAtMs: nowMs + message.leaseMs,
      tokens: this.options.matchBurst,
      refilledAtMs: nowMs,
      dropped: 0,
    };
    this.watches.set(key, watch);
    if (mine) mine.add(key);
    else this.perQueue.set(queue, new Set([key]));
    this.index(watch);
    return {
      kind: 'accepted',
      notice: {
        queue,
        notice: {
          v: PROTOCOL_VERSION,
          type: 'watch.accepted',
          superpeerId: this.options.superpeerId,
          watchId,
          leaseMs: message.leaseMs,
        },
      },
    };
  }

  cancel(message: WatchCancel): boolean {
    const watch = this.watches.get(watchKey(message.queue, message.watchId));
    if (!watch) return false;
    this.remove(watch);
    return true;
  }

  /** Forgets every watch of a queue (its owner is gone: a notice to it came back unroutable). */
  dropQueue(queue: string): number {
    const keys = this.perQueue.get(queue);
    if (!keys) return 0;
    let count = 0;
    for (const key of [...keys]) {
      const watch = this.watches.get(key);
      if (watch) {
        this.remove(watch);
        count++;
      }
    }
    return count;
  }

  /**
   * Periodic upkeep: drops watches whose lease ran out, and reports each watch that dropped matches since
   * the last call (a `watch.overflow` notice).
   */
  tick(nowMs: number): { expired: number; notices: Outgoing[] } {
    let expired = 0;
    const notices: Outgoing[] = [];
    for (const watch of [...this.watches.values()]) {
      if (watch.expiresAtMs <= nowMs) {
        this.remove(watch);
        expired++;
        continue;
      }
      if (watch.dropped > 0) {
        notices.push({
          queue: watch.queue,
          notice: {
            v: PROTOCOL_VERSION,
            type: 'watch.overflow',
            superpeerId: this.options.superpeerId,
            watchId: watch.watchId,
            dropped: watch.dropped,
          },
        });
        watch.dropped = 0;
      }
    }
    return { expired, notices };
  }

  /** True when a file of this name (any content) could match a words watch, or any SHA-256 watch exists. */
  mayConcern(name: string): boolean {
    if (this.bySha.size > 0) return true;
    if (this.byPrefix.size === 0) return false;
    const tokens = tokenize(name);
    for (const watch of this.candidates(tokens)) if (wordsMatch(watch, tokens)) return true;
    return false;
  }

  /** Notices for `files` of `peer` that appeared (`added`) or went away (`removed`). */
  match(
    peer: ChangedPeer,
    event: 'added' | 'removed',
    files: readonly FileEntry[],
    nowMs: number,
  ): Outgoing[] {
    if (this.watches.size === 0 || files.length === 0) return [];
    const out: Outgoing[] = [];
    for (const file of files) {
      const hits = new Set<Watch>();
      for (const watch of this.bySha.get(file.sha256) ?? []) hits.add(watch);
      if (this.byPrefix.size > 0) {
        const tokens = tokenize(file.name);
        for (const watch of this.candidates(tokens)) if (wordsMatch(watch, tokens)) hits.add(watch);
      }
      for (const watch of hits) {
        if (event === 'removed' && !watch.includeRemoved) continue;
        if (!this.spend(watch, nowMs)) continue;
        out.push({
          queue: watch.queue,
          notice: {
            v: PROTOCOL_VERSION,
            type: 'watch.match',
            superpeerId: this.options.superpeerId,
            watchId: watch.watchId,
            event,
            file: {
              name: file.name,
              size: file.size,
              sha256: file.sha256,
              peerId: peer.peerId,
              ...(peer.name !== undefined ? { peerName: peer.name } : {}),
              url: fileUrl(peer.url, file.name),
            },
            instanceId: peer.instanceId,
            seq: peer.seq,
          },
        });
      }
    }
    return out;
  }

  /** Words watches whose first word is a prefix of one of `tokens`: a few map lookups per token. */
  private candidates(tokens: readonly string[]): Set<Watch> {
    const found = new Set<Watch>();
    for (const token of new Set(tokens)) {
      for (let length = 1; length <= Math.min(BUCKET_CHARS, token.length); length++) {
        const bucket = this.byPrefix.get(token.slice(0, length));
        if (bucket) for (const watch of bucket) found.add(watch);
      }
    }
    return found;
  }

  private spend(watch: Watch, nowMs: number): boolean {
    const elapsedMs = Math.max(0, nowMs - watch.refilledAtMs);
    watch.tokens = Math.min(
      this.options.matchBurst,
      watch.tokens + (elapsedMs * this.options.matchesPerSecond) / 1000,
    );
    watch.refilledAtMs = nowMs;
    if (watch.tokens < 1) {
      watch.dropped++;
      return false;
    }
    watch.tokens -= 1;
    return true;
  }

  private refusal(
    message: WatchRegister,
    code: 'WATCH_LIMIT' | 'QUERY_INVALID',
    text: string,
  ): RegisterOutcome {
    return {
      kind: 'refused',
      code,
      message: text,
      notice: {
        queue: message.queue,
        notice: {
          v: PROTOCOL_VERSION,
          type: 'watch.refused',
          superpeerId: this.options.superpeerId,
          watchId: message.watchId,
          error: { code, message: text },
        },
      },
    };
  }

  private index(watch: Watch): void {
    if (watch.query.kind === 'sha256') {
      addTo(this.bySha, watch.query.sha256, watch);
      return;
    }
    addTo(this.byPrefix, watch.query.words[0]!.slice(0, BUCKET_CHARS), watch);
  }

  private unindex(watch: Watch): void {
    if (watch.query.kind === 'sha256') deleteFrom(this.bySha, watch.query.sha256, watch);
    else deleteFrom(this.byPrefix, watch.query.words[0]!.slice(0, BUCKET_CHARS), watch);
  }

  private remove(watch: Watch): void {
    this.unindex(watch);
    this.watches.delete(watch.key);
    const keys = this.perQueue.get(watch.queue);
    keys?.delete(watch.key);
    if (keys && keys.size === 0) this.perQueue.delete(watch.queue);
  }
}

/** Same rule as the index: every query word is a prefix of some token of the name. */
function wordsMatch(watch: Watch, tokens: readonly string[]): boolean {
  if (watch.query.kind !== 'words') return false;
  return watch.query.words.every((word) => tokens.some((token) => token.startsWith(word)));
}

function addTo<K>(map: Map<K, Set<Watch>>, key: K, watch: Watch): void {
  const set = map.get(key);
  if (set) set.add(watch);
  else map.set(key, new Set([watch]));
}

function deleteFrom<K>(map: Map<K, Set<Watch>>, key: K, watch: Watch): void {
  const set = map.get(key);
  if (!set) return;
  set.delete(watch);
  if (set.size === 0) map.delete(key);
}
