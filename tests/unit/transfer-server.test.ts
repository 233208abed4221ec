import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { promises as fs } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import express from 'express';
import {
  createFilesRouter,
  type FilesRouterOptions,
  type RunningHttpServer,
  type SharedFileSource,
  startHttpServer,
  type TransferInfo,
} from '../../libs/file-server/index.js';
import { Share } from '../../libs/share/index.js';

const HOST = '127.0.0.1';
const BIG_BYTES = 32 * 1024 * 1024;

function sha256(bytes: string | Buffer): string {
  return createHash('sha256').update(bytes).digest('hex');
}

interface Served {
  running: RunningHttpServer;
  port: number;
  transfers: TransferInfo[];
}

async function serve(share: SharedFileSource, options: Partial<FilesRouterOptions> = {}): Promise<Served> {
  const transfers: TransferInfo[] = [];
  const app = express();
  app.use(createFilesRouter({ share, onTransfer: (info) => transfers.push(info), ...options }));
  const running = await startHttpServer(app, { host: HOST, port: 0, closeGraceMs: 100 });
  return { running, port: running.port, transfers };
}

/** A source over fixed names with the state each file has now (as a share would advertise it). */
async function staticShare(root: string, names: string[]): Promise<SharedFileSource> {
  const realRoot = await fs.realpath(root);
  const files = new Map<string, ReturnType<NonNullable<SharedFileSource['get']>>>();
  for (const name of names) {
    const absPath = path.join(realRoot, name);
    const [data, st] = await Promise.all([fs.readFile(absPath), fs.stat(absPath)]);
    files.set(name, {
      entry: { name, size: st.size, sha256: sha256(data), mtimeMs: st.mtimeMs },
      absPath,
      version: { size: st.size, mtimeMs: st.mtimeMs, ctimeMs: st.ctimeMs, ino: st.ino, dev: st.dev },
    });
  }
  return { root: realRoot, get: (name) => files.get(name), list: () => [] };
}

interface Answer {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
}

function get(port: number, urlPath: string, localAddress = HOST): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: HOST, port, path: urlPath, localAddress, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('end', () =>
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }),
      );
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end();
  });
}

/** A raw client that sends one GET, reads the status line and headers, then never reads again. */
async function slowReader(port: number, urlPath: string, localAddress: string) {
  const socket = net.connect({ host: HOST, port, localAddress });
  socket.on('error', () => {});
  await once(socket, 'connect');
  socket.write(`GET ${urlPath} HTTP/1.1\r\nHost: ${HOST}\r\n\r\n`);
  let head = '';
  while (!head.includes('\r\n\r\n')) {
    const [chunk] = (await once(socket, 'data')) as [Buffer];
    head += chunk.toString('latin1');
  }
  socket.pause();
  const reader = { status: Number(head.split(' ')[1]), head, socket, closed: false };
  socket.once('close', () => {
    reader.closed = true;
  });
  return reader;
}

async function until(
  what: string,
  done: () => boolean | Promise<boolean>,
  timeoutMs = 10_000,
): Promise<number> {
  const startedAt = Date.now();
  while (!(await done())) {
    if (Date.now() - startedAt > timeoutMs) assert.fail(`not within ${timeoutMs} ms: ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  return Date.now() - startedAt;
}

describe('upload slots against slow readers', () => {
  let tmp: string;
  let source: SharedFileSource;

  before(async () => {
    tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'transfer-server-'));
    await fs.writeFile(path.join(tmp, 'big.bin'), randomBytes(BIG_BYTES));
    await fs.writeFile(path.join(tmp, 'small.txt'), 'small');
    source = await staticShare(tmp, ['big.bin', 'small.txt']);
  });

  after(async () => {
    await fs.rm(tmp, { recursive: true, force: true });
  });

  test('one address gets at most maxTransfersPerClient slots; others are still served', async () => {
    const served = await serve(source, {
      maxConcurrentTransfers: 8,
      maxTransfersPerClient: 2,
      retryAfterSeconds: 3,
    });
    const readers: Awaited<ReturnType<typeof slowReader>>[] = [];
    try {
      for (let i = 0; i < 8; i++) readers.push(await slowReader(served.port, '/files/big.bin', '127.0.0.2'));
      assert.deepEqual(
        readers.map((reader) => reader.status),
        [200, 200, 503, 503, 503, 503, 503, 503],
      );
      assert.match(readers[2]?.head ?? '', /\r\nretry-after: 3\r\n/i);
      assert.match(readers[2]?.head ?? '', /busy/i);
      // Another address, while the first holds its two slots: served in full.
      const honest = await get(served.port, '/files/big.bin', '127.0.0.1');
      assert.equal(honest.status, 200);
      assert.equal(honest.body.length, BIG_BYTES);
    } finally {
      for (const reader of readers) reader.socket.destroy();
      await served.running.close();
    }
  });

  test('a client that stops reading is cut after the window and frees its slot; 503 carries Retry-After', async () => {
    const served = await serve(source, {
      maxConcurrentTransfers: 2,
      maxTransfersPerClient: 1,
      minClientBytesPerWindow: 256 * 1024,
      slowReaderWindowMs: 300,
    });
    const readers: Awaited<ReturnType<typeof slowReader>>[] = [];
    try {
      readers.push(await slowReader(served.port, '/files/big.bin', '127.0.0.3'));
      readers.push(await slowReader(served.port, '/files/big.bin', '127.0.0.4'));
      assert.deepEqual(
        readers.map((reader) => reader.status),
        [200, 200],
      );
      const busy = await get(served.port, '/files/small.txt');
      assert.equal(busy.status, 503);
      assert.equal(busy.headers['retry-after'], '1');
      // A paused client never reads the close: the server's own report says when it cut them.
      const cutAfterMs = await until(
        'both slow readers cut',
        () => served.transfers.filter((t) => t.name === 'big.bin' && !t.complete).length === 2,
      );
      // A few windows, not the 20 s default and not never.
      assert.ok(cutAfterMs < 5000, `cut after ${cutAfterMs} ms`);
      const honest = await get(served.port, '/files/big.bin');
      assert.equal(honest.status, 200);
      assert.equal(honest.body.length, BIG_BYTES);
    } finally {
      for (const reader of readers) reader.socket.destroy();
      await served.running.close();
    }
  });
});

describe('serving only what was advertised', () => {
  let tmp: string;

  before(async () => {
    tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'transfer-server-state-'));
  });

  after(async () => {
    await fs.rm(tmp, { recursive: true, force: true });
  });

  test('a same-size rewrite with the old mtime restored is refused (409), re-hashed and then served', async () => {
    const dir = await fs.mkdtemp(path.join(tmp, 'rewrite-'));
    const file = path.join(dir, 'doc.txt');
    await fs.writeFile(file, 'version one');
    execFileSync('touch', ['-r', file, path.join(dir, '.ref')]);
    const share = new Share({ dir, rescanIntervalMs: 0, quietMs: 500 });
    await share.start();
    await share.hashed();
    const served = await serve(share);
    try {
      const first = await get(served.port, '/files/doc.txt');
      assert.equal(first.status, 200);
      assert.equal(first.headers.etag, `"${sha256('version one')}"`);

      await fs.writeFile(file, 'version two');
      execFileSync('touch', ['-m', '-r', path.join(dir, '.ref'), file]);
      const refused = await get(served.port, '/files/doc.txt');
      assert.equal(refused.status, 409);
      assert.equal(JSON.parse(refused.body.toString()).error.code, 'FILE_CHANGED');
      assert.equal(refused.headers.etag, undefined);

      await until(
        'the share to re-hash the file',
        () => share.get('doc.txt')?.entry.sha256 === sha256('version two'),
      );
      const again = await get(served.port, '/files/doc.txt');
      assert.equal(again.status, 200);
      assert.equal(again.headers.etag, `"${sha256('version two')}"`);
      assert.equal(again.body.toString(), 'version two');
    } finally {
      await served.running.close();
      await share.close();
    }
  });

  test('a listed file swapped for a FIFO is answered 404 at once and nothing else stalls', async () => {
    const dir = await fs.mkdtemp(path.join(tmp, 'fifo-'));
    await fs.writeFile(path.join(dir, 'x.bin'), 'soon a fifo');
    await fs.writeFile(path.join(dir, 'ok.txt'), 'still fine');
    const served = await serve(await staticShare(dir, ['x.bin', 'ok.txt']));
    try {
      await fs.rm(path.join(dir, 'x.bin'));
      execFileSync('mkfifo', [path.join(dir, 'x.bin')]);
      // Several at once: a blocking open would take one libuv pool thread each (there are 4).
      const answers = await Promise.all(Array.from({ length: 6 }, () => get(served.port, '/files/x.bin')));
      assert.deepEqual(
        answers.map((answer) => answer.status),
        [404, 404, 404, 404, 404, 404],
      );
      const ok = await get(served.port, '/files/ok.txt');
      assert.equal(ok.status, 200);
      assert.equal(ok.body.toString(), 'still fine');
    } finally {
      await served.running.close();
    }
  });
});
