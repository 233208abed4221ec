/**
 * Reassembles a list that a sender split over several messages (`chunkIndex` of `chunkCount`), one list per
 * key (a peer id) at a time. Keys come from the network, so everything it holds is bounded: the assemblies
 * in progress (count), the items and bytes they hold together, and their age. Past a bound the assembly
 * fed least recently is evicted first; its sender is asked again later, as for any lost chunk.
 */

export interface AssemblerLimits {
  /** Assemblies in progress at once. */
  maxPending: number;
  /** Items held by all assemblies in progress together. */
  maxItems: number;
  /** Bytes (as the caller weighs each part, e.g. its message body) held by all assemblies together. */
  maxBytes: number;
  /** An assembly not completed within this long is dropped. */
  maxAgeMs: number;
  /** One list may not hold more items than this; the whole list is then refused. */
  maxItemsPerList: number;
}

export interface ChunkPart<M, T> {
  key: string;
  /** What the chunks of one list share (instance and seq): a part of another version starts over. */
  version: string;
  chunkIndex: number;
  chunkCount: number;
  items: readonly T[];
  /** Items this part counts for against the limits, when an item stands for several. Default `items.length`. */
  count?: number;
  /** Kept from chunk 0 and handed back with the whole list (url, key, …). */
  meta: M;
  /** Weight of this part against `maxBytes`. Default 0. */
  bytes?: number;
}

export type AssembleResult<M, T> =
  | { status: 'complete'; meta: M; items: T[] }
  | { status: 'pending' }
  /** A chunk without the start of its list (lost, evicted or out of order): nothing kept. */
  | { status: 'orphan' }
  /** The list is longer than `maxItemsPerList`: nothing kept. */
  | { status: 'too-large'; items: number };

interface Assembly<M, T> {
  version: string;
  meta: M;
  chunks: (readonly T[])[];
  chunkCount: number;
  items: number;
  bytes: number;
  startedMs: number;
}

export const DEFAULT_ASSEMBLER_LIMITS: AssemblerLimits = {
  maxPending: 1000,
  maxItems: 500_000,
  maxBytes: 128 * 1024 * 1024,
  maxAgeMs: 30_000,
  maxItemsPerList: 100_000,
};

export class ChunkAssembler<M, T> {
  private readonly limits: AssemblerLimits;
  /** Insertion order is activity order: an assembly that receives a chunk is moved to the end. */
  private readonly assemblies = new Map<string, Assembly<M, T>>();
  private heldItems = 0;
  private heldBytes = 0;
  /** Assemblies dropped to stay within the limits, since creation. */
  evicted = 0;

  /**
   * `onDrop`: given the items of every assembly dropped before it completed (evicted, expired, superseded,
   * orphaned, refused or deleted), so that a caller whose items hold pooled buffers can take them back.
   */
  constructor(
    limits: Partial<AssemblerLimits> = {},
    private readonly now: () => number = Date.now,
    private readonly onDrop?: (items: readonly T[]) => void,
  ) {
    this.limits = { ...DEFAULT_ASSEMBLER_LIMITS, ...limits };
  }

  get pending(): number {
    return this.assemblies.size;
  }

  get items(): number {
    return this.heldItems;
  }

  get bytes(): number {
    return this.heldBytes;
  }

  add(part: ChunkPart<M, T>): AssembleResult<M, T> {
    this.expire();
    const bytes = part.bytes ?? 0;
    const count = part.count ?? part.items.length;
    if (part.chunkIndex === 0) {
      const refused = this.startList(part.key, count, bytes);
      if (refused) return refused;
      if (part.chunkCount <= 1) return { status: 'complete', meta: part.meta, items: [...part.items] };
      this.makeRoom(count, bytes);
      this.assemblies.set(part.key, {
        version: part.version,
        meta: part.meta,
        chunks: [part.items],
        chunkCount: part.chunkCount,
        items: count,
        bytes,
        startedMs: this.now(),
      });
      this.heldItems += count;
      this.heldBytes += bytes;
      return { status: 'pending' };
    }
    const assembly = this.assemblies.get(part.key);
    if (
      !assembly ||
      assembly.version !== part.version ||
      assembly.chunkCount !== part.chunkCount ||
      assembly.chunks.length !== part.chunkIndex
    ) {
      this.delete(part.key);
      return { status: 'orphan' };
    }
    const total = assembly.items + count;
    if (total > this.limits.maxItemsPerList || !this.fitsAlone(total, assembly.bytes + bytes)) {
      this.delete(part.key);
      return { status: 'too-large', items: total };
    }
    // Keep this one while making room: it is the one about to complete or grow.
    this.assemblies.delete(part.key);
    this.heldItems -= assembly.items;
    this.heldBytes -= assembly.bytes;
    if (assembly.chunks.length + 1 >= assembly.chunkCount) {
      assembly.chunks.push(part.items);
      return { status: 'complete', meta: assembly.meta, items: assembly.chunks.flat() };
    }
    this.makeRoom(total, assembly.bytes + bytes);
    assembly.chunks.push(part.items);
    assembly.items = total;
    assembly.bytes += bytes;
    this.assemblies.set(part.key, assembly);
    this.heldItems += assembly.items;
    this.heldBytes += assembly.bytes;
    return { status: 'pending' };
  }

  /**
   * `add` of a list that came whole (one chunk) in a form the caller keeps itself (not an array), of
   * `count` items: the same checks, and the key's assembly in progress, if any, is dropped.
   */
  addWhole(
    key: string,
    count: number,
    bytes = 0,
  ): { status: 'complete' } | { status: 'too-large'; items: number } {
    this.expire();
    return this.startList(key, count, bytes) ?? { status: 'complete' };
  }

  /** A list starts (its chunk 0): the key's previous assembly goes; refused when it cannot fit at all. */
  private startList(
    key: string,
    count: number,
    bytes: number,
  ): { status: 'too-large'; items: number } | undefined {
    this.delete(key);
    if (count > this.limits.maxItemsPerList || !this.fitsAlone(count, bytes))
      return { status: 'too-large', items: count };
    return undefined;
  }

  /** Forgets the key's assembly (the peer left). */
  delete(key: string): void {
    const assembly = this.assemblies.get(key);
    if (!assembly) return;
    this.assemblies.delete(key);
    this.heldItems -= assembly.items;
    this.heldBytes -= assembly.bytes;
    this.onDrop?.(assembly.chunks.flat());
  }

  clear(): void {
    for (const key of [...this.assemblies.keys()]) this.delete(key);
  }

  /** Drops assemblies older than `maxAgeMs` (also done on every `add`). */
  expire(): void {
    const oldest = this.now() - this.limits.maxAgeMs;
    for (const [key, assembly] of this.assemblies) {
      if (assembly.startedMs > oldest) continue;
      this.delete(key);
      this.evicted++;
    }
  }

  private fitsAlone(items: number, bytes: number): boolean {
    return items <= this.limits.maxItems && bytes <= this.limits.maxBytes;
  }

  /** Evicts the least recently fed assemblies until one holding `items` and `bytes` more fits. */
  private makeRoom(items: number, bytes: number): void {
    for (const key of this.assemblies.keys()) {
      if (
        this.assemblies.size < this.limits.maxPending &&
        this.heldItems + items <= this.limits.maxItems &&
        this.heldBytes + bytes <= this.limits.maxBytes
      ) {
        return;
      }
      this.delete(key);
      this.evicted++;
    }
  }
}
