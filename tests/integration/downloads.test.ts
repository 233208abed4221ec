/**
 * `p2p get` as a user runs it, against real peers whose announced HTTP address is, for some, a hostile
 * server written here (a trickle of a byte a second, 503 with Retry-After): the network finds them like any
 * holder, and the download must still finish, say why it waits, stop cleanly on Ctrl-C and explain a bad
 * `--out` in one line.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import fs from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import {
  makeTempDir,
  P2P_BIN,
  REPO_ROOT,
  runCli,
  startNetwork,
  type TestNetwork,
  waitUntil,
} from '../helpers/network.js';
import { trickle } from '../helpers/transfer-fixtures.js';

const sha = (data: Buffer): string => createHash('sha256').update(data).digest('hex');

interface Hostile {
  /** What a peer announces as its address (PEER_PUBLIC_URL). */
  base: string;
  requests: number;
  close(): Promise<void>;
}

/** An HTTP server standing in for a peer's: `handler` answers every file request. */
async function hostileServer(
  handler: (req: http.IncomingMessage, res: http.ServerResponse, count: number) => void,
): Promise<Hostile> {
  const state = { requests: 0 };
  const server = http.createServer((req, res) => {
    state.requests += 1;
    handler(req, res, state.requests);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const port = (server.address() as AddressInfo).port;
  return {
    base: `http://127.0.0.1:${port}`,
    get requests() {
      return state.requests;
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

function sendAll(data: Buffer) {
  return (_req: http.IncomingMessage, res: http.ServerResponse): void => {
    res.writeHead(200, { 'Content-Length': data.length, ETag: `"${sha(data)}"` });
    res.end(data);
  };
}

describe('p2p get against slow, busy and hostile holders', { timeout: 300_000 }, () => {
  let net: TestNetwork;
  const cleanups: Array<() => Promise<void>> = [];

  before(async () => {
    net = await startNetwork({ label: 'downloads', peers: [] });
  });

  after(async () => {
    for (const cleanup of cleanups.reverse()) await cleanup().catch(() => {});
    await net.stop();
  });

  const outDir = async (label: string): Promise<string> => {
    const dir = await makeTempDir(label);
    cleanups.push(() => fs.rm(dir, { recursive: true, force: true }));
    return dir;
  };
  const hostile = async (handler: Parameters<typeof hostileServer>[0]): Promise<Hostile> => {
    const server = await hostileServer(handler);
    cleanups.push(() => server.close());
    return server;
  };
  /** A real peer sharing `files` that announces `base` as its address. */
  const peerAt = (label: string, files: Record<string, Buffer>, base?: string) =>
    net.startPeer(label, files, base ? { PEER_PUBLIC_URL: base } : {});
  const holders = (sum: string, count: number) =>
    waitUntil(
      async () => {
        const found = await runCli(['search', sum, '--json'], net.env);
        const results = found.code === 0 ? (JSON.parse(found.stdout) as unknown[]) : [];
        return results.length >= count ? results : undefined;
      },
      { timeoutMs: 15_000, intervalMs: 200, what: `${count} holders of ${sum}` },
    );
  const dotfiles = async (dir: string) => (await fs.readdir(dir)).filter((name) => name.startsWith('.'));

  test('three holders trickling a byte a second and one honest: get finishes within 20 s', async () => {
    const content = randomBytes(8 * 1024 * 1024 + 5);
    const sum = sha(content);
    for (const i of [1, 2, 3]) {
      const server = await hostile(trickle(content, `"${sum}"`));
      await peerAt(`trickle${i}`, { 'movie.bin': content }, server.base);
    }
    await peerAt('honest', { 'movie.bin': content });
    await holders(sum, 4);
    const out = await outDir('get-trickle');
    const started = Date.now();
    const got = await runCli(['get', sum, '--out', out], net.env, 60_000);
    const elapsedMs = Date.now() - started;
    assert.equal(got.code, 0, got.stderr);
    assert.ok(elapsedMs < 20_000, `get took ${elapsedMs} ms`);
    assert.equal(sha(await fs.readFile(path.join(out, 'movie.bin'))), sum);
    assert.deepEqual(await dotfiles(out), []);
  });

  test('a busy holder is waited for and said to be busy; one busy for too long fails saying so', async () => {
    const content = randomBytes(300_000);
    const sum = sha(content);
    const busyTwice = await hostile((req, res, count) => {
      if (count <= 2) res.writeHead(503, { 'Retry-After': '1' }).end();
      else sendAll(content)(req, res);
    });
    await peerAt('busy-twice', { 'report.pdf': content }, busyTwice.base);
    await holders(sum, 1);
    const out = await outDir('get-busy');
    const got = await runCli(['get', sum, '--out', out], net.env);
    assert.equal(got.code, 0, got.stderr);
    assert.match(got.stderr, /is busy; asking again in/);
    assert.equal(sha(await fs.readFile(path.join(out, 'report.pdf'))), sum);

    const other = randomBytes(300_000);
    const otherSum = sha(other);
    const alwaysBusy = await hostile((_req, res) => {
      res.writeHead(503, { 'Retry-After': '1' }).end();
    });
    await peerAt('always-busy', { 'other.pdf': other }, alwaysBusy.base);
    await holders(otherSum, 1);
    const started = Date.now();
    const failed = await runCli(['get', otherSum, '--out', out, '--busy-wait', '2500'], net.env);
    const elapsedMs = Date.now() - started;
    assert.equal(failed.code, 4, failed.stderr);
    assert.match(failed.stderr.trim().split('\n').at(-1) ?? '', /^p2p: .*busy/);
    assert.ok(alwaysBusy.requests >= 2, `asked ${alwaysBusy.requests} time(s)`);
    assert.ok(elapsedMs < 2_500 + 8_000, `gave up after ${elapsedMs} ms`);
    assert.deepEqual(await fs.readdir(out), ['report.pdf']);
  });

  test('a 244-byte name (80 CJK characters) is shared and downloaded', async () => {
    const name = `${'文'.repeat(80)}.bin`;
    const content = randomBytes(100_000);
    const sum = sha(content);
    await peerAt('long-name', { [name]: content });
    await holders(sum, 1);
    const out = await outDir('get-long');
    const got = await runCli(['get', sum, '--out', out], net.env);
    assert.equal(got.code, 0, got.stderr);
    assert.deepEqual(await fs.readdir(out), [name]);
    assert.equal(sha(await fs.readFile(path.join(out, name))), sum);
  });

  test('Ctrl-C during get: exit 130, one line, only the kept prefix left; the same get resumes from it', async () => {
    const content = randomBytes(200_000);
    const sum = sha(content);
    const head = 100_000;
    let headSent: () => void = () => {};
    const sent = new Promise<void>((resolve) => {
      headSent = resolve;
    });
    // The first `head` bytes at once, then nothing more: what was received is what Ctrl-C keeps.
    const stalling = await hostile((req, res) => {
      if (req.headers.range !== undefined) {
        res.writeHead(503, { 'Retry-After': '60' }).end();
        return;
      }
      res.writeHead(200, { 'Content-Length': content.length, ETag: `"${sum}"` });
      res.write(content.subarray(0, head), () => headSent());
    });
    await peerAt('slow', { 'slow.bin': content }, stalling.base);
    await holders(sum, 1);
    const out = await outDir('get-sigint');
    const child = spawn(process.execPath, [P2P_BIN, 'get', sum, '--out', out], {
      cwd: REPO_ROOT,
      env: { ...process.env, LOG_FORMAT: 'json', ...net.env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stderr = '';
    child.stderr.on('data', (chunk: Buffer) => {
      stderr += chunk.toString();
    });
    const exited = once(child, 'exit') as Promise<[number | null, NodeJS.Signals | null]>;
    try {
      // The download has started: its temp file is there, and the source has sent its first bytes.
      const temp = await waitUntil(async () => (await dotfiles(out))[0], {
        timeoutMs: 15_000,
        what: 'the temp file of the download',
      });
      assert.match(temp, /^\.p2p-[0-9a-f]{16}-[0-9a-f]{12}\.part$/);
      await sent;
      child.kill('SIGINT');
      const [code] = await exited;
      assert.equal(code, 130, stderr);
      assert.match(stderr, /interrupted; .* kept/);
      const kept = (await fs.readdir(out)).sort();
      assert.equal(kept.length, 2, kept.join());
      assert.match(kept[0] ?? '', /^\.p2p-[0-9a-f]{16}\.part$/);
      assert.match(kept[1] ?? '', /^\.p2p-[0-9a-f]{16}\.resume$/);
    } finally {
      child.kill('SIGKILL');
    }

    await peerAt('honest', { 'slow.bin': content });
    await holders(sum, 2);
    const again = await runCli(['get', sum, '--out', out], net.env);
    assert.equal(again.code, 0, again.stderr);
    assert.match(again.stderr, /resuming: /);
    assert.deepEqual(await fs.readdir(out), ['slow.bin']);
    assert.equal(sha(await fs.readFile(path.join(out, 'slow.bin'))), sum);
  });

  test('exit 2 with one line for a bad --out or an existing file; the same file already there is said so', async () => {
    const content = randomBytes(50_000);
    const sum = sha(content);
    await peerAt('plain', { 'notes.txt': content });
    await holders(sum, 1);
    const out = await outDir('get-out');
    const aFile = path.join(out, 'a-file');
    await fs.writeFile(aFile, 'x');

    for (const bad of [aFile, path.join(aFile, 'below')]) {
      const got = await runCli(['get', sum, '--out', bad], net.env);
      assert.equal(got.code, 2, got.stderr);
      assert.equal(got.stderr.trim().split('\n').length, 1, got.stderr);
      assert.match(got.stderr, /^p2p: --out .*(not a directory|cannot be created)/);
    }

    const first = await runCli(['get', sum, '--out', out], net.env);
    assert.equal(first.code, 0, first.stderr);
    const again = await runCli(['get', sum, '--out', out], net.env);
    assert.equal(again.code, 0, again.stderr);
    assert.match(again.stdout, /^already present: .*notes\.txt .*nothing downloaded\n$/);
    assert.doesNotMatch(again.stdout, /from \)/);

    await fs.writeFile(path.join(out, 'notes.txt'), 'other content');
    const clash = await runCli(['get', sum, '--out', out], net.env);
    assert.equal(clash.code, 2, clash.stderr);
    assert.equal(clash.stderr.trim().split('\n').length, 1, clash.stderr);
    assert.match(clash.stderr, /already exists with other content/);
    assert.equal(await fs.readFile(path.join(out, 'notes.txt'), 'utf8'), 'other content');
    assert.deepEqual(await dotfiles(out), []);
  });
});
