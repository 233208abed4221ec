import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { isP2PError } from '../../libs/errors/index.js';
import { FairQueue } from '../../services/superpeer/fair-queue.js';

describe('FairQueue: fairness between RPC clients', () => {
  it('serves one request of each client in turn, whatever order they came in', async () => {
    const queue = new FairQueue({ maxPerClient: 100 });
    const served: string[] = [];
    const all: Promise<void>[] = [];
    for (let i = 0; i < 5; i++) all.push(queue.run('flood', () => void served.push(`flood-${i}`)));
    all.push(queue.run('alice', () => void served.push('alice-0')));
    all.push(queue.run('bob', () => void served.push('bob-0')));
    all.push(queue.run('alice', () => void served.push('alice-1')));
    await Promise.all(all);
    // The first starts at once (nothing under way); the others waited and are taken one client at a time.
    assert.deepEqual(served, [
      'flood-0',
      'flood-1',
      'alice-0',
      'bob-0',
      'flood-2',
      'alice-1',
      'flood-3',
      'flood-4',
    ]);
  });

  it('refuses a client over its cap with LIMIT_EXCEEDED, and only that client', async () => {
    const queue = new FairQueue({ maxPerClient: 3 });
    const flood = Array.from({ length: 10 }, (_, i) => queue.run('flood', () => i));
    const alice = queue.run('alice', () => 'alice');
    const outcomes = await Promise.allSettled(flood);
    // The first ran at once, three waited, the rest were refused.
    assert.equal(outcomes.filter((o) => o.status === 'fulfilled').length, 4);
    for (const outcome of outcomes.filter((o) => o.status === 'rejected')) {
      assert.ok(isP2PError((outcome as PromiseRejectedResult).reason, 'LIMIT_EXCEEDED'));
    }
    assert.equal(await alice, 'alice');
    assert.equal(queue.size, 0);
  });

  it('with the whole queue full, the client with most waiting makes room for a newcomer', async () => {
    const queue = new FairQueue({ maxPerClient: 50, maxQueued: 10 });
    const flood = Array.from({ length: 10 }, (_, i) => queue.run('flood', () => i));
    const alice = queue.run('alice', () => 'alice');
    const outcomes = await Promise.allSettled(flood);
    assert.equal(await alice, 'alice');
    assert.equal(outcomes.filter((o) => o.status === 'rejected').length, 1);
    assert.equal((outcomes[9] as PromiseRejectedResult).status, 'rejected', 'the newest of the flood went');
    // A single client with the queue full to itself is refused: nobody has more waiting than it would.
    const again = new FairQueue({ maxPerClient: 50, maxQueued: 2 });
    const first = [again.run('a', () => 1), again.run('b', () => 2)];
    await assert.rejects(
      again.run('c', () => 3),
      (err) => isP2PError(err, 'LIMIT_EXCEEDED'),
    );
    await Promise.all(first);
  });

  it('a failing request is answered with its error and does not stop the others', async () => {
    const queue = new FairQueue();
    const failing = queue.run('a', () => {
      throw new Error('bad query');
    });
    const fine = queue.run('b', () => 'ok');
    await assert.rejects(failing, /bad query/);
    assert.equal(await fine, 'ok');
  });
});
