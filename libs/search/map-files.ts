import type { FileEntry, PackedFiles } from '../protocol/index.js';
import { bytesEqual, encodeScratch, hashBytes } from './bytes.js';
import { tokenize } from './query.js';

export const SHA_BYTES = 32;
const MIN_SLOTS = 8;
const MIN_TEXT_BYTES = 256;
/** Longest name in UTF-8 bytes (file names are at most 1024 characters, 3 KiB). */
const MAX_NAME_BYTES = 0xffff;

/*
 * One peer's files in the network map, as columns: names (UTF-8, one pooled buffer: no JS string per name),
 * sizes, SHA-256 bytes, and a 64-bit signature per file (two bits per token: one for its first character,
 * one for its first two) that rules most files out of a word search without tokenizing their names, about
 * 77 bytes a file with a 23-byte name. Names are found through an open-addressing hash table of slots that
 * exists only while files are added or changed by name: `fit` drops it once a peer's state is in (8 bytes
 * a file that a peer which never changes does not need), the next change builds it again. Removing a file
 * moves the last one into its slot.
 */
export class MapFiles {
  sizes: Float64Array;
  shas: Buffer;
  signatures: Uint32Array;
  /** Sum of the sizes. */
  totalBytes = 0;
  private text: Buffer = Buffer.alloc(0);
  /** Bytes of `text` written, and those of them that belong to removed names. */
  private used = 0;
  private dead = 0;
  private starts: Uint32Array;
  private lengths: Uint16Array;
  private size = 0;
  /** slot + 1 per bucket, 0 = empty; a power of two at least twice the count; absent until needed. */
  private table: Uint32Array | undefined;

  constructor(capacity = 0) {
    const slots = Math.max(MIN_SLOTS, capacity);
    this.sizes = new Float64Array(slots);
    this.shas = Buffer.alloc(slots * SHA_BYTES);
    this.signatures = new Uint32Array(slots * 2);
    this.starts = new Uint32Array(slots);
    this.lengths = new Uint16Array(slots);
  }

  get count(): number {
    return this.size;
  }

  /** Room for `files` more files whose names take about `nameBytes` bytes, so that columns grow once. */
  reserve(files: number, nameBytes: number): void {
    const slots = this.size + files;
    if (slots > this.sizes.length) this.resize(slots);
    if (this.used + nameBytes > this.text.length) this.moveText(this.used + nameBytes);
    if (this.table === undefined || slots * 2 > this.table.length) this.rebuildTable(tableSize(slots));
  }

  upsert(file: FileEntry): void {
    const { bytes, length } = encodeScratch(file.name);
    let slot = this.find(bytes, 0, length);
    if (slot < 0) {
      // One UTF-8 byte per UTF-16 unit: an ASCII name, whose tokens are read off its bytes.
      const ascii = length === file.name.length;
      slot = this.addNamed(
        bytes,
        0,
        length,
        ascii ? asciiSignature(bytes, 0, length) : signatureOf(file.name),
      );
    }
    this.setSize(slot, file.size);
    this.shas.write(file.sha256.toLowerCase(), slot * SHA_BYTES, SHA_BYTES, 'hex');
  }

  /** `upsert` of file `i` of a packed list (see PackedFiles): nothing encoded, no call into Buffer's native code. */
  upsertPacked(files: PackedFiles, i: number): void {
    const { names } = files;
    const start = files.nameStart(i);
    const length = files.nameLength(i);
    let slot = this.find(names, start, length);
    if (slot < 0) {
      const signature = files.isAscii(i) ? asciiSignature(names, start, length) : signatureOf(files.name(i));
      slot = this.addNamed(names, start, length, signature);
    }
    this.setSize(slot, files.size(i));
    const shas = this.shas;
    const from = files.shas;
    for (let at = SHA_BYTES * i, end = at + SHA_BYTES, k = slot * SHA_BYTES; at < end; at++, k++)
      shas[k] = from[at]!;
  }

  /** Adds the name `bytes[start, start + length)` (not here yet) with its signature, size 0. */
  private addNamed(bytes: Uint8Array, start: number, length: number, signature: [number, number]): number {
    const slot = this.add(bytes, start, length);
    this.sizes[slot] = 0;
    this.signatures[2 * slot] = signature[0]!;
    this.signatures[2 * slot + 1] = signature[1]!;
    return slot;
  }

  private setSize(slot: number, size: number): void {
    this.totalBytes += size - this.sizes[slot]!;
    this.sizes[slot] = size;
  }

  remove(name: string): void {
    const { bytes, length } = encodeScratch(name);
    const slot = this.find(bytes, 0, length);
    if (slot < 0) return;
    const table = this.table!;
    this.totalBytes -= this.sizes[slot]!;
    this.tableDelete(slot);
    this.dead += this.lengths[slot]!;
    const last = this.size - 1;
    if (slot !== last) {
      table[this.bucketOf(last)] = slot + 1;
      this.starts[slot] = this.starts[last]!;
      this.lengths[slot] = this.lengths[last]!;
      this.sizes[slot] = this.sizes[last]!;
      this.shas.copy(this.shas, slot * SHA_BYTES, last * SHA_BYTES, last * SHA_BYTES + SHA_BYTES);
      this.signatures[2 * slot] = this.signatures[2 * last]!;
      this.signatures[2 * slot + 1] = this.signatures[2 * last + 1]!;
    }
    this.size--;
    // Give memory back once three quarters of the columns are empty, or most of the text is removed names.
    if (this.sizes.length > MIN_SLOTS * 4 && this.size * 4 < this.sizes.length)
      this.resize(this.size * 2 + MIN_SLOTS);
    if (this.dead > MIN_TEXT_BYTES && this.dead > this.used - this.dead) this.compactText(0);
  }

  name(slot: number): string {
    const start = this.starts[slot]!;
    return this.text.toString('utf8', start, start + this.lengths[slot]!);
  }

  sha(slot: number): string {
    return this.shas.toString('hex', slot * SHA_BYTES, slot * SHA_BYTES + SHA_BYTES);
  }

  /** Gives back spare memory once the peer's files are in, the name table included. */
  fit(): void {
    if (this.dead > 0) this.compactText(0);
    else if (this.text.length > this.used) this.moveText(this.used);
    if (this.sizes.length > this.size + MIN_SLOTS) this.resize(this.size + MIN_SLOTS);
    this.table = undefined;
  }

  /** The slot whose name is `bytes[start, start + length)`, or -1; builds the name table when there is none. */
  private find(bytes: Uint8Array, start: number, length: number): number {
    if (this.table === undefined) this.rebuildTable(tableSize(this.size));
    const table = this.table!;
    const mask = table.length - 1;
    for (let b = hashBytes(bytes, start, length) & mask; ; b = (b + 1) & mask) {
      const entry = table[b]!;
      if (entry === 0) return -1;
      const slot = entry - 1;
      if (this.lengths[slot] === length && bytesEqual(this.text, this.starts[slot]!, bytes, start, length))
        return slot;
    }
  }

  /** Adds the name `bytes[start, start + length)` (not here yet, and the table built) as the last slot. */
  private add(bytes: Uint8Array, start: number, length: number): number {
    if (length > MAX_NAME_BYTES) throw new RangeError(`a name holds at most ${MAX_NAME_BYTES} UTF-8 bytes`);
    if (this.used + length > this.text.length) {
      if (this.dead > this.used - this.dead) this.compactText(length);
      if (this.used + length > this.text.length)
        this.moveText(Math.max(MIN_TEXT_BYTES, 2 * (this.used + length)));
    }
    const text = this.text;
    for (let i = 0, at = this.used; i < length; i++, at++) text[at] = bytes[start + i]!;
    const slot = this.size;
    if (slot >= this.sizes.length) this.resize(Math.ceil(slot * 1.5) + MIN_SLOTS);
    this.starts[slot] = this.used;
    this.lengths[slot] = length;
    this.used += length;
    this.size++;
    if (this.size * 2 > this.table!.length) this.rebuildTable(this.table!.length * 2);
    else this.tableInsert(slot);
    return slot;
  }

  /** Rewrites the live names contiguously into a buffer with `spare` free bytes after them. */
  private compactText(spare: number): void {
    const text = Buffer.allocUnsafeSlow(this.used - this.dead + spare);
    let at = 0;
    for (let slot = 0; slot < this.size; slot++) {
      const start = this.starts[slot]!;
      const length = this.lengths[slot]!;
      this.text.copy(text, at, start, start + length);
      this.starts[slot] = at;
      at += length;
    }
    this.text = text;
    this.used = at;
    this.dead = 0;
  }

  private moveText(capacity: number): void {
    const text = Buffer.allocUnsafeSlow(capacity);
    this.text.copy(text, 0, 0, this.used);
    this.text = text;
  }

  /** Resizes the columns to `slots` (at least the file count). */
  private resize(slots: number): void {
    const n = this.size;
    const sizes = new Float64Array(slots);
    sizes.set(this.sizes.subarray(0, n));
    this.sizes = sizes;
    const shas = Buffer.alloc(slots * SHA_BYTES);
    this.shas.copy(shas, 0, 0, n * SHA_BYTES);
    this.shas = shas;
    const signatures = new Uint32Array(slots * 2);
    signatures.set(this.signatures.subarray(0, 2 * n));
    this.signatures = signatures;
    const starts = new Uint32Array(slots);
    starts.set(this.starts.subarray(0, n));
    this.starts = starts;
    const lengths = new Uint16Array(slots);
    lengths.set(this.lengths.subarray(0, n));
    this.lengths = lengths;
  }

  private home(slot: number, mask: number): number {
    return hashBytes(this.text, this.starts[slot]!, this.lengths[slot]!) & mask;
  }

  private bucketOf(slot: number): number {
    const table = this.table!;
    const mask = table.length - 1;
    let b = this.home(slot, mask);
    while (table[b] !== slot + 1) b = (b + 1) & mask;
    return b;
  }

  private tableInsert(slot: number): void {
    const table = this.table!;
    const mask = table.length - 1;
    let b = this.home(slot, mask);
    while (table[b] !== 0) b = (b + 1) & mask;
    table[b] = slot + 1;
  }

  /** Linear-probing deletion by backward shift: no tombstones, so lookups stay short. */
  private tableDelete(slot: number): void {
    const table = this.table!;
    const mask = table.length - 1;
    let hole = this.bucketOf(slot);
    for (let next = (hole + 1) & mask; table[next] !== 0; next = (next + 1) & mask) {
      const home = this.home(table[next]! - 1, mask);
      // Move `next` into the hole unless its home lies cyclically in (hole, next].
      const between = hole <= next ? home > hole && home <= next : home > hole || home <= next;
      if (!between) {
        table[hole] = table[next]!;
        hole = next;
      }
    }
    table[hole] = 0;
  }

  private rebuildTable(buckets: number): void {
    this.table = new Uint32Array(buckets);
    for (let slot = 0; slot < this.size; slot++) this.tableInsert(slot);
  }
}

function tableSize(slots: number): number {
  let size = MIN_SLOTS * 2;
  while (size < slots * 2) size *= 2;
  return size;
}

/** FNV-1a over UTF-16 code units. */
function hashText(text: string): number {
  let hash = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) hash = Math.imul(hash ^ text.charCodeAt(i), 0x01000193);
  return hash >>> 0;
}

/** Bit (0-63) standing for "some token starts with `prefix`" (one or two characters). */
function prefixBit(prefix: string): number {
  return hashText(prefix) % 61;
}

export function signatureOf(name: string): [number, number] {
  const signature: [number, number] = [0, 0];
  for (const token of tokenize(name)) {
    for (const prefix of token.length > 1 ? [token.slice(0, 1), token.slice(0, 2)] : [token]) {
      const bit = prefixBit(prefix);
      signature[bit >>> 5]! |= 1 << (bit & 31);
    }
  }
  return signature;
}

const asciiScratch: [number, number] = [0, 0];

/**
 * `signatureOf` an ASCII name from its bytes, without a string per token: for ASCII, `tokenize` gives the
 * runs of letters and digits, lowercased. The result is a scratch pair, valid until the next call.
 */
function asciiSignature(bytes: Uint8Array, start: number, length: number): [number, number] {
  const signature = asciiScratch;
  signature[0] = 0;
  signature[1] = 0;
  const end = start + length;
  let i = start;
  while (i < end) {
    const first = lowerWordByte(bytes[i]!);
    if (first < 0) {
      i++;
      continue;
    }
    const oneHash = Math.imul(0x811c9dc5 ^ first, 0x01000193);
    const second = i + 1 < end ? lowerWordByte(bytes[i + 1]!) : -1;
    // A one-character token stands for its one-character prefix; a longer one for its first one and two.
    let bit = (oneHash >>> 0) % 61;
    signature[bit >>> 5]! |= 1 << (bit & 31);
    if (second >= 0) {
      bit = (Math.imul(oneHash ^ second, 0x01000193) >>> 0) % 61;
      signature[bit >>> 5]! |= 1 << (bit & 31);
    }
    i++;
    while (i < end && lowerWordByte(bytes[i]!) >= 0) i++;
  }
  return signature;
}

/** An ASCII letter (lowercased) or digit, or -1. */
function lowerWordByte(byte: number): number {
  if ((byte >= 97 && byte <= 122) || (byte >= 48 && byte <= 57)) return byte;
  if (byte >= 65 && byte <= 90) return byte + 32;
  return -1;
}

/** The signature bits every file matching `words` must have. */
export function wordsSignature(words: readonly string[]): [number, number] {
  const signature: [number, number] = [0, 0];
  for (const word of words) {
    const bit = prefixBit(word.slice(0, 2));
    signature[bit >>> 5]! |= 1 << (bit & 31);
  }
  return signature;
}
