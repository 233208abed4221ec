/**
 * A download by SHA-256 from holders whose size claims disagree: the claim is only a claim, so the holders
 * are grouped by it and the groups tried in turn (downloadFromHolders).
 */
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import type http from 'node:http';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { isP2PError, type P2PError } from '../../libs/errors/index.js';
import {
  downloadFromHolders,
  groupHoldersBySize,
  type Holder,
  type SizeGroupEvent,
} from '../../libs/transfer/index.js';
import {
  type HonestHolder,
  honestHolder,
  parseRangeHeader,
  type RawServer,
  rawServer,
  sendThenDie,
  sha256,
  waitFor,
} from '../helpers/transfer-fixtures.js';

const EMPTY_SHA256 = sha256('');
const a = 'a'.repeat(40);
const b = 'b'.repeat(40);
const c = 'c'.repeat(40);
const h = (peerId: string, size: number, url = `http://127.0.0.1:1/files/${peerId}`): Holder => ({
  peerId,
  size,
  url,
});

test('groups holders by the size they claim: most holders first, a tie to the smaller size', () => {
  const sum = 'd'.repeat(64);
  const groups = groupHoldersBySize(sum, [
    h(a, 45),
    h(b, 44),
    h(c, 44),
    h(a, 45, 'http://127.0.0.1:1/files/again'), // a peer counts once per size, its first URL kept
    h(a, 44),
    h(b, 7),
    h(c, 9),
    h(a, -1), // not a size
    h(b, 1.5),
    h(c, 2 ** 53),
  ]);
  assert.deepEqual(
    groups.map((group) => [group.sizeBytes, group.sources.map((s) => s.peerId)]),
    [
      [44, [b, c, a]],
      [7, [b]],
      [9, [c]],
      [45, [a]],
    ],
  );
  assert.equal(groups[3]?.sources[0]?.url, `http://127.0.0.1:1/files/${a}`);
  assert.deepEqual(groupHoldersBySize(sum, []), []);
});

test('a size that cannot go with the SHA-256 is dropped: only empty content hashes to the empty hash', () => {
  const sum = 'd'.repeat(64);
  assert.deepEqual(
    groupHoldersBySize(sum, [h(a, 0), h(b, 5)]).map((group) => group.sizeBytes),
    [5],
  );
  assert.deepEqual(
    groupHoldersBySize(EMPTY_SHA256, [h(a, 0), h(b, 5), h(c, 5)]).map((group) => group.sizeBytes),
    [0],
  );
});

describe('downloadFromHolders', { timeout: 60_000 }, () => {
  let tmp: string;
  let content: Buffer;
  let sum: string;
  let honest: HonestHolder;
  let honestUrl: string;
  let deadUrl: string;
  const liars: RawServer[] = [];
  let n = 0;
  const freshDir = async (): Promise<string> => {
    n += 1;
    return path.join(tmp, `dest-${n}`);
  };

  before(async () => {
    honest = await honestHolder('transfer-holders-', 'file.bin');
    ({ tmp, content, sha256: sum, url: honestUrl, deadUrl } = honest);
  });

  after(async () => {
    await Promise.all(liars.map((liar) => liar.close()));
    await honest.close();
  });

  const liar = async (handler: Parameters<typeof rawServer>[0]): Promise<RawServer> => {
    const started = await rawServer(handler);
    liars.push(started);
    return started;
  };

  test('liars that serve bytes of the size they claim are proven bad; the honest holder delivers', async () => {
    const longer = Buffer.concat([content, Buffer.from('!')]);
    const serveLonger = (_req: http.IncomingMessage, res: http.ServerResponse): void => {
      res.writeHead(200, { 'Content-Length': longer.length, ETag: `"${sum}"` });
      res.end(longer);
    };
    const one = await liar(serveLonger);
    const two = await liar(serveLonger);
    const destPath = path.join(await freshDir(), 'file.bin');
    const events: SizeGroupEvent[] = [];
    const result = await downloadFromHolders({
      holders: [h(a, 45, one.url), h(b, 45, two.url), h(c, 44, honestUrl)],
      sha256: sum,
      destPath,
      onGroup: (event) => events.push(event),
    });
    assert.deepEqual(await fs.readFile(destPath), content);
    assert.equal(result.size, 44);
    assert.deepEqual(result.servedBy, [c]);
    assert.deepEqual([...result.badSources].sort(), [a, b]);
    assert.deepEqual(
      result.rejected.map((group) => [group.sizeBytes, group.code]),
      [[45, 'HASH_MISMATCH']],
    );
    assert.deepEqual(
      events.map((event) => [event.kind, event.group.sizeBytes]),
      [
        ['trying', 45],
        ['failed', 45],
        ['trying', 44],
      ],
    );
  });

  test('liars claiming 2^53-1 bytes reserve nothing and leave nothing; with resume too', async () => {
    // They answer the claim with a length to match, send a little and hang up.
    const claim = Number.MAX_SAFE_INTEGER;
    const sendSome = (_req: http.IncomingMessage, res: http.ServerResponse): void => {
      res.writeHead(200, { 'Content-Length': String(claim), ETag: `"${sum}"` });
      res.write(Buffer.alloc(64 * 1024, 1), () => res.socket?.destroy());
    };
    const one = await liar(sendSome);
    const two = await liar(sendSome);
    const dir = await freshDir();
    const destPath = path.join(dir, 'file.bin');
    const result = await downloadFromHolders({
      holders: [h(a, claim, one.url), h(b, claim, two.url), h(c, 44, honestUrl)],
      sha256: sum,
      destPath,
      resume: true,
    });
    assert.deepEqual(result.servedBy, [c]);
    assert.deepEqual(
      result.rejected.map((group) => [group.sizeBytes, group.code]),
      [[claim, 'DOWNLOAD_FAILED']],
    );
    assert.deepEqual(await fs.readdir(dir), ['file.bin'], 'no temp file, no kept prefix');
  });

  test('the temp file never grows past the bytes received, whatever size is claimed', async () => {
    const claim = 2 ** 40;
    let sent = 0;
    // Two liars that answer every range as asked for, send 16 KiB, then stall.
    const stall = (req: http.IncomingMessage, res: http.ServerResponse): void => {
      const [start, end] = parseRangeHeader(req.headers.range, claim) ?? [0, claim - 1];
      res.writeHead(206, {
        'Content-Length': String(end - start + 1),
        'Content-Range': `bytes ${start}-${end}/${claim}`,
        ETag: `"${sum}"`,
      });
      const chunk = Buffer.alloc(16 * 1024, 7);
      res.write(chunk, () => {
        sent += chunk.length;
      });
    };
    const one = await liar(stall);
    const two = await liar(stall);
    const dir = await freshDir();
    const stop = new AbortController();
    const download = downloadFromHolders({
      holders: [h(a, claim, one.url), h(b, claim, two.url)],
      sha256: sum,
      destPath: path.join(dir, 'file.bin'),
      parallelRampMs: 0,
      signal: stop.signal,
    });
    await waitFor(() => sent >= 32 * 1024, 'both liars to have sent their bytes');
    const part = (await fs.readdir(dir)).find((name) => name.endsWith('.part'));
    assert.ok(part !== undefined);
    const { size } = await fs.stat(path.join(dir, part));
    assert.ok(size <= sent, `the temp file is ${size} bytes after ${sent} received`);
    stop.abort(new Error('enough'));
    await assert.rejects(download, /enough/);
    assert.deepEqual(await fs.readdir(dir), []);
  });

  test('one liar and one honest holder: the smaller claim first, the larger never asked', async () => {
    const big = await liar((_req, res) => res.destroy());
    const destPath = path.join(await freshDir(), 'file.bin');
    const result = await downloadFromHolders({
      holders: [h(a, 45, big.url), h(c, 44, honestUrl)],
      sha256: sum,
      destPath,
    });
    assert.deepEqual(result.servedBy, [c]);
    assert.deepEqual(result.rejected, []);
    assert.deepEqual(big.ranges, []);
  });

  test('a prefix kept from an earlier download puts its size first, so a liar cannot discard it', async () => {
    const dir = await freshDir();
    const destPath = path.join(dir, 'file.bin');
    // The honest holder, sending 20 bytes, then hanging up: they are kept for a later download.
    const half = await liar(sendThenDie(content, 20, `"${sum}"`));
    await assert.rejects(
      downloadFromHolders({ holders: [h(c, 44, half.url)], sha256: sum, destPath, resume: true }),
      (err: P2PError) => isP2PError(err, 'DOWNLOAD_FAILED'),
    );
    assert.equal((await fs.readdir(dir)).filter((name) => name.endsWith('.resume')).length, 1);
    // Now two liars outnumber the honest holder, whose group would otherwise come second.
    const resumed: number[] = [];
    const result = await downloadFromHolders({
      holders: [h(a, 45, deadUrl), h(b, 45, deadUrl), h(c, 44, honestUrl)],
      sha256: sum,
      destPath,
      resume: true,
      onResume: (event) => {
        if (event.kind === 'resumed') resumed.push(event.bytes);
      },
    });
    assert.deepEqual(resumed, [20]);
    assert.deepEqual(result.rejected, []);
    assert.deepEqual(await fs.readFile(destPath), content);
    assert.deepEqual(await fs.readdir(dir), ['file.bin']);
  });

  test('the destination already holds the file: already present, even when a liar comes first', async () => {
    const dir = await freshDir();
    await fs.mkdir(dir);
    const destPath = path.join(dir, 'file.bin');
    await fs.writeFile(destPath, content);
    const result = await downloadFromHolders({
      holders: [h(a, 45, deadUrl), h(b, 45, deadUrl), h(c, 44, honestUrl)],
      sha256: sum,
      destPath,
    });
    assert.equal(result.alreadyPresent, true);
  });

  test('the destination holds other content: IO_ERROR exists, as from one group', async () => {
    const dir = await freshDir();
    await fs.mkdir(dir);
    const destPath = path.join(dir, 'file.bin');
    await fs.writeFile(destPath, 'something else');
    await assert.rejects(
      downloadFromHolders({
        holders: [h(a, 45, deadUrl), h(b, 45, deadUrl), h(c, 44, honestUrl)],
        sha256: sum,
        destPath,
      }),
      (err: P2PError) => isP2PError(err, 'IO_ERROR') && err.details.reason === 'exists',
    );
  });

  test('every group fails: one error naming each size, with the failures of all', async () => {
    const destPath = path.join(await freshDir(), 'file.bin');
    await assert.rejects(
      downloadFromHolders({
        holders: [h(a, 45, deadUrl), h(b, 46, honestUrl)],
        sha256: sum,
        destPath,
      }),
      (err: P2PError) => {
        assert.ok(isP2PError(err, 'DOWNLOAD_FAILED'), String(err));
        assert.match(
          err.message,
          /45 bytes \(1 holder\).*CONNECT_FAILED.*46 bytes \(1 holder\).*SIZE_MISMATCH/,
        );
        const failures = err.details.failures as Array<{ peerId: string; code: string }>;
        assert.deepEqual(
          [...new Set(failures.map((f) => `${f.peerId.slice(0, 1)} ${f.code}`))],
          ['a CONNECT_FAILED', 'b SIZE_MISMATCH'],
        );
        return true;
      },
    );
  });

  test('no holder with a possible size: NO_SOURCES', async () => {
    await assert.rejects(
      downloadFromHolders({
        holders: [h(a, 0, honestUrl)],
        sha256: sum,
        destPath: path.join(await freshDir(), 'file.bin'),
      }),
      (err: P2PError) => isP2PError(err, 'NO_SOURCES'),
    );
  });
});
