import v8 from 'node:v8';
import vm from 'node:vm';

/*
 * The superpeer keeps its index in typed arrays outside V8's heap, the large ones in memory mapped for
 * them alone (libs/search/big-arrays.ts), which goes back to the system as soon as V8 collects the arrays
 * dropped. V8 collects only when the process allocates: an idle superpeer whose peers have all left holds
 * the dropped index until something else makes it collect. Measured with bench:swarm at 1000 × 1000: RSS
 * 291-298 MB 10 s after the index emptied (289 MB 30 s after), 218 MB in a run where V8 happened to
 * collect; with these collections, 206-226 MB 10 s after (six runs).
 * So the composition root asks V8 for a full collection once the index has shrunk by many files and
 * stayed so for a moment (after a mass leave, one collection, not one per peer), and along the way of a
 * very large shrink.
 */

export interface ShrinkCollectorOptions {
  /** How big the data is now (the index's files). */
  size: () => number;
  /** Runs a full collection (or starts one: what it returns is not waited for). */
  collect: () => unknown;
  /** Smallest shrink, from the largest size since the last collection, worth a collection. */
  minShrink: number;
  /** How long the size must have stayed the same before collecting (a leave of many peers is over). */
  quietMs: number;
  /**
   * A shrink this large collects at once, quiet or not: during a long leave, what compacting the index
   * drops would otherwise pile up until the end (30-50 MB at a million files).
   */
  collectWithin: number;
  /** How often the size is looked at. */
  checkIntervalMs: number;
}

/**
 * Runs a full collection once the data shrank by at least `minShrink` and then stayed unchanged, or as
 * soon as it shrank by `collectWithin`; a shrink counts from the largest size since the last collection.
 */
export class ShrinkCollector {
  private largest: number;
  private last: number;
  private changedAtMs: number;
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly options: ShrinkCollectorOptions,
    nowMs = Date.now(),
  ) {
    this.largest = this.last = options.size();
    this.changedAtMs = nowMs;
  }

  start(): void {
    this.timer ??= setInterval(() => this.check(Date.now()), this.options.checkIntervalMs);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }

  /** Looks at the size once (the timer's work; tests call it with their own clock). */
  check(nowMs: number): void {
    const size = this.options.size();
    const changed = size !== this.last;
    if (changed) {
      this.last = size;
      this.changedAtMs = nowMs;
    }
    this.largest = Math.max(this.largest, size);
    const shrunk = this.largest - size;
    const quiet = !changed && nowMs - this.changedAtMs >= this.options.quietMs;
    if (shrunk < this.options.minShrink || !(quiet || shrunk >= this.options.collectWithin)) return;
    this.largest = size;
    this.options.collect();
  }
}

/**
 * A full collection of this process, run by V8 in a task of its own (not in the caller's); the promise
 * settles once it has run. V8 offers it
 * through `gc`, which exists only in contexts made after `--expose-gc` is set: set at run time here (as
 * old-generation.ts sets its flag), for the context made to read it only; nothing else sees `gc`.
 */
export function fullCollection(): () => Promise<void> {
  v8.setFlagsFromString('--expose-gc');
  const gc = vm.runInNewContext('gc') as (options: { type: 'major'; execution: 'async' }) => Promise<void>;
  // Memory not given back is all a failure costs: nothing to throw out of a timer for.
  return async () => {
    try {
      await gc({ type: 'major', execution: 'async' });
    } catch {}
  };
}
