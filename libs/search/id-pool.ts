import { uint32s } from './big-arrays.js';

/** Ids the pool can hold: the file table's id space. */
const MAX_IDS = 2 ** 26;

/**
 * Free file ids, lowest first, so that live files gather at low ids and the top of the id space empties
 * out and can be given back (`trimTo`). A bitset with a summary above it (level k + 1 has a bit for each
 * word of level k that is not zero), so push, pop and peek cost a few word operations per level and
 * forgetting the ids above a limit costs one pass over their words, not over the whole pool (a heap of a
 * million ids took 16 ms to filter). The levels are sized for the whole id space (8 MiB at the bottom) but
 * only the pages of words ever set are backed by memory (see `big-arrays.ts`).
 */
export class IdPool {
  /** levels[0] has a bit per id; the last level is one word. */
  private readonly levels: Uint32Array[] = [];
  private count = 0;
  /** No id at or above this is in the pool. */
  private bound = 0;

  constructor(maxIds = MAX_IDS) {
    let bits = maxIds;
    do {
      const words = Math.ceil(bits / 32);
      this.levels.push(uint32s(words));
      bits = words;
    } while (bits > 1);
  }

  get size(): number {
    return this.count;
  }

  push(id: number): void {
    let index = id;
    for (const level of this.levels) {
      const w = index >>> 5;
      const before = level[w]!;
      level[w] = before | (1 << (index & 31));
      if (before !== 0) break;
      index = w;
    }
    this.count++;
    if (id >= this.bound) this.bound = id + 1;
  }

  peek(): number | undefined {
    if (this.count === 0) return undefined;
    let index = 0;
    for (let k = this.levels.length - 1; k >= 0; k--) {
      const word = this.levels[k]![index]!;
      index = (index << 5) | (31 - Math.clz32(word & -word));
    }
    return index;
  }

  pop(): number | undefined {
    const id = this.peek();
    if (id !== undefined) this.clear(id);
    return id;
  }

  /** Forgets every id >= `limit` (the id space shrank to `limit`): one pass over the words above it. */
  trimTo(limit: number): void {
    if (limit >= this.bound) return;
    const bottom = this.levels[0]!;
    const first = limit >>> 5;
    const end = (this.bound + 31) >>> 5;
    for (let w = first; w < end; w++) {
      const word = bottom[w]!;
      if (word === 0) continue;
      const kept = w === first ? word & ~(~0 << (limit & 31)) : 0;
      this.count -= bitCount(word ^ kept);
      bottom[w] = kept;
      if (kept === 0) this.clearAbove(w);
    }
    this.bound = limit;
  }

  private clear(id: number): void {
    const bottom = this.levels[0]!;
    const w = id >>> 5;
    const after = bottom[w]! & ~(1 << (id & 31));
    bottom[w] = after;
    this.count--;
    if (after === 0) this.clearAbove(w);
  }

  /** Word `w` of the bottom level became zero: clears its bit above, and so on up while words empty. */
  private clearAbove(w: number): void {
    let index = w;
    for (let k = 1; k < this.levels.length; k++) {
      const level = this.levels[k]!;
      const word = index >>> 5;
      const after = level[word]! & ~(1 << (index & 31));
      level[word] = after;
      if (after !== 0) return;
      index = word;
    }
  }
}

function bitCount(word: number): number {
  let v = word - ((word >>> 1) & 0x55555555);
  v = (v & 0x33333333) + ((v >>> 2) & 0x33333333);
  return (Math.imul((v + (v >>> 4)) & 0x0f0f0f0f, 0x01010101) >>> 24) & 0xff;
}
