import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import { test } from 'node:test';
import { createLogger } from '../../libs/logging/index.js';
import type { Broker } from '../../libs/messaging/index.js';
import { type FileEntry, topologyNames, type WatchMatch } from '../../libs/protocol/index.js';
import { NetworkIndex } from '../../libs/search/index.js';
import { WatchHub } from '../../services/superpeer/watch-hub.js';

/** Just what the hub uses of a Broker: `on` and `publish`, recording what it publishes. */
class FakeBroker extends EventEmitter {
  readonly sent: Array<{ routingKey: string; body: { type: string } }> = [];
  async publish(_exchange: string, routingKey: string, body: Buffer): Promise<void> {
    this.sent.push({ routingKey, body: JSON.parse(body.toString()) });
  }
}

const QUEUE = 'ns.watch.aaaaaaaaaaaa';
const sha = (c: string) => c.repeat(64);
const file = (name: string, hash = sha('a')): FileEntry => ({ name, size: 1, sha256: hash, mtimeMs: 0 });

function setup() {
  const broker = new FakeBroker();
  const index = new NetworkIndex();
  let rebuilding = false;
  const hub = new WatchHub({
    namespace: 'ns',
    names: topologyNames('ns'),
    superpeerId: 'sp1',
    instanceId: 'instance-0001',
    broker: broker as unknown as Broker,
    index,
    logger: createLogger({ service: 'test', level: 'error', format: 'json' }),
    rebuilding: () => rebuilding,
  });
  hub.registry.register(
    {
      v: 1,
      type: 'watch.register',
      watchId: 'watch-0001',
      query: 'lecture',
      queue: QUEUE,
      leaseMs: 30_000,
      includeRemoved: true,
    },
    Date.now(),
  );
  const matches = () =>
    broker.sent
      .filter((m) => m.body.type === 'watch.match')
      .map((m) => {
        const match = m.body as unknown as WatchMatch;
        return `${match.event} ${match.file.name} ${match.file.sha256[0]}`;
      });
  const take = () => {
    const out = matches();
    broker.sent.length = 0;
    return out;
  };
  return { hub, index, take, setRebuilding: (value: boolean) => (rebuilding = value) };
}

const state = (seq: number, files: FileEntry[], instanceId = 'peer-inst-1') => ({
  peerId: 'p1',
  instanceId,
  url: 'http://127.0.0.1:1',
  seq,
  files,
});

test('full states: new and changed content is added, gone or replaced content removed; a restart with the same files is no news', () => {
  const { hub, index, take, setRebuilding } = setup();
  hub.fullState('p1', () => index.applyFull(state(1, [file('lecture 1.pdf'), file('other.txt')])));
  assert.deepEqual(take(), ['added lecture 1.pdf a']);
  hub.fullState('p1', () =>
    index.applyFull(state(5, [file('lecture 1.pdf', sha('b')), file('lecture 2.pdf')])),
  );
  assert.deepEqual(take().sort(), [
    'added lecture 1.pdf b',
    'added lecture 2.pdf a',
    'removed lecture 1.pdf a',
  ]);
  hub.fullState('p1', () =>
    index.applyFull(state(1, [file('lecture 1.pdf', sha('b')), file('lecture 2.pdf')], 'peer-inst-2')),
  );
  assert.deepEqual(take(), [], 'same content under a new instance');
  assert.equal(
    hub.fullState('p1', () => index.applyFull(state(1, [], 'peer-inst-2'))),
    'unchanged',
  );
  assert.deepEqual(take().sort(), ['removed lecture 1.pdf b', 'removed lecture 2.pdf a']);
  setRebuilding(true);
  hub.fullState('p2', () => index.applyFull({ ...state(1, [file('lecture 3.pdf')]), peerId: 'p2' }));
  assert.deepEqual(take(), [], 'nothing while the superpeer rebuilds its index');
});

test('deltas: upserts with new content, removals, and nothing for a duplicate or a gap', () => {
  const { hub, index, take } = setup();
  index.applyFull(state(1, [file('lecture 1.pdf'), file('notes.txt')]));
  const delta = (seq: number, upserted: FileEntry[], removed: string[]) => ({
    v: 1 as const,
    type: 'peer.delta' as const,
    peerId: 'p1',
    instanceId: 'peer-inst-1',
    seq,
    upserted,
    removed,
  });
  const d2 = delta(2, [file('lecture 2.pdf'), file('lecture 1.pdf', sha('c'))], []);
  assert.equal(
    hub.delta(d2, () => index.applyDelta(d2)),
    'applied',
  );
  assert.deepEqual(take().sort(), [
    'added lecture 1.pdf c',
    'added lecture 2.pdf a',
    'removed lecture 1.pdf a',
  ]);
  assert.equal(
    hub.delta(d2, () => index.applyDelta(d2)),
    'duplicate',
  );
  assert.deepEqual(take(), []);
  const d9 = delta(9, [file('lecture 9.pdf')], []);
  assert.equal(
    hub.delta(d9, () => index.applyDelta(d9)),
    'gap',
  );
  assert.deepEqual(take(), []);
  const d3 = delta(3, [file('lecture 2.pdf')], ['lecture 1.pdf', 'notes.txt']);
  hub.delta(d3, () => index.applyDelta(d3));
  assert.deepEqual(take(), ['removed lecture 1.pdf c'], 'same content upserted again is no news');
});

test('a peer that leaves removes its matching files', () => {
  const { hub, index, take } = setup();
  index.applyFull(state(4, [file('lecture 1.pdf'), file('notes.txt')]));
  assert.equal(
    hub.peerRemoved('p1', () => index.removePeer('p1', 'peer-inst-1')),
    true,
  );
  assert.deepEqual(take(), ['removed lecture 1.pdf a']);
  assert.equal(
    hub.peerRemoved('p1', () => index.removePeer('p1')),
    false,
  );
  assert.deepEqual(take(), []);
});

test('a change that matches many watches publishes its notices a batch per turn, the first at once', async () => {
  const { hub, index, take } = setup();
  // 3 queues of 16 watches on the word of setup(): with its own, 49 watches.
  for (let q = 0; q < 3; q++)
    for (let w = 0; w < 16; w++)
      hub.registry.register(
        {
          v: 1,
          type: 'watch.register',
          watchId: `watch-${q}-${String(w).padStart(4, '0')}`,
          query: 'lecture',
          queue: `ns.watch.queue-number-${q}`,
          leaseMs: 30_000,
          includeRemoved: false,
        },
        Date.now(),
      );
  const files = Array.from({ length: 20 }, (_, i) => file(`lecture ${i}.pdf`));
  hub.fullState('p1', () => index.applyFull(state(1, files)));
  const total = 49 * 20;
  assert.equal(take().length, 256, 'one batch published in the change’s own task');
  let published = 256;
  let turns = 0;
  while (published < total && turns < 10) {
    await new Promise((resolve) => setImmediate(resolve));
    turns++;
    const batch = take().length;
    assert.ok(batch <= 256, `at most a batch per turn (got ${batch})`);
    published += batch;
  }
  assert.equal(published, total, `every notice published, in ${turns} more turns`);
});
