import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { ConsumeMessage } from 'amqplib';
import { isP2PError } from '../../libs/errors/index.js';
import { encode, HEADERS, type PeerEvent } from '../../libs/protocol/index.js';
import { ResyncBatcher } from '../../services/superpeer/resync-batcher.js';
import { type FakeTransport, files, peer, superpeer } from './superpeer-fake.js';

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
  it('asks expected ids first, in a lane of their own that made-up ids cannot fill', () => {
    const { resync, sent } = batcher({ maxTracked: 10_000, maxIdsPerSecond: 250 });
    for (let i = 0; i < 10_000; i++) assert.equal(resync.request(`x${i}`), true);
    assert.equal(resync.request('x-late'), false, 'the unknown lane is full');
    assert.equal(resync.request('back', 'expected'), true, 'a full unknown lane holds back no expected id');
    resync.flush();
    assert.equal(sent[0]?.length, 25);
    assert.equal(sent[0]?.[0], 'back', 'asked in the very next batch');
    assert.equal(resync.pending, 10_000 - 24);
    resync.close();
  });

  it('keeps a fifth of each batch for unknown ids while expected ones wait, and moves an id that earns priority', () => {
    const { resync, sent } = batcher({ maxIdsPerSecond: 250 });
    for (let i = 0; i < 100; i++) resync.request(`e${i}`, 'expected');
    for (let i = 0; i < 100; i++) resync.request(`u${i}`);
    assert.equal(resync.request('u99', 'expected'), true, 'moved to the expected lane');
    assert.equal(resync.request('u99'), false, 'already waiting');
    assert.equal(resync.request('e0'), false, 'already waiting');
    resync.flush();
    const [first] = sent;
    assert.deepEqual(
      first?.slice(0, 20),
      Array.from({ length: 20 }, (_, i) => `e${i}`),
    );
    assert.deepEqual(first?.slice(20), ['u0', 'u1', 'u2', 'u3', 'u4']);
    for (let i = 0; i < 20; i++) resync.flush();
    const all = sent.flat();
    assert.equal(all.length, 200);
    assert.equal(new Set(all).size, 200);
    assert.ok(all.indexOf('u99') < all.indexOf('u50'), 'the moved id went ahead of unknown ones');
    assert.ok(sent.every((batch) => batch.length <= 25));
    resync.close();
  });

  it('bounds the expected lane too, and what one request names', () => {
    const { resync, sent } = batcher({ maxTracked: 100, maxIdsPerSecond: 100_000 });
    for (let i = 0; i < 1000; i++) resync.request(`e${i}`, 'expected');
    for (let i = 0; i < 1000; i++) resync.request(`u${i}`);
    assert.equal(resync.pending, 200);
    resync.flush();
    assert.equal(sent[0]?.length, 100);
    assert.equal(sent[0]?.filter((id) => id.startsWith('u')).length, 20, 'the share kept for unknown ids');
    resync.close();
  });
});

describe('superpeer resync under a flood of made-up heartbeats', () => {
  /** A heartbeat naming an id nobody registered, with a signature no key can check. */
  const madeUp = (i: number): [Buffer, string] => [
    encode({
      v: 1,
      type: 'peer.heartbeat',
      peerId: i.toString(16).padStart(40, '0'),
      instanceId: 'inst-made-up',
      seq: 1,
      fileCount: 0,
    } as PeerEvent),
    'AAAA',
  ];
  /** The peers named by the resync requests published from index `from` on. */
  const askedSince = (transport: FakeTransport, from: number) =>
    transport.published
      .slice(from)
      .flatMap((m) => (m.type === 'network.resync-request' && m.peerIds ? m.peerIds : []));

  it('asks a peer it dropped (timed out) in the next batch, however many unknown ids wait', async (t) => {
    const { sp, transport } = await superpeer({ peerTimeoutMs: 1000 });
    const dave = peer('dave');
    for (const [body, signature] of dave.announces(files(3))) await transport.deliver(body, signature);
    sp.registry.get(dave.peerId)!.lastSeenMs = Date.now() - 6000; // paused past the timeout
    await sp.sweep();
    assert.equal(sp.index.hasPeer(dave.peerId), false, 'dave timed out');
    // From here the batcher's timer turns only when the test says.
    t.mock.timers.enable({ apis: ['setTimeout'] });
    for (let i = 0; i < 10_500; i++) await transport.deliver(...madeUp(i));
    const from = transport.published.length;
    // Dave resumes: his next heartbeat, signed by his key, must not wait behind the made-up ids.
    await transport.deliver(...dave.signed({ type: 'peer.heartbeat', seq: 1, fileCount: 3, beat: 9 }));
    t.mock.timers.tick(100);
    const asked = askedSince(transport, from);
    assert.ok(asked.length > 0 && asked.length <= 25, `one batch at the rate limit (${asked.length})`);
    assert.ok(asked.includes(dave.peerId), 'the dropped peer was not asked in the next batch');
    await sp.close();
  });

  it('gives a heartbeat naming a dropped peer but not signed by its key no priority', async (t) => {
    const { sp, transport } = await superpeer();
    const dave = peer('dave');
    for (const [body, signature] of dave.announces(files(3))) await transport.deliver(body, signature);
    await transport.deliver(...dave.signed({ type: 'peer.leave' }));
    t.mock.timers.enable({ apis: ['setTimeout'] });
    for (let i = 0; i < 100; i++) await transport.deliver(...madeUp(i));
    const from = transport.published.length;
    const forged = peer('mallory', dave.peerId).signed({ type: 'peer.heartbeat', seq: 1, fileCount: 3 });
    await assert.rejects(transport.deliver(...forged), (err) => isP2PError(err, 'MESSAGE_INVALID'));
    for (let i = 0; i < 4; i++) t.mock.timers.tick(100);
    assert.equal(askedSince(transport, from).includes(dave.peerId), false, 'a forged heartbeat was obeyed');
    await sp.close();
  });

  it('puts first an id whose key a decoding thread learned from an announce, but not on a key of another id', async (t) => {
    const { sp, transport } = await superpeer();
    t.mock.timers.enable({ apis: ['setTimeout'] });
    for (let i = 0; i < 30; i++) await transport.deliver(...madeUp(i));
    const from = transport.published.length;
    const erin = peer('erin');
    const other = peer('other');
    for (const p of [other, erin]) {
      const [content, signature] = p.signed({ type: 'peer.heartbeat', seq: 1, fileCount: 0 });
      const message = {
        content,
        properties: { headers: { [HEADERS.signature]: signature } },
        fields: {},
      } as unknown as ConsumeMessage;
      // What a decoding thread hands over: the key it verified the signature with (erin's, for both).
      const event = JSON.parse(content.toString()) as PeerEvent;
      await transport.handlers!.onEvent(event, message, { verifiedKey: erin.publicKeyDer });
    }
    t.mock.timers.tick(100);
    const asked = askedSince(transport, from);
    assert.equal(asked.length, 25);
    assert.ok(asked.includes(erin.peerId), 'a vouched id waited behind made-up ones');
    assert.equal(asked.includes(other.peerId), false, "another id's key vouched for it");
    await sp.close();
  });
});
