/**
 * Bookkeeping of a download fetched from several sources at once: which byte ranges are unassigned, in
 * flight or on disk, and how fast each source delivers. Pure (no I/O; time comes from `now`), so the
 * downloader owns every request and write and this only decides who fetches what.
 */

/** A byte range [start, end) assigned to one source. */
export interface Segment {
  readonly peerId: string;
  /** First byte of this assignment. */
  start: number;
  /** Bytes below `next` are claimed by writes already started. */
  next: number;
  /** Bytes below `written` are on disk. */
  written: number;
  /** Exclusive; shrinks when an idle source takes over the tail (never below `next`). */
  end: number;
  /** When it was handed out (`now()`), for its rate. */
  readonly takenAtMs: number;
  /**
   * Set on an end game race: this segment asks for the same bytes as `racing`, into memory, and only the
   * first of the two to have them all writes them (see `winRace`).
   */
  racing?: Segment;
  /** Set when this assignment took the whole rest of a source too slow to keep (which must be cut off). */
  readonly revoked?: Segment;
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
  /** Bytes [0, startBytes) are already on disk (a resumed download): only the rest is handed out. Default 0. */
  startBytes?: number;
  /**
   * An idle source takes over part of another source's segment when that part is at least this big; below
   * it, the end game races for the rest. Default a quarter of the segment size, at least 64 KiB.
   */
  minStealBytes?: number;
  /**
   * A source delivering less than this fraction of the rate of an idle source that could take its range
   * over loses its whole range to it (it is cut off). Default 1/8.
   */
  minRelativeRate?: number;
  /** A segment's rate is only judged once it has been in flight this long. Default 500. */
  judgeAfterMs?: number;
  /** Clock in ms. Default `performance.now`. */
  now?: () => number;
}

const DEFAULT_MAX_SEGMENTS = 4096;
const MIN_STEAL_FLOOR_BYTES = 64 * 1024;
const DEFAULT_MIN_RELATIVE_RATE = 1 / 8;
const DEFAULT_JUDGE_AFTER_MS = 500;

interface Range {
  start: number;
  end: number;
}

interface PeerRate {
  bytes: number;
  ms: number;
}

export class SegmentPlan {
  readonly sizeBytes: number;
  readonly segmentBytes: number;
  readonly minStealBytes: number;
  /** Every run of bytes written, once its segment is released. */
  readonly pieces: Piece[] = [];
  /** Peers that wrote bytes, in the order their first bytes landed. */
  readonly contributors: string[] = [];
  private readonly minRelativeRate: number;
  private readonly judgeAfterMs: number;
  private readonly now: () => number;
  /** First byte never handed out. */
  private cursor = 0;
  /** Ranges given back by failing sources, sorted by start; always below `cursor`. */
  private readonly returned: Range[] = [];
  private readonly active = new Set<Segment>();
  private readonly rates = new Map<string, PeerRate>();
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
    this.minRelativeRate = options.minRelativeRate ?? DEFAULT_MIN_RELATIVE_RATE;
    this.judgeAfterMs = options.judgeAfterMs ?? DEFAULT_JUDGE_AFTER_MS;
    this.now = options.now ?? (() => performance.now());
    const startBytes = options.startBytes ?? 0;
    if (!Number.isSafeInteger(startBytes) || startBytes < 0 || startBytes > sizeBytes)
      throw new RangeError(`startBytes must be an integer from 0 to sizeBytes, got ${startBytes}`);
    this.cursor = startBytes;
    this.writtenTotal = startBytes;
  }

  /**
   * The next range for `peerId`: a range a failing source gave back (lowest first, so the verified prefix
   * grows), else the next fresh segment (of `freshBytes`, default `segmentBytes`: a source fetching alone
   * asks for more at once), else work taken from the source that will finish last (see `steal`). Undefined
   * when there is nothing worth taking right now (which is not the same as `complete`).
   */
  take(peerId: string, freshBytes = this.segmentBytes): Segment | undefined {
    const range = this.returned.shift() ?? this.fresh(freshBytes);
    if (range !== undefined) return this.assign(peerId, range);
    return this.steal(peerId);
  }

  /**
   * A source is about to join: the segments in flight are cut to at most `keepBytes` past their claims where
   * the rest was never handed to anyone else (a segment a source took alone: see `take`), so that the rest
   * goes out in fresh segments, in order, and the hashed prefix keeps up with the bytes written.
   */
  shareFresh(keepBytes: number): void {
    for (const segment of this.active) {
      const cut = Math.min(segment.end, segment.next + Math.max(1, keepBytes));
      if (segment.racing !== undefined || segment.end !== this.cursor || cut >= segment.end) continue;
      segment.end = cut;
      this.cursor = cut;
    }
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
   * The race `race` has every byte it asked for: if the segment it races still has bytes nobody claimed,
   * that segment is cut at its claim frontier and `race` becomes the owner of the rest, from the returned
   * offset on (its caller claims and writes them). Undefined when it lost: nothing is left to write.
   */
  winRace(race: Segment): number | undefined {
    const victim = race.racing;
    if (victim === undefined || !this.active.has(race)) return undefined;
    if (!this.active.has(victim) || victim.next >= victim.end) return undefined;
    const from = victim.next;
    race.racing = undefined;
    race.start = from;
    race.next = from;
    race.written = from;
    race.end = victim.end;
    victim.end = from;
    this.notify();
    return from;
  }

  /** The races run against `segment` (to be cancelled once it has every byte). */
  racesOn(segment: Segment): Segment[] {
    return [...this.active].filter((s) => s.racing === segment);
  }

  /**
   * Its source is done with `segment`, finished or not: the bytes it wrote become a piece and whatever it
   * did not write goes back for another source.
   */
  release(segment: Segment): void {
    if (!this.active.delete(segment)) return;
    if (segment.racing !== undefined && segment.written === segment.start) {
      // A race that lost (or never won) owns nothing.
      this.notify();
      return;
    }
    const bytes = segment.written - segment.start;
    if (bytes > 0) {
      this.pieces.push({ peerId: segment.peerId, start: segment.start, end: segment.written });
      const rate = this.rates.get(segment.peerId) ?? { bytes: 0, ms: 0 };
      rate.bytes += bytes;
      rate.ms += Math.max(1, this.now() - segment.takenAtMs);
      this.rates.set(segment.peerId, rate);
    }
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
    for (const segment of this.active)
      if (segment.racing === undefined) frontier = Math.min(frontier, segment.written);
    return frontier;
  }

  /** Bytes per ms `peerId` delivered over its finished segments; undefined before it finished one. */
  peerRate(peerId: string): number | undefined {
    const rate = this.rates.get(peerId);
    return rate === undefined || rate.bytes === 0 ? undefined : rate.bytes / rate.ms;
  }

  /** Resolves at the next change (bytes written, a segment released), `interrupt()` or after `timeoutMs`. */
  changed(timeoutMs?: number): Promise<void> {
    return new Promise((resolve) => {
      if (timeoutMs === undefined) {
        this.waiters.push(resolve);
        return;
      }
      const timer = setTimeout(resolve, timeoutMs);
      this.waiters.push(() => {
        clearTimeout(timer);
        resolve();
      });
    });
  }

  /** Wakes every `changed()` waiter without a change, e.g. so that they see the caller gave up. */
  interrupt(): void {
    this.notify();
  }

  private assign(peerId: string, range: Range, extra: Partial<Segment> = {}): Segment {
    const segment: Segment = {
      peerId,
      start: range.start,
      next: range.start,
      written: range.start,
      end: range.end,
      takenAtMs: this.now(),
      ...extra,
    };
    this.active.add(segment);
    return segment;
  }

  private notify(): void {
    const waiters = this.waiters;
    this.waiters = [];
    for (const wake of waiters) wake();
  }

  private fresh(bytes: number): Range | undefined {
    if (this.cursor >= this.sizeBytes) return undefined;
    const start = this.cursor;
    this.cursor = Math.min(this.sizeBytes, start + Math.max(1, bytes));
    return { start, end: this.cursor };
  }

  /**
   * The end game: without this the last segments wait on whichever source holds them, however slow. The
   * victim is the segment that will finish last at its measured rate (the largest while none is judged
   * yet). A large rest is split where both sources would finish together (in half while rates are
   * unknown); a source far slower than the thief loses its whole rest; a small rest is raced.
   */
  private steal(peerId: string): Segment | undefined {
    const now = this.now();
    const thiefRate = this.peerRate(peerId);
    // What an unjudged segment is assumed to deliver: the thief's own rate, else any measured one.
    const typicalRate = thiefRate ?? Math.max(0, ...[...this.rates.keys()].map((p) => this.peerRate(p) ?? 0));
    let victim: Segment | undefined;
    let victimEta = -1;
    let victimRate = 0;
    for (const segment of this.active) {
      if (segment.peerId === peerId || segment.racing !== undefined) continue;
      const left = segment.end - segment.next;
      if (left <= 0) continue;
      const age = now - segment.takenAtMs;
      const rate = age > 0 ? (segment.written - segment.start) / age : 0;
      // An unjudged segment (an ETA measured over a few ms means nothing) is assumed to go at a typical rate.
      const assumed = age < this.judgeAfterMs ? typicalRate || 1 : rate;
      const eta = assumed > 0 ? left / assumed : Number.POSITIVE_INFINITY;
      if (eta > victimEta || (eta === victimEta && left > (victim ? victim.end - victim.next : 0))) {
        victim = segment;
        victimEta = eta;
        victimRate = rate;
      }
    }
    if (victim === undefined) return undefined;
    const left = victim.end - victim.next;
    const judged = now - victim.takenAtMs >= this.judgeAfterMs;
    const slow = judged && thiefRate !== undefined && victimRate < thiefRate * this.minRelativeRate;
    if (slow) {
      // Cut off: the caller cancels the victim's request; it keeps what it already claimed.
      const range = { start: victim.next, end: victim.end };
      victim.end = victim.next;
      return this.assign(peerId, range, { revoked: victim });
    }
    if (left >= 2 * this.minStealBytes) {
      let middle = victim.next + Math.ceil(left / 2);
      if (judged && thiefRate !== undefined && victimRate > 0) {
        const keep = Math.ceil((left * victimRate) / (victimRate + thiefRate));
        middle = victim.next + Math.min(left - this.minStealBytes, Math.max(this.minStealBytes, keep));
      }
      const range = { start: middle, end: victim.end };
      victim.end = middle;
      return this.assign(peerId, range);
    }
    // A small rest: race for it once the victim has had its chance, unless someone already does.
    if (!judged || this.racesOn(victim).length > 0) return undefined;
    if (thiefRate !== undefined && victimRate > 0 && left / victimRate <= (2 * left) / thiefRate)
      return undefined;
    return this.assign(peerId, { start: victim.next, end: victim.end }, { racing: victim });
  }
}
