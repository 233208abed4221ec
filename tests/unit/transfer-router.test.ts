import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import fs from 'node:fs/promises';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import express from 'express';
import {
  createFilesRouter,
  nameFromSegments,
  type SharedFileSource,
  startHttpServer,
} from '../../libs/file-server/index.js';
import { type FileEntry, FileNameSchema, fileUrl } from '../../libs/protocol/index.js';
import {
  HOST,
  naiveShare,
  request,
  SECRET,
  type Served,
  scanShare,
  serve,
  sha256,
  waitFor,
} from '../helpers/transfer-fixtures.js';

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
    assert.equal(res.headers['content-disposition'], 'attachment; filename=small.txt');
    assert.equal(res.headers['cache-control'], 'no-cache');
  });

  test('names with spaces, quotes, parentheses and non-ASCII, addressed by fileUrl()', async () => {
    const url = new URL(fileUrl(served.base, "dir/it's (1).txt"));
    const res = await request(served.port, url.pathname);
    assert.equal(res.status, 200);
    assert.deepEqual(res.body, odd);
    assert.equal(res.headers['content-disposition'], `attachment; filename="it's (1).txt"`);

    const res2 = await request(served.port, new URL(fileUrl(served.base, 'dir/café.bin')).pathname);
    assert.equal(res2.status, 200);
    assert.deepEqual(res2.body, unicode);
    assert.equal(res2.headers['content-type'], 'application/octet-stream');
    // An ASCII fallback for old clients, the exact name in RFC 8187 form for the rest.
    assert.equal(
      res2.headers['content-disposition'],
      `attachment; filename="caf?.bin"; filename*=UTF-8''caf%C3%A9.bin`,
    );
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
