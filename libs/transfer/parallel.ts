/**
 * Bookkeeping of a download fetched from several sources at once: which byte ranges are unassigned, in
 * flight or on disk. Pure (no I/O), so the downloader owns every request and write and this only decides
 * who fetches what.
 */

/** A byte range [start, end) assigned to one source. */
export interface Segment {
  readonly peerId: string;
  /** First byte of this assignment. */
  readonly start: number;
  /** Bytes below `next` are claimed by writes already started. */
  next: number;
  /** Bytes below `written` are on disk. */
  written: number;
  /** Exclusive; shrinks when an idle source takes over the tail (never below `next`). */
  end: number;
}

/** A run of bytes one source wrote: what blame is assigned by when the whole file fails its hash. */
export interface Piece {
  peerId: string;
  start: number;
  /** Exclusive. */
  end: number;
}

export interface SegmentPlanOptions {
  sizeBytes: number;
  /** Preferred segment size; raised when the file would otherwise have more than `maxSegments`. */
  segmentBytes: number;
  /** Default 4096. */
  maxSegments?: number;
  /**
   * An idle source takes over the tail half of another source's segment when that half is at least this
   * big. Default a quarter of the segment size, at least 64 KiB.
   */
  minStealBytes?: number;
}

const DEFAULT_MAX_SEGMENTS = 4096;
const MIN_STEAL_FLOOR_BYTES = 64 * 1024;

interface Range {
  start: number;
  end: number;
}

export class SegmentPlan {
  readonly sizeBytes: number;
  readonly segmentBytes: number;
  readonly minStealBytes: number;
  /** Every run of bytes written, once its segment is released. */
  readonly pieces: Piece[] = [];
  /** Peers that wrote bytes, in the order their first bytes landed. */
  readonly contributors: string[] = [];
  /** First byte never handed out. */
  private cursor = 0;
  /** Ranges given back by failing sources, sorted by start; always below `cursor`. */
  private readonly returned: Range[] = [];
  private readonly active = new Set<Segment>();
  private writtenTotal = 0;
  private waiters: Array<() => void> = [];

  constructor(options: SegmentPlanOptions) {
    const { sizeBytes, segmentBytes } = options;
    const maxSegments = options.maxSegments ?? DEFAULT_MAX_SEGMENTS;
    if (!Number.isSafeInteger(sizeBytes) || sizeBytes < 0)
      throw new RangeError(`sizeBytes must be a non-negative integer, got ${sizeBytes}`);
    if (!Number.isSafeInteger(segmentBytes) || segmentBytes < 1)
      throw new RangeError(`segmentBytes must be a positive integer, got ${segmentBytes}`);
    if (!Number.isSafeInteger(maxSegments) || maxSegments < 1)
      throw new RangeError(`maxSegments must be a positive integer, got ${maxSegments}`);
    this.sizeBytes = sizeBytes;
    this.segmentBytes = Math.max(segmentBytes, Math.ceil(sizeBytes / maxSegments));
    this.minStealBytes =
      options.minStealBytes ?? Math.max(MIN_STEAL_FLOOR_BYTES, Math.floor(this.segmentBytes / 4));
  }

  /**
   * The next range for `peerId`: a range a failing source gave back (lowest first, so the verified prefix
   * grows), else the next fresh segment, else the tail half of the largest segment still in flight.
   * Undefined when there is nothing worth taking right now (which is not the same as `complete`).
   */
  take(peerId: string): Segment | undefined {
    const range = this.returned.shift() ?? this.fresh() ?? this.steal(peerId);
    if (range === undefined) return undefined;
    const segment: Segment = {
      peerId,
      start: range.start,
      next: range.start,
      written: range.start,
      end: range.end,
    };
    this.active.add(segment);
    return segment;
  }

  /** Claims up to `length` bytes of `segment` for a write about to start; returns how many it may write. */
  claim(segment: Segment, length: number): number {
    const claimed = Math.max(0, Math.min(length, segment.end - segment.next));
    segment.next += claimed;
    return claimed;
  }

  /** `length` claimed bytes of `segment` are on disk. */
  wrote(segment: Segment, length: number): void {
    if (length <= 0) return;
    segment.written += length;
    this.writtenTotal += length;
    if (!this.contributors.includes(segment.peerId)) this.contributors.push(segment.peerId);
    this.notify();
  }

  /**
   * Its source is done with `segment`, finished or not: the bytes it wrote become a piece and whatever it
   * did not write goes back for another source.
   */
  release(segment: Segment): void {
    if (!this.active.delete(segment)) return;
    if (segment.written > segment.start)
      this.pieces.push({ peerId: segment.peerId, start: segment.start, end: segment.written });
    if (segment.written < segment.end) {
      const rest = { start: segment.written, end: segment.end };
      const at = this.returned.findIndex((r) => r.start > rest.start);
      this.returned.splice(at === -1 ? this.returned.length : at, 0, rest);
    }
    // A claim never written (a failed write) must not hold back a later steal's bounds.
    segment.next = segment.written;
    this.notify();
  }

  /** Every byte is on disk and no source holds a segment. */
  get complete(): boolean {
    return this.writtenTotal === this.sizeBytes && this.active.size === 0;
  }

  get writtenBytes(): number {
    return this.writtenTotal;
  }

  /** Every byte below this offset is on disk (the prefix that can be hashed already). */
  get contiguousBytes(): number {
    let frontier = this.cursor;
    const first = this.returned[0];
    if (first !== undefined) frontier = Math.min(frontier, first.start);
    for (const segment of this.active) frontier = Math.min(frontier, segment.written);
    return frontier;
  }

  /** Resolves at the next change (bytes written, a segment released) or `interrupt()`. */
  changed(): Promise<void> {
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  /** Wakes every `changed()` waiter without a change, e.g. so that they see the caller gave up. */
  interrupt(): void {
    this.notify();
  }

  private notify(): void {
    const waiters = this.waiters;
    this.waiters = [];
    for (const wake of waiters) wake();
  }

  private fresh(): Range | undefined {
    if (this.cursor >= this.sizeBytes) return undefined;
    const start = this.cursor;
    this.cursor = Math.min(this.sizeBytes, start + this.segmentBytes);
    return { start, end: this.cursor };
  }

  /** The end game: without this the last segments wait on whichever source holds them, however slow. */
  private steal(peerId: string): Range | undefined {
    let victim: Segment | undefined;
    for (const segment of this.active) {
      if (segment.peerId === peerId) continue;
      const left = segment.end - segment.next;
      if (left >= 2 * this.minStealBytes && (victim === undefined || left > victim.end - victim.next))
        victim = segment;
    }
    if (victim === undefined) return undefined;
    const middle = victim.next + Math.ceil((victim.end - victim.next) / 2);
    const range = { start: middle, end: victim.end };
    victim.end = middle;
    return range;
  }
}
