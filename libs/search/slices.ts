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
    const startedAt = performance.now();
    let done = 0;
    while (i < count() && done < maxItems) {
      step(i++);
      done++;
      if ((done & 63) === 0 && performance.now() - startedAt >= maxMs) break;
    }
    options.onSlice?.(done);
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
    const startedAt = performance.now();
    let done = 0;
    while (!next.done && done < maxItems) {
      step(next.value);
      done++;
      next = iterator.next();
      if ((done & 63) === 0 && performance.now() - startedAt >= maxMs) break;
    }
    options.onSlice?.(done);
    if (!next.done) await yieldToLoop();
  }
}
