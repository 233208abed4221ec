import { randomBytes } from 'node:crypto';
import type { z } from 'zod';
import { type DecodeResult, decode } from './codec.js';
import { fileNameProblem, MAX_FILE_NAME_LENGTH, MAX_FILES_PER_MESSAGE, MAX_MESSAGE_BYTES } from './common.js';
import { PackedFiles, packedColumns } from './packed-files.js';

/*
 * A message's file list read straight from its bytes into columns (PackedFiles), when it is written
 * canonically: exactly as `JSON.stringify` writes a valid list, which is how this code's peers and
 * superpeers write it (and most JSON libraries): `[{"name":…,"size":…,"sha256":…,"mtimeMs":…},…]`, no white
 * space, the keys in that order, names without escapes, numbers as `String(n)` gives them. Such a list's
 * bytes are also its JSON for a rebroadcast, as they are.
 *
 * Anything else is not refused here: the reader declines, and the caller decodes the message the general
 * way (JSON.parse, then the schema), which accepts or refuses it with its reason. So this path decides only
 * what the general one would decide, without a string or an object per file: parsing, validating and
 * packing a 1000-file list took about 1 ms of a superpeer's decoding thread, and again on every peer.
 */

/** How `decodeWithFileList` reads `files`: in columns, or (general path) as the schema's objects. */
export interface WithFileList<T> {
  value: T;
  /** The message's `files`, read canonically (`value.files` is then empty). */
  packed?: PackedFiles;
  /** With `packed`, when asked for: no two of its files share a name. */
  distinctNames?: boolean;
}

/** How `decodeWithFileLists` reads a message's lists: in columns, or (general path) as the schema's objects. */
export interface WithFileLists<T> {
  value: T;
  /** Each list read canonically, in the order of `holders` (whose `files` are then empty). */
  packed?: PackedFiles[];
  /** With `packed`, when asked for: no list has two files of the same name. */
  distinctNames?: boolean;
}

export interface FileListOptions {
  maxBytes?: number;
  /**
   * A buffer of at least the bytes asked, to be written over, or nothing (see `packedColumns`). A message
   * of several lists asks once per list: each buffer must be one not handed out before (not yet given back).
   */
  spare?: (bytes: number) => ArrayBuffer | undefined;
  /** Keep the list's JSON in the columns (`PackedFiles.json`, for a rebroadcast). Default true. */
  json?: boolean;
  /** Tell whether the names are distinct (`WithFileList.distinctNames`). Default true. */
  distinctNames?: boolean;
}

/**
 * Where a message's `files` lists are: given the message as JSON.parse read it, the objects that hold them,
 * in the order they are written (anything else, and the message is read the general way).
 */
export type FileListHolders = (message: object) => unknown;

/** One `files` list, at the top of the message (an announce, a network state). */
export const TOP_LEVEL_FILES: FileListHolders = (message) => [message];
/** One `files` list in each element of the message's `peers` (a snapshot page). */
export const EACH_PEERS_FILES: FileListHolders = (message) => (message as { peers?: unknown }).peers;

/**
 * `decode(schema, body)` for a message with one top-level `files` list (an announce, a network state): the
 * same outcome, with the list in columns when it is canonical.
 */
export function decodeWithFileList<S extends z.ZodType>(
  schema: S,
  body: Buffer,
  options: FileListOptions = {},
): DecodeResult<WithFileList<z.output<S>>> {
  const decoded = decodeWithFileLists(schema, body, TOP_LEVEL_FILES, options);
  if (!decoded.ok) return decoded;
  const { value, packed, distinctNames } = decoded.value;
  if (packed === undefined) return { ok: true, value: { value } };
  return {
    ok: true,
    value:
      distinctNames === undefined
        ? { value, packed: packed[0] }
        : { value, packed: packed[0], distinctNames },
  };
}

/**
 * `decode(schema, body)` for a message whose file lists are where `holders` says (a snapshot page: one per
 * peer): the same outcome, with the lists in columns when every one of them is canonical.
 */
export function decodeWithFileLists<S extends z.ZodType>(
  schema: S,
  body: Buffer,
  holders: FileListHolders,
  options: FileListOptions = {},
): DecodeResult<WithFileLists<z.output<S>>> {
  const maxBytes = options.maxBytes ?? MAX_MESSAGE_BYTES;
  const read = body.length <= maxBytes ? readCanonically(schema, body, holders, options) : undefined;
  if (read !== undefined) return { ok: true, value: read };
  const general = decode(schema, body, maxBytes);
  return general.ok ? { ok: true, value: { value: general.value } } : general;
}

const FILES_KEY = Buffer.from('"files":[');
/**
 * Most lists read canonically from one message (a snapshot page of 1000 files may hold many peers, each of
 * a few files); past it the message is read the general way, so that a message of thousands of empty
 * lists costs no buffer per list.
 */
const MAX_CANONICAL_LISTS = 1024;
/**
 * Stands in for list k (followed by k) while the rest of the message is parsed: random per process, so a
 * message cannot carry it. A parse that gives back each where `holders` says the lists are shows the lists
 * read were the ones that count (not nested ones, nor earlier duplicate keys).
 */
const PLACEHOLDER = randomBytes(16).toString('hex');

function readCanonically<S extends z.ZodType>(
  schema: S,
  body: Buffer,
  holders: FileListHolders,
  options: FileListOptions,
): WithFileLists<z.output<S>> | undefined {
  const lists: PackedFiles[] = [];
  const pieces: string[] = [];
  const checkNames = options.distinctNames ?? true;
  let distinct = true;
  let from = 0;
  for (let key = body.indexOf(FILES_KEY); key >= 0; key = body.indexOf(FILES_KEY, from)) {
    if (key < 1 || lists.length === MAX_CANONICAL_LISTS) return undefined;
    const list = readFileList(body, key + FILES_KEY.length - 1, options);
    if (list === undefined) return undefined;
    if (checkNames && distinct) distinct = distinctNames(list.packed);
    pieces.push(body.toString('utf8', from, key), `"files":"${PLACEHOLDER}${lists.length}"`);
    lists.push(list.packed);
    from = list.end;
  }
  if (lists.length === 0) return undefined;
  pieces.push(body.toString('utf8', from));
  let rest: unknown;
  try {
    rest = JSON.parse(pieces.join(''));
  } catch {
    return undefined;
  }
  if (typeof rest !== 'object' || rest === null) return undefined;
  const found = holders(rest);
  if (!Array.isArray(found) || found.length !== lists.length) return undefined;
  for (let k = 0; k < found.length; k++) {
    const holder: unknown = found[k];
    if (typeof holder !== 'object' || holder === null) return undefined;
    if ((holder as { files?: unknown }).files !== `${PLACEHOLDER}${k}`) return undefined;
    (holder as { files: unknown }).files = [];
  }
  const parsed = schema.safeParse(rest);
  if (!parsed.success) return undefined;
  const read: WithFileLists<z.output<S>> = { value: parsed.data, packed: lists };
  if (checkNames) read.distinctNames = distinct;
  return read;
}

const bytesOf = (text: string) => Uint8Array.from(Buffer.from(text, 'latin1'));
const ENTRY_START = bytesOf('{"name":"');
const AFTER_NAME = bytesOf('","size":');
const AFTER_SIZE = bytesOf(',"sha256":"');
const AFTER_SHA = bytesOf('","mtimeMs":');

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
  options: Pick<FileListOptions, 'spare' | 'json'> = {},
): { packed: PackedFiles; end: number } | undefined {
  if (bytes[start] !== 0x5b) return undefined;
  let i = start + 1;
  let count = 0;
  let nameBytes = 0;
  if (bytes[i] !== 0x5d) {
    for (;;) {
      if (count === MAX_FILES_PER_MESSAGE || !matches(bytes, i, ENTRY_START)) return undefined;
      i += ENTRY_START.length;
      const nameEnd = readName(bytes, i, count);
      if (nameEnd < 0) return undefined;
      scratch.nameStarts[count] = i;
      scratch.nameEnds[count] = nameEnd;
      nameBytes += nameEnd - i;
      i = nameEnd;
      if (!matches(bytes, i, AFTER_NAME)) return undefined;
      i = readNumber(bytes, i + AFTER_NAME.length);
      if (i < 0 || !Number.isSafeInteger(numberValue)) return undefined;
      scratch.sizes[count] = numberValue;
      if (!matches(bytes, i, AFTER_SIZE)) return undefined;
      i += AFTER_SIZE.length;
      if (!readSha(bytes, i, count)) return undefined;
      i += 64;
      if (!matches(bytes, i, AFTER_SHA)) return undefined;
      i = readNumber(bytes, i + AFTER_SHA.length);
      if (i < 0) return undefined;
      scratch.mtimes[count] = numberValue;
      if (bytes[i] !== 0x7d) return undefined;
      count++;
      i++;
      if (bytes[i] === 0x2c) i++;
      else if (bytes[i] === 0x5d) break;
      else return undefined;
    }
  }
  const end = i + 1;
  const json = options.json ?? true;
  const columns = packedColumns(count, nameBytes, json ? end - start : 0, options.spare);
  columns.sizes.set(scratch.sizes.subarray(0, count));
  columns.mtimes.set(scratch.mtimes.subarray(0, count));
  columns.ascii.set(scratch.ascii.subarray(0, count));
  columns.shas.set(scratch.shas.subarray(0, 32 * count));
  if (json) columns.jsonColumn.set(bytes.subarray(start, end));
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

/** 64 lowercase hex digits from `start`, then the closing quote; written into file's scratch SHA-256. */
function readSha(bytes: Uint8Array, start: number, file: number): boolean {
  if (start + 64 >= bytes.length) return false;
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
function distinctNames(packed: PackedFiles): boolean {
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
