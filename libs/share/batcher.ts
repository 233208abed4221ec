/**
 * Collects touched paths and hands them over as one set after `debounceMs` of quiet, but never later than
 * `maxWaitMs` after the first path of the batch: a continuous stream of events cannot postpone a batch.
 */
export class ChangeBatcher {
  private pending = new Set<string>();
  private timer: NodeJS.Timeout | undefined;
  private batchStartedAt: number | null = null;
  private closed = false;

  constructor(
    private readonly debounceMs: number,
    private readonly maxWaitMs: number,
    private readonly onBatch: (paths: Set<string>) => void,
  ) {}

  /** Marks a relative path ('' = everything) for the next batch. */
  touch(relPath: string): void {
    if (this.closed) return;
    this.pending.add(relPath);
    const now = Date.now();
    this.batchStartedAt ??= now;
    const delayMs = Math.max(0, Math.min(this.debounceMs, this.batchStartedAt + this.maxWaitMs - now));
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.flush(), delayMs);
  }

  private flush(): void {
    this.timer = undefined;
    this.batchStartedAt = null;
    const batch = this.pending;
    this.pending = new Set();
    if (batch.size > 0 && !this.closed) this.onBatch(batch);
  }

  close(): void {
    this.closed = true;
    clearTimeout(this.timer);
    this.pending.clear();
  }
}
