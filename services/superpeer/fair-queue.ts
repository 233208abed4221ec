import { P2PError } from '../../libs/errors/index.js';
import { turnSpent } from '../../libs/search/index.js';

export interface FairQueueOptions {
  /** Requests of one client waiting at once; past it the client is told it is over. Default 8. */
  maxPerClient?: number;
  /** Requests waiting or running, all clients together. Default 1024. */
  maxQueued?: number;
  /**
   * Longest run of requests in one task before the event loop gets a turn (new requests come in, and
   * over-cap ones are answered, only then). Default 2.
   */
  sliceMs?: number;
}

interface Job {
  run: () => Promise<void>;
  refuse: (err: P2PError) => void;
}

/**
 * Serves requests one at a time, taking one from each client in turn (round robin), so that a client
 * flooding the queue delays the others by at most one of its requests per turn, never by its backlog.
 * Each client has a bounded lane: a request over its lane's cap, or over the total cap, is refused at once
 * with LIMIT_EXCEEDED (an answer costs little; the request leaves the broker's prefetch window at once).
 * A request that finds nothing under way starts at once (no added latency when there is no contention).
 */
export class FairQueue {
  /** client → its waiting requests; a Map keeps the round-robin order (a served client goes to the end). */
  private readonly lanes = new Map<string, Job[]>();
  private queued = 0;
  private pumping = false;
  private readonly maxPerClient: number;
  private readonly maxQueued: number;
  private readonly sliceMs: number;

  constructor(options: FairQueueOptions = {}) {
    this.maxPerClient = Math.max(1, options.maxPerClient ?? 8);
    this.maxQueued = Math.max(1, options.maxQueued ?? 1024);
    this.sliceMs = options.sliceMs ?? 2;
  }

  /** Requests waiting or running. */
  get size(): number {
    return this.queued;
  }

  /** Clients with requests waiting. */
  get clients(): number {
    return this.lanes.size;
  }

  /** Runs `task` in `client`'s turn; rejects with LIMIT_EXCEEDED when the client's lane or the queue is full. */
  run<T>(client: string, task: () => Promise<T> | T): Promise<T> {
    const lane = this.lanes.get(client);
    if ((lane?.length ?? 0) >= this.maxPerClient) {
      return Promise.reject(
        new P2PError(
          'LIMIT_EXCEEDED',
          `busy: more than ${this.maxPerClient} requests of this client waiting`,
        ),
      );
    }
    if (this.queued >= this.maxQueued && !this.evictFromLongestLane(lane?.length ?? 0)) {
      return Promise.reject(new P2PError('LIMIT_EXCEEDED', `busy: ${this.queued} requests waiting`));
    }
    return new Promise<T>((resolve, reject) => {
      const job: Job = {
        run: async () => {
          try {
            resolve(await task());
          } catch (err) {
            reject(err);
          }
        },
        refuse: (err) => reject(err),
      };
      if (lane) lane.push(job);
      else this.lanes.set(client, [job]);
      this.queued++;
      if (!this.pumping) {
        // Nothing under way: this one starts at once; those arriving while it runs (the rest of the same
        // read from the socket, say) wait in their lanes and are taken in turn.
        this.pumping = true;
        void this.pump();
      }
    });
  }

  /**
   * With the queue full, the newest request of the client with the most waiting makes room (refused), if
   * that client has more waiting than the newcomer's would then: a flood cannot lock the others out.
   */
  private evictFromLongestLane(newcomerWaiting: number): boolean {
    let longest: Job[] | undefined;
    for (const lane of this.lanes.values()) if (lane.length > (longest?.length ?? 0)) longest = lane;
    if (!longest || longest.length <= newcomerWaiting + 1) return false;
    longest.pop()!.refuse(new P2PError('LIMIT_EXCEEDED', 'busy: made room for a client with fewer waiting'));
    this.queued--;
    return true;
  }

  /** Serves one request of each client in turn until none waits, yielding every `sliceMs`. */
  private async pump(): Promise<void> {
    try {
      for (;;) {
        const next = this.lanes.entries().next();
        if (next.done) return;
        const [client, lane] = next.value;
        const job = lane.shift()!;
        // To the back of the line, if it has more waiting.
        this.lanes.delete(client);
        if (lane.length > 0) this.lanes.set(client, lane);
        try {
          await job.run();
        } finally {
          this.queued--;
        }
        // The turn is shared with the index's slices and the reads (see turnSpent).
        if (turnSpent(this.sliceMs)) await new Promise<void>((resolve) => setImmediate(resolve));
      }
    } finally {
      this.pumping = false;
    }
  }
}
