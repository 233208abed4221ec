/** No `network.tick` for this many of its intervals: the network stream is broken. */
const TICK_SILENCE_INTERVALS = 2;
/** Silence shorter than this never counts, however short the announced interval. */
const MIN_SILENCE_MS = 3000;
/** Tick numbers are remembered for this many superpeers (ids come from the network: bounded). */
const MAX_TRACKED_SUPERPEERS = 64;

/** Why the view must be reloaded after a tick. */
export interface StreamBack {
  reason: 'network stream back' | 'network.tick numbers skipped';
  /** Tick numbers skipped by the superpeer that sent this tick (0 when the stream was silent instead). */
  missedTicks: number;
}

/**
 * What the superpeers' `network.tick`s say about this peer's copy of the network stream: silent (no tick
 * for a few intervals) or cut for a while (a superpeer's tick numbers skipped). State only: the peer acts.
 */
export class NetworkTicks {
  /** When the last tick came, and the interval it announced; undefined until one came. */
  private lastTick: { atMs: number; intervalMs: number } | undefined;
  /** Set when ticks stopped, until one comes again. */
  private silent = false;
  /** The last tick number of each superpeer. */
  private readonly seqs = new Map<string, number>();

  /** Records a tick; says why the view must reload when the stream was silent or lost ticks, else undefined. */
  onTick(
    superpeerId: string,
    seq: number,
    intervalMs: number,
    nowMs: number = Date.now(),
  ): StreamBack | undefined {
    this.lastTick = { atMs: nowMs, intervalMs };
    // A skipped tick number: our binding was gone for a while (deleted with the exchange, then declared
    // again, by our own check or by someone else), so changes broadcast meanwhile were lost too.
    const previous = this.seqs.get(superpeerId);
    if (this.seqs.size >= MAX_TRACKED_SUPERPEERS && previous === undefined) this.seqs.clear();
    this.seqs.set(superpeerId, seq);
    const skipped = previous !== undefined && seq > previous + 1;
    if (!this.silent && !skipped) return undefined;
    this.silent = false;
    return skipped
      ? { reason: 'network.tick numbers skipped', missedTicks: seq - previous - 1 }
      : { reason: 'network stream back', missedTicks: 0 };
  }

  /** How long ticks have been silent, once, when they have just been silent too long; else undefined. */
  checkSilence(nowMs: number = Date.now()): number | undefined {
    const tick = this.lastTick;
    if (!tick || this.silent) return undefined;
    const silentMs = nowMs - tick.atMs;
    if (silentMs < Math.max(MIN_SILENCE_MS, TICK_SILENCE_INTERVALS * tick.intervalMs)) return undefined;
    this.silent = true;
    return silentMs;
  }
}
