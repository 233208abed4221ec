import type { NameOrder } from './name-order.js';
import type { OwnerList } from './owner-lists.js';
import { PeerRecord } from './peer-table.js';

/** A peer of the index: a record and the head of its list of files, nothing per file. */
export class IndexPeer extends PeerRecord implements OwnerList {
  first = -1;
  count = 0;
  /** UTF-8 bytes of its files' names (what sorting them may read). */
  nameBytes = 0;
  /**
   * Its file ids by name, for paging (see `PeerOrders`): built by a read, then kept up to date by each
   * change; undefined until then, and after a change of many files.
   */
  order: NameOrder | undefined;
  /**
   * Whether this peer's files are in the name chains. A first state of distinct names goes in without
   * them (nothing looks a name up while it loads); they are built when a name is first looked up
   * (`IndexFiles.chainNames`, or in slices by the index's async updates).
   */
  namesChained = true;

  get fileCount(): number {
    return this.count;
  }
}
