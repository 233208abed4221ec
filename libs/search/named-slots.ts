import { bytesEqual, encodeScratch, hashBytes } from './bytes.js';

const MIN_SLOTS = 8;
const MIN_POOL_BYTES = 256;
/** Longest name (or extra text) in UTF-8 bytes; file names are at most 1024 characters, 3 KiB. */
export const MAX_TEXT_BYTES = 0xffff;

/**
 * One peer's file names as slots 0..count-1, kept as UTF-8 bytes in one pooled buffer (no JS string per
 * name: a string costs a header and a pointer besides its characters, and the garbage collector walks
 * every one), each optionally followed by an extra text (the index keeps the name's tokens there). Names
 * are found through an open-addressing hash table of slot numbers. Removing a slot moves the last one
 * into it (`onMove` tells the owner, whose own per-slot columns must follow). The pool is compacted once
 * removals leave it mostly holes, and all of its memory goes when the owner drops it.
 */
export class NamedSlots {
  private pool: Buffer = Buffer.alloc(0);
  private used = 0;
  private dead = 0;
  private starts = new Uint32Array(MIN_SLOTS);
  private nameLengths = new Uint16Array(MIN_SLOTS);
  private extraLengths = new Uint16Array(MIN_SLOTS);
  /** slot + 1 per bucket, 0 = empty; a power of two at least twice the count. */
  private table = new Uint32Array(MIN_SLOTS * 2);
  private size = 0;

  constructor(private readonly onMove: (from: number, to: number) => void = () => {}) {}

  get count(): number {
    return this.size;
  }

  /** Bytes held (pool, columns and table), for diagnostics. */
  get byteSize(): number {
    return this.pool.length + this.starts.byteLength * 2 + this.table.byteLength;
  }

  /**
   * Makes room for `slots` slots and `bytes` bytes of text at once, so that a peer filled from a known list
   * grows its buffers once instead of by repeated doubling (whose discarded copies fragment the heap).
   */
  reserve(slots: number, bytes: number): void {
    if (slots > this.starts.length) this.resizeColumns(slots);
    if (this.used + bytes > this.pool.length) this.movePool(this.used + bytes);
    if (slots * 2 > this.table.length) this.rebuildTable(tableSize(slots));
  }

  /** The slot named `name`, or -1. */
  find(name: string): number {
    const { bytes, length } = encodeScratch(name);
    const mask = this.table.length - 1;
    for (let b = hashBytes(bytes, 0, length) & mask; ; b = (b + 1) & mask) {
      const entry = this.table[b]!;
      if (entry === 0) return -1;
      const slot = entry - 1;
      if (this.nameLengths[slot] === length && bytesEqual(this.pool, this.starts[slot]!, bytes, 0, length))
        return slot;
    }
  }

  /** Adds `name` (which must not be here yet) with its extra text; returns its slot, the last one. */
  add(name: string, extra = ''): number {
    const slot = this.size;
    if (slot >= this.starts.length) this.resizeColumns(Math.ceil(slot * 1.5) + MIN_SLOTS);
    const length = this.append(extra === '' ? name : name + extra);
    const nameLength = extra === '' ? length : Buffer.byteLength(name, 'utf8');
    const extraLength = length - nameLength;
    if (nameLength > MAX_TEXT_BYTES || extraLength > MAX_TEXT_BYTES)
      throw new RangeError(`a name holds at most ${MAX_TEXT_BYTES} UTF-8 bytes`);
    this.starts[slot] = this.used;
    this.nameLengths[slot] = nameLength;
    this.extraLengths[slot] = extraLength;
    this.used += nameLength + extraLength;
    this.size++;
    if (this.size * 2 > this.table.length) this.rebuildTable(this.table.length * 2);
    else this.tableInsert(slot);
    return slot;
  }

  /** Removes `slot`; the last slot moves into it. */
  remove(slot: number): void {
    this.tableDelete(slot);
    this.dead += this.nameLengths[slot]! + this.extraLengths[slot]!;
    const last = this.size - 1;
    if (slot !== last) {
      this.table[this.bucketOf(last)] = slot + 1;
      this.starts[slot] = this.starts[last]!;
      this.nameLengths[slot] = this.nameLengths[last]!;
      this.extraLengths[slot] = this.extraLengths[last]!;
      this.onMove(last, slot);
    }
    this.size--;
    if (this.starts.length > MIN_SLOTS * 4 && this.size * 4 < this.starts.length) this.fit();
    else if (this.dead > MIN_POOL_BYTES && this.dead > this.used - this.dead) this.compactPool(0);
  }

  name(slot: number): string {
    const start = this.starts[slot]!;
    return this.pool.toString('utf8', start, start + this.nameLengths[slot]!);
  }

  extra(slot: number): string {
    const start = this.starts[slot]! + this.nameLengths[slot]!;
    return this.pool.toString('utf8', start, start + this.extraLengths[slot]!);
  }

  /** The pool, for byte-level reads of `extraStart`/`extraLength`; valid until the next change. */
  get bytes(): Buffer {
    return this.pool;
  }

  extraStart(slot: number): number {
    return this.starts[slot]! + this.nameLengths[slot]!;
  }

  extraLength(slot: number): number {
    return this.extraLengths[slot]!;
  }

  /** Gives back every spare byte: the pool, the columns and the table shrink to fit the slots. */
  fit(): void {
    if (this.dead > 0) this.compactPool(0);
    else if (this.pool.length > this.used) this.movePool(this.used);
    const slots = Math.max(MIN_SLOTS, this.size);
    if (this.starts.length > slots) this.resizeColumns(slots);
    if (this.table.length > tableSize(this.size)) this.rebuildTable(tableSize(this.size));
  }

  /** Writes `text` at the end of the pool (not yet counted in `used`); returns its byte length. */
  private append(text: string): number {
    const { bytes, length } = encodeScratch(text);
    if (this.used + length > this.pool.length) {
      if (this.dead > this.used - this.dead) this.compactPool(length);
      if (this.used + length > this.pool.length)
        this.movePool(Math.max(MIN_POOL_BYTES, 2 * (this.used + length)));
    }
    bytes.copy(this.pool, this.used, 0, length);
    return length;
  }

  /** Rewrites the live texts contiguously into a pool with `spare` free bytes after them. */
  private compactPool(spare: number): void {
    const live = this.used - this.dead;
    const pool = Buffer.allocUnsafeSlow(live + spare);
    let at = 0;
    for (let slot = 0; slot < this.size; slot++) {
      const start = this.starts[slot]!;
      const length = this.nameLengths[slot]! + this.extraLengths[slot]!;
      this.pool.copy(pool, at, start, start + length);
      this.starts[slot] = at;
      at += length;
    }
    this.pool = pool;
    this.used = at;
    this.dead = 0;
  }

  private movePool(capacity: number): void {
    const pool = Buffer.allocUnsafeSlow(capacity);
    this.pool.copy(pool, 0, 0, this.used);
    this.pool = pool;
  }

  private resizeColumns(slots: number): void {
    this.starts = resized(this.starts, new Uint32Array(slots), this.size);
    this.nameLengths = resized(this.nameLengths, new Uint16Array(slots), this.size);
    this.extraLengths = resized(this.extraLengths, new Uint16Array(slots), this.size);
  }

  private home(slot: number): number {
    return hashBytes(this.pool, this.starts[slot]!, this.nameLengths[slot]!) & (this.table.length - 1);
  }

  private bucketOf(slot: number): number {
    const mask = this.table.length - 1;
    let b = this.home(slot);
    while (this.table[b] !== slot + 1) b = (b + 1) & mask;
    return b;
  }

  private tableInsert(slot: number): void {
    const mask = this.table.length - 1;
    let b = this.home(slot);
    while (this.table[b] !== 0) b = (b + 1) & mask;
    this.table[b] = slot + 1;
  }

  /** Linear-probing deletion by backward shift: no tombstones, so lookups stay short. */
  private tableDelete(slot: number): void {
    const table = this.table;
    const mask = table.length - 1;
    let hole = this.bucketOf(slot);
    for (let next = (hole + 1) & mask; table[next] !== 0; next = (next + 1) & mask) {
      const home = this.home(table[next]! - 1);
      // Move `next` into the hole unless its home lies cyclically in (hole, next].
      const between = hole <= next ? home > hole && home <= next : home > hole || home <= next;
      if (!between) {
        table[hole] = table[next]!;
        hole = next;
      }
    }
    table[hole] = 0;
  }

  private rebuildTable(buckets: number): void {
    this.table = new Uint32Array(buckets);
    for (let slot = 0; slot < this.size; slot++) this.tableInsert(slot);
  }
}

function tableSize(slots: number): number {
  let size = MIN_SLOTS * 2;
  while (size < slots * 2) size *= 2;
  return size;
}

function resized<T extends Uint32Array | Uint16Array>(from: T, to: T, count: number): T {
  to.set(from.subarray(0, Math.min(count, to.length)));
  return to;
}
