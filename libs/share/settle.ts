import { type FileVersion, sameVersion } from './hash.js';

interface QuietTrackerOptions {
  /** A changed file is hashed once its state has not changed for this long; the first wait. */
  quietMs: number;
  /** Upper bound of the wait, which doubles each time the file is seen changed again. */
  maxQuietMs: number;
  /** Files tracked at once; past it a file is hashed at once (the old behaviour), never lost. */
  maxTracked: number;
  /** Called when a tracked file is due for another look. */
  onDue: (name: string) => void;
}

interface Tracked {
  version: FileVersion;
  changedAt: number;
  delayMs: number;
  timer: NodeJS.Timeout | undefined;
  /** The timer went off since the last look. */
  fired: boolean;
}

/**
 * Keeps files that are still being written from being hashed from byte 0 on every change: a shared file that
 * changed moments ago (or changed while it was hashed) is hashed only after its stat stayed the same for a
 * quiet period, which doubles (up to `maxQuietMs`) every time a whole period went by with the file still
 * changing. A growing file is then hashed about once, after the writer stops.
 */
export class QuietTracker {
  private readonly entries = new Map<string, Tracked>();
  private closed = false;

  constructor(private readonly options: QuietTrackerOptions) {}

  get tracked(): number {
    return this.entries.size;
  }

  /**
   * True: hash `name` now. False: not quiet yet, `onDue` will ask again. `known`: the name is shared already
   * (a change, not a new file: new files are hashed at once so they appear quickly).
   */
  ready(name: string, version: FileVersion, known: boolean, now: number = Date.now()): boolean {
    let entry = this.entries.get(name);
    if (entry === undefined) {
      if (!known) return true;
      const ageMs = now - Math.max(version.mtimeMs, version.ctimeMs);
      // A future timestamp (clock skew, restored file) proves nothing about activity: hash it.
      if (!(ageMs >= 0 && ageMs < this.options.quietMs)) return true;
      if (!this.track(name, version, now)) return true;
      entry = this.entries.get(name) as Tracked;
    } else if (!sameVersion(entry.version, version)) {
      entry.version = version;
      entry.changedAt = now;
    }
    if (now - entry.changedAt >= entry.delayMs) return true;
    // A whole wait went by and the file changed during it: wait longer next time.
    if (entry.fired) entry.delayMs = Math.min(entry.delayMs * 2, this.options.maxQuietMs);
    entry.fired = false;
    if (entry.timer === undefined) this.schedule(name, entry, entry.changedAt + entry.delayMs - now);
    return false;
  }

  /** The file changed while it was hashed: look again after a (longer) quiet period. */
  unstable(name: string, version: FileVersion, now: number = Date.now()): void {
    const entry = this.entries.get(name);
    if (entry === undefined) {
      if (!this.track(name, version, now)) {
        this.options.onDue(name);
        return;
      }
    } else {
      this.changed(entry, version, now);
    }
    const tracked = this.entries.get(name) as Tracked;
    this.schedule(name, tracked, tracked.delayMs);
  }

  /** Hashed, gone or skipped: stop tracking. */
  forget(name: string): void {
    const entry = this.entries.get(name);
    if (entry === undefined) return;
    clearTimeout(entry.timer);
    this.entries.delete(name);
  }

  close(): void {
    this.closed = true;
    for (const entry of this.entries.values()) clearTimeout(entry.timer);
    this.entries.clear();
  }

  private track(name: string, version: FileVersion, now: number): boolean {
    if (this.closed || this.entries.size >= this.options.maxTracked) return false;
    this.entries.set(name, {
      version,
      changedAt: now,
      delayMs: this.options.quietMs,
      timer: undefined,
      fired: false,
    });
    return true;
  }

  private changed(entry: Tracked, version: FileVersion, now: number): void {
    entry.version = version;
    entry.changedAt = now;
    entry.delayMs = Math.min(entry.delayMs * 2, this.options.maxQuietMs);
  }

  private schedule(name: string, entry: Tracked, delayMs: number): void {
    if (this.closed) return;
    clearTimeout(entry.timer);
    entry.timer = setTimeout(
      () => {
        entry.timer = undefined;
        entry.fired = true;
        this.options.onDue(name);
      },
      Math.max(1, delayMs),
    );
    entry.timer.unref();
  }
}
