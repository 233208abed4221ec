import { createHash, type Hash } from 'node:crypto';

/**
 * The SHA-256 of a file whose bytes arrive out of order (segments from several sources), computed in order
 * while they arrive: a chunk that starts where the hashed prefix ends is hashed at once, from memory; the
 * bytes of segments ahead of the prefix are read back from the file when the prefix reaches them
 * (`gapAt()` says when, `hashRead()` does it), from the page cache, which still holds them. Holding those
 * chunks in memory instead was measured slower: tens of MiB of retained socket buffers cost the garbage
 * collector more than the page cache costs to read.
 *
 * Every byte offered must be final: the bytes that are (or will be) on disk at that offset.
 */
export class PrefixHasher {
  private readonly hash: Hash = createHash('sha256');
  private hashed = 0;
  /** Set while the caller reads bytes at the prefix back from the file: offers then are left to that read. */
  private reading = false;

  constructor(private readonly sizeBytes: number) {}

  /** Bytes [0, hashedBytes) are in the hash. */
  get hashedBytes(): number {
    return this.hashed;
  }

  /** The bytes of `chunk` are those at `position`; hashed now if they extend the prefix. */
  offer(position: number, chunk: Buffer): void {
    if (this.reading || position !== this.hashed || chunk.length === 0) return;
    this.hash.update(chunk);
    this.hashed += chunk.length;
  }

  /**
   * Whether bytes at the prefix must come from the file: the file has them (`contiguousOnDisk`, the offset
   * below which every byte is on disk, is past the prefix) and no read is under way.
   */
  gapAt(contiguousOnDisk: number): boolean {
    return !this.reading && contiguousOnDisk > this.hashed;
  }

  /** Hashes `length` bytes read back from the file at the prefix; `read` returns exactly that many. */
  async hashRead(length: number, read: (position: number, length: number) => Promise<Buffer>): Promise<void> {
    if (this.reading) throw new Error('PrefixHasher: one read at a time');
    this.reading = true;
    try {
      const bytes = await read(this.hashed, length);
      this.hash.update(bytes);
      this.hashed += bytes.length;
    } finally {
      this.reading = false;
    }
  }

  /** The hex digest once every byte is in; undefined before. */
  digest(): string | undefined {
    if (this.hashed !== this.sizeBytes) return undefined;
    return this.hash.digest('hex');
  }
}
