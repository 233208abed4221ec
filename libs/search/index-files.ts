import { randomInt } from 'node:crypto';
import type { FileEntry, PackedFiles } from '../protocol/index.js';
import { asciiHasTokenStarting, encodeScratch, hashBytes, includesBytes, isAscii, utf8 } from './bytes.js';
import { FileTable } from './file-table.js';
import { IdChains } from './id-chains.js';
import type { IndexPeer } from './index-peer.js';
import type { CompareIds } from './name-order.js';
import { OwnerLists } from './owner-lists.js';
import type { Match } from './peer-table.js';
import { tokenize } from './query.js';
import { TextChunks } from './text-chunks.js';
import { TokenIndex } from './token-index.js';
import { asciiTokens, keyTokens, tokenKey } from './token-key.js';
import type { SearchFiles } from './word-search.js';

/** Text entries one `compactTexts` step looks at (a whole 1 MiB chunk, some 25,000 names, took about 20 ms). */
const MOVE_ENTRIES_PER_STEP = 1024;

/** A file as `IndexFiles.put` reads it, from an entry or from a packed list. */
interface FileInput {
  /** The name's UTF-8 is `bytes[start, start + length)`. */
  bytes: Uint8Array;
  start: number;
  length: number;
  /** The name as text, when at hand (else decoded from the bytes if needed). */
  name: string | undefined;
  /** One UTF-8 byte per character. */
  ascii: boolean;
  /** The SHA-256 as hex (any case); when undefined, its bytes are `shaBytes[shaAt, shaAt + 32)`. */
  shaHex: string | undefined;
  shaBytes: Uint8Array;
  shaAt: number;
  size: number;
  mtimeMs: number;
}

/**
 * The files of `NetworkIndex` and every way to reach them: the columns (`FileTable`), names and the token
 * keys of non-ASCII names (`TextChunks`), each owner's list, hash chains by (owner, name), by SHA-256 and by token key, and
 * the inverted index of tokens. Hashes are seeded per index so that a peer cannot announce names or hashes
 * chosen to share one chain and make every lookup walk them.
 */
export class IndexFiles {
  readonly table: FileTable;
  readonly texts = new TextChunks();
  readonly tokens: TokenIndex;
  private readonly lists = new OwnerLists();
  private readonly nameChains = new IdChains();
  private readonly shaChains = new IdChains();
  private readonly keyChains = new IdChains();
  private readonly seed = randomInt(2 ** 30);
  private readonly tokenScratch: string[] = [];
  /** The file `put` reads, refilled for each (no object per file). */
  private readonly input: FileInput = {
    bytes: new Uint8Array(0),
    start: 0,
    length: 0,
    name: undefined,
    ascii: true,
    shaHex: undefined,
    shaBytes: new Uint8Array(0),
    shaAt: 0,
    size: 0,
    mtimeMs: 0,
  };

  constructor(
    bitmapMinFiles: number,
    /** The peer of number `number` (leaving ones included). */
    private readonly ownerAt: (number: number) => IndexPeer,
    onCapacity: (capacity: number) => void,
  ) {
    this.tokens = new TokenIndex(bitmapMinFiles, this.seed);
    this.table = new FileTable((capacity) => {
      this.resize(capacity);
      onCapacity(capacity);
    });
  }

  /** Compares files by name, in code-unit order (see `compareUtf16Order`). */
  readonly compareIds: CompareIds = (a, b) =>
    this.texts.compareNames(this.table.texts.get(a), this.table.texts.get(b));

  ownerOf(id: number): IndexPeer {
    return this.ownerAt(this.table.owner(id) - 1);
  }

  /** The file of `peer` named `name`, or -1. */
  find(peer: IndexPeer, name: string): number {
    if (!peer.namesChained) this.chainNames(peer);
    const { bytes, length } = encodeScratch(name);
    return this.findEncoded(peer, bytes, 0, length, hashBytes(bytes, 0, length, this.nameSeed(peer)));
  }

  /** `find` of the name whose UTF-8 is `bytes[start, start + length)` and whose name hash is `hash`. */
  private findEncoded(
    peer: IndexPeer,
    bytes: Uint8Array,
    start: number,
    length: number,
    hash: number,
  ): number {
    const owner = peer.number + 1;
    const table = this.table;
    for (let id = this.nameChains.first(hash); id >= 0; id = this.nameChains.after(id)) {
      if (
        this.nameChains.hashOf(id) === hash &&
        table.owner(id) === owner &&
        this.texts.nameEquals(table.texts.get(id), bytes, start, length)
      )
        return id;
    }
    return -1;
  }

  /**
   * Puts `peer`'s files into the name chains, if they are not. Costs a hash and a link per file: the index's
   * async updates call `chainName` in slices instead, then `markChained`.
   */
  chainNames(peer: IndexPeer): void {
    if (peer.namesChained) return;
    for (const id of this.ids(peer)) this.chainName(id);
    peer.namesChained = true;
  }

  /** Links file `id`, of a peer whose names are not chained yet, into the name chains. */
  chainName(id: number): void {
    const address = this.table.texts.get(id);
    const chunk = this.texts.chunkOf(address);
    const start = this.texts.nameStart(address);
    const length = this.texts.nameLength(address);
    this.nameChains.add(id, hashBytes(chunk, start, length, this.nameSeed(this.ownerOf(id))));
  }

  /**
   * Whether the next files of `peer`, which has none, go in without name chains: true for a state whose
   * names are distinct (`upsert` with `absent`), false otherwise.
   */
  setUnchained(peer: IndexPeer, unchained: boolean): void {
    if (peer.count !== 0) throw new Error('setUnchained: the peer has files');
    peer.namesChained = !unchained;
  }

  /** The file after `id` in its owner's list (which starts at `IndexPeer.first`), or -1. */
  nextOf(id: number): number {
    return this.lists.after(id);
  }

  /** The ids of `peer`'s files. */
  ids(peer: IndexPeer): number[] {
    return this.lists.ids(peer);
  }

  entry(id: number): FileEntry {
    const table = this.table;
    return {
      name: this.texts.name(table.texts.get(id)),
      size: table.sizes.get(id),
      sha256: table.sha(id),
      mtimeMs: table.mtimes.get(id),
    };
  }

  /** File `id` as a search match. */
  match(id: number): Match {
    const { name, size, sha256 } = this.entry(id);
    return { name, size, sha256, peer: this.ownerOf(id) };
  }

  /**
   * Adds `file` to `peer`, or updates its content fields when `peer` has a file of that name. `absent`:
   * the caller knows `peer` has no file of that name (its first state, whose names are distinct), so the
   * name is not looked up first. Returns the file's id.
   */
  upsert(peer: IndexPeer, file: FileEntry, absent = false): number {
    // The name is encoded once: found by its bytes, and stored from them when new.
    const { bytes, length } = encodeScratch(file.name);
    const input = this.input;
    input.bytes = bytes;
    input.start = 0;
    input.length = length;
    input.name = file.name;
    input.ascii = length === file.name.length;
    input.shaHex = file.sha256;
    input.size = file.size;
    input.mtimeMs = file.mtimeMs;
    return this.put(peer, input, absent);
  }

  /** `upsert` of file `i` of a packed list (see PackedFiles): nothing decoded, no object made. */
  upsertPacked(peer: IndexPeer, files: PackedFiles, i: number, absent = false): number {
    const input = this.input;
    input.bytes = files.names;
    input.start = files.nameStart(i);
    input.length = files.nameLength(i);
    input.name = undefined;
    input.ascii = files.isAscii(i);
    input.shaHex = undefined;
    input.shaBytes = files.shas;
    input.shaAt = 32 * i;
    input.size = files.size(i);
    input.mtimeMs = files.mtimeMs(i);
    return this.put(peer, input, absent);
  }

  private put(peer: IndexPeer, file: FileInput, absent: boolean): number {
    const table = this.table;
    const { bytes, start, length } = file;
    if (!absent && !peer.namesChained) this.chainNames(peer);
    const chained = peer.namesChained;
    const nameHash = chained ? hashBytes(bytes, start, length, this.nameSeed(peer)) : 0;
    const existing = absent ? -1 : this.findEncoded(peer, bytes, start, length, nameHash);
    if (existing >= 0) {
      // Same name, same tokens: only the content fields can differ, and the postings stay as they are.
      if (!this.hasSha(existing, file)) {
        this.shaChains.delete(existing);
        this.shaChains.add(existing, this.setSha(existing, file));
      }
      peer.totalBytes += file.size - table.sizes.get(existing);
      table.sizes.set(existing, file.size);
      table.mtimes.set(existing, file.mtimeMs);
      return existing;
    }
    const id = table.allocate(peer.number);
    let address: number;
    let keyHash: number;
    // An ASCII name (one UTF-8 byte per UTF-16 unit): its tokens are read off its bytes and not kept.
    if (file.ascii) {
      keyHash = this.tokens.addAscii(id, bytes, start, length, this.seed, table.capacity);
      address = this.texts.add(id, bytes, start, length, '');
    } else {
      const tokens = this.tokenScratch;
      tokens.length = 0;
      const name = file.name ?? Buffer.from(bytes.buffer, bytes.byteOffset + start, length).toString('utf8');
      for (const token of tokenize(name)) tokens.push(token);
      this.tokens.add(id, tokens, table.capacity);
      address = this.texts.add(id, bytes, start, length, tokenKey(tokens));
      keyHash = this.texts.hashExtra(address, this.seed);
    }
    table.texts.set(id, address);
    const shaHash = this.setSha(id, file);
    table.sizes.set(id, file.size);
    table.mtimes.set(id, file.mtimeMs);
    this.lists.add(peer, id);
    if (chained) this.nameChains.add(id, nameHash);
    this.shaChains.add(id, shaHash);
    this.keyChains.add(id, keyHash);
    peer.totalBytes += file.size;
    peer.nameBytes += length;
    peer.order?.insert(id, this.compareIds);
    return id;
  }

  private hasSha(id: number, file: FileInput): boolean {
    return file.shaHex !== undefined
      ? this.table.sha(id) === file.shaHex.toLowerCase()
      : this.table.shaEquals(id, file.shaBytes, file.shaAt);
  }

  /** Stores `file`'s SHA-256 as file `id`'s; returns its seeded hash. */
  private setSha(id: number, file: FileInput): number {
    return file.shaHex !== undefined
      ? this.table.setSha(id, file.shaHex, this.seed)
      : this.table.setShaBytes(id, file.shaBytes, file.shaAt, this.seed);
  }

  /** Frees file `id` and everything pointing at it. */
  remove(id: number): void {
    const table = this.table;
    const peer = this.ownerOf(id);
    const address = table.texts.get(id);
    this.tokens.remove(id, this.tokensOf(address), table.capacity, table.idCount);
    this.keyChains.delete(id);
    if (peer.namesChained) this.nameChains.delete(id);
    this.shaChains.delete(id);
    this.lists.delete(peer, id);
    // A leaving peer's order is of no use; else it goes without this file (or goes, were the file not in it).
    if (peer.order !== undefined && (peer.removed || !peer.order.remove(id, this.compareIds)))
      peer.order = undefined;
    peer.nameBytes -= this.texts.nameLength(address);
    this.texts.release(address);
    peer.totalBytes -= table.sizes.get(id);
    table.release(id);
  }

  /**
   * Moves some names (`MOVE_ENTRIES_PER_STEP`) out of the sparsest text chunk (see `TextChunks.moveChunk`);
   * false when no chunk is sparse.
   */
  compactTexts(): boolean {
    const sparse = this.texts.sparseChunks();
    if (sparse.length === 0) return false;
    const table = this.table;
    this.texts.moveChunk(
      sparse[0]!,
      // An entry released long ago may name an id above the id space now.
      (id, address) => id < table.capacity && table.owner(id) !== 0 && table.texts.get(id) === address,
      (id, address) => table.texts.set(id, address),
      MOVE_ENTRIES_PER_STEP,
    );
    return true;
  }

  /** The files as the word search sees them. */
  searchFiles(): SearchFiles {
    const { table, texts } = this;
    return {
      get idCount() {
        return table.idCount;
      },
      visible: (id) => !this.ownerOf(id).removed,
      hasTokenStarting: (id, needle) => {
        const address = table.texts.get(id);
        const chunk = texts.chunkOf(address);
        const extraLength = texts.extraLength(address);
        if (extraLength > 0) return includesBytes(chunk, texts.extraStart(address), extraLength, needle);
        // No key kept: an ASCII name, or a name without tokens (where no ASCII letter or digit is found).
        return asciiHasTokenStarting(chunk, texts.nameStart(address), texts.nameLength(address), needle);
      },
      forEachExact: (words, visit) => {
        const text = tokenKey(words);
        const key = utf8(text);
        const hash = hashBytes(key, 0, key.length, this.seed);
        for (let id = this.keyChains.first(hash); id >= 0; id = this.keyChains.after(id)) {
          if (this.keyChains.hashOf(id) === hash && this.keyOf(table.texts.get(id)) === text && !visit(id))
            return;
        }
      },
    };
  }

  /** Pushes the visible files with SHA-256 `sha256` (lowercase hex) to `found`, up to `max` + 1. */
  findSha(sha256: string, max: number, found: number[]): void {
    if (!/^[0-9a-f]{64}$/.test(sha256)) return;
    const bytes = Buffer.from(sha256, 'hex');
    const hash = hashBytes(bytes, 0, bytes.length, this.seed);
    for (let id = this.shaChains.first(hash); id >= 0; id = this.shaChains.after(id)) {
      if (this.shaChains.hashOf(id) !== hash || this.ownerOf(id).removed || !this.table.shaEquals(id, bytes))
        continue;
      found.push(id);
      if (found.length > max) return;
    }
  }

  private nameSeed(peer: IndexPeer): number {
    return this.seed ^ Math.imul(peer.number + 1, 0x9e3779b1);
  }

  /** The tokens of the file whose texts are at `address`, in order, in a scratch list valid until the next call. */
  private tokensOf(address: number): string[] {
    const tokens = this.tokenScratch;
    tokens.length = 0;
    const texts = this.texts;
    if (texts.extraLength(address) > 0) {
      for (const token of keyTokens(texts.extra(address))) tokens.push(token);
      return tokens;
    }
    // No key kept: an ASCII name, or one without tokens.
    const chunk = texts.chunkOf(address);
    const start = texts.nameStart(address);
    const length = texts.nameLength(address);
    if (isAscii(chunk, start, length)) asciiTokens(texts.name(address), chunk, start, length, 0, tokens);
    return tokens;
  }

  /** The token key of the file whose texts are at `address` (see `tokenKey`). */
  private keyOf(address: number): string {
    return this.texts.extraLength(address) > 0
      ? this.texts.extra(address)
      : tokenKey(tokenize(this.texts.name(address)));
  }

  /** The id space is now `capacity` ids (the ids above it are free): every id-indexed structure follows. */
  private resize(capacity: number): void {
    this.tokens.resize(capacity);
    this.lists.setLimit(capacity);
    this.nameChains.setIdLimit(capacity);
    this.shaChains.setIdLimit(capacity);
    this.keyChains.setIdLimit(capacity);
  }
}
