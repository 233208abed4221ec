/**
 * `p2p get` (the compiled CLI, in a child process, asking a fake peer API with `--peer`) when holders lie
 * about the size of a file they list under its real SHA-256.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { once } from 'node:events';
import fs from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import type { SearchResult } from '../../libs/protocol/index.js';
import { HOST, type HonestHolder, honestHolder } from '../helpers/transfer-fixtures.js';

const MAIN = fileURLToPath(new URL('../../services/cli/main.js', import.meta.url));
const LIAR_A = '0'.repeat(40);
const LIAR_B = `${'0'.repeat(39)}1`;
const HONEST = 'f'.repeat(40);

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs `p2p <args>` through the compiled `main`, as bin/p2p.js would, and collects what it printed. */
function p2p(args: string[]): Promise<Run> {
  const script = `const { main } = await import(${JSON.stringify(MAIN)});
    process.exitCode = await main(['node', 'p2p', ...JSON.parse(process.argv[1])]);`;
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      ['--input-type=module', '-e', script, JSON.stringify(args)],
      { timeout: 30_000 },
      (err, stdout, stderr) => {
        const code = err === null ? 0 : typeof err.code === 'number' ? err.code : -1;
        resolve({ code, stdout, stderr });
      },
    );
  });
}

describe('p2p get with holders that lie about the size', { timeout: 120_000 }, () => {
  let tmp: string;
  let content: Buffer;
  let sum: string;
  let honest: HonestHolder;
  let honestUrl: string;
  let deadUrl: string;
  let api: http.Server;
  let apiUrl: string;
  /** What the fake peer API answers to any search. */
  let results: SearchResult[] = [];
  let n = 0;

  before(async () => {
    honest = await honestHolder('cli-get-', 'file.txt');
    ({ tmp, content, sha256: sum, url: honestUrl, deadUrl } = honest);
    api = http.createServer((_req, res) => {
      res.setHeader('Content-Type', 'application/json');
      res.end(JSON.stringify({ source: 'superpeer', stale: false, results, truncated: false }));
    });
    api.listen(0, HOST);
    await once(api, 'listening');
    apiUrl = `http://${HOST}:${(api.address() as AddressInfo).port}`;
  });

  after(async () => {
    api.closeAllConnections();
    await new Promise((resolve) => api.close(resolve));
    await honest.close();
  });

  const holder = (peerId: string, size: number, url: string): SearchResult => ({
    name: 'file.txt',
    size,
    sha256: sum,
    peerId,
    url,
  });

  async function get(target: string): Promise<Run & { out: string }> {
    n += 1;
    const out = path.join(tmp, `out-${n}`);
    const run = await p2p(['get', target, '--peer', apiUrl, '--out', out, '--timeout', '5000']);
    return { ...run, out };
  }

  test('the report: one unreachable liar listed first claims 45 bytes; get succeeds', async () => {
    results = [holder(LIAR_A, 45, deadUrl), holder(HONEST, 44, honestUrl)];
    const run = await get('file.txt');
    assert.equal(run.code, 0, run.stderr);
    assert.deepEqual(await fs.readFile(path.join(run.out, 'file.txt')), content);
    assert.match(run.stdout, /saved .*file\.txt .*verified, from f{40}\)/);
    assert.match(run.stderr, /disagree on the size/);
  });

  for (const liarSize of [45, Number.MAX_SAFE_INTEGER]) {
    test(`two liars claiming ${liarSize} bytes are tried first and fall through to the honest holder`, async () => {
      results = [
        holder(LIAR_A, liarSize, deadUrl),
        holder(LIAR_B, liarSize, honestUrl),
        holder(HONEST, 44, honestUrl),
      ];
      const run = await get(sum);
      assert.equal(run.code, 0, run.stderr);
      assert.deepEqual(await fs.readFile(path.join(run.out, 'file.txt')), content);
      assert.deepEqual(await fs.readdir(run.out), ['file.txt'], 'no temp file, no kept prefix');
      // Which sizes were tried, and why the first did not do.
      assert.match(run.stderr, /2 holders claim/);
      assert.match(run.stderr, /could not deliver/);
      assert.doesNotMatch(run.stderr, /EFBIG/);
    });
  }

  test('every holder lies: exit 4 and one line per size tried', async () => {
    results = [holder(LIAR_A, 45, deadUrl), holder(LIAR_B, 46, honestUrl)];
    const run = await get(sum);
    assert.equal(run.code, 4, run.stderr);
    assert.match(run.stderr, /p2p: .*45 bytes.*46 bytes/);
    assert.deepEqual(await fs.readdir(run.out), []);
  });
});
