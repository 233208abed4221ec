import { uint8s, uint16s } from './big-arrays.js';

/** Code units of one page: a token never spans two. */
export const PAGE_BITS = 16;
const PAGE_UNITS = 2 ** PAGE_BITS;
export const PAGE_MASK = PAGE_UNITS - 1;
/** The longest token, in code units (in a page of units: its length before it). */
export const MAX_TOKEN_UNITS = PAGE_UNITS - 1;
/** The longest token a page of bytes takes (its length in the byte before it). */
const MAX_BYTE_TOKEN_UNITS = 0xff;

/** A page: bytes, for tokens whose units are all below 256 (Latin-1, ASCII above all), or 16-bit units. */
export type TokenPage = Uint8Array | Uint16Array;

/**
 * The code units of a `TokenStore`'s tokens, in pages of `PAGE_UNITS` elements, each token addressed by a
 * 32-bit number (its page << PAGE_BITS | where its units start) and preceded by its length. A token whose
 * units are all below 256 and that is at most 255 long goes to a page of bytes, any other to a page of
 * 16-bit units: a hexadecimal word of 12 digits takes 13 bytes, where it took 30 with 16-bit units and its
 * handle in the page.
 *
 * Tokens are appended to the newest page of their kind; a page whose tokens are all released is dropped,
 * and one less than a quarter live has its live tokens moved to the newest page of its kind and is
 * dropped, at once: at most a quarter page moved per release, and memory follows the live tokens down
 * whichever leave. A page does not say which tokens in it are live: the store does (`ownerAt`).
 */
export class TokenPages {
  readonly pages: Array<TokenPage | undefined> = [];
  /** Elements written to each page (lengths included), and those of its live tokens. */
  private readonly written: number[] = [];
  private readonly live: number[] = [];
  private readonly freePages: number[] = [];
  /** The page of bytes and the page of units being filled, or -1. */
  private currentBytes = -1;
  private currentUnits = -1;

  constructor(
    /** The handle whose token is at `address`, or -1 when the token there was released. */
    private readonly ownerAt: (address: number) => number,
    /** Token `h`'s units were moved to `address`. */
    private readonly moved: (h: number, address: number) => void,
  ) {}

  /** Elements the pages hold room for (bytes or units). */
  get units(): number {
    return (this.pages.length - this.freePages.length) * PAGE_UNITS;
  }

  /** Whether a token of `length` units whose greatest unit is `maxUnit` goes to a page of bytes. */
  static fitsBytes(length: number, maxUnit: number): boolean {
    return maxUnit < 0x100 && length <= MAX_BYTE_TOKEN_UNITS;
  }

  /**
   * Room for a token of `length` units in the page being filled of its kind (a new page when it is full),
   * its length written; returns the address of its units, for the caller to write.
   */
  place(length: number, bytes: boolean): number {
    const size = length + 1;
    let p = bytes ? this.currentBytes : this.currentUnits;
    if (p < 0 || this.written[p]! + size > PAGE_UNITS) {
      const previous = p;
      p = this.freePages.pop() ?? this.pages.length;
      this.pages[p] = bytes ? uint8s(PAGE_UNITS) : uint16s(PAGE_UNITS);
      this.written[p] = 0;
      this.live[p] = 0;
      if (bytes) this.currentBytes = p;
      else this.currentUnits = p;
      if (previous >= 0 && this.live[previous] === 0) this.drop(previous);
    }
    const at = this.written[p]!;
    this.pages[p]![at] = length;
    this.written[p]! += size;
    this.live[p]! += size;
    return (p * PAGE_UNITS + at + 1) >>> 0;
  }

  /** The length of the token at `address` (also at `pages[address >>> PAGE_BITS][(address & PAGE_MASK) - 1]`). */
  lengthAt(address: number): number {
    return this.pages[address >>> PAGE_BITS]![(address & PAGE_MASK) - 1]!;
  }

  /** Releases the token at `address` (its page may be dropped, or moved out). */
  release(address: number): void {
    const p = address >>> PAGE_BITS;
    this.live[p]! -= this.lengthAt(address) + 1;
    if (p === this.currentBytes || p === this.currentUnits) return;
    if (this.live[p] === 0) this.drop(p);
    else if (this.live[p]! * 4 < this.written[p]!) this.evacuate(p);
  }

  /** Moves the live tokens out of page `p` to the newest page of its kind, and drops it. */
  private evacuate(p: number): void {
    const page = this.pages[p]!;
    const bytes = page instanceof Uint8Array;
    const end = this.written[p]!;
    for (let at = 0; at < end; at += page[at]! + 1) {
      const from = (p * PAGE_UNITS + at + 1) >>> 0;
      const h = this.ownerAt(from);
      if (h < 0) continue;
      const length = page[at]!;
      const address = this.place(length, bytes);
      const target = this.pages[address >>> PAGE_BITS]!;
      const to = address & PAGE_MASK;
      for (let i = 0; i < length; i++) target[to + i] = page[at + 1 + i]!;
      this.moved(h, address);
    }
    this.drop(p);
  }

  private drop(p: number): void {
    this.pages[p] = undefined;
    this.written[p] = 0;
    this.live[p] = 0;
    this.freePages.push(p);
    if (p === this.currentBytes) this.currentBytes = -1;
    if (p === this.currentUnits) this.currentUnits = -1;
  }
}
