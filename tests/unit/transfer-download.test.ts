import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { isP2PError, type P2PError } from '../../libs/errors/index.js';
import { type DownloadSource, downloadFile } from '../../libs/transfer/index.js';
import {
  closedPortUrl,
  progressOf,
  rawServer,
  type Served,
  scanShare,
  sendThenDie,
  sendWhole,
  serve,
  sha256,
} from '../helpers/transfer-fixtures.js';

/** The tests below are about the one-source-at-a-time path, also taken when parallel downloads are off. */
const SEQUENTIAL = { maxParallelSources: 1 } as const;

describe('downloadFile', () => {
  let tmp: string;
  let content: Buffer;
  let sum: string;
  let etag: string;
  let good: Served;
  let goodUrl: string;
  let corrupt: Buffer;
  let n = 0;
  /** A fresh, not yet existing destination directory. */
  const freshDir = async (): Promise<string> => {
    n += 1;
    return path.join(tmp, `dest-${n}`);
  };

  before(async () => {
    tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'transfer-download-'));
    content = randomBytes(3 * 1024 * 1024 + 123);
    sum = sha256(content);
    etag = `"${sum}"`;
    corrupt = Buffer.from(content);
    corrupt.writeUInt8(corrupt.readUInt8(corrupt.length >> 1) ^ 0xff, corrupt.length >> 1);
    await fs.mkdir(path.join(tmp, 'share'));
    await fs.writeFile(path.join(tmp, 'share', 'file.bin'), content);
    good = await serve(await scanShare(path.join(tmp, 'share'), ['file.bin']));
    goodUrl = `${good.base}/files/file.bin`;
  });

  after(async () => {
    await good.running.close();
    await fs.rm(tmp, { recursive: true, force: true });
  });

  test('happy path: verified file at destPath, parent created, no temp left, progress reported', async () => {
    const dir = await freshDir();
    const destPath = path.join(dir, 'nested', 'file.bin');
    const progress: number[] = [];
    const result = await downloadFile({
      ...SEQUENTIAL,
      sources: [{ url: goodUrl, peerId: 'good' }],
      sha256: sum,
      size: content.length,
      destPath,
      onProgress: (p) => {
        assert.equal(p.totalBytes, content.length);
        assert.equal(p.peerId, 'good');
        progress.push(p.receivedBytes);
      },
    });
    assert.deepEqual(result, {
      path: destPath,
      sha256: sum,
      size: content.length,
      servedBy: ['good'],
      alreadyPresent: false,
      failures: [],
      badSources: [],
    });
    assert.deepEqual(await fs.readFile(destPath), content);
    assert.deepEqual(await fs.readdir(path.dirname(destPath)), ['file.bin']);
    assert.equal(progress.at(-1), content.length);
    assert.ok(progress.every((v, i) => i === 0 || v > (progress[i - 1] ?? 0)));
  });

  test('a new temp file is never truncated (on ext4 its close would then write the whole file back)', async () => {
    // FileHandle's class is not exported: its prototype is reached through an open handle.
    const probe = await fs.open(path.join(tmp, 'share', 'file.bin'), 'r');
    const proto = Object.getPrototypeOf(probe) as { truncate(this: unknown, len?: number): Promise<void> };
    await probe.close();
    const original = proto.truncate;
    const lengths: Array<number | undefined> = [];
    proto.truncate = function (this: unknown, len?: number): Promise<void> {
      lengths.push(len);
      return original.call(this, len);
    };
    try {
      const destPath = path.join(await freshDir(), 'file.bin');
      await downloadFile({
        ...SEQUENTIAL,
        sources: [{ url: goodUrl, peerId: 'good' }],
        sha256: sum,
        size: content.length,
        destPath,
      });
      assert.deepEqual(await fs.readFile(destPath), content);
    } finally {
      proto.truncate = original;
    }
    assert.deepEqual(lengths, []);
  });

  test('resumes on the second source with Range from the byte reached when the first dies mid-body', async () => {
    const half = Math.floor(content.length / 2);
    const dying = await rawServer(sendThenDie(content, half, etag));
    const before = good.ranges.length;
    try {
      const destPath = path.join(await freshDir(), 'file.bin');
      const reached = progressOf('dying');
      const result = await downloadFile({
        ...SEQUENTIAL,
        sources: [
          { url: dying.url, peerId: 'dying' },
          { url: goodUrl, peerId: 'good' },
        ],
        sha256: sum,
        size: content.length,
        destPath,
        onProgress: reached.onProgress,
      });
      // The kernel may drop part of what the dying peer wrote; what counts is the byte the download reached.
      assert.ok(reached.bytes > 0 && reached.bytes <= half, `reached ${reached.bytes}`);
      assert.deepEqual(good.ranges.slice(before), [`bytes=${reached.bytes}-`]);
      assert.deepEqual(result.servedBy, ['dying', 'good']);
      assert.deepEqual(result.badSources, []);
      assert.deepEqual(
        result.failures.map((f) => [f.peerId, f.code]),
        [['dying', 'CONNECTION_LOST']],
      );
      assert.deepEqual(await fs.readFile(destPath), content);
      assert.deepEqual(await fs.readdir(path.dirname(destPath)), ['file.bin']);
    } finally {
      await dying.close();
    }
  });

  test('a source that goes silent mid-body hits the idle timeout and the next continues', async () => {
    const third = Math.floor(content.length / 3);
    // A stalled peer keeps its connection open, so everything it wrote does arrive.
    const stalling = await rawServer((_req, res) => {
      res.writeHead(200, { 'Content-Length': content.length, ETag: etag });
      res.write(content.subarray(0, third));
    });
    const before = good.ranges.length;
    try {
      const destPath = path.join(await freshDir(), 'file.bin');
      const result = await downloadFile({
        ...SEQUENTIAL,
        sources: [
          { url: stalling.url, peerId: 'stalling' },
          { url: goodUrl, peerId: 'good' },
        ],
        sha256: sum,
        size: content.length,
        destPath,
        idleTimeoutMs: 300,
      });
      assert.deepEqual(good.ranges.slice(before), [`bytes=${third}-`]);
      assert.deepEqual(
        result.failures.map((f) => f.code),
        ['IDLE_TIMEOUT'],
      );
      assert.deepEqual(result.servedBy, ['stalling', 'good']);
      assert.deepEqual(await fs.readFile(destPath), content);
    } finally {
      await stalling.close();
    }
  });

  test('a source answering a resume with the whole file (200) starts the attempt over from 0', async () => {
    const half = Math.floor(content.length / 2);
    const dying = await rawServer(sendThenDie(content, half, etag));
    const ignoresRange = await rawServer(sendWhole(content, etag));
    try {
      const destPath = path.join(await freshDir(), 'file.bin');
      const reached = progressOf('dying');
      const result = await downloadFile({
        ...SEQUENTIAL,
        sources: [
          { url: dying.url, peerId: 'dying' },
          { url: ignoresRange.url, peerId: 'whole' },
        ],
        sha256: sum,
        size: content.length,
        destPath,
        onProgress: reached.onProgress,
      });
      assert.ok(reached.bytes > 0);
      assert.deepEqual(ignoresRange.ranges, [`bytes=${reached.bytes}-`]);
      assert.deepEqual(result.servedBy, ['whole']);
      assert.deepEqual(await fs.readFile(destPath), content);
    } finally {
      await dying.close();
      await ignoresRange.close();
    }
  });

  test('a source serving corrupted bytes is reported in badSources and the good source completes', async () => {
    const liar = await rawServer(sendWhole(corrupt, etag));
    const before = good.ranges.length;
    try {
      const destPath = path.join(await freshDir(), 'file.bin');
      const result = await downloadFile({
        ...SEQUENTIAL,
        sources: [
          { url: liar.url, peerId: 'liar' },
          { url: goodUrl, peerId: 'good' },
        ],
        sha256: sum,
        size: content.length,
        destPath,
      });
      assert.deepEqual(result.badSources, ['liar']);
      assert.deepEqual(result.servedBy, ['good']);
      assert.deepEqual(
        result.failures.map((f) => [f.peerId, f.code]),
        [['liar', 'HASH_MISMATCH']],
      );
      // The retry started over from byte 0 on the good source.
      assert.deepEqual(good.ranges.slice(before), ['']);
      assert.deepEqual(await fs.readFile(destPath), content);
      assert.deepEqual(await fs.readdir(path.dirname(destPath)), ['file.bin']);
    } finally {
      await liar.close();
    }
  });

  test('when bad bytes came from two peers, each is asked alone: the liar is proven, the good one delivers', async () => {
    const half = Math.floor(content.length / 2);
    const badHead = Buffer.from(content);
    badHead[0] = (content[0] ?? 0) ^ 0xff;
    // First request: a corrupted first half, then the connection dies; later requests: the whole corrupt file.
    const liar = await rawServer((req, res, n) =>
      n === 1 ? sendThenDie(badHead, half, etag)(req, res) : sendWhole(badHead, etag)(req, res),
    );
    const before = good.ranges.length;
    try {
      const destPath = path.join(await freshDir(), 'file.bin');
      const reached = progressOf('liar');
      const result = await downloadFile({
        ...SEQUENTIAL,
        sources: [
          { url: liar.url, peerId: 'liar' },
          { url: goodUrl, peerId: 'good' },
        ],
        sha256: sum,
        size: content.length,
        destPath,
        onProgress: reached.onProgress,
      });
      // Attempt 1: liar then good from where the liar broke off; then each alone: liar (proven bad), good.
      assert.ok(reached.bytes > 0);
      assert.deepEqual(good.ranges.slice(before), [`bytes=${reached.bytes}-`, '']);
      assert.deepEqual(liar.ranges, ['', '']);
      assert.deepEqual(result.badSources, ['liar']);
      assert.deepEqual(result.servedBy, ['good']);
      assert.deepEqual(await fs.readFile(destPath), content);
    } finally {
      await liar.close();
    }
  });

  test('all sources bad → HASH_MISMATCH, nothing at destPath, no temp file left', async () => {
    const liar1 = await rawServer(sendWhole(corrupt, etag));
    const liar2 = await rawServer(sendWhole(corrupt));
    try {
      const dir = await freshDir();
      await fs.mkdir(dir);
      const destPath = path.join(dir, 'file.bin');
      const err = await downloadFile({
        ...SEQUENTIAL,
        sources: [
          { url: liar1.url, peerId: 'liar1' },
          { url: liar2.url, peerId: 'liar2' },
        ],
        sha256: sum,
        size: content.length,
        destPath,
      }).then(
        () => assert.fail('should have failed'),
        (e: unknown) => e as P2PError,
      );
      assert.ok(isP2PError(err, 'HASH_MISMATCH'), String(err));
      assert.deepEqual(err.details.badSources, ['liar1', 'liar2']);
      assert.deepEqual(await fs.readdir(dir), []);
    } finally {
      await liar1.close();
      await liar2.close();
    }
  });

  test('unreachable sources → DOWNLOAD_FAILED with every failure listed', async () => {
    const dir = await freshDir();
    const sources: DownloadSource[] = [
      { url: await closedPortUrl(), peerId: 'gone1' },
      { url: await closedPortUrl(), peerId: 'gone2' },
    ];
    const err = await downloadFile({
      ...SEQUENTIAL,
      sources,
      sha256: sum,
      size: content.length,
      destPath: path.join(dir, 'f'),
    }).then(
      () => assert.fail('should have failed'),
      (e: unknown) => e as P2PError,
    );
    assert.ok(isP2PError(err, 'DOWNLOAD_FAILED'), String(err));
    const failures = err.details.failures as Array<{ peerId: string; code: string }>;
    assert.deepEqual(
      failures.map((f) => [f.peerId, f.code]),
      [
        ['gone1', 'CONNECT_FAILED'],
        ['gone2', 'CONNECT_FAILED'],
      ],
    );
    assert.deepEqual(await fs.readdir(dir), []);
  });

  test('a source that never answers hits the connect timeout', async () => {
    const silent = await rawServer(() => {});
    try {
      const dir = await freshDir();
      const err = await downloadFile({
        ...SEQUENTIAL,
        sources: [{ url: silent.url, peerId: 'silent' }],
        sha256: sum,
        size: content.length,
        destPath: path.join(dir, 'f'),
        connectTimeoutMs: 200,
      }).then(
        () => assert.fail('should have failed'),
        (e: unknown) => e as P2PError,
      );
      assert.ok(isP2PError(err, 'DOWNLOAD_FAILED'));
      assert.equal((err.details.failures as Array<{ code: string }>)[0]?.code, 'CONNECT_TIMEOUT');
    } finally {
      await silent.close();
    }
  });

  test('a source whose ETag names other content is skipped; 404 and wrong size are failures too', async () => {
    const otherTag = await rawServer(sendWhole(content, `"${'1'.repeat(64)}"`));
    const missing = await rawServer((_req, res) => {
      res.writeHead(404).end();
    });
    const wrongSize = await rawServer(sendWhole(content.subarray(1), etag));
    try {
      const destPath = path.join(await freshDir(), 'file.bin');
      const result = await downloadFile({
        ...SEQUENTIAL,
        sources: [
          { url: otherTag.url, peerId: 'other' },
          { url: missing.url, peerId: 'missing' },
          { url: wrongSize.url, peerId: 'short' },
          { url: goodUrl, peerId: 'good' },
        ],
        sha256: sum,
        size: content.length,
        destPath,
      });
      assert.deepEqual(
        result.failures.map((f) => [f.peerId, f.code]),
        [
          ['other', 'ETAG_MISMATCH'],
          ['missing', 'HTTP_STATUS'],
          ['short', 'SIZE_MISMATCH'],
        ],
      );
      assert.deepEqual(result.badSources, []);
      assert.deepEqual(result.servedBy, ['good']);
    } finally {
      await otherTag.close();
      await missing.close();
      await wrongSize.close();
    }
  });

  test('a busy (503) source is retried once after Retry-After when the others are exhausted', async () => {
    const busyOnce = await rawServer((req, res, n) => {
      if (n === 1) {
        res.writeHead(503, { 'Retry-After': '0' }).end();
        return;
      }
      sendWhole(content, etag)(req, res);
    });
    try {
      const destPath = path.join(await freshDir(), 'file.bin');
      const result = await downloadFile({
        ...SEQUENTIAL,
        sources: [
          { url: busyOnce.url, peerId: 'busy' },
          { url: await closedPortUrl(), peerId: 'gone' },
        ],
        sha256: sum,
        size: content.length,
        destPath,
      });
      assert.deepEqual(
        result.failures.map((f) => [f.peerId, f.code]),
        [
          ['busy', 'BUSY'],
          ['gone', 'CONNECT_FAILED'],
        ],
      );
      assert.deepEqual(result.servedBy, ['busy']);
      assert.deepEqual(await fs.readFile(destPath), content);
    } finally {
      await busyOnce.close();
    }
  });

  test('aborting removes the temp file and rejects with the abort reason', async () => {
    const stalling = await rawServer((_req, res) => {
      res.writeHead(200, { 'Content-Length': content.length, ETag: etag });
      res.write(content.subarray(0, 1024 * 1024));
    });
    try {
      const dir = await freshDir();
      const controller = new AbortController();
      const pending = downloadFile({
        ...SEQUENTIAL,
        sources: [{ url: stalling.url, peerId: 'stalling' }],
        sha256: sum,
        size: content.length,
        destPath: path.join(dir, 'file.bin'),
        signal: controller.signal,
        onProgress: () => controller.abort(),
      });
      await assert.rejects(pending, (err: Error) => err.name === 'AbortError');
      assert.deepEqual(await fs.readdir(dir), []);
    } finally {
      await stalling.close();
    }
  });

  test('an existing destination: same content is returned as is, other content is IO_ERROR unless overwrite', async () => {
    const dir = await freshDir();
    await fs.mkdir(dir);
    const destPath = path.join(dir, 'file.bin');
    const unreachable = [{ url: await closedPortUrl(), peerId: 'gone' }];

    await fs.writeFile(destPath, content);
    const same = await downloadFile({ sources: unreachable, sha256: sum, size: content.length, destPath });
    assert.deepEqual(same.servedBy, []);

    await fs.writeFile(destPath, 'something else');
    await assert.rejects(
      downloadFile({
        ...SEQUENTIAL,
        sources: [{ url: goodUrl, peerId: 'good' }],
        sha256: sum,
        size: content.length,
        destPath,
      }),
      (err: unknown) => isP2PError(err, 'IO_ERROR'),
    );
    assert.equal(await fs.readFile(destPath, 'utf8'), 'something else');

    const replaced = await downloadFile({
      ...SEQUENTIAL,
      sources: [{ url: goodUrl, peerId: 'good' }],
      sha256: sum,
      size: content.length,
      destPath,
      overwrite: true,
    });
    assert.deepEqual(replaced.servedBy, ['good']);
    assert.deepEqual(await fs.readFile(destPath), content);
    assert.deepEqual(await fs.readdir(dir), ['file.bin']);
  });

  test('no sources → NO_SOURCES; a malformed sha256 → USAGE', async () => {
    const destPath = path.join(await freshDir(), 'f');
    await assert.rejects(downloadFile({ sources: [], sha256: sum, size: 1, destPath }), (err: unknown) =>
      isP2PError(err, 'NO_SOURCES'),
    );
    await assert.rejects(
      downloadFile({ sources: [{ url: goodUrl, peerId: 'good' }], sha256: 'XYZ', size: 1, destPath }),
      (err: unknown) => isP2PError(err, 'USAGE'),
    );
  });

  test('a 0-byte file downloads', async () => {
    const dir = await fs.mkdtemp(path.join(tmp, 'empty-share-'));
    await fs.writeFile(path.join(dir, 'empty.txt'), '');
    const s = await serve(await scanShare(dir, ['empty.txt']));
    try {
      const destPath = path.join(await freshDir(), 'empty.txt');
      const result = await downloadFile({
        ...SEQUENTIAL,
        sources: [{ url: `${s.base}/files/empty.txt`, peerId: 'p' }],
        sha256: sha256(''),
        size: 0,
        destPath,
      });
      assert.deepEqual(result.servedBy, ['p']);
      assert.equal((await fs.stat(destPath)).size, 0);
    } finally {
      await s.running.close();
    }
  });
});

// ------------------------------------------------------------------------------------- parallel downloads
