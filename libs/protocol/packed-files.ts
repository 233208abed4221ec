import type { FileEntry } from './common.js';

const SHA_BYTES = 32;
/** count, name bytes, JSON bytes, and 4 bytes of padding: the float columns start 8-aligned. */
const HEADER_BYTES = 16;

/**
 * A validated file list in columns, in one ArrayBuffer that a thread hands over without a copy: sizes and
 * mtimes (float64), where each UTF-8 name ends (uint32), SHA-256 (32 bytes each), whether each name is
 * ASCII, the names one after another, and the list's JSON (what `JSON.stringify(files)` gives, for the
 * rebroadcast). A superpeer's decoding thread packs an announce's files so that the thread applying them
 * neither parses JSON nor makes an object per file. Only `packFiles` makes one; `from` reads one back.
 */
export class PackedFiles {
  readonly length: number;
  /** The names' UTF-8 bytes, one after another. */
  readonly names: Buffer;
  /** SHA-256 of file i at [32 i, 32 i + 32). */
  readonly shas: Uint8Array;
  /** The list as JSON, UTF-8. */
  readonly json: Buffer;
  private readonly sizes: Float64Array;
  private readonly mtimes: Float64Array;
  private readonly nameEnds: Uint32Array;
  private readonly ascii: Uint8Array;

  private constructor(readonly buffer: ArrayBuffer) {
    const header = new Uint32Array(buffer, 0, 3);
    const count = header[0]!;
    const nameBytes = header[1]!;
    const jsonBytes = header[2]!;
    if (byteLength(count, nameBytes, jsonBytes) > buffer.byteLength)
      throw new RangeError('packed files: the sizes in the header do not fit the buffer');
    let at = HEADER_BYTES;
    this.length = count;
    this.sizes = new Float64Array(buffer, at, count);
    at += 8 * count;
    this.mtimes = new Float64Array(buffer, at, count);
    at += 8 * count;
    this.nameEnds = new Uint32Array(buffer, at, count);
    at += 4 * count;
    this.shas = new Uint8Array(buffer, at, SHA_BYTES * count);
    at += SHA_BYTES * count;
    this.ascii = new Uint8Array(buffer, at, count);
    at += count;
    this.names = Buffer.from(buffer, at, nameBytes);
    at += nameBytes;
    this.json = Buffer.from(buffer, at, jsonBytes);
    if (count > 0 && this.nameEnds[count - 1] !== nameBytes)
      throw new RangeError('packed files: the names do not fill their column');
  }

  /** Reads a buffer made by `packFiles` (in this thread or another). */
  static from(buffer: ArrayBuffer): PackedFiles {
    return new PackedFiles(buffer);
  }

  nameStart(i: number): number {
    return i === 0 ? 0 : this.nameEnds[i - 1]!;
  }

  nameLength(i: number): number {
    return this.nameEnds[i]! - this.nameStart(i);
  }

  /** Whether file i's name is ASCII (one byte per UTF-16 unit). */
  isAscii(i: number): boolean {
    return this.ascii[i] === 1;
  }

  name(i: number): string {
    const start = this.nameStart(i);
    return this.names.toString(this.isAscii(i) ? 'latin1' : 'utf8', start, this.nameEnds[i]!);
  }

  size(i: number): number {
    return this.sizes[i]!;
  }

  mtimeMs(i: number): number {
    return this.mtimes[i]!;
  }

  sha256(i: number): string {
    return Buffer.from(this.shas.buffer, this.shas.byteOffset + SHA_BYTES * i, SHA_BYTES).toString('hex');
  }

  entry(i: number): FileEntry {
    return { name: this.name(i), size: this.size(i), sha256: this.sha256(i), mtimeMs: this.mtimeMs(i) };
  }

  /** The files as objects (for the paths that want them: a state in several chunks, say). */
  entries(): FileEntry[] {
    return Array.from({ length: this.length }, (_, i) => this.entry(i));
  }
}

function byteLength(count: number, nameBytes: number, jsonBytes: number): number {
  return HEADER_BYTES + count * (8 + 8 + 4 + SHA_BYTES + 1) + nameBytes + jsonBytes;
}

/**
 * Packs `files`, validated already (lowercase 64-digit SHA-256), with `json`, their JSON as
 * `JSON.stringify(files)` gives it. `spare` gives a buffer of at least the bytes asked, to be written over
 * (one handed back after an earlier list was read), or nothing: a new one is made.
 */
export function packFiles(
  files: readonly FileEntry[],
  json: string,
  spare: (bytes: number) => ArrayBuffer | undefined = () => undefined,
): PackedFiles {
  const count = files.length;
  // The names and the hashes are each written in one call: a call per file into Buffer's native code
  // (a byte length, a UTF-8 write and a hex write for each) took as long as the rest of the packing.
  let allNames = '';
  let allShas = '';
  for (const file of files) {
    allNames += file.name;
    allShas += file.sha256;
  }
  const nameBytes = Buffer.byteLength(allNames, 'utf8');
  const jsonBytes = Buffer.byteLength(json, 'utf8');
  const { buffer, sizes, mtimes, nameEnds, shas, ascii, names, jsonColumn } = packedColumns(
    count,
    nameBytes,
    jsonBytes,
    spare,
  );
  jsonColumn.write(json, 0, jsonBytes, 'utf8');
  if (shas.write(allShas, 0, shas.length, 'hex') !== shas.length)
    throw new RangeError('packed files: a SHA-256 is not 64 hex digits');
  // Every name ASCII (the usual case): one byte per character, so each ends where its characters do.
  const allAscii = nameBytes === allNames.length;
  if (allAscii) names.write(allNames, 0, nameBytes, 'latin1');
  let end = 0;
  for (let i = 0; i < count; i++) {
    const file = files[i]!;
    sizes[i] = file.size;
    mtimes[i] = file.mtimeMs;
    if (allAscii) {
      end += file.name.length;
      ascii[i] = 1;
    } else {
      const written = names.write(file.name, end, 'utf8');
      ascii[i] = written === file.name.length ? 1 : 0;
      end += written;
    }
    nameEnds[i] = end;
  }
  return PackedFiles.from(buffer);
}

/** The columns of a packed list, to be written: every byte of `buffer` up to the list's size is in one. */
export interface PackedColumns {
  buffer: ArrayBuffer;
  sizes: Float64Array;
  mtimes: Float64Array;
  nameEnds: Uint32Array;
  shas: Buffer;
  ascii: Uint8Array;
  names: Buffer;
  jsonColumn: Buffer;
}

/**
 * The lists of `pieces` (a state's chunks, say) one after another in one list, without JSON (each piece
 * keeps its own for a rebroadcast).
 */
export function concatPacked(pieces: readonly PackedFiles[]): PackedFiles {
  let count = 0;
  let nameBytes = 0;
  for (const piece of pieces) {
    count += piece.length;
    nameBytes += piece.names.length;
  }
  const columns = packedColumns(count, nameBytes, 0);
  let at = 0;
  let nameAt = 0;
  for (const piece of pieces) {
    for (let i = 0; i < piece.length; i++) {
      columns.sizes[at + i] = piece.size(i);
      columns.mtimes[at + i] = piece.mtimeMs(i);
      columns.nameEnds[at + i] = nameAt + piece.nameStart(i) + piece.nameLength(i);
      columns.ascii[at + i] = piece.isAscii(i) ? 1 : 0;
    }
    columns.shas.set(piece.shas, 32 * at);
    columns.names.set(piece.names, nameAt);
    at += piece.length;
    nameAt += piece.names.length;
  }
  return PackedFiles.from(columns.buffer);
}

/** Whether no two files of `packed` share a name: a hash set of the names' bytes, compared on equal hashes. */
export function namesDistinct(packed: PackedFiles): boolean {
  const count = packed.length;
  const names = packed.names;
  const hashes = new Uint32Array(count);
  const mask = 2 ** Math.ceil(Math.log2(2 * count + 1)) - 1;
  const slots = new Int32Array(mask + 1).fill(-1);
  const nameOf = (i: number) =>
    names.subarray(packed.nameStart(i), packed.nameStart(i) + packed.nameLength(i));
  for (let i = 0; i < count; i++) {
    let hash = 0x811c9dc5;
    for (let k = packed.nameStart(i), end = k + packed.nameLength(i); k < end; k++)
      hash = Math.imul(hash ^ names[k]!, 0x01000193);
    hashes[i] = hash;
    for (let slot = (hash ^ (hash >>> 15)) & mask; ; slot = (slot + 1) & mask) {
      const other = slots[slot]!;
      if (other < 0) {
        slots[slot] = i;
        break;
      }
      if (hashes[other] === hashes[i] && nameOf(other).equals(nameOf(i))) return false;
    }
  }
  return true;
}

/**
 * The columns of a list of `count` files whose names take `nameBytes` and whose JSON takes `jsonBytes`
 * (UTF-8), with the header written: fill every column, then `PackedFiles.from(buffer)` reads it. `spare`
 * gives a buffer of at least the bytes asked, to be written over (one handed back after an earlier list
 * was read), or nothing: a new one is made.
 */
export function packedColumns(
  count: number,
  nameBytes: number,
  jsonBytes: number,
  spare: (bytes: number) => ArrayBuffer | undefined = () => undefined,
): PackedColumns {
  const bytes = byteLength(count, nameBytes, jsonBytes);
  // Every byte up to `bytes` is written by the caller: a spare needs no clearing.
  const buffer = spare(bytes) ?? new ArrayBuffer(bytes);
  const header = new Uint32Array(buffer, 0, 3);
  header[0] = count;
  header[1] = nameBytes;
  header[2] = jsonBytes;
  let at = HEADER_BYTES;
  const sizes = new Float64Array(buffer, at, count);
  at += 8 * count;
  const mtimes = new Float64Array(buffer, at, count);
  at += 8 * count;
  const nameEnds = new Uint32Array(buffer, at, count);
  at += 4 * count;
  const shas = Buffer.from(buffer, at, SHA_BYTES * count);
  at += SHA_BYTES * count;
  const ascii = new Uint8Array(buffer, at, count);
  at += count;
  const names = Buffer.from(buffer, at, nameBytes);
  at += nameBytes;
  const jsonColumn = Buffer.from(buffer, at, jsonBytes);
  return { buffer, sizes, mtimes, nameEnds, shas, ascii, names, jsonColumn };
}
