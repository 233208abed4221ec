import {
  type ChunkAssembler,
  concatPacked,
  type FileEntry,
  namesDistinct,
  PackedFiles,
  type PeerAnnounce,
} from '../../libs/protocol/index.js';

/** What an announce carries besides its files, kept while its chunks are assembled. */
export interface AnnounceMeta {
  instanceId: string;
  seq: number;
  url: string;
  publicKey: string;
  name: string | undefined;
  /** A state whose names are all distinct: found so by the decoding (one chunk) or on assembly (several). */
  distinctNames?: boolean;
}

/** A chunk of an announce as the assembler holds it: its files packed by a decoding thread, or objects. */
export type AnnouncePiece = FileEntry | PackedFiles;
export type AnnounceAssembler = ChunkAssembler<AnnounceMeta, AnnouncePiece>;

export type AssembledAnnounce =
  | {
      status: 'complete';
      meta: AnnounceMeta;
      /** The whole state, for the index. */
      files: readonly FileEntry[] | PackedFiles;
      /**
       * Each chunk's packed list (with its JSON), in order, when the state came in several chunks that were
       * all packed: the rebroadcast goes out in the same chunks, and the buffers are handed back after it.
       */
      pieces?: PackedFiles[];
    }
  | { status: 'too-large'; items: number }
  | { status: 'pending' | 'orphan' };

/**
 * Gives an announce's chunk to the assembler (or checks a state that came whole, packed, against the same
 * limits). A chunk packed by a decoding thread is held packed, as one piece that counts for its files: a
 * state in several chunks goes into the index as columns, as a state in one does, not as an object per
 * file (which cost the superpeer's thread twice the CPU of a join where peers split their states).
 * `pending`: the assembler keeps `packed` until the state is whole.
 */
export function assembleAnnounce(
  assembler: AnnounceAssembler,
  event: PeerAnnounce,
  bytes: number,
  meta: AnnounceMeta,
  packed: PackedFiles | undefined,
): AssembledAnnounce {
  if (packed !== undefined && event.chunkCount === 1) {
    const whole = assembler.addWhole(event.peerId, packed.length, bytes);
    return whole.status === 'complete' ? { status: 'complete', meta, files: packed } : whole;
  }
  const assembled = assembler.add({
    key: event.peerId,
    version: `${event.instanceId}/${event.seq}`,
    chunkIndex: event.chunkIndex,
    chunkCount: event.chunkCount,
    items: packed !== undefined ? [packed] : event.files,
    count: packed?.length ?? event.files.length,
    bytes,
    meta,
  });
  if (assembled.status !== 'complete') return assembled;
  // The meta of a state in chunks is its first chunk's, kept by the assembler.
  const items = assembled.items;
  if (items.every((item): item is PackedFiles => item instanceof PackedFiles)) {
    const files = concatPacked(items);
    // Told distinct, the index adds a new peer's files without looking each one up first.
    const meta = namesDistinct(files) ? { ...assembled.meta, distinctNames: true } : assembled.meta;
    return { status: 'complete', meta, files, pieces: items };
  }
  const files = items.flatMap((item) => (item instanceof PackedFiles ? item.entries() : [item]));
  return { status: 'complete', meta: assembled.meta, files };
}
