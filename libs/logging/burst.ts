import type { Log } from './log.js';

export interface BurstLogOptions {
  /** The line logged for each event while they are few, e.g. 'peer joined'. */
  message: string;
  /** The line that counts the events not logged one by one in a window, e.g. 'more peers joined'. */
  summary: string;
  /** Events logged one by one per window; past this they are counted. Default 20. */
  perWindow?: number;
  /** The window, from its first event. Default 10 s. */
  windowMs?: number;
  /** The level of the lines and of the count. Default info. */
  level?: 'info' | 'warn';
  /** The clock (tests). */
  now?: () => number;
}

/**
 * One kind of line (a peer joined, a peer left, a message came back unroutable) written one by one while such events are few, and
 * counted once they come in a burst: a thousand peers joining at once write the first `perWindow` lines of
 * the window and then one line with how many more there were, instead of a thousand (each line costs the
 * thread that writes it tens of microseconds, and far more on a busy machine, in the middle of the join).
 * Every event is still written at debug level, so `--log-level debug` shows each one. Holds a counter and
 * one timer, whatever the rate.
 */
export class BurstLog {
  private readonly perWindow: number;
  private readonly windowMs: number;
  private readonly now: () => number;
  private readonly level: 'info' | 'warn';
  private windowStartMs = Number.NEGATIVE_INFINITY;
  private inWindow = 0;
  private counted = 0;
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly log: Log,
    private readonly options: BurstLogOptions,
  ) {
    this.perWindow = Math.max(0, options.perWindow ?? 20);
    this.windowMs = Math.max(1, options.windowMs ?? 10_000);
    this.now = options.now ?? Date.now;
    this.level = options.level ?? 'info';
  }

  /** One event, with the fields of its line. */
  record(meta: object): void {
    const now = this.now();
    if (now - this.windowStartMs >= this.windowMs) {
      this.flush();
      this.windowStartMs = now;
      this.inWindow = 0;
    }
    this.inWindow++;
    if (this.inWindow <= this.perWindow) {
      this.log[this.level](this.options.message, meta);
      return;
    }
    this.log.debug(this.options.message, meta);
    this.counted++;
    this.timer ??= setTimeout(() => this.flush(), this.windowStartMs + this.windowMs - now);
    this.timer.unref();
  }

  /** Writes the count of the window's events not written one by one, if any (also on close). */
  flush(): void {
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = undefined;
    if (this.counted === 0) return;
    this.log[this.level](this.options.summary, {
      count: this.counted,
      logged: this.perWindow,
      windowMs: this.windowMs,
    });
    this.counted = 0;
  }
}
