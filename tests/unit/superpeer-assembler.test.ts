import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ChunkAssembler } from '../../libs/protocol/index.js';

const part = (
  key: string,
  chunkIndex: number,
  chunkCount: number,
  items: number[],
  version = 'v1',
  bytes = 0,
) => ({
  key,
  version,
  chunkIndex,
  chunkCount,
  items,
  meta: { key },
  bytes,
});

describe('chunk assembler', () => {
  it('hands back a one-chunk list at once and holds nothing', () => {
    const assembler = new ChunkAssembler<{ key: string }, number>();
    assert.deepEqual(assembler.add(part('a', 0, 1, [1, 2])), {
      status: 'complete',
      meta: { key: 'a' },
      items: [1, 2],
    });
    assert.equal(assembler.pending, 0);
  });

  it('joins the chunks of a list in order and then forgets it', () => {
    const assembler = new ChunkAssembler<{ key: string }, number>();
    assert.equal(assembler.add(part('a', 0, 3, [1])).status, 'pending');
    assert.equal(assembler.add(part('a', 1, 3, [2])).status, 'pending');
    assert.equal(assembler.items, 2);
    assert.deepEqual(assembler.add(part('a', 2, 3, [3])), {
      status: 'complete',
      meta: { key: 'a' },
      items: [1, 2, 3],
    });
    assert.equal(assembler.pending, 0);
    assert.equal(assembler.items, 0);
  });

  it('drops a list whose chunks come out of order, of another version or without a start', () => {
    const assembler = new ChunkAssembler<{ key: string }, number>();
    assert.equal(assembler.add(part('a', 1, 3, [2])).status, 'orphan');
    assembler.add(part('a', 0, 3, [1]));
    assert.equal(assembler.add(part('a', 2, 3, [3])).status, 'orphan');
    assert.equal(assembler.pending, 0);
    assembler.add(part('a', 0, 3, [1]));
    assert.equal(assembler.add(part('a', 1, 3, [2], 'v2')).status, 'orphan');
    assembler.add(part('a', 0, 3, [1]));
    assert.equal(assembler.add(part('a', 1, 4, [2])).status, 'orphan', 'chunkCount changed');
  });

  it('gives the items of every list dropped before it completed to onDrop, and of none that completed', () => {
    let now = 0;
    const dropped: number[][] = [];
    const assembler = new ChunkAssembler<{ key: string }, number>(
      { maxPending: 2, maxItemsPerList: 10, maxAgeMs: 1000 },
      () => now,
      (items) => dropped.push([...items]),
    );
    assembler.add(part('done', 0, 2, [1]));
    assembler.add(part('done', 1, 2, [2]));
    assert.deepEqual(dropped, [], 'a completed list is the caller’s');
    assembler.add(part('a', 0, 3, [10]));
    assembler.add(part('a', 1, 3, [11]));
    assembler.add(part('a', 0, 3, [12]));
    assert.deepEqual(dropped, [[10, 11]], 'superseded by a new start');
    assembler.add(part('a', 1, 3, [13], 'v2'));
    assert.deepEqual(dropped.at(-1), [12], 'orphaned by a chunk of another version');
    assembler.add(part('b', 0, 3, [20]));
    assembler.add(part('c', 0, 3, [30]));
    assembler.add(part('d', 0, 3, [40]));
    assert.deepEqual(dropped.at(-1), [20], 'evicted for room');
    assembler.add(part('c', 1, 3, [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]));
    assert.deepEqual(dropped.at(-1), [30], 'refused as too large');
    assembler.delete('d');
    assert.deepEqual(dropped.at(-1), [40], 'deleted (the peer left)');
    assembler.add(part('e', 0, 3, [50]));
    now = 2000;
    assembler.expire();
    assert.deepEqual(dropped.at(-1), [50], 'expired');
    assembler.add(part('f', 0, 3, [60]));
    assembler.clear();
    assert.deepEqual(dropped.at(-1), [60], 'cleared');
    assert.equal(assembler.pending, 0);
    assert.equal(assembler.items, 0);
  });

  it('a new start replaces the list in progress', () => {
    const assembler = new ChunkAssembler<{ key: string }, number>();
    assembler.add(part('a', 0, 2, [1], 'v1'));
    assembler.add(part('a', 0, 2, [10], 'v2'));
    assert.equal(assembler.items, 1);
    assert.deepEqual(assembler.add(part('a', 1, 2, [11], 'v2')), {
      status: 'complete',
      meta: { key: 'a' },
      items: [10, 11],
    });
  });

  it('refuses a list longer than maxItemsPerList, even one chunk, and keeps nothing of it', () => {
    const assembler = new ChunkAssembler<{ key: string }, number>({ maxItemsPerList: 3 });
    assert.deepEqual(assembler.add(part('a', 0, 1, [1, 2, 3, 4])), { status: 'too-large', items: 4 });
    assembler.add(part('a', 0, 3, [1, 2]));
    assert.deepEqual(assembler.add(part('a', 1, 3, [3, 4])), { status: 'too-large', items: 4 });
    assert.equal(assembler.pending, 0);
    assert.equal(assembler.items, 0);
  });

  it('counts a part for its `count` when one item stands for several (a packed list)', () => {
    const assembler = new ChunkAssembler<{ key: string }, number>({ maxItemsPerList: 5 });
    assert.deepEqual(assembler.add({ ...part('a', 0, 3, [1]), count: 3 }), { status: 'pending' });
    assert.equal(assembler.items, 3);
    assert.deepEqual(assembler.add({ ...part('a', 1, 3, [2]), count: 3 }), { status: 'too-large', items: 6 });
    assert.equal(assembler.items, 0);
    assembler.add({ ...part('b', 0, 2, [1]), count: 2 });
    assert.deepEqual(assembler.add({ ...part('b', 1, 2, [2]), count: 3 }), {
      status: 'complete',
      meta: { key: 'b' },
      items: [1, 2],
    });
  });

  it('is bounded in count: the least recently fed assembly goes first', () => {
    const assembler = new ChunkAssembler<{ key: string }, number>({ maxPending: 3 });
    for (const key of ['a', 'b', 'c']) assembler.add(part(key, 0, 3, [1]));
    assembler.add(part('a', 1, 3, [2])); // a is now the most recent
    assembler.add(part('d', 0, 3, [1]));
    assert.equal(assembler.pending, 3);
    assert.equal(assembler.evicted, 1);
    assert.equal(assembler.add(part('b', 1, 3, [2])).status, 'orphan', 'b was evicted');
    assert.equal(assembler.add(part('a', 2, 3, [3])).status, 'complete');
  });

  it('is bounded in items and bytes held together', () => {
    const byItems = new ChunkAssembler<{ key: string }, number>({ maxItems: 5 });
    byItems.add(part('a', 0, 2, [1, 2, 3]));
    byItems.add(part('b', 0, 2, [1, 2, 3]));
    assert.equal(byItems.pending, 1);
    assert.ok(byItems.items <= 5);
    const byBytes = new ChunkAssembler<{ key: string }, number>({ maxBytes: 1000 });
    for (let i = 0; i < 10; i++) byBytes.add(part(`k${i}`, 0, 2, [i], 'v', 300));
    assert.ok(byBytes.bytes <= 1000);
    assert.equal(byBytes.pending, 3);
    assert.equal(byBytes.add(part('big', 0, 2, [1], 'v', 2000)).status, 'too-large', 'never fits');
  });

  it('is bounded in age', () => {
    let now = 0;
    const assembler = new ChunkAssembler<{ key: string }, number>({ maxAgeMs: 1000 }, () => now);
    assembler.add(part('a', 0, 2, [1]));
    now = 500;
    assembler.add(part('b', 0, 2, [1]));
    now = 1200;
    assembler.expire();
    assert.equal(assembler.pending, 1);
    assert.equal(assembler.add(part('a', 1, 2, [2])).status, 'orphan');
    assert.equal(assembler.add(part('b', 1, 2, [2])).status, 'complete');
  });

  it('stays bounded under a flood of dangling lists from many keys', () => {
    const assembler = new ChunkAssembler<{ key: string }, number>({ maxPending: 100, maxItems: 10_000 });
    const items = Array.from({ length: 500 }, (_, i) => i);
    for (let i = 0; i < 50_000; i++) assembler.add(part(`id-${i}`, 0, 1000, items));
    assert.ok(assembler.pending <= 100);
    assert.ok(assembler.items <= 10_000);
    assembler.delete('id-49999');
    assembler.clear();
    assert.equal(assembler.items, 0);
  });
});
