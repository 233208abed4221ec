import assert from 'node:assert/strict';
import { test } from 'node:test';
import { isP2PError } from '../../libs/errors/index.js';
import {
  collectPeerPages,
  MAX_FILES_PER_MESSAGE,
  NetworkMessageSchema,
  PeerApiErrorSchema,
  PeerEventSchema,
  PeerListAnswerSchema,
  type PeerSummary,
  type PeersReply,
  PROTOCOL_VERSION,
  peerEvent,
} from '../../libs/protocol/index.js';

const sha = 'c'.repeat(64);
const peerId = (n: number) => n.toString(16).padStart(40, '0');
const summary = (n: number, lastSeenAgoMs?: number) => ({
  peerId: peerId(n),
  url: `http://127.0.0.1:${1000 + n}`,
  instanceId: '12345678-aaaa',
  seq: 1,
  fileCount: n,
  totalBytes: 10 * n,
  ...(lastSeenAgoMs === undefined ? {} : { lastSeenAgoMs }),
});
const page = (peers: number[], next?: number): PeersReply => ({
  v: PROTOCOL_VERSION,
  ok: true,
  superpeerId: 'sp-1',
  type: 'rpc.peers',
  peers: peers.map((n) => summary(n, 5) as PeerSummary),
  ...(next === undefined ? {} : { next: { peerId: peerId(next) } }),
});

test('peer event builders stamp the version and type, and what they build passes the schema', () => {
  const delta = peerEvent.delta({
    peerId: peerId(1),
    instanceId: '12345678-aaaa',
    seq: 2,
    upserted: [{ name: 'a.txt', size: 1, sha256: sha, mtimeMs: 1 }],
    removed: ['b.txt'],
  });
  assert.equal(delta.v, PROTOCOL_VERSION);
  assert.equal(delta.type, 'peer.delta');
  assert.deepEqual(PeerEventSchema.parse(delta), delta);
  const leave = peerEvent.leave({ peerId: peerId(1), instanceId: '12345678-aaaa' });
  assert.deepEqual(PeerEventSchema.parse(leave), {
    v: PROTOCOL_VERSION,
    type: 'peer.leave',
    peerId: peerId(1),
    instanceId: '12345678-aaaa',
  });
  const beat = peerEvent.heartbeat({ peerId: peerId(1), instanceId: '12345678-aaaa', seq: 3, fileCount: 0 });
  assert.equal(PeerEventSchema.parse(beat).type, 'peer.heartbeat');
  // Another version is refused, by every message kind.
  assert.ok(!PeerEventSchema.safeParse({ ...leave, v: PROTOCOL_VERSION + 1 }).success);
});

test('network messages carry a peer’s change as the peer sent it, with the superpeer that accepted it', () => {
  const delta = peerEvent.delta({
    peerId: peerId(1),
    instanceId: '12345678-aaaa',
    seq: 2,
    upserted: [],
    removed: [],
  });
  const relayed = { ...delta, type: 'network.peer-delta', superpeerId: 'sp-1' };
  assert.deepEqual(NetworkMessageSchema.parse(relayed), relayed);
  assert.ok(!NetworkMessageSchema.safeParse({ ...relayed, superpeerId: undefined }).success);
  const left = {
    ...peerEvent.leave({ peerId: peerId(1), instanceId: '12345678-aaaa' }),
    superpeerId: 'sp-1',
  };
  assert.ok(
    NetworkMessageSchema.safeParse({ ...left, type: 'network.peer-left', reason: 'timeout' }).success,
  );
  assert.ok(!NetworkMessageSchema.safeParse({ ...left, type: 'network.peer-left', reason: 'bored' }).success);
  // The same file-list bound applies to both.
  const tooMany = Array.from({ length: MAX_FILES_PER_MESSAGE + 1 }, () => 'x.txt');
  assert.ok(!PeerEventSchema.safeParse({ ...delta, removed: tooMany }).success);
  assert.ok(!NetworkMessageSchema.safeParse({ ...relayed, removed: tooMany }).success);
  assert.ok(NetworkMessageSchema.safeParse({ ...relayed, removed: tooMany.slice(1) }).success);
});

test('a peer listing says last-seen ages when a superpeer answered and may leave them out otherwise', () => {
  const fromSuperpeer = { source: 'superpeer', stale: false, peers: [summary(1, 1500)] };
  assert.equal(PeerListAnswerSchema.parse(fromSuperpeer).peers[0]?.lastSeenAgoMs, 1500);
  const fromView = {
    source: 'network-view',
    stale: true,
    superpeerError: 'RPC_TIMEOUT',
    peers: [summary(2)],
  };
  assert.equal(PeerListAnswerSchema.parse(fromView).peers[0]?.lastSeenAgoMs, undefined);
  assert.ok(!PeerListAnswerSchema.safeParse({ ...fromSuperpeer, peers: [summary(1, -1)] }).success);
  assert.ok(!PeerListAnswerSchema.safeParse({ ...fromView, source: 'guess' }).success);
  assert.ok(PeerApiErrorSchema.safeParse({ error: { code: 'USAGE', message: 'bad query' } }).success);
  assert.ok(!PeerApiErrorSchema.safeParse({ error: 'bad' }).success);
});

test('collectPeerPages follows cursors, cuts pages that start before the cursor, and stops on a bad one', async () => {
  const asked: Array<string | undefined> = [];
  const pages = [page([1, 2], 3), page([2, 3, 4], 5), page([5])];
  const peers = await collectPeerPages(async (cursor) => {
    asked.push(cursor?.peerId);
    return pages[asked.length - 1]!;
  });
  assert.deepEqual(asked, [undefined, peerId(3), peerId(5)]);
  assert.deepEqual(
    peers.map((peer) => peer.peerId),
    [1, 2, 3, 4, 5].map(peerId),
  );

  const backwards = [page([1], 5), page([5], 4)];
  let call = 0;
  await assert.rejects(
    collectPeerPages(async () => backwards[call++]!),
    (err) => isP2PError(err, 'RPC_ERROR') && /does not move forward/.test(err.message),
  );
  let endless = 0;
  await assert.rejects(
    collectPeerPages(async () => page([endless], ++endless), 3),
    (err) => isP2PError(err, 'RPC_ERROR') && /more than 3 pages/.test(err.message),
  );
  assert.equal(endless, 3);
});
