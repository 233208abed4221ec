import type { HashWorker } from './hash-worker.js';

/**
 * The SHA-256 of a file whose bytes arrive out of order (segments from several sources), computed in order
 * while they arrive: a run of bytes written where the hashed prefix ends is hashed at once, from memory
 * (sent to the hashing thread); the bytes of segments ahead of the prefix are read back from the file when
 * the prefix reaches them (`gapAt()` says when, `hashRead()` does it), from the page cache, which still
 * holds them. Holding those chunks in memory instead was measured slower: tens of MiB of retained socket
 * buffers cost the garbage collector more than the page cache costs to read.
 *
 * Every byte offered must be final: the bytes that are on disk at that offset.
 */
export class PrefixHasher {
  private hashed = 0;
  /** Set while the caller reads bytes at the prefix back from the file: offers then are left to that read. */
  private reading = false;

  /** `hashing` is reset here: the digest is of this file's bytes only. */
  constructor(
    private readonly sizeBytes: number,
    private readonly hashing: HashWorker,
  ) {
    hashing.reset();
  }

  /** Bytes [0, hashedBytes) are in the hash (or on their way to it, in order). */
  get hashedBytes(): number {
    return this.hashed;
  }

  /**
   * The bytes of `chunks` are those at `position`; hashed now if they extend the prefix (the hashing thread
   * may then take the buffers over). A promise means the hashing thread is behind: await it.
   */
  offer(position: number, chunks: readonly Buffer[]): Promise<void> | undefined {
    if (this.reading || position !== this.hashed) return undefined;
    this.hashed += chunks.reduce((sum, chunk) => sum + chunk.length, 0);
    return this.hashing.update(chunks);
  }

  /**
   * Whether bytes at the prefix must come from the file: the file has them (`contiguousOnDisk`, the offset
   * below which every byte is on disk, is past the prefix) and no read is under way.
   */
  gapAt(contiguousOnDisk: number): boolean {
    return !this.reading && contiguousOnDisk > this.hashed;
  }

  /**
   * Hashes `length` bytes read back from the file at the prefix; `read` returns exactly that many (copied
   * to the hashing thread: the caller may reuse its buffer once this settles).
   */
  async hashRead(length: number, read: (position: number, length: number) => Promise<Buffer>): Promise<void> {
    if (this.reading) throw new Error('PrefixHasher: one read at a time');
    this.reading = true;
    try {
      const bytes = await read(this.hashed, length);
      this.hashed += bytes.length;
      await this.hashing.update([bytes], true);
    } finally {
      this.reading = false;
    }
  }

  /** The hex digest once every byte is in; undefined before. */
  async digest(): Promise<string | undefined> {
    if (this.hashed !== this.sizeBytes) return undefined;
    return await this.hashing.digest();
  }
}
