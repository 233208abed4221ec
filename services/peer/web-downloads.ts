import { EventEmitter } from 'node:events';
import path from 'node:path';
import { v4 as uuidv4 } from 'uuid';
import { describeError, isP2PError, P2PError } from '../../libs/errors/index.js';
import type { Log } from '../../libs/logging/index.js';
import { FileNameSchema, type SearchResult } from '../../libs/protocol/index.js';
import { downloadFromHolders, groupHoldersBySize } from '../../libs/transfer/index.js';

/** One download started from the page, as the page sees it. */
export interface DownloadJob {
  id: string;
  /** Where it goes, relative to the share: `downloads/<base name>`. */
  name: string;
  sha256: string;
  /** The size being tried: the one claimed by most holders first (a holder's size is only a claim). */
  size: number;
  receivedBytes: number;
  state: 'running' | 'done' | 'failed';
  /** Peers whose bytes are in the verified file (when done). */
  servedBy: string[];
  error?: { code: string; message: string };
  startedAtMs: number;
}

export interface DownloadJobsOptions {
  /** The share's root directory; files go to its `downloads/` folder. */
  shareRoot: string;
  /** This peer's id: never a source for itself. */
  ownPeerId: string;
  /** Finds the holders of a SHA-256 (a search by hash). */
  findHolders: (sha256: string) => Promise<SearchResult[]>;
  logger: Log;
  /** Downloads running at once; more are refused (429). Default 3. */
  maxRunning?: number;
  /** Finished downloads remembered for the page; the oldest are forgotten. Default 50. */
  maxKept?: number;
  /** Progress events per download at most this often. Default 200. */
  progressIntervalMs?: number;
}

/** Folder of the share that downloads from the page go into. */
export const DOWNLOADS_FOLDER = 'downloads';

/**
 * The page's "get": the same verified, multi-source download as `p2p get`, into the peer's own share, with
 * progress reported as `update` events. Bounded in downloads at once and in jobs remembered.
 */
export class DownloadJobs extends EventEmitter<{ update: [job: DownloadJob] }> {
  private readonly jobs = new Map<string, DownloadJob>();
  private readonly aborts = new Map<string, AbortController>();
  private readonly options: Required<DownloadJobsOptions>;

  constructor(options: DownloadJobsOptions) {
    super();
    this.options = { maxRunning: 3, maxKept: 50, progressIntervalMs: 200, ...options };
    this.setMaxListeners(100);
  }

  list(): DownloadJob[] {
    return [...this.jobs.values()].map((job) => ({ ...job }));
  }

  get running(): number {
    return this.aborts.size;
  }

  /**
   * Starts downloading the file with `sha256`, saved under the base name of `name`. Throws USAGE for a
   * name that cannot be a file name, NOT_FOUND when no other peer holds it, DOWNLOAD_FAILED (busy) when
   * `maxRunning` downloads are running.
   */
  async start(sha256: string, name: string): Promise<DownloadJob> {
    const base = path.posix.basename(name);
    if (!FileNameSchema.safeParse(base).success || base.includes('/'))
      throw new P2PError('USAGE', 'not a file name that can be saved');
    if (this.aborts.size >= this.options.maxRunning)
      throw new P2PError('DOWNLOAD_FAILED', `at most ${this.options.maxRunning} downloads at once`, {
        details: { busy: true },
      });
    const holders = (await this.options.findHolders(sha256))
      .filter((result) => result.sha256 === sha256 && result.peerId !== this.options.ownPeerId)
      .map(({ url, peerId, size }) => ({ url, peerId, size }));
    const first = groupHoldersBySize(sha256, holders)[0];
    if (!first) throw new P2PError('NOT_FOUND', 'no other peer holds this file now');
    if (this.aborts.size >= this.options.maxRunning)
      throw new P2PError('DOWNLOAD_FAILED', `at most ${this.options.maxRunning} downloads at once`, {
        details: { busy: true },
      });

    const job: DownloadJob = {
      id: uuidv4(),
      name: `${DOWNLOADS_FOLDER}/${base}`,
      sha256,
      size: first.sizeBytes,
      receivedBytes: 0,
      state: 'running',
      servedBy: [],
      startedAtMs: Date.now(),
    };
    const abort = new AbortController();
    this.aborts.set(job.id, abort);
    this.keep(job);
    this.emit('update', { ...job });
    let lastEmitMs = 0;
    void downloadFromHolders({
      holders,
      sha256,
      destPath: path.join(this.options.shareRoot, DOWNLOADS_FOLDER, base),
      signal: abort.signal,
      logger: this.options.logger,
      onGroup: (event) => {
        if (event.kind === 'failed') {
          this.options.logger.warn('the holders claiming a size could not deliver the file', {
            name: job.name,
            sha256,
            sizeBytes: event.group.sizeBytes,
            peerIds: event.group.sources.map((source) => source.peerId),
            reason: describeError(event.error).slice(0, 500),
          });
          return;
        }
        if (event.group.sizeBytes === job.size && job.receivedBytes === 0) return;
        job.size = event.group.sizeBytes;
        job.receivedBytes = 0;
        this.emit('update', { ...job });
      },
      onProgress: (progress) => {
        job.receivedBytes = progress.receivedBytes;
        const now = Date.now();
        if (now - lastEmitMs < this.options.progressIntervalMs) return;
        lastEmitMs = now;
        this.emit('update', { ...job });
      },
    })
      .then(
        (result) => {
          job.state = 'done';
          job.receivedBytes = result.size;
          job.servedBy = result.servedBy;
          this.options.logger.info('downloaded from the page', {
            name: job.name,
            sha256,
            servedBy: result.servedBy,
          });
        },
        (err: unknown) => {
          job.state = 'failed';
          job.error = {
            code: isP2PError(err) ? err.code : 'DOWNLOAD_FAILED',
            message: describeError(err).slice(0, 500),
          };
          this.options.logger.warn('a download from the page failed', {
            name: job.name,
            sha256,
            reason: job.error.message,
          });
        },
      )
      .finally(() => {
        this.aborts.delete(job.id);
        this.emit('update', { ...job });
      });
    return { ...job };
  }

  /** Aborts what is running (shutdown). */
  close(): void {
    for (const abort of this.aborts.values())
      abort.abort(new P2PError('DOWNLOAD_FAILED', 'the peer is shutting down'));
  }

  private keep(job: DownloadJob): void {
    this.jobs.set(job.id, job);
    if (this.jobs.size <= this.options.maxKept) return;
    for (const [id, old] of this.jobs) {
      if (old.state !== 'running') {
        this.jobs.delete(id);
        return;
      }
    }
  }
}
