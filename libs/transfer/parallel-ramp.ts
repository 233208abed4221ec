import { type EventLoopUtilization, performance } from 'node:perf_hooks';
import type { HashWorker } from './hash-worker.js';

/** Busier than this fraction of a window (the receiving thread or the hashing thread), this machine is the limit. */
const SATURATED_UTILIZATION = 0.8;

/**
 * When one more source may join a parallel download: only while this machine keeps up with the sources
 * already fetching, i.e. neither the receiving thread (this one) nor the hashing thread was busy for most
 * of the last window. A source fast enough to keep this machine busy alone gains nothing from company: on
 * loopback, three sources at once were measured slower than one (more connections, requests and threads
 * competing for the same cores, and the segments ahead of the hashed prefix read back from disk).
 */
export class SourceRamp {
  private here: EventLoopUtilization;
  private thread: EventLoopUtilization;

  constructor(private readonly hashing: HashWorker) {
    this.here = performance.eventLoopUtilization();
    this.thread = hashing.utilization();
  }

  /**
   * Whether both threads had time to spare since the last call (or the start), with how busy each was (0 to
   * 1); starts the next window.
   */
  roomForAnother(): { room: boolean; here: number; thread: number } {
    const here = performance.eventLoopUtilization(this.here).utilization;
    const thread = this.hashing.utilization(this.thread).utilization;
    this.here = performance.eventLoopUtilization();
    this.thread = this.hashing.utilization();
    return { room: Math.max(here, thread) < SATURATED_UTILIZATION, here, thread };
  }
}
