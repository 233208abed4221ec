import { int32s, Uint32Column } from './big-arrays.js';
import { IdPool } from './id-pool.js';
import { keyOf, keyOfUnits } from './sort-keys.js';
import { FNV_OFFSET, FNV_PRIME, hashToken } from './token-key.js';
import { MAX_TOKEN_UNITS, PAGE_BITS, PAGE_MASK, TokenPages } from './token-pages.js';

/** Shards of the hash table (a power of two), chosen by a hash's top bits. */
const SHARD_BITS = 8;
const SHARDS = 2 ** SHARD_BITS;
/**
 * Slots of a shard's table at the least (a power of two). A slot is two numbers side by side, the handle
 * + 1 (0 when empty) and the token's hash, so a probe reads the table alone, a few slots to a cache line.
 */
const MIN_SLOTS = 16;
/** Below this many handles, the top ones are not moved down (see `sparse`). */
const MIN_MOVE_LIMIT = 1024;
/** Handles the store can hand out (a token per file at most: the file table's id space). */
const MAX_TOKENS = 2 ** 26;

/**
 * Distinct tokens, each under a small integer handle, held in typed arrays off V8's heap: their code units
 * in the pages of an arena (`TokenPages`: bytes for Latin-1 tokens, 16-bit units for others, each token's
 * length before it), their address and one number for the owner (`value`) in columns by handle, and a hash
 * table of handles and hashes in shards (a token's sort key and hash are computed from its units when
 * needed again). A million tokens (a word of its own in every file name) cost the collector nothing to
 * trace, where a million objects with their strings, arrays and map entries cost about 200 bytes each on
 * the heap and every full collection marked them all.
 *
 * Handles are reused lowest first, and once at most half of those below the limit are in use the owner
 * moves the top ones down (`sparse`, `moveDown`), so the columns shrink whichever tokens were released.
 * A table shard rehashes alone (a 256th of the tokens).
 */
export class TokenStore {
  /** `seed` goes into every token's hash (`hashToken`). */
  constructor(private readonly seed = 0) {}

  private readonly arena = new TokenPages(
    (address) => this.ownerAt(address),
    (h, address) => this.offsets.set(h, address),
  );
  /** A token's address in the arena (see `TokenPages`; its length is there); 0 marks a free handle. */
  private readonly offsets = new Uint32Column();
  private readonly values = new Uint32Column();
  private readonly pool = new IdPool(MAX_TOKENS);
  /** No handle at or above this is in use. */
  private limit = 0;
  private count = 0;
  /** Each shard's slots (see `MIN_SLOTS`): linear probing up to three quarters full, no tombstones. */
  private readonly tables: Int32Array[] = Array.from({ length: SHARDS }, () => int32s(2 * MIN_SLOTS));
  private readonly filled = new Int32Array(SHARDS);

  get size(): number {
    return this.count;
  }

  /** No handle at or above this is in use. */
  get handleLimit(): number {
    return this.limit;
  }

  /** Units the arena holds room for (diagnostics). */
  get arenaUnits(): number {
    return this.arena.units;
  }

  /** `hashToken(token)` with this store's seed. */
  hash(token: string): number {
    return hashToken(token, this.seed);
  }

  /** The handle of `token`, or -1. */
  find(token: string, hash = hashToken(token, this.seed)): number {
    const table = this.tables[hash >>> (32 - SHARD_BITS)]!;
    const mask = (table.length >>> 1) - 1;
    for (let i = hash & mask; ; i = (i + 1) & mask) {
      const slot = table[2 * i]!;
      if (slot === 0) return -1;
      if (table[2 * i + 1] === hash && this.compareTo(slot - 1, token) === 0) return slot - 1;
    }
  }

  /** The handle of the lowercased ASCII token `bytes[from, to)` whose `hashToken` is `hash`, or -1. */
  findAscii(bytes: Uint8Array, from: number, to: number, hash: number): number {
    const table = this.tables[hash >>> (32 - SHARD_BITS)]!;
    const mask = (table.length >>> 1) - 1;
    for (let i = hash & mask; ; i = (i + 1) & mask) {
      const slot = table[2 * i]!;
      if (slot === 0) return -1;
      if (table[2 * i + 1] === hash && this.equalsAscii(slot - 1, bytes, from, to)) return slot - 1;
    }
  }

  /** Stores `token` (not in the store; `hash` its `hashToken`) under a new handle, its value 0. */
  add(token: string, hash = hashToken(token, this.seed)): number {
    const length = token.length;
    let maxUnit = 0;
    for (let i = 0; i < length; i++) maxUnit = Math.max(maxUnit, token.charCodeAt(i));
    const h = this.newHandle(length);
    const address = this.place(h, length, TokenPages.fitsBytes(length, maxUnit));
    const page = this.arena.pages[address >>> PAGE_BITS]!;
    const at = address & PAGE_MASK;
    for (let i = 0; i < length; i++) page[at + i] = token.charCodeAt(i);
    this.enter(h, hash);
    return h;
  }

  /** `add` of the lowercased ASCII token `bytes[from, to)`. */
  addAscii(bytes: Uint8Array, from: number, to: number, hash: number): number {
    const length = to - from;
    const h = this.newHandle(length);
    const address = this.place(h, length, TokenPages.fitsBytes(length, 0x7f));
    const page = this.arena.pages[address >>> PAGE_BITS]!;
    const at = (address & PAGE_MASK) - from;
    for (let i = from; i < to; i++) {
      const byte = bytes[i]!;
      page[at + i] = byte >= 65 && byte <= 90 ? byte + 32 : byte;
    }
    this.enter(h, hash);
    return h;
  }

  /** Forgets the token of handle `h`; the handle may be handed out again. */
  release(h: number): void {
    const address = this.offsets.get(h);
    if (address === 0) return;
    this.unslot(h);
    this.arena.release(address);
    this.offsets.set(h, 0);
    this.values.set(h, 0);
    this.count--;
    this.pool.push(h);
    if (this.offsets.get(this.limit - 1) === 0) this.trimHandles();
  }

  /**
   * Whether at most half of the handles below the limit are in use: then the top ones should move down
   * (`moveDown`), so that the columns can shrink whichever tokens were released.
   */
  get sparse(): boolean {
    return this.limit >= MIN_MOVE_LIMIT && this.count * 2 < this.limit;
  }

  /** The top handle when it is in use, else -1 (the free handles at the top are trimmed a step further). */
  topInUse(): number {
    if (this.offsets.get(this.limit - 1) !== 0) return this.limit - 1;
    this.trimHandles();
    return -1;
  }

  /** The lowest free handle below the limit (there is one while `sparse`). */
  lowestFree(): number {
    return this.pool.peek()!;
  }

  /** Moves token `from` to the free handle `to` (`lowestFree`); `from` is free after. */
  moveDown(from: number, to: number): void {
    this.pool.pop();
    const hash = this.hashOf(from);
    const table = this.tables[hash >>> (32 - SHARD_BITS)]!;
    const mask = (table.length >>> 1) - 1;
    let i = hash & mask;
    while (table[2 * i] !== from + 1) i = (i + 1) & mask;
    table[2 * i] = to + 1;
    for (const column of this.columns()) column.set(to, column.get(from));
    this.offsets.set(from, 0);
    this.values.set(from, 0);
    this.pool.push(from);
    if (from === this.limit - 1) this.trimHandles();
  }

  inUse(h: number): boolean {
    return h >= 0 && h < this.limit && this.offsets.get(h) !== 0;
  }

  value(h: number): number {
    return this.values.get(h);
  }

  setValue(h: number, value: number): void {
    this.values.set(h, value);
  }

  tokenOf(h: number): string {
    const address = this.offsets.get(h);
    const at = address & PAGE_MASK;
    const units = this.arena.pages[address >>> PAGE_BITS]!.subarray(at, at + this.arena.lengthAt(address));
    return String.fromCharCode.apply(null, units as unknown as number[]);
  }

  /** The sort key of token `h` (see `keyOf`). */
  key(h: number): number {
    const address = this.offsets.get(h);
    const page = this.arena.pages[address >>> PAGE_BITS]!;
    const at = address & PAGE_MASK;
    return keyOfUnits((i) => page[at + i]!, page[at - 1]!);
  }

  /** Negative, zero or positive as the token of `a` sorts before, with or after that of `b`. */
  compare(a: number, b: number): number {
    const oa = this.offsets.get(a);
    const ob = this.offsets.get(b);
    const pa = this.arena.pages[oa >>> PAGE_BITS]!;
    const pb = this.arena.pages[ob >>> PAGE_BITS]!;
    const ia = oa & PAGE_MASK;
    const ib = ob & PAGE_MASK;
    const la = pa[ia - 1]!;
    const lb = pb[ib - 1]!;
    const n = Math.min(la, lb);
    for (let i = 0; i < n; i++) {
      const d = pa[ia + i]! - pb[ib + i]!;
      if (d !== 0) return d;
    }
    return la - lb;
  }

  /** `compare` of the token of `h` with `token`. */
  compareTo(h: number, token: string): number {
    const address = this.offsets.get(h);
    const page = this.arena.pages[address >>> PAGE_BITS]!;
    const at = address & PAGE_MASK;
    const length = page[at - 1]!;
    const n = Math.min(length, token.length);
    for (let i = 0; i < n; i++) {
      const d = page[at + i]! - token.charCodeAt(i);
      if (d !== 0) return d;
    }
    return length - token.length;
  }

  startsWith(h: number, prefix: string): boolean {
    const address = this.offsets.get(h);
    const page = this.arena.pages[address >>> PAGE_BITS]!;
    const at = address & PAGE_MASK;
    if (page[at - 1]! < prefix.length) return false;
    for (let i = 0; i < prefix.length; i++) if (page[at + i] !== prefix.charCodeAt(i)) return false;
    return true;
  }

  /** Throws when a handle in use is not found by its token; for tests. */
  checkConsistency(): void {
    let used = 0;
    for (let h = 0; h < this.limit; h++) {
      if (this.offsets.get(h) === 0) continue;
      used++;
      const token = this.tokenOf(h);
      if (this.find(token) !== h) throw new Error(`${token} not found under its handle ${h}`);
      if (this.key(h) !== keyOf(token)) throw new Error(`${token} has a wrong key`);
      if (this.hashOf(h) !== hashToken(token, this.seed)) throw new Error(`${token} has a wrong hash`);
    }
    const slots = this.filled.reduce((sum, n) => sum + n, 0);
    if (used !== this.count || slots !== this.count)
      throw new Error(`${used} handles, ${slots} slots, ${this.count} tokens`);
  }

  private equalsAscii(h: number, bytes: Uint8Array, from: number, to: number): boolean {
    const address = this.offsets.get(h);
    const page = this.arena.pages[address >>> PAGE_BITS]!;
    if (page[(address & PAGE_MASK) - 1] !== to - from) return false;
    const at = (address & PAGE_MASK) - from;
    for (let i = from; i < to; i++) {
      const byte = bytes[i]!;
      if (page[at + i] !== (byte >= 65 && byte <= 90 ? byte + 32 : byte)) return false;
    }
    return true;
  }

  /** The lowest free handle, the columns grown to hold it, for a token of `length` units. */
  private newHandle(length: number): number {
    if (length === 0 || length > MAX_TOKEN_UNITS)
      throw new RangeError(`a token holds 1 to ${MAX_TOKEN_UNITS} code units, not ${length}`);
    const h = this.pool.pop() ?? this.limit;
    // Past this the pool could not hold the handle (a token per file at most: some gigabytes of tokens first).
    if (h >= MAX_TOKENS) throw new RangeError(`the store holds at most ${MAX_TOKENS} tokens`);
    if (h >= this.limit) {
      this.limit = h + 1;
      if (this.limit > this.offsets.limit) for (const column of this.columns()) column.setLimit(this.limit);
    }
    return h;
  }

  /** Room for token `h` of `length` units in the arena (a page of bytes or not), its address set; returns it. */
  private place(h: number, length: number, bytes: boolean): number {
    const address = this.arena.place(length, bytes);
    this.offsets.set(h, address);
    return address;
  }

  /** Token `h`, its units in place, gets its slot. */
  private enter(h: number, hash: number): void {
    this.values.set(h, 0);
    this.count++;
    this.slot(h, hash);
  }

  private columns(): Uint32Column[] {
    return [this.offsets, this.values];
  }

  /** The handle whose token is at `address` (found by the hash of the units there), or -1: released. */
  private ownerAt(address: number): number {
    const hash = this.hashAt(address);
    const table = this.tables[hash >>> (32 - SHARD_BITS)]!;
    const mask = (table.length >>> 1) - 1;
    for (let i = hash & mask; ; i = (i + 1) & mask) {
      const slot = table[2 * i]!;
      if (slot === 0) return -1;
      if (table[2 * i + 1] === hash && this.offsets.get(slot - 1) === address) return slot - 1;
    }
  }

  /** The `hashToken` of token `h`, from its units. */
  private hashOf(h: number): number {
    return this.hashAt(this.offsets.get(h));
  }

  /** The `hashToken` of the token at `address`. */
  private hashAt(address: number): number {
    const page = this.arena.pages[address >>> PAGE_BITS]!;
    const at = address & PAGE_MASK;
    let hash = FNV_OFFSET ^ this.seed;
    for (let i = at, end = at + page[at - 1]!; i < end; i++) hash = Math.imul(hash ^ page[i]!, FNV_PRIME);
    return hash | 0;
  }

  private slot(h: number, hash: number): void {
    const s = hash >>> (32 - SHARD_BITS);
    let table = this.tables[s]!;
    if ((this.filled[s]! + 1) * 4 > (table.length >>> 1) * 3) {
      this.rehash(s, table.length);
      table = this.tables[s]!;
    }
    const mask = (table.length >>> 1) - 1;
    let i = hash & mask;
    while (table[2 * i] !== 0) i = (i + 1) & mask;
    table[2 * i] = h + 1;
    table[2 * i + 1] = hash;
    this.filled[s]!++;
  }

  /** Takes handle `h` out of its shard, moving later slots of the same run back (no tombstones). */
  private unslot(h: number): void {
    const hash = this.hashOf(h);
    const s = hash >>> (32 - SHARD_BITS);
    const table = this.tables[s]!;
    const slots = table.length >>> 1;
    const mask = slots - 1;
    let i = hash & mask;
    while (table[2 * i] !== h + 1) i = (i + 1) & mask;
    for (let j = (i + 1) & mask; table[2 * j] !== 0; j = (j + 1) & mask) {
      const home = table[2 * j + 1]! & mask;
      // The entry at j may move to the hole at i when its home is not within (i, j], cyclically.
      if (i <= j ? home <= i || home > j : home <= i && home > j) {
        table[2 * i] = table[2 * j]!;
        table[2 * i + 1] = table[2 * j + 1]!;
        i = j;
      }
    }
    table[2 * i] = 0;
    table[2 * i + 1] = 0;
    this.filled[s]!--;
    if (slots > MIN_SLOTS && this.filled[s]! * 8 < slots) this.rehash(s, slots / 2);
  }

  /** Shard `s` gets a table of `slots` slots. */
  private rehash(s: number, slots: number): void {
    const old = this.tables[s]!;
    const table = int32s(2 * slots);
    const mask = slots - 1;
    for (let k = 0; k < old.length; k += 2) {
      const slot = old[k]!;
      if (slot === 0) continue;
      let i = old[k + 1]! & mask;
      while (table[2 * i] !== 0) i = (i + 1) & mask;
      table[2 * i] = slot;
      table[2 * i + 1] = old[k + 1]!;
    }
    this.tables[s] = table;
  }

  /**
   * The top handle is free: forgets the free handles at the top, at most a few thousand per call (a later
   * release goes on), and shrinks the columns once at most half of them is in use.
   */
  private trimHandles(): void {
    if (this.count === 0) this.limit = 0;
    for (let steps = 0; steps < 4096 && this.limit > 0 && this.offsets.get(this.limit - 1) === 0; steps++)
      this.limit--;
    this.pool.trimTo(this.limit);
    if (this.limit * 2 < this.offsets.limit) for (const column of this.columns()) column.setLimit(this.limit);
  }
}
