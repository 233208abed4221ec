import type { FileEntry } from '../protocol/index.js';
import { NamedSlots } from './named-slots.js';
import { tokenize } from './query.js';

export const SHA_BYTES = 32;
const MIN_SLOTS = 8;

/*
 * One peer's files in the network map, as columns: names (UTF-8 in a pooled buffer, see `NamedSlots`),
 * sizes, SHA-256 bytes, and a 64-bit signature per file (two bits per token: one for its first character,
 * one for its first two) that rules most files out of a word search without tokenizing their names.
 * Removing a file moves the last one into its slot.
 */
export class MapFiles {
  readonly names = new NamedSlots((from, to) => this.move(from, to));
  sizes: Float64Array;
  shas: Buffer;
  signatures: Uint32Array;
  /** Sum of the sizes. */
  totalBytes = 0;

  constructor(capacity = 0) {
    const slots = Math.max(MIN_SLOTS, capacity);
    this.sizes = new Float64Array(slots);
    this.shas = Buffer.alloc(slots * SHA_BYTES);
    this.signatures = new Uint32Array(slots * 2);
  }

  get count(): number {
    return this.names.count;
  }

  /** Room for `files` more files whose names take about `nameBytes` bytes, so that columns grow once. */
  reserve(files: number, nameBytes: number): void {
    const slots = this.count + files;
    this.names.reserve(slots, nameBytes);
    if (slots > this.sizes.length) this.resize(slots);
  }

  upsert(file: FileEntry): void {
    let slot = this.names.find(file.name);
    if (slot < 0) {
      slot = this.names.add(file.name);
      if (slot >= this.sizes.length) this.resize(Math.ceil(slot * 1.5) + MIN_SLOTS);
      this.sizes[slot] = 0;
      const signature = signatureOf(file.name);
      this.signatures[2 * slot] = signature[0]!;
      this.signatures[2 * slot + 1] = signature[1]!;
    }
    this.totalBytes += file.size - this.sizes[slot]!;
    this.sizes[slot] = file.size;
    this.shas.write(file.sha256.toLowerCase(), slot * SHA_BYTES, SHA_BYTES, 'hex');
  }

  remove(name: string): void {
    const slot = this.names.find(name);
    if (slot < 0) return;
    this.totalBytes -= this.sizes[slot]!;
    this.names.remove(slot);
    // Give memory back once three quarters of the columns are empty.
    if (this.sizes.length > MIN_SLOTS * 4 && this.count * 4 < this.sizes.length)
      this.resize(this.count * 2 + MIN_SLOTS);
  }

  name(slot: number): string {
    return this.names.name(slot);
  }

  sha(slot: number): string {
    return this.shas.toString('hex', slot * SHA_BYTES, slot * SHA_BYTES + SHA_BYTES);
  }

  /** Gives back spare memory once the peer's files are in. */
  fit(): void {
    this.names.fit();
    if (this.sizes.length > this.count + MIN_SLOTS) this.resize(this.count + MIN_SLOTS);
  }

  private move(from: number, to: number): void {
    this.sizes[to] = this.sizes[from]!;
    this.shas.copy(this.shas, to * SHA_BYTES, from * SHA_BYTES, from * SHA_BYTES + SHA_BYTES);
    this.signatures[2 * to] = this.signatures[2 * from]!;
    this.signatures[2 * to + 1] = this.signatures[2 * from + 1]!;
  }

  /** Resizes the columns to `slots` (at least the file count). */
  private resize(slots: number): void {
    const n = this.count;
    const sizes = new Float64Array(slots);
    sizes.set(this.sizes.subarray(0, n));
    this.sizes = sizes;
    const shas = Buffer.alloc(slots * SHA_BYTES);
    this.shas.copy(shas, 0, 0, n * SHA_BYTES);
    this.shas = shas;
    const signatures = new Uint32Array(slots * 2);
    signatures.set(this.signatures.subarray(0, 2 * n));
    this.signatures = signatures;
  }
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

function signatureOf(name: string): [number, number] {
  const signature: [number, number] = [0, 0];
  for (const token of tokenize(name)) {
    for (const prefix of token.length > 1 ? [token.slice(0, 1), token.slice(0, 2)] : [token]) {
      const bit = prefixBit(prefix);
      signature[bit >>> 5]! |= 1 << (bit & 31);
    }
  }
  return signature;
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
