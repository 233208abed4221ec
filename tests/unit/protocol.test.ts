import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  chunk,
  decode,
  encode,
  FileNameSchema,
  fileUrl,
  MAX_MESSAGE_BYTES,
  NetworkMessageSchema,
  PeerEventSchema,
  RpcRequestSchema,
} from '../../libs/protocol/index.js';

const sha = 'a'.repeat(64);

test('file names: relative paths only, no tricks', () => {
  for (const good of ['a.txt', 'music/Holiday Song.mp3', 'ünïcödé/ファイル.bin', 'a..b', 'x/y/z']) {
    assert.ok(FileNameSchema.safeParse(good).success, good);
  }
  for (const bad of [
    '',
    '/abs',
    '../up',
    'a/../b',
    'a/./b',
    './a',
    'a//b',
    'a/',
    '.hidden',
    'd/.git/config',
    'a\\b',
    'nul\u0000',
    'tab\tname',
    'x'.repeat(1025),
  ]) {
    assert.ok(!FileNameSchema.safeParse(bad).success, JSON.stringify(bad));
  }
});

test('decode refuses oversize, non-JSON and wrong shapes with a reason, and never throws', () => {
  const tooBig = Buffer.alloc(MAX_MESSAGE_BYTES + 1, 0x20);
  assert.deepEqual(decode(PeerEventSchema, tooBig), {
    ok: false,
    reason: `body of ${tooBig.length} bytes exceeds ${MAX_MESSAGE_BYTES}`,
  });
  assert.deepEqual(decode(PeerEventSchema, Buffer.from('{nope')), { ok: false, reason: 'body is not JSON' });
  const wrong = decode(PeerEventSchema, encode({ v: 1, type: 'peer.delta', peerId: 'p1' }));
  assert.equal(wrong.ok, false);
  assert.match(wrong.ok ? '' : wrong.reason, /^schema: /);
  const unknown = decode(NetworkMessageSchema, encode({ v: 1, type: 'network.nope', superpeerId: 's' }));
  assert.equal(unknown.ok, false);
});

test('a valid delta decodes; a hostile name inside it does not', () => {
  const delta = {
    v: 1,
    type: 'peer.delta',
    peerId: 'peer-1',
    instanceId: '12345678-aaaa',
    seq: 2,
    upserted: [{ name: 'ok.txt', size: 1, sha256: sha, mtimeMs: 1 }],
    removed: [],
  };
  const decoded = decode(PeerEventSchema, encode(delta));
  assert.ok(decoded.ok);
  assert.equal(decoded.value.type, 'peer.delta');
  const hostile = { ...delta, upserted: [{ name: '../../etc/passwd', size: 1, sha256: sha, mtimeMs: 1 }] };
  assert.equal(decode(PeerEventSchema, encode(hostile)).ok, false);
  const upperSha = { ...delta, upserted: [{ name: 'x', size: 1, sha256: sha.toUpperCase(), mtimeMs: 1 }] };
  assert.equal(decode(PeerEventSchema, encode(upperSha)).ok, false);
});

test('search requests: limit defaults to 50 and is bounded', () => {
  const parsed = decode(RpcRequestSchema, encode({ v: 1, type: 'rpc.search', query: 'x' }));
  assert.ok(parsed.ok && parsed.value.type === 'rpc.search' && parsed.value.limit === 50);
  assert.equal(
    decode(RpcRequestSchema, encode({ v: 1, type: 'rpc.search', query: 'x', limit: 1001 })).ok,
    false,
  );
  assert.equal(decode(RpcRequestSchema, encode({ v: 1, type: 'rpc.search', query: '   ' })).ok, false);
});

test('fileUrl encodes each segment; chunk splits lists', () => {
  assert.equal(fileUrl('http://h:1/', 'a b/c#d?.txt'), 'http://h:1/files/a%20b/c%23d%3F.txt');
  assert.deepEqual(chunk([], 2), [[]]);
  assert.deepEqual(chunk([1, 2, 3, 4, 5], 2), [[1, 2], [3, 4], [5]]);
});
