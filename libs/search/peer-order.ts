import type { FileEntry } from '../protocol/index.js';
import type { IndexFiles } from './index-files.js';
import type { IndexPeer } from './index-peer.js';
import { IdSort, NameOrder } from './name-order.js';
import { runSliced, type SliceOptions, whileSliced } from './slices.js';

/** Changes a kept order always takes one at a time (each a binary search and a shift of the ids after it). */
const KEPT_ORDER_CHANGES = 64;
/**
 * Past `KEPT_ORDER_CHANGES`, a change of more than 1/16 of a peer's files drops its order to be sorted again:
 * a shift moves half the ids on average, a sort compares each name about log2(n) times.
 */
const KEPT_ORDER_SHARE = 16;
/**
 * Most work of a sort done in one go when a peer without an order is read: log2(files) × (its names'
 * UTF-8 bytes + 32 per file), about a nanosecond a unit (so some milliseconds). A larger peer's order is
 * sorted in slices by the async update that left it without one (`prepareAsync`).
 */
const MAX_SORT_WORK_IN_ONE_GO = 4_000_000;

/**
 * Each peer's files in name order (code-unit order), for paging (`NetworkIndex.peerFiles`). A peer's order
 * is built on its first read, then kept up to date by every change of its files (see `IndexFiles.put` and
 * `remove`): a read after a change never sorts again. A change of many files drops the order instead (one
 * sort costs less than that many shifts), and the async updates sort a large peer's again in slices before
 * they end, so that no read sorts more than `MAX_SORT_WORK_IN_ONE_GO`.
 */
export class PeerOrders {
  constructor(private readonly files: IndexFiles) {}

  /** Before `changes` files of `peer` come or go: drops an order that would cost more to keep than to sort. */
  expectChanges(peer: IndexPeer, changes: number): void {
    if (peer.order === undefined || changes <= KEPT_ORDER_CHANGES) return;
    if (changes * KEPT_ORDER_SHARE > peer.fileCount) peer.order = undefined;
  }

  /** Sorts `peer`'s files in slices when it has no order and sorting it on a read would take long. */
  async prepareAsync(peer: IndexPeer, options: SliceOptions): Promise<void> {
    if (peer.order !== undefined || !isLarge(peer)) return;
    const sort = new IdSort(peer.fileCount, this.files.texts);
    let id = peer.first;
    await whileSliced(
      () => id >= 0,
      () => (id = this.add(sort, id)),
      options,
    );
    await whileSliced(
      () => !sort.done,
      () => sort.step(),
      options,
    );
    peer.order = new NameOrder(sort.sorted());
  }

  /** `peer`'s files by name from `offset`, at most `limit`. */
  page(peer: IndexPeer, offset: number, limit: number): FileEntry[] {
    const start = Math.max(0, Math.floor(offset) || 0);
    const count = limit >= 0 ? Math.floor(limit) : 0;
    const ids = this.of(peer).slice(start, start + Math.min(count, peer.fileCount));
    return Array.from(ids, (id) => this.files.entry(id));
  }

  /** Visits `peer`'s files by name with their positions, sorted (when needed) and read in slices. */
  async forEachAsync(
    peer: IndexPeer,
    visit: (file: FileEntry, position: number) => void,
    options: SliceOptions,
  ): Promise<void> {
    await this.prepareAsync(peer, options);
    const order = this.of(peer);
    await runSliced(
      () => order.length,
      (i) => visit(this.files.entry(order.at(i)), i),
      options,
    );
  }

  /** `peer`'s order, sorted now (in one go) if it has none. */
  private of(peer: IndexPeer): NameOrder {
    if (peer.order === undefined) {
      const sort = new IdSort(peer.fileCount, this.files.texts);
      for (let id = peer.first; id >= 0; ) id = this.add(sort, id);
      while (!sort.done) sort.step(Number.POSITIVE_INFINITY);
      peer.order = new NameOrder(sort.sorted());
    }
    return peer.order;
  }

  /** Adds file `id` to `sort`; returns the next file of its owner. */
  private add(sort: IdSort, id: number): number {
    sort.add(id, this.files.table.texts.get(id));
    return this.files.nextOf(id);
  }
}

/** Whether sorting `peer`'s names in one go could hold the event loop for long. */
function isLarge(peer: IndexPeer): boolean {
  return (
    Math.ceil(Math.log2(peer.fileCount + 1)) * (peer.nameBytes + 32 * peer.fileCount) >
    MAX_SORT_WORK_IN_ONE_GO
  );
}
