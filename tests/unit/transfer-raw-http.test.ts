/**
 * The raw socket path of a download (net `onread` into shared slabs, the response head parsed by us): the
 * head parser and framing on their own, the slabs' reuse, and downloads from servers that write bytes
 * straight to the socket: heads split across reads, huge, malformed, without a length, chunked; bodies
 * ending early or running long.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import fs from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { isP2PError, type P2PError } from '../../libs/errors/index.js';
import {
  bodyFraming,
  downloadFile,
  MAX_HEAD_BYTES,
  parseResponseHead,
  ReadSlabs,
  type ResponseHead,
} from '../../libs/transfer/index.js';
import { HOST, sha256 } from '../helpers/transfer-fixtures.js';

const SEQUENTIAL = { maxParallelSources: 1 } as const;

function parse(text: string): ReturnType<typeof parseResponseHead> {
  return parseResponseHead(Buffer.from(text, 'latin1'));
}

function head(text: string): ResponseHead {
  const result = parse(text);
  assert.equal(result.kind, 'head', JSON.stringify(result));
  return (result as { head: ResponseHead }).head;
}

describe('parseResponseHead', () => {
  test('a complete head: status, lower-case names, repeated fields joined, where the body starts', () => {
    const text = 'HTTP/1.1 206 Partial Content\r\nContent-Length: 5\r\nX-A: 1\r\nx-a:  2 \r\n\r\n';
    const parsed = head(`${text}hello`);
    assert.equal(parsed.status, 206);
    assert.equal(parsed.headers.get('content-length'), '5');
    assert.equal(parsed.headers.get('x-a'), '1, 2');
    assert.equal(parsed.headBytes, text.length);
    assert.equal(head('HTTP/1.0 200\r\n\r\n').status, 200);
  });

  test('incomplete until the blank line, whatever byte it stops at', () => {
    const text = 'HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n';
    for (let cut = 0; cut < text.length; cut++)
      assert.equal(parse(text.slice(0, cut)).kind, 'incomplete', `cut at ${cut}`);
    assert.equal(parse(text).kind, 'head');
    // Only `length` bytes count, whatever follows them in the buffer.
    assert.equal(parseResponseHead(Buffer.from(text), text.length - 1).kind, 'incomplete');
  });

  test('a head over MAX_HEAD_BYTES is refused, complete or not', () => {
    const big = `HTTP/1.1 200 OK\r\nX: ${'a'.repeat(MAX_HEAD_BYTES)}`;
    const open = parse(big);
    assert.equal(open.kind, 'bad');
    assert.match((open as { reason: string }).reason, /over/);
    assert.equal(parse(`${big}\r\n\r\n`).kind, 'bad');
  });

  test('malformed status lines and fields are refused', () => {
    for (const bad of [
      'HTTP/2 200 OK\r\n\r\n',
      'HTTP/1.1 99 Low\r\n\r\n',
      'HTTP/1.1 2000 OK\r\n\r\n',
      'ICY 200 OK\r\n\r\n',
      'HTTP/1.1 200 OK\r\nNoColon\r\n\r\n',
      'HTTP/1.1 200 OK\r\nBad Name: x\r\n\r\n',
      'HTTP/1.1 200 OK\r\nX: a\r\n folded\r\n\r\n',
      'HTTP/1.1 200 OK\r\nX: a\nY: b\r\n\r\n',
      'HTTP/1.1 200 OK\r\nX: \u0000\r\n\r\n',
    ])
      assert.equal(parse(bad).kind, 'bad', JSON.stringify(bad));
  });

  test('blanks before a bad byte are refused in linear time: a hostile head froze the receiving thread', () => {
    // The best of a few runs of each, against a well-formed head of the same length in the same run.
    const bestMs = (text: string, kind: string): number => {
      const bytes = Buffer.from(text, 'latin1');
      let best = Number.POSITIVE_INFINITY;
      for (let run = 0; run < 3; run++) {
        const started = performance.now();
        assert.equal(parseResponseHead(bytes).kind, kind);
        best = Math.min(best, performance.now() - started);
      }
      return best;
    };
    const blanks = 1500;
    const fine = bestMs(`HTTP/1.1 200 OK\r\nX: ${'a'.repeat(blanks)}\r\n\r\n`, 'head');
    // With one regex for the whole field: about a second here, half an hour at MAX_HEAD_BYTES.
    const hostile = bestMs(`HTTP/1.1 200 OK\r\nX: ${' \t'.repeat(blanks / 2)}\u0001\r\n\r\n`, 'bad');
    assert.ok(hostile < 50 * fine + 5, `${hostile.toFixed(2)} ms, against ${fine.toFixed(3)} ms`);
  });
});

describe('bodyFraming', () => {
  const framing = (fields: string): ReturnType<typeof bodyFraming> =>
    bodyFraming(head(`HTTP/1.1 200 OK\r\n${fields}\r\n`));
  test('Content-Length, none, a Transfer-Encoding, and lengths that cannot be trusted', () => {
    assert.equal(framing('Content-Length: 42\r\n'), 42);
    assert.equal(framing('Content-Length: 42\r\nContent-Length: 42\r\n'), 42);
    assert.equal(framing(''), 'until-close');
    assert.equal(framing('Transfer-Encoding: chunked\r\nContent-Length: 3\r\n'), 'unsupported');
    for (const bad of ['-1', 'abc', '1e3', '4 2', '1234567890123456', '42, 43'])
      assert.equal(typeof framing(`Content-Length: ${bad}\r\n`), 'object', bad);
  });
});

describe('ReadSlabs', () => {
  test('a slab is reused only once carved out and every body byte in it released', () => {
    const slabs = new ReadSlabs();
    const reader = slabs.reader();
    const first = reader.next();
    reader.commit(first.length, first.length);
    const held = Buffer.from(first.buffer, first.byteOffset, first.length);
    assert.ok(slabs.owns(held));
    reader.close();
    // Retired but its bytes not released: a new reader gets other memory.
    const other = slabs.reader();
    const next = other.next();
    assert.notEqual(next.buffer, first.buffer);
    slabs.release(held);
    assert.ok(!slabs.owns(held));
    other.close();
    const third = slabs.reader().next();
    assert.ok(third.buffer === first.buffer || third.buffer === next.buffer);
  });

  test('consecutive reads go one after the other into the same slab', () => {
    const reader = new ReadSlabs().reader();
    const a = reader.next();
    reader.commit(1000, 1000);
    const b = reader.next();
    assert.equal(b.buffer, a.buffer);
    assert.equal(b.byteOffset, a.byteOffset + 1000);
  });
});

/** A server writing what `answer` says to each connection, once its request head arrived. */
async function socketServer(
  answer: (socket: net.Socket, request: string) => void,
): Promise<{ url: string; requests: string[]; close(): Promise<void> }> {
  const requests: string[] = [];
  const sockets = new Set<net.Socket>();
  const server = net.createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => {});
    let text = '';
    socket.on('data', (data) => {
      if (text.includes('\r\n\r\n')) return;
      text += data.toString('latin1');
      if (!text.includes('\r\n\r\n')) return;
      requests.push(text);
      answer(socket, text);
    });
  });
  server.listen(0, HOST);
  await once(server, 'listening');
  const { port } = server.address() as net.AddressInfo;
  return {
    url: `http://${HOST}:${port}/files/file.bin`,
    requests,
    close: async () => {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** Writes `parts` one after the other, each in its own socket write after the previous was flushed. */
async function writeApart(socket: net.Socket, parts: Array<string | Buffer>): Promise<void> {
  for (const part of parts) {
    await new Promise<void>((resolve, reject) =>
      socket.write(part, (err) => (err ? reject(err) : resolve())),
    );
    await new Promise((resolve) => setImmediate(resolve));
  }
}

/** A 200 head announcing `announced` bytes (default: all of `body`), then `body`. */
function answer200(body: Buffer, announced = body.length): Buffer {
  return Buffer.concat([Buffer.from(`HTTP/1.1 200 OK\r\nContent-Length: ${announced}\r\n\r\n`), body]);
}

describe('downloads over the raw socket path', { timeout: 60_000 }, () => {
  let tmp: string;
  let content: Buffer;
  let sum: string;
  let etag: string;
  let n = 0;
  const dest = async (): Promise<string> => {
    n += 1;
    const dir = path.join(tmp, `d${n}`);
    await fs.mkdir(dir);
    return path.join(dir, 'f.bin');
  };
  const get = (url: string, destPath: string, extra: Record<string, unknown> = {}) =>
    downloadFile({
      ...SEQUENTIAL,
      sources: [{ url, peerId: 'p' }],
      sha256: sum,
      size: content.length,
      destPath,
      ...extra,
    });
  const failureOf = async (promise: Promise<unknown>): Promise<{ code: string; message: string }> => {
    const err = await promise.then(
      () => assert.fail('should have failed'),
      (e: unknown) => e as P2PError,
    );
    assert.ok(isP2PError(err, 'DOWNLOAD_FAILED'), String(err));
    const failures = err.details.failures as Array<{ code: string; message: string }>;
    assert.ok(failures[0] !== undefined);
    return failures[0];
  };

  before(async () => {
    tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'raw-http-'));
    content = randomBytes(3 * 1024 * 1024 + 17);
    sum = sha256(content);
    etag = `"${sum}"`;
  });
  after(async () => {
    await fs.rm(tmp, { recursive: true, force: true });
  });

  test('a head split byte by byte across reads, then the body in pieces: verified', async () => {
    const head = `HTTP/1.1 200 OK\r\nContent-Length: ${content.length}\r\nETag: ${etag}\r\n\r\n`;
    const server = await socketServer((socket) => {
      void writeApart(socket, [...head.split(''), content.subarray(0, 1000), content.subarray(1000)]).then(
        () => socket.end(),
        () => {},
      );
    });
    try {
      const out = await dest();
      await get(server.url, out);
      assert.ok((await fs.readFile(out)).equals(content));
      assert.match(server.requests[0] ?? '', /^GET \/files\/file\.bin HTTP\/1\.1\r\n/);
    } finally {
      await server.close();
    }
  });

  test('bytes after the announced length are not taken; no length reads to the close', async () => {
    const long = await socketServer((socket) => {
      socket.end(
        answer200(Buffer.concat([content, Buffer.from('HTTP/1.1 200 OK\r\n\r\ngarbage')]), content.length),
      );
    });
    const unframed = await socketServer((socket) => {
      socket.end(Buffer.concat([Buffer.from('HTTP/1.1 200 OK\r\n\r\n'), content]));
    });
    try {
      for (const server of [long, unframed]) {
        const out = await dest();
        await get(server.url, out);
        assert.ok((await fs.readFile(out)).equals(content));
      }
    } finally {
      await long.close();
      await unframed.close();
    }
  });

  test('a length repeated with the same value is one length, as node:http takes it', async () => {
    const server = await socketServer((socket) => {
      const length = `Content-Length: ${content.length}\r\n`;
      socket.end(
        Buffer.concat([Buffer.from(`HTTP/1.1 200 OK\r\n${length}${length.toLowerCase()}\r\n`), content]),
      );
    });
    try {
      const out = await dest();
      await get(server.url, out);
      assert.ok((await fs.readFile(out)).equals(content));
    } finally {
      await server.close();
    }
  });

  test('a chunked answer is left to node:http, and verifies', async () => {
    const server = await socketServer((socket) => {
      const half = content.length >> 1;
      socket.end(
        Buffer.concat([
          Buffer.from('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n'),
          Buffer.from(`${half.toString(16)}\r\n`),
          content.subarray(0, half),
          Buffer.from(`\r\n${(content.length - half).toString(16)}\r\n`),
          content.subarray(half),
          Buffer.from('\r\n0\r\n\r\n'),
        ]),
      );
    });
    try {
      const out = await dest();
      await get(server.url, out);
      assert.ok((await fs.readFile(out)).equals(content));
      assert.equal(server.requests.length, 2);
    } finally {
      await server.close();
    }
  });

  test('a huge head, a bad status line, a bad length, an early close: failures, never a hang', async () => {
    const huge = await socketServer((socket) => {
      socket.write(`HTTP/1.1 200 OK\r\nX: ${'a'.repeat(4 * MAX_HEAD_BYTES)}`);
    });
    const badStatus = await socketServer((socket) => socket.end('HTTP/1.1 2x0 OK\r\n\r\n'));
    const badLength = await socketServer((socket) =>
      socket.end('HTTP/1.1 200 OK\r\nContent-Length: 1, 2\r\n\r\n'),
    );
    const headless = await socketServer((socket) => socket.end('HTTP/1.1 200 OK\r\nContent-'));
    const short = await socketServer((socket) =>
      socket.end(answer200(content.subarray(0, 1000), content.length)),
    );
    try {
      const cases: Array<[string, string, RegExp]> = [
        [huge.url, 'CONNECT_FAILED', /head over/],
        [badStatus.url, 'CONNECT_FAILED', /status line/],
        [badLength.url, 'CONNECT_FAILED', /Content-Length/],
        [headless.url, 'CONNECT_FAILED', /before the end of the response head/],
        [short.url, 'CONNECTION_LOST', /missing|ended/],
      ];
      for (const [url, code, message] of cases) {
        const out = await dest();
        const failure = await failureOf(get(url, out, { connectTimeoutMs: 5_000 }));
        assert.equal(failure.code, code, `${url}: ${failure.message}`);
        assert.match(failure.message, message);
        assert.deepEqual(await fs.readdir(path.dirname(out)), []);
      }
    } finally {
      await Promise.all([huge, badStatus, badLength, headless, short].map((server) => server.close()));
    }
  });

  test('a 101, left to node:http (which drops it unanswered), fails instead of hanging past every deadline', async () => {
    const server = await socketServer((socket) =>
      socket.end('HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\nConnection: upgrade\r\n\r\n'),
    );
    let timer: NodeJS.Timeout | undefined;
    const hung = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () => reject(new Error('still no outcome 10 s after its 1 s connect timeout')),
        10_000,
      );
    });
    try {
      const failure = await Promise.race([
        failureOf(get(server.url, await dest(), { connectTimeoutMs: 1_000 })),
        hung,
      ]);
      assert.equal(failure.code, 'CONNECT_FAILED', failure.message);
      assert.equal(server.requests.length, 2, 'asked over the raw path, then through node:http');
    } finally {
      clearTimeout(timer);
      await server.close();
    }
  });

  test('a redirect is refused: the address it names is never asked', async () => {
    const target = await socketServer((socket) => socket.end(answer200(content)));
    const redirecting = await socketServer((socket) =>
      socket.end(`HTTP/1.1 302 Found\r\nLocation: ${target.url}\r\nContent-Length: 0\r\n\r\n`),
    );
    try {
      const failure = await failureOf(get(redirecting.url, await dest()));
      assert.equal(failure.code, 'CONNECT_FAILED');
      assert.match(failure.message, /redirect refused/);
      assert.equal(target.requests.length, 0);
    } finally {
      await target.close();
      await redirecting.close();
    }
  });

  test('a head that never ends hits the connect timeout; a stalled body the idle timeout', async () => {
    const slowHead = await socketServer((socket) => socket.write('HTTP/1.1 200 OK\r\n'));
    const stalled = await socketServer((socket) =>
      socket.write(answer200(content.subarray(0, 1000), content.length)),
    );
    try {
      const slow = await failureOf(get(slowHead.url, await dest(), { connectTimeoutMs: 200 }));
      assert.equal(slow.code, 'CONNECT_TIMEOUT');
      const idle = await failureOf(get(stalled.url, await dest(), { idleTimeoutMs: 200 }));
      assert.equal(idle.code, 'IDLE_TIMEOUT');
    } finally {
      await slowHead.close();
      await stalled.close();
    }
  });
});
