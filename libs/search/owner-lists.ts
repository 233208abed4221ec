import { PIECE_BITS, PIECE_MASK, Uint32Column } from './big-arrays.js';

/** The head of one owner's list of file ids (kept in the owner's record) and its length. */
export interface OwnerList {
  first: number;
  count: number;
}

/**
 * Every owner's files as a doubly linked list through one id-indexed column (next + 1 and previous + 1 of
 * each id side by side, 0 for none), so that an owner costs no array of its own (small arrays, one per
 * peer, end up scattered in the allocator's heap and keep its pages when freed) and adding or removing a
 * file is O(1). The column is kept in pieces (see `Column`): `setLimit` adds or drops pieces, copying nothing.
 */
export class OwnerLists {
  private readonly links = new Uint32Column(2);

  constructor() {
    this.links.setLimit(1);
  }

  add(list: OwnerList, id: number): void {
    const links = this.piece(id);
    const at = (id & PIECE_MASK) << 1;
    links[at] = list.first + 1;
    links[at + 1] = 0;
    if (list.first >= 0) this.setPrev(list.first, id);
    list.first = id;
    list.count++;
  }

  delete(list: OwnerList, id: number): void {
    const links = this.piece(id);
    const at = (id & PIECE_MASK) << 1;
    const after = links[at]! - 1;
    const before = links[at + 1]! - 1;
    if (before >= 0) this.piece(before)[(before & PIECE_MASK) << 1] = after + 1;
    else list.first = after;
    if (after >= 0) this.setPrev(after, before);
    list.count--;
  }

  /** The id after `id` in its owner's list, or -1. */
  after(id: number): number {
    return this.piece(id)[(id & PIECE_MASK) << 1]! - 1;
  }

  /** The ids of `list`, most recently added first. */
  ids(list: OwnerList): number[] {
    const ids: number[] = [];
    for (let id = list.first; id >= 0; id = this.after(id)) ids.push(id);
    return ids;
  }

  /** Room for ids below `limit`; the links of the ids below it stay. */
  setLimit(limit: number): void {
    this.links.setLimit(limit);
  }

  private piece(id: number): Uint32Array {
    return this.links.pieces[id >>> PIECE_BITS]!;
  }

  private setPrev(id: number, prev: number): void {
    this.piece(id)[((id & PIECE_MASK) << 1) + 1] = prev + 1;
  }
}
