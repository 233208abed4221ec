import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { isP2PError, type P2PError } from '../../libs/errors/index.js';
import {
  type DownloadProgress,
  type DownloadSource,
  downloadFile,
  SegmentPlan,
} from '../../libs/transfer/index.js';
import {
  parseRangeHeader,
  rawServer,
  type Served,
  scanShare,
  sendRanges,
  sendWhole,
  serve,
  sha256,
  trickle,
  waitFor,
} from '../helpers/transfer-fixtures.js';

describe('SegmentPlan', () => {
  test('hands out consecutive segments, then nothing; complete once every byte is written and released', () => {
    const plan = new SegmentPlan({ sizeBytes: 10, segmentBytes: 4, minStealBytes: 100 });
    const a = plan.take('a');
    const b = plan.take('b');
    const c = plan.take('c');
    assert.deepEqual(
      [a, b, c].map((s) => [s?.start, s?.end]),
      [
        [0, 4],
        [4, 8],
        [8, 10],
      ],
    );
    assert.equal(plan.take('d'), undefined);
    for (const segment of [c, a, b]) {
      assert.ok(segment);
      const n = plan.claim(segment, 100);
      assert.equal(n, segment.end - segment.start);
      plan.wrote(segment, n);
      plan.release(segment);
    }
    assert.equal(plan.complete, true);
    assert.equal(plan.contiguousBytes, 10);
    assert.deepEqual(plan.contributors, ['c', 'a', 'b']);
    assert.deepEqual(
      plan.pieces.map((p) => [p.peerId, p.start, p.end]),
      [
        ['c', 8, 10],
        ['a', 0, 4],
        ['b', 4, 8],
      ],
    );
  });

  test('an unfinished segment goes back from the first unwritten byte, before any fresh one', () => {
    const plan = new SegmentPlan({ sizeBytes: 100, segmentBytes: 10, minStealBytes: 1000 });
    const a = plan.take('a');
    assert.ok(a);
    plan.wrote(a, plan.claim(a, 3));
    assert.equal(plan.contiguousBytes, 3);
    plan.release(a);
    assert.equal(plan.complete, false);
    const b = plan.take('b');
    assert.deepEqual([b?.start, b?.end], [3, 10]);
    assert.deepEqual(
      plan.pieces.map((p) => [p.peerId, p.start, p.end]),
      [['a', 0, 3]],
    );
  });

  test('an idle source takes the tail half of the largest segment in flight, never bytes already claimed', () => {
    const plan = new SegmentPlan({ sizeBytes: 1000, segmentBytes: 1000, minStealBytes: 150 });
    const slow = plan.take('slow');
    assert.ok(slow);
    assert.equal(plan.claim(slow, 200), 200); // a write in progress: not yet on disk
    const fast = plan.take('fast');
    assert.deepEqual([fast?.start, fast?.end, slow.end], [600, 1000, 600]);
    assert.equal(plan.contiguousBytes, 0);
    // 400 left to each: the first found is split; then only `fast` has enough left to be worth splitting.
    const third = plan.take('third');
    assert.deepEqual([third?.start, third?.end, slow.end], [400, 600, 400]);
    const fourth = plan.take('fourth');
    assert.deepEqual([fourth?.start, fourth?.end, fast?.end], [800, 1000, 800]);
    assert.equal(plan.take('fifth'), undefined);
    // Released short, the slow segment gives back exactly what it did not write.
    plan.wrote(slow, 200);
    plan.release(slow);
    assert.equal(plan.contiguousBytes, 200);
    const again = plan.take('fifth');
    assert.deepEqual([again?.start, again?.end], [200, 400]);
  });

  test('a source alone takes a larger fresh range; one joining it takes half of what is left over', () => {
    let now = 0;
    const plan = new SegmentPlan({ sizeBytes: 1000, segmentBytes: 10, minStealBytes: 50, now: () => now });
    const alone = plan.take('a', 400);
    assert.deepEqual([alone?.start, alone?.end], [0, 400]);
    if (alone === undefined) return;
    assert.equal(plan.claim(alone, 100), 100);
    plan.wrote(alone, 100);
    now = 10;
    // Fresh bytes go first, a segment at a time.
    const next = plan.take('b');
    assert.deepEqual([next?.start, next?.end], [400, 410]);
    const c = new SegmentPlan({ sizeBytes: 400, segmentBytes: 10, minStealBytes: 50, now: () => now });
    const only = c.take('a', 400);
    assert.ok(only !== undefined);
    c.claim(only, 100);
    // Without sharing out, a joining source takes the tail half over.
    const joined = c.take('b');
    assert.deepEqual([joined?.start, joined?.end, only.end], [250, 400, 250]);
  });

  test('shareFresh cuts a segment taken alone a few bytes past its claims; the rest goes out fresh', () => {
    const plan = new SegmentPlan({ sizeBytes: 1000, segmentBytes: 10, minStealBytes: 50 });
    const alone = plan.take('a', 1000);
    assert.ok(alone !== undefined);
    plan.claim(alone, 95);
    plan.shareFresh(10);
    assert.equal(alone.end, 105);
    const next = plan.take('b');
    assert.deepEqual([next?.start, next?.end], [105, 115]);
    // Only the segment ending where fresh bytes start is cut: not one in the middle, not twice past claims.
    plan.shareFresh(10);
    assert.deepEqual([alone.end, next?.end], [105, 115]);
  });

  test('the number of segments is bounded', () => {
    const plan = new SegmentPlan({ sizeBytes: 1_000_000, segmentBytes: 1, maxSegments: 10 });
    assert.equal(plan.segmentBytes, 100_000);
  });
});

// A timeout so that a scheduling bug fails the suite instead of hanging it.
describe('downloadFile from several sources at once', { timeout: 60_000 }, () => {
  const segmentBytes = 256 * 1024;
  // All sources at once: these tests are about what happens between them (the ramp has its own below).
  const parallelOptions = { parallelMinBytes: 1024 * 1024, segmentBytes, parallelRampMs: 0 };
  let tmp: string;
  let content: Buffer;
  let sum: string;
  let etag: string;
  let goods: Served[];
  let n = 0;
  const freshDir = async (): Promise<string> => {
    n += 1;
    return path.join(tmp, `dest-${n}`);
  };
  const goodSource = (i: number): DownloadSource => ({
    url: `${goods[i]?.base}/files/file.bin`,
    peerId: `good${i + 1}`,
  });
  const rangesSince = (before: number[]): string[][] => goods.map((g, i) => g.ranges.slice(before[i]));

  before(async () => {
    tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'transfer-parallel-'));
    content = randomBytes(3 * 1024 * 1024 + 123);
    sum = sha256(content);
    etag = `"${sum}"`;
    await fs.mkdir(path.join(tmp, 'share'));
    await fs.writeFile(path.join(tmp, 'share', 'file.bin'), content);
    const share = await scanShare(path.join(tmp, 'share'), ['file.bin']);
    goods = [await serve(share), await serve(share), await serve(share)];
  });

  after(async () => {
    await Promise.all(goods.map((g) => g.running.close()));
    await fs.rm(tmp, { recursive: true, force: true });
  });

  test('three sources: every one serves segments by Range and the assembled file verifies', async () => {
    const before = goods.map((g) => g.ranges.length);
    const destPath = path.join(await freshDir(), 'file.bin');
    const progress: DownloadProgress[] = [];
    const result = await downloadFile({
      sources: [goodSource(0), goodSource(1), goodSource(2)],
      sha256: sum,
      size: content.length,
      destPath,
      ...parallelOptions,
      onProgress: (p) => progress.push(p),
    });
    assert.deepEqual([...result.servedBy].sort(), ['good1', 'good2', 'good3']);
    assert.deepEqual(result.failures, []);
    assert.deepEqual(result.badSources, []);
    assert.deepEqual(await fs.readFile(destPath), content);
    assert.deepEqual(await fs.readdir(path.dirname(destPath)), ['file.bin']);

    const seen = rangesSince(before);
    const covered: Array<[number, number]> = [];
    for (const [i, ranges] of seen.entries()) {
      assert.ok(ranges.length > 0, `good${i + 1} was asked nothing`);
      for (const header of ranges) {
        assert.match(header, /^bytes=\d+-\d+$/);
        const range = parseRangeHeader(header, content.length);
        assert.ok(range);
        covered.push(range);
      }
    }
    // Segments, not whole-file requests: together they cover the file, each well short of it.
    covered.sort((a, b) => a[0] - b[0]);
    let reach = 0;
    for (const [start, end] of covered) {
      assert.ok(start <= reach, `gap before byte ${start}`);
      assert.ok(end - start < segmentBytes, `range ${start}-${end} is longer than a segment`);
      reach = Math.max(reach, end + 1);
    }
    assert.equal(reach, content.length);

    assert.equal(progress.at(-1)?.receivedBytes, content.length);
    assert.ok(progress.every((p, i) => i === 0 || p.receivedBytes > (progress[i - 1]?.receivedBytes ?? 0)));
    assert.ok(progress.every((p) => p.totalBytes === content.length));
  });

  test('below parallelMinBytes, or with a single peer, the download stays sequential', async () => {
    const before = goods.map((g) => g.ranges.length);
    const small = await downloadFile({
      sources: [goodSource(0), goodSource(1)],
      sha256: sum,
      size: content.length,
      destPath: path.join(await freshDir(), 'file.bin'),
      parallelMinBytes: content.length + 1,
    });
    assert.deepEqual(small.servedBy, ['good1']);
    // The same peer twice is still one peer.
    const samePeer = await downloadFile({
      sources: [goodSource(0), { ...goodSource(1), peerId: 'good1' }],
      sha256: sum,
      size: content.length,
      destPath: path.join(await freshDir(), 'file.bin'),
      ...parallelOptions,
    });
    assert.deepEqual(samePeer.servedBy, ['good1']);
    assert.deepEqual(rangesSince(before), [['', ''], [], []]);
  });

  test('a source dying mid-segment: the rest of its segment is fetched from another and the file verifies', async () => {
    // First request: part of the range, then the connection dies; later ones die before any header.
    const dying = await rawServer((req, res, count) => {
      if (count === 1) sendRanges(content, etag, { cutAfterBytes: segmentBytes / 2 })(req, res);
      else res.socket?.destroy();
    });
    const before = goods.map((g) => g.ranges.length);
    try {
      const destPath = path.join(await freshDir(), 'file.bin');
      const result = await downloadFile({
        sources: [{ url: dying.url, peerId: 'dying' }, goodSource(0), goodSource(1)],
        sha256: sum,
        size: content.length,
        destPath,
        ...parallelOptions,
      });
      assert.deepEqual(await fs.readFile(destPath), content);
      assert.deepEqual(await fs.readdir(path.dirname(destPath)), ['file.bin']);
      assert.deepEqual(result.failures[0] && [result.failures[0].peerId, result.failures[0].code], [
        'dying',
        'CONNECTION_LOST',
      ]);
      // Dropped after at most MAX_PARALLEL_SOURCE_FAILURES (3) failures.
      assert.ok(dying.ranges.length <= 3, `dying was asked ${dying.ranges.length} times`);
      assert.deepEqual(result.badSources, []);

      // Its first segment was finished by a good source, from where the dying one had got to.
      const first = parseRangeHeader(dying.ranges[0], content.length);
      assert.ok(first);
      const [start, end] = first;
      const continued = rangesSince(before)
        .flat()
        .map((h) => parseRangeHeader(h, content.length))
        .find((r) => r !== undefined && r[1] === end && r[0] >= start);
      assert.ok(continued, `nobody continued bytes ${start}-${end}`);
      // The kernel may drop part of what the dying peer wrote; it is credited exactly when bytes of it landed.
      assert.equal(result.servedBy.includes('dying'), continued[0] > start);
    } finally {
      await dying.close();
    }
  });

  test('a source serving corrupt bytes: the parallel attempt fails, the fallback proves it bad and verifies', async () => {
    const corrupt = Buffer.from(content);
    for (let i = 0; i < corrupt.length; i += 4096) corrupt[i] = (corrupt[i] ?? 0) ^ 0xff;
    const liar = await rawServer(sendRanges(corrupt, etag));
    const before = goods.map((g) => g.ranges.length);
    try {
      const dir = await freshDir();
      const destPath = path.join(dir, 'file.bin');
      const result = await downloadFile({
        sources: [goodSource(0), { url: liar.url, peerId: 'liar' }, goodSource(1)],
        sha256: sum,
        size: content.length,
        destPath,
        ...parallelOptions,
      });
      assert.deepEqual(await fs.readFile(destPath), content);
      assert.deepEqual(await fs.readdir(dir), ['file.bin']);
      assert.deepEqual(result.badSources, ['liar']);
      // Every contributor of the failed attempt is a suspect; asked alone in preference order, good1 delivers.
      assert.deepEqual(result.servedBy, ['good1']);
      assert.deepEqual(
        result.failures.map((f) => [f.peerId, f.code]),
        [
          ['good1', 'HASH_MISMATCH'],
          ['liar', 'HASH_MISMATCH'],
          ['good2', 'HASH_MISMATCH'],
        ],
      );
      // The liar only ever served segments: it is convicted by comparison with the verified file.
      assert.ok(liar.ranges.length > 0 && liar.ranges.every((h) => /^bytes=\d+-\d+$/.test(h)));
      const [seen1, seen2] = rangesSince(before);
      assert.equal(seen1?.at(-1), '', 'the fallback fetches the whole file from good1');
      assert.ok(seen2?.every((h) => h !== ''));
    } finally {
      await liar.close();
    }
  });

  test('a failed parallel attempt with a single contributor proves it bad at once', async () => {
    const corrupt = Buffer.from(content);
    corrupt[corrupt.length - 1] = (corrupt[corrupt.length - 1] ?? 0) ^ 0xff;
    const liar = await rawServer(sendRanges(corrupt, etag));
    // Serves the whole file, but cannot take part in the parallel attempt.
    const whole = await rawServer(sendWhole(content, etag));
    try {
      const dir = await freshDir();
      const result = await downloadFile({
        sources: [
          { url: liar.url, peerId: 'liar' },
          { url: whole.url, peerId: 'whole' },
        ],
        sha256: sum,
        size: content.length,
        destPath: path.join(dir, 'file.bin'),
        ...parallelOptions,
      });
      assert.deepEqual(await fs.readFile(path.join(dir, 'file.bin')), content);
      assert.deepEqual(await fs.readdir(dir), ['file.bin']);
      assert.deepEqual(result.badSources, ['liar']);
      assert.deepEqual(result.servedBy, ['whole']);
      assert.deepEqual(
        result.failures.map((f) => [f.peerId, f.code]),
        [
          ['whole', 'BAD_RANGE'],
          ['liar', 'HASH_MISMATCH'],
        ],
      );
      // Proven by the parallel attempt alone: never asked again.
      assert.ok(liar.ranges.every((h) => h !== ''));
    } finally {
      await liar.close();
      await whole.close();
    }
  });

  test('every source bad → HASH_MISMATCH naming them all, nothing left in the directory', async () => {
    const corrupt = Buffer.from(content);
    corrupt[0] = (corrupt[0] ?? 0) ^ 0xff;
    const liar1 = await rawServer(sendRanges(corrupt, etag));
    const liar2 = await rawServer(sendRanges(corrupt, etag));
    try {
      const dir = await freshDir();
      await fs.mkdir(dir);
      const err = await downloadFile({
        sources: [
          { url: liar1.url, peerId: 'liar1' },
          { url: liar2.url, peerId: 'liar2' },
        ],
        sha256: sum,
        size: content.length,
        destPath: path.join(dir, 'file.bin'),
        ...parallelOptions,
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

  test('a source that ignores Range (200) is dropped without a byte of it written', async () => {
    const whole = await rawServer(sendWhole(Buffer.alloc(content.length, 0x55), etag));
    try {
      const destPath = path.join(await freshDir(), 'file.bin');
      const result = await downloadFile({
        sources: [{ url: whole.url, peerId: 'whole' }, goodSource(0), goodSource(1)],
        sha256: sum,
        size: content.length,
        destPath,
        ...parallelOptions,
      });
      assert.deepEqual(await fs.readFile(destPath), content);
      assert.deepEqual(
        result.failures.map((f) => [f.peerId, f.code]),
        [['whole', 'BAD_RANGE']],
      );
      assert.equal(whole.ranges.length, 1);
      assert.match(whole.ranges[0] ?? '', /^bytes=\d+-\d+$/);
      assert.deepEqual([...result.servedBy].sort(), ['good1', 'good2']);
      assert.deepEqual(result.badSources, []);
    } finally {
      await whole.close();
    }
  });

  test('a busy (503) source does not fail the download and is asked again after Retry-After', async () => {
    const busyOnce = await rawServer((req, res, count) => {
      if (count === 1) res.writeHead(503, { 'Retry-After': '0' }).end();
      else sendRanges(content, etag, { chunkDelayMs: 1 })(req, res);
    });
    const alwaysBusy = await rawServer((_req, res) => {
      res.writeHead(503, { 'Retry-After': '0' }).end();
    });
    try {
      const destPath = path.join(await freshDir(), 'file.bin');
      const result = await downloadFile({
        sources: [
          { url: busyOnce.url, peerId: 'busyOnce' },
          { url: alwaysBusy.url, peerId: 'alwaysBusy' },
          goodSource(0),
        ],
        sha256: sum,
        size: content.length,
        destPath,
        ...parallelOptions,
      });
      assert.deepEqual(await fs.readFile(destPath), content);
      assert.ok(busyOnce.ranges.length >= 2, 'busyOnce was not asked again');
      assert.ok(result.servedBy.includes('busyOnce'));
      assert.ok(!result.servedBy.includes('alwaysBusy'));
      const codes = result.failures.map((f) => [f.peerId, f.code]);
      assert.deepEqual(codes[0], ['busyOnce', 'BUSY']);
      assert.ok(codes.every(([, code]) => code === 'BUSY'));
      assert.ok(codes.filter(([peer]) => peer === 'alwaysBusy').length <= 3);
    } finally {
      await busyOnce.close();
      await alwaysBusy.close();
    }
  });

  /**
   * A source whose first request gets 16 KiB of its range, then the rest only once `until()` holds (or
   * `waitFor`'s deadline passed, and the test's assertions fail); later requests are served whole.
   */
  const holdingServer = (until: () => boolean, what: string) =>
    rawServer((req, res, count) => {
      const range = parseRangeHeader(req.headers.range, content.length);
      if (count > 1 || range === undefined) {
        sendRanges(content, etag)(req, res);
        return;
      }
      const [start, end] = range;
      res.writeHead(206, {
        'Content-Length': end - start + 1,
        'Content-Range': `bytes ${start}-${end}/${content.length}`,
        ETag: etag,
      });
      res.write(content.subarray(start, start + 16 * 1024));
      waitFor(until, what)
        .catch(() => {})
        .then(() => res.end(content.subarray(start + 16 * 1024, end + 1)));
    });
  test('an idle source takes over the tail of a slow source segment', async () => {
    const before = goods.map((g) => g.ranges.length);
    const stolenTail = (): [number, number] | undefined =>
      goods[0]?.ranges
        .slice(before[0])
        .map((h) => parseRangeHeader(h, content.length))
        .find((r) => r !== undefined && r[0] > 0 && r[1] === segmentBytes - 1);
    // The slow source sends a little of its first segment, then holds the rest back until the good one has
    // taken over its tail (or 5 s have passed, and the assertions below fail).
    const slow = await holdingServer(() => stolenTail() !== undefined, 'the tail to be taken over');
    try {
      const destPath = path.join(await freshDir(), 'file.bin');
      const result = await downloadFile({
        sources: [{ url: slow.url, peerId: 'slow' }, goodSource(0)],
        sha256: sum,
        size: content.length,
        destPath,
        ...parallelOptions,
      });
      assert.deepEqual(await fs.readFile(destPath), content);
      assert.deepEqual(slow.ranges[0], `bytes=0-${segmentBytes - 1}`);
      assert.ok(stolenTail(), JSON.stringify(goods[0]?.ranges.slice(before[0])));
      assert.deepEqual([...result.servedBy].sort(), ['good1', 'slow']);
      assert.deepEqual(result.failures, []);
    } finally {
      await slow.close();
    }
  });

  test('with a ramp, a source alone asks for the file in one range, and serves it all while no other joins', async () => {
    const before = goods.map((g) => g.ranges.length);
    const result = await downloadFile({
      sources: [goodSource(0), goodSource(1)],
      sha256: sum,
      size: content.length,
      destPath: path.join(await freshDir(), 'file.bin'),
      ...parallelOptions,
      // Longer than the download: the second source never gets its turn.
      parallelRampMs: 600_000,
    });
    assert.deepEqual(result.servedBy, ['good1']);
    assert.deepEqual(rangesSince(before), [[`bytes=0-${content.length - 1}`], [], []]);
  });

  test('with a ramp, a source joins one that leaves this machine idle; the rest is shared out in segments', async () => {
    const before = goods.map((g) => g.ranges.length);
    const tookOver = (): boolean => goods[0]?.ranges.length !== before[0];
    // The slow source sends a little, then holds the rest back until another source has asked for a range.
    const slow = await holdingServer(tookOver, 'another source to join');
    try {
      const destPath = path.join(await freshDir(), 'file.bin');
      const result = await downloadFile({
        sources: [{ url: slow.url, peerId: 'slow' }, goodSource(0)],
        sha256: sum,
        size: content.length,
        destPath,
        ...parallelOptions,
        parallelRampMs: 50,
      });
      assert.deepEqual(await fs.readFile(destPath), content);
      assert.deepEqual(slow.ranges[0], `bytes=0-${content.length - 1}`, 'alone, the whole file at once');
      // The slow source's range was cut a segment past what it had sent; the rest went out in segments.
      const joined = parseRangeHeader(goods[0]?.ranges[before[0] ?? 0], content.length);
      assert.deepEqual(joined, [16 * 1024 + segmentBytes, 16 * 1024 + 2 * segmentBytes - 1]);
      assert.deepEqual([...result.servedBy].sort(), ['good1', 'slow']);
    } finally {
      await slow.close();
    }
  });

  test('trickling sources that join before and after the honest one hold nothing up (no rate window waited out)', async () => {
    const big = randomBytes(8 * 1024 * 1024 + 5);
    const bigSum = sha256(big);
    // The orders in which a trickler that joined after the honest source raced a segment that then failed:
    // the race went on, unstealable, until the trickler's own 10 s rate window dropped it.
    for (const order of [
      ['t1', 't3', 'honest', 't2'],
      ['t2', 'honest', 't3', 't1'],
      ['t3', 't2', 'honest', 't1'],
    ]) {
      const servers = new Map<string, Awaited<ReturnType<typeof rawServer>>>();
      for (const peerId of order)
        servers.set(
          peerId,
          await rawServer((peerId === 'honest' ? sendRanges : trickle)(big, `"${bigSum}"`)),
        );
      try {
        const started = Date.now();
        const result = await downloadFile({
          sources: order.map((peerId) => ({ url: servers.get(peerId)!.url, peerId })),
          sha256: bigSum,
          size: big.length,
          destPath: path.join(await freshDir(), 'big.bin'),
        });
        const elapsedMs = Date.now() - started;
        assert.ok(result.servedBy.includes('honest'));
        assert.ok(elapsedMs < 5000, `${order.join(',')}: ${elapsedMs} ms`);
      } finally {
        for (const server of servers.values()) await server.close();
      }
    }
  });

  test('aborting mid-way removes the temp file and rejects with the abort reason', async () => {
    const stalling1 = await rawServer(sendRanges(content, etag, { stallAfterBytes: 64 * 1024 }));
    const stalling2 = await rawServer(sendRanges(content, etag, { stallAfterBytes: 64 * 1024 }));
    try {
      const dir = await freshDir();
      const controller = new AbortController();
      const pending = downloadFile({
        sources: [
          { url: stalling1.url, peerId: 's1' },
          { url: stalling2.url, peerId: 's2' },
        ],
        sha256: sum,
        size: content.length,
        destPath: path.join(dir, 'file.bin'),
        signal: controller.signal,
        ...parallelOptions,
        // Progress comes once the received bytes are written: here when the stalled sources time out.
        idleTimeoutMs: 1000,
        onProgress: () => controller.abort(),
      });
      await assert.rejects(pending, (err: Error) => err.name === 'AbortError');
      assert.deepEqual(await fs.readdir(dir), []);
    } finally {
      await stalling1.close();
      await stalling2.close();
    }
  });

  test('when no source can serve ranges, the sequential path downloads the file', async () => {
    const whole1 = await rawServer(sendWhole(content, etag));
    const whole2 = await rawServer(sendWhole(content, etag));
    try {
      const destPath = path.join(await freshDir(), 'file.bin');
      const result = await downloadFile({
        sources: [
          { url: whole1.url, peerId: 'whole1' },
          { url: whole2.url, peerId: 'whole2' },
        ],
        sha256: sum,
        size: content.length,
        destPath,
        ...parallelOptions,
      });
      assert.deepEqual(await fs.readFile(destPath), content);
      assert.deepEqual(result.servedBy, ['whole1']);
      assert.equal(whole1.ranges.at(-1), '');
      assert.deepEqual(
        result.failures.map((f) => [f.peerId, f.code]),
        [
          ['whole1', 'BAD_RANGE'],
          ['whole2', 'BAD_RANGE'],
        ],
      );
    } finally {
      await whole1.close();
      await whole2.close();
    }
  });
});
