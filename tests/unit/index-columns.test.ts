import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Float64Column, PIECE_IDS, Uint32Column, uint8s, uint32s } from '../../libs/search/big-arrays.js';
import { forEachBit, hasBit, wordsFor } from '../../libs/search/bitmap.js';
import { FileTable } from '../../libs/search/file-table.js';
import { IdChains, SPLIT_BATCH } from '../../libs/search/id-chains.js';
import { IdPool } from '../../libs/search/id-pool.js';
import { type OwnerList, OwnerLists } from '../../libs/search/owner-lists.js';
import { TokenIndex } from '../../libs/search/token-index.js';
import { prng } from '../helpers/prng.js';

describe('big arrays', () => {
  it('gives zeroed arrays of the asked length, large ones included', () => {
    for (const length of [10, 1 << 20]) {
      const ints = uint32s(length);
      assert.equal(ints.length, length);
      assert.equal(ints[length - 1], 0);
    }
    assert.equal(uint8s(100_000).length, 100_000);
  });

  it('grows and shrinks a column by whole pieces without moving the pieces kept', () => {
    const column = new Uint32Column(2);
    column.setLimit(PIECE_IDS);
    assert.equal(column.pieces.length, 1);
    assert.equal(column.limit, PIECE_IDS);
    column.pieces[0]![2 * (PIECE_IDS - 1)] = 7;
    const first = column.pieces[0];
    column.setLimit(2 * PIECE_IDS + 1);
    assert.equal(column.pieces.length, 3);
    assert.equal(column.pieces[0], first, 'growing copies nothing');
    assert.equal(column.pieces[2]!.length, 2 * PIECE_IDS);
    column.pieces[2]![0] = 9;
    column.setLimit(PIECE_IDS);
    assert.equal(column.pieces.length, 1);
    assert.equal(column.pieces[0], first);
    column.setLimit(3 * PIECE_IDS);
    assert.equal(column.pieces[2]![0], 0, 'a piece given back comes back zeroed');
  });

  it('sizes a lone first piece to the ids it holds, keeping its values when it changes', () => {
    const column = new Uint32Column();
    column.setLimit(1);
    assert.equal(column.limit, 1024);
    column.set(1000, 5);
    column.setLimit(5000);
    assert.equal(column.limit, 8192);
    assert.equal(column.get(1000), 5);
    column.setLimit(PIECE_IDS + 1);
    assert.equal(column.limit, 2 * PIECE_IDS);
    assert.equal(column.get(1000), 5);
    column.set(PIECE_IDS - 1, 6);
    column.setLimit(2000);
    assert.equal(column.limit, 2048);
    assert.equal(column.pieces[0]!.length, 2048, 'an emptied column holds little');
    assert.equal(column.get(1000), 5);
    const floats = new Float64Column();
    floats.setLimit(2 * PIECE_IDS);
    floats.set(PIECE_IDS - 1, 1.5);
    floats.set(PIECE_IDS, -2.25);
    assert.equal(floats.get(PIECE_IDS - 1), 1.5);
    assert.equal(floats.get(PIECE_IDS), -2.25);
  });
});

describe('IdPool', () => {
  it('gives the lowest free id first and forgets the ids above a trim, as a sorted model does', () => {
    const random = prng(5);
    const pool = new IdPool(1 << 22);
    const model = new Set<number>();
    const lowest = () => (model.size === 0 ? undefined : Math.min(...model));
    for (let step = 0; step < 4000; step++) {
      const roll = random();
      if (roll < 0.55) {
        // Ids spread over several words of every level, some far apart.
        const id = random() < 0.5 ? Math.floor(random() * 200) : Math.floor(random() * (1 << 22));
        if (!model.has(id)) {
          pool.push(id);
          model.add(id);
        }
      } else if (roll < 0.95) {
        const expected = lowest();
        assert.equal(pool.peek(), expected);
        const id = pool.pop();
        assert.equal(id, expected);
        if (id !== undefined) model.delete(id);
      } else {
        const limit = Math.floor(random() * (1 << 22));
        pool.trimTo(limit);
        for (const id of [...model]) if (id >= limit) model.delete(id);
      }
      assert.equal(pool.size, model.size);
    }
    pool.trimTo(0);
    assert.equal(pool.size, 0);
    assert.equal(pool.pop(), undefined);
  });
});

describe('IdChains', () => {
  it('finds every id through growth and shrinkage across bucket and piece boundaries', () => {
    const random = prng(21);
    const chains = new IdChains();
    const count = 2 * PIECE_IDS + 500;
    chains.setIdLimit(count);
    const hashes = new Map<number, number>();
    const findable = (ids: Iterable<number>) => {
      for (const id of ids) {
        const hash = hashes.get(id)!;
        let seen = false;
        let steps = 0;
        for (let at = chains.first(hash); at >= 0 && !seen; at = chains.after(at)) {
          seen = at === id;
          assert.ok(++steps <= chains.size, 'a chain ends');
        }
        assert.ok(seen, `id ${id}`);
      }
    };
    for (let id = 0; id < count; id++) {
      // Every 64th id shares one hash: a long chain (some 2,000 ids) that splits and merges with the others.
      const hash = id % 64 === 0 ? 0xabcdef : Math.floor(random() * 2 ** 32);
      hashes.set(id, hash);
      chains.add(id, hash);
      if (id % 1000 === 999) findable([id, id - 500, id - 999]);
    }
    assert.equal(chains.size, count);
    // Buckets split a batch at a time: the ids run at most a batch ahead of them.
    assert.ok(
      chains.bucketCount <= count && chains.bucketCount >= count - SPLIT_BATCH,
      `${chains.bucketCount} buckets`,
    );
    findable(hashes.keys());
    // Remove in random order down to a few, checking as the buckets merge.
    const order = [...hashes.keys()].sort(() => random() - 0.5);
    for (const [i, id] of order.entries()) {
      if (i >= count - 50) break;
      chains.delete(id);
      hashes.delete(id);
      if (i % 5000 === 0) findable(hashes.keys());
    }
    findable(hashes.keys());
    assert.equal(chains.bucketCount, 1024);
    // Every bucket's chain holds exactly the ids left, each once.
    const walked = new Set<number>();
    for (let bucket = 0; bucket < chains.bucketCount; bucket++) {
      for (let at = chains.first(bucket); at >= 0; at = chains.after(at)) {
        assert.ok(!walked.has(at), `id ${at} twice`);
        walked.add(at);
      }
    }
    assert.deepEqual(
      [...walked].sort((a, b) => a - b),
      [...hashes.keys()].sort((a, b) => a - b),
    );
    // Growing again from where merging left off (mid-way through a round of splits, so batches are cut at
    // the round's end).
    for (let id = 0; id < count; id++) {
      if (hashes.has(id)) continue;
      const hash = id % 64 === 0 ? 0xabcdef : Math.floor(random() * 2 ** 32);
      hashes.set(id, hash);
      chains.add(id, hash);
      if (id % 1000 === 999) findable([id, id - 999].filter((known) => hashes.has(known)));
    }
    assert.ok(chains.bucketCount >= count - SPLIT_BATCH, `${chains.bucketCount} buckets`);
    findable(hashes.keys());
    const shared = [...hashes.entries()].filter(([, hash]) => hash === 0xabcdef).map(([id]) => id);
    const found: number[] = [];
    for (let at = chains.first(0xabcdef); at >= 0; at = chains.after(at))
      if (chains.hashOf(at) === 0xabcdef) found.push(at);
    assert.deepEqual(
      found.sort((a, b) => a - b),
      shared.sort((a, b) => a - b),
    );
  });
});

describe('IdChains deletion', () => {
  it('deletes the ids of one long chain oldest first as fast as ids of chains of their own', () => {
    const count = 100_000;
    const random = prng(23);
    /** Milliseconds to add `count` ids with these hashes and delete them oldest first (the fastest of three). */
    const addThenDelete = (hashOf: (id: number) => number) => {
      let best = Number.POSITIVE_INFINITY;
      for (let round = 0; round < 3; round++) {
        const chains = new IdChains(count);
        for (let id = 0; id < count; id++) chains.add(id, hashOf(id));
        const started = performance.now();
        // The oldest id is at the far end of its chain: found from the head, each took a walk of the rest.
        for (let id = 0; id < count; id++) chains.delete(id);
        best = Math.min(best, performance.now() - started);
        assert.equal(chains.size, 0);
        assert.equal(chains.first(0x5eed), -1);
      }
      return best;
    };
    const ownHashes = Array.from({ length: count }, () => Math.floor(random() * 2 ** 32));
    const apart = addThenDelete((id) => ownHashes[id]!);
    const shared = addThenDelete(() => 0x5eed);
    // Walking from the head, one chain took n²/2 steps: thousands of times the other.
    assert.ok(
      shared < 10 * apart + 20,
      `one chain ${shared.toFixed(1)} ms, chains apart ${apart.toFixed(1)} ms`,
    );
  });

  it('keeps the back links through splits and merges: any id of a shared chain deletes', () => {
    const random = prng(24);
    const chains = new IdChains(20_000);
    const live = new Set<number>();
    const hashOf = (id: number) =>
      id % 3 === 0 ? 0x77 : id % 3 === 1 ? 0x77 + 1024 : (id * 2654435761) >>> 0;
    for (let round = 0; round < 4; round++) {
      for (let id = 0; id < 20_000; id++) {
        if (live.has(id) || random() < 0.3) continue;
        chains.add(id, hashOf(id));
        live.add(id);
      }
      for (const id of [...live]) {
        if (random() < 0.7) {
          chains.delete(id);
          live.delete(id);
        }
      }
      // Deleting from thousands of one hash walked long: both shared chains are threaded.
      assert.ok(chains.threaded(0x77) && chains.threaded(0x77 + 1024), `round ${round}`);
      assert.ok(!chains.threaded(hashOf(2)), 'a chain never walked long stays as it was');
    }
    const walked = new Set<number>();
    for (let bucket = 0; bucket < chains.bucketCount; bucket++) {
      for (let at = chains.first(bucket); at >= 0; at = chains.after(at)) walked.add(at);
    }
    assert.deepEqual(
      [...walked].sort((a, b) => a - b),
      [...live].sort((a, b) => a - b),
    );
    // Every id deletes by its links (a wrong back link throws), down to nothing.
    for (const id of [...live].sort(() => random() - 0.5)) chains.delete(id);
    assert.equal(chains.size, 0);
  });
});

describe('IdChains batch splits', () => {
  it('splits a batch cut at the end of a round of splits when merging left the round half done', () => {
    const random = prng(22);
    const chains = new IdChains(50_000);
    const hashes = new Map<number, number>();
    for (let id = 0; id < 10_000; id++) {
      const hash = Math.floor(random() * 2 ** 32);
      hashes.set(id, hash);
      chains.add(id, hash);
    }
    // Leave it with a bucket count that is not a whole number of batches.
    for (let id = 0; chains.bucketCount % SPLIT_BATCH === 0 || chains.bucketCount > 4096; id++) {
      chains.delete(id);
      hashes.delete(id);
    }
    for (let id = 10_000; id < 50_000; id++) {
      const hash = Math.floor(random() * 2 ** 32);
      hashes.set(id, hash);
      chains.add(id, hash);
    }
    assert.ok(chains.bucketCount >= chains.size - SPLIT_BATCH && chains.bucketCount <= chains.size);
    let steps = 0;
    for (const [id, hash] of hashes) {
      let at = chains.first(hash);
      for (steps++; at >= 0 && at !== id; steps++) at = chains.after(at);
      assert.equal(at, id, `id ${id} is in its bucket's chain`);
    }
    // About one id per bucket: finding one takes a step or two (the buckets really split, not only counted).
    assert.ok(steps / hashes.size < 3, `${(steps / hashes.size).toFixed(2)} steps an id`);
  });
});

describe('OwnerLists', () => {
  it('links ids across a piece boundary and keeps them through a change of limit', () => {
    const lists = new OwnerLists();
    lists.setLimit(2 * PIECE_IDS);
    const list: OwnerList = { first: -1, count: 0 };
    const ids = [PIECE_IDS - 2, PIECE_IDS - 1, PIECE_IDS, PIECE_IDS + 1, 3];
    for (const id of ids) lists.add(list, id);
    lists.delete(list, PIECE_IDS);
    assert.deepEqual(lists.ids(list), [3, PIECE_IDS + 1, PIECE_IDS - 1, PIECE_IDS - 2]);
    lists.delete(list, PIECE_IDS + 1);
    lists.setLimit(PIECE_IDS);
    assert.deepEqual(lists.ids(list), [3, PIECE_IDS - 1, PIECE_IDS - 2]);
    assert.equal(list.count, 3);
  });
});

describe('FileTable', () => {
  it('reuses the lowest free ids, and gives back its pieces when the top empties', () => {
    const capacities: number[] = [];
    const table = new FileTable((capacity) => capacities.push(capacity));
    const count = 2 * PIECE_IDS + 10;
    for (let i = 0; i < count; i++) assert.equal(table.allocate(i % 7), i);
    assert.equal(table.capacity, 4 * PIECE_IDS);
    assert.equal(table.owners.pieces.length, 4);
    table.setSha(count - 1, 'AB'.repeat(32), 0);
    assert.equal(table.sha(count - 1), 'ab'.repeat(32));
    for (const id of [5, 3, PIECE_IDS + 4]) table.release(id);
    assert.equal(table.allocate(0), 3);
    assert.equal(table.allocate(0), 5);
    for (let id = 100; id < count; id++) if (id !== PIECE_IDS + 4) table.release(id);
    table.trim();
    assert.equal(table.idCount, 100);
    assert.equal(table.capacity, 1024);
    assert.equal(table.owners.pieces.length, 1);
    assert.equal(table.owners.limit, 1024);
    assert.equal(table.lowestFree(), undefined);
    assert.equal(capacities.at(-1), 1024);
    // The id space grows again from the top, into fresh zeroed pieces.
    for (let i = 100; i < PIECE_IDS + 1; i++) assert.equal(table.allocate(1), i);
    assert.equal(table.owners.pieces.length, 2);
    assert.equal(table.sizes.get(PIECE_IDS), 0);
  });
});

describe('TokenIndex bitmaps', () => {
  it('follow the id space as it grows and shrinks, keeping their bits', () => {
    const tokens = new TokenIndex(8);
    for (let id = 0; id < 40; id++) tokens.add(id, ['common', 'common'], 1024);
    // `get` gives a copy of what the token holds now: read again after each change.
    const entry = () => tokens.dictionary.get('common')!;
    assert.ok(entry().bits !== undefined && entry().bits!.length === wordsFor(1024));
    assert.equal(entry().live, 40, 'a repeated token counts once');
    tokens.resize(8192);
    assert.equal(entry().bits!.length, wordsFor(8192));
    tokens.add(5000, ['common'], 8192);
    const seen: number[] = [];
    forEachBit(entry().bits!, 0, wordsFor(8192), (id) => seen.push(id) > 0);
    assert.deepEqual(seen, [...Array.from({ length: 40 }, (_, id) => id), 5000]);
    tokens.remove(5000, ['common'], 8192, 5001);
    tokens.resize(1024);
    assert.equal(entry().bits!.length, wordsFor(1024));
    assert.ok(hasBit(entry().bits!, 39));
  });
});
