/** Fixtures of the transfer tests: servers (real and hostile), shares, raw requests. */
import { createHash } from 'node:crypto';
import { once } from 'node:events';
import { statSync } from 'node:fs';
import fs from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import express from 'express';
import {
  createFilesRouter,
  type FilesRouterOptions,
  type RunningHttpServer,
  type SharedFileSource,
  startHttpServer,
  type TransferInfo,
} from '../../libs/file-server/index.js';
import type { FileEntry } from '../../libs/protocol/index.js';
import type { DownloadProgress } from '../../libs/transfer/index.js';

export const HOST = '127.0.0.1';
export const SECRET = 'TOP-SECRET-OUTSIDE-THE-SHARE';

export function sha256(data: Buffer | string): string {
  return createHash('sha256').update(data).digest('hex');
}

export async function waitFor(
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

export interface RawResponse {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
}

/** Raw http.request: the path goes out exactly as written (no `..` normalization, no re-encoding). */
export function request(
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
export async function scanShare(root: string, names: string[]): Promise<SharedFileSource> {
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
export function naiveShare(root: string, calls: string[]): SharedFileSource {
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

export interface Served {
  running: RunningHttpServer;
  port: number;
  base: string;
  transfers: TransferInfo[];
  /** Range header of every request that reached the app, in order ('' when absent). */
  ranges: string[];
}

export async function serve(
  share: SharedFileSource,
  options: Partial<FilesRouterOptions> = {},
): Promise<Served> {
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

export interface RawServer {
  url: string;
  /** Range header of every request, '' when absent. */
  ranges: string[];
  close(): Promise<void>;
}

export async function rawServer(
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

/** Answers any request correctly (206 for a range, else 200, with `etag`) but sends one byte a second. */
export function trickle(data: Buffer, etag: string) {
  return (req: http.IncomingMessage, res: http.ServerResponse): void => {
    const range = parseRangeHeader(req.headers.range, data.length);
    const [start, end] = range ?? [0, data.length - 1];
    res.writeHead(range ? 206 : 200, {
      'Content-Length': end - start + 1,
      ...(range ? { 'Content-Range': `bytes ${start}-${end}/${data.length}` } : {}),
      ETag: etag,
    });
    let at = start;
    const drip = (): void => {
      if (res.destroyed || at > end) return;
      res.write(data.subarray(at, at + 1));
      at += 1;
      setTimeout(drip, 1000).unref();
    };
    drip();
  };
}

/** Sends the first `cut` bytes with a full-length 200, then kills the connection. */
export function sendThenDie(content: Buffer, cut: number, etag: string) {
  return (_req: http.IncomingMessage, res: http.ServerResponse): void => {
    res.writeHead(200, { 'Content-Length': content.length, ETag: etag });
    res.write(content.subarray(0, cut), () => res.socket?.destroy());
  };
}

export function sendWhole(content: Buffer, etag?: string) {
  return (_req: http.IncomingMessage, res: http.ServerResponse): void => {
    res.writeHead(200, { 'Content-Length': content.length, ...(etag ? { ETag: etag } : {}) });
    res.end(content);
  };
}

/** Records how far a peer's first run of bytes got (until another peer's bytes arrive). */
export function progressOf(peerId: string): { bytes: number; onProgress: (p: DownloadProgress) => void } {
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

export async function closedPortUrl(): Promise<string> {
  const server = http.createServer();
  server.listen(0, HOST);
  await once(server, 'listening');
  const port = (server.address() as AddressInfo).port;
  await new Promise((resolve) => server.close(resolve));
  return `http://${HOST}:${port}/files/file.bin`;
}

/** Range header `bytes=a-b` (or `bytes=a-`) as [a, b]; undefined for anything else. */
export function parseRangeHeader(header: string | undefined, size: number): [number, number] | undefined {
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
export function sendRanges(
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

/** One small file in a share of its own, served by the real files router, beside a URL nobody answers. */
export interface HonestHolder {
  /** The temp directory: `share/` holds the file; tests write their own files beside it. */
  tmp: string;
  content: Buffer;
  sha256: string;
  served: Served;
  /** The file's URL at the holder. */
  url: string;
  /** A URL on a port nobody listens on. */
  deadUrl: string;
  close(): Promise<void>;
}

export async function honestHolder(prefix: string, fileName: string): Promise<HonestHolder> {
  const tmp = await fs.mkdtemp(path.join(os.tmpdir(), prefix));
  const content = Buffer.from('the quick brown fox jumps over the lazy dog!');
  await fs.mkdir(path.join(tmp, 'share'));
  await fs.writeFile(path.join(tmp, 'share', fileName), content);
  const served = await serve(await scanShare(path.join(tmp, 'share'), [fileName]));
  return {
    tmp,
    content,
    sha256: sha256(content),
    served,
    url: `${served.base}/files/${fileName}`,
    deadUrl: await closedPortUrl(),
    async close() {
      await served.running.close();
      await fs.rm(tmp, { recursive: true, force: true });
    },
  };
}
