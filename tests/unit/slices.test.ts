import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { forEachSliced, runSliced, SerialQueue, turnSpent } from '../../libs/search/index.js';

function busy(ms: number): void {
  const until = performance.now() + ms;
  while (performance.now() < until) {
    // burns the time a step of real work would take
  }
}

/**
 * Counts what `work` completes in each turn of the event loop: a probe re-queued with setImmediate marks
 * the turns. Returns the most completions seen in one turn.
 */
async function mostPerTurn(work: (done: () => void) => Promise<unknown>): Promise<number> {
  let sinceProbe = 0;
  let most = 0;
  let running = true;
  const probe = () => {
    most = Math.max(most, sinceProbe);
    sinceProbe = 0;
    if (running) setImmediate(probe);
  };
  setImmediate(probe);
  await work(() => sinceProbe++);
  running = false;
  return Math.max(most, sinceProbe);
}

describe('sliced work', () => {
  it('runs a queue of operations shorter than a slice in turns of one budget, not all in one task', async () => {
    // 60 operations of 2 ms each, queued one after another; each fits in one 8 ms slice by itself.
    const most = await mostPerTurn(async (done) => {
      const queue = new SerialQueue();
      const all: Array<Promise<void>> = [];
      for (let op = 0; op < 60; op++) {
        all.push(
          queue.run(async () => {
            await forEachSliced([1, 2, 3, 4], () => busy(0.5), { maxSliceMs: 8 });
            done();
          }),
        );
      }
      await Promise.all(all);
    });
    // A turn holds at most the budget's worth (four or five of them; fewer when the machine is slow).
    assert.ok(most <= 6, `${most} operations completed in one turn of the event loop`);
  });

  it('still splits one long operation into slices of the budget', async () => {
    const slices: number[] = [];
    // 20 ms of steps; the time is checked every 64 steps.
    await runSliced(
      () => 200,
      () => busy(0.1),
      { maxSliceMs: 4, onSlice: (items) => slices.push(items) },
    );
    assert.equal(
      slices.reduce((a, b) => a + b, 0),
      200,
    );
    assert.ok(slices.length >= 3, `${slices.length} slices`);
    assert.ok(Math.max(...slices) <= 64, `a slice of ${Math.max(...slices)} steps`);
  });

  it('makes progress in the first slice of each turn, whatever the budget', async () => {
    let steps = 0;
    await runSliced(
      () => 5,
      () => {
        steps++;
        busy(1);
      },
      { maxSliceMs: 0 },
    );
    assert.equal(steps, 5);
  });

  it('turnSpent: false for the first check of a turn, true once the turn has used the budget', async () => {
    await new Promise<void>((resolve) => setImmediate(resolve));
    assert.equal(turnSpent(5), false);
    busy(6);
    assert.equal(turnSpent(5), true);
    await new Promise<void>((resolve) => setImmediate(resolve));
    assert.equal(turnSpent(5), false);
  });
});
