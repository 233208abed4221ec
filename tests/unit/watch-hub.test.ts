import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import { test } from 'node:test';
import { createLogger } from '../../libs/logging/index.js';
import type { Broker } from '../../libs/messaging/index.js';
import { type FileEntry, topologyNames, type WatchMatch } from '../../libs/protocol/index.js';
import { NetworkIndex } from '../../libs/search/index.js';
import { WatchHub, type WatchHubOptions } from '../../services/superpeer/watch-hub.js';
import { type LoopTurns, longestLoopTurn } from '../helpers/timing.js';

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

function setup(extra: Partial<WatchHubOptions> = {}) {
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
    ...extra,
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
  return { hub, index, take, broker, setRebuilding: (value: boolean) => (rebuilding = value) };
}

const state = (seq: number, files: FileEntry[], instanceId = 'peer-inst-1') => ({
  peerId: 'p1',
  instanceId,
  url: 'http://127.0.0.1:1',
  seq,
  files,
});

test('full states: new and changed content is added, gone or replaced content removed; a restart with the same files is no news', async () => {
  const { hub, index, take, setRebuilding } = setup();
  await hub.fullState('p1', () => index.applyFull(state(1, [file('lecture 1.pdf'), file('other.txt')])));
  assert.deepEqual(take(), ['added lecture 1.pdf a']);
  await hub.fullState('p1', () =>
    index.applyFull(state(5, [file('lecture 1.pdf', sha('b')), file('lecture 2.pdf')])),
  );
  assert.deepEqual(take().sort(), [
    'added lecture 1.pdf b',
    'added lecture 2.pdf a',
    'removed lecture 1.pdf a',
  ]);
  await hub.fullState('p1', () =>
    index.applyFull(state(1, [file('lecture 1.pdf', sha('b')), file('lecture 2.pdf')], 'peer-inst-2')),
  );
  assert.deepEqual(take(), [], 'same content under a new instance');
  assert.equal(await hub.fullState('p1', () => index.applyFull(state(1, [], 'peer-inst-2'))), 'unchanged');
  assert.deepEqual(take().sort(), ['removed lecture 1.pdf b', 'removed lecture 2.pdf a']);
  setRebuilding(true);
  await hub.fullState('p2', () => index.applyFull({ ...state(1, [file('lecture 3.pdf')]), peerId: 'p2' }));
  assert.deepEqual(take(), [], 'nothing while the superpeer rebuilds its index');
});

test('deltas: upserts with new content, removals, and nothing for a duplicate or a gap', async () => {
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
  assert.equal(await hub.delta(d2, () => index.applyDelta(d2)), 'applied');
  assert.deepEqual(take().sort(), [
    'added lecture 1.pdf c',
    'added lecture 2.pdf a',
    'removed lecture 1.pdf a',
  ]);
  assert.equal(await hub.delta(d2, () => index.applyDelta(d2)), 'duplicate');
  assert.deepEqual(take(), []);
  const d9 = delta(9, [file('lecture 9.pdf')], []);
  assert.equal(await hub.delta(d9, () => index.applyDelta(d9)), 'gap');
  assert.deepEqual(take(), []);
  const d3 = delta(3, [file('lecture 2.pdf')], ['lecture 1.pdf', 'notes.txt']);
  await hub.delta(d3, () => index.applyDelta(d3));
  assert.deepEqual(take(), ['removed lecture 1.pdf c'], 'same content upserted again is no news');
});

test('a peer that leaves removes its matching files', async () => {
  const { hub, index, take } = setup();
  index.applyFull(state(4, [file('lecture 1.pdf'), file('notes.txt')]));
  assert.equal(await hub.peerRemoved('p1', () => index.removePeer('p1', 'peer-inst-1')), true);
  assert.deepEqual(take(), ['removed lecture 1.pdf a']);
  assert.equal(await hub.peerRemoved('p1', () => index.removePeer('p1')), false);
  assert.deepEqual(take(), []);
});

test('notices leave a batch per turn, the first at once: 391 watches told of their overflow by one tick', async () => {
  // With setup()'s own, 401 watches; the budget of all of them together is 10 matches: one change of a
  // matching file drops 391.
  const { hub, index, take, broker } = setup({ totalBurst: 10, totalPerSecond: 0.001 });
  for (let q = 0; q < 25; q++)
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
  await hub.fullState('p1', () => index.applyFull(state(1, [file('lecture 1.pdf')])));
  assert.equal(take().length, 10, 'the budget of all watches together');
  const overflows = () => broker.sent.splice(0).filter((m) => m.body.type === 'watch.overflow').length;
  hub.tick();
  assert.equal(overflows(), 256, 'one batch in the tick’s own task');
  let published = 256;
  let turns = 0;
  while (published < 391 && turns < 10) {
    await new Promise((resolve) => setImmediate(resolve));
    turns++;
    published += overflows();
  }
  assert.equal(published, 391, `every watch that dropped a match told so, in ${turns} more turn(s)`);
});

test("a large peer's full state, delta and removal are compared and matched in slices, never in one task", async (t) => {
  const { hub, index, take } = setup();
  // Half of the names match the watch: every one of them is news when the peer comes, and when it goes.
  // Distinct contents: files of one content share a hash chain, whose removals are another matter.
  const files = Array.from({ length: 100_000 }, (_, i) =>
    file(
      `${i % 2 === 0 ? 'lecture' : 'talk'} ${String(i).padStart(6, '0')} of a long course.pdf`,
      `a${i.toString(16).padStart(63, '0')}`,
    ),
  );
  const longest = async (what: () => Promise<unknown>): Promise<LoopTurns> => {
    const turns = longestLoopTurn();
    await what();
    return turns.stop();
  };
  const join = await longest(() =>
    hub.fullState('p1', () => index.applyFullAsync({ ...state(1, files), distinctNames: true })),
  );
  const added = take();
  // The watch spends its burst (500), then a few a second; the rest is dropped.
  assert.ok(added.length >= 500 && added.length < files.length / 2, `${added.length} matches`);
  assert.ok(added.every((line) => line.startsWith('added lecture')));

  // The baseline: one listing of the peer's files, which the hub made before and after each change, in one task.
  const startedAt = performance.now();
  assert.equal(index.peerFiles('p1').length, files.length);
  const listMs = performance.now() - startedAt;

  const d2 = {
    v: 1 as const,
    type: 'peer.delta' as const,
    peerId: 'p1',
    instanceId: 'peer-inst-1',
    seq: 2,
    upserted: [file('lecture 000000 of a long course.pdf', sha('b'))],
    removed: [],
  };
  const delta = await longest(() => hub.delta(d2, () => index.applyDeltaAsync(d2)));
  const leave = await longest(() => hub.peerRemoved('p1', () => index.removePeerAsync('p1')));
  const show = (turns: LoopTurns) =>
    `${turns.longestWorkMs.toFixed(1)} (${turns.longestMs.toFixed(1)} by the clock)`;
  const figures = `listing ${listMs.toFixed(1)} ms; longest turns: state ${show(join)}, delta ${show(delta)}, leave ${show(leave)} ms`;
  t.diagnostic(figures);
  // No step lists the peer's files in one task, as each did before (the index's own slices, which the
  // steps wrap, take up to some tens of milliseconds). Counted as work: the test holds 100,000 entries of
  // its own, whose scavenges take tens of milliseconds whoever allocates, and the machine is shared.
  for (const turns of [join, delta, leave]) assert.ok(turns.longestWorkMs < listMs, figures);
  assert.equal(index.hasPeer('p1'), false);
});
