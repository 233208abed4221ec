/**
 * The page's downloads (DownloadJobs) when a holder lies about the size of a file it lists under a real
 * SHA-256: the honest holder must still deliver it.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { silentLog } from '../../libs/logging/index.js';
import type { SearchResult } from '../../libs/protocol/index.js';
import { type DownloadJob, DownloadJobs } from '../../services/peer/web-downloads.js';
import { type Served, scanShare, serve, sha256 } from '../helpers/transfer-fixtures.js';

/** Peer ids that sort before (liars) and after (the honest holder) each other. */
const LIAR_A = '0'.repeat(40);
const LIAR_B = `${'0'.repeat(39)}1`;
const HONEST = 'f'.repeat(40);
const OWN = 'e'.repeat(40);

describe('DownloadJobs with a holder that lies about the size', { timeout: 60_000 }, () => {
  let tmp: string;
  let content: Buffer;
  let sum: string;
  let honest: Served;
  let honestUrl: string;
  let n = 0;

  before(async () => {
    tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'web-downloads-'));
    // 44 bytes, as in the report.
    content = Buffer.from('the quick brown fox jumps over the lazy dog!');
    assert.equal(content.length, 44);
    sum = sha256(content);
    await fs.mkdir(path.join(tmp, 'share'));
    await fs.writeFile(path.join(tmp, 'share', 'file.txt'), content);
    honest = await serve(await scanShare(path.join(tmp, 'share'), ['file.txt']));
    honestUrl = `${honest.base}/files/file.txt`;
  });

  after(async () => {
    await honest.running.close();
    await fs.rm(tmp, { recursive: true, force: true });
  });

  const result = (peerId: string, size: number, url = honestUrl): SearchResult => ({
    name: 'file.txt',
    size,
    sha256: sum,
    peerId,
    url,
  });

  /** Starts a job over `holders` and resolves with it once it has ended (and with the job as it started). */
  async function download(
    holders: SearchResult[],
    onUpdate: (job: DownloadJob) => void = () => undefined,
  ): Promise<{ job: DownloadJob; started: DownloadJob; shareRoot: string }> {
    n += 1;
    const shareRoot = path.join(tmp, `root-${n}`);
    await fs.mkdir(shareRoot);
    const jobs = new DownloadJobs({
      shareRoot,
      ownPeerId: OWN,
      findHolders: async () => holders,
      logger: silentLog,
    });
    const ended = new Promise<DownloadJob>((resolve) => {
      jobs.on('update', (job) => {
        onUpdate(job);
        if (job.state !== 'running') resolve(job);
      });
    });
    const started = await jobs.start(sum, 'file.txt');
    assert.equal(started.state, 'running');
    const job = await ended;
    jobs.close();
    return { job, started, shareRoot };
  }

  for (const liarSize of [45, Number.MAX_SAFE_INTEGER]) {
    test(`two holders listed first claim ${liarSize} bytes; the honest one's 44 still arrive`, async () => {
      // The liars name the honest holder's own URL: only their size claim is false.
      const { job, shareRoot } = await download([
        result(LIAR_A, liarSize),
        result(LIAR_B, liarSize),
        result(HONEST, 44),
      ]);
      assert.equal(job.state, 'done', JSON.stringify(job.error));
      assert.equal(job.size, 44);
      assert.deepEqual(job.servedBy, [HONEST]);
      const saved = path.join(shareRoot, 'downloads', 'file.txt');
      assert.deepEqual(await fs.readFile(saved), content);
      // Nothing else left behind: no temp file, no kept prefix.
      assert.deepEqual(await fs.readdir(path.join(shareRoot, 'downloads')), ['file.txt']);
    });
  }

  test('one liar listed first, claiming one byte more: the honest holder is asked first', async () => {
    const before = honest.transfers.length;
    const { job } = await download([result(LIAR_A, 45), result(HONEST, 44)]);
    assert.equal(job.state, 'done', JSON.stringify(job.error));
    assert.deepEqual(job.servedBy, [HONEST]);
    assert.equal(honest.transfers.length, before + 1);
  });

  test('every holder lies: the job fails with a stable code, nothing is left', async () => {
    const { job, shareRoot } = await download([result(LIAR_A, 45), result(LIAR_B, 46)]);
    assert.equal(job.state, 'failed');
    assert.equal(job.error?.code, 'DOWNLOAD_FAILED');
    const left = await fs.readdir(path.join(shareRoot, 'downloads')).catch(() => []);
    assert.deepEqual(left, []);
  });

  test('an update names the size being tried', async () => {
    const sizes: number[] = [];
    const { job, started } = await download(
      [result(LIAR_A, 45), result(LIAR_B, 45), result(HONEST, 44)],
      (update) => sizes.push(update.size),
    );
    assert.equal(started.size, 45);
    assert.equal(job.state, 'done');
    assert.ok(sizes.includes(45) && sizes.at(-1) === 44, sizes.join(','));
  });
});
