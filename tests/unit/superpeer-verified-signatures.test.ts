import assert from 'node:assert/strict';
import { test } from 'node:test';
import { VerifiedSignatures } from '../../services/superpeer/verified-signatures.js';

const body = (text: string) => Buffer.from(text, 'utf8');

test('a remembered signature matches only the same key and byte-identical content, once', () => {
  const memo = new VerifiedSignatures();
  memo.remember('key-a', 'sig-1', body('{"seq":1}'));
  assert.equal(memo.take('key-a', 'sig-1', body('{"seq":1}')), true);
  assert.equal(memo.take('key-a', 'sig-1', body('{"seq":1}')), false, 'a record is used once');

  memo.remember('key-a', 'sig-2', body('{"seq":2}'));
  assert.equal(memo.take('key-b', 'sig-2', body('{"seq":2}')), false, 'another key');
  memo.remember('key-a', 'sig-3', body('{"seq":3}'));
  assert.equal(memo.take('key-a', 'sig-3', body('{"seq":4}')), false, 'other content');
  assert.equal(memo.take('key-a', 'sig-4', body('{"seq":3}')), false, 'never remembered');
  assert.equal(memo.size, 0);
});

test('the memo is bounded: the oldest record goes first', () => {
  const memo = new VerifiedSignatures(3);
  for (let i = 0; i < 5; i++) memo.remember('key', `sig-${i}`, body(String(i)));
  assert.equal(memo.size, 3);
  assert.equal(memo.take('key', 'sig-0', body('0')), false);
  assert.equal(memo.take('key', 'sig-1', body('1')), false);
  assert.equal(memo.take('key', 'sig-4', body('4')), true);
});

test('a record keeps its own copy of the bytes, not the buffer they were read from', () => {
  const memo = new VerifiedSignatures();
  // A delivery is often a view of a larger read: the record must neither pin it nor follow its changes.
  const read = Buffer.from('....{"seq":1}....', 'utf8');
  const delivery = read.subarray(4, 13);
  memo.remember('key', 'sig', delivery);
  read.fill(0x2e);
  assert.equal(memo.take('key', 'sig', delivery), false, 'the record followed the reused buffer');
  memo.remember('key', 'sig', body('{"seq":2}'));
  assert.equal(memo.holds('sig', body('{"seq":3}')), false, 'other bytes under the signature');
  assert.equal(memo.holds('sig', body('{"seq":2}')), true);
  assert.equal(memo.take('key', 'sig', body('{"seq":2}')), true);
  assert.equal(memo.holds('sig', body('{"seq":2}')), false);
});

test('by default the memo outlasts a 20 s backlog of heartbeats from 1,000 peers (one every 2 s)', () => {
  const memo = new VerifiedSignatures();
  for (let i = 0; i < 10_000; i++) memo.remember('key', `sig-${i}`, body(`{"beat":${i}}`));
  assert.equal(memo.take('key', 'sig-0', body('{"beat":0}')), true, 'the oldest record was pushed out');
  assert.equal(memo.take('key', 'sig-9999', body('{"beat":9999}')), true);
});
