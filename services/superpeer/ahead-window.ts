/**
 * Bounds how many deliveries are decoded ahead of their turn: each decoded announce waits as JSON (and its
 * bytes as a copy in a decoding thread) until its turn, so a whole prefetch of them costs memory for no
 * speed once the threads are kept busy. Places are given in call order, so the delivery whose turn comes
 * next always holds one (its predecessors leave as their turns pass): no wait here can block the queue.
 */
export class AheadWindow {
  private taken = 0;
  /** Callers waiting for a place: at most the consumer's prefetch. */
  private readonly waiting: Array<() => void> = [];

  constructor(private readonly size: number) {}

  /** Resolves once a place is this caller's. */
  enter(): Promise<void> {
    if (this.taken < this.size) {
      this.taken++;
      return Promise.resolve();
    }
    return new Promise((resolve) => this.waiting.push(resolve));
  }

  /** Gives a place back (to the longest waiting caller, if any). */
  leave(): void {
    const next = this.waiting.shift();
    if (next !== undefined) next();
    else this.taken--;
  }

  get pending(): number {
    return this.taken;
  }
}
