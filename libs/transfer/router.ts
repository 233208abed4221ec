import { constants } from 'node:fs';
import { type FileHandle, open, realpath } from 'node:fs/promises';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import express, { type NextFunction, type Request, type Response, type Router } from 'express';
import parseRange from 'range-parser';
import { type Log, silentLog } from '../logging/index.js';
import type { FileEntry } from '../protocol/index.js';
import { nameFromSegments } from './names.js';

/** What the router needs from the peer's share; `Share` from libs/share fits it. */
export interface SharedFileSource {
  /** Real path of the share root. */
  readonly root: string;
  /** Exact-name lookup; undefined for anything not shared. name = relative path with '/' separators. */
  get(name: string): { entry: FileEntry; absPath: string } | undefined;
  list(): FileEntry[];
}

export interface TransferInfo {
  /** The shared file's name. */
  name: string;
  /** HTTP status answered (200, 206, 304, 404, 416 or 503). */
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
const DEFAULT_RETRY_AFTER_SECONDS = 1;

// O_NOFOLLOW does not exist on Windows; there the realpath check has to suffice.
const OPEN_FLAGS = constants.O_RDONLY | (constants.O_NOFOLLOW ?? 0);

/** Errors that mean "the file is not (or no longer) there as listed", answered 404 rather than 500. */
const GONE_CODES = new Set(['ENOENT', 'ENOTDIR', 'ELOOP', 'EACCES', 'EPERM', 'EISDIR']);

/**
 * Routes, for mounting at `/`:
 * - `GET /files` → `{ files: FileEntry[] }`.
 * - `GET|HEAD /files/<name>` → the bytes of a file the share lists, with a strong `ETag: "<sha256>"` and
 *   single-range support.
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
  const retryAfterSeconds = options.retryAfterSeconds ?? DEFAULT_RETRY_AFTER_SECONDS;
  const logger = options.logger ?? silentLog;
  const onTransfer = options.onTransfer;
  if (!Number.isInteger(maxTransfers) || maxTransfers < 1)
    throw new RangeError(`maxConcurrentTransfers must be a positive integer, got ${maxTransfers}`);
  let activeTransfers = 0;

  const report = (info: TransferInfo): void => {
    if (!onTransfer) return;
    try {
      onTransfer(info);
    } catch (err) {
      logger.warn('transfer: onTransfer callback threw', { error: (err as Error).message });
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
      logger.warn('transfer: refused file request', {
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
      logger.debug('transfer: not shared', { name, remote: req.socket.remoteAddress });
      sendError(res, 404, 'NOT_FOUND', 'not shared');
      return;
    }
    const { status, bytes, complete } = await serveFile(req, res, name, found.entry, found.absPath);
    report({ name, status, bytes, complete });
  });

  // Express decodes the splat segments before the handler runs; a malformed escape arrives here as a 400.
  router.use((err: unknown, req: Request, res: Response, next: NextFunction) => {
    if (err instanceof URIError && !res.headersSent) {
      logger.warn('transfer: malformed percent-encoding', {
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
    entry: FileEntry,
    absPath: string,
  ): Promise<Outcome> {
    let handle: FileHandle | undefined;
    try {
      // The scan vouched for absPath when it hashed it; a symlink swapped in since must not lead outside.
      const [rootReal, fileReal] = await Promise.all([realpath(share.root), realpath(absPath)]);
      if (!isInside(rootReal, fileReal)) {
        logger.warn('transfer: shared name now resolves outside the share', {
          name,
          remote: req.socket.remoteAddress,
        });
        return sendError(res, 404, 'NOT_FOUND', 'not shared');
      }
      // Read from this descriptor only, so every check below is about the bytes actually sent.
      handle = await open(fileReal, OPEN_FLAGS);
      const stats = await handle.stat();
      // The ETag promises the scanned content; a file changed since the scan is not that content any more.
      if (!stats.isFile() || stats.size !== entry.size || Math.abs(stats.mtimeMs - entry.mtimeMs) >= 1) {
        logger.debug('transfer: file changed since the scan', { name });
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

      if (req.method === 'GET') {
        if (activeTransfers >= maxTransfers) {
          res.set('Retry-After', String(retryAfterSeconds));
          return sendError(res, 503, 'BUSY', 'too many transfers, retry later');
        }
        activeTransfers += 1;
      }
      let released = req.method !== 'GET';
      const release = (): void => {
        if (released) return;
        released = true;
        activeTransfers -= 1;
      };
      // 'close' also fires when the client goes away mid-body, which is what frees a stalled slot.
      res.once('close', release);

      res.status(status);
      if (contentRange !== undefined) res.set('Content-Range', contentRange);
      res.type(path.extname(name) || 'application/octet-stream');
      res.set('X-Content-Type-Options', 'nosniff');
      res.set(
        'Content-Disposition',
        `attachment; filename*=UTF-8''${encodeRfc8187(path.posix.basename(name))}`,
      );
      res.set('Content-Length', String(length));
      if (req.method === 'HEAD' || length === 0) {
        res.end();
        release();
        return { status, bytes: 0, complete: true };
      }

      let sent = 0;
      const body = handle.createReadStream({ start, end, autoClose: true });
      handle = undefined; // the stream closes it now
      try {
        await pipeline(
          body,
          async function* countAndCheck(source: AsyncIterable<Buffer>) {
            for await (const chunk of source) {
              sent += chunk.length;
              yield chunk;
            }
            // A file truncated while we read must not end as a short body the client takes for complete.
            if (sent !== length) throw new Error(`file shrank while being sent (${sent} of ${length} bytes)`);
          },
          res,
        );
        return { status, bytes: sent, complete: true };
      } catch (err) {
        // A client may close the moment the last byte arrives, before the response's own 'finish': every
        // byte was handed to the socket and the body was ended, so that transfer did complete.
        if (sent === length && res.writableEnded) return { status, bytes: sent, complete: true };
        const code = (err as NodeJS.ErrnoException).code;
        if (code === 'ERR_STREAM_PREMATURE_CLOSE' || req.socket.destroyed)
          logger.debug('transfer: client went away', { name, sentBytes: sent });
        else logger.warn('transfer: send failed', { name, sentBytes: sent, error: (err as Error).message });
        // pipeline has destroyed the response: the client sees a cut connection, never a short 200.
        return { status, bytes: sent, complete: false };
      } finally {
        release();
      }
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code !== undefined && GONE_CODES.has(code)) {
        logger.debug('transfer: shared file is gone', { name, code });
        return sendError(res, 404, 'NOT_FOUND', 'not shared');
      }
      logger.warn('transfer: cannot serve file', { name, error: (err as Error).message });
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

/** RFC 8187 ext-value characters: encodeURIComponent leaves `'()*` bare, which attr-char does not allow. */
function encodeRfc8187(value: string): string {
  return encodeURIComponent(value).replace(
    /['()*]/g,
    (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`,
  );
}
