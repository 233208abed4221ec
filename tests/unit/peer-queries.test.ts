import assert from 'node:assert/strict';
import { test } from 'node:test';
import { P2PError } from '../../libs/errors/index.js';
import { silentLog } from '../../libs/logging/index.js';
import type { RpcClient } from '../../libs/messaging/index.js';
import { PeerListAnswerSchema, PeerSearchAnswerSchema, PROTOCOL_VERSION } from '../../libs/protocol/index.js';
import { NetworkIndex } from '../../libs/search/index.js';
import {
  listNetworkPeers,
  type QuerySources,
  searchNetwork,
  viewPeers,
} from '../../services/peer/queries.js';
import { NetworkView } from '../../services/peer/view.js';

const sha = 'd'.repeat(64);
const own = 'a'.repeat(40);
const other = 'b'.repeat(40);

function sources(call: RpcClient['call']): QuerySources {
  const local = new NetworkIndex();
  local.applyFull({
    peerId: own,
    instanceId: 'own-12345678',
    url: 'http://127.0.0.1:1',
    seq: 1,
    files: [{ name: 'mine report.txt', size: 3, sha256: sha, mtimeMs: 1 }],
  });
  const view = new NetworkView(() => Promise.reject(new Error('no snapshot in this test')), silentLog);
  view.index.applyFull({
    peerId: other,
    instanceId: 'other-12345678',
    url: 'http://127.0.0.1:2',
    seq: 4,
    files: [{ name: 'their report.txt', size: 5, sha256: sha, mtimeMs: 1 }],
  });
  return { rpc: { call }, local, view, peerId: own, name: 'me', timeoutMs: 50, logger: silentLog };
}

/** A superpeer that answers `reply(request)`, checked by the caller's schema as a real reply is. */
const superpeer =
  (reply: (request: unknown) => object): RpcClient['call'] =>
  async (request, schema) =>
    schema.parse({ v: PROTOCOL_VERSION, ok: true, superpeerId: 'sp-1', ...reply(request) });

const timeout: RpcClient['call'] = () => Promise.reject(new P2PError('RPC_TIMEOUT', 'nobody answered'));

test('a search puts the peer’s own matches first, then the superpeer’s without the peer’s own', async () => {
  const requests: unknown[] = [];
  const answer = await searchNetwork(
    sources(
      superpeer((request) => {
        requests.push(request);
        return {
          type: 'rpc.search',
          indexedFiles: 2,
          indexedPeers: 2,
          results: [
            { name: 'mine report.txt', size: 3, sha256: sha, peerId: own, url: 'http://127.0.0.1:1/files/x' },
            {
              name: 'far report.txt',
              size: 7,
              sha256: sha,
              peerId: other,
              url: 'http://127.0.0.1:2/files/y',
            },
          ],
          truncated: false,
        };
      }),
    ),
    'report',
    10,
  );
  assert.deepEqual(requests, [{ v: PROTOCOL_VERSION, type: 'rpc.search', query: 'report', limit: 10 }]);
  assert.equal(answer.source, 'superpeer');
  assert.deepEqual(
    answer.results.map((result) => [result.name, result.peerName]),
    [
      ['mine report.txt', 'me'],
      ['far report.txt', undefined],
    ],
  );
  assert.ok(PeerSearchAnswerSchema.safeParse(answer).success);
});

test('without a superpeer a search answers from the view, says so, and is stale', async () => {
  const answer = await searchNetwork(sources(timeout), 'report', 1);
  assert.equal(answer.source, 'network-view');
  assert.equal(answer.stale, true);
  assert.match(answer.superpeerError ?? '', /RPC_TIMEOUT/);
  assert.equal(answer.results.length, 1, 'the limit holds across local and remote matches');
  assert.equal(answer.truncated, true);
});

test('a listing gives the superpeers’ last-seen ages, page by page; the view is the fallback, without ages', async () => {
  const summary = {
    url: 'http://127.0.0.1:2',
    instanceId: 'other-12345678',
    seq: 4,
    fileCount: 1,
    totalBytes: 5,
  };
  const cursors: unknown[] = [];
  const listed = await listNetworkPeers(
    sources(
      superpeer((request) => {
        const { cursor } = request as { cursor?: { peerId: string } };
        cursors.push(cursor);
        return cursor
          ? { type: 'rpc.peers', peers: [{ ...summary, peerId: other, lastSeenAgoMs: 1234 }] }
          : {
              type: 'rpc.peers',
              peers: [{ ...summary, peerId: own, lastSeenAgoMs: 10 }],
              next: { peerId: other },
            };
      }),
    ),
  );
  assert.deepEqual(cursors, [undefined, { peerId: other }]);
  assert.equal(listed.source, 'superpeer');
  assert.deepEqual(
    listed.peers.map((peer) => peer.lastSeenAgoMs),
    [10, 1234],
  );
  assert.ok(PeerListAnswerSchema.safeParse(listed).success);

  const fallback = await listNetworkPeers(sources(timeout));
  assert.equal(fallback.source, 'network-view');
  assert.match(fallback.superpeerError ?? '', /RPC_TIMEOUT/);
  assert.deepEqual(
    fallback.peers.map((peer) => [peer.peerId, peer.lastSeenAgoMs]),
    [[other, undefined]],
  );
  assert.ok(PeerListAnswerSchema.safeParse(fallback).success);
  assert.deepEqual(viewPeers(sources(timeout).view).peers, fallback.peers);
});
