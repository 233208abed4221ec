import type { HashWorker } from './hash-worker.js';

/**
 * The SHA-256 of a file whose bytes arrive out of order (segments from several sources), computed in order
 * while they arrive: a run of bytes written where the hashed prefix ends is hashed by the thread that writes
 * it, from memory, as it is written (`claim()` says so); the bytes of segments ahead of the prefix are read
 * back from the file when the prefix reaches them (`gapAt()` says when, `hashFile()` does it, in the
 * hashing thread), from the page cache, which still holds them. Holding those chunks in memory instead was
 * measured slower: tens of MiB of retained socket buffers cost the garbage collector more than the page
 * cache costs to read.
 *
 * The hashing thread runs requests in order, so the prefix moves as requests are made, not as they are
 * done. Every byte claimed or read must be final: the bytes that are (or, for a claim, will be) on disk at
 * that offset.
 */
export class PrefixHasher {
  private hashed = 0;

  /** `hashing` is reset here: the digest is of this file's bytes only. */
  constructor(
    private readonly sizeBytes: number,
    private readonly hashing: HashWorker,
  ) {
    hashing.reset();
  }

  /** Bytes [0, hashedBytes) are in the hash or on their way to it, in order. */
  get hashedBytes(): number {
    return this.hashed;
  }

  /**
   * `bytes` about to be written at `position`: true when they extend the prefix, which they are then part
   * of (the caller must have the hashing thread hash them, with its next request: `HashWorker.write` with
   * `hash`); false when they are to be read back from the file later.
   */
  claim(position: number, bytes: number): boolean {
    if (position !== this.hashed) return false;
    this.hashed += bytes;
    return true;
  }

  /**
   * Whether bytes at the prefix must come from the file: the file has them (`contiguousOnDisk`, the offset
   * below which every byte is on disk, is past the prefix).
   */
  gapAt(contiguousOnDisk: number): boolean {
    return contiguousOnDisk > this.hashed;
  }

  /** Hashes `length` bytes of the file `fd` at the prefix (read in the hashing thread); they must be on disk. */
  async hashFile(fd: number, length: number): Promise<void> {
    const at = this.hashed;
    this.hashed += length;
    await this.hashing.hashRange(fd, at, length);
  }

  /** The hex digest once every byte is in; undefined before. */
  async digest(): Promise<string | undefined> {
    if (this.hashed !== this.sizeBytes) return undefined;
    return await this.hashing.digest();
  }
}
