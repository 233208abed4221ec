/**
 * Coalesces requests for one costly action (a full re-announce, a view reload, a broadcast) and runs it at
 * most once per `minIntervalMs`, whatever arrives and however fast: every request made while a run is
 * scheduled joins it, and a request soon after a run waits for the interval to end (trailing edge, so the
 * last request is never lost). A random delay spreads many nodes that got the same request at once.
 */
export interface ThrottleOptions {
  /** Shortest time between two runs, on average (a token bucket refilled at one run per interval). */
  minIntervalMs: number;
  /** Runs allowed back to back before the interval applies (the bucket's size). Default 1. */
  burst?: number;
  /** Wait this long after the first request before running, so a burst of requests is one run. Default 0. */
  delayMs?: number;
  /** Up to this much more, uniformly at random (a function: the window may depend on the network's size). Default 0. */
  jitterMs?: number | (() => number);
  /** For tests: defaults to Math.random, Date.now, setTimeout and clearTimeout. */
  random?: () => number;
  now?: () => number;
  setTimer?: (run: () => void, delayMs: number) => unknown;
  clearTimer?: (timer: unknown) => void;
}

export class Throttle {
  private timer: unknown;
  private tokens: number;
  private tokensAtMs: number;
  private runCount = 0;
  private requestCount = 0;
  private readonly options: Required<ThrottleOptions>;

  constructor(
    private readonly run: () => void,
    options: ThrottleOptions,
  ) {
    this.options = {
      delayMs: 0,
      jitterMs: 0,
      burst: 1,
      random: Math.random,
      now: Date.now,
      setTimer: (callback, delayMs) => {
        const timer = setTimeout(callback, delayMs);
        timer.unref();
        return timer;
      },
      clearTimer: (timer) => clearTimeout(timer as NodeJS.Timeout),
      ...options,
    };
    this.tokens = this.options.burst;
    this.tokensAtMs = this.options.now();
  }

  /** Runs so far (for logs and tests). */
  get runs(): number {
    return this.runCount;
  }

  /** Requests so far, coalesced or not. */
  get requests(): number {
    return this.requestCount;
  }

  get scheduled(): boolean {
    return this.timer !== undefined;
  }

  /**
   * Asks for a run. `immediate` skips the coalescing delay and the jitter (the interval still holds): for a
   * node's own reasons, which no one else shares.
   */
  request(options: { immediate?: boolean } = {}): void {
    this.requestCount++;
    if (this.timer !== undefined) return;
    const { now, delayMs, random } = this.options;
    const jitter =
      typeof this.options.jitterMs === 'function' ? this.options.jitterMs() : this.options.jitterMs;
    const wanted = options.immediate ? 0 : delayMs + Math.floor(random() * Math.max(0, jitter));
    this.refill(now());
    const tokenWaitMs = this.tokens >= 1 ? 0 : Math.ceil((1 - this.tokens) * this.options.minIntervalMs);
    const waitMs = Math.max(wanted, tokenWaitMs);
    this.timer = this.options.setTimer(() => this.fire(), waitMs);
  }

  cancel(): void {
    if (this.timer !== undefined) this.options.clearTimer(this.timer);
    this.timer = undefined;
  }

  private refill(nowMs: number): void {
    const { burst, minIntervalMs } = this.options;
    this.tokens = Math.min(burst, this.tokens + (nowMs - this.tokensAtMs) / minIntervalMs);
    this.tokensAtMs = nowMs;
  }

  private fire(): void {
    this.timer = undefined;
    this.refill(this.options.now());
    this.tokens -= 1;
    this.runCount++;
    this.run();
  }
}
