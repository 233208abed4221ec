import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { files, peer, superpeer } from './superpeer-fake.js';

/** Small slices: an apply of a few thousand files spans many turns of the event loop. */
const slices = { maxItemsPerSlice: 50 };

interface SearchBody {
  indexedFiles: number;
  indexedPeers: number;
  results: unknown[];
}

type Fake = Awaited<ReturnType<typeof superpeer>>['transport'];

async function search(transport: Fake, query: string, limit: number): Promise<SearchBody> {
  return (await transport.rpc({ v: 1, type: 'rpc.search', query, limit })) as unknown as SearchBody;
}

describe('superpeer: changes applied in slices, interleaved with other work', () => {
  it('a search during a sliced apply sees the state before it or after it, never half', async () => {
    const { sp, transport } = await superpeer({ slices });
    const alice = peer('alice');
    let applied = false;
    const delivered = (async () => {
      for (const [body, signature] of alice.announces(files(3000, 'song')))
        await transport.deliver(body, signature);
      applied = true;
    })();
    const seen = new Set<number>();
    let duringApply = 0;
    for (let i = 0; i < 10_000 && !applied; i++) {
      if (sp.gate.pendingUpdates > 0) duringApply++;
      seen.add((await search(transport, 'song', 10)).indexedFiles);
      await new Promise((resolve) => setImmediate(resolve));
    }
    await delivered;
    assert.ok(duringApply > 0, 'some searches were asked while the apply was under way');
    for (const count of seen) assert.ok(count === 0 || count === 3000, `a search saw ${count} files`);
    const after = await search(transport, 'song', 10);
    assert.equal(after.indexedFiles, 3000);
    await sp.close();
  });

  it('a delta delivered while the full state is still being applied waits for it and applies after', async () => {
    const { sp, transport } = await superpeer({ slices });
    const bob = peer('bob');
    const [announce] = bob.announces(files(1000, 'doc'));
    const [delta, deltaSignature] = bob.signed({
      type: 'peer.delta',
      seq: 2,
      upserted: [{ name: 'new.txt', size: 1, sha256: 'c'.repeat(64), mtimeMs: 0 }],
      removed: ['doc-0.txt'],
    });
    // Not awaited one after the other: the delta reaches the superpeer while the announce is in slices.
    const both = Promise.all([transport.deliver(...announce!), transport.deliver(delta, deltaSignature)]);
    await both;
    const indexed = sp.index.getPeer(bob.peerId);
    assert.equal(indexed?.seq, 2, 'the delta was applied after the state');
    assert.equal(indexed?.fileCount, 1000);
    assert.deepEqual(
      sp.index.peerFiles(bob.peerId, 0, 1).map((f) => f.name),
      ['doc-1.txt'],
    );
    const deltas = transport.published.filter((m) => m.type === 'network.peer-delta');
    assert.equal(deltas.length, 1);
    await sp.close();
  });

  it('a timed-out removal queued behind a re-announce of the same peer keeps it', async () => {
    const { sp, transport } = await superpeer({ slices, peerTimeoutMs: 1000 });
    const carol = peer('carol');
    const dave = peer('dave');
    for (const p of [carol, dave]) {
      for (const [body, signature] of p.announces(files(500, p.peerId.slice(0, 6))))
        await transport.deliver(body, signature);
    }
    // Both silent past the timeout; carol's re-announce (a resync answer: a state newer than the one held,
    // since a replay of that one is no sign of life) is being applied when the sweep comes.
    for (const p of [carol, dave]) sp.registry.get(p.peerId)!.lastSeenMs = Date.now() - 5000;
    const reannounce = (async () => {
      for (const [body, signature] of carol.announces(files(2000, 'again'), 2))
        await transport.deliver(body, signature);
    })();
    await new Promise((resolve) => setImmediate(resolve));
    await new Promise((resolve) => setImmediate(resolve));
    assert.ok(sp.gate.pendingUpdates > 0, 'the re-announce is under way');
    await Promise.all([sp.sweep(), reannounce]);
    assert.equal(sp.index.getPeer(carol.peerId)?.fileCount, 2000, 'carol was heard while her removal waited');
    assert.ok(sp.registry.get(carol.peerId));
    assert.equal(sp.index.getPeer(dave.peerId), undefined, 'dave timed out');
    assert.equal(sp.registry.get(dave.peerId), undefined, 'and left the registry with the index');
    const left = transport.published.filter((m) => m.type === 'network.peer-left');
    assert.deepEqual(
      left.map((m) => (m as { peerId: string }).peerId),
      [dave.peerId],
    );
    await sp.close();
  });

  it('a leave delivered during a sliced apply of another peer removes that peer whole, in order', async () => {
    const { sp, transport } = await superpeer({ slices });
    const erin = peer('erin');
    const frank = peer('frank');
    for (const [body, signature] of frank.announces(files(800, 'frank')))
      await transport.deliver(body, signature);
    const [leave, leaveSignature] = frank.signed({ type: 'peer.leave' });
    const seen = new Set<string>();
    const work = Promise.all([
      (async () => {
        for (const [body, signature] of erin.announces(files(2000, 'erin')))
          await transport.deliver(body, signature);
      })(),
      transport.deliver(leave, leaveSignature),
      (async () => {
        for (let i = 0; i < 200; i++) {
          const reply = await search(transport, 'zzz', 1);
          seen.add(`${reply.indexedPeers}/${reply.indexedFiles}`);
          await new Promise((resolve) => setImmediate(resolve));
        }
      })(),
    ]);
    await work;
    // Only whole states: frank alone, erin and frank, or erin alone; never a part of either.
    for (const state of seen)
      assert.ok(['1/800', '2/2800', '1/2000'].includes(state), `a search saw ${state}`);
    assert.equal(sp.index.peerCount, 1);
    assert.equal(sp.index.fileCount, 2000);
    assert.equal(sp.registry.get(frank.peerId), undefined);
    await sp.close();
  });
});
