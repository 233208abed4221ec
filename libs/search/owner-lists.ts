import { int32s, regrown } from './big-arrays.js';

/** The head of one owner's list of file ids (kept in the owner's record) and its length. */
export interface OwnerList {
  first: number;
  count: number;
}

/**
 * Every owner's files as a doubly linked list through two id-indexed columns, so that an owner costs no
 * array of its own (small arrays, one per peer, end up scattered in the allocator's heap and keep its pages
 * when freed) and adding or removing a file is O(1).
 */
export class OwnerLists {
  private next = int32s(1024);
  private prev = int32s(1024);

  add(list: OwnerList, id: number): void {
    this.next[id] = list.first;
    this.prev[id] = -1;
    if (list.first >= 0) this.prev[list.first] = id;
    list.first = id;
    list.count++;
  }

  delete(list: OwnerList, id: number): void {
    const before = this.prev[id]!;
    const after = this.next[id]!;
    if (before >= 0) this.next[before] = after;
    else list.first = after;
    if (after >= 0) this.prev[after] = before;
    list.count--;
  }

  /** The id after `id` in its owner's list, or -1. */
  after(id: number): number {
    return this.next[id]!;
  }

  /** The ids of `list`, most recently added first. */
  ids(list: OwnerList): number[] {
    const ids: number[] = [];
    for (let id = list.first; id >= 0; id = this.next[id]!) ids.push(id);
    return ids;
  }

  /** Room for `capacity` ids; the links of ids below `keep` stay. */
  resize(capacity: number, keep: number): void {
    this.next = regrown(this.next, capacity, keep, int32s);
    this.prev = regrown(this.prev, capacity, keep, int32s);
  }
}
