import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { type FileHandle, mkdtemp, open, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { HashWorker, PrefixHasher } from '../../libs/transfer/index.js';

const sha = (bytes: Buffer): string => createHash('sha256').update(bytes).digest('hex');

describe('PrefixHasher', () => {
  const hashing = new HashWorker();
  let dir: string;
  let handle: FileHandle;
  let target: string;
  before(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'prefix-hash-'));
    target = path.join(dir, 'file.bin');
    handle = await open(target, 'w+');
  });
  after(async () => {
    await hashing.close();
    await handle.close();
    await rm(dir, { recursive: true, force: true });
  });

  /** Writes `bytes` at `position` through the hashing thread, hashed if the hasher claims them. */
  const write = (hasher: PrefixHasher, position: number, bytes: Buffer): Promise<void> =>
    hashing.write(handle.fd, [Buffer.from(bytes)], position, hasher.claim(position, bytes.length));

  test('bytes written at the prefix are hashed as written; bytes ahead are read back from the file', async () => {
    const file = randomBytes(1000);
    await handle.truncate(0);
    const hasher = new PrefixHasher(file.length, hashing);
    // Two segments: [0, 500) and [500, 1000), the second arriving first.
    await write(hasher, 500, file.subarray(500, 800));
    assert.equal(hasher.hashedBytes, 0);
    await write(hasher, 0, file.subarray(0, 200));
    await write(hasher, 200, file.subarray(200, 500));
    assert.equal(hasher.hashedBytes, 500);
    await write(hasher, 800, file.subarray(800, 1000));
    assert.equal(hasher.hashedBytes, 500, 'bytes ahead of the prefix are not claimed');
    assert.equal(await hasher.digest(), undefined, 'no digest before every byte is in');
    // The file holds every byte now; the part that arrived ahead is read back.
    assert.equal(hasher.gapAt(1000), true);
    await hasher.hashFile(handle.fd, 500);
    assert.equal(hasher.gapAt(1000), false);
    assert.deepEqual(await readFile(target), file, 'every write reached the file');
    assert.equal(await hasher.digest(), sha(file));
  });

  test('no gap while the file is behind the prefix; bytes behind the prefix are not claimed', async () => {
    const file = randomBytes(64);
    await handle.truncate(0);
    const hasher = new PrefixHasher(file.length, hashing);
    await write(hasher, 0, file.subarray(0, 32));
    assert.equal(hasher.gapAt(16), false);
    assert.equal(hasher.gapAt(32), false);
    assert.equal(hasher.claim(0, 32), false, 'a rewrite of hashed bytes is not hashed again');
    assert.equal(hasher.hashedBytes, 32);
    await handle.write(file.subarray(32), 0, 32, 32);
    await hasher.hashFile(handle.fd, 32);
    assert.equal(await hasher.digest(), sha(file));
  });

  test('a read of the prefix and writes claimed after it are hashed in the order they were asked', async () => {
    const file = randomBytes(3 * 1024 * 1024);
    await handle.truncate(0);
    const hasher = new PrefixHasher(file.length, hashing);
    await handle.write(file, 0, 1024 * 1024, 0);
    // Not awaited: the claim below is made while the read is still queued, and must land after it.
    const reading = hasher.hashFile(handle.fd, 1024 * 1024);
    const writing = write(hasher, 1024 * 1024, file.subarray(1024 * 1024));
    assert.equal(hasher.hashedBytes, file.length);
    await Promise.all([reading, writing]);
    assert.equal(await hasher.digest(), sha(file));
  });

  test('a read past the end of the file rejects with the error, and the thread goes on', async () => {
    await handle.truncate(10);
    const hasher = new PrefixHasher(100, hashing);
    await assert.rejects(hasher.hashFile(handle.fd, 100), /end of file/);
    hashing.reset();
    const bytes = randomBytes(10);
    const expected = sha(bytes);
    hashing.update([bytes]);
    assert.equal(await hashing.digest(), expected);
  });
});
