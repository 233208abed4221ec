/**
 * A bounded set of recently seen keys: past `maxEntries` the oldest is forgotten. Map keeps insertion
 * order, so the first key is the oldest.
 */
export class SeenSet {
  private readonly keys = new Map<string, true>();

  constructor(private readonly maxEntries: number) {}

  get size(): number {
    return this.keys.size;
  }

  /** Adds `key`; false when it was already there. */
  add(key: string): boolean {
    if (this.keys.has(key)) return false;
    this.keys.set(key, true);
    if (this.keys.size > this.maxEntries) this.keys.delete(this.keys.keys().next().value!);
    return true;
  }
}
