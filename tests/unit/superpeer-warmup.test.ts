import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { files, peer, superpeer } from './superpeer-fake.js';

/** Milliseconds from now until `sp.serving` holds, polled every 10 ms up to `limitMs`. */
async function msUntilServing(sp: { serving: boolean }, limitMs: number): Promise<number> {
  const started = performance.now();
  while (!sp.serving && performance.now() - started < limitMs) {
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  return performance.now() - started;
}

describe("a superpeer's warm-up", () => {
  it('waits the first-announce window while no announce came, not the short quiet window', async () => {
    const { sp } = await superpeer({ warmupQuietMs: 50, warmupFirstAnnounceMs: 600, warmupMaxMs: 5000 });
    const waited = await msUntilServing(sp, 5000);
    assert.equal(sp.serving, true);
    // The peers answer a resync request after a random delay: 50 ms of silence says nothing yet.
    assert.ok(waited >= 500, `served ${waited.toFixed(0)} ms after the start`);
    await sp.close();
  });

  it('once an announce came, serves after the quiet window, well before the first-announce window', async () => {
    const { sp, transport } = await superpeer({
      warmupQuietMs: 100,
      warmupFirstAnnounceMs: 4000,
      warmupMaxMs: 8000,
    });
    for (const [body, signature] of peer('alice').announces(files(3)))
      await transport.deliver(body, signature);
    const waited = await msUntilServing(sp, 8000);
    assert.equal(sp.serving, true);
    assert.ok(waited < 3000, `served ${waited.toFixed(0)} ms after the announce`);
    assert.equal(sp.index.peerCount, 1);
    await sp.close();
  });
});
