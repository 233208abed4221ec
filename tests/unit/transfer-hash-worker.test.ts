import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createHash, randomBytes, randomInt } from 'node:crypto';
import { mkdtemp, open, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, test } from 'node:test';
import { promisify } from 'node:util';
import { isP2PError } from '../../libs/errors/index.js';
import { downloadFile, HashWorker } from '../../libs/transfer/index.js';
import { scanShare, serve } from '../helpers/transfer-fixtures.js';

const sha = (bytes: Buffer): string => createHash('sha256').update(bytes).digest('hex');

/** `bytes` cut at random places; some pieces own their ArrayBuffer (transferred), others are views (copied). */
function randomSplit(bytes: Buffer): Buffer[] {
  const pieces: Buffer[] = [];
  for (let at = 0; at < bytes.length; ) {
    const length = Math.min(bytes.length - at, randomInt(1, 600 * 1024));
    const view = bytes.subarray(at, at + length);
    pieces.push(randomInt(2) === 0 ? view : Buffer.from(view));
    at += length;
  }
  return pieces;
}

/** A hashing thread that dies on its first message. */
function failingScript(): URL {
  const code =
    "import { parentPort } from 'node:worker_threads'; parentPort.once('message', () => { throw new Error('boom'); });";
  return new URL(`data:text/javascript,${encodeURIComponent(code)}`);
}

describe('HashWorker', () => {
  test('the digest equals crypto’s over random chunk splits, with backpressure', async () => {
    const hashing = new HashWorker({ maxQueuedBytes: 512 * 1024 });
    try {
      for (let round = 0; round < 5; round++) {
        const bytes = randomBytes(randomInt(1, 4 * 1024 * 1024));
        // Before the update: a piece that owns its whole ArrayBuffer (maybe `bytes` itself) is taken over.
        const expected = sha(bytes);
        const pieces = randomSplit(bytes);
        let waited = 0;
        for (let i = 0; i < pieces.length; ) {
          const batch = pieces.slice(i, i + randomInt(1, 4));
          i += batch.length;
          const full = hashing.update(batch);
          if (full !== undefined) {
            waited += 1;
            await full;
            assert.ok(hashing.pendingBytes <= 512 * 1024, 'a wait ends below the bound');
          }
        }
        assert.equal(await hashing.digest(), expected, `round ${round}`);
        if (bytes.length > 2 * 1024 * 1024)
          assert.ok(waited > 0, 'more than the bound queued makes the caller wait');
      }
    } finally {
      await hashing.close();
    }
  });

  test('reset drops what was sent; a digest starts a new hash', async () => {
    const hashing = new HashWorker();
    try {
      hashing.update([randomBytes(1000)]);
      hashing.reset();
      const bytes = randomBytes(5000);
      hashing.update([Buffer.from(bytes)]);
      assert.equal(await hashing.digest(), sha(bytes));
      assert.equal(await hashing.digest(), sha(Buffer.alloc(0)));
    } finally {
      await hashing.close();
    }
  });

  test('a transferred buffer is taken over; a view, or any buffer with keep, is copied and left intact', async () => {
    const hashing = new HashWorker();
    try {
      const owned = Buffer.from(randomBytes(70_000));
      const backing = randomBytes(10_000);
      const view = backing.subarray(100, 9000);
      const expected = sha(Buffer.concat([owned, view]));
      const viewCopy = Buffer.from(view);
      hashing.update([owned, view]);
      assert.equal(await hashing.digest(), expected);
      assert.equal(owned.buffer.byteLength, 0, 'the owned buffer went to the thread');
      assert.deepEqual(view, viewCopy);
      const reused = Buffer.from(randomBytes(70_000));
      const expectedReused = sha(reused);
      hashing.update([reused], true);
      assert.equal(await hashing.digest(), expectedReused);
      assert.equal(reused.length, 70_000, 'with keep, even a whole buffer is copied, not taken');
    } finally {
      await hashing.close();
    }
  });

  test('write puts each run at its offset and hashes only the runs asked for, in request order', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'hash-worker-write-'));
    const hashing = new HashWorker({ maxQueuedBytes: 256 * 1024 });
    const handle = await open(path.join(dir, 'file.bin'), 'w+');
    try {
      const bytes = randomBytes(3 * 1024 * 1024 + 17);
      const expected = sha(bytes);
      // The second half first, not hashed; then the first half, hashed, in random splits (owned and views).
      const half = 1024 * 1024 + 999;
      const writes: Array<Promise<void>> = [];
      let at = half;
      for (const piece of randomSplit(Buffer.from(bytes.subarray(half)))) {
        const length = piece.length;
        writes.push(hashing.write(handle.fd, [piece], at, false));
        at += length;
      }
      at = 0;
      for (const piece of randomSplit(Buffer.from(bytes.subarray(0, half)))) {
        const length = piece.length;
        writes.push(hashing.write(handle.fd, [piece], at, true));
        at += length;
        const room = hashing.whenRoom();
        if (room !== undefined) await room;
      }
      await Promise.all(writes);
      assert.deepEqual(await readFile(path.join(dir, 'file.bin')), bytes);
      await hashing.hashRange(handle.fd, half, bytes.length - half);
      assert.equal(await hashing.digest(), expected);
    } finally {
      await hashing.close();
      await handle.close();
      await rm(dir, { recursive: true, force: true });
    }
  });

  test('a failed write rejects with its system error; the thread goes on', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'hash-worker-ebadf-'));
    await writeFile(path.join(dir, 'ro.bin'), 'x');
    const hashing = new HashWorker();
    const readOnly = await open(path.join(dir, 'ro.bin'), 'r');
    try {
      await assert.rejects(hashing.write(readOnly.fd, [randomBytes(1000)], 0, true), { code: 'EBADF' });
      const bytes = randomBytes(100);
      const expected = sha(bytes);
      hashing.reset();
      hashing.update([bytes]);
      assert.equal(await hashing.digest(), expected);
    } finally {
      await hashing.close();
      await readOnly.close();
      await rm(dir, { recursive: true, force: true });
    }
  });

  test('an awaited digest keeps the process alive; an idle thread does not', async () => {
    const lib = new URL('../../libs/transfer/index.js', import.meta.url).href;
    // Nothing but the thread's reply is pending while the digest is awaited; no close() at the end.
    const script = `const { HashWorker } = await import(${JSON.stringify(lib)});
      const hashing = new HashWorker();
      hashing.update([Buffer.from('abc')]);
      console.log(await hashing.digest());`;
    const dir = await mkdtemp(path.join(tmpdir(), 'hash-worker-'));
    try {
      const file = path.join(dir, 'digest.mjs');
      await writeFile(file, script);
      const { stdout } = await promisify(execFile)(process.execPath, [file], { timeout: 10_000 });
      assert.equal(stdout.trim(), sha(Buffer.from('abc')));
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  test('a download whose hashing thread dies fails with IO_ERROR and leaves no file', async () => {
    const tmp = await mkdtemp(path.join(tmpdir(), 'hash-worker-get-'));
    const content = randomBytes(3 * 1024 * 1024);
    await writeFile(path.join(tmp, 'file.bin'), content);
    const served = await serve(await scanShare(tmp, ['file.bin']));
    try {
      const dir = path.join(tmp, 'dest');
      await assert.rejects(
        downloadFile({
          sources: [{ url: `${served.base}/files/file.bin`, peerId: 'good' }],
          sha256: sha(content),
          size: content.length,
          destPath: path.join(dir, 'file.bin'),
          hashing: { script: failingScript() },
        }),
        (err) => isP2PError(err, 'IO_ERROR') && err.details.reason === 'hash-thread',
      );
      assert.deepEqual(await readdir(dir), [], 'neither the file nor its temp file is left');
    } finally {
      await served.running.close();
      await rm(tmp, { recursive: true, force: true });
    }
  });

  test('a failed thread surfaces as IO_ERROR (hash-thread) to waiters and later calls', async () => {
    const hashing = new HashWorker({ script: failingScript(), maxQueuedBytes: 1 });
    try {
      const full = hashing.update([randomBytes(1024)]);
      assert.ok(full !== undefined);
      await assert.rejects(
        full,
        (err) => isP2PError(err, 'IO_ERROR') && err.details.reason === 'hash-thread',
      );
      assert.throws(
        () => hashing.update([randomBytes(16)]),
        (err) => isP2PError(err, 'IO_ERROR') && err.details.reason === 'hash-thread',
      );
      await assert.rejects(hashing.digest(), (err) => isP2PError(err, 'IO_ERROR'));
    } finally {
      await hashing.close();
    }
  });
});
