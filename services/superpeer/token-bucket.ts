/** A budget of `burst` units, refilled at `perSecond`, that a take spends one at a time. */
export class TokenBucket {
  private tokens: number;
  private refilledAtMs: number;

  constructor(
    private readonly burst: number,
    private readonly perSecond: number,
    nowMs: number,
  ) {
    this.tokens = burst;
    this.refilledAtMs = nowMs;
  }

  /** Whether a unit is left at `nowMs` (refilled for the time since the last look). */
  has(nowMs: number): boolean {
    this.tokens = Math.min(
      this.burst,
      this.tokens + (Math.max(0, nowMs - this.refilledAtMs) * this.perSecond) / 1000,
    );
    this.refilledAtMs = Math.max(this.refilledAtMs, nowMs);
    return this.tokens >= 1;
  }

  /** Spends one unit; call after `has` said there is one. */
  take(): void {
    this.tokens -= 1;
  }
}
