import type { FileHandle } from 'node:fs/promises';
import { realpath } from 'node:fs/promises';
import path from 'node:path';
import express, { type NextFunction, type Request, type Response, type Router } from 'express';
import parseRange from 'range-parser';
import { childLog, type Log, silentLog } from '../logging/index.js';
import type { FileEntry } from '../protocol/index.js';
import { openRegularFile } from '../share/index.js';
import { sendFileBody } from './body.js';
import { nameFromSegments } from './names.js';

/** What the router needs from the peer's share; `Share` from libs/share fits it. */
export interface SharedFileSource {
  /** Real path of the share root. */
  readonly root: string;
  /**
   * Exact-name lookup; undefined for anything not shared. name = relative path with '/' separators.
   * `version` is the file's state when it was hashed: when given, a file whose state differs now is refused
   * with 409 (and `recheck` is told); without it, only size and mtime are compared (404 on a difference).
   */
  get(name: string): { entry: FileEntry; absPath: string; version?: AdvertisedVersion } | undefined;
  list(): FileEntry[];
  /** Told when a listed file was found in another state than advertised, so it is re-hashed and re-announced. */
  recheck?(name: string): void;
}

/** The stat state a listed hash belongs to. */
export interface AdvertisedVersion {
  size: number;
  mtimeMs: number;
  ctimeMs: number;
  ino: number;
  dev: number;
}

export interface TransferInfo {
  /** The shared file's name. */
  name: string;
  /** HTTP status answered (200, 206, 304, 404, 409, 416 or 503). */
  status: number;
  /** Body bytes handed to the socket. */
  bytes: number;
  /** False when the body was cut short (client abort, read error); true for bodiless answers. */
  complete: boolean;
}

export interface FilesRouterOptions {
  share: SharedFileSource;
  /** GET body transfers served at once; more get 503 with Retry-After. Default 8. */
  maxConcurrentTransfers?: number;
  /** GET body transfers served at once to one client address; more get 503 with Retry-After. Default 2. */
  maxTransfersPerClient?: number;
  /**
   * A transfer whose client accepted fewer than this many bytes over `slowReaderWindowMs` while the server had
   * data waiting for it is cut, freeing its slot. Default 65_536 (64 KiB). 0 disables.
   */
  minClientBytesPerWindow?: number;
  /** Length of the window above. Default 20_000. */
  slowReaderWindowMs?: number;
  /** Seconds suggested in Retry-After. Default 1. */
  retryAfterSeconds?: number;
  /** Default: silent. */
  logger?: Log;
  /**
   * Called once per answered GET/HEAD of a name the share lists (for metrics). Requests refused before the
   * lookup (hostile or unknown names) are only logged: their names are attacker-chosen.
   */
  onTransfer?: (info: TransferInfo) => void;
}

const DEFAULT_MAX_CONCURRENT_TRANSFERS = 8;
const DEFAULT_MAX_TRANSFERS_PER_CLIENT = 2;
const DEFAULT_MIN_CLIENT_BYTES_PER_WINDOW = 64 * 1024;
const DEFAULT_SLOW_READER_WINDOW_MS = 20_000;
const DEFAULT_RETRY_AFTER_SECONDS = 1;

/**
 * Errors that mean "the file is not (or no longer) there as listed", answered 404 rather than 500. EFTYPE and
 * EESCAPE come from openRegularFile: a FIFO/device, or a file reached through a swapped directory.
 */
const GONE_CODES = new Set(['ENOENT', 'ENOTDIR', 'ELOOP', 'EACCES', 'EPERM', 'EISDIR', 'EFTYPE', 'EESCAPE']);

/**
 * Routes, for mounting at `/`:
 * - `GET /files` → `{ files: FileEntry[] }`.
 * - `GET|HEAD /files/<name>` → the bytes of a file the share lists, with a strong `ETag: "<sha256>"` and
 *   single-range support.
 *
 * Slots: at most `maxConcurrentTransfers` bodies at once and `maxTransfersPerClient` per client address, else
 * 503 with Retry-After; a client that stops reading (accepts under `minClientBytesPerWindow` per
 * `slowReaderWindowMs` while data waits for it) is cut, so slow readers cannot hold every slot.
 *
 * A listed file whose state (size, mtime, ctime, inode, device) is not the one its hash was computed from is
 * answered 409 FILE_CHANGED and the share is asked to re-hash it: the ETag would be a lie.
 *
 * Refusals: a path with malformed percent-encoding is 400; every other name that cannot be, or is not, a
 * shared file (dot segments, encoded separators, control characters, dotfiles, unknown names, a file that
 * changed, vanished or now resolves outside the root) is 404, so the answer never tells a prober which rule
 * it hit. Ranges: a malformed or unsatisfiable Range, or a unit other than `bytes`, is 416; several ranges
 * get the whole file as 200 (multipart/byteranges is not supported, and RFC 9110 lets a server ignore
 * Range). Range is ignored on HEAD (RFC 9110 §14.2) and when If-Range does not match.
 */
export function createFilesRouter(options: FilesRouterOptions): Router {
  const share = options.share;
  const maxTransfers = options.maxConcurrentTransfers ?? DEFAULT_MAX_CONCURRENT_TRANSFERS;
  const maxPerClient = options.maxTransfersPerClient ?? DEFAULT_MAX_TRANSFERS_PER_CLIENT;
  const minClientBytes = options.minClientBytesPerWindow ?? DEFAULT_MIN_CLIENT_BYTES_PER_WINDOW;
  const slowReaderWindowMs = options.slowReaderWindowMs ?? DEFAULT_SLOW_READER_WINDOW_MS;
  const retryAfterSeconds = options.retryAfterSeconds ?? DEFAULT_RETRY_AFTER_SECONDS;
  const logger = childLog(options.logger ?? silentLog, 'transfer');
  const onTransfer = options.onTransfer;
  if (!Number.isInteger(maxTransfers) || maxTransfers < 1)
    throw new RangeError(`maxConcurrentTransfers must be a positive integer, got ${maxTransfers}`);
  if (!Number.isInteger(maxPerClient) || maxPerClient < 1)
    throw new RangeError(`maxTransfersPerClient must be a positive integer, got ${maxPerClient}`);
  if (!(minClientBytes >= 0) || !(slowReaderWindowMs > 0))
    throw new RangeError('minClientBytesPerWindow must be >= 0 and slowReaderWindowMs > 0');
  let activeTransfers = 0;
  /** Transfers per client address; bounded by maxTransfers (an entry exists only while it has one). */
  const perClient = new Map<string, number>();

  const report = (info: TransferInfo): void => {
    if (!onTransfer) return;
    try {
      onTransfer(info);
    } catch (err) {
      logger.warn('onTransfer callback threw', { error: (err as Error).message });
    }
  };

  // Strict and case-sensitive: `/files/a/` must not quietly mean `/files/a`.
  const router = express.Router({ caseSensitive: true, strict: true });

  router.get('/files', (_req, res) => {
    res.set('Cache-Control', 'no-cache');
    res.json({ files: share.list() });
  });

  router.get('/files/*name', async (req: Request, res: Response) => {
    const raw = req.params.name;
    const requested = nameFromSegments(Array.isArray(raw) ? raw : [raw ?? '']);
    if (!requested.ok) {
      logger.warn('refused file request', {
        path: req.path.slice(0, 300),
        reason: requested.reason,
        remote: req.socket.remoteAddress,
      });
      sendError(res, 404, 'NOT_FOUND', 'not shared');
      return;
    }
    const name = requested.name;
    const found = share.get(name);
    if (!found) {
      logger.debug('not shared', { name, remote: req.socket.remoteAddress });
      sendError(res, 404, 'NOT_FOUND', 'not shared');
      return;
    }
    const { status, bytes, complete } = await serveFile(req, res, name, found);
    report({ name, status, bytes, complete });
  });

  // Express decodes the splat segments before the handler runs; a malformed escape arrives here as a 400.
  router.use((err: unknown, req: Request, res: Response, next: NextFunction) => {
    if (err instanceof URIError && !res.headersSent) {
      logger.warn('malformed percent-encoding', {
        path: req.path.slice(0, 300),
        remote: req.socket.remoteAddress,
      });
      sendError(res, 400, 'BAD_REQUEST', 'malformed percent-encoding in path');
      return;
    }
    next(err);
  });

  type Outcome = { status: number; bytes: number; complete: boolean };

  async function serveFile(
    req: Request,
    res: Response,
    name: string,
    found: { entry: FileEntry; absPath: string; version?: AdvertisedVersion },
  ): Promise<Outcome> {
    const { entry, absPath, version } = found;
    let handle: FileHandle | undefined;
    try {
      // The scan vouched for absPath when it hashed it; a symlink swapped in since must not lead outside.
      const [rootReal, fileReal] = await Promise.all([realpath(share.root), realpath(absPath)]);
      if (!isInside(rootReal, fileReal)) {
        logger.warn('shared name now resolves outside the share', {
          name,
          remote: req.socket.remoteAddress,
        });
        return sendError(res, 404, 'NOT_FOUND', 'not shared');
      }
      // Read from this descriptor only, so every check below is about the bytes actually sent. The open
      // cannot block (a FIFO swapped in is refused by its type, never waited on).
      const opened = await openRegularFile(fileReal);
      handle = opened.handle;
      const stats = opened.stats;
      // The ETag promises the hashed content; a file in another state is not known to be that content.
      if (version !== undefined) {
        if (
          stats.size !== version.size ||
          stats.mtimeMs !== version.mtimeMs ||
          stats.ctimeMs !== version.ctimeMs ||
          stats.ino !== version.ino ||
          stats.dev !== version.dev
        ) {
          logger.info('file changed since it was hashed; refusing it until re-hashed', { name });
          share.recheck?.(name);
          return sendError(res, 409, 'FILE_CHANGED', 'file changed since it was announced');
        }
      } else if (stats.size !== entry.size || Math.abs(stats.mtimeMs - entry.mtimeMs) >= 1) {
        logger.debug('file changed since the scan', { name });
        return sendError(res, 404, 'NOT_FOUND', 'not shared');
      }

      const etag = `"${entry.sha256}"`;
      const lastModified = stats.mtime.toUTCString();
      res.set('ETag', etag);
      res.set('Last-Modified', lastModified);
      res.set('Cache-Control', 'no-cache');
      res.set('Accept-Ranges', 'bytes');
      // req.fresh (the `fresh` package) weighs If-None-Match / If-Modified-Since against the headers above.
      if (req.fresh) {
        res.status(304).end();
        return { status: 304, bytes: 0, complete: true };
      }

      const size = entry.size;
      let start = 0;
      let end = size - 1;
      let status = 200;
      let contentRange: string | undefined;
      const rangeHeader = req.method === 'GET' ? req.headers.range : undefined;
      if (rangeHeader !== undefined && ifRangeHolds(req.get('If-Range'), etag, lastModified)) {
        const ranges = parseRange(size, rangeHeader, { combine: true });
        if (ranges === -1 || ranges === -2 || ranges.type !== 'bytes') {
          res.set('Content-Range', `bytes */${size}`);
          return sendError(res, 416, 'RANGE_NOT_SATISFIABLE', 'range not satisfiable');
        }
        const [range] = ranges;
        if (ranges.length === 1 && range !== undefined) {
          start = range.start;
          end = range.end;
          status = 206;
          contentRange = `bytes ${start}-${end}/${size}`;
        }
      }
      const length = end - start + 1;

      const client = clientAddress(req);
      if (req.method === 'GET') {
        if (activeTransfers >= maxTransfers || (perClient.get(client) ?? 0) >= maxPerClient) {
          res.set('Retry-After', String(retryAfterSeconds));
          return sendError(res, 503, 'BUSY', 'busy: too many transfers, retry later');
        }
        activeTransfers += 1;
        perClient.set(client, (perClient.get(client) ?? 0) + 1);
      }
      let released = req.method !== 'GET';
      const release = (): void => {
        if (released) return;
        released = true;
        activeTransfers -= 1;
        const left = (perClient.get(client) ?? 1) - 1;
        if (left > 0) perClient.set(client, left);
        else perClient.delete(client);
      };
      // 'close' also fires when the client goes away mid-body, which is what frees a stalled slot.
      res.once('close', release);

      res.status(status);
      if (contentRange !== undefined) res.set('Content-Range', contentRange);
      // Content-Disposition by express (the content-disposition package): an ASCII fallback plus RFC 8187.
      res.attachment(path.posix.basename(name));
      res.type(path.extname(name) || 'application/octet-stream');
      res.set('X-Content-Type-Options', 'nosniff');
      res.set('Content-Length', String(length));
      if (req.method === 'HEAD' || length === 0) {
        res.end();
        release();
        return { status, bytes: 0, complete: true };
      }

      const progress = { sentBytes: 0 };
      // Cut a client that stopped reading: few bytes accepted over a window while the response waits on it.
      let sentAtLastCheck = 0;
      const slowReaderTimer =
        minClientBytes > 0
          ? setInterval(() => {
              const windowBytes = progress.sentBytes - sentAtLastCheck;
              sentAtLastCheck = progress.sentBytes;
              if (windowBytes < minClientBytes && res.writableNeedDrain) {
                logger.info('dropping a client that stopped reading', {
                  name,
                  remote: client,
                  sentBytes: progress.sentBytes,
                  windowBytes,
                });
                res.destroy();
              }
            }, slowReaderWindowMs)
          : undefined;
      slowReaderTimer?.unref();
      try {
        await sendFileBody(handle, res, start, length, progress);
        return { status, bytes: progress.sentBytes, complete: true };
      } catch (err) {
        const sent = progress.sentBytes;
        // A client may close the moment the last byte arrives, before the response's own 'finish': every
        // byte was handed to the socket and the body was ended, so that transfer did complete.
        if (sent === length && res.writableEnded) return { status, bytes: sent, complete: true };
        const code = (err as NodeJS.ErrnoException).code;
        if (code === 'ERR_STREAM_PREMATURE_CLOSE' || req.socket.destroyed)
          logger.debug('client went away', { name, sentBytes: sent });
        else logger.warn('send failed', { name, sentBytes: sent, error: (err as Error).message });
        // The client sees a cut connection, never a short 200.
        res.destroy();
        return { status, bytes: sent, complete: false };
      } finally {
        clearInterval(slowReaderTimer);
        release();
      }
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code !== undefined && GONE_CODES.has(code)) {
        logger.debug('shared file is gone', { name, code });
        return sendError(res, 404, 'NOT_FOUND', 'not shared');
      }
      logger.warn('cannot serve file', { name, error: (err as Error).message });
      return sendError(res, 500, 'INTERNAL', 'cannot read file');
    } finally {
      await handle?.close().catch(() => {});
    }
  }

  return router;
}

function sendError(
  res: Response,
  status: number,
  code: string,
  message: string,
): { status: number; bytes: number; complete: boolean } {
  if (res.headersSent) {
    res.destroy();
    return { status: res.statusCode, bytes: 0, complete: false };
  }
  // Validators describe a body; an error answer has none of the file's.
  for (const header of ['ETag', 'Last-Modified', 'Accept-Ranges']) res.removeHeader(header);
  // Not res.json(): express would add its own weak ETag to this body, and only the file's ETag may appear.
  res
    .status(status)
    .type('application/json')
    .end(JSON.stringify({ error: { code, message } }));
  return { status, bytes: 0, complete: true };
}

/** The client's address, IPv4-mapped IPv6 folded to IPv4 so one host counts once. */
function clientAddress(req: Request): string {
  const address = req.socket.remoteAddress ?? 'unknown';
  return address.startsWith('::ffff:') ? address.slice(7) : address;
}

function isInside(root: string, candidate: string): boolean {
  const rel = path.relative(root, candidate);
  return rel !== '' && !rel.startsWith(`..${path.sep}`) && rel !== '..' && !path.isAbsolute(rel);
}

/** If-Range (RFC 9110 §13.1.5): a strong ETag must equal ours, a date must equal Last-Modified exactly. */
function ifRangeHolds(ifRange: string | undefined, etag: string, lastModified: string): boolean {
  if (ifRange === undefined) return true;
  if (ifRange.includes('"')) return ifRange.trim() === etag;
  const date = Date.parse(ifRange);
  return !Number.isNaN(date) && date === Date.parse(lastModified);
}
