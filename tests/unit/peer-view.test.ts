import assert from 'node:assert/strict';
import { test } from 'node:test';
import { silentLog } from '../../libs/logging/index.js';
import type {
  FileEntry,
  NetworkPeerLeft,
  NetworkPeerState,
  SnapshotReply,
  SnapshotRequest,
  WithFileLists,
} from '../../libs/protocol/index.js';
import { PROTOCOL_VERSION, readFileList } from '../../libs/protocol/index.js';
import { NetworkIndex } from '../../libs/search/index.js';
import { NetworkView } from '../../services/peer/view.js';
import { snapshotPage } from '../../services/superpeer/paging.js';

const peerA = 'a'.repeat(40);
const peerB = 'b'.repeat(40);

function files(prefix: string, count: number): FileEntry[] {
  return Array.from({ length: count }, (_, i) => ({
    name: `${prefix}/file ${i}.txt`,
    size: i,
    sha256: i.toString(16).padStart(64, '0'),
    mtimeMs: 1,
  }));
}

/** A peer's fields as a state or a snapshot page carries them (those the view reads). */
function peerFields(peerId: string) {
  return {
    peerId,
    instanceId: `${peerId.slice(0, 8)}-instance`,
    url: 'http://127.0.0.1:9',
    seq: 1,
    name: `peer-${peerId.slice(0, 4)}`,
    publicKey: 'unused',
  };
}

/** A snapshot page of whole peers (the fields the view reads; the RPC client has checked the rest). */
function page(...peers: Array<{ peerId: string; files: FileEntry[] }>): SnapshotReply {
  return {
    v: PROTOCOL_VERSION,
    type: 'rpc.snapshot',
    ok: true,
    superpeerId: 'sp-1',
    peers: peers.map(({ peerId, files }) => ({
      ...peerFields(peerId),
      fileOffset: 0,
      fileTotal: files.length,
      files,
    })),
  };
}

/**
 * A fetched page as the peer's RPC reads it: each peer's files as objects, or (`columns`) read canonically
 * into columns with the page's `files` emptied.
 */
function fetched(reply: SnapshotReply, form: 'objects' | 'columns'): WithFileLists<SnapshotReply> {
  if (form === 'objects') return { value: reply };
  const packed = reply.peers.map(
    (peer) => readFileList(Buffer.from(JSON.stringify(peer.files)), 0, { json: false })!.packed,
  );
  return { value: { ...reply, peers: reply.peers.map((peer) => ({ ...peer, files: [] })) }, packed };
}

function left(peerId: string): NetworkPeerLeft {
  return {
    v: PROTOCOL_VERSION,
    type: 'network.peer-left',
    peerId,
    instanceId: `${peerId.slice(0, 8)}-instance`,
    superpeerId: 'sp-1',
    reason: 'leave',
  } as NetworkPeerLeft;
}

for (const form of ['objects', 'columns'] as const) {
  test(`a state in chunks (files as ${form}) is in the map once its last chunk came; a chunk out of order is ignored`, async () => {
    const view = new NetworkView(() => Promise.reject(new Error('no snapshot here')), silentLog);
    const chunk = (chunkIndex: number, chunkFiles: FileEntry[]) =>
      ({
        v: PROTOCOL_VERSION,
        type: 'network.peer-state',
        peerId: peerA,
        instanceId: 'a-instance',
        url: 'http://127.0.0.1:9',
        seq: 3,
        name: 'peer-a',
        publicKey: 'unused',
        superpeerId: 'sp-1',
        chunkIndex,
        chunkCount: 2,
        files: form === 'objects' ? chunkFiles : [],
      }) as unknown as NetworkPeerState;
    // As the peer's consumer reads a canonical list (decodeWithFileList): into columns, the message's empty.
    const apply = (state: NetworkPeerState, chunkFiles: FileEntry[]) => {
      if (form === 'objects') return view.applyState(state);
      const read = readFileList(Buffer.from(JSON.stringify(chunkFiles)), 0, { json: false });
      assert.ok(read, 'a canonical list of at most 2000 files');
      return view.applyState(state, read.packed);
    };
    await apply(chunk(0, files('one', 2000)), files('one', 2000));
    await view.settled();
    assert.equal(view.index.hasPeer(peerA), false, 'not in the map before its last chunk');
    await apply(chunk(0, files('one', 2000)), files('one', 2000));
    await apply(chunk(2, files('stray', 5)), files('stray', 5));
    // A name sent twice is one file, with the later size.
    const again = { name: 'one/file 0.txt', size: 77, sha256: 'e'.repeat(64), mtimeMs: 1 };
    await apply(chunk(1, [...files('two', 10), again]), [...files('two', 10), again]);
    await view.settled();
    assert.equal(view.index.getPeer(peerA)?.fileCount, 2010);
    assert.equal(view.index.getPeer(peerA)?.totalBytes, (1999 * 2000) / 2 + 77 + 45);
    assert.equal(view.index.search({ kind: 'sha256', sha256: 'e'.repeat(64) }, 5).results[0]?.size, 77);
    assert.equal(view.index.fileCount, 2010);
    assert.deepEqual(
      view.index.peerFiles(peerA).find((file) => file.name === 'two/file 9.txt'),
      { name: 'two/file 9.txt', size: 9, sha256: (9).toString(16).padStart(64, '0') },
    );
    assert.equal(view.nameOf(peerA), 'peer-a');
  });
}

for (const form of ['objects', 'columns'] as const) {
  test(`a peer that leaves while a snapshot holding it loads (files as ${form}) is not brought back by that snapshot`, async () => {
    let leaveDuringFetch = true;
    const requests: SnapshotRequest[] = [];
    const view = new NetworkView(async (request) => {
      requests.push(request);
      // The superpeer took its page before the leave; the leave reaches this peer before the page does.
      if (leaveDuringFetch) view.applyLeft(left(peerB));
      return fetched(
        page({ peerId: peerA, files: files('a', 5) }, { peerId: peerB, files: files('b', 7) }),
        form,
      );
    }, silentLog);
    await view.refresh();
    assert.equal(requests.length, 1);
    assert.equal(view.index.hasPeer(peerA), true);
    assert.equal(view.index.hasPeer(peerB), false, 'the leave is newer than the page');
    assert.equal(view.index.fileCount, 5);
    assert.equal(view.stale, false);

    // Without a leave, the same page brings both (and a leave before an earlier load does not count).
    leaveDuringFetch = false;
    await view.refresh();
    assert.equal(view.index.hasPeer(peerB), true);
    assert.equal(view.index.fileCount, 12);
    // Each peer's files are its own (the page's k-th list went to its k-th peer).
    for (const [peerId, prefix, count] of [
      [peerA, 'a', 5],
      [peerB, 'b', 7],
    ] as const) {
      const held = view.index.peerFiles(peerId).sort((x, y) => (x.name < y.name ? -1 : 1));
      const sent = files(prefix, count).map(({ name, size, sha256 }) => ({ name, size, sha256 }));
      assert.deepEqual(
        held,
        sent.sort((x, y) => (x.name < y.name ? -1 : 1)),
      );
    }
  });
}

test('a snapshot whose cursor does not move on is refused, not fetched forever', async () => {
  const cursors: Array<SnapshotRequest['cursor']> = [];
  const view = new NetworkView(async (request) => {
    cursors.push(request.cursor);
    if (cursors.length > 10) throw new Error('fetched forever');
    const reply = page({ peerId: peerA, files: files('a', 5) });
    // From the second page on, the same cursor as asked: a superpeer (or an impostor) stuck on one page.
    return { value: { ...reply, next: request.cursor ?? { peerId: peerA, fileOffset: 5 } } };
  }, silentLog);
  await assert.rejects(view.refresh(), /does not move on/);
  assert.equal(cursors.length, 2);
  assert.equal(view.stale, true);
});

/** A view whose snapshots are pages of `idx` from the superpeer's own paging, `pageFiles` files a page. */
function viewOf(idx: NetworkIndex, pageFiles: number, beforePage: (request: SnapshotRequest) => void) {
  const known = (peerId: string) => ({ publicKey: 'unused', name: `peer-${peerId.slice(0, 4)}` });
  return new NetworkView(async (request) => {
    beforePage(request);
    const page = snapshotPage(idx, request, known, pageFiles);
    return { value: { v: PROTOCOL_VERSION, type: 'rpc.snapshot', ok: true, superpeerId: 'sp-1', ...page } };
  }, silentLog);
}

const namesIn = (list: ReadonlyArray<{ name: string }>) => list.map((file) => file.name).sort();

test('a peer that changes between two snapshot pages is read again from its first file', async () => {
  const idx = new NetworkIndex();
  idx.applyFull({ ...peerFields(peerA), files: files('a', 5) });
  idx.applyFull({ ...peerFields(peerB), files: files('b', 3) });
  let pages = 0;
  // Between the first and second page the superpeer applies a change of peer A (whose broadcast this
  // peer missed: that is why it reloads): its first file goes, so every later offset shifts by one.
  const view = viewOf(idx, 2, () => {
    if (++pages === 2) {
      const result = idx.applyDelta({
        peerId: peerA,
        instanceId: peerFields(peerA).instanceId,
        seq: 2,
        upserted: [],
        removed: ['a/file 0.txt'],
      });
      assert.equal(result, 'applied');
    }
  });
  await view.refresh();
  assert.equal(view.stale, false);
  assert.deepEqual(namesIn(view.index.peerFiles(peerA)), namesIn(idx.peerFiles(peerA)));
  assert.deepEqual(namesIn(view.index.peerFiles(peerB)), namesIn(idx.peerFiles(peerB)));
  assert.equal(view.index.fileCount, 7);
});

test('a peer that changes on every page is skipped after a few reads; the others load', async () => {
  const idx = new NetworkIndex();
  idx.applyFull({ ...peerFields(peerA), files: files('a', 5) });
  idx.applyFull({ ...peerFields(peerB), files: files('b', 3) });
  let churn = false;
  let seq = 1;
  let pages = 0;
  const view = viewOf(idx, 2, () => {
    if (!churn) return;
    if (++pages > 100) throw new Error('fetched forever');
    // Every page sees A changed: one more file, which sorts first.
    idx.applyDelta({
      peerId: peerA,
      instanceId: peerFields(peerA).instanceId,
      seq: ++seq,
      upserted: [{ name: `a/0 new ${seq}.txt`, size: 1, sha256: '0'.repeat(64), mtimeMs: 1 }],
      removed: [],
    });
  });
  await view.refresh(); // the view holds A and B as they are
  churn = true;
  await view.refresh();
  assert.equal(view.stale, false);
  assert.ok(pages <= 12, `${pages} pages`);
  assert.equal(view.index.peerFiles(peerA).length, 5, 'what the view held of A is kept');
  assert.deepEqual(namesIn(view.index.peerFiles(peerB)), namesIn(idx.peerFiles(peerB)));
});

test('a snapshot page with more of a peer’s files than its total is refused', async () => {
  const view = new NetworkView(async () => {
    const reply = page({ peerId: peerA, files: files('a', 5) });
    return { value: { ...reply, peers: reply.peers.map((peer) => ({ ...peer, fileTotal: 3 })) } };
  }, silentLog);
  await assert.rejects(view.refresh(), /more of a peer’s files than its total/);
  assert.equal(view.index.peerCount, 0);
});

test('a peer that joins while a snapshot without it loads stays in the map', async () => {
  const view = new NetworkView(async () => {
    // The superpeer took its page before peer B joined; B's state broadcast reaches this peer (and is
    // applied) before the page does.
    await view.applyState({
      v: PROTOCOL_VERSION,
      type: 'network.peer-state',
      peerId: peerB,
      instanceId: 'b-instance',
      url: 'http://127.0.0.1:9',
      seq: 1,
      name: 'peer-b',
      publicKey: 'unused',
      superpeerId: 'sp-1',
      chunkIndex: 0,
      chunkCount: 1,
      files: files('b', 7),
    } as unknown as NetworkPeerState);
    await view.settled();
    return { value: page({ peerId: peerA, files: files('a', 5) }) };
  }, silentLog);
  await view.refresh();
  assert.equal(view.index.hasPeer(peerA), true);
  assert.equal(view.index.hasPeer(peerB), true, 'its state is newer than the page');
  assert.equal(view.index.fileCount, 12);
});

test('first chunks that claim a huge chunk count reserve room for the files they carry, not the claim', async () => {
  const view = new NetworkView(() => Promise.reject(new Error('no snapshot here')), silentLog);
  const before = process.memoryUsage().arrayBuffers;
  // 1024 states begun and never finished (the most the view keeps open), each claiming 100,000 chunks.
  for (let i = 0; i < 1024; i++) {
    await view.applyState({
      v: PROTOCOL_VERSION,
      type: 'network.peer-state',
      peerId: i.toString(16).padStart(40, '0'),
      instanceId: 'x-instance',
      url: 'http://127.0.0.1:9',
      seq: 1,
      name: 'claims',
      publicKey: 'unused',
      superpeerId: 'sp-1',
      chunkIndex: 0,
      chunkCount: 100_000,
      files: files('c', 1),
    } as unknown as NetworkPeerState);
  }
  const grown = process.memoryUsage().arrayBuffers - before;
  // Reserving for the claim would take about 1.7 GB here (32,000 files' columns per state).
  assert.ok(grown < 100 * 2 ** 20, `${(grown / 2 ** 20).toFixed(0)} MiB of buffers for 1024 one-file chunks`);
  assert.equal(view.index.peerCount, 0, 'no state is whole');
});

/** A whole state of `peerId` in one chunk, its files read into columns. */
function wholeState(peerId: string): NetworkPeerState {
  return {
    v: PROTOCOL_VERSION,
    type: 'network.peer-state',
    ...peerFields(peerId),
    superpeerId: 'sp-1',
    chunkIndex: 0,
    chunkCount: 1,
    files: [],
  } as unknown as NetworkPeerState;
}

/** A list read as the peer's consumer reads a state's (no JSON kept), packed into the view's spare if any. */
function readInto(view: NetworkView, list: FileEntry[]) {
  const read = readFileList(Buffer.from(JSON.stringify(list)), 0, { json: false, spare: view.spare });
  assert.ok(read, 'a canonical list');
  return read.packed;
}

/**
 * 1024 files whose columns (no JSON) take exactly `bytes`: a 16-byte header, 53 bytes a file (size, mtime,
 * name end, SHA-256, ASCII flag) and the names, of at most 1024 characters.
 */
function filesPackedIn(bytes: number): FileEntry[] {
  const count = 1024;
  const nameBytes = bytes - 16 - 53 * count;
  const short = Math.floor(nameBytes / count);
  return files('x', count).map((file, i) => {
    const prefix = `${i}/`;
    const length = i < nameBytes - short * count ? short + 1 : short;
    return { ...file, name: prefix + 'x'.repeat(length - prefix.length) };
  });
}

test('a packed state gives its buffer back for the next list when it is at most 1 MiB', async () => {
  for (const [bytes, kept] of [
    [2 ** 20, true],
    [2 ** 20 + 1, false],
  ] as const) {
    const view = new NetworkView(() => Promise.reject(new Error('no snapshot here')), silentLog);
    const big = readInto(view, filesPackedIn(bytes));
    assert.equal(big.buffer.byteLength, bytes);
    await view.applyState(wholeState(peerA), big);
    await view.settled();
    assert.equal(view.index.getPeer(peerA)?.fileCount, 1024);
    // The next (small) list is packed into the kept buffer, or into a new one.
    const next = readInto(view, files('next', 3));
    assert.equal(next.buffer === big.buffer, kept, `a buffer of ${bytes} bytes kept: ${kept}`);
    assert.deepEqual(next.entries(), files('next', 3));
  }
});

test('a view keeps two spare buffers at most, and hands each out once', async () => {
  const view = new NetworkView(() => Promise.reject(new Error('no snapshot here')), silentLog);
  const peers = ['c', 'd', 'e'].map((c) => c.repeat(40));
  // Three states read before any is applied (a broadcast and a snapshot page staged at once, and more).
  const packed = peers.map((peerId) => readInto(view, files(peerId.slice(0, 1), 3)));
  assert.equal(new Set(packed.map((list) => list.buffer)).size, 3);
  for (const [i, peerId] of peers.entries()) await view.applyState(wholeState(peerId), packed[i]!);
  await view.settled();
  assert.equal(view.index.peerCount, 3);
  assert.deepEqual(
    [view.spare(1), view.spare(1), view.spare(1)],
    [packed[0]!.buffer, packed[1]!.buffer, undefined],
  );
});
