import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { ConsumeMessage } from 'amqplib';
import { isP2PError } from '../../libs/errors/index.js';
import { HEADERS, type NetworkPeerState, type PackedFiles } from '../../libs/protocol/index.js';
import { type FakeTransport, files, peer, superpeer } from './superpeer-fake.js';

/** The peers named by the first resync request for some peers (polled, with a deadline). */
async function resyncRequested(transport: FakeTransport): Promise<string[]> {
  for (const deadline = Date.now() + 5_000; Date.now() < deadline; ) {
    // One naming no peer asks them all (at start-up).
    const request = transport.published.find((m) => m.type === 'network.resync-request' && m.peerIds);
    if (request !== undefined) return (request as { peerIds: string[] }).peerIds;
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  assert.fail('no resync request within 5 s');
}

describe('superpeer without a broker', () => {
  it('indexes a chunked announce, rebroadcasts it and answers searches and peers', async () => {
    const { sp, transport } = await superpeer();
    const alice = peer('alice');
    for (const [body, signature] of alice.announces(files(4500))) await transport.deliver(body, signature);
    assert.equal(sp.index.fileCount, 4500);
    const states = transport.published.filter((message) => message.type === 'network.peer-state');
    assert.equal(states.length, 3);
    const search = await transport.rpc({ v: 1, type: 'rpc.search', query: 'file 42', limit: 5 });
    assert.equal(search.ok, true);
    const peers = await transport.rpc({ v: 1, type: 'rpc.peers' });
    assert.deepEqual(
      (peers.peers as Array<{ peerId: string }>).map((p) => p.peerId),
      [alice.peerId],
    );
    assert.equal(peers.next, undefined);
    await sp.close();
  });

  it('hands back the buffers of a state in chunks that never completes (superseded by a new state, or left)', async () => {
    const { sp, transport } = await superpeer();
    const dave = peer('dave');
    const first = dave.announces(files(700), 1, 250);
    const held: PackedFiles[] = [];
    for (const [body, signature] of first.slice(0, 2))
      held.push((await transport.deliverPacked(body, signature))!);
    assert.equal(transport.recycled.length, 0, 'pieces of a state still in chunks are held');
    // The peer starts its state over (a new seq): the two pieces held of the old one go back.
    const [body, signature] = dave.announces(files(700), 2, 250)[0]!;
    const restarted = (await transport.deliverPacked(body, signature))!;
    assert.deepEqual(
      transport.recycled,
      held.map((piece) => piece.buffer),
    );
    // It leaves before sending the rest: the new piece goes back too.
    const [leave, leaveSignature] = dave.signed({ type: 'peer.leave' });
    await transport.deliver(leave, leaveSignature);
    assert.deepEqual(transport.recycled.at(-1), restarted.buffer);
    assert.equal(sp.index.fileCount, 0);
    await sp.close();
  });

  it('takes a state in chunks read into columns as columns: indexed whole, rebroadcast in the same chunks, buffers handed back once whole', async () => {
    const { sp, transport } = await superpeer();
    const carol = peer('carol');
    const list = [...files(700), ...files(300, 'other'), { ...files(1)[0]!, size: 99 }];
    const chunks = carol.announces(list, 1, 250);
    assert.equal(chunks.length, 5);
    const packed: PackedFiles[] = [];
    for (const [k, [body, signature]] of chunks.entries()) {
      packed.push((await transport.deliverPacked(body, signature))!);
      // A piece of a state not yet whole stays with the assembler: its buffer is not handed back.
      if (k < chunks.length - 1) assert.equal(transport.recycled.length, 0, `after chunk ${k}`);
    }
    assert.deepEqual(
      transport.recycled,
      packed.map((piece) => piece.buffer),
      'every piece handed back, once whole',
    );
    // The repeated name: the last one counts, as in a state read as objects.
    assert.equal(sp.index.fileCount, 1000);
    const first = sp.index.peerFiles(carol.peerId).find((file) => file.name === 'file-0.txt');
    assert.equal(first?.size, 99);
    const states = transport.published.filter(
      (message): message is NetworkPeerState => message.type === 'network.peer-state',
    );
    assert.deepEqual(
      states.map((state) => [state.chunkIndex, state.chunkCount, state.files.length]),
      [0, 1, 2, 3, 4].map((k) => [k, 5, k < 4 ? 250 : 1]),
    );
    assert.deepEqual(
      states.flatMap((state) => state.files),
      list,
    );
    // A state in chunks whose names are all distinct: each file once.
    const dave = peer('dave');
    for (const [body, signature] of dave.announces(files(600, 'dave'), 1, 250))
      await transport.deliverPacked(body, signature);
    assert.equal(sp.index.peerFiles(dave.peerId).length, 600);
    assert.equal(sp.index.fileCount, 1600);
    await sp.close();
  });

  it("takes a state in chunks with its first chunk's address, whatever a later chunk says", async () => {
    const { sp, transport } = await superpeer();
    const bob = peer('bob');
    const [first] = bob.announces(files(2500));
    await transport.deliver(...first!);
    await transport.deliver(
      ...bob.signed({
        type: 'peer.announce',
        url: 'http://elsewhere.test',
        seq: 1,
        publicKey: bob.publicKeyDer,
        chunkIndex: 1,
        chunkCount: 2,
        files: files(500, 'late'),
      }),
    );
    assert.equal(sp.index.getPeer(bob.peerId)?.url, 'http://bob.test');
    assert.equal(sp.index.getPeer(bob.peerId)?.fileCount, 2500);
    await sp.close();
  });

  it('refuses an announce over the file limit, indexes nothing and does not ask that run again', async () => {
    const { sp, transport } = await superpeer({ maxFilesPerPeer: 3000 });
    const mallory = peer('mallory');
    const [first, second] = mallory.announces(files(5000));
    await transport.deliver(...first!);
    await assert.rejects(transport.deliver(...second!), (err) => isP2PError(err, 'LIMIT_EXCEEDED'));
    assert.equal(sp.index.fileCount, 0);
    assert.equal(sp.assembler.pending, 0);
    const [heartbeat, signature] = mallory.signed({ type: 'peer.heartbeat', seq: 1, fileCount: 5000 });
    await transport.deliver(heartbeat, signature);
    await new Promise((resolve) => setTimeout(resolve, 250));
    assert.equal(
      transport.published.filter((m) => m.type === 'network.resync-request' && m.peerIds).length,
      0,
    );
    await sp.close();
  });

  it('counts a heartbeat on arrival, before its turn comes', async () => {
    const { sp, transport } = await superpeer();
    const bob = peer('bob');
    for (const [body, signature] of bob.announces(files(10))) await transport.deliver(body, signature);
    sp.registry.get(bob.peerId)!.lastSeenMs = 0;
    const [heartbeat, signature] = bob.signed({ type: 'peer.heartbeat', seq: 1, fileCount: 10 });
    const message = {
      content: heartbeat,
      properties: { headers: { [HEADERS.signature]: signature } },
    } as unknown as ConsumeMessage;
    transport.handlers!.onDelivery(message);
    assert.ok(sp.registry.get(bob.peerId)!.lastSeenMs > 0);
    // A forged heartbeat (another key) does not keep a peer alive.
    sp.registry.get(bob.peerId)!.lastSeenMs = 0;
    const [forged, forgedSignature] = peer('mallory', bob.peerId).signed({
      type: 'peer.heartbeat',
      seq: 1,
      fileCount: 10,
    });
    transport.handlers!.onDelivery({
      content: forged,
      properties: { headers: { [HEADERS.signature]: forgedSignature } },
    } as unknown as ConsumeMessage);
    assert.equal(sp.registry.get(bob.peerId)!.lastSeenMs, 0);
    await sp.close();
  });

  it('counts each numbered heartbeat once: a copy replayed later, an older one or an unnumbered one keeps nobody alive', async () => {
    const { sp, transport } = await superpeer();
    const bob = peer('bob');
    for (const [body, signature] of bob.announces(files(10))) await transport.deliver(body, signature);
    const seen = () => sp.registry.get(bob.peerId)!.lastSeenMs;
    const heartbeat = (beat?: number) =>
      bob.signed({ type: 'peer.heartbeat', seq: 1, fileCount: 10, ...(beat === undefined ? {} : { beat }) });
    const third = heartbeat(3);
    sp.registry.get(bob.peerId)!.lastSeenMs = 0;
    await transport.deliver(...third); // on arrival, then in its turn
    assert.ok(seen() > 0, 'a new heartbeat counts');
    for (const [label, [body, signature]] of [
      ['the same heartbeat replayed', third],
      ['an older one', heartbeat(2)],
      ['an unnumbered one, after numbered ones', heartbeat()],
    ] as const) {
      sp.registry.get(bob.peerId)!.lastSeenMs = 0;
      await transport.deliver(body, signature);
      assert.equal(seen(), 0, label);
    }
    // A new state of the same run (a resync) does not make its old heartbeats count again.
    for (const [body, signature] of bob.announces(files(10), 2)) await transport.deliver(body, signature);
    sp.registry.get(bob.peerId)!.lastSeenMs = 0;
    await transport.deliver(...third);
    assert.equal(seen(), 0, 'replayed after a resync');
    await transport.deliver(...heartbeat(4));
    assert.ok(seen() > 0, 'the next one counts');
    // An old change replayed is a duplicate, not a sign of life.
    const [delta, deltaSignature] = bob.signed({
      type: 'peer.delta',
      seq: 3,
      upserted: files(1, 'new'),
      removed: [],
    });
    await transport.deliver(delta, deltaSignature);
    sp.registry.get(bob.peerId)!.lastSeenMs = 0;
    await transport.deliver(delta, deltaSignature);
    assert.equal(seen(), 0, 'a replayed delta');
    // Once it left, its announce replayed registers the run again, but its old heartbeats do not keep it.
    await transport.deliver(...bob.signed({ type: 'peer.leave' }));
    assert.equal(sp.registry.get(bob.peerId), undefined);
    for (const [body, signature] of bob.announces(files(10), 2)) await transport.deliver(body, signature);
    sp.registry.get(bob.peerId)!.lastSeenMs = 0;
    await transport.deliver(...heartbeat(4));
    assert.equal(seen(), 0, 'a heartbeat replayed after the run left');
    await sp.close();
  });

  it('a replayed announce of the state it holds is no sign of life: a crashed peer still times out', async () => {
    const { sp, transport } = await superpeer({ peerTimeoutMs: 1000 });
    const carol = peer('carol');
    const announce = carol.announces(files(10));
    for (const [body, signature] of announce) await transport.deliver(body, signature);
    // Carol crashes (no leave); someone who copied her announce off N.events replays it.
    sp.registry.get(carol.peerId)!.lastSeenMs = 0;
    for (const [body, signature] of announce) await transport.deliver(body, signature);
    assert.equal(sp.registry.get(carol.peerId)?.lastSeenMs, 0, 'the replay refreshed her liveness');
    await sp.sweep();
    assert.equal(sp.index.hasPeer(carol.peerId), false, 'she is still listed');
    await sp.close();
  });

  it('an announce of a run the peer has since restarted from, replayed, does not displace its live run', async () => {
    const { sp, transport } = await superpeer();
    const erin = peer('erin');
    // Her first run, then a restart: a new run, with a new address and other files.
    const oldRun = erin.announces(files(10, 'old'));
    for (const [body, signature] of oldRun) await transport.deliver(body, signature);
    const oldBeat = (beat: number) => erin.signed({ type: 'peer.heartbeat', seq: 1, fileCount: 10, beat });
    const lastOldBeat = oldBeat(3);
    await transport.deliver(...lastOldBeat);
    const newRun = { instanceId: 'inst-erin-2', url: 'http://erin-2.test' };
    const [announce, announceSignature] = erin.signed({
      type: 'peer.announce',
      ...newRun,
      seq: 1,
      publicKey: erin.publicKeyDer,
      chunkIndex: 0,
      chunkCount: 1,
      files: files(5, 'new'),
    });
    await transport.deliver(announce, announceSignature);
    assert.equal(sp.index.getPeer(erin.peerId)?.instanceId, newRun.instanceId);
    const published = transport.published.length;
    // Someone who copied the first run's announce off N.events replays it.
    for (const [body, signature] of oldRun) await transport.deliver(body, signature);
    const held = sp.index.getPeer(erin.peerId);
    assert.equal(held?.instanceId, newRun.instanceId, 'the old run took her place in the index');
    assert.equal(held?.url, newRun.url);
    assert.equal(held?.fileCount, 5);
    assert.equal(sp.registry.get(erin.peerId)?.instanceId, newRun.instanceId);
    assert.equal(transport.published.length, published, 'the old run was rebroadcast to the network');
    // Its old heartbeats replayed neither bring it back nor ask the live run to send its state again.
    await transport.deliver(...lastOldBeat);
    for (const [body, signature] of oldRun) await transport.deliver(body, signature);
    assert.equal(sp.index.getPeer(erin.peerId)?.instanceId, newRun.instanceId);
    // A stranger's heartbeat earns a resync: the batch it goes out in would name erin too, had she earned one.
    const stranger = peer('stranger');
    await transport.deliver(...stranger.signed({ type: 'peer.heartbeat', seq: 1, fileCount: 1 }));
    const asked = await resyncRequested(transport);
    assert.deepEqual(asked, [stranger.peerId], 'a replayed heartbeat of the old run earned a resync');
    // A heartbeat numbered past the last one counted: that run is alive after all, and may announce.
    await transport.deliver(...oldBeat(4));
    for (const [body, signature] of oldRun) await transport.deliver(body, signature);
    assert.equal(sp.index.getPeer(erin.peerId)?.instanceId, sp.registry.get(erin.peerId)?.instanceId);
    assert.equal(sp.index.getPeer(erin.peerId)?.url, 'http://erin.test');
    await sp.close();
  });

  it('sweeps silent peers in slices, but not while its own queue has a backlog', async () => {
    const { sp, transport } = await superpeer({ peerTimeoutMs: 1000 });
    const swarm = Array.from({ length: 500 }, (_, i) => peer(`p${i}`));
    for (const [i, p] of swarm.entries()) {
      for (const [body, signature] of p.announces(files(5, `p${i}`)))
        await transport.deliver(body, signature);
    }
    assert.equal(sp.index.peerCount, 500);
    for (const p of swarm) sp.registry.get(p.peerId)!.lastSeenMs = Date.now() - 1500;
    transport.backlog = 10;
    await sp.sweep();
    assert.equal(sp.index.peerCount, 500, 'the backlog may hold their heartbeats');
    transport.backlog = 0;
    for (const p of swarm) sp.registry.get(p.peerId)!.lastSeenMs = Date.now() - 6000;
    await sp.sweep();
    assert.equal(sp.index.peerCount, 0);
    const left = transport.published.filter((m) => m.type === 'network.peer-left');
    assert.equal(left.length, 500);
    await sp.close();
  });
});
