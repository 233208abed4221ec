import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { statSync } from 'node:fs';
import fs from 'node:fs/promises';
import http from 'node:http';
import net, { type AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import express from 'express';
import { isP2PError, type P2PError } from '../../libs/errors/index.js';
import { type FileEntry, FileNameSchema, fileUrl } from '../../libs/protocol/index.js';
import {
  createFilesRouter,
  type DownloadProgress,
  type DownloadSource,
  downloadFile,
  type FilesRouterOptions,
  nameFromSegments,
  type RunningHttpServer,
  SegmentPlan,
  type SharedFileSource,
  startHttpServer,
  type TransferInfo,
} from '../../libs/transfer/index.js';

const HOST = '127.0.0.1';
const SECRET = 'TOP-SECRET-OUTSIDE-THE-SHARE';

function sha256(data: Buffer | string): string {
  return createHash('sha256').update(data).digest('hex');
}

async function waitFor(
  check: () => boolean | Promise<boolean>,
  what: string,
  timeoutMs = 5_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

interface RawResponse {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
}

/** Raw http.request: the path goes out exactly as written (no `..` normalization, no re-encoding). */
function request(
  port: number,
  requestPath: string,
  options: { method?: string; headers?: Record<string, string> } = {},
): Promise<RawResponse> {
  return new Promise((resolve, reject) => {
    const req = http.request(
      {
        host: HOST,
        port,
        path: requestPath,
        method: options.method ?? 'GET',
        headers: options.headers,
        agent: false,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (chunk: Buffer) => chunks.push(chunk));
        res.on('end', () =>
          resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }),
        );
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end();
  });
}

/** An exact-name share over `root`, like libs/share: only the listed names, entries taken at "scan" time. */
async function scanShare(root: string, names: string[]): Promise<SharedFileSource> {
  const realRoot = await fs.realpath(root);
  const entries = new Map<string, FileEntry>();
  for (const name of names) {
    const absPath = path.join(realRoot, ...name.split('/'));
    const [data, stats] = await Promise.all([fs.readFile(absPath), fs.stat(absPath)]);
    entries.set(name, { name, size: stats.size, sha256: sha256(data), mtimeMs: stats.mtimeMs });
  }
  return {
    root: realRoot,
    get(name) {
      const entry = entries.get(name);
      return entry ? { entry, absPath: path.join(realRoot, ...name.split('/')) } : undefined;
    },
    list: () => [...entries.values()],
  };
}

/**
 * A deliberately naive share that resolves ANY name under its root (as a buggy share lib might), so the
 * hostile-path tests exercise the router's own checks rather than the share's exact lookup.
 */
function naiveShare(root: string, calls: string[]): SharedFileSource {
  return {
    root,
    get(name) {
      calls.push(name);
      const absPath = path.join(root, name);
      try {
        const stats = statSync(absPath);
        if (!stats.isFile()) return undefined;
        return {
          entry: { name, size: stats.size, sha256: '0'.repeat(64), mtimeMs: stats.mtimeMs },
          absPath,
        };
      } catch {
        return undefined;
      }
    },
    list: () => [],
  };
}

interface Served {
  running: RunningHttpServer;
  port: number;
  base: string;
  transfers: TransferInfo[];
  /** Range header of every request that reached the app, in order ('' when absent). */
  ranges: string[];
}

async function serve(share: SharedFileSource, options: Partial<FilesRouterOptions> = {}): Promise<Served> {
  const app = express();
  const transfers: TransferInfo[] = [];
  const ranges: string[] = [];
  app.use((req, _res, next) => {
    ranges.push(req.headers.range ?? '');
    next();
  });
  app.use(createFilesRouter({ share, onTransfer: (info) => transfers.push(info), ...options }));
  const running = await startHttpServer(app, { host: HOST, port: 0 });
  return { running, port: running.port, base: `http://${HOST}:${running.port}`, transfers, ranges };
}

describe('nameFromSegments', () => {
  test('accepts a plain relative name and refuses hostile segment lists', () => {
    assert.deepEqual(nameFromSegments(['dir', 'a.txt']), { ok: true, name: 'dir/a.txt' });
    for (const segments of [
      [],
      ['..', 'x'],
      ['.', 'x'],
      ['a', ''],
      ['', 'etc', 'passwd'],
      ['../x'],
      ['a/b'],
      ['..\\x'],
      ['a\u0000b'],
      ['.hidden'],
      ['dir', '.git', 'config'],
    ]) {
      assert.equal(nameFromSegments(segments).ok, false, JSON.stringify(segments));
    }
  });
});

describe('files router', () => {
  let tmp: string;
  let shareDir: string;
  let served: Served;
  let share: SharedFileSource;
  const small = Buffer.from('hello, peer-to-peer world\n');
  const odd = Buffer.from('odd name content');
  const unicode = Buffer.from('unicode content');

  before(async () => {
    tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'transfer-router-'));
    shareDir = path.join(tmp, 'share');
    await fs.mkdir(path.join(shareDir, 'dir'), { recursive: true });
    await fs.writeFile(path.join(tmp, 'secret.txt'), SECRET);
    await fs.writeFile(path.join(shareDir, 'small.txt'), small);
    await fs.writeFile(path.join(shareDir, 'dir', "it's (1).txt"), odd);
    await fs.writeFile(path.join(shareDir, 'dir', 'café.bin'), unicode);
    await fs.writeFile(path.join(shareDir, 'empty.txt'), '');
    await fs.writeFile(path.join(shareDir, '.hidden'), SECRET);
    share = await scanShare(shareDir, ['small.txt', "dir/it's (1).txt", 'dir/café.bin', 'empty.txt']);
    served = await serve(share);
  });

  after(async () => {
    await served.running.close();
    await fs.rm(tmp, { recursive: true, force: true });
  });

  test('GET /files lists the share', async () => {
    const res = await request(served.port, '/files');
    assert.equal(res.status, 200);
    const body = JSON.parse(res.body.toString()) as { files: FileEntry[] };
    assert.deepEqual(
      body.files.map((f) => f.name).sort(),
      ['dir/café.bin', "dir/it's (1).txt", 'empty.txt', 'small.txt'].sort(),
    );
  });

  test('GET a file: bytes and headers', async () => {
    const res = await request(served.port, '/files/small.txt');
    assert.equal(res.status, 200);
    assert.deepEqual(res.body, small);
    assert.equal(res.headers['content-length'], String(small.length));
    assert.equal(res.headers['accept-ranges'], 'bytes');
    assert.equal(res.headers.etag, `"${sha256(small)}"`);
    assert.match(res.headers['content-type'] ?? '', /^text\/plain/);
    assert.ok(res.headers['last-modified'] && !Number.isNaN(Date.parse(res.headers['last-modified'])));
    assert.equal(res.headers['content-disposition'], "attachment; filename*=UTF-8''small.txt");
    assert.equal(res.headers['cache-control'], 'no-cache');
  });

  test('names with spaces, quotes, parentheses and non-ASCII, addressed by fileUrl()', async () => {
    const url = new URL(fileUrl(served.base, "dir/it's (1).txt"));
    const res = await request(served.port, url.pathname);
    assert.equal(res.status, 200);
    assert.deepEqual(res.body, odd);
    assert.equal(res.headers['content-disposition'], "attachment; filename*=UTF-8''it%27s%20%281%29.txt");

    const res2 = await request(served.port, new URL(fileUrl(served.base, 'dir/café.bin')).pathname);
    assert.equal(res2.status, 200);
    assert.deepEqual(res2.body, unicode);
    assert.equal(res2.headers['content-type'], 'application/octet-stream');
    assert.equal(res2.headers['content-disposition'], "attachment; filename*=UTF-8''caf%C3%A9.bin");
  });

  test('an empty file is served as 200 with no body', async () => {
    const res = await request(served.port, '/files/empty.txt');
    assert.equal(res.status, 200);
    assert.equal(res.headers['content-length'], '0');
    assert.equal(res.body.length, 0);
  });

  test('HEAD gives the headers without a body', async () => {
    const res = await request(served.port, '/files/small.txt', { method: 'HEAD' });
    assert.equal(res.status, 200);
    assert.equal(res.body.length, 0);
    assert.equal(res.headers['content-length'], String(small.length));
    assert.equal(res.headers.etag, `"${sha256(small)}"`);
    // Range is ignored on HEAD (RFC 9110 §14.2).
    const ranged = await request(served.port, '/files/small.txt', {
      method: 'HEAD',
      headers: { Range: 'bytes=0-1' },
    });
    assert.equal(ranged.status, 200);
  });

  test('unknown names and other methods are 404', async () => {
    assert.equal((await request(served.port, '/files/nope.txt')).status, 404);
    assert.equal((await request(served.port, '/files/small.txt', { method: 'POST' })).status, 404);
    assert.equal((await request(served.port, '/FILES/small.txt')).status, 404);
  });

  test('single ranges: 206 with the right bytes and Content-Range', async () => {
    const size = small.length;
    const cases: Array<[string, number, number]> = [
      ['bytes=0-4', 0, 4],
      ['bytes=7-', 7, size - 1],
      ['bytes=-5', size - 5, size - 1],
      ['bytes=3-1000', 3, size - 1],
      ['bytes=0-1,1-3', 0, 3], // overlapping ranges combine into one
    ];
    for (const [header, start, end] of cases) {
      const res = await request(served.port, '/files/small.txt', { headers: { Range: header } });
      assert.equal(res.status, 206, header);
      assert.equal(res.headers['content-range'], `bytes ${start}-${end}/${size}`, header);
      assert.equal(res.headers['content-length'], String(end - start + 1), header);
      assert.deepEqual(res.body, small.subarray(start, end + 1), header);
    }
  });

  test('unsatisfiable and malformed ranges are 416 with bytes */size', async () => {
    for (const header of [
      `bytes=${small.length}-`,
      'bytes=1000-2000',
      'bytes=-0',
      'bytes=abc',
      'bytes=',
      'items=0-1',
      'bytes=5-2',
      'bytes=0-1;x',
      'bytes 0-1',
    ]) {
      const res = await request(served.port, '/files/small.txt', { headers: { Range: header } });
      assert.equal(res.status, 416, header);
      assert.equal(res.headers['content-range'], `bytes */${small.length}`, header);
      assert.ok(!res.body.includes(small), header);
    }
    const empty = await request(served.port, '/files/empty.txt', { headers: { Range: 'bytes=0-' } });
    assert.equal(empty.status, 416);
  });

  test('several disjoint ranges get the whole file as 200', async () => {
    const res = await request(served.port, '/files/small.txt', { headers: { Range: 'bytes=0-1,5-6' } });
    assert.equal(res.status, 200);
    assert.deepEqual(res.body, small);
  });

  test('If-Range: matching ETag honours Range, anything else gets the full 200', async () => {
    const etag = `"${sha256(small)}"`;
    const match = await request(served.port, '/files/small.txt', {
      headers: { Range: 'bytes=2-', 'If-Range': etag },
    });
    assert.equal(match.status, 206);
    assert.deepEqual(match.body, small.subarray(2));
    for (const ifRange of [`"${'0'.repeat(64)}"`, `W/${etag}`, 'Mon, 01 Jan 2001 00:00:00 GMT']) {
      const res = await request(served.port, '/files/small.txt', {
        headers: { Range: 'bytes=2-', 'If-Range': ifRange },
      });
      assert.equal(res.status, 200, ifRange);
      assert.deepEqual(res.body, small, ifRange);
    }
    const lastModified = match.headers['last-modified'] ?? '';
    const byDate = await request(served.port, '/files/small.txt', {
      headers: { Range: 'bytes=2-', 'If-Range': lastModified },
    });
    assert.equal(byDate.status, 206);
    // A failed If-Range wins over a malformed Range: the Range is ignored altogether.
    const ignored = await request(served.port, '/files/small.txt', {
      headers: { Range: 'bytes=abc', 'If-Range': `"${'0'.repeat(64)}"` },
    });
    assert.equal(ignored.status, 200);
  });

  test('If-None-Match with the sha gives 304; another tag gives 200', async () => {
    const etag = `"${sha256(small)}"`;
    const fresh = await request(served.port, '/files/small.txt', { headers: { 'If-None-Match': etag } });
    assert.equal(fresh.status, 304);
    assert.equal(fresh.body.length, 0);
    assert.equal(fresh.headers.etag, etag);
    const stale = await request(served.port, '/files/small.txt', { headers: { 'If-None-Match': '"abc"' } });
    assert.equal(stale.status, 200);
    assert.deepEqual(stale.body, small);
  });

  test('onTransfer reports each answer for a shared name', async () => {
    // A report of an earlier test's transfer may still land after `before`: look for this one's.
    const before = served.transfers.length;
    await request(served.port, '/files/small.txt', { headers: { Range: 'bytes=0-2' } });
    await waitFor(() => served.transfers.slice(before).some((t) => t.status === 206), 'onTransfer');
    assert.deepEqual(
      served.transfers.slice(before).find((t) => t.status === 206),
      { name: 'small.txt', status: 206, bytes: 3, complete: true },
    );
  });

  test('a file removed or changed after the scan is 404, not an error', async () => {
    const dir = await fs.mkdtemp(path.join(tmp, 'changing-'));
    await fs.writeFile(path.join(dir, 'gone.txt'), 'soon gone');
    await fs.writeFile(path.join(dir, 'grown.txt'), 'short');
    const changing = await scanShare(dir, ['gone.txt', 'grown.txt']);
    const s = await serve(changing);
    try {
      await fs.rm(path.join(dir, 'gone.txt'));
      await fs.appendFile(path.join(dir, 'grown.txt'), ' and now longer');
      assert.equal((await request(s.port, '/files/gone.txt')).status, 404);
      const grown = await request(s.port, '/files/grown.txt');
      assert.equal(grown.status, 404);
      assert.equal(grown.headers.etag, undefined);
    } finally {
      await s.running.close();
    }
  });
});

describe('files router against hostile paths', () => {
  let tmp: string;
  let shareDir: string;
  let served: Served;
  const getCalls: string[] = [];

  before(async () => {
    tmp = await fs.realpath(await fs.mkdtemp(path.join(os.tmpdir(), 'transfer-hostile-')));
    shareDir = path.join(tmp, 'share');
    await fs.mkdir(path.join(shareDir, 'sub'), { recursive: true });
    await fs.mkdir(path.join(tmp, 'outside'));
    await fs.writeFile(path.join(tmp, 'secret.txt'), SECRET);
    await fs.writeFile(path.join(tmp, 'outside', 'secret.txt'), SECRET);
    await fs.writeFile(path.join(shareDir, 'a.txt'), 'public a');
    await fs.writeFile(path.join(shareDir, 'sub', 'a.txt'), 'public sub/a');
    await fs.writeFile(path.join(shareDir, '.hidden'), SECRET);
    served = await serve(naiveShare(shareDir, getCalls));
  });

  after(async () => {
    await served.running.close();
    await fs.rm(tmp, { recursive: true, force: true });
  });

  test('the control case is served, so the refusals below mean something', async () => {
    const res = await request(served.port, '/files/sub/a.txt');
    assert.equal(res.status, 200);
    assert.equal(res.body.toString(), 'public sub/a');
  });

  const corpus: Array<[string, number]> = [
    ['/files/../secret.txt', 404],
    ['/files/sub/../../secret.txt', 404],
    ['/files/sub/../a.txt', 404],
    ['/files/./a.txt', 404],
    ['/files/%2e%2e/secret.txt', 404],
    ['/files/%2E%2E/secret.txt', 404],
    ['/files/%2e%2e%2fsecret.txt', 404],
    ['/files/..%2fsecret.txt', 404],
    ['/files/..%2Fsecret.txt', 404],
    ['/files/sub%2fa.txt', 404],
    ['/files/%2fetc%2fpasswd', 404],
    ['/files//etc/passwd', 404],
    ['/files/%2Fetc/passwd', 404],
    ['/files/..\\secret.txt', 404],
    ['/files/..%5csecret.txt', 404],
    ['/files/sub%5ca.txt', 404],
    ['/files/sub\\a.txt', 404],
    ['/files/%5c%5cserver%5cshare', 404],
    ['/files/C:%5cWindows%5cwin.ini', 404],
    ['/files/a.txt%00', 404],
    ['/files/a.txt%00.png', 404],
    ['/files/%00', 404],
    ['/files/a%0a.txt', 404],
    ['/files/a.txt%7f', 404],
    ['/files/%252e%252e/secret.txt', 404],
    ['/files/%252e%252e%252fsecret.txt', 404],
    ['/files/.hidden', 404],
    ['/files/%2ehidden', 404],
    ['/files/a.txt/', 404],
    ['/files/sub//a.txt', 404],
    ['/files/', 404],
    ['/files/..', 404],
    ['/files/%2e', 404],
    [`/files/${'a/'.repeat(600)}a.txt`, 404],
    ['http://127.0.0.1/files/../secret.txt', 404],
    ['/files/%', 400],
    ['/files/%zz', 400],
    ['/files/%E0%A4%A', 400],
    ['/files/..%c0%af..%c0%afsecret.txt', 400],
  ];

  for (const [hostile, expected] of corpus) {
    test(`refuses ${hostile.slice(0, 60)} with ${expected}`, async () => {
      for (const method of ['GET', 'HEAD']) {
        const res = await request(served.port, hostile, { method });
        assert.equal(res.status, expected, `${method} ${hostile}`);
        assert.ok(!res.body.toString('latin1').includes(SECRET), `${method} ${hostile} leaked the secret`);
        assert.ok(!res.body.toString().includes('public'), `${method} ${hostile} served a file`);
      }
    });
  }

  test('no hostile name ever reached share.get()', () => {
    assert.ok(getCalls.length > 0);
    for (const name of getCalls) {
      assert.ok(FileNameSchema.safeParse(name).success, `share.get() saw ${JSON.stringify(name)}`);
    }
  });

  test('a symlink swapped in after the scan that leads outside is 404', async () => {
    const dir = path.join(tmp, 'swap-share');
    const outside = path.join(tmp, 'swap-outside');
    await fs.mkdir(path.join(dir, 'docs'), { recursive: true });
    await fs.mkdir(outside);
    // Outside targets with the size and mtime the scan recorded: only the realpath check can tell them apart.
    const fixedTime = new Date('2020-01-01T00:00:00Z');
    const files: Array<[string, string]> = [
      [path.join(dir, 'swap.txt'), 'x'.repeat(SECRET.length)],
      [path.join(dir, 'docs', 'secret.txt'), 'y'.repeat(SECRET.length)],
      [path.join(outside, 'swap-target.txt'), SECRET],
      [path.join(outside, 'secret.txt'), SECRET],
    ];
    for (const [file, text] of files) {
      await fs.writeFile(file, text);
      await fs.utimes(file, fixedTime, fixedTime);
    }
    const share = await scanShare(dir, ['swap.txt', 'docs/secret.txt']);
    const s = await serve(share);
    try {
      assert.equal((await request(s.port, '/files/swap.txt')).status, 200);
      assert.equal((await request(s.port, '/files/docs/secret.txt')).status, 200);
      // The file and a directory are replaced by symlinks leading out of the share.
      await fs.rm(path.join(dir, 'swap.txt'));
      await fs.symlink(path.join(outside, 'swap-target.txt'), path.join(dir, 'swap.txt'));
      await fs.rm(path.join(dir, 'docs'), { recursive: true });
      await fs.symlink(outside, path.join(dir, 'docs'));
      for (const name of ['swap.txt', 'docs/secret.txt']) {
        for (const method of ['GET', 'HEAD']) {
          const res = await request(s.port, `/files/${name}`, { method });
          assert.equal(res.status, 404, `${method} ${name}`);
          assert.ok(!res.body.toString().includes(SECRET));
        }
      }
    } finally {
      await s.running.close();
    }
  });

  test('malformed percent-encoding is a JSON 400 from the router, not an HTML stack trace', async () => {
    const res = await request(served.port, '/files/%E0%A4%A');
    assert.equal(res.status, 400);
    assert.match(res.headers['content-type'] ?? '', /^application\/json/);
    assert.doesNotMatch(res.body.toString(), /at .*\(.*:\d+:\d+\)/);
  });
});

describe('files router concurrency limit', () => {
  let tmp: string;
  let served: Served;
  const bigSize = 24 * 1024 * 1024;

  before(async () => {
    tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'transfer-limit-'));
    await fs.writeFile(path.join(tmp, 'big.bin'), randomBytes(bigSize));
    await fs.writeFile(path.join(tmp, 'small.txt'), 'small');
    served = await serve(await scanShare(tmp, ['big.bin', 'small.txt']), {
      maxConcurrentTransfers: 1,
      retryAfterSeconds: 2,
    });
  });

  after(async () => {
    await served.running.close();
    await fs.rm(tmp, { recursive: true, force: true });
  });

  test('over the limit is 503 + Retry-After; HEAD and listing still answer; an aborted client frees its slot', async () => {
    // A reader that never reads holds the only slot: the big body cannot drain into socket buffers.
    const holder = http.request({ host: HOST, port: served.port, path: '/files/big.bin', agent: false });
    holder.on('error', () => {});
    holder.end();
    const [holdRes] = (await once(holder, 'response')) as [http.IncomingMessage];
    holdRes.on('error', () => {});
    holdRes.pause();
    assert.equal(holdRes.statusCode, 200);

    const busy = await request(served.port, '/files/small.txt');
    assert.equal(busy.status, 503);
    assert.equal(busy.headers['retry-after'], '2');
    assert.equal(busy.headers.etag, undefined);
    assert.equal((await request(served.port, '/files/big.bin', { method: 'HEAD' })).status, 200);
    assert.equal((await request(served.port, '/files')).status, 200);
    // Requests that send no body do not need a slot either.
    const etag = `"${sha256('small')}"`;
    assert.equal(
      (await request(served.port, '/files/small.txt', { headers: { 'If-None-Match': etag } })).status,
      304,
    );

    holder.destroy();
    await waitFor(
      async () => (await request(served.port, '/files/small.txt')).status === 200,
      'the aborted transfer to free its slot',
    );
    await waitFor(
      () => served.transfers.some((t) => t.name === 'big.bin' && t.status === 200 && !t.complete),
      'onTransfer for the aborted transfer',
    );
    const aborted = served.transfers.find((t) => t.name === 'big.bin' && !t.complete);
    assert.ok(aborted && aborted.bytes < bigSize);
    // Finished transfers release their slot too: several in a row all succeed.
    for (let i = 0; i < 3; i += 1) assert.equal((await request(served.port, '/files/small.txt')).status, 200);
  });
});

describe('startHttpServer', () => {
  test('close() drops idle keep-alive sockets at once and cuts in-flight transfers after the grace', async () => {
    const tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'transfer-close-'));
    try {
      await fs.writeFile(path.join(tmp, 'big.bin'), randomBytes(16 * 1024 * 1024));
      await fs.writeFile(path.join(tmp, 'small.txt'), 'small');
      const app = express();
      app.use(createFilesRouter({ share: await scanShare(tmp, ['big.bin', 'small.txt']) }));
      const running = await startHttpServer(app, { host: HOST, port: 0, closeGraceMs: 300 });

      // An idle keep-alive connection must not hold close() for the keep-alive timeout.
      const agent = new http.Agent({ keepAlive: true });
      await new Promise<void>((resolve, reject) => {
        http
          .get({ host: HOST, port: running.port, path: '/files/small.txt', agent }, (res) => {
            res.resume();
            res.on('end', resolve);
          })
          .on('error', reject);
      });
      // And a stalled transfer holds it only for the grace.
      const holder = http.request({ host: HOST, port: running.port, path: '/files/big.bin', agent: false });
      holder.on('error', () => {});
      holder.end();
      const [holdRes] = (await once(holder, 'response')) as [http.IncomingMessage];
      holdRes.on('error', () => {});
      holdRes.pause();

      const started = Date.now();
      await running.close();
      const tookMs = Date.now() - started;
      assert.ok(tookMs >= 250 && tookMs < 3_000, `close took ${tookMs} ms`);
      assert.equal(running.server.listening, false);
      // The cut only shows once the client reads past what was already in flight (TCP delivers the FIN last).
      let receivedBytes = 0;
      holdRes.on('data', (chunk: Buffer) => {
        receivedBytes += chunk.length;
      });
      const closed = new Promise((resolve) => holdRes.once('close', resolve));
      holdRes.resume();
      await closed;
      assert.equal(holdRes.complete, false);
      assert.ok(receivedBytes < 16 * 1024 * 1024);
      await running.close(); // twice is fine
      agent.destroy();
    } finally {
      await fs.rm(tmp, { recursive: true, force: true });
    }
  });

  test('rejects when the port is taken', async () => {
    const first = await startHttpServer(express(), { host: HOST, port: 0 });
    try {
      await assert.rejects(startHttpServer(express(), { host: HOST, port: first.port }), /EADDRINUSE/);
    } finally {
      await first.close();
    }
  });
});

// ---------------------------------------------------------------------------------------------- downloader

interface RawServer {
  url: string;
  /** Range header of every request, '' when absent. */
  ranges: string[];
  close(): Promise<void>;
}

async function rawServer(
  handler: (req: http.IncomingMessage, res: http.ServerResponse, n: number) => void,
): Promise<RawServer> {
  const ranges: string[] = [];
  const server = http.createServer((req, res) => {
    ranges.push(req.headers.range ?? '');
    handler(req, res, ranges.length);
  });
  server.listen(0, HOST);
  await once(server, 'listening');
  const port = (server.address() as AddressInfo).port;
  return {
    url: `http://${HOST}:${port}/files/file.bin`,
    ranges,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** Sends the first `cut` bytes with a full-length 200, then kills the connection. */
function sendThenDie(content: Buffer, cut: number, etag: string) {
  return (_req: http.IncomingMessage, res: http.ServerResponse): void => {
    res.writeHead(200, { 'Content-Length': content.length, ETag: etag });
    res.write(content.subarray(0, cut), () => res.socket?.destroy());
  };
}

function sendWhole(content: Buffer, etag?: string) {
  return (_req: http.IncomingMessage, res: http.ServerResponse): void => {
    res.writeHead(200, { 'Content-Length': content.length, ...(etag ? { ETag: etag } : {}) });
    res.end(content);
  };
}

/** Records how far a peer's first run of bytes got (until another peer's bytes arrive). */
function progressOf(peerId: string): { bytes: number; onProgress: (p: DownloadProgress) => void } {
  const tracker = {
    bytes: 0,
    done: false,
    onProgress(p: DownloadProgress): void {
      if (p.peerId !== peerId) tracker.done = true;
      else if (!tracker.done) tracker.bytes = p.receivedBytes;
    },
  };
  return tracker;
}

async function closedPortUrl(): Promise<string> {
  const server = http.createServer();
  server.listen(0, HOST);
  await once(server, 'listening');
  const port = (server.address() as AddressInfo).port;
  await new Promise((resolve) => server.close(resolve));
  return `http://${HOST}:${port}/files/file.bin`;
}

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
    corrupt[corrupt.length >> 1] ^= 0xff;
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
      failures: [],
      badSources: [],
    });
    assert.deepEqual(await fs.readFile(destPath), content);
    assert.deepEqual(await fs.readdir(path.dirname(destPath)), ['file.bin']);
    assert.equal(progress.at(-1), content.length);
    assert.ok(progress.every((v, i) => i === 0 || v > (progress[i - 1] ?? 0)));
  });

  test('resumes on the second source with Range from the byte reached when the first dies mid-body', async () => {
    const half = Math.floor(content.length / 2);
    const dying = await rawServer(sendThenDie(content, half, etag));
    const before = good.ranges.length;
    try {
      const destPath = path.join(await freshDir(), 'file.bin');
      const reached = progressOf('dying');
      const result = await downloadFile({
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
        sources: [{ url: goodUrl, peerId: 'good' }],
        sha256: sum,
        size: content.length,
        destPath,
      }),
      (err: unknown) => isP2PError(err, 'IO_ERROR'),
    );
    assert.equal(await fs.readFile(destPath, 'utf8'), 'something else');

    const replaced = await downloadFile({
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

  test('the number of segments is bounded', () => {
    const plan = new SegmentPlan({ sizeBytes: 1_000_000, segmentBytes: 1, maxSegments: 10 });
    assert.equal(plan.segmentBytes, 100_000);
  });
});

/** Range header `bytes=a-b` (or `bytes=a-`) as [a, b]; undefined for anything else. */
function parseRangeHeader(header: string | undefined, size: number): [number, number] | undefined {
  const match = /^bytes=(\d+)-(\d*)$/.exec(header ?? '');
  if (!match) return undefined;
  const start = Number(match[1]);
  const end = match[2] === '' ? size - 1 : Math.min(Number(match[2]), size - 1);
  return start <= end ? [start, end] : undefined;
}

/**
 * A peer that honours single ranges (206) and otherwise sends everything (200); `cutAfterBytes` sends that
 * much of the body then kills the connection, `stallAfterBytes` sends that much then goes silent, and
 * `chunkDelayMs` paces the body in 16 KiB writes.
 */
function sendRanges(
  data: Buffer,
  etag: string,
  behaviour: { cutAfterBytes?: number; stallAfterBytes?: number; chunkDelayMs?: number } = {},
) {
  return (req: http.IncomingMessage, res: http.ServerResponse): void => {
    const range = parseRangeHeader(req.headers.range, data.length);
    let body = data;
    if (range) {
      const [start, end] = range;
      body = data.subarray(start, end + 1);
      res.writeHead(206, {
        'Content-Length': body.length,
        'Content-Range': `bytes ${start}-${end}/${data.length}`,
        ETag: etag,
      });
    } else {
      res.writeHead(200, { 'Content-Length': body.length, ETag: etag });
    }
    if (behaviour.cutAfterBytes !== undefined) {
      res.write(body.subarray(0, behaviour.cutAfterBytes), () => res.socket?.destroy());
      return;
    }
    if (behaviour.stallAfterBytes !== undefined) {
      res.write(body.subarray(0, behaviour.stallAfterBytes));
      return;
    }
    const delayMs = behaviour.chunkDelayMs;
    if (delayMs === undefined) {
      res.end(body);
      return;
    }
    const step = 16 * 1024;
    let at = 0;
    const next = (): void => {
      if (res.destroyed) return;
      if (at >= body.length) {
        res.end();
        return;
      }
      res.write(body.subarray(at, at + step));
      at += step;
      setTimeout(next, delayMs);
    };
    next();
  };
}

// A timeout so that a scheduling bug fails the suite instead of hanging it.
describe('downloadFile from several sources at once', { timeout: 60_000 }, () => {
  const segmentBytes = 256 * 1024;
  const parallelOptions = { parallelMinBytes: 1024 * 1024, segmentBytes };
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

  test('an idle source takes over the tail of a slow source segment', async () => {
    const before = goods.map((g) => g.ranges.length);
    const stolenTail = (): [number, number] | undefined =>
      goods[0]?.ranges
        .slice(before[0])
        .map((h) => parseRangeHeader(h, content.length))
        .find((r) => r !== undefined && r[0] > 0 && r[1] === segmentBytes - 1);
    // The slow source sends a little of its first segment, then holds the rest back until the good one has
    // taken over its tail (or 5 s have passed, and the assertions below fail).
    const slow = await rawServer((req, res, count) => {
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
      waitFor(() => stolenTail() !== undefined, 'the tail to be taken over')
        .catch(() => {})
        .then(() => res.end(content.subarray(start + 16 * 1024, end + 1)));
    });
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

describe('http server timeouts', () => {
  test('a connection that sends nothing is closed after the idle timeout', async () => {
    const running = await startHttpServer(express(), { host: '127.0.0.1', port: 0, idleTimeoutMs: 300 });
    try {
      const socket = net.connect(running.port, '127.0.0.1');
      await once(socket, 'connect');
      const opened = Date.now();
      socket.on('error', () => {});
      await Promise.race([
        once(socket, 'close'),
        new Promise((_, reject) =>
          setTimeout(() => reject(new Error('idle socket still open after 5 s')), 5000),
        ),
      ]);
      const lifetimeMs = Date.now() - opened;
      assert.ok(lifetimeMs >= 250, `closed after ${lifetimeMs} ms, not before the timeout`);
    } finally {
      await running.close();
    }
  });
});
