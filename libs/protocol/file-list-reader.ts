import { fileNameProblem, MAX_FILE_NAME_LENGTH, MAX_FILES_PER_MESSAGE } from './common.js';
import { PackedFiles, packedColumns } from './packed-files.js';

/*
 * The byte-level reader of a canonical file list (see canonical-files.ts for what canonical means and how
 * the result is checked against the general path): straight from a message's bytes into columns, with no
 * string or object per file.
 */

export interface ReadListOptions {
  /**
   * A buffer of at least the bytes asked, to be written over, or nothing (see `packedColumns`). A message
   * of several lists asks once per list: each buffer must be one not handed out before (not yet given back).
   */
  spare?: (bytes: number) => ArrayBuffer | undefined;
  /** Keep the list's JSON in the columns (`PackedFiles.json`, for a rebroadcast). Default true. */
  json?: boolean;
}

const bytesOf = (text: string) => Uint8Array.from(Buffer.from(text, 'latin1'));

/** Tokens a list's entries are written with, expected in turn; `whole` is them with no space between. */
interface Tokens {
  whole: Uint8Array;
  each: Uint8Array[];
}
const tokens = (...each: string[]): Tokens => ({ whole: bytesOf(each.join('')), each: each.map(bytesOf) });
/** An entry up to its name's first character; what follows the name's closing quote up to the size... */
const ENTRY_START = tokens('{', '"name"', ':', '"');
const AFTER_NAME = tokens(',', '"size"', ':');
const AFTER_SIZE = tokens(',', '"sha256"', ':', '"');
const AFTER_SHA = tokens(',', '"mtimeMs"', ':');

/** JSON's white space (between tokens, never in a string): space, tab, line feed, carriage return. */
function isSpace(c: number | undefined): boolean {
  return c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09;
}

/** White space skipped by `skipSpace` since the list began: the list is then copied without it. */
let skipped = 0;

/** The first byte from `at` that is not white space. */
export function skipSpace(bytes: Uint8Array, at: number): number {
  let i = at;
  while (isSpace(bytes[i])) i++;
  skipped += i - at;
  return i;
}

/** `expected` from `at`, white space allowed before each token: where it ends, or -1. */
function expect(bytes: Uint8Array, at: number, expected: Tokens): number {
  if (matches(bytes, at, expected.whole)) return at + expected.whole.length;
  let i = at;
  for (const token of expected.each) {
    i = skipSpace(bytes, i);
    if (!matches(bytes, i, token)) return -1;
    i += token.length;
  }
  return i;
}

/** Each hex digit's value (lowercase only), -1 for any other byte. */
const HEX = new Int8Array(256).fill(-1);
for (let c = 0; c < 10; c++) HEX[0x30 + c] = c;
for (let c = 0; c < 6; c++) HEX[0x61 + c] = 10 + c;

const NAME_DECODER = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/** One list's columns while it is read (a message holds at most MAX_FILES_PER_MESSAGE files). */
const scratch = {
  sizes: new Float64Array(MAX_FILES_PER_MESSAGE),
  mtimes: new Float64Array(MAX_FILES_PER_MESSAGE),
  nameStarts: new Uint32Array(MAX_FILES_PER_MESSAGE),
  nameEnds: new Uint32Array(MAX_FILES_PER_MESSAGE),
  ascii: new Uint8Array(MAX_FILES_PER_MESSAGE),
  shas: new Uint8Array(MAX_FILES_PER_MESSAGE * 32),
  hashes: new Uint32Array(MAX_FILES_PER_MESSAGE),
};

/** Where the last `readNumber` ended and what it read. */
let numberValue = 0;

/**
 * The canonical file list that starts at `start` (its `[`) in `bytes`, with where it ends (after its `]`),
 * or undefined when it is not one (see the top of this file).
 */
export function readFileList(
  bytes: Uint8Array,
  start: number,
  options: ReadListOptions = {},
): { packed: PackedFiles; end: number } | undefined {
  if (bytes[start] !== 0x5b) return undefined;
  skipped = 0;
  let i = skipSpace(bytes, start + 1);
  let count = 0;
  let nameBytes = 0;
  if (bytes[i] !== 0x5d) {
    for (;;) {
      if (count === MAX_FILES_PER_MESSAGE) return undefined;
      i = expect(bytes, i, ENTRY_START);
      if (i < 0) return undefined;
      const nameEnd = readName(bytes, i, count);
      if (nameEnd < 0) return undefined;
      scratch.nameStarts[count] = i;
      scratch.nameEnds[count] = nameEnd;
      nameBytes += nameEnd - i;
      i = expect(bytes, nameEnd + 1, AFTER_NAME);
      if (i < 0) return undefined;
      i = readNumber(bytes, skipSpace(bytes, i));
      if (i < 0 || !Number.isSafeInteger(numberValue)) return undefined;
      scratch.sizes[count] = numberValue;
      i = expect(bytes, i, AFTER_SIZE);
      if (i < 0 || !readSha(bytes, i, count)) return undefined;
      i = expect(bytes, i + 65, AFTER_SHA);
      if (i < 0) return undefined;
      i = readNumber(bytes, skipSpace(bytes, i));
      if (i < 0) return undefined;
      scratch.mtimes[count] = numberValue;
      i = skipSpace(bytes, i);
      if (bytes[i] !== 0x7d) return undefined;
      count++;
      i = skipSpace(bytes, i + 1);
      if (bytes[i] === 0x2c) i++;
      else if (bytes[i] === 0x5d) break;
      else return undefined;
    }
  }
  const end = i + 1;
  const json = options.json ?? true;
  // A list written with white space goes into the columns without it: its JSON is then canonical too.
  const columns = packedColumns(count, nameBytes, json ? end - start - skipped : 0, options.spare);
  columns.sizes.set(scratch.sizes.subarray(0, count));
  columns.mtimes.set(scratch.mtimes.subarray(0, count));
  columns.ascii.set(scratch.ascii.subarray(0, count));
  columns.shas.set(scratch.shas.subarray(0, 32 * count));
  if (json && skipped === 0) columns.jsonColumn.set(bytes.subarray(start, end));
  else if (json) copyWithoutSpace(bytes, start, end, columns.jsonColumn);
  const names = columns.names;
  let at = 0;
  for (let f = 0; f < count; f++) {
    const nameEnd = scratch.nameEnds[f]!;
    for (let k = scratch.nameStarts[f]!; k < nameEnd; k++) names[at++] = bytes[k]!;
    columns.nameEnds[f] = at;
  }
  return { packed: PackedFiles.from(columns.buffer), end };
}

function matches(bytes: Uint8Array, at: number, literal: Uint8Array): boolean {
  if (at + literal.length > bytes.length) return false;
  for (let k = 0; k < literal.length; k++) if (bytes[at + k] !== literal[k]) return false;
  return true;
}

/**
 * The name that starts at `start` (after its opening quote): where its closing quote is, or -1 when it is
 * not a valid name written without escapes. Notes whether it is ASCII and a hash of its bytes.
 */
function readName(bytes: Uint8Array, start: number, file: number): number {
  let k = start;
  let segmentStart = true;
  let ascii = 1;
  let hash = 0x811c9dc5;
  for (;;) {
    if (k >= bytes.length) return -1;
    const c = bytes[k]!;
    if (c === 0x22) break;
    // An escape is not canonical unless it is one (a quote in a name): the general path reads those.
    if (c === 0x5c || c < 0x20 || c === 0x7f) return -1;
    hash = Math.imul(hash ^ c, 0x01000193);
    k++;
    if (c >= 0x80) ascii = 0;
    else if (c === 0x2f) {
      if (segmentStart) return -1;
      segmentStart = true;
      continue;
    } else if (segmentStart && c === 0x2e) return -1;
    segmentStart = false;
  }
  if (segmentStart) return -1; // empty, or ends with a slash
  if (ascii === 1) {
    if (k - start > MAX_FILE_NAME_LENGTH) return -1;
  } else {
    // Rare: the general rule on the decoded name (length in UTF-16 units, spoofing characters). Invalid
    // UTF-8 would be read as U+FFFD by the general path, which is not these bytes.
    let name: string;
    try {
      name = NAME_DECODER.decode(bytes.subarray(start, k));
    } catch {
      return -1;
    }
    if (fileNameProblem(name) !== undefined) return -1;
  }
  scratch.ascii[file] = ascii;
  scratch.hashes[file] = hash;
  return k;
}

/**
 * A number from `start` as `String(n)` writes it, non-negative: its end, with the value in `numberValue`,
 * or -1.
 */
function readNumber(bytes: Uint8Array, start: number): number {
  let k = start;
  let value = 0;
  while (k < bytes.length) {
    const d = bytes[k]! - 0x30;
    if (d < 0 || d > 9) break;
    value = value * 10 + d;
    k++;
  }
  const digits = k - start;
  const next = bytes[k];
  if (digits >= 1 && digits <= 15 && next !== 0x2e && next !== 0x65 && next !== 0x45) {
    if (digits > 1 && bytes[start] === 0x30) return -1; // a leading zero
    numberValue = value;
    return k;
  }
  // A fraction, an exponent, or 16 digits and more: canonical when String() writes it back the same.
  while (k < bytes.length && isNumberByte(bytes[k]!)) k++;
  const text = Buffer.from(bytes.buffer, bytes.byteOffset + start, k - start).toString('latin1');
  const parsed = Number(text);
  if (!(parsed >= 0) || String(parsed) !== text) return -1;
  numberValue = parsed;
  return k;
}

function isNumberByte(c: number): boolean {
  return (c >= 0x30 && c <= 0x39) || c === 0x2e || c === 0x65 || c === 0x45 || c === 0x2b || c === 0x2d;
}

/**
 * The bytes of a list `readFileList` read, from `start` to `end`, into `out` without the white space between
 * its tokens (its strings hold no quote: names with one are not read here).
 */
function copyWithoutSpace(bytes: Uint8Array, start: number, end: number, out: Uint8Array): void {
  let inString = false;
  let at = 0;
  for (let k = start; k < end; k++) {
    const c = bytes[k]!;
    if (c === 0x22) inString = !inString;
    else if (!inString && isSpace(c)) continue;
    out[at++] = c;
  }
}

/** 64 lowercase hex digits from `start`, then the closing quote; written into file's scratch SHA-256. */
function readSha(bytes: Uint8Array, start: number, file: number): boolean {
  if (start + 64 >= bytes.length || bytes[start + 64] !== 0x22) return false;
  let out = 32 * file;
  for (let k = start; k < start + 64; k += 2) {
    const high = HEX[bytes[k]!]!;
    const low = HEX[bytes[k + 1]!]!;
    if ((high | low) < 0) return false;
    scratch.shas[out++] = (high << 4) | low;
  }
  return true;
}

/**
 * Whether no two names of `packed`, the list `readFileList` read last, are equal: their hashes first, the
 * names on a tie.
 */
export function distinctNames(packed: PackedFiles): boolean {
  const count = packed.length;
  const sorted = scratch.hashes.slice(0, count).sort();
  for (let f = 1; f < count; f++) {
    if (sorted[f] === sorted[f - 1]) {
      const names = new Set<string>();
      for (let g = 0; g < count; g++) names.add(packed.name(g));
      return names.size === count;
    }
  }
  return true;
}
