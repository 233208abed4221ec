import { randomBytes, timingSafeEqual } from 'node:crypto';
import { isIP } from 'node:net';
import express from 'express';
import { z } from 'zod';
import { describeError, isP2PError } from '../../libs/errors/index.js';
import { type FileEntry, MAX_WATCH_QUERY_LENGTH, Sha256Schema } from '../../libs/protocol/index.js';
import { parseQuery } from '../../libs/search/index.js';
import type { Watcher } from '../../libs/watch/index.js';
import { refuse } from './api.js';
import type { DownloadJobs } from './web-downloads.js';

/*
 * The page's own routes beside the JSON API: live watches (server-sent events), downloads into the share
 * ("get"), this peer's files, and what it is serving now. Downloads change state, so they are accepted
 * only from the page itself: a per-process CSRF token that only a same-origin page can read (it is in the
 * HTML), compared in constant time, AND a same-origin Origin / Sec-Fetch-Site when the browser sends them,
 * AND a JSON body (a cross-origin form cannot send one without a CORS preflight, which we never grant).
 */

/** Header the page sends its token in. */
export const CSRF_HEADER = 'x-p2p-csrf';

/** A fresh random token for this process's page. */
export function createCsrfToken(): string {
  return randomBytes(32).toString('base64url');
}

function isLoopback(address: string | undefined): boolean {
  if (!address) return false;
  const plain = address.startsWith('::ffff:') ? address.slice(7) : address;
  if (isIP(plain) === 4) return plain.startsWith('127.');
  return plain === '::1';
}

/**
 * With `loopbackOnly`, the page (`/`, `/assets/…`) and the JSON API (`/api/…`) answer only connections
 * from this machine (403 otherwise); `/files`, `/healthz` and `/metrics` stay reachable by other peers.
 * Mount it before those routers.
 */
export function webAccessGuard(loopbackOnly: boolean): express.RequestHandler {
  return (req, res, next) => {
    if (!loopbackOnly) return next();
    const pagePath = req.path === '/' || req.path.startsWith('/assets/') || req.path.startsWith('/api/');
    if (!pagePath || isLoopback(req.socket.remoteAddress)) return next();
    refuse(res, 403, 'FORBIDDEN', 'this peer serves its page on loopback only');
  };
}

/** A request from this page's own origin, as far as the browser tells (absent headers: not a browser). */
function sameOrigin(req: express.Request): boolean {
  const site = req.get('sec-fetch-site');
  if (site !== undefined && site !== 'same-origin' && site !== 'none') return false;
  const origin = req.get('origin');
  if (origin === undefined) return true;
  const host = req.get('host');
  return host !== undefined && (origin === `http://${host}` || origin === `https://${host}`);
}

function tokenMatches(expected: string, given: string | undefined): boolean {
  if (typeof given !== 'string') return false;
  const a = Buffer.from(expected);
  const b = Buffer.from(given);
  return a.length === b.length && timingSafeEqual(a, b);
}

/** Tracks the file requests being served right now (mount before the files router). */
export class ServingNow {
  private readonly active = new Map<number, { name: string; client: string; startedAtMs: number }>();
  private next = 0;

  readonly track: express.RequestHandler = (req, res, next) => {
    if (req.method !== 'GET' || !req.path.startsWith('/files/') || this.active.size >= 1000) return next();
    const id = this.next++;
    let name = req.path.slice('/files/'.length);
    try {
      name = decodeURIComponent(name);
    } catch {}
    this.active.set(id, { name, client: req.socket.remoteAddress ?? '?', startedAtMs: Date.now() });
    res.once('close', () => this.active.delete(id));
    next();
  };

  list(): Array<{ name: string; client: string; forMs: number }> {
    const now = Date.now();
    return [...this.active.values()].map((t) => ({
      name: t.name,
      client: t.client,
      forMs: now - t.startedAtMs,
    }));
  }
}

export interface WebApiOptions {
  csrfToken: string;
  /** The peer's watcher, started on first use. */
  watcher: () => Promise<Watcher>;
  jobs: DownloadJobs;
  ownFiles: () => FileEntry[];
  serving: ServingNow;
  /** Live watches (event streams) open at once; more are refused (429). Default 8. */
  maxWatches?: number;
  /** Event streams of download progress open at once. Default 16. */
  maxDownloadStreams?: number;
}

const WatchQuerySchema = z.object({
  q: z.string().trim().min(1).max(MAX_WATCH_QUERY_LENGTH),
  removed: z.enum(['0', '1']).default('0'),
});
const DownloadBodySchema = z.object({ sha256: Sha256Schema, name: z.string().min(1).max(1024) });
const OwnFilesQuerySchema = z.object({
  q: z.string().max(256).default(''),
  limit: z.coerce.number().int().min(1).max(1000).default(200),
});

/** Keeps an event stream alive through proxies and the server's idle timeout. */
const SSE_KEEPALIVE_MS = 15_000;

function startEvents(res: express.Response): (event: string, data: unknown) => void {
  res.status(200).set({
    'Content-Type': 'text/event-stream; charset=utf-8',
    'Cache-Control': 'no-cache, no-transform',
    'X-Content-Type-Options': 'nosniff',
    Connection: 'keep-alive',
  });
  res.flushHeaders();
  // Events can still arrive between the client going away and the watch being cancelled.
  const write = (text: string) => {
    if (!res.writableEnded && !res.destroyed) res.write(text);
  };
  const keepalive = setInterval(() => write(': keepalive\n\n'), SSE_KEEPALIVE_MS);
  res.once('close', () => clearInterval(keepalive));
  return (event, data) => write(`event: ${event}\ndata: ${JSON.stringify(data)}\n\n`);
}

/**
 * GET /api/watch?q=&removed=0|1 (event stream of `accepted`, `refused`, `overflow`, `match`),
 * POST /api/downloads {sha256, name} (token + same origin), GET /api/downloads, GET /api/downloads/events,
 * GET /api/own-files?q=&limit=, GET /api/serving.
 */
export function createWebApiRouter(options: WebApiOptions): { router: express.Router; close(): void } {
  const router = express.Router({ caseSensitive: true, strict: true });
  // Event streams never end by themselves: closing the peer ends them, or the HTTP server would wait.
  const streams = new Set<express.Response>();
  const track = (res: express.Response) => {
    streams.add(res);
    res.once('close', () => streams.delete(res));
  };
  const maxWatches = options.maxWatches ?? 8;
  const maxDownloadStreams = options.maxDownloadStreams ?? 16;
  let openWatches = 0;
  let openDownloadStreams = 0;

  router.get('/api/watch', async (req, res) => {
    if (!sameOrigin(req)) return refuse(res, 403, 'FORBIDDEN', 'cross-origin request refused');
    const parsed = WatchQuerySchema.safeParse(req.query);
    if (!parsed.success) return refuse(res, 400, 'USAGE', parsed.error.issues[0]?.message ?? 'bad query');
    try {
      parseQuery(parsed.data.q);
    } catch (err) {
      return refuse(res, 400, 'USAGE', describeError(err));
    }
    if (openWatches >= maxWatches)
      return refuse(res, 429, 'WATCH_LIMIT', `at most ${maxWatches} live watches`);
    openWatches++;
    let closed = false;
    let cancel: (() => Promise<void>) | undefined;
    res.once('close', () => {
      closed = true;
      openWatches--;
      void cancel?.();
    });
    let watcher: Watcher;
    try {
      watcher = await options.watcher();
    } catch (err) {
      if (!closed) refuse(res, 503, 'BROKER_UNREACHABLE', describeError(err));
      return;
    }
    if (closed) return;
    track(res);
    const send = startEvents(res);
    const watch = watcher.watch(parsed.data.q, { includeRemoved: parsed.data.removed === '1' });
    cancel = () => watch.cancel();
    watch.on('accepted', (superpeerId) => send('accepted', { superpeerId }));
    watch.on('refused', (superpeerId, code, message) => send('refused', { superpeerId, code, message }));
    watch.on('overflow', (superpeerId, dropped) => send('overflow', { superpeerId, dropped }));
    watch.on('match', (event, file) => send('match', { event, file }));
  });

  router.post('/api/downloads', express.json({ limit: 4096 }), async (req, res) => {
    if (!sameOrigin(req)) return refuse(res, 403, 'FORBIDDEN', 'cross-origin request refused');
    if (!tokenMatches(options.csrfToken, req.get(CSRF_HEADER)))
      return refuse(res, 403, 'FORBIDDEN', 'missing or wrong page token');
    if (!req.is('application/json')) return refuse(res, 415, 'USAGE', 'send JSON');
    const parsed = DownloadBodySchema.safeParse(req.body);
    if (!parsed.success) return refuse(res, 400, 'USAGE', parsed.error.issues[0]?.message ?? 'bad body');
    try {
      const job = await options.jobs.start(parsed.data.sha256, parsed.data.name);
      res.status(202).json({ job });
    } catch (err) {
      if (isP2PError(err, 'USAGE')) return refuse(res, 400, err.code, err.message);
      if (isP2PError(err, 'NOT_FOUND')) return refuse(res, 404, err.code, err.message);
      if (isP2PError(err, 'DOWNLOAD_FAILED') && err.details.busy)
        return refuse(res, 429, err.code, err.message);
      refuse(res, 500, isP2PError(err) ? err.code : 'INTERNAL', describeError(err));
    }
  });

  router.get('/api/downloads', (_req, res) => {
    res.set('Cache-Control', 'no-store').json({ downloads: options.jobs.list() });
  });

  router.get('/api/downloads/events', (req, res) => {
    if (!sameOrigin(req)) return refuse(res, 403, 'FORBIDDEN', 'cross-origin request refused');
    if (openDownloadStreams >= maxDownloadStreams) return refuse(res, 429, 'LIMIT', 'too many open streams');
    openDownloadStreams++;
    track(res);
    const send = startEvents(res);
    for (const job of options.jobs.list()) send('download', job);
    const onUpdate = (job: unknown) => send('download', job);
    options.jobs.on('update', onUpdate);
    res.once('close', () => {
      openDownloadStreams--;
      options.jobs.off('update', onUpdate);
    });
  });

  router.get('/api/own-files', (req, res) => {
    const parsed = OwnFilesQuerySchema.safeParse(req.query);
    if (!parsed.success) return refuse(res, 400, 'USAGE', parsed.error.issues[0]?.message ?? 'bad query');
    const needle = parsed.data.q.toLowerCase();
    const all = options.ownFiles();
    const matching = needle === '' ? all : all.filter((file) => file.name.toLowerCase().includes(needle));
    res.set('Cache-Control', 'no-store').json({
      total: all.length,
      matching: matching.length,
      files: matching.slice(0, parsed.data.limit),
    });
  });

  router.get('/api/serving', (_req, res) => {
    res.set('Cache-Control', 'no-store').json({ transfers: options.serving.list() });
  });

  return {
    router,
    close() {
      for (const res of streams) res.end();
    },
  };
}

/** The peer's watcher, connected on first use (most peers never open their page) and closed with the peer. */
export function lazyWatcher(create: () => Watcher): { get(): Promise<Watcher>; close(): Promise<void> } {
  let starting: Promise<Watcher> | undefined;
  return {
    get() {
      starting ??= (async () => {
        const watcher = create();
        try {
          await watcher.start();
          return watcher;
        } catch (err) {
          starting = undefined; // the next page that asks tries again
          await watcher.close().catch(() => undefined);
          throw err;
        }
      })();
      return starting;
    },
    async close() {
      const watcher = await starting?.catch(() => undefined);
      await watcher?.close();
    },
  };
}
