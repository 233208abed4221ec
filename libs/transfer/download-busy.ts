import { setTimeout as delay } from 'node:timers/promises';
import type { DownloadSource, DownloadWait } from './download.js';
import { busyBackoffMs } from './download-checks.js';

/**
 * The download's patience with busy (503) sources: each wait honours the source's Retry-After, backs off
 * on repeated refusals, is announced through `onWait`, and all of them together end by one deadline.
 */
export class BusyWaits {
  private readonly deadlineMs: number;
  private readonly busyTimes = new Map<string, number>();

  constructor(
    busyWaitMs: number,
    private readonly onWait: (wait: DownloadWait) => void,
  ) {
    this.deadlineMs = Date.now() + busyWaitMs;
  }

  /**
   * How long to wait before asking `source` again after a 503 with `retryAfterMs`, or undefined when that
   * would end past the deadline (the source then counts as failed).
   */
  plan(source: DownloadSource, retryAfterMs: number): number | undefined {
    const times = (this.busyTimes.get(source.peerId) ?? 0) + 1;
    this.busyTimes.set(source.peerId, times);
    const waitMs = busyBackoffMs(retryAfterMs, times);
    return Date.now() + waitMs <= this.deadlineMs ? waitMs : undefined;
  }

  /** Sleeps `waitMs` (announced first); rejects with the signal's reason when it aborts. */
  async wait(source: DownloadSource, waitMs: number, signal: AbortSignal | undefined): Promise<void> {
    this.onWait({ peerId: source.peerId, reason: 'busy', waitMs });
    try {
      await delay(waitMs, undefined, signal ? { signal } : undefined);
    } catch (err) {
      throw signal?.aborted ? signal.reason : err;
    }
  }
}
