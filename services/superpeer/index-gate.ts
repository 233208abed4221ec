import { P2PError } from '../../libs/errors/index.js';
import { turnSpent } from '../../libs/search/index.js';

export interface IndexGateOptions {
  /** Reads waiting for the running update, at most; past it a read is refused (LIMIT_EXCEEDED). Default 10_000. */
  maxWaitingReads?: number;
  /** Updates queued (running one included), at most; past it an update is refused (LIMIT_EXCEEDED). Default 100_000. */
  maxQueuedUpdates?: number;
  /** Longest run of waiting reads in one task before the event loop gets a turn. Default 20. */
  readSliceMs?: number;
}

/**
 * Orders the changes to the superpeer's state and keeps reads consistent with them. Updates (a peer's full
 * state, a delta, a removal, each with its bookkeeping) run one at a time in call order, even when one is
 * applied in slices that yield to the event loop; a read runs at once when no update is under way, else
 * right after the running one, before the next starts: it sees the state before an update or after it,
 * never half of one.
 */
export class IndexGate {
  private tail: Promise<unknown> = Promise.resolve();
  private queuedUpdates = 0;
  private updating = false;
  private readonly waitingReads: Array<() => void> = [];
  private readonly maxWaitingReads: number;
  private readonly maxQueuedUpdates: number;
  private readonly readSliceMs: number;

  constructor(options: IndexGateOptions = {}) {
    this.maxWaitingReads = options.maxWaitingReads ?? 10_000;
    this.maxQueuedUpdates = options.maxQueuedUpdates ?? 100_000;
    this.readSliceMs = options.readSliceMs ?? 20;
  }

  /** Updates queued or running. */
  get pendingUpdates(): number {
    return this.queuedUpdates;
  }

  /** Reads waiting for the running update. */
  get pendingReads(): number {
    return this.waitingReads.length;
  }

  /** Runs `change` after every update queued before it; resolves (or rejects) with its outcome. */
  update<T>(change: () => Promise<T> | T): Promise<T> {
    if (this.queuedUpdates >= this.maxQueuedUpdates) {
      return Promise.reject(new P2PError('LIMIT_EXCEEDED', `${this.queuedUpdates} index updates queued`));
    }
    this.queuedUpdates++;
    const run = async (): Promise<T> => {
      this.updating = true;
      try {
        return await change();
      } finally {
        this.updating = false;
        this.queuedUpdates--;
        await this.drainReads();
      }
    };
    const result = this.tail.then(run);
    this.tail = result.catch(() => undefined);
    return result;
  }

  /** Runs `look` now when no update is under way, else as soon as the running one has finished. */
  read<T>(look: () => T): Promise<T> {
    if (!this.updating) {
      try {
        return Promise.resolve(look());
      } catch (err) {
        return Promise.reject(err);
      }
    }
    if (this.waitingReads.length >= this.maxWaitingReads) {
      return Promise.reject(
        new P2PError('LIMIT_EXCEEDED', `${this.waitingReads.length} reads waiting for an update`),
      );
    }
    return new Promise<T>((resolve, reject) => {
      this.waitingReads.push(() => {
        try {
          resolve(look());
        } catch (err) {
          reject(err);
        }
      });
    });
  }

  /**
   * Runs the reads that waited for the update that just ended, in slices of at most `readSliceMs`; the next
   * update starts only after them (reads arriving meanwhile run at once: no update is under way).
   */
  private async drainReads(): Promise<void> {
    while (this.waitingReads.length > 0) {
      // The turn is shared with the update's last slice and the next one's first (see turnSpent).
      while (this.waitingReads.length > 0 && !turnSpent(this.readSliceMs)) {
        this.waitingReads.shift()!();
      }
      if (this.waitingReads.length > 0) await new Promise<void>((resolve) => setImmediate(resolve));
    }
  }
}
