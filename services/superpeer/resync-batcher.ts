/**
 * Whose request it is. `expected`: an event signed by the key the superpeer holds for that id (a peer
 * registered, or dropped not long ago): nobody else can send one. `unknown`: an id nothing vouches for;
 * anyone can name any id.
 */
export type ResyncLane = 'expected' | 'unknown';

export interface ResyncBatcherOptions {
  /** Sends one resync request naming these peers. */
  publish: (peerIds: string[]) => void;
  /** One peer is asked at most this often. Default 2000. */
  minIntervalMs?: number;
  /** Requests are gathered this long and sent as one message. Default 100. */
  batchMs?: number;
  /**
   * Most peers asked per second, whatever the network sends: after a mass timeout every peer's next
   * heartbeat earns a resync, and each answer is a full state. The rest wait their turn. Default 250.
   */
  maxIdsPerSecond?: number;
  /**
   * Ids remembered: waiting in each lane (a full lane refuses new ids), or recently asked; also the most
   * one request may name. Default 10_000.
   */
  maxTracked?: number;
  now?: () => number;
}

/** The share of each batch kept for unknown ids while they wait, so that expected ones never starve them. */
const UNKNOWN_SHARE = 0.2;

/**
 * Asks peers for their full state, in batches and at a bounded rate. Ids come from the network (any client
 * can name any id), so both the waiting sets and the memory of recent requests are bounded. Expected ids
 * wait apart and go first: made-up ids fill only their own lane, and cannot keep a peer that times out
 * and comes back from being asked (a full lane refuses new ids rather than drop ones admitted: a flood
 * then cannot push out a genuine request already waiting, and the peer's next heartbeat asks again).
 */
export class ResyncBatcher {
  private readonly publish: (peerIds: string[]) => void;
  private readonly minIntervalMs: number;
  private readonly batchMs: number;
  private readonly perBatch: number;
  private readonly unknownReserve: number;
  private readonly maxTracked: number;
  private readonly now: () => number;
  /** peerId → when it was last asked; insertion order is time order. */
  private readonly lastAsked = new Map<string, number>();
  private readonly waiting: Record<ResyncLane, Set<string>> = { expected: new Set(), unknown: new Set() };
  private timer: NodeJS.Timeout | undefined;
  private closed = false;

  constructor(options: ResyncBatcherOptions) {
    this.publish = options.publish;
    this.minIntervalMs = options.minIntervalMs ?? 2000;
    this.batchMs = options.batchMs ?? 100;
    this.maxTracked = options.maxTracked ?? 10_000;
    const perSecond = options.maxIdsPerSecond ?? 250;
    this.perBatch = Math.min(this.maxTracked, Math.max(1, Math.floor((perSecond * this.batchMs) / 1000)));
    this.unknownReserve = Math.floor(this.perBatch * UNKNOWN_SHARE);
    this.now = options.now ?? Date.now;
  }

  /** Peers waiting for their turn, in both lanes. */
  get pending(): number {
    return this.waiting.expected.size + this.waiting.unknown.size;
  }

  /**
   * Queues a request for `peerId` in `lane`; false when it was asked recently, is already waiting (an
   * expected request moves one waiting as unknown to its own lane), or the lane is full.
   */
  request(peerId: string, lane: ResyncLane = 'unknown'): boolean {
    const { expected, unknown } = this.waiting;
    if (this.closed || expected.has(peerId)) return false;
    if (lane === 'unknown' && unknown.has(peerId)) return false;
    const now = this.now();
    const last = this.lastAsked.get(peerId);
    if (last !== undefined && now - last < this.minIntervalMs) return false;
    if (this.waiting[lane].size >= this.maxTracked) return false;
    unknown.delete(peerId);
    this.waiting[lane].add(peerId);
    this.schedule();
    return true;
  }

  /** Forgets a peer (it left): a later request for it is not held back. */
  forget(peerId: string): void {
    this.lastAsked.delete(peerId);
    this.waiting.expected.delete(peerId);
    this.waiting.unknown.delete(peerId);
  }

  /**
   * Sends the next batch now (at most the per-batch share of the rate): expected ids first, but for a
   * share kept for unknown ones while any wait. The timer calls it.
   */
  flush(): void {
    this.timer = undefined;
    if (this.closed || this.pending === 0) return;
    const now = this.now();
    const { expected, unknown } = this.waiting;
    const batch = take(expected, this.perBatch - Math.min(unknown.size, this.unknownReserve));
    batch.push(...take(unknown, this.perBatch - batch.length));
    for (const peerId of batch) this.remember(peerId, now);
    this.publish(batch);
    if (this.pending > 0) this.schedule();
  }

  close(): void {
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    this.waiting.expected.clear();
    this.waiting.unknown.clear();
  }

  private schedule(): void {
    if (this.timer) return;
    this.timer = setTimeout(() => this.flush(), this.batchMs);
    this.timer.unref();
  }

  private remember(peerId: string, now: number): void {
    this.lastAsked.delete(peerId);
    this.lastAsked.set(peerId, now);
    // Oldest first: drop what no longer holds anyone back, then (still full) the oldest memories.
    for (const [id, at] of this.lastAsked) {
      if (this.lastAsked.size <= this.maxTracked && now - at < this.minIntervalMs) break;
      this.lastAsked.delete(id);
    }
  }
}

/** Removes and returns the first `count` ids of `ids` (oldest first). */
function take(ids: Set<string>, count: number): string[] {
  const out: string[] = [];
  for (const id of ids) {
    if (out.length >= count) break;
    out.push(id);
  }
  for (const id of out) ids.delete(id);
  return out;
}
