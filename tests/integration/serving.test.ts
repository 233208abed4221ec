import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import fs from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { makeTempDir, runCli, startNetwork, type TestNetwork, waitUntil } from '../helpers/network.js';

interface Result {
  name: string;
  size: number;
  sha256: string;
  peerId: string;
  url: string;
}

const sha = (data: Buffer | string) => createHash('sha256').update(data).digest('hex');
/** Bigger than the loopback socket buffers, so a client that does not read really holds its transfer. */
const BIG_BYTES = 48 * 1024 * 1024;

/** A raw client that sends one GET, reads the answer's head, then never reads again. */
async function slowReader(url: string, localAddress: string) {
  const target = new URL(url);
  const socket = net.connect({ host: target.hostname, port: Number(target.port), localAddress });
  socket.on('error', () => {});
  await once(socket, 'connect');
  socket.write(`GET ${target.pathname} HTTP/1.1\r\nHost: ${target.host}\r\n\r\n`);
  let head = '';
  while (!head.includes('\r\n\r\n')) {
    const [chunk] = (await once(socket, 'data')) as [Buffer];
    head += chunk.toString('latin1');
  }
  socket.pause();
  return { status: Number(head.split(' ')[1]), head, socket };
}

describe('serving under hostile conditions, with real peers', () => {
  let network: TestNetwork;
  const big = randomBytes(BIG_BYTES);
  const out: string[] = [];

  const search = async (words: string[]) => {
    const result = await runCli(['search', '--json', ...words], network.env);
    if (result.code !== 0 && result.code !== 1)
      throw new Error(`search exited ${result.code}: ${result.stderr}`);
    return JSON.parse(result.stdout || '[]') as Result[];
  };

  const getInto = async (name: string) => {
    const dir = await makeTempDir('serving-get');
    out.push(dir);
    const got = await runCli(['get', name, '--out', dir], network.env, 60_000);
    return { got, file: path.join(dir, name) };
  };

  before(async () => {
    network = await startNetwork({
      label: 'serving',
      peers: [{ 'big.bin': big, 'doc.txt': 'version one', 'a.txt': 'alpha' }],
    });
    await waitUntil(async () => (await search(['big.bin'])).length > 0 || undefined, {
      timeoutMs: 15_000,
      what: 'big.bin to be searchable',
    });
  });

  after(async () => {
    await network?.stop();
    await Promise.all(out.map((dir) => fs.rm(dir, { recursive: true, force: true })));
  });

  test('with eight slow readers on the only holder, honest gets still succeed', async () => {
    const url = `${network.peers[0]!.url}/files/big.bin`;
    const readers = [];
    try {
      // One hostile host, eight connections: it gets its two slots, then 503 + Retry-After.
      for (let i = 0; i < 8; i++) readers.push(await slowReader(url, '127.0.0.2'));
      const statuses = readers.map((reader) => reader.status);
      assert.deepEqual(statuses, [200, 200, 503, 503, 503, 503, 503, 503]);
      assert.match(readers[7]!.head, /\r\nretry-after: \d+\r\n/i);
      for (let i = 0; i < 3; i++) {
        const { got, file } = await getInto('big.bin');
        assert.equal(got.code, 0, got.stderr);
        assert.equal(sha(await fs.readFile(file)), sha(big));
      }
    } finally {
      for (const reader of readers) reader.socket.destroy();
    }
  });

  test('a FIFO in the share changes nothing for the others: serving and rescanning go on', async () => {
    const shareDir = network.peers[0]!.shareDir;
    execFileSync('mkfifo', [path.join(shareDir, 'pipe')]);
    await fs.writeFile(path.join(shareDir, 'after-fifo.txt'), 'written after the fifo');
    const found = await waitUntil(async () => (await search(['after-fifo.txt']))[0], {
      timeoutMs: 15_000,
      what: 'a file added after the FIFO to be announced',
    });
    assert.equal(found.sha256, sha('written after the fifo'));
    assert.deepEqual(await search(['pipe']), []);
    const { got, file } = await getInto('a.txt');
    assert.equal(got.code, 0, got.stderr);
    assert.equal(await fs.readFile(file, 'utf8'), 'alpha');
  });

  test('a same-size rewrite with the old mtime restored is re-announced with its new hash', async () => {
    const shareDir = network.peers[0]!.shareDir;
    const file = path.join(shareDir, 'doc.txt');
    const ref = path.join(shareDir, '.doc-mtime');
    execFileSync('touch', ['-r', file, ref]);
    await fs.writeFile(file, 'version two');
    execFileSync('touch', ['-m', '-r', ref, file]);
    const found = await waitUntil(
      async () => (await search(['doc.txt'])).find((result) => result.sha256 === sha('version two')),
      { timeoutMs: 15_000, what: 'doc.txt re-announced with its new hash' },
    );
    assert.equal(found.size, 'version two'.length);
    const { got, file: downloaded } = await getInto('doc.txt');
    assert.equal(got.code, 0, got.stderr);
    assert.equal(await fs.readFile(downloaded, 'utf8'), 'version two');
  });
});
