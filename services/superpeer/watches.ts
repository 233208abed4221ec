import type { FileEntry, WatchCancel, WatchRegister } from '../../libs/protocol/index.js';
import { parseQuery, type Query, tokenize } from '../../libs/search/index.js';
import { TokenBucket } from './token-bucket.js';
import { type ChangedPeer, type Outgoing, WatchNotices } from './watch-notices.js';

export type { ChangedPeer, Outgoing } from './watch-notices.js';

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
  /**
   * Matches all watches together may receive in a burst… Default 5,000. Each watch's own budget times
   * the watches a client can register is millions: a change that matched them all made a superpeer build
   * and send 160,000 notices in one task (seconds, and a gigabyte).
   */
  totalBurst?: number;
  /** …refilled at this many per second. Default 1,000. */
  totalPerSecond?: number;
  /**
   * (file, watch) pairs one change may check. Default 50,000 (some milliseconds). Past it the rest of
   * the change is not matched: each watch it could have concerned counts a dropped match (its next
   * `watch.overflow` says so), so its watcher knows to search.
   */
  checksPerChange?: number;
}

/** One change's matching budget (see `checksPerChange`): from `WatchRegistry.pass()`, closed by `endPass`. */
export class MatchPass {
  /** Watch sets not checked once the checks ran out: each of their watches counts a dropped match. */
  readonly unchecked = new Set<ReadonlySet<unknown>>();
  constructor(public checks: number) {}
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
  /** Its match budget. */
  budget: TokenBucket;
  dropped: number;
}

/** Length of the prefix of a watch's first word that buckets it. */
const BUCKET_CHARS = 3;
/** Watches `mayConcern` checks against a name before it answers yes without looking further. */
const MAY_CONCERN_CHECKS = 256;

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
  /** All watches' matches together (see `totalBurst`). */
  private readonly total: TokenBucket;
  private readonly notices: WatchNotices;

  constructor(options: WatchRegistryOptions) {
    this.options = {
      maxPerQueue: 16,
      maxTotal: 10_000,
      matchBurst: 500,
      matchesPerSecond: 100,
      totalBurst: 5000,
      totalPerSecond: 1000,
      checksPerChange: 50_000,
      ...options,
    };
    this.total = new TokenBucket(this.options.totalBurst, this.options.totalPerSecond, 0);
    this.notices = new WatchNotices(this.options.superpeerId);
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
      budget: new TokenBucket(this.options.matchBurst, this.options.matchesPerSecond, nowMs),
      dropped: 0,
    };
    this.watches.set(key, watch);
    if (mine) mine.add(key);
    else this.perQueue.set(queue, new Set([key]));
    this.index(watch);
    return { kind: 'accepted', notice: this.notices.accepted(watch, message.leaseMs) };
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
        notices.push(this.notices.overflow(watch, watch.dropped));
        watch.dropped = 0;
      }
    }
    return { expired, notices };
  }

  /** True when a file of this name (any content) could match a words watch, or any SHA-256 watch exists. */
  mayConcern(name: string): boolean {
    return this.bySha.size > 0 || this.mayConcernByName(name);
  }

  /** Whether a words watch may match a file of this name (see `mayConcern`). */
  private mayConcernByName(name: string): boolean {
    if (this.byPrefix.size === 0) return false;
    const tokens = tokenize(name);
    const buckets: Array<Set<Watch>> = [];
    this.bucketsOf(tokens, buckets);
    // Checked one by one up to a few hundred watches; past that, assume it may.
    let checks = MAY_CONCERN_CHECKS;
    for (const bucket of buckets) {
      for (const watch of bucket) {
        if (--checks < 0) return true;
        if (wordsMatch(watch, tokens)) return true;
      }
    }
    return false;
  }

  /**
   * Whether a watch matches `file` now (by its content or by its name); spends nothing. Like `mayConcern`,
   * checks at most a few hundred watches and then answers yes.
   */
  concerns(file: FileEntry): boolean {
    return this.bySha.has(file.sha256) || this.mayConcernByName(file.name);
  }

  /** A budget for the matching of one change, to pass to each `match` of it, then to `endPass`. */
  pass(): MatchPass {
    return new MatchPass(this.options.checksPerChange);
  }

  /** Counts a dropped match for each watch the change's checks did not reach (see `checksPerChange`). */
  endPass(pass: MatchPass): void {
    for (const bucket of pass.unchecked) for (const watch of bucket as ReadonlySet<Watch>) watch.dropped++;
    pass.unchecked.clear();
  }

  /**
   * Notices for `files` of `peer` that appeared (`added`) or went away (`removed`). Bounded whatever the
   * watches: at most `totalBurst` notices in a burst, and `checksPerChange` checks for the whole change
   * (`pass`, when the change is matched a file at a time; a call without one is a change of its own).
   */
  match(
    peer: ChangedPeer,
    event: 'added' | 'removed',
    files: readonly FileEntry[],
    nowMs: number,
    pass?: MatchPass,
  ): Outgoing[] {
    if (this.watches.size === 0 || files.length === 0) return [];
    const budget = pass ?? this.pass();
    const out: Outgoing[] = [];
    const buckets: Array<Set<Watch>> = [];
    for (const file of files) {
      buckets.length = 0;
      const bySha = this.bySha.get(file.sha256);
      if (bySha) buckets.push(bySha);
      const tokens = this.byPrefix.size > 0 ? tokenize(file.name) : [];
      this.bucketsOf(tokens, buckets);
      for (const bucket of buckets) {
        if (budget.checks < bucket.size) {
          budget.unchecked.add(bucket);
          continue;
        }
        budget.checks -= bucket.size;
        for (const watch of bucket) {
          if (watch.query.kind === 'words' && !wordsMatch(watch, tokens)) continue;
          if (event === 'removed' && !watch.includeRemoved) continue;
          if (this.spend(watch, nowMs)) out.push(this.notices.match(watch, peer, event, file));
        }
      }
    }
    if (!pass) this.endPass(budget);
    return out;
  }

  /**
   * Pushes to `out` each set of words watches whose first word is a prefix of one of `tokens` (a watch is
   * in one set, by its first word's first characters): a few map lookups per token, each set once.
   */
  private bucketsOf(tokens: readonly string[], out: Array<Set<Watch>>): void {
    for (const token of tokens) {
      for (let length = 1; length <= Math.min(BUCKET_CHARS, token.length); length++) {
        const bucket = this.byPrefix.get(token.slice(0, length));
        if (bucket && !out.includes(bucket)) out.push(bucket);
      }
    }
  }

  /** Takes a match from the watch's budget and from all watches' (a match over either is dropped, counted). */
  private spend(watch: Watch, nowMs: number): boolean {
    if (!watch.budget.has(nowMs) || !this.total.has(nowMs)) {
      watch.dropped++;
      return false;
    }
    watch.budget.take();
    this.total.take();
    return true;
  }

  private refusal(
    message: WatchRegister,
    code: 'WATCH_LIMIT' | 'QUERY_INVALID',
    text: string,
  ): RegisterOutcome {
    return { kind: 'refused', code, message: text, notice: this.notices.refused(message, code, text) };
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
