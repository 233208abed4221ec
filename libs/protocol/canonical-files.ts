import { randomBytes } from 'node:crypto';
import type { z } from 'zod';
import { type DecodeResult, decode } from './codec.js';
import { MAX_MESSAGE_BYTES } from './common.js';
import { distinctNames, type ReadListOptions, readFileList, skipSpace } from './file-list-reader.js';
import { nestsDeeperThan } from './json-depth.js';
import type { PackedFiles } from './packed-files.js';

/*
 * A message's file list read straight from its bytes into columns (PackedFiles), when it is written
 * canonically: as `JSON.stringify` writes a valid list, which is how this code's peers and superpeers write
 * it (and most JSON libraries): `[{"name":…,"size":…,"sha256":…,"mtimeMs":…},…]`, the keys in that order,
 * names without escapes, numbers as `String(n)` gives them. White space between tokens is read too (Python's
 * json.dumps writes `, ` and `: ` by default). The list's JSON for a rebroadcast is its bytes without that
 * white space: what `JSON.stringify` writes of it.
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

export interface FileListOptions extends ReadListOptions {
  maxBytes?: number;
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

const FILES_KEY = Buffer.from('"files"');
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
  /** Where the bytes not yet copied into `pieces` begin, and where the search for the next list goes on. */
  let from = 0;
  let searchFrom = 0;
  for (let key = body.indexOf(FILES_KEY); key >= 0; key = body.indexOf(FILES_KEY, searchFrom)) {
    // The key, then `:` and `[` (white space around them allowed); any other "files" is not a list's.
    const colon = skipSpace(body, key + FILES_KEY.length);
    const open = body[colon] === 0x3a ? skipSpace(body, colon + 1) : -1;
    if (open < 0 || body[open] !== 0x5b) {
      searchFrom = key + FILES_KEY.length;
      continue;
    }
    if (key < 1 || lists.length === MAX_CANONICAL_LISTS) return undefined;
    const list = readFileList(body, open, options);
    if (list === undefined) return undefined;
    if (checkNames && distinct) distinct = distinctNames(list.packed);
    pieces.push(body.toString('utf8', from, key), `"files":"${PLACEHOLDER}${lists.length}"`);
    lists.push(list.packed);
    from = list.end;
    searchFrom = list.end;
  }
  if (lists.length === 0) return undefined;
  pieces.push(body.toString('utf8', from));
  const restText = pieces.join('');
  // Refused by the general way (`decode`) with its reason.
  if (nestsDeeperThan(restText)) return undefined;
  let rest: unknown;
  try {
    rest = JSON.parse(restText);
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
