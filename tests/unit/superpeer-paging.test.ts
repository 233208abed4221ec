import assert from 'node:assert/strict';
import { generateKeyPairSync, randomUUID } from 'node:crypto';
import { describe, it } from 'node:test';
import {
  decodeWithFileLists,
  EACH_PEERS_FILES,
  encode,
  type FileEntry,
  PROTOCOL_VERSION,
  peerIdFromPublicKey,
  SnapshotReplySchema,
} from '../../libs/protocol/index.js';
import { NetworkIndex } from '../../libs/search/index.js';
import { peersPage, snapshotPage } from '../../services/superpeer/paging.js';

const files = (count: number): FileEntry[] =>
  Array.from({ length: count }, (_, i) => ({
    name: `f${String(i).padStart(5, '0')}.txt`,
    size: i,
    sha256: 'a'.repeat(64),
    mtimeMs: 0,
  }));

function index(peers: Array<[string, number]>): NetworkIndex {
  const idx = new NetworkIndex();
  for (const [peerId, count] of peers) {
    idx.applyFull({
      peerId,
      instanceId: 'inst-0001',
      url: `http://${peerId}.test`,
      seq: 1,
      files: files(count),
    });
  }
  return idx;
}

/** Every peer is registered under one key; the pages carry it. */
const known = () => ({ publicKey: 'key' });

describe('snapshot paging', () => {
  it('walks every file of every peer exactly once, a bounded page at a time', () => {
    const idx = index([
      ['a', 5],
      ['b', 12],
      ['c', 0],
      ['d', 3],
    ]);
    const seen = new Map<string, number>();
    let cursor: { peerId: string; fileOffset: number } | undefined;
    let pages = 0;
    do {
      const page = snapshotPage(idx, cursor ? { cursor } : {}, known, 4);
      pages++;
      assert.ok(page.peers.reduce((sum, peer) => sum + peer.files.length, 0) <= 4);
      for (const peer of page.peers) {
        assert.equal(peer.fileOffset, seen.get(peer.peerId) ?? 0);
        seen.set(peer.peerId, (seen.get(peer.peerId) ?? 0) + peer.files.length);
      }
      cursor = page.next;
    } while (cursor && pages < 100);
    assert.deepEqual(Object.fromEntries(seen), { a: 5, b: 12, c: 0, d: 3 });
  });

  it('pages one peer on request, and an unknown peer is an empty page', () => {
    const idx = index([
      ['a', 5],
      ['b', 3],
    ]);
    assert.deepEqual(
      snapshotPage(idx, { peerId: 'b' }, known).peers.map((peer) => peer.peerId),
      ['b'],
    );
    assert.deepEqual(snapshotPage(idx, { peerId: 'zz' }, known), { peers: [] });
  });
});

describe('snapshot pages on the wire', () => {
  it("are written canonically: a peer reads every peer's files straight into columns", () => {
    const keys = Array.from({ length: 3 }, () =>
      generateKeyPairSync('ed25519').publicKey.export({ type: 'spki', format: 'der' }).toString('base64'),
    );
    const idx = new NetworkIndex();
    const lists = new Map<string, FileEntry[]>();
    for (const [k, publicKey] of keys.entries()) {
      const peerId = peerIdFromPublicKey(publicKey)!;
      const list = Array.from({ length: 10 + k }, (_, i) => ({
        name: `dir ${k}/été ${i}.dat`,
        size: 2 ** 40 + i,
        sha256: (k * 100 + i).toString(16).padStart(64, '0'),
        mtimeMs: 1_700_000_000_000.5 + i,
      }));
      lists.set(peerId, list);
      idx.applyFull({
        peerId,
        instanceId: randomUUID(),
        url: `http://p${k}.test/share`,
        seq: 1,
        files: list,
      });
    }
    const keyOf = new Map(keys.map((key) => [peerIdFromPublicKey(key)!, key]));
    const page = snapshotPage(
      idx,
      {},
      (peerId) => ({ publicKey: keyOf.get(peerId)!, name: 'peer-name' }),
      25,
    );
    assert.ok(page.next, 'the page stops inside the last peer');
    const body = encode({
      v: PROTOCOL_VERSION,
      type: 'rpc.snapshot',
      ok: true,
      superpeerId: 'sp-1',
      ...page,
    });
    const read = decodeWithFileLists(SnapshotReplySchema, body, EACH_PEERS_FILES, { json: false });
    assert.ok(read.ok && read.value.packed, 'read into columns');
    const packed = read.value.packed;
    let total = 0;
    for (const [k, peer] of read.value.value.peers.entries()) {
      const sent = lists.get(peer.peerId)!.sort((a, b) => (a.name < b.name ? -1 : 1));
      const got: FileEntry[] = packed[k]!.entries();
      assert.ok(got.length > 0);
      assert.deepEqual(got, sent.slice(peer.fileOffset, peer.fileOffset + got.length));
      total += got.length;
    }
    assert.equal(total, 25, 'a page of 25 files');
  });
});

describe('peers paging', () => {
  it('lists every peer once by id order, with a cursor that moves forward', () => {
    const ids = Array.from({ length: 25 }, (_, i) => `peer-${String(i).padStart(2, '0')}`);
    const idx = index(ids.map((id) => [id, 1]));
    const listed: string[] = [];
    let cursor: { peerId: string } | undefined;
    for (let i = 0; i < 10; i++) {
      const page = peersPage(idx, cursor ? { cursor } : {}, () => 7, 10);
      assert.ok(page.peers.length <= 10);
      assert.ok(page.peers.every((peer) => peer.lastSeenAgoMs === 7));
      listed.push(...page.peers.map((peer) => peer.peerId));
      if (!page.next) break;
      cursor = page.next;
    }
    assert.deepEqual(listed, ids);
  });
});
