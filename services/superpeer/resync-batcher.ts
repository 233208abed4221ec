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
  /** Ids remembered (waiting, or recently asked); also the most one request may name. Default 10_000. */
  maxTracked?: number;
  now?: () => number;
}

/**
 * Asks peers for their full state, in batches and at a bounded rate. Ids come from the network (any client
 * can name any id), so both the waiting set and the memory of recent requests are bounded.
 */
export class ResyncBatcher {
  private readonly publish: (peerIds: string[]) => void;
  private readonly minIntervalMs: number;
  private readonly batchMs: number;
  private readonly perBatch: number;
  private readonly maxTracked: number;
  private readonly now: () => number;
  /** peerId → when it was last asked; insertion order is time order. */
  private readonly lastAsked = new Map<string, number>();
  private readonly waiting = new Set<string>();
  private timer: NodeJS.Timeout | undefined;
  private closed = false;

  constructor(options: ResyncBatcherOptions) {
    this.publish = options.publish;
    this.minIntervalMs = options.minIntervalMs ?? 2000;
    this.batchMs = options.batchMs ?? 100;
    this.perBatch = Math.max(1, Math.floor(((options.maxIdsPerSecond ?? 250) * this.batchMs) / 1000));
    this.maxTracked = options.maxTracked ?? 10_000;
    this.now = options.now ?? Date.now;
  }

  /** Peers waiting for their turn. */
  get pending(): number {
    return this.waiting.size;
  }

  /** Queues a request for `peerId`; false when it was asked recently, is already waiting, or the set is full. */
  request(peerId: string): boolean {
    if (this.closed || this.waiting.has(peerId)) return false;
    const now = this.now();
    const last = this.lastAsked.get(peerId);
    if (last !== undefined && now - last < this.minIntervalMs) return false;
    if (this.waiting.size >= this.maxTracked) return false;
    this.waiting.add(peerId);
    this.schedule();
    return true;
  }

  /** Forgets a peer (it left): a later request for it is not held back. */
  forget(peerId: string): void {
    this.lastAsked.delete(peerId);
    this.waiting.delete(peerId);
  }

  /** Sends the next batch now (at most the per-batch share of the rate); the timer calls it. */
  flush(): void {
    this.timer = undefined;
    if (this.closed || this.waiting.size === 0) return;
    const now = this.now();
    const batch: string[] = [];
    for (const peerId of this.waiting) {
      batch.push(peerId);
      if (batch.length >= this.perBatch) break;
    }
    for (const peerId of batch) {
      this.waiting.delete(peerId);
      this.remember(peerId, now);
    }
    this.publish(batch);
    if (this.waiting.size > 0) this.schedule();
  }

  close(): void {
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    this.waiting.clear();
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
