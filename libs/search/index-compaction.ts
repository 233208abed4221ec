import type { IndexFiles } from './index-files.js';
import { forEachSliced, runSliced, type SliceOptions, whileSliced } from './slices.js';

/** The id space is compacted (live files moved down) once fewer than half of its ids are live. */
const COMPACT_BELOW_LIVE_SHARE = 0.5;
const COMPACT_MIN_IDS = 4096;

function isSparse(files: IndexFiles): boolean {
  const ids = files.table.idCount;
  return ids >= COMPACT_MIN_IDS && files.table.liveCount < ids * COMPACT_BELOW_LIVE_SHARE;
}

/** The synchronous updates only give back a free top; moving files is left to `compactIndex`. */
export function trimIfSparse(files: IndexFiles): void {
  if (isSparse(files)) files.table.trim();
}

/** `compactIndex` when the id space is mostly free or the name chunks mostly dead. */
export async function compactIfSparse(files: IndexFiles, options: SliceOptions): Promise<void> {
  const texts = files.texts;
  if (isSparse(files) || (texts.chunkCount > 2 && texts.liveBytes * 2 < texts.byteSize))
    await compactIndex(files, options);
}

/**
 * Moves the live files above the live count down into free ids, trims the free top, then empties the
 * sparse text chunks (one chunk a slice).
 */
export async function compactIndex(files: IndexFiles, options: SliceOptions): Promise<void> {
  const table = files.table;
  const target = table.liveCount;
  const high: number[] = [];
  await runSliced(
    () => table.idCount - target,
    (i) => {
      if (table.owner(target + i) !== 0) high.push(target + i);
    },
    options,
  );
  await forEachSliced(high, (id) => relocate(files, id), options);
  table.trim();
  let more = true;
  await whileSliced(
    () => more,
    () => {
      more = files.compactTexts();
    },
    { ...options, maxItemsPerSlice: 1 },
  );
}

/** Re-inserts live file `id` at the lowest free id, when that is lower; it keeps its place in its peer's order. */
function relocate(files: IndexFiles, id: number): void {
  const table = files.table;
  const lowest = table.lowestFree();
  if (table.owner(id) === 0 || lowest === undefined || lowest > id) return;
  const peer = files.ownerOf(id);
  if (peer.removed) return;
  const file = files.entry(id);
  const order = peer.order;
  const at = order === undefined ? -1 : order.indexOf(id, files.compareIds);
  // Out of the order while the file moves: the same name comes back at once, under another id.
  peer.order = undefined;
  files.remove(id);
  // Just removed: its name is not the peer's any more.
  const moved = files.upsert(peer, file, true);
  if (order !== undefined && at >= 0) {
    order.set(at, moved);
    peer.order = order;
  }
}
