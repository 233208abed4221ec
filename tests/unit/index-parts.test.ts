import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { asciiHasTokenStarting, hashBytes, includesBytes, isAscii, utf8 } from '../../libs/search/bytes.js';
import { MapFiles, signatureOf } from '../../libs/search/map-files.js';
import { type OwnerList, OwnerLists } from '../../libs/search/owner-lists.js';
import { PeerRecord, PeerTable } from '../../libs/search/peer-table.js';
import { insertId, removeId, SMALL_LIST, type SortedIds } from '../../libs/search/postings.js';
import { tokenize } from '../../libs/search/query.js';
import { CHUNK_BYTES, TextChunks } from '../../libs/search/text-chunks.js';
import { TokenIndex } from '../../libs/search/token-index.js';
import { asciiTokens, hashToken, scanAsciiTokens, tokenKey } from '../../libs/search/token-key.js';
import { prng } from '../helpers/prng.js';

describe('bytes', () => {
  it('reads the tokens of an ASCII name off its bytes exactly as tokenize does', () => {
    const random = prng(7);
    const alphabet = 'aBc9_ -./xYz0';
    for (let n = 0; n < 2000; n++) {
      const name = Array.from({ length: 1 + Math.floor(random() * 12) }, () =>
        alphabet.charAt(Math.floor(random() * alphabet.length)),
      ).join('');
      const word = tokenize(alphabet.charAt(Math.floor(random() * 3)) + (random() < 0.5 ? 'y' : ''))[0]!;
      const bytes = utf8(`..${name}`);
      const expected = tokenize(name).some((token) => token.startsWith(word));
      assert.equal(asciiHasTokenStarting(bytes, 2, bytes.length - 2, utf8(`\0${word}`)), expected, name);
    }
  });

  it('splits an ASCII name into the tokens tokenize gives, hashing its token key without building it', () => {
    const random = prng(8);
    const alphabet = 'aBc9_ -./xYZ0q';
    for (let n = 0; n < 2000; n++) {
      const name = Array.from({ length: Math.floor(random() * 16) }, () =>
        alphabet.charAt(Math.floor(random() * alphabet.length)),
      ).join('');
      const bytes = utf8(`..${name}`);
      const tokens: string[] = ['left over'];
      tokens.length = 0;
      const hash = asciiTokens(name, bytes, 2, bytes.length - 2, 99, tokens);
      assert.deepEqual(tokens, tokenize(name), name);
      const key = utf8(tokenKey(tokenize(name)));
      assert.equal(hash, hashBytes(key, 0, key.length, 99), name);
    }
  });

  it('compares, searches and hashes byte ranges', () => {
    const bytes = utf8('xx\0holiday\0photos');
    assert.equal(includesBytes(bytes, 2, bytes.length - 2, utf8('\0pho')), true);
    assert.equal(includesBytes(bytes, 2, bytes.length - 2, utf8('\0oto')), false);
    assert.equal(includesBytes(bytes, 2, 5, utf8('\0pho')), false);
    assert.equal(hashBytes(bytes, 2, 8, 1), hashBytes(utf8('\0holiday'), 0, 8, 1));
    assert.notEqual(hashBytes(bytes, 2, 8, 1), hashBytes(bytes, 2, 8, 2));
    assert.equal(isAscii(utf8('plain.txt'), 0, 9), true);
    assert.equal(isAscii(utf8('café'), 0, 5), false);
  });
});

describe('sorted id lists', () => {
  it('stay sorted and exact through inserts and removals, as plain and as typed arrays', () => {
    const random = prng(3);
    const list: SortedIds = { ids: [], count: 0 };
    const model = new Set<number>();
    let sawTyped = false;
    for (let step = 0; step < 5000; step++) {
      const id = Math.floor(random() * 300);
      const grow = step < 2500 ? random() < 0.7 : random() < 0.3;
      if (grow && !model.has(id)) {
        insertId(list, id);
        model.add(id);
      } else assert.equal(removeId(list, id), model.delete(id));
      if (!Array.isArray(list.ids)) sawTyped = true;
      assert.equal(list.count, model.size);
      assert.ok(Array.isArray(list.ids) || model.size > SMALL_LIST >> 1);
    }
    assert.ok(sawTyped, 'went past SMALL_LIST');
    assert.deepEqual(
      [...list.ids.slice(0, list.count)],
      [...model].sort((a, b) => a - b),
    );
  });
});

describe('OwnerLists', () => {
  it('links each owner’s ids and unlinks any of them', () => {
    const lists = new OwnerLists();
    const a: OwnerList = { first: -1, count: 0 };
    const b: OwnerList = { first: -1, count: 0 };
    for (let id = 0; id < 10; id++) lists.add(id % 2 === 0 ? a : b, id);
    lists.delete(a, 4);
    lists.delete(a, 8);
    lists.delete(b, 1);
    assert.deepEqual(lists.ids(a), [6, 2, 0]);
    assert.deepEqual(lists.ids(b), [9, 7, 5, 3]);
    assert.equal(a.count, 3);
    lists.setLimit(2048);
    assert.deepEqual(lists.ids(b), [9, 7, 5, 3]);
  });
});

describe('TextChunks', () => {
  it('stores names and keys, drops empty chunks and moves the live entries out of a sparse one', () => {
    const texts = new TextChunks();
    const addresses: number[] = [];
    const name = (id: number) => `folder/some rather long file name number ${id} ünï.txt`;
    let id = 0;
    const add = (entryId: number, extra: string) => {
      const bytes = utf8(name(entryId));
      return texts.add(entryId, bytes, 0, bytes.length, extra);
    };
    while (texts.chunkCount < 3) addresses.push(add(id, `\0key${id++}`));
    assert.equal(texts.name(addresses[5]!), name(5));
    assert.equal(texts.extra(addresses[5]!), '\0key5');
    const firstChunk = (addresses[0]! / CHUNK_BYTES) | 0;
    const inFirst = addresses.filter((address) => ((address / CHUNK_BYTES) | 0) === firstChunk).length;
    // Release all but every tenth entry of the first chunk: it becomes sparse.
    const live = new Set<number>();
    for (let i = 0; i < inFirst; i++) {
      if (i % 10 === 0) live.add(i);
      else texts.release(addresses[i]!);
    }
    assert.deepEqual(texts.sparseChunks(), [firstChunk]);
    // A few entries a step, as compaction does between slices; names read right between steps.
    let steps = 0;
    while (
      !texts.moveChunk(
        firstChunk,
        (entryId, address) => live.has(entryId) && addresses[entryId] === address,
        (entryId, address) => {
          addresses[entryId] = address;
        },
        7,
      )
    ) {
      steps++;
      for (const entryId of live) assert.equal(texts.name(addresses[entryId]!), name(entryId));
    }
    assert.ok(steps > 1, `${steps} steps`);
    assert.equal(texts.chunkCount, 2 + (texts.sparseChunks().length > 0 ? 0 : 0));
    for (const entryId of live) assert.equal(texts.name(addresses[entryId]!), name(entryId));
    for (let i = inFirst; i < id; i++) texts.release(addresses[i]!);
    for (const entryId of live) texts.release(addresses[entryId]!);
    assert.equal(texts.chunkCount, 0);
    assert.equal(texts.liveBytes, 0);
  });
});

describe('MapFiles', () => {
  const file = (name: string, size: number) => ({
    name,
    size,
    sha256: (size % 16).toString(16).repeat(64),
    mtimeMs: 0,
  });
  it('gives an ASCII name, read off its bytes, the signature its tokens give', () => {
    const random = prng(11);
    const alphabet = 'aZ09 ._-/xYq';
    const files = new MapFiles();
    const names = new Set<string>();
    while (names.size < 5000) {
      let name = '';
      for (let length = 1 + Math.floor(random() * 12); length > 0; length--)
        name += alphabet[Math.floor(random() * alphabet.length)];
      names.add(name);
    }
    for (const name of names) files.upsert(file(name, 1));
    for (let slot = 0; slot < files.count; slot++) {
      const name = files.name(slot);
      const expected = signatureOf(name).map((word) => word >>> 0);
      assert.deepEqual([files.signatures[2 * slot], files.signatures[2 * slot + 1]], expected, name);
    }
  });

  it('updates a file by name, moves the last slot into a removed one and finds names after fit()', () => {
    const files = new MapFiles();
    const names = Array.from({ length: 500 }, (_, i) => `dir/名前 ${i}.txt`);
    for (const [i, name] of names.entries()) files.upsert(file(name, i));
    assert.equal(files.count, 500);
    assert.equal(files.totalBytes, (499 * 500) / 2);
    files.upsert(file(names[7]!, 1000)); // same name: updated in place
    assert.equal(files.count, 500);
    assert.equal(files.name(7), names[7]);
    assert.equal(files.sha(7), '8'.repeat(64));
    assert.equal(files.totalBytes, (499 * 500) / 2 - 7 + 1000);
    files.remove(names[42]!);
    assert.equal(files.count, 499);
    assert.equal(files.name(42), names[499], 'the last file moved into the freed slot');
    files.fit(); // the name table is dropped; the next change by name builds it again
    files.remove('missing');
    assert.equal(files.count, 499);
    files.remove(names[499]!);
    assert.equal(files.count, 498);
    assert.notEqual(files.name(42), names[499]);
    while (files.count > 10) files.remove(files.name(0));
    for (let slot = 0; slot < files.count; slot++) {
      const name = files.name(slot);
      files.upsert(file(name, 3));
      assert.equal(files.count, 10, `${name} found again, not added`);
    }
    assert.equal(files.totalBytes, 30);
  });
});

class Peer extends PeerRecord {
  get fileCount(): number {
    return 0;
  }
}

describe('PeerTable', () => {
  it('applies the update rules and reuses a number only once released', () => {
    const table = new PeerTable<Peer>();
    const a = new Peer('a', table.nextNumber(), 'i1', 'http://a', 5);
    table.add(a);
    const b = new Peer('b', table.nextNumber(), 'i1', 'http://b', 1);
    table.add(b);
    const state = { peerId: 'a', instanceId: 'i1', url: 'http://a', seq: 5, files: [] };
    assert.equal(table.fullResult(state), 'unchanged');
    assert.equal(table.fullResult({ ...state, seq: 4 }), 'stale');
    assert.equal(table.fullResult({ ...state, instanceId: 'i2', seq: 1 }), 'applied');
    const delta = { peerId: 'a', instanceId: 'i1', seq: 6, upserted: [], removed: [] };
    assert.equal(table.deltaTarget(delta).peer, a);
    assert.equal(table.deltaTarget({ ...delta, seq: 5 }).result, 'duplicate');
    assert.equal(table.deltaTarget({ ...delta, seq: 8 }).result, 'gap');
    assert.equal(table.deltaTarget({ ...delta, peerId: 'z' }).result, 'unknown-peer');
    assert.equal(table.detach('a', 'other'), undefined);
    assert.equal(table.detach('a'), a);
    assert.equal(a.removed, true);
    assert.equal(table.at(a.number), a, 'kept until released');
    assert.notEqual(table.nextNumber(), a.number);
    table.release(a);
    assert.equal(table.nextNumber(), a.number);
    assert.deepEqual(
      table.list().map((peer) => peer.peerId),
      ['b'],
    );
  });
});

describe('TokenIndex', () => {
  it("adds an ASCII name's tokens from its bytes exactly as from its token strings, through removals and re-adds", () => {
    const random = prng(31);
    // Seeded as an index seeds them: token hashes read off bytes and made from strings must agree.
    const byBytes = new TokenIndex(16, 0x2bad5eed);
    const byStrings = new TokenIndex(16, 0x2bad5eed);
    const capacity = 4096;
    // Many distinct tokens (more than the cache of entries holds), in both cases, repeated in a name.
    const word = () => `${'aBc9xYZq'.charAt(Math.floor(random() * 8))}${Math.floor(random() * 9000)}`;
    const names = Array.from({ length: 3000 }, () => {
      const a = word();
      return `${a}/${word()}-${a.toUpperCase()}_${word()}.dat`;
    });
    const held = new Map<number, string>();
    const state = (index: TokenIndex) =>
      index.dictionary
        .tokens()
        .map((token) => {
          const entry = index.dictionary.get(token)!;
          const ids = entry.bits
            ? [...Array(capacity).keys()].filter((id) => (entry.bits![id >>> 5]! >>> (id & 31)) & 1)
            : entry.ids.slice(0, entry.count);
          return `${token}:${entry.live}:${ids.join(',')}`;
        })
        .join(' ');
    for (let round = 0; round < 3; round++) {
      for (let id = 0; id < names.length; id++) {
        if (held.has(id)) continue;
        const name = names[(id + round * 7) % names.length]!;
        const bytes = utf8(`..${name}`);
        const tokens: string[] = [];
        const expectedHash = asciiTokens(name, bytes, 2, bytes.length - 2, 5, tokens);
        byStrings.add(id, tokens, capacity);
        assert.equal(byBytes.addAscii(id, bytes, 2, bytes.length - 2, 5, capacity), expectedHash, name);
        held.set(id, name);
      }
      assert.equal(state(byBytes), state(byStrings), `round ${round}`);
      // Remove most files, so that tokens leave the dictionaries (and come back, as new entries, next round).
      for (const [id, name] of held) {
        if (random() < 0.2) continue;
        const tokens = tokenize(name);
        byBytes.remove(id, tokens, capacity, names.length);
        byStrings.remove(id, tokens, capacity, names.length);
        held.delete(id);
      }
      assert.equal(state(byBytes), state(byStrings), `round ${round}, after removals`);
    }
    byBytes.dictionary.checkConsistency();
  });

  it('tells apart two ASCII tokens whose bytes hash alike', () => {
    // Two tokens with the same 32-bit FNV-1a hash (found by trying, as the birthday bound allows).
    const seen = new Map<number, string>();
    let pair: [string, string] | undefined;
    for (let n = 0; pair === undefined && n < 1_000_000; n++) {
      const token = `t${n}`;
      let hash = 0x811c9dc5;
      for (let i = 0; i < token.length; i++) hash = Math.imul(hash ^ token.charCodeAt(i), 0x01000193);
      const other = seen.get(hash);
      if (other !== undefined) pair = [other, token];
      else seen.set(hash, token);
    }
    assert.ok(pair !== undefined);
    const tokens = new TokenIndex(16);
    for (const [id, token] of pair.entries()) {
      const bytes = utf8(token);
      tokens.addAscii(id, bytes, 0, bytes.length, 0, 64);
    }
    assert.deepEqual(tokens.dictionary.tokens().sort(), [...pair].sort());
    assert.deepEqual(tokens.dictionary.get(pair[1])!.ids.slice(0, 1), [1]);
    // Under another seed (as another index has) the two hash apart: names written to collide in one
    // index's table do not collide in another's.
    const seeded = new TokenIndex(16, 12345);
    const hashes = pair.map((token) => {
      let seen = 0;
      const bytes = utf8(token);
      scanAsciiTokens(bytes, 0, bytes.length, 0, (_first, _end, _upper, hash) => (seen = hash), 12345);
      assert.equal(seen, hashToken(token, 12345));
      return seen;
    });
    assert.notEqual(hashes[0], hashes[1]);
    for (const [id, token] of pair.entries()) seeded.add(id, [token], 64);
    assert.deepEqual(seeded.dictionary.tokens().sort(), [...pair].sort());
  });

  it('moves a token to a bitmap at the threshold and back to a list under a quarter of it', () => {
    const tokens = new TokenIndex(64);
    const capacity = 1024;
    for (let id = 0; id < 100; id++) tokens.add(id, ['common', `rare${id}`], capacity);
    assert.equal(tokens.bitmapCount, 1);
    assert.equal(tokens.listedIds, 100);
    for (let id = 0; id < 90; id++) tokens.remove(id, ['common', `rare${id}`], capacity, 100);
    assert.equal(tokens.bitmapCount, 0);
    assert.equal(tokens.dictionary.get('common')!.count, 10);
    assert.equal(tokens.dictionary.size, 11);
  });

  it('grows its bitmaps ahead of the next doubling, one every 32 files, so a doubling copies none', () => {
    const tokens = new TokenIndex(16);
    const bitsOf = (token: string) => tokens.dictionary.get(token)!.bits!;
    const setIds = (token: string) => {
      const bits = bitsOf(token);
      return [...Array(bits.length * 32).keys()].filter((id) => (bits[id >>> 5]! >>> (id & 31)) & 1);
    };
    const common = ['alpha', 'beta', 'gamma', 'delta'];
    let capacity = 1024;
    tokens.resize(capacity);
    let id = 0;
    for (; id < 40; id++) tokens.add(id, [...common, `rare${id}`], capacity);
    assert.equal(tokens.bitmapCount, common.length);
    // Made after the space grew: already one doubling ahead.
    for (const token of common) assert.equal(bitsOf(token).length, (2 * capacity) / 32);
    // The space doubles: the bitmaps already cover it, none is copied, and they are grown ahead again,
    // one per file added.
    capacity *= 2;
    const before = common.map(bitsOf);
    tokens.resize(capacity);
    assert.deepEqual(common.map(bitsOf), before, 'no bitmap copied when the space doubles');
    assert.equal(tokens.bitmapsBehind, common.length);
    for (let i = 0; i < 31; i++) tokens.add(id++, [`rare-a${i}`], capacity);
    assert.equal(tokens.bitmapsBehind, common.length, 'none grown in the first 31 files');
    tokens.add(id++, ['rare-b'], capacity);
    assert.equal(tokens.bitmapsBehind, common.length - 1, 'one at the 32nd');
    for (let i = 0; i < 32 * (common.length - 1); i++) tokens.add(id++, [`rare-c${i}`], capacity);
    assert.equal(tokens.bitmapsBehind, 0);
    for (const token of common) {
      assert.equal(bitsOf(token).length, (2 * capacity) / 32);
      assert.deepEqual(setIds(token), [...Array(40).keys()], `${token} keeps its files`);
    }
    // Shrinking: every bitmap at the new size at once, and nothing grown ahead until the space grows.
    tokens.resize(1024);
    assert.equal(tokens.bitmapsBehind, 0);
    for (const token of common) {
      assert.equal(bitsOf(token).length, 1024 / 32);
      assert.deepEqual(setIds(token), [...Array(40).keys()]);
    }
  });

  it('turns a bitmap back into a list when the space grows past four times its files, instead of growing it', () => {
    const tokens = new TokenIndex(16);
    let capacity = 1024;
    tokens.resize(capacity);
    let id = 0;
    // `early` reaches the threshold (16 files, as 1,024 do at 65,536) while the space is small; `common`
    // keeps a share of every file.
    for (; id < 20; id++) tokens.add(id, ['early', 'common', `rare${id}`], capacity);
    assert.equal(tokens.bitmapCount, 2);
    const grow = (to: number) => {
      capacity = to;
      tokens.resize(capacity);
      for (let i = 0; i < 64; i++) tokens.add(id++, ['common', `later${id}`], capacity);
    };
    grow(2048); // threshold 32, a quarter 8: `early` (20 files) stays a bitmap
    assert.equal(tokens.bitmapCount, 2);
    grow(8192); // threshold 128, a quarter 32: `early` (20 files) goes back to a list rather than grow
    assert.equal(tokens.bitmapCount, 1);
    const early = tokens.dictionary.get('early')!;
    assert.equal(early.bits, undefined);
    assert.deepEqual(early.ids.slice(0, early.count), [...Array(20).keys()]);
    assert.ok(tokens.dictionary.get('common')!.bits !== undefined, 'a token of many files keeps its bitmap');
    // A list again, it takes files as lists do.
    tokens.add(id++, ['early'], capacity);
    assert.equal(tokens.dictionary.get('early')!.count, 21);
    tokens.resize(1 << 20);
    assert.equal(tokens.bitmapCount, 0, 'common (148 files) is under a quarter of 16,384 too');
    assert.equal(tokens.dictionary.get('common')!.count, 148);
  });

  it('covers the id space at once when it grows faster than its bitmaps were grown ahead', () => {
    const tokens = new TokenIndex(16);
    tokens.resize(1024);
    for (let id = 0; id < 20; id++) tokens.add(id, ['common', `rare${id}`], 1024);
    // Two doublings with no file added between them: no growing ahead happened.
    tokens.resize(2048);
    tokens.resize(4096);
    const bitsOfCommon = () => tokens.dictionary.get('common')!.bits!;
    assert.ok(bitsOfCommon().length >= 4096 / 32, `${bitsOfCommon().length} words cover 4096 ids`);
    tokens.add(4095, ['common'], 4096);
    assert.equal(bitsOfCommon()[4095 >>> 5]! >>> 31, 1, 'the last id of the space is set');
    assert.equal(bitsOfCommon()[0]! & 1, 1, 'the first files are kept');
  });
});
