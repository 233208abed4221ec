import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { after, describe, test } from 'node:test';
import { HashWorker, PrefixHasher } from '../../libs/transfer/index.js';

const sha = (bytes: Buffer): string => createHash('sha256').update(bytes).digest('hex');

describe('PrefixHasher', () => {
  const hashing = new HashWorker();
  after(() => hashing.close());

  test('chunks at the prefix are hashed at once; chunks ahead come from the file', async () => {
    const file = randomBytes(1000);
    const hasher = new PrefixHasher(file.length, hashing);
    const reads: Array<[number, number]> = [];
    const read = async (position: number, length: number): Promise<Buffer> => {
      reads.push([position, length]);
      return file.subarray(position, position + length);
    };
    // Two segments: [0, 500) and [500, 1000), the second arriving first.
    hasher.offer(500, [file.subarray(500, 800)]);
    assert.equal(hasher.hashedBytes, 0);
    hasher.offer(0, [file.subarray(0, 200)]);
    hasher.offer(200, [file.subarray(200, 500)]);
    assert.equal(hasher.hashedBytes, 500);
    hasher.offer(800, [file.subarray(800, 1000)]);
    assert.equal(await hasher.digest(), undefined, 'no digest before every byte is in');
    // The file holds every byte now; the part that arrived ahead is read back.
    assert.equal(hasher.gapAt(1000), true);
    await hasher.hashRead(500, read);
    assert.deepEqual(reads, [[500, 500]]);
    assert.equal(hasher.gapAt(1000), false);
    assert.equal(await hasher.digest(), sha(file));
  });

  test('no gap while the file is behind the prefix; a chunk behind the prefix is ignored', async () => {
    const file = randomBytes(64);
    const hasher = new PrefixHasher(file.length, hashing);
    hasher.offer(0, [file.subarray(0, 32)]);
    assert.equal(hasher.gapAt(16), false);
    assert.equal(hasher.gapAt(32), false);
    hasher.offer(0, [file.subarray(0, 32)]);
    assert.equal(hasher.hashedBytes, 32);
    await hasher.hashRead(32, async (position, length) => file.subarray(position, position + length));
    assert.equal(await hasher.digest(), sha(file));
  });

  test('an offer while a read of the prefix is under way is left to that read', async () => {
    const file = randomBytes(100);
    const hasher = new PrefixHasher(file.length, hashing);
    let release: () => void = () => {};
    const reading = hasher.hashRead(50, async (position, length) => {
      await new Promise<void>((resolve) => {
        release = resolve;
      });
      return file.subarray(position, position + length);
    });
    assert.equal(hasher.gapAt(100), false, 'one read at a time');
    hasher.offer(0, [file.subarray(0, 50)]);
    release();
    await reading;
    assert.equal(hasher.hashedBytes, 50);
    hasher.offer(50, [file.subarray(50)]);
    assert.equal(await hasher.digest(), sha(file));
  });
});
