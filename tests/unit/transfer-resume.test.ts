import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { isP2PError } from '../../libs/errors/index.js';
import {
  type DownloadOptions,
  downloadFile,
  type ResumeEvent,
  SegmentPlan,
} from '../../libs/transfer/index.js';
import { parseRangeHeader, rawServer, sendRanges, sha256 } from '../helpers/transfer-fixtures.js';

const KEPT = /^\.p2p-[0-9a-f]{16}\.(part|resume)$/;

test('a resumed SegmentPlan hands out only what follows its kept prefix, which counts as on disk', () => {
  const plan = new SegmentPlan({ sizeBytes: 1000, segmentBytes: 400, startBytes: 300 });
  assert.equal(plan.contiguousBytes, 300);
  assert.equal(plan.writtenBytes, 300);
  const first = plan.take('a');
  const second = plan.take('b');
  assert.deepEqual([first?.start, first?.end, second?.start, second?.end], [300, 700, 700, 1000]);
  for (const segment of [first, second]) {
    if (segment === undefined) continue;
    plan.claim(segment, segment.end - segment.start);
    plan.wrote(segment, segment.end - segment.start);
    plan.release(segment);
  }
  assert.equal(plan.complete, true);
  assert.throws(() => new SegmentPlan({ sizeBytes: 10, segmentBytes: 4, startBytes: 11 }), RangeError);
});

describe('downloadFile with resume', () => {
  let tmp: string;
  let content: Buffer;
  let sum: string;
  let etag: string;
  let n = 0;
  const freshDest = async (): Promise<string> => {
    n += 1;
    const dir = path.join(tmp, `dest-${n}`);
    await fs.mkdir(dir);
    return path.join(dir, 'file.bin');
  };
  const base = (destPath: string, url: string, events: ResumeEvent[]): DownloadOptions => ({
    sources: [{ url, peerId: 'a' }],
    sha256: sum,
    size: content.length,
    destPath,
    resume: true,
    maxParallelSources: 1,
    onResume: (event) => events.push(event),
  });
  /** The first byte each request asked for (0 without Range). */
  const firstBytes = (ranges: string[]): number[] =>
    ranges.map((r) => parseRangeHeader(r, content.length)?.[0] ?? 0);

  before(async () => {
    tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'transfer-resume-'));
    content = randomBytes(2 * 1024 * 1024 + 77);
    sum = sha256(content);
    etag = `"${sum}"`;
  });

  after(async () => {
    await fs.rm(tmp, { recursive: true, force: true });
  });

  test('a download the sources could not finish keeps its prefix; the next resumes from it and verifies', async () => {
    const destPath = await freshDest();
    const cut = 1024 * 1024 + 5;
    const dying = await rawServer(sendRanges(content, etag, { cutAfterBytes: cut }));
    const good = await rawServer(sendRanges(content, etag));
    try {
      const events: ResumeEvent[] = [];
      await assert.rejects(downloadFile(base(destPath, dying.url, events)), (err: unknown) =>
        isP2PError(err, 'DOWNLOAD_FAILED'),
      );
      assert.deepEqual(
        events.map((e) => [e.kind, e.bytes]),
        [['kept', cut]],
      );
      const kept = await fs.readdir(path.dirname(destPath));
      assert.equal(kept.length, 2);
      assert.ok(
        kept.every((name) => KEPT.test(name)),
        kept.join(),
      );

      const again: ResumeEvent[] = [];
      const result = await downloadFile(base(destPath, good.url, again));
      assert.deepEqual(
        again.map((e) => [e.kind, e.bytes]),
        [['resumed', cut]],
      );
      assert.deepEqual(firstBytes(good.ranges), [cut], 'only the rest is asked for');
      assert.deepEqual(result.servedBy, ['a']);
      assert.deepEqual(await fs.readFile(destPath), content);
      assert.deepEqual(await fs.readdir(path.dirname(destPath)), ['file.bin'], 'success leaves nothing else');
    } finally {
      await dying.close();
      await good.close();
    }
  });

  test('an aborted download keeps its prefix; a download of another file to that name removes it', async () => {
    const destPath = await freshDest();
    const stalling = await rawServer(sendRanges(content, etag, { stallAfterBytes: 600_000 }));
    const other = randomBytes(1000);
    const otherServer = await rawServer(sendRanges(other, `"${sha256(other)}"`));
    try {
      const events: ResumeEvent[] = [];
      const abort = new AbortController();
      const running = downloadFile({
        ...base(destPath, stalling.url, events),
        signal: abort.signal,
        onProgress: (p) => {
          // Written in batches: the first ones are on disk well before the server stalls.
          if (p.receivedBytes >= 400_000) abort.abort(new Error('stop'));
        },
      });
      await assert.rejects(running, /stop/);
      assert.equal(events.length, 1);
      assert.equal(events[0]?.kind, 'kept');
      const keptBytes = events[0]?.bytes ?? 0;
      assert.ok(keptBytes >= 400_000 && keptBytes <= 600_000, String(keptBytes));
      assert.equal((await fs.stat(events[0]?.path ?? '')).size, keptBytes);

      const otherEvents: ResumeEvent[] = [];
      await downloadFile({
        ...base(destPath, otherServer.url, otherEvents),
        sha256: sha256(other),
        size: other.length,
      });
      assert.deepEqual(otherEvents, [], 'nothing resumed from the prefix of another file');
      assert.deepEqual(await fs.readdir(path.dirname(destPath)), ['file.bin']);
      assert.deepEqual(await fs.readFile(destPath), other);
    } finally {
      await stalling.close();
      await otherServer.close();
    }
  });

  test('a kept prefix holding wrong bytes: the whole file is fetched again and no source is blamed', async () => {
    const destPath = await freshDest();
    const cut = 700_000;
    const bad = Buffer.from(content);
    bad[10] = (bad[10] ?? 0) ^ 0xff;
    const badPrefix = await rawServer(sendRanges(bad, etag, { cutAfterBytes: cut }));
    const good = await rawServer(sendRanges(content, etag));
    try {
      await assert.rejects(downloadFile(base(destPath, badPrefix.url, [])));
      const again: ResumeEvent[] = [];
      const result = await downloadFile(base(destPath, good.url, again));
      assert.equal(again[0]?.kind, 'resumed');
      assert.deepEqual(firstBytes(good.ranges), [cut, 0], 'the rest, then the whole file');
      assert.deepEqual(result.badSources, []);
      assert.deepEqual(await fs.readFile(destPath), content);
      assert.deepEqual(await fs.readdir(path.dirname(destPath)), ['file.bin']);
    } finally {
      await badPrefix.close();
      await good.close();
    }
  });

  test('several sources resume too: no segment below the kept prefix is asked for', async () => {
    const destPath = await freshDest();
    const cut = 1_500_000;
    const dying = await rawServer(sendRanges(content, etag, { cutAfterBytes: cut }));
    const one = await rawServer(sendRanges(content, etag));
    const two = await rawServer(sendRanges(content, etag));
    try {
      await assert.rejects(downloadFile(base(destPath, dying.url, [])));
      const again: ResumeEvent[] = [];
      const result = await downloadFile({
        ...base(destPath, one.url, again),
        sources: [
          { url: one.url, peerId: 'one' },
          { url: two.url, peerId: 'two' },
        ],
        maxParallelSources: 2,
        segmentBytes: 128 * 1024,
      });
      assert.deepEqual(
        again.map((e) => [e.kind, e.bytes]),
        [['resumed', cut]],
      );
      const asked = firstBytes([...one.ranges, ...two.ranges]);
      assert.ok(asked.length > 0 && asked.every((first) => first >= cut), asked.join());
      assert.ok(result.servedBy.length >= 1);
      assert.deepEqual(await fs.readFile(destPath), content);
      assert.deepEqual(await fs.readdir(path.dirname(destPath)), ['file.bin']);
    } finally {
      await dying.close();
      await one.close();
      await two.close();
    }
  });

  test('a kept prefix past its age is removed by the next download into its directory', async () => {
    const destPath = await freshDest();
    const dying = await rawServer(sendRanges(content, etag, { cutAfterBytes: 300_000 }));
    const good = await rawServer(sendRanges(content, etag));
    try {
      await assert.rejects(downloadFile(base(destPath, dying.url, [])));
      const dir = path.dirname(destPath);
      const old = new Date(Date.now() - 60_000);
      for (const name of await fs.readdir(dir)) await fs.utimes(path.join(dir, name), old, old);
      const again: ResumeEvent[] = [];
      // Another destination in the same directory: the sweep, not the take-over, removes the old prefix.
      const other = path.join(dir, 'other.bin');
      await downloadFile({ ...base(other, good.url, again), resumeMaxAgeMs: 30_000 });
      assert.deepEqual(again, []);
      assert.deepEqual(await fs.readdir(dir), ['other.bin']);
      assert.deepEqual(firstBytes(good.ranges), [0]);
    } finally {
      await dying.close();
      await good.close();
    }
  });

  test('a symlink planted as the kept prefix is never written through; a FIFO as its sidecar blocks nothing', async () => {
    const destPath = await freshDest();
    const dir = path.dirname(destPath);
    const dying = await rawServer(sendRanges(content, etag, { cutAfterBytes: 400_000 }));
    const good = await rawServer(sendRanges(content, etag));
    const victim = path.join(tmp, `victim-${n}.txt`);
    // As big as the file: a prefix check by size alone would take it.
    const theirs = Buffer.alloc(content.length, 0x61);
    await fs.writeFile(victim, theirs);
    try {
      await assert.rejects(downloadFile(base(destPath, dying.url, [])));
      const kept = (await fs.readdir(dir)).sort();
      const part = kept.find((name) => name.endsWith('.part'));
      const sidecar = kept.find((name) => name.endsWith('.resume'));
      assert.ok(part !== undefined && sidecar !== undefined, `kept pair: ${kept.join(', ')}`);

      // The sidecar stays valid; the prefix becomes a symlink to someone else's file.
      await fs.rm(path.join(dir, part));
      await fs.symlink(victim, path.join(dir, part));
      const events: ResumeEvent[] = [];
      await downloadFile(base(destPath, good.url, events));
      assert.deepEqual(await fs.readFile(victim), theirs, 'nothing written through the symlink');
      assert.deepEqual(await fs.readFile(destPath), content);
      assert.deepEqual(firstBytes(good.ranges), [0], 'fetched whole: the planted prefix is not resumed');

      // A FIFO under the sidecar's name (no writer ever comes): reading it must not hang the download.
      await assert.rejects(downloadFile(base(path.join(dir, 'second.bin'), dying.url, [])));
      const second = (await fs.readdir(dir)).find((name) => name.endsWith('.resume'));
      assert.ok(second !== undefined);
      await fs.rm(path.join(dir, second));
      execFileSync('mkfifo', [path.join(dir, second)]);
      await downloadFile(base(path.join(dir, 'second.bin'), good.url, []));
      assert.deepEqual(await fs.readFile(path.join(dir, 'second.bin')), content);
    } finally {
      await dying.close();
      await good.close();
    }
  });
});
