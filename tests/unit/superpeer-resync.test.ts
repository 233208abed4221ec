import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ResyncBatcher } from '../../services/superpeer/resync-batcher.js';

function batcher(options: { maxIdsPerSecond?: number; maxTracked?: number } = {}) {
  let now = 0;
  const sent: string[][] = [];
  const resync = new ResyncBatcher({
    publish: (ids) => sent.push(ids),
    batchMs: 100,
    minIntervalMs: 2000,
    ...options,
    now: () => now,
  });
  return { resync, sent, advance: (ms: number) => (now += ms) };
}

describe('resync batcher', () => {
  it('gathers requests into one message and asks one peer at most once per interval', () => {
    const { resync, sent, advance } = batcher();
    assert.equal(resync.request('a'), true);
    assert.equal(resync.request('b'), true);
    assert.equal(resync.request('a'), false, 'already waiting');
    resync.flush();
    assert.deepEqual(sent, [['a', 'b']]);
    advance(1000);
    assert.equal(resync.request('a'), false, 'asked 1 s ago');
    advance(1500);
    assert.equal(resync.request('a'), true);
    resync.forget('b');
    assert.equal(resync.request('b'), true, 'a peer that left is not held back');
    resync.close();
  });

  it('asks at a bounded rate after a mass timeout: no re-announce storm', () => {
    const { resync, sent } = batcher({ maxIdsPerSecond: 250 });
    for (let i = 0; i < 1000; i++) resync.request(`p${i}`);
    resync.flush();
    assert.equal(sent[0]?.length, 25, '250 per second = 25 per 100 ms batch');
    assert.equal(resync.pending, 975);
    for (let i = 0; i < 39; i++) resync.flush();
    assert.equal(sent.flat().length, 1000);
    assert.equal(new Set(sent.flat()).size, 1000);
    assert.ok(sent.every((batch) => batch.length <= 25));
    resync.close();
  });

  it('stays bounded whatever ids the network names', () => {
    const { resync, sent, advance } = batcher({ maxTracked: 100, maxIdsPerSecond: 100_000 });
    for (let i = 0; i < 10_000; i++) resync.request(`x${i}`);
    assert.equal(resync.pending, 100);
    for (let round = 0; round < 50; round++) {
      for (let i = 0; i < 200; i++) resync.request(`r${round}-${i}`);
      resync.flush();
      advance(10);
    }
    assert.ok(sent.every((batch) => batch.length <= 100));
    resync.close();
    assert.equal(resync.request('late'), false);
  });
});
