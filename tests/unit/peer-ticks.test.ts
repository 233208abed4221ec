import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { NetworkTicks } from '../../services/peer/ticks.js';

describe('NetworkTicks', () => {
  it('says nothing about silence before the first tick, nor while ticks keep coming', () => {
    const ticks = new NetworkTicks();
    assert.equal(ticks.checkSilence(1_000_000), undefined, 'no tick yet: nothing to miss');
    assert.equal(ticks.onTick('sp-a', 1, 1000, 0), undefined);
    assert.equal(ticks.onTick('sp-a', 2, 1000, 1000), undefined);
    assert.equal(ticks.checkSilence(3999), undefined, 'under the 3 s floor');
  });

  it('reports a silence once, after two intervals or 3 s, and the stream back on the next tick', () => {
    const ticks = new NetworkTicks();
    ticks.onTick('sp-a', 1, 5000, 0);
    assert.equal(ticks.checkSilence(9999), undefined, 'two intervals of 5 s not over yet');
    assert.equal(ticks.checkSilence(10_000), 10_000);
    assert.equal(ticks.checkSilence(20_000), undefined, 'reported once per silence');
    assert.deepEqual(ticks.onTick('sp-a', 2, 5000, 21_000), {
      reason: 'network stream back',
      missedTicks: 0,
    });
    assert.equal(ticks.onTick('sp-a', 3, 5000, 26_000), undefined, 'back to normal');
    assert.equal(ticks.checkSilence(36_000), 10_000, 'a new silence is reported again');
  });

  it('reports skipped tick numbers per superpeer, counting what was missed', () => {
    const ticks = new NetworkTicks();
    ticks.onTick('sp-a', 1, 1000, 0);
    ticks.onTick('sp-b', 40, 1000, 10);
    assert.equal(ticks.onTick('sp-b', 41, 1000, 1010), undefined, 'each superpeer counts on its own');
    assert.deepEqual(ticks.onTick('sp-a', 5, 1000, 1020), {
      reason: 'network.tick numbers skipped',
      missedTicks: 3,
    });
    assert.equal(ticks.onTick('sp-a', 5, 1000, 1030), undefined, 'a repeated number is no gap');
    assert.equal(ticks.onTick('sp-a', 2, 1000, 1040), undefined, 'a restarted superpeer counts from 1 again');
  });

  it('remembers a bounded number of superpeers', () => {
    const ticks = new NetworkTicks();
    ticks.onTick('sp-first', 1, 1000, 0);
    for (let i = 0; i < 64; i++) ticks.onTick(`sp-${i}`, 1, 1000, 0);
    // The table was cleared to make room: the first superpeer's number is forgotten, so no gap is seen.
    assert.equal(ticks.onTick('sp-first', 9, 1000, 0), undefined);
  });
});
