import { uint16s } from './big-arrays.js';

/** Code units of one page: a token never spans two. */
export const PAGE_BITS = 16;
const PAGE_UNITS = 2 ** PAGE_BITS;
export const PAGE_MASK = PAGE_UNITS - 1;
/** Before each token in a page: its length, then its handle's low and high 16 bits (`DEAD` once released). */
const HEADER_UNITS = 3;
const DEAD = 0xffff;
/** The longest token, in code units. */
export const MAX_TOKEN_UNITS = PAGE_UNITS - HEADER_UNITS;

/**
 * The code units of a `TokenStore`'s tokens, in pages of `PAGE_UNITS`, each token addressed by a 32-bit
 * number (its page << PAGE_BITS | where its units start) and preceded by its length and handle. Tokens are
 * appended to the newest page; a page whose tokens are all released is dropped, and one less than a quarter
 * live has its tokens moved to the newest page and is dropped, at once: at most a quarter page of units
 * moved per release, and memory follows the live tokens down whichever leave. Handles are below 2^26.
 */
export class TokenPages {
  readonly pages: Array<Uint16Array | undefined> = [];
  /** Units written to each page (headers included), and units of its tokens still in use. */
  private readonly written: number[] = [];
  private readonly live: number[] = [];
  private readonly freePages: number[] = [];
  /** The page being filled, or -1. */
  private current = -1;

  /** `moved(h, address)`: token `h`'s units were moved to `address`. */
  constructor(private readonly moved: (h: number, address: number) => void) {}

  /** Units the pages hold room for. */
  get units(): number {
    return (this.pages.length - this.freePages.length) * PAGE_UNITS;
  }

  /**
   * Room for token `h` of `length` units in the page being filled (a new page when it is full), its header
   * written; returns the address of its units, for the caller to write.
   */
  place(h: number, length: number): number {
    const size = length + HEADER_UNITS;
    let p = this.current;
    if (p < 0 || this.written[p]! + size > PAGE_UNITS) {
      const previous = p;
      p = this.freePages.pop() ?? this.pages.length;
      this.pages[p] = uint16s(PAGE_UNITS);
      this.written[p] = 0;
      this.live[p] = 0;
      this.current = p;
      if (previous >= 0 && this.live[previous] === 0) this.drop(previous);
    }
    const page = this.pages[p]!;
    const at = this.written[p]!;
    page[at] = length;
    page[at + 1] = h & 0xffff;
    page[at + 2] = h >>> 16;
    this.written[p]! += size;
    this.live[p]! += size;
    return (p * PAGE_UNITS + at + HEADER_UNITS) >>> 0;
  }

  /** The token at `address` belongs to handle `h` now. */
  setOwner(address: number, h: number): void {
    const page = this.pages[address >>> PAGE_BITS]!;
    const at = address & PAGE_MASK;
    page[at - 2] = h & 0xffff;
    page[at - 1] = h >>> 16;
  }

  /** The length of the token at `address` (also at `pages[address >>> PAGE_BITS][(address & PAGE_MASK) - 3]`). */
  lengthAt(address: number): number {
    return this.pages[address >>> PAGE_BITS]![(address & PAGE_MASK) - HEADER_UNITS]!;
  }

  /** Releases the token at `address` (its page may be dropped, or moved out). */
  release(address: number): void {
    const p = address >>> PAGE_BITS;
    const page = this.pages[p]!;
    const at = address & PAGE_MASK;
    page[at - 1] = DEAD;
    this.live[p]! -= page[at - HEADER_UNITS]! + HEADER_UNITS;
    if (p === this.current) return;
    if (this.live[p] === 0) this.drop(p);
    else if (this.live[p]! * 4 < this.written[p]!) this.evacuate(p);
  }

  /** Moves the tokens still in use out of page `p` to the newest, and drops it. */
  private evacuate(p: number): void {
    const page = this.pages[p]!;
    const end = this.written[p]!;
    for (let at = 0; at < end; at += page[at]! + HEADER_UNITS) {
      const high = page[at + 2]!;
      if (high === DEAD) continue;
      const h = (high << 16) | page[at + 1]!;
      const length = page[at]!;
      const address = this.place(h, length);
      const target = this.pages[address >>> PAGE_BITS]!;
      const to = address & PAGE_MASK;
      for (let i = 0; i < length; i++) target[to + i] = page[at + HEADER_UNITS + i]!;
      this.moved(h, address);
    }
    this.drop(p);
  }

  private drop(p: number): void {
    this.pages[p] = undefined;
    this.written[p] = 0;
    this.live[p] = 0;
    this.freePages.push(p);
    if (p === this.current) this.current = -1;
  }
}
