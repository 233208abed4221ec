/** How an async update divides its work so that no task blocks the event loop for long. */
export interface SliceOptions {
  /** Most items (files added, removed or moved) one synchronous slice handles. Default 2000. */
  maxItemsPerSlice?: number;
  /** A slice also ends once it has run this long, checked every 64 items. Default 8. */
  maxSliceMs?: number;
  /** Called after each slice with the items it handled (for tests and metrics). */
  onSlice?: (items: number) => void;
}

export const DEFAULT_SLICE_ITEMS = 2000;
export const DEFAULT_SLICE_MS = 8;

const yieldToLoop = () => new Promise<void>((resolve) => setImmediate(resolve));

/**
 * The sliced work of one turn of the event loop so far. Operations that run one after another (a queue of
 * peer removals, each shorter than a slice) start in the task where the previous one ended: were each
 * slice timed from its own start, a thousand of them would hold the loop for their sum. They share one
 * budget instead: a stretch opens with the first slice of a turn and closes at the next check phase (a
 * `setImmediate` queued when it opens, so before any yield of the work in it resumes).
 */
let stretchOpen = false;
let stretchStartedAt = 0;

function closeStretch(): void {
  stretchOpen = false;
}

/** When the sliced work of this turn began (now, for the first slice of a turn). */
function stretchStart(): { startedAt: number; fresh: boolean } {
  if (stretchOpen) return { startedAt: stretchStartedAt, fresh: false };
  stretchOpen = true;
  stretchStartedAt = performance.now();
  setImmediate(closeStretch);
  return { startedAt: stretchStartedAt, fresh: true };
}

/**
 * Whether this turn's sliced work has run for `maxMs` already; false for the first call of a turn (which
 * opens the turn's stretch), so work that checks before each step always makes one. For loops of their
 * own (reads waiting for an update, requests served in turn) that must share the turn with the slices.
 */
export function turnSpent(maxMs: number): boolean {
  const { startedAt, fresh } = stretchStart();
  return !fresh && performance.now() - startedAt >= maxMs;
}

/**
 * Runs `step()` while `more()` holds, for at most `maxItems` steps and until this turn's sliced work has run
 * `maxMs` (checked before the first step and every 64); returns the steps done. The first slice of a turn
 * always makes a step, so every slice after a yield makes progress.
 */
function slice(more: () => boolean, step: () => void, maxItems: number, maxMs: number): number {
  const { startedAt, fresh } = stretchStart();
  let done = 0;
  if (!fresh && performance.now() - startedAt >= maxMs) return 0;
  while (done < maxItems && more()) {
    step();
    done++;
    if ((done & 63) === 0 && performance.now() - startedAt >= maxMs) break;
  }
  return done;
}

/**
 * Runs `step(i)` for i in [0, count), in slices separated by a `setImmediate` turn, so that timers, I/O and
 * other messages run between slices. `count` may be re-read between slices (a getter), so steps may
 * shorten the work.
 */
export async function runSliced(
  count: () => number,
  step: (i: number) => void,
  options: SliceOptions = {},
): Promise<void> {
  const maxItems = Math.max(1, options.maxItemsPerSlice ?? DEFAULT_SLICE_ITEMS);
  const maxMs = options.maxSliceMs ?? DEFAULT_SLICE_MS;
  let i = 0;
  while (i < count()) {
    const done = slice(
      () => i < count(),
      () => step(i++),
      maxItems,
      maxMs,
    );
    if (done > 0) options.onSlice?.(done);
    if (i < count()) await yieldToLoop();
  }
}

/** Runs `step()` while `more()` holds, in slices like `runSliced`. */
export function whileSliced(
  more: () => boolean,
  step: () => void,
  options: SliceOptions = {},
): Promise<void> {
  let done = 0;
  return runSliced(
    () => done + (more() ? 1 : 0),
    () => {
      step();
      done++;
    },
    options,
  );
}

/** Like `runSliced` over a list of items. */
export function forEachSliced<T>(
  items: readonly T[],
  step: (item: T) => void,
  options: SliceOptions = {},
): Promise<void> {
  return runSliced(
    () => items.length,
    (i) => step(items[i]!),
    options,
  );
}

/**
 * Runs async operations one at a time, in call order. The index's async updates go through one of these,
 * so that a change never interleaves with another change's slices.
 */
export class SerialQueue {
  private tail: Promise<unknown> = Promise.resolve();
  private pending = 0;

  /** Operations queued or running. */
  get size(): number {
    return this.pending;
  }

  run<T>(operation: () => Promise<T> | T): Promise<T> {
    this.pending++;
    const result = this.tail.then(operation);
    this.tail = result.then(
      () => this.pending--,
      () => this.pending--,
    );
    return result;
  }
}

/** Like `runSliced` over an iterator (a Map's values, say); the collection must not change meanwhile. */
export async function forEachOfSliced<T>(
  items: Iterable<T>,
  step: (item: T) => void,
  options: SliceOptions = {},
): Promise<void> {
  const maxItems = Math.max(1, options.maxItemsPerSlice ?? DEFAULT_SLICE_ITEMS);
  const maxMs = options.maxSliceMs ?? DEFAULT_SLICE_MS;
  const iterator = items[Symbol.iterator]();
  let next = iterator.next();
  while (!next.done) {
    const done = slice(
      () => !next.done,
      () => {
        step((next as IteratorYieldResult<T>).value);
        next = iterator.next();
      },
      maxItems,
      maxMs,
    );
    if (done > 0) options.onSlice?.(done);
    if (!next.done) await yieldToLoop();
  }
}
